package consenttest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// WitnessStores is what RunWitness tests.
type WitnessStores interface {
	consent.Store
	consent.WitnessStore
}

// RunWitness runs the witness cosigning tests: checkpoints sent to a
// witness (the in-repo double), cosignatures stored, served and verified,
// and a rewrite of history below a witnessed size found.
func RunWitness(t *testing.T, newStore func(t *testing.T) WitnessStores) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, newStore func(t *testing.T) WitnessStores)
	}{
		{"CosignsEachCheckpoint", witnessCosigns},
		{"ConflictRetriesFromWitnessSize", witnessConflict},
		{"FailureBacksOff", witnessBackoff},
		{"WitnessAheadByAnotherReplica", witnessAhead},
		{"RewriteBelowWitnessedSizeFound", witnessRewrite},
		{"QuorumSize", witnessQuorum},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore) })
	}
}

// clock is a settable time for the cosigner's backoff.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func commit(t *testing.T, cp *consent.Checkpointer) *consent.Checkpoint {
	t.Helper()
	c, err := cp.Commit(t.Context())
	if err != nil || c == nil {
		t.Fatalf("commit: %v, %v", c, err)
	}
	return c
}

func verifyWitnessed(t *testing.T, s WitnessStores, cp *consent.Checkpointer, ws []*consent.Witness, quorum int) *consent.Report {
	t.Helper()
	r, err := consent.Verify(t.Context(), s, cp.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Intact() {
		return r
	}
	if err := consent.VerifyWitnesses(t.Context(), s, ws, quorum, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func witnessCosigns(t *testing.T, newStore func(t *testing.T) WitnessStores) {
	s := newStore(t)
	signer, verifier := Keys(t, "a")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	w := NewWitness(t, "witness.example/a", verifier)
	cs := &consent.Cosigner{Store: s, Witnesses: []*consent.Witness{w.Consent}}
	if err := cs.Cosign(t.Context()); err != nil || w.Requests() != 0 {
		t.Fatalf("no checkpoint yet: %v, %d requests", err, w.Requests())
	}
	for round, citizens := range [][]string{{"cit_a", "cit_b"}, {"cit_c"}, {"cit_a", "cit_d", "cit_e"}} {
		for _, c := range citizens {
			appendN(t, s, c, 2)
		}
		c := commit(t, cp)
		if err := cs.Cosign(t.Context()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if w.Size() != c.Size {
			t.Fatalf("round %d: witness holds %d, want %d", round, w.Size(), c.Size)
		}
		got, n, err := consent.CosignedNote(t.Context(), s)
		if err != nil || got.Size != c.Size || !strings.HasPrefix(n, c.Note) || !strings.Contains(n[len(c.Note):], "— witness.example/a ") {
			t.Fatalf("round %d: cosigned note %q, %v", round, n, err)
		}
		// Nothing new: no request.
		before := w.Requests()
		if err := cs.Cosign(t.Context()); err != nil || w.Requests() != before {
			t.Fatalf("round %d: cosigned again: %v, %d requests", round, err, w.Requests()-before)
		}
	}
	r := verifyWitnessed(t, s, cp, []*consent.Witness{w.Consent}, 1)
	if !r.Intact() || r.WitnessedSize != r.LastCheckpointSize || len(r.Witnessed) != 1 || r.Witnessed[0].Witness != "witness.example/a" {
		t.Fatalf("report %+v, broken %v", r, r.Broken)
	}
}

func witnessConflict(t *testing.T, newStore func(t *testing.T) WitnessStores) {
	s := newStore(t)
	signer, verifier := Keys(t, "a")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	w := NewWitness(t, "witness.example/a", verifier)
	cs := &consent.Cosigner{Store: s, Witnesses: []*consent.Witness{w.Consent}}
	appendN(t, s, "cit_a", 1)
	c := commit(t, cp)
	// Another replica brought the witness to this size, and its
	// cosignature was lost: the witness answers 409 with c.Size, and the
	// cosigner asks again from it.
	resp, err := http.Post(w.Consent.URL+"/add-checkpoint", "text/plain", bytes.NewReader(consent.AddCheckpointBody(0, nil, c.Note)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("direct add-checkpoint: %v, %v", resp, err)
	}
	resp.Body.Close()
	if err := cs.Cosign(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Cosignatures(t.Context(), c.Size); len(got) != 1 {
		t.Fatalf("cosignatures %d, want 1", len(got))
	}
	// The witness forgot the log (a new witness with the same key): it
	// answers 409 with 0, and the cosigner starts from 0.
	w.Reset()
	appendN(t, s, "cit_b", 1)
	c = commit(t, cp)
	if err := cs.Cosign(t.Context()); err != nil || w.Size() != c.Size {
		t.Fatalf("after reset: %v, witness at %d want %d", err, w.Size(), c.Size)
	}
}

// staleStore is a replica that read the last checkpoint before another
// replica made a newer one.
type staleStore struct {
	WitnessStores
	last *consent.Checkpoint
	// hide is a size whose checkpoint reads as missing (0: none).
	hide int64
}

func (s staleStore) LastCheckpoint(context.Context) (*consent.Checkpoint, error) { return s.last, nil }

func (s staleStore) CheckpointAt(ctx context.Context, size int64) (*consent.Checkpoint, error) {
	if size == s.hide {
		return nil, consent.ErrNotFound
	}
	return s.WitnessStores.CheckpointAt(ctx, size)
}

func witnessAhead(t *testing.T, newStore func(t *testing.T) WitnessStores) {
	s := newStore(t)
	signer, verifier := Keys(t, "a")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	w := NewWitness(t, "witness.example/a", verifier)
	appendN(t, s, "cit_a", 1)
	old := commit(t, cp)
	appendN(t, s, "cit_b", 1)
	c := commit(t, cp)
	resp, err := http.Post(w.Consent.URL+"/add-checkpoint", "text/plain", bytes.NewReader(consent.AddCheckpointBody(0, nil, c.Note)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("direct add-checkpoint: %v, %v", resp, err)
	}
	resp.Body.Close()
	// The witness answers 409 naming size 2, past the checkpoint this
	// replica read: the store holds it, so that is progress.
	stale := &consent.Cosigner{Store: staleStore{s, old, 0}, Witnesses: []*consent.Witness{w.Consent}}
	if err := stale.Cosign(t.Context()); err != nil {
		t.Fatalf("a witness ahead by another replica: %v", err)
	}
	// A size no stored checkpoint has is a refusal.
	w.Reset()
	resp, err = http.Post(w.Consent.URL+"/add-checkpoint", "text/plain", bytes.NewReader(consent.AddCheckpointBody(0, nil, c.Note)))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("direct add-checkpoint: %v, %v", resp, err)
	}
	resp.Body.Close()
	lost := &consent.Cosigner{Store: staleStore{s, old, c.Size}, Witnesses: []*consent.Witness{w.Consent}}
	if err := lost.Cosign(t.Context()); !errors.Is(err, consent.ErrWitnessRefused) {
		t.Fatalf("a witness past every stored checkpoint: %v", err)
	}

	// Refusals say what kind they are.
	for status, want := range map[int]error{http.StatusForbidden: consent.ErrWitnessUnknownLog, http.StatusNotFound: consent.ErrWitnessUnknownLog,
		http.StatusUnprocessableEntity: consent.ErrWitnessFork, http.StatusBadRequest: consent.ErrWitnessBadRequest} {
		w.FailWith(status)
		err := (&consent.Cosigner{Store: s, Witnesses: []*consent.Witness{w.Consent}}).Cosign(t.Context())
		if !errors.Is(err, consent.ErrWitnessRefused) || !errors.Is(err, want) {
			t.Errorf("HTTP %d: %v, want %v", status, err, want)
		}
	}
}

func witnessBackoff(t *testing.T, newStore func(t *testing.T) WitnessStores) {
	s := newStore(t)
	signer, verifier := Keys(t, "a")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	w := NewWitness(t, "witness.example/a", verifier)
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cs := &consent.Cosigner{Store: s, Witnesses: []*consent.Witness{w.Consent}, Now: clk.now}
	appendN(t, s, "cit_a", 1)
	c := commit(t, cp)
	w.FailWith(http.StatusServiceUnavailable)
	err := cs.Cosign(t.Context())
	if err == nil || errors.Is(err, consent.ErrWitnessRefused) {
		t.Fatalf("503: %v, want a retryable error", err)
	}
	// Within the backoff: no request.
	if err := cs.Cosign(t.Context()); err != nil || w.Requests() != 1 {
		t.Fatalf("in backoff: %v, %d requests", err, w.Requests())
	}
	clk.add(time.Second)
	if err := cs.Cosign(t.Context()); err == nil || w.Requests() != 2 {
		t.Fatalf("after 1 s: %v, %d requests", err, w.Requests())
	}
	// The delay doubled: 1 s is not enough now.
	clk.add(time.Second)
	if err := cs.Cosign(t.Context()); err != nil || w.Requests() != 2 {
		t.Fatalf("within 2 s: %v, %d requests", err, w.Requests())
	}
	if n := cs.Failures(w.Consent); n != 2 {
		t.Fatalf("%d failures in a row, want 2", n)
	}
	recovered := -1
	cs.OnRecover = func(_ *consent.Witness, failures int) { recovered = failures }
	w.FailWith(0)
	clk.add(time.Second)
	if err := cs.Cosign(t.Context()); err != nil || w.Size() != c.Size {
		t.Fatalf("recovered: %v, witness at %d", err, w.Size())
	}
	if recovered != 2 || cs.Failures(w.Consent) != 0 {
		t.Fatalf("recovery reported after %d failures, %d now", recovered, cs.Failures(w.Consent))
	}
	// A refusal is ErrWitnessRefused.
	w.FailWith(http.StatusForbidden)
	appendN(t, s, "cit_b", 1)
	commit(t, cp)
	if err := cs.Cosign(t.Context()); !errors.Is(err, consent.ErrWitnessRefused) {
		t.Fatalf("403: %v", err)
	}
}

// witnessRewrite is the operator's attack: history rewritten and every
// checkpoint signed again with the key the operator holds. Without
// witnesses Verify passes; the cosignatures kept name the old roots, and
// the witness refuses to cosign the rewritten log.
func witnessRewrite(t *testing.T, newStore func(t *testing.T) WitnessStores) {
	signer, verifier := Keys(t, "a")
	w := NewWitness(t, "witness.example/a", verifier)
	ws := []*consent.Witness{w.Consent}

	honest := newStore(t)
	hcp := &consent.Checkpointer{Store: honest, Signer: signer, Verifier: verifier}
	appendN(t, honest, "cit_victim", 3)
	appendN(t, honest, "cit_other", 1)
	hc := commit(t, hcp)
	if err := (&consent.Cosigner{Store: honest, Witnesses: ws}).Cosign(t.Context()); err != nil {
		t.Fatal(err)
	}
	kept, err := honest.Cosignatures(t.Context(), -1)
	if err != nil || len(kept) != 1 {
		t.Fatalf("cosignatures %v, %v", kept, err)
	}

	// The rewritten log: same citizens and sizes, other entries, signed
	// with the same key.
	forged := newStore(t)
	fcp := &consent.Checkpointer{Store: forged, Signer: signer, Verifier: verifier}
	appendN(t, forged, "cit_other", 1)
	for range 3 {
		if err := forged.Append(t.Context(), entry("cit_victim", "something else")); err != nil {
			t.Fatal(err)
		}
	}
	fc := commit(t, fcp)
	if fc.Size != hc.Size || bytes.Equal(fc.Root, hc.Root) {
		t.Fatalf("forged checkpoint %d %x, honest %d %x", fc.Size, fc.Root, hc.Size, hc.Root)
	}
	r, err := consent.Verify(t.Context(), forged, verifier)
	if err != nil || !r.Intact() {
		t.Fatalf("the forged log verifies on its own: %v, %v", r.Broken, err)
	}

	t.Run("CosignaturesKept", func(t *testing.T) {
		for _, c := range kept {
			if err := forged.AddCosignature(t.Context(), c); err != nil {
				t.Fatal(err)
			}
		}
		r := verifyWitnessed(t, forged, fcp, ws, 1)
		if r.Intact() || r.Broken.Checkpoint != hc.Size || !strings.Contains(r.Broken.What, "rewritten") {
			t.Fatalf("broken %v, want the witnessed root differing", r.Broken)
		}
		// And the witness will not cosign the rewritten log's next
		// checkpoint: no consistency proof exists from what it holds.
		appendN(t, forged, "cit_new", 1)
		commit(t, fcp)
		if err := (&consent.Cosigner{Store: forged, Witnesses: ws}).Cosign(t.Context()); !errors.Is(err, consent.ErrWitnessRefused) {
			t.Fatalf("cosigning the rewritten log: %v", err)
		}
	})
	t.Run("CosignaturesDropped", func(t *testing.T) {
		// Dropping the cosignatures leaves nothing witnessed here, and
		// the witness (409: it holds hc.Size) still refuses.
		forged2 := newStore(t)
		f2 := &consent.Checkpointer{Store: forged2, Signer: signer, Verifier: verifier}
		appendN(t, forged2, "cit_other", 1)
		for range 4 {
			if err := forged2.Append(t.Context(), entry("cit_victim", "again")); err != nil {
				t.Fatal(err)
			}
		}
		commit(t, f2)
		r := verifyWitnessed(t, forged2, f2, ws, 1)
		if !r.Intact() || r.WitnessedSize != 0 {
			t.Fatalf("report: %+v", r)
		}
		if err := (&consent.Cosigner{Store: forged2, Witnesses: ws}).Cosign(t.Context()); !errors.Is(err, consent.ErrWitnessRefused) {
			t.Fatalf("cosigning the rewritten log: %v", err)
		}
	})
}

func witnessQuorum(t *testing.T, newStore func(t *testing.T) WitnessStores) {
	s := newStore(t)
	signer, verifier := Keys(t, "a")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	a, b := NewWitness(t, "witness.example/a", verifier), NewWitness(t, "witness.example/b", verifier)
	ws := []*consent.Witness{a.Consent, b.Consent}
	cs := &consent.Cosigner{Store: s, Witnesses: ws}
	appendN(t, s, "cit_a", 1)
	first := commit(t, cp)
	if err := cs.Cosign(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.FailWith(http.StatusInternalServerError)
	appendN(t, s, "cit_b", 1)
	second := commit(t, cp)
	if err := cs.Cosign(t.Context()); err == nil {
		t.Fatal("b failing: no error")
	}
	for _, tc := range []struct {
		quorum int
		want   int64
	}{{1, second.Size}, {2, first.Size}, {3, 0}} {
		r := verifyWitnessed(t, s, cp, ws, tc.quorum)
		if !r.Intact() || r.WitnessedSize != tc.want {
			t.Errorf("quorum %d: witnessed %d, want %d (%v)", tc.quorum, r.WitnessedSize, tc.want, r.Broken)
		}
	}
	// A witness not configured is ignored; one configured with another
	// key does not count.
	other := NewWitness(t, "witness.example/a2", verifier)
	r := verifyWitnessed(t, s, cp, []*consent.Witness{other.Consent}, 1)
	if !r.Intact() || r.WitnessedSize != 0 {
		t.Fatalf("unconfigured: %+v", r)
	}
}
