package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Bounds on what a stream may make the app hold: one line, and one
// event's data (the API's events are a few hundred bytes).
const (
	maxSSELine = 64 << 10
	maxSSEData = 256 << 10
	// maxSSERetry bounds a retry field before it becomes a Duration; the
	// app waits far less (maxBackoff).
	maxSSERetry = 24 * time.Hour
)

// sseEvent is one dispatched server-sent event.
type sseEvent struct {
	Type string // "message" when the event named none
	Data string // the data lines joined by "\n"
	ID   string // the last event ID as of this event (it carries over)
}

// sseReader reads a text/event-stream as the HTML standard's
// EventSource does ("Interpreting an event stream"): lines end in CR, LF
// or CRLF; a line that starts with a colon is a comment; an event is
// dispatched at a blank line, and only if it had data; a partial event at
// the end of the stream is dropped.
type sseReader struct {
	sc    *bufio.Scanner
	first bool // a byte order mark may start the first line alone

	// lastID is the last event ID buffer: an id field sets it, and it
	// stays for the events after.
	lastID string
	// retry is the reconnection time the last retry field set; 0 until one
	// does.
	retry time.Duration
}

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxSSELine)
	sc.Split((&lineSplitter{}).split)
	return &sseReader{sc: sc, first: true}
}

// errSSEData is an event whose data exceeds maxSSEData.
var errSSEData = fmt.Errorf("event stream: an event over %d bytes", maxSSEData)

// Next returns the next event; io.EOF when the stream ended.
func (r *sseReader) Next() (sseEvent, error) {
	var typ string
	var data strings.Builder
	hasData := false
	for r.sc.Scan() {
		line := r.sc.Text()
		if r.first {
			r.first = false
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" {
			if !hasData {
				typ = "" // nothing to dispatch; the id, if any, stays
				continue
			}
			if typ == "" {
				typ = "message"
			}
			return sseEvent{Type: typ, Data: data.String(), ID: r.lastID}, nil
		}
		if line[0] == ':' {
			continue // a comment: the API's heartbeat
		}
		field, value, found := strings.Cut(line, ":")
		if found {
			value = strings.TrimPrefix(value, " ")
		}
		switch field {
		case "event":
			typ = value
		case "data":
			if data.Len()+len(value)+1 > maxSSEData {
				return sseEvent{}, errSSEData
			}
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.lastID = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				ms, err := strconv.ParseInt(value, 10, 64)
				if err != nil || ms > maxSSERetry.Milliseconds() {
					ms = maxSSERetry.Milliseconds() // all digits: only too large
				}
				r.retry = time.Duration(ms) * time.Millisecond
			}
		}
		// Any other field is ignored.
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return sseEvent{}, fmt.Errorf("event stream: a line over %d bytes", maxSSELine)
		}
		return sseEvent{}, err
	}
	return sseEvent{}, io.EOF
}

// lineSplitter is bufio.ScanLines for event streams: a line ends in CRLF,
// LF or a lone CR, and the terminator is not part of the line. It
// remembers how far it searched, so a long line read a few bytes at a time
// (a slow or hostile server) costs linear time, not quadratic.
type lineSplitter struct{ searched int }

func (l *lineSplitter) split(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data[l.searched:], "\r\n")
	if i >= 0 {
		i += l.searched
	}
	switch {
	case i < 0 && atEOF && len(data) > 0:
		advance, token = len(data), data // the last line, unterminated
	case i < 0:
		l.searched = len(data)
		return 0, nil, nil
	case data[i] == '\n':
		advance, token = i+1, data[:i]
	case i+1 < len(data) && data[i+1] == '\n':
		advance, token = i+2, data[:i]
	case i+1 < len(data) || atEOF:
		advance, token = i+1, data[:i]
	default:
		l.searched = i // a CR at the end of what was read: is a LF next?
		return 0, nil, nil
	}
	l.searched = 0
	return advance, token, nil
}
