package push

import (
	"context"
	"log/slog"
	"sync"
)

// Sink is a provider that delivers nowhere: it logs each notification's
// message id and kind (never the token or the text) and keeps the last
// few, so the demo shows pushes without FCM or APNs credentials.
type Sink struct {
	For    Platform
	Logger *slog.Logger

	mu     sync.Mutex
	recent []Notification
}

// sinkKeep is how many notifications a Sink remembers.
const sinkKeep = 100

// Platform implements Provider.
func (s *Sink) Platform() Platform { return s.For }

// Send implements Provider.
func (s *Sink) Send(_ context.Context, _ Target, n *Notification) error {
	if s.Logger != nil {
		s.Logger.Info("push (demo sink: not sent)", "platform", string(s.For), "message", n.MessageID, "kind", n.Kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recent) == sinkKeep {
		s.recent = s.recent[1:]
	}
	s.recent = append(s.recent, *n)
	return nil
}

// Recent returns the notifications the sink took, oldest first.
func (s *Sink) Recent() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.recent...)
}
