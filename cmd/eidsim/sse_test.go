package main

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// readAll returns every event of a stream, the last retry and the error
// that ended it (nil for io.EOF).
func readAll(r io.Reader) ([]sseEvent, time.Duration, error) {
	sr := newSSEReader(r)
	var evs []sseEvent
	for {
		ev, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return evs, sr.retry, nil
		}
		if err != nil {
			return evs, sr.retry, err
		}
		evs = append(evs, ev)
	}
}

func TestSSEReader(t *testing.T) {
	note := func(id, data string) sseEvent { return sseEvent{Type: "notification", Data: data, ID: id} }
	tests := []struct {
		name  string
		in    string
		want  []sseEvent
		retry time.Duration
	}{
		{"the API's stream", "retry: 3000\n\n: ping\n\nid: 42\nevent: notification\ndata: {\"message_id\":\"ntf_1\"}\n\n: ping\n\nevent: end\ndata: {\"reason\":\"token\"}\n\n",
			[]sseEvent{note("42", `{"message_id":"ntf_1"}`), {Type: "end", Data: `{"reason":"token"}`, ID: "42"}}, 3 * time.Second},
		{"data lines are joined by LF", "event: notification\ndata: {\"a\":\ndata:1,\ndata:  \"b\":2}\n\n",
			[]sseEvent{note("", "{\"a\":\n1,\n \"b\":2}")}, 0},
		{"CRLF and lone CR end lines", "id: 1\r\nevent: notification\r\ndata: x\r\n\r\nid: 2\revent: notification\rdata: y\r\r",
			[]sseEvent{note("1", "x"), note("2", "y")}, 0},
		{"no event type is a message", "data: hello\n\n", []sseEvent{{Type: "message", Data: "hello"}}, 0},
		{"no data, no event; the id stays", "id: 7\nevent: notification\n\ndata: z\n\n", []sseEvent{{Type: "message", Data: "z", ID: "7"}}, 0},
		{"empty data is an event", "data\n\ndata:\n\n", []sseEvent{{Type: "message"}, {Type: "message"}}, 0},
		{"a field without a colon, a colon without a space", "event\ndata:a:b\n\n", []sseEvent{{Type: "message", Data: "a:b"}}, 0},
		{"only one space is stripped", "data:  two\n\n", []sseEvent{{Type: "message", Data: " two"}}, 0},
		{"an id with NUL is ignored", "id: 5\n\nid: 6\x007\ndata: x\n\n", []sseEvent{{Type: "message", Data: "x", ID: "5"}}, 0},
		{"an empty id resets it", "id: 5\ndata: a\n\nid\ndata: b\n\n", []sseEvent{{Type: "message", Data: "a", ID: "5"}, {Type: "message", Data: "b"}}, 0},
		{"retry must be digits", "retry: 10\nretry: -5\nretry: +7\nretry: 1e3\nretry:\n\n", nil, 10 * time.Millisecond},
		{"a huge retry is bounded", "retry: 99999999999999999999999\n\n", nil, maxSSERetry},
		{"a leading BOM is dropped once", "\ufeffdata: a\n\n\ufeffdata: b\n\n", []sseEvent{{Type: "message", Data: "a"}}, 0},
		{"unknown fields are ignored", "foo: bar\ndata: a\n\n", []sseEvent{{Type: "message", Data: "a"}}, 0},
		{"a partial event at the end is dropped", "data: a\n\nid: 9\nevent: notification\ndata: b", []sseEvent{{Type: "message", Data: "a"}}, 0},
		{"a comment between data lines", "data: a\n: ping\ndata: b\n\n", []sseEvent{{Type: "message", Data: "a\nb"}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, and a byte at a time: line ends split across reads.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				got, retry, err := readAll(r)
				if err != nil || !reflect.DeepEqual(got, tt.want) || retry != tt.retry {
					t.Errorf("got %q, retry %v, %v\nwant %q, retry %v", got, retry, err, tt.want, tt.retry)
				}
			}
		})
	}
}

func TestSSEReader_Bounds(t *testing.T) {
	long := "data: " + strings.Repeat("x", maxSSELine) + "\n\n"
	if _, _, err := readAll(strings.NewReader(long)); err == nil || !strings.Contains(err.Error(), "a line over") {
		t.Errorf("a line over the bound: %v", err)
	}
	many := strings.Repeat("data: "+strings.Repeat("x", 1000)+"\n", maxSSEData/1000+1) + "\n"
	if _, _, err := readAll(strings.NewReader(many)); !errors.Is(err, errSSEData) {
		t.Errorf("data over the bound: %v", err)
	}
	failing := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(io.ErrUnexpectedEOF))
	if evs, _, err := readAll(failing); len(evs) != 1 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a failing stream: %q, %v", evs, err)
	}
}

// FuzzSSEReader: how a stream is cut into reads changes nothing, nor do
// its line ends (LF, CRLF or CR).
func FuzzSSEReader(f *testing.F) {
	f.Add("retry: 3000\n\n: ping\n\nid: 42\nevent: notification\ndata: {\"message_id\":\"ntf_1\"}\n\n")
	f.Add("data: a\ndata:b\n\nid\nevent: end\ndata\n\n")
	f.Add("\ufeffid: 1\x00\ndata: x\n\nretry: 5\n")
	f.Fuzz(func(t *testing.T, in string) {
		whole, wholeRetry, wholeErr := readAll(strings.NewReader(in))
		bytewise, retry, err := readAll(iotest.OneByteReader(strings.NewReader(in)))
		if !reflect.DeepEqual(whole, bytewise) || retry != wholeRetry || (err == nil) != (wholeErr == nil) {
			t.Fatalf("whole: %q %v %v; a byte at a time: %q %v %v", whole, wholeRetry, wholeErr, bytewise, retry, err)
		}
		if strings.ContainsRune(in, '\r') || wholeErr != nil {
			return
		}
		for _, eol := range []string{"\r\n", "\r"} {
			got, r, err := readAll(strings.NewReader(strings.ReplaceAll(in, "\n", eol)))
			if err != nil || !reflect.DeepEqual(got, whole) || r != wholeRetry {
				t.Fatalf("with %q line ends: %q %v %v; with LF: %q %v", eol, got, r, err, whole, wholeRetry)
			}
		}
	})
}

// A long line trickled a byte at a time costs linear time (see
// lineSplitter); this would take seconds if each read searched it again.
func BenchmarkSSEReader_TrickledLine(b *testing.B) {
	in := "data: " + strings.Repeat("x", maxSSELine-100) + "\n\n"
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if evs, _, err := readAll(iotest.OneByteReader(strings.NewReader(in))); err != nil || len(evs) != 1 {
			b.Fatal(evs, err)
		}
	}
}
