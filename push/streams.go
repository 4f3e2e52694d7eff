package push

import (
	"context"
	"sync"
)

// DefaultMaxStreams is how many live streams a citizen may hold at once
// (on every replica together, when the limiter is shared).
const DefaultMaxStreams = 5

// StreamLimiter bounds how many live streams one citizen holds. The
// embedded default counts in the process (LocalLimiter); at scale the
// Redis limiter counts across replicas with leases that a dead replica
// cannot hold for ever.
type StreamLimiter interface {
	// Acquire takes one of the citizen's limit slots. ok is false when
	// all are held; err is set when the limiter cannot tell (its store is
	// down). release frees the slot; it may be called more than once.
	Acquire(ctx context.Context, citizenID string, limit int) (release func(), ok bool, err error)
}

// LocalLimiter is the StreamLimiter of one process.
type LocalLimiter struct {
	mu sync.Mutex
	n  map[string]int
}

var _ StreamLimiter = (*LocalLimiter)(nil)

// Acquire implements StreamLimiter.
func (l *LocalLimiter) Acquire(_ context.Context, citizenID string, limit int) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	if l.n[citizenID] >= limit {
		return nil, false, nil
	}
	l.n[citizenID]++
	return sync.OnceFunc(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.n[citizenID]--; l.n[citizenID] <= 0 {
			delete(l.n, citizenID)
		}
	}), true, nil
}
