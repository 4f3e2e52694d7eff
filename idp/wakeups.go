package idp

import (
	"context"
	"sync"
)

// Wakeups tells waiters, on every replica, that something they wait on
// may have changed: a login request was decided. A wake-up carries no
// state; the waiter re-reads the store, so a lost or spurious wake-up
// costs a wait, never a wrong answer.
type Wakeups interface {
	// Publish wakes the topic's waiters on every replica.
	Publish(ctx context.Context, topic string) error
	// Subscribe returns a channel that receives a value (or is closed) when
	// topic is published after Subscribe returned, and a function that
	// ends the subscription. A closed channel means the subscription was
	// lost: re-read the store and stop waiting on it.
	Subscribe(ctx context.Context, topic string) (<-chan struct{}, func(), error)
}

// LocalWakeups are the Wakeups of one process: the embedded default.
type LocalWakeups struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

var _ Wakeups = (*LocalWakeups)(nil)

// Publish implements Wakeups; it never blocks on a waiter.
func (l *LocalWakeups) Publish(_ context.Context, topic string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for ch := range l.subs[topic] {
		select {
		case ch <- struct{}{}:
		default: // already woken
		}
	}
	return nil
}

// Subscribe implements Wakeups.
func (l *LocalWakeups) Subscribe(_ context.Context, topic string) (<-chan struct{}, func(), error) {
	ch := make(chan struct{}, 1)
	l.mu.Lock()
	if l.subs == nil {
		l.subs = map[string]map[chan struct{}]struct{}{}
	}
	if l.subs[topic] == nil {
		l.subs[topic] = map[chan struct{}]struct{}{}
	}
	l.subs[topic][ch] = struct{}{}
	l.mu.Unlock()
	return ch, sync.OnceFunc(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs[topic], ch)
		if len(l.subs[topic]) == 0 {
			delete(l.subs, topic)
		}
	}), nil
}

// Topics returns how many topics have waiters here (for tests and metrics).
func (l *LocalWakeups) Topics() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}
