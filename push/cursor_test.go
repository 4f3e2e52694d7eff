package push_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/push"
)

func sealer(tb testing.TB, fill byte) *push.CursorSealer {
	tb.Helper()
	s, err := push.NewCursorSealer(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestCursor_SealedForOneCitizen(t *testing.T) {
	s := sealer(t, 1)
	c := push.Cursor{Msg: 1234567, Brd: 42}
	id := s.Seal("alice", c)
	if strings.Contains(id, "1234567") || strings.Contains(id, "42") {
		t.Errorf("id %q shows a position", id)
	}
	if again := s.Seal("alice", c); again == id {
		t.Error("two ids of one position are equal: they link")
	}
	got, legacy, err := s.Open("alice", id)
	if err != nil || legacy || got != c {
		t.Fatalf("Open = %+v, %v, %v; want %+v", got, legacy, err, c)
	}
	for _, tc := range []struct{ name, citizen, id string }{
		{"another citizen's", "bob", id},
		{"another key's", "alice", sealer(t, 2).Seal("alice", c)},
		{"one character changed", "alice", id[:len(id)-1] + map[bool]string{true: "A", false: "B"}[id[len(id)-1] != 'A']},
		{"truncated", "alice", id[:len(id)-4]},
		{"garbage", "alice", "yesterday"},
		{"negative", "alice", "-5"},
		{"plus sign", "alice", "+5"},
		{"prefix only", "alice", "c1."},
		{"too long", "alice", "c1." + strings.Repeat("A", push.MaxCursorLen)},
	} {
		if got, _, err := s.Open(tc.citizen, tc.id); !errors.Is(err, push.ErrBadCursor) {
			t.Errorf("%s: %+v, %v; want ErrBadCursor", tc.name, got, err)
		}
	}
	// An id from before ids were sealed: a bare outbox position.
	if got, legacy, err := s.Open("alice", "977"); err != nil || !legacy || got != (push.Cursor{Msg: 977}) {
		t.Errorf("legacy id: %+v, %v, %v", got, legacy, err)
	}
}

func TestCursor_After(t *testing.T) {
	c := push.Cursor{Msg: 10, Brd: 3}
	if got := c.After(push.Event{Seq: 7}); got != c {
		t.Errorf("an older message moved the cursor back: %+v", got)
	}
	if got := c.After(push.Event{Seq: 11}); got != (push.Cursor{Msg: 11, Brd: 3}) {
		t.Errorf("after message 11: %+v", got)
	}
	if got := c.After(push.Event{BroadcastSeq: 4}); got != (push.Cursor{Msg: 10, Brd: 4}) {
		t.Errorf("after broadcast 4: %+v", got)
	}
}

// FuzzCursorOpen: whatever a client sends as Last-Event-ID, Open either
// refuses it with ErrBadCursor or returns a position that seals back to
// itself, for this citizen only; it never panics.
func FuzzCursorOpen(f *testing.F) {
	s := sealer(f, 1)
	f.Add("alice", s.Seal("alice", push.Cursor{Msg: 5, Brd: 1}))
	f.Add("alice", "42")
	f.Add("bob", "c1.AAAA")
	f.Add("", "c1."+strings.Repeat("_", 80))
	f.Add("alice", "9223372036854775807")
	f.Fuzz(func(t *testing.T, citizen, id string) {
		c, legacy, err := s.Open(citizen, id)
		if err != nil {
			if !errors.Is(err, push.ErrBadCursor) {
				t.Fatalf("Open(%q): %v, want ErrBadCursor", id, err)
			}
			return
		}
		if c.Msg < 0 || c.Brd < 0 || (legacy && c.Brd != 0) {
			t.Fatalf("Open(%q) = %+v (legacy %v)", id, c, legacy)
		}
		back, _, err := s.Open(citizen, s.Seal(citizen, c))
		if err != nil || back != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, back, err)
		}
		if _, _, err := s.Open(citizen+"x", s.Seal(citizen, c)); !errors.Is(err, push.ErrBadCursor) {
			t.Fatalf("a cursor sealed for %q opened for another: %v", citizen, err)
		}
	})
}
