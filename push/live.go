package push

import (
	"context"
	"sync"
	"time"
)

// Event is what a citizen's live stream carries about a message: what it
// is and what to fetch, never its text.
type Event struct {
	// Seq is a message's position in the outbox (push_messages.seq), 0
	// for a broadcast. It is global, so it never reaches the citizen: the
	// stream's ids are sealed cursors (see Cursor).
	Seq int64 `json:"-"`
	// BroadcastSeq is a broadcast's position among broadcasts, 0 for a
	// message. A broadcast's event goes to every replica once and each
	// stream keeps it when its citizen is in Province ("" for everyone).
	BroadcastSeq   int64     `json:"-"`
	Province       string    `json:"-"`
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

// BroadcastEventOf returns the live event of a broadcast: like a
// message's, it names what to fetch (GET /v1/notifications/{id}), never
// its text.
func BroadcastEventOf(b *Broadcast) Event {
	return Event{BroadcastSeq: b.LiveSeq, Province: b.Province, MessageID: b.ID, Kind: KindNotice, CreatedAt: b.CreatedAt}
}

// Publisher tells a citizen's live streams, on every replica, of an event.
type Publisher interface {
	Publish(ctx context.Context, citizenID string, e Event) error
	// PublishBroadcast tells every live stream, on every replica, of a
	// broadcast's event: one message per broadcast, not one per citizen.
	// Each stream decides whether its citizen is in the audience.
	PublishBroadcast(ctx context.Context, e Event) error
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
		s.send(e)
	}
	return nil
}

// PublishBroadcast delivers e to every subscriber in this process.
func (h *LocalHub) PublishBroadcast(_ context.Context, e Event) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, subs := range h.subs {
		for s := range subs {
			s.send(e)
		}
	}
	return nil
}

// send hands e to s or, when s is too far behind, ends it so that it
// reconnects and catches up. h.mu is held.
func (s *localSub) send(e Event) {
	if s.closed {
		return
	}
	select {
	case s.ch <- e:
	default:
		s.closed = true
		close(s.ch)
	}
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
