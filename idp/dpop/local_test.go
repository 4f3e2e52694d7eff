package dpop_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
)

// clock is a settable time shared by a test and its verifiers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// inProcess starts an in-process verifier on h, as `onedoor serve` does on
// the embedded default; starting another on the same h is a restart.
func inProcess(t *testing.T, h dpop.Horizon, c *clock, most int) *dpop.Verifier {
	t.Helper()
	v, err := dpop.NewInProcess(t.Context(), dpop.Config{NonceKey: []byte("an in-process nonce key, 32 byte"), Now: c.Now, MaxInProcess: most}, h)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// accept verifies proof with v, failing the test if it is refused.
func accept(t *testing.T, v *dpop.Verifier, proof string) {
	t.Helper()
	if _, err := v.Verify(t.Context(), []string{proof}, tokenCheck); err != nil {
		t.Fatal(err)
	}
}

func sqliteHorizon(t *testing.T) dpop.EphemeralHorizon {
	return dpop.EphemeralHorizon{Store: sqliteEph(t), Key: "dpop:horizon"}
}

// TestInProcess_ReplayRefused: a proof is accepted once; the same proof
// again, even from 64 requests at once, is refused as replayed, and only
// one of those is accepted.
func TestInProcess_ReplayRefused(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	v := inProcess(t, sqliteHorizon(t), c, 0)
	p := f.proof(t, dpop.ProofRequest{})
	accept(t, v, p)
	_, err := v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "replayed proof")

	fresh := f.proof(t, dpop.ProofRequest{})
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), []string{fresh}, tokenCheck)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, dpop.ErrInvalidProof):
				replayed.Add(1)
			default:
				t.Errorf("concurrent spend: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 63 {
		t.Fatalf("one proof sent 64 times at once: %d accepted, %d refused", ok.Load(), replayed.Load())
	}
}

// TestInProcess_KeptForItsWholeWindow: a spent jti is remembered while its
// proof could be accepted, across the set's turns, even for a proof issued
// Skew ahead of the clock.
func TestInProcess_KeptForItsWholeWindow(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	v := inProcess(t, sqliteHorizon(t), c, 0)
	// Spent 80 s after the start, so the set turns (every 90 s) while they
	// are still acceptable.
	start := f.now.Add(80 * time.Second)
	c.Set(start)
	f.now = start
	renew(t, v, c)
	ahead := f.proof(t, dpop.ProofRequest{Now: start.Add(29 * time.Second)})
	now := f.proof(t, dpop.ProofRequest{})
	for _, p := range []string{ahead, now} {
		accept(t, v, p)
	}
	// Walk the clock to the end of the ahead proof's window, spending
	// proofs on the way, with the lease renewed as Run would.
	for at := 5 * time.Second; at <= 89*time.Second; at += 5 * time.Second {
		c.Set(start.Add(at))
		f.now = c.Now()
		renew(t, v, c)
		if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
			t.Fatalf("fresh proof at +%v: %v", at, err)
		}
		_, err := v.Verify(t.Context(), []string{now}, tokenCheck)
		wantInvalid(t, err, "proof issued at the start, replayed")
		_, err = v.Verify(t.Context(), []string{ahead}, tokenCheck)
		wantInvalid(t, err, "proof issued ahead, replayed within its window")
	}
}

// renew lets the verifier's Run save its promise for the clock's time.
func renew(t *testing.T, v *dpop.Verifier, c *clock) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { v.Run(ctx, func(err error) { t.Error(err) }); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for v.Due() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	if v.Due() {
		t.Fatalf("the promise was not renewed for %v", c.Now())
	}
}

// TestInProcess_RestartAsksForNonce: after a restart (a crash: nothing was
// flushed), a proof the earlier process accepted is not accepted again;
// every proof that could have reached the earlier process needs a nonce of
// the new one, and gets it with one retry; the earlier process's nonces
// are not taken. Proofs issued after the earlier process's promise need no
// nonce.
func TestInProcess_RestartAsksForNonce(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	h := sqliteHorizon(t)
	v1 := inProcess(t, h, c, 0)
	spent := f.proof(t, dpop.ProofRequest{})
	accept(t, v1, spent)
	oldNonce := v1.Nonce()

	c.Set(f.now.Add(2 * time.Second))
	f.now = c.Now()
	v2 := inProcess(t, h, c, 0)
	if _, err := v2.Verify(t.Context(), []string{spent}, tokenCheck); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("a proof the earlier process accepted, after a restart: got %v, want use_dpop_nonce", err)
	}
	if _, err := v2.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("a fresh proof without a nonce right after the restart: got %v, want use_dpop_nonce", err)
	}
	if _, err := v2.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Nonce: oldNonce})}, tokenCheck); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("the earlier process's nonce: got %v, want use_dpop_nonce", err)
	}
	withNonce := f.proof(t, dpop.ProofRequest{Nonce: v2.Nonce()})
	if _, err := v2.Verify(t.Context(), []string{withNonce}, tokenCheck); err != nil {
		t.Fatalf("a proof with the new nonce: %v", err)
	}
	_, err := v2.Verify(t.Context(), []string{withNonce}, tokenCheck)
	wantInvalid(t, err, "the proof with the new nonce, replayed")

	// Past the earlier promise plus Skew, no proof could have reached it.
	c.Set(f.now.Add(dpop.Lease + 31*time.Second))
	f.now = c.Now()
	renew(t, v2, c)
	if _, err := v2.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatalf("a proof issued after the earlier promise: %v", err)
	}

	// A platform started afresh (nothing saved) asks for no nonce.
	fresh := inProcess(t, sqliteHorizon(t), c, 0)
	if _, err := fresh.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatalf("first proof on a new platform: %v", err)
	}
}

