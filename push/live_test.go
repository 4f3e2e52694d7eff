package push_test

import (
	"testing"

	"github.com/onedoor/onedoor/push"
)

func TestLocalLimiter(t *testing.T) {
	var l push.LocalLimiter
	var releases []func()
	for i := range 2 {
		r, ok, err := l.Acquire(t.Context(), "alice", 2)
		if !ok || err != nil {
			t.Fatalf("slot %d: %v, %v", i+1, ok, err)
		}
		releases = append(releases, r)
	}
	if _, ok, _ := l.Acquire(t.Context(), "alice", 2); ok {
		t.Error("a third slot of 2")
	}
	if _, ok, _ := l.Acquire(t.Context(), "bob", 2); !ok {
		t.Error("another citizen was refused")
	}
	releases[0]()
	releases[0]() // frees one slot, not two
	if _, ok, _ := l.Acquire(t.Context(), "alice", 2); !ok {
		t.Error("a released slot was not freed")
	}
	if _, ok, _ := l.Acquire(t.Context(), "alice", 2); ok {
		t.Error("a double release freed two slots")
	}
}

// A broadcast reaches every stream of the process once; a citizen's
// event reaches the citizen's streams only.
func TestLocalHub_Broadcast(t *testing.T) {
	var h push.LocalHub
	a, endA, _ := h.Subscribe(t.Context(), "alice")
	b, endB, _ := h.Subscribe(t.Context(), "bob")
	defer endA()
	defer endB()
	_ = h.PublishBroadcast(t.Context(), push.Event{BroadcastSeq: 1, MessageID: "brd_1"})
	_ = h.Publish(t.Context(), "alice", push.Event{Seq: 5, MessageID: "ntf_5"})
	if e := <-a; e.MessageID != "brd_1" {
		t.Errorf("alice got %+v first", e)
	}
	if e := <-a; e.MessageID != "ntf_5" {
		t.Errorf("alice got %+v second", e)
	}
	if e := <-b; e.MessageID != "brd_1" {
		t.Errorf("bob got %+v", e)
	}
	select {
	case e := <-b:
		t.Errorf("bob got alice's %+v", e)
	default:
	}
}
