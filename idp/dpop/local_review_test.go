package dpop_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp/dpop"
)

// The promise across restarts and clock steps (found in review).

// TestInProcess_PromiseKeptAcrossRestartsWithClockBack: a restart with the
// clock stepped back does not save a promise below the loaded one, so the
// process after it still asks the first process's proofs for a nonce when
// its clock reaches their iat again.
func TestInProcess_PromiseKeptAcrossRestartsWithClockBack(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	h := sqliteHorizon(t)
	v1 := inProcess(t, h, c, 0)
	spent := f.proof(t, dpop.ProofRequest{})
	accept(t, v1, spent)
	// The host restarts with its clock an hour behind (RTC, VM restore);
	// the server restarts again (deploy, crash) while it still is.
	back := f.now.Add(-time.Hour)
	c.Set(back)
	_ = inProcess(t, h, c, 0)
	c.Set(back.Add(time.Second))
	v3 := inProcess(t, h, c, 0)
	// An hour on (real time), v3's clock reads the capture time again.
	for at := back.Add(time.Minute); at.Before(f.now); at = at.Add(time.Minute) {
		c.Set(at)
		renew(t, v3, c)
	}
	c.Set(f.now)
	renew(t, v3, c)
	if _, err := v3.Verify(t.Context(), []string{spent}, tokenCheck); err == nil {
		t.Fatal("a proof the first process accepted was accepted again after two restarts with the clock stepped back")
	}
}

// gatedHorizon blocks the first Save after arm until release.
type gatedHorizon struct {
	dpop.Horizon
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (h *gatedHorizon) Save(ctx context.Context, t time.Time) error {
	if h.armed.CompareAndSwap(true, false) {
		close(h.entered)
		<-h.release
		return h.Horizon.Save(context.Background(), t)
	}
	return h.Horizon.Save(ctx, t)
}

// TestInProcess_ConcurrentRenewalsNeverSaveAnOlderPromise: Run's slow
// renewal and a request's renewal (after the clock jumped past the
// promise, e.g. a VM resumed) are taken one at a time, so the saved
// promise is never older than the one proofs were accepted under, and
// after a crash the next process does not accept those proofs again.
func TestInProcess_ConcurrentRenewalsNeverSaveAnOlderPromise(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	h := &gatedHorizon{Horizon: sqliteHorizon(t), entered: make(chan struct{}), release: make(chan struct{})}
	v1 := inProcess(t, h, c, 0)
	start := f.now
	c.Set(start.Add(6 * time.Second)) // half the lease spent: Run renews
	h.armed.Store(true)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { v1.Run(ctx, nil); close(done) }()
	<-h.entered // Run's Save of start+16s is slow (SQLite busy, fsync)
	go func() {
		// The request's own renewal waits for it (renewals are taken one
		// at a time), so the slow save must end for the request to.
		time.Sleep(100 * time.Millisecond)
		close(h.release)
	}()

	c.Set(start.Add(time.Hour)) // the clock jumps
	f.now = c.Now()
	spent := f.proof(t, dpop.ProofRequest{})
	accept(t, v1, spent)
	cancel()
	<-done

	// Crash; restart a second later.
	c.Set(f.now.Add(time.Second))
	v2 := inProcess(t, h, c, 0)
	_, err := v2.Verify(t.Context(), []string{spent}, tokenCheck)
	if err == nil {
		t.Fatal("a proof accepted under a promise that was overwritten by an older one was accepted again after a restart")
	}
	if !errors.Is(err, dpop.ErrUseNonce) {
		t.Logf("refused: %v", err)
	}
}

// TestInProcess_ClockBackIsAnOutageNotTheClients: when the clock steps back
// by more than MaxAge within one process (an NTP step), honest proofs made
// on the corrected clock are refused as the server's outage (503), not as
// invalid (the client's fault), until the clock catches up.
func TestInProcess_ClockBackIsAnOutageNotTheClients(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	v := inProcess(t, sqliteHorizon(t), c, 0)
	if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatal(err)
	}
	c.Set(f.now.Add(-5 * time.Minute))
	f.now = c.Now()
	_, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
	if errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("an honest fresh proof after the clock stepped back 5 min: %v (refused as the client's fault)", err)
	}
}