// TestInProcess_RestartWithClockBack: the clock stepped back across the
// restart does not let a proof the earlier process accepted through.
func TestInProcess_RestartWithClockBack(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	h := sqliteHorizon(t)
	v1 := inProcess(t, h, c, 0)
	spent := f.proof(t, dpop.ProofRequest{})
	accept(t, v1, spent)
	c.Set(f.now.Add(-25 * time.Second))
	v2 := inProcess(t, h, c, 0)
	if _, err := v2.Verify(t.Context(), []string{spent}, tokenCheck); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("replay after a restart with the clock 25 s back: got %v, want use_dpop_nonce", err)
	}
}

// TestInProcess_ClockStepsBack: a proof that expired does not become fresh
// when the clock steps back, though its jti has been forgotten: it is
// refused as the server's fault (503), not the client's.
func TestInProcess_ClockStepsBack(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	v := inProcess(t, sqliteHorizon(t), c, 0)
	start := f.now
	spent := f.proof(t, dpop.ProofRequest{})
	accept(t, v, spent)
	// Three minutes on, the set has turned twice: the jti is gone.
	for range 3 {
		c.Set(c.Now().Add(time.Minute))
		f.now = c.Now()
		renew(t, v, c)
		if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(start.Add(time.Second))
	_, err := v.Verify(t.Context(), []string{spent}, tokenCheck)
	if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("an old proof after the clock stepped back: got %v, want an outage naming the clock", err)
	}
}

// TestInProcess_LapsedPromise: when the promise cannot be saved, proofs
// are refused as an outage (503), never accepted beyond what was saved and
// never called invalid; once it can be saved again, they pass.
func TestInProcess_LapsedPromise(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	h := &flakyHorizon{Horizon: sqliteHorizon(t)}
	v := inProcess(t, h, c, 0)
	h.fail.Store(true)
	c.Set(f.now.Add(dpop.Lease))
	f.now = c.Now()
	_, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
	if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("promise lapsed: got %v, want an outage", err)
	}
	h.fail.Store(false)
	renew(t, v, c)
	if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatalf("after the promise was saved again: %v", err)
	}
}

// TestInProcess_Full: past its bound the set refuses proofs as an outage,
// and takes them again once old entries have expired.
func TestInProcess_Full(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	v := inProcess(t, sqliteHorizon(t), c, 4)
	for i := range 4 {
		if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
			t.Fatalf("proof %d: %v", i, err)
		}
	}
	_, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
	if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("set full: got %v, want an outage", err)
	}
	for range 2 {
		c.Set(c.Now().Add(91 * time.Second))
		f.now = c.Now()
		renew(t, v, c)
		_, _ = v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
	}
	if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatalf("after old entries expired: %v", err)
	}
}

// TestInProcess_UnvouchedTakeHalf: proofs spent before anything of their
// request was vouched for are at most half of the set, whatever the other
// proofs take; past that they are refused as an outage while the other
// proofs are still taken.
func TestInProcess_UnvouchedTakeHalf(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	v := inProcess(t, sqliteHorizon(t), c, 8)
	unvouched := tokenCheck
	unvouched.Unvouched = true
	spend := func(what string, n int, check dpop.Check) {
		t.Helper()
		for i := range n {
			if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, check); err != nil {
				t.Fatalf("%s proof %d: %v", what, i, err)
			}
		}
	}
	spend("vouched", 2, tokenCheck)
	spend("unvouched", 4, unvouched)
	_, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, unvouched)
	if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("half the set unvouched: got %v, want an outage", err)
	}
	spend("vouched past the unvouched half", 2, tokenCheck)
}

type flakyHorizon struct {
	dpop.Horizon
	fail atomic.Bool
}

func (h *flakyHorizon) Save(ctx context.Context, t time.Time) error {
	if h.fail.Load() {
		return idp.ErrUnavailable
	}
	return h.Horizon.Save(ctx, t)
}

// TestInProcess_ClockJumpsForward: a clock that jumps past the promise
// between two renewals costs the next request one save, not a 503.
func TestInProcess_ClockJumpsForward(t *testing.T) {
	f := newFixture(t, nil)
	c := &clock{t: f.now}
	v := inProcess(t, sqliteHorizon(t), c, 0)
	c.Set(f.now.Add(time.Hour))
	f.now = c.Now()
	if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatalf("a proof after the clock jumped an hour: %v", err)
	}
}
