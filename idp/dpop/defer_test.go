package dpop_test

import (
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
)

var deferCheck = dpop.Check{Method: "POST", URL: tokenURL, Defer: true}

// deferBackends are the verifiers the deferred spend runs on: the embedded
// default (jtis in process), a shared SQLite store and Redis.
func deferBackends() map[string]func(t *testing.T, f *fixture) *dpop.Verifier {
	shared := func(eph func(testing.TB) idp.Ephemeral) func(t *testing.T, f *fixture) *dpop.Verifier {
		return func(t *testing.T, f *fixture) *dpop.Verifier {
			f.eph = eph(t)
			return f.verifier()
		}
	}
	return map[string]func(t *testing.T, f *fixture) *dpop.Verifier{
		"inprocess": func(t *testing.T, f *fixture) *dpop.Verifier {
			c := &clock{t: f.now}
			return inProcess(t, sqliteHorizon(t), c, 4)
		},
		"sqlite": shared(sqliteEph),
		"redis":  shared(redisEph),
	}
}

// TestVerify_DeferSpendsNothing: proofs verified under Defer and never
// spent (a stranger's, refused at client authentication) leave the replay
// store as it was: far more of them than the in-process bound (4 here) do
// not fill it, and each is still accepted afterwards.
func TestVerify_DeferSpendsNothing(t *testing.T) {
	for name, backend := range deferBackends() {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			v := backend(t, f)
			p := f.proof(t, dpop.ProofRequest{})
			for i := range 16 {
				if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, deferCheck); err != nil {
					t.Fatalf("deferred proof %d: %v", i, err)
				}
				// The same proof, verified again and again, is never spent.
				if _, err := v.Verify(t.Context(), []string{p}, deferCheck); err != nil {
					t.Fatalf("deferred proof verified again (%d): %v", i, err)
				}
			}
			if _, err := v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
				t.Fatalf("the proof, spent at last: %v", err)
			}
			for i := range 3 {
				if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
					t.Fatalf("a fresh proof after the deferred ones (%d): %v", i, err)
				}
			}
		})
	}
}

// TestSpend: Spend spends a deferred proof once; spending it again, or any
// copy of it verified under Defer, is a replay, and so is Verify's own
// spend of it. A proof Verify spent itself is not spent again.
func TestSpend(t *testing.T) {
	for name, backend := range deferBackends() {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			v := backend(t, f)
			raw := f.proof(t, dpop.ProofRequest{})
			p1, err := v.Verify(t.Context(), []string{raw}, deferCheck)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := v.Verify(t.Context(), []string{raw}, deferCheck)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Spend(t.Context(), p1); err != nil {
				t.Fatalf("first spend: %v", err)
			}
			err = v.Spend(t.Context(), p1)
			wantInvalid(t, err, "the same proof spent twice")
			err = v.Spend(t.Context(), p2)
			wantInvalid(t, err, "a second request with the proof")
			_, err = v.Verify(t.Context(), []string{raw}, tokenCheck)
			wantInvalid(t, err, "the spent proof at Verify")

			spent, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Spend(t.Context(), spent); err != nil {
				t.Errorf("Spend of a proof Verify spent: %v, want nil (not spent again)", err)
			}
			if err := v.Spend(t.Context(), nil); err != nil {
				t.Errorf("Spend(nil): %v", err)
			}
		})
	}
}

// TestSpend_Concurrent: of many requests holding one deferred proof, exactly
// one spends it.
func TestSpend_Concurrent(t *testing.T) {
	for name, backend := range deferBackends() {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			v := backend(t, f)
			raw := f.proof(t, dpop.ProofRequest{})
			errs := make(chan error, 32)
			for range 32 {
				go func() {
					p, err := v.Verify(t.Context(), []string{raw}, deferCheck)
					if err == nil {
						err = v.Spend(t.Context(), p)
					}
					errs <- err
				}()
			}
			ok := 0
			for range 32 {
				switch err := <-errs; {
				case err == nil:
					ok++
				case !errors.Is(err, dpop.ErrInvalidProof):
					t.Errorf("got %v, want a replay refusal", err)
				}
			}
			if ok != 1 {
				t.Errorf("the proof was spent %d times, want 1", ok)
			}
		})
	}
}

// TestSpend_AgedOut: a proof that left the iat window between Verify and
// Spend is refused, since its jti may no longer be remembered.
func TestSpend_AgedOut(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	p, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Now: f.now.Add(-59 * time.Second)})}, deferCheck)
	if err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(2 * time.Second)
	wantInvalid(t, f.v.Spend(t.Context(), p), "spent after it aged out")
}

// TestSpend_StoreDown: a store failure at Spend is an outage, never the
// client's fault.
func TestSpend_StoreDown(t *testing.T) {
	f := newFixture(t, nil)
	v := dpop.New(dpop.Config{Now: func() time.Time { return f.now }}, failingReplay{})
	p, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, deferCheck)
	if err != nil {
		t.Fatalf("Verify under Defer touches no store: %v", err)
	}
	if err := v.Spend(t.Context(), p); !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
		t.Errorf("store down: got %v, want an outage", err)
	}
}

// TestVerify_DeferKeepsNonce: a proof without a required nonce is refused
// with ErrUseNonce under Defer as without it.
func TestVerify_DeferKeepsNonce(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	c := deferCheck
	c.RequireNonce = true
	if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, c); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("no nonce: got %v, want ErrUseNonce", err)
	}
	p, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Nonce: f.v.Nonce()})}, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.v.Spend(t.Context(), p); err != nil {
		t.Fatal(err)
	}
}
