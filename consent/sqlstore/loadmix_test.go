package sqlstore_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// mixedLoad runs named loops of store operations side by side for a while
// (the concurrency tests: what is asserted is that nothing failed, then
// that the result verifies). allowed tells the refusals a loop may meet.
type mixedLoad struct {
	run     context.Context
	allowed func(error) bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	errs    []error
	n       map[string]int
}

func newMixedLoad(t *testing.T, d time.Duration, allowed func(error) bool) *mixedLoad {
	run, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return &mixedLoad{run: run, allowed: allowed, n: map[string]int{}}
}

// loop calls fn with 0, 1, 2, ... until the load's time is up.
func (l *mixedLoad) loop(name string, fn func(i int) error) {
	l.wg.Go(func() {
		for i := 0; l.run.Err() == nil; i++ {
			err := fn(i)
			if err != nil && l.allowed(err) {
				err = nil
			}
			l.mu.Lock()
			l.n[name]++
			if err != nil && l.run.Err() == nil {
				l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
			}
			l.mu.Unlock()
		}
	})
}

// verify waits for the loops, reports what failed, commits what moved and
// checks the whole log verifies.
func (l *mixedLoad) verify(t *testing.T, cp *consent.Checkpointer, s consent.AuditStore) {
	t.Helper()
	l.wg.Wait()
	for _, err := range l.errs {
		t.Error(err)
	}
	t.Logf("operations: %v", l.n)
	if _, err := cp.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := consent.Verify(t.Context(), s, cp.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Intact() {
		t.Fatalf("after the load: %+v", r.Broken)
	}
}
