package push

import (
	"context"
	"sync"
	"time"
)

// Event is what a citizen's live stream carries about a message: what it
// is and what to fetch, never its text.
type Event struct {
	Seq            int64     `json:"-"`
	MessageID      string    `json:"message_id"`
	Kind           Kind      `json:"kind"`
	ServiceCode    string    `json:"service_code,omitempty"`
	ApplicationID  string    `json:"application_id,omitempty"`
	InboxMessageID string    `json:"inbox_message_id,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// EventOf returns the live event of m.
func EventOf(m *Message) Event {
	return Event{Seq: m.Seq, MessageID: m.ID, Kind: m.Kind, ServiceCode: m.ServiceCode,
		ApplicationID: m.ApplicationID, InboxMessageID: m.InboxMessageID, CreatedAt: m.CreatedAt}
}

// Publisher tells a citizen's live streams, on every replica, of an event.
type Publisher interface {
	Publish(ctx context.Context, citizenID string, e Event) error
}

// Hub is a Publisher whose streams subscribe per citizen.
type Hub interface {
	Publisher
	// Subscribe returns a channel of the citizen's events and a function
	// that ends the subscription. The channel is closed when the
	// subscriber falls too far behind (it then catches up from the store)
	// or the subscription ends.
	Subscribe(ctx context.Context, citizenID string) (<-chan Event, func(), error)
}

// LocalHub is the Hub of one process: the embedded default. At scale the
// Redis hub fans events out across replicas and delivers them to a
// LocalHub on each.
type LocalHub struct {
	mu   sync.Mutex
	subs map[string]map[*localSub]struct{}
	// OnFirst and OnLast, when set, are called (under no lock) when a
	// citizen gets a first subscriber on this process or loses the last.
	OnFirst, OnLast func(citizenID string)
}

type localSub struct {
	ch     chan Event
	closed bool
}

// SubscriberBuffer is how many events a slow stream may fall behind before
// it is closed to catch up from the store.
const SubscriberBuffer = 64

// Publish delivers e to the citizen's subscribers in this process.
func (h *LocalHub) Publish(_ context.Context, citizenID string, e Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[citizenID] {
		if s.closed {
			continue
		}
		select {
		case s.ch <- e:
		default: // too slow: end the stream; it reconnects and catches up
			s.closed = true
			close(s.ch)
		}
	}
	return nil
}

// Subscribe implements Hub.
func (h *LocalHub) Subscribe(_ context.Context, citizenID string) (<-chan Event, func(), error) {
	s := &localSub{ch: make(chan Event, SubscriberBuffer)}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[string]map[*localSub]struct{}{}
	}
	first := len(h.subs[citizenID]) == 0
	if first {
		h.subs[citizenID] = map[*localSub]struct{}{}
	}
	h.subs[citizenID][s] = struct{}{}
	h.mu.Unlock()
	if first && h.OnFirst != nil {
		h.OnFirst(citizenID)
	}
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs[citizenID], s)
			last := len(h.subs[citizenID]) == 0
			if last {
				delete(h.subs, citizenID)
			}
			if !s.closed {
				s.closed = true
				close(s.ch)
			}
			h.mu.Unlock()
			if last && h.OnLast != nil {
				h.OnLast(citizenID)
			}
		})
	}, nil
}

// Subscribers returns how many streams the citizen has open here.
func (h *LocalHub) Subscribers(citizenID string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[citizenID])
}
