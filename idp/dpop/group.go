package dpop

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// groupSpend spends jtis in the replay store in batches (group commit):
// while one write runs, the proofs that arrive wait and go together in the
// next one. Each jti is stored before its proof is accepted, as with one
// Create per proof, so a replay is refused on every replica and after a
// restart or crash; the store just sees one transaction (or one Redis
// pipeline) per batch instead of one per request.
type groupSpend struct {
	store   Replay
	ttl     time.Duration
	timeout time.Duration

	mu      sync.Mutex
	pending []*spendWait
	writing bool
}

type spendWait struct {
	key  string
	err  error
	done chan struct{}
}

// maxBatch bounds one write; a larger backlog goes in several.
const maxBatch = 2000

// spend stores key, or returns idp.ErrConflict if it is already there.
func (g *groupSpend) spend(ctx context.Context, key string) error {
	w := &spendWait{key: key, done: make(chan struct{})}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	lead := !g.writing
	g.writing = true
	g.mu.Unlock()
	if lead {
		// This request writes the batch it is in; whoever arrived during
		// that write is written by a goroutine, so no request leads more
		// than one batch.
		if g.round(ctx) {
			go g.drain(context.WithoutCancel(ctx))
		}
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		// The jti may still be stored: a proof given up on is spent,
		// which costs its client nothing it could use.
		return ctx.Err()
	}
}

func (g *groupSpend) drain(ctx context.Context) {
	for g.round(ctx) {
	}
}

// round writes up to maxBatch pending keys and reports whether more are
// pending; when none are, it gives up the writer's role.
func (g *groupSpend) round(ctx context.Context) bool {
	g.mu.Lock()
	n := min(len(g.pending), maxBatch)
	batch := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.mu.Unlock()
	if n > 0 {
		g.write(ctx, batch)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		g.pending = nil
		g.writing = false
		return false
	}
	return true
}

// write stores one batch and answers its waiters. The write does not end
// with the leading request: other proofs ride on it.
func (g *groupSpend) write(ctx context.Context, batch []*spendWait) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.timeout)
	defer cancel()
	keys := make([]string, len(batch))
	for i, w := range batch {
		keys[i] = w.key
	}
	created, err := g.store.CreateMany(ctx, keys, []byte{1}, g.ttl)
	if err == nil && len(created) != len(keys) {
		err = fmt.Errorf("dpop replay check: %d answers for %d jtis", len(created), len(keys))
	}
	for i, w := range batch {
		switch {
		case err != nil:
			w.err = err
		case !created[i]:
			w.err = idp.ErrConflict
		}
		close(w.done)
	}
}
