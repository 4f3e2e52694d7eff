package redis

import (
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
)

func TestWire_KeepsSeq(t *testing.T) {
	want := push.Event{Seq: 42, MessageID: "m", Kind: push.KindNotice, CreatedAt: time.Unix(1, 5).UTC()}
	b, err := encode(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// FuzzDecode: a payload from Redis never panics the receive loop, and what
// decodes survives a round trip unchanged.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"seq":3,"message_id":"m","kind":"result","created_at":"2026-03-01T12:00:00Z"}`))
	f.Add([]byte(`{"seq":-1,"Seq":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decode(b)
		if err != nil {
			return
		}
		again, err := encode(e)
		if err != nil {
			return // a time JSON cannot carry, as a year past 9999
		}
		got, err := decode(again)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", again, err)
		}
		if !got.CreatedAt.Equal(e.CreatedAt) {
			t.Fatalf("CreatedAt %v after a round trip, want %v", got.CreatedAt, e.CreatedAt)
		}
		got.CreatedAt = e.CreatedAt
		if got != e {
			t.Fatalf("got %+v after a round trip, want %+v", got, e)
		}
	})
}
