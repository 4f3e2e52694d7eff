package dpop

import (
	"context"
	"fmt"
	"runtime"
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
	ctx  context.Context
	key  string
	err  error
	done chan struct{}
}

// maxBatch bounds one write; a larger backlog goes in several.
// maxPending bounds the proofs waiting while the store is slow or down:
// beyond it a proof is refused at once as an outage rather than queued.
const (
	maxBatch   = 2000
	maxPending = 20000
)

// errBacklog is the refusal of a proof that would wait behind maxPending.
var errBacklog = fmt.Errorf("%d proofs already wait for the store: %w", maxPending, idp.ErrUnavailable)

// spend stores key, or returns idp.ErrConflict if it is already there.
func (g *groupSpend) spend(ctx context.Context, key string) error {
	w := &spendWait{ctx: ctx, key: key, done: make(chan struct{})}
	g.mu.Lock()
	if len(g.pending) >= maxPending {
		g.dropGivenUp()
	}
	if len(g.pending) >= maxPending {
		g.mu.Unlock()
		return errBacklog
	}
	g.pending = append(g.pending, w)
	lead := !g.writing
	g.writing = true
	g.mu.Unlock()
	if lead {
		// This request writes the batch it is in; whoever arrived during
		// that write is written by a goroutine, so no request leads more
		// than one batch. It yields first: on one core the requests that
		// are ready get to join it, instead of each writing its own.
		runtime.Gosched()
		if g.round() {
			go g.drain()
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

func (g *groupSpend) drain() {
	for g.round() {
	}
}

// dropGivenUp answers the waiters whose callers gave up (g.mu held).
func (g *groupSpend) dropGivenUp() {
	kept := g.pending[:0]
	for _, w := range g.pending {
		if w.ctx.Err() == nil {
			kept = append(kept, w)
			continue
		}
		w.err = w.ctx.Err() // never nil: a proof not stored is not accepted
		close(w.done)
	}
	clear(g.pending[len(kept):])
	g.pending = kept
}

// round writes up to maxBatch pending keys and reports whether more are
// pending; when none are, it gives up the writer's role. Waiters that
// gave up are dropped unwritten: their proofs were never accepted.
func (g *groupSpend) round() bool {
	g.mu.Lock()
	var batch []*spendWait
	i := 0
	for ; i < len(g.pending) && len(batch) < maxBatch; i++ {
		if w := g.pending[i]; w.ctx.Err() == nil {
			batch = append(batch, w)
		} else {
			w.err = w.ctx.Err() // never nil: a proof not stored is not accepted
			close(w.done)
		}
	}
	// A copy, so the written waiters are not kept by the backing array.
	g.pending = append([]*spendWait(nil), g.pending[i:]...)
	g.mu.Unlock()
	if len(batch) > 0 {
		g.write(batch)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		g.writing = false
		return false
	}
	return true
}

// write stores one batch and answers every waiter of it, whatever the
// store does: an error or a panic in it is an outage for the batch, never
// a proof left waiting or a writer's role never given back.
func (g *groupSpend) write(batch []*spendWait) {
	var (
		created []bool
		err     error
	)
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("dpop replay check: the store panicked: %v: %w", p, idp.ErrUnavailable)
		}
		if err == nil && len(created) != len(batch) {
			err = fmt.Errorf("dpop replay check: %d answers for %d jtis: %w", len(created), len(batch), idp.ErrUnavailable)
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
	}()
	// Not any one request's context: the write serves the whole batch.
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	defer cancel()
	keys := make([]string, len(batch))
	for i, w := range batch {
		keys[i] = w.key
	}
	created, err = g.store.CreateMany(ctx, keys, g.ttl)
}
