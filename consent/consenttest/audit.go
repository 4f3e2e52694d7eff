package consenttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/onedoor/onedoor/consent"
)

// AuditStores is what RunAudit tests: the log and its checkpoints, which
// share one implementation.
type AuditStores interface {
	consent.Store
	consent.AuditStore
}

// Keys returns the checkpoint signer and verifier of a fixed test seed
// (name says which: two names give two keys).
func Keys(t testing.TB, name string) (note.Signer, note.Verifier) {
	t.Helper()
	seed := sha256.Sum256([]byte("consenttest checkpoint seed " + name))
	s, v, err := consent.CheckpointKeys(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// VerifierKey is the encoded public key of Keys(t, name).
func VerifierKey(t testing.TB, name string) string {
	t.Helper()
	seed := sha256.Sum256([]byte("consenttest checkpoint seed " + name))
	v, err := consent.CheckpointVerifierKey(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// RunAudit runs the conformance suite of checkpoints and verification on
// an untampered store: checkpoints commit exactly the heads that moved,
// Verify accepts what the store wrote, and checkpointers racing appends
// and each other keep one consistent tree. newStore returns an empty,
// migrated store; each subtest gets its own.
func RunAudit(t *testing.T, newStore func(t *testing.T) AuditStores) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s AuditStores)
	}{
		{"Empty", auditEmpty},
		{"CommitsMovedHeadsOnly", auditMovedHeads},
		{"Batches", auditBatches},
		{"SteadyAppends", auditSteadyAppends},
		{"WrongKeyNotExtended", auditWrongKeyNotExtended},
		{"ManyHeadsOneCheckpoint", auditManyHeads},
		{"OtherKeyRefused", auditOtherKey},
		{"ConcurrentCheckpointsAndAppends", func(t *testing.T, s AuditStores) { auditConcurrent(t, s, s) }},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// RunAuditTwoPools runs checkpointers and appends through two stores over
// separate pools on one database (two replicas) and checks the result
// verifies.
func RunAuditTwoPools(t *testing.T, newPair func(t *testing.T) (AuditStores, AuditStores)) {
	a, b := newPair(t)
	auditConcurrent(t, a, b)
}

func mustVerify(t *testing.T, s AuditStores, v note.Verifier) *consent.Report {
	t.Helper()
	r, err := consent.Verify(t.Context(), s, v)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !r.Intact() {
		t.Fatalf("Verify of an untouched log: %v", r.Broken)
	}
	return r
}

func appendN(t *testing.T, s consent.Store, citizen string, n int) {
	t.Helper()
	for i := range n {
		if err := s.Append(t.Context(), entry(citizen, fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func auditEmpty(t *testing.T, s AuditStores) {
	signer, verifier := Keys(t, "a")
	r := mustVerify(t, s, verifier)
	if r.Citizens != 0 || r.Entries != 0 || r.Checkpoints != 0 {
		t.Fatalf("empty log report: %+v", r)
	}
	cp, err := (&consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}).Commit(t.Context())
	if err != nil || cp != nil {
		t.Fatalf("checkpoint of an empty log: %+v, %v", cp, err)
	}
}

func auditMovedHeads(t *testing.T, s AuditStores) {
	signer, verifier := Keys(t, "a")
	c := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	appendN(t, s, "cit_1", 3)
	appendN(t, s, "cit_2", 1)
	appendN(t, s, "cit_3", 2)
	cp, err := c.Commit(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cp == nil || cp.Size != 3 || len(cp.Root) != 32 {
		t.Fatalf("first checkpoint: %+v", cp)
	}
	n, err := note.Open([]byte(cp.Note), note.VerifierList(verifier))
	if err != nil {
		t.Fatalf("checkpoint note does not verify: %v", err)
	}
	if want := fmt.Sprintf("%s\n3\n", consent.CheckpointOrigin); !bytes.HasPrefix([]byte(n.Text), []byte(want)) {
		t.Fatalf("checkpoint text %q, want it to start %q", n.Text, want)
	}
	if again, err := c.Commit(t.Context()); err != nil || again != nil {
		t.Fatalf("checkpoint with no head moved: %+v, %v", again, err)
	}
	appendN(t, s, "cit_2", 2)
	cp, err = c.Commit(t.Context())
	if err != nil || cp == nil || cp.Size != 4 {
		t.Fatalf("second checkpoint: %+v, %v", cp, err)
	}
	leaves, err := s.Leaves(t.Context(), 0, 100)
	if err != nil || len(leaves) != 4 {
		t.Fatalf("leaves: %d, %v", len(leaves), err)
	}
	if l := leaves[3]; l.Index != 3 || l.CitizenID != "cit_2" || l.Seq != 3 {
		t.Fatalf("leaf 3: %+v, want cit_2's head at seq 3", l)
	}
	head, err := s.ChainHead(t.Context(), "cit_2")
	if err != nil || head.Seq != 3 || !bytes.Equal(head.Hash, leaves[3].Hash) {
		t.Fatalf("cit_2's head %+v, %v; want the leaf's", head, err)
	}
	last, err := s.LastCheckpoint(t.Context())
	if err != nil || last.Size != 4 || last.Note != cp.Note {
		t.Fatalf("LastCheckpoint: %+v, %v", last, err)
	}
	var pages [][]string
	for after := ""; ; {
		page, err := s.Citizens(t.Context(), after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		after = page[len(page)-1]
	}
	if fmt.Sprint(pages) != "[[cit_1 cit_2] [cit_3]]" {
		t.Fatalf("citizens in pages of 2: %v", pages)
	}
	r := mustVerify(t, s, verifier)
	if r.Citizens != 3 || r.Entries != 8 || r.Leaves != 4 || r.Checkpoints != 2 || r.TreeSize != 4 {
		t.Fatalf("report: %+v", r)
	}
}

// auditBatches: one Commit makes one checkpoint of Batch heads at most;
// the next call takes the rest.
func auditBatches(t *testing.T, s AuditStores) {
	signer, verifier := Keys(t, "a")
	for i := range 7 {
		appendN(t, s, fmt.Sprintf("cit_%02d", i), 1+i%3)
	}
	c := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier, Batch: 3}
	for _, want := range []int64{3, 6, 7} {
		cp, err := c.Commit(t.Context())
		if err != nil || cp == nil || cp.Size != want {
			t.Fatalf("batched checkpoint: %+v, %v; want size %d", cp, err, want)
		}
		if cps, err := s.Checkpoints(t.Context(), 0, 100); err != nil || cps[len(cps)-1].Size != want {
			t.Fatalf("one Commit made more than one checkpoint: %d, %v", len(cps), err)
		}
	}
	if cp, err := c.Commit(t.Context()); err != nil || cp != nil {
		t.Fatalf("nothing left to commit: %+v, %v", cp, err)
	}
	cps, err := s.Checkpoints(t.Context(), 0, 100)
	if err != nil || len(cps) != 3 || cps[0].Size != 3 || cps[1].Size != 6 {
		t.Fatalf("checkpoints: %d, %v", len(cps), err)
	}
	r := mustVerify(t, s, verifier)
	if r.Checkpoints != 3 || r.Leaves != 7 {
		t.Fatalf("report: %+v", r)
	}
}

// auditSteadyAppends: under appends that never stop, each Commit still
// returns after one checkpoint, and Run makes one a tick at most.
func auditSteadyAppends(t *testing.T, s AuditStores) {
	signer, verifier := Keys(t, "a")
	c := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	ctx, cancel := context.WithCancel(t.Context())
	var appender sync.WaitGroup
	appends := make(chan error, 1)
	appender.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := s.Append(ctx, entry(fmt.Sprintf("cit_%d", i%5), fmt.Sprint(i))); err != nil && ctx.Err() == nil {
				appends <- err
				return
			}
			// Steady, not a hog: a loop with no pause keeps SQLite's one
			// writer busy so that the checkpointer waits past the test.
			time.Sleep(time.Millisecond)
		}
	})
	defer func() { cancel(); appender.Wait() }()
	for range 5 {
		before, _ := s.Checkpoints(t.Context(), 0, 10000)
		done := make(chan error, 1)
		go func() { _, err := c.Commit(ctx); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Commit did not return under steady appends")
		}
		after, _ := s.Checkpoints(t.Context(), 0, 10000)
		if len(after)-len(before) > 1 {
			t.Fatalf("one Commit made %d checkpoints", len(after)-len(before))
		}
	}
	var (
		mu      sync.Mutex
		made    []int
		runDone = make(chan struct{})
	)
	// Two seconds: SQLite's one writer is shared with the appender, under -race on two busy cores.
	const interval, ticks = 50 * time.Millisecond, 40
	runCtx, stop := context.WithTimeout(ctx, interval*ticks+interval/2)
	defer stop()
	go func() {
		defer close(runDone)
		c.Run(runCtx, interval, func(cp *consent.Checkpoint, heads int) {
			mu.Lock()
			made = append(made, heads)
			mu.Unlock()
		}, func(err error) { t.Error(err) })
	}()
	<-runDone
	if len(made) == 0 || len(made) > ticks {
		t.Fatalf("Run over %d ticks made %d checkpoints", ticks, len(made))
	}
	for _, h := range made {
		if h < 1 || h > 5 {
			t.Fatalf("a checkpoint of %d heads (5 citizens append)", h)
		}
	}
	cancel()
	appender.Wait()
	select {
	case err := <-appends:
		t.Fatal(err)
	default:
	}
}

// auditManyHeads commits more heads than a store writes in one statement.
func auditManyHeads(t *testing.T, s AuditStores) {
	signer, verifier := Keys(t, "a")
	const n = 450
	for i := range n {
		appendN(t, s, fmt.Sprintf("cit_%04d", i), 1)
	}
	cp, err := (&consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}).Commit(t.Context())
	if err != nil || cp == nil || cp.Size != n {
		t.Fatalf("checkpoint of %d heads: %+v, %v", n, cp, err)
	}
	cps, err := s.Checkpoints(t.Context(), 0, 10)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints: %d, %v", len(cps), err)
	}
	appendN(t, s, "cit_0007", 1)
	if cp, err := (&consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}).Commit(t.Context()); err != nil || cp.Size != n+1 {
		t.Fatalf("checkpoint after one more append: %+v, %v", cp, err)
	}
	r := mustVerify(t, s, verifier)
	if r.Leaves != n+1 || r.Citizens != n || r.Checkpoints != 2 {
		t.Fatalf("report: %+v", r)
	}
}

func auditOtherKey(t *testing.T, s AuditStores) {
	signer, verifier := Keys(t, "a")
	_, other := Keys(t, "b")
	appendN(t, s, "cit_1", 2)
	if _, err := (&consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}).Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	r, err := consent.Verify(t.Context(), s, other)
	if err != nil {
		t.Fatal(err)
	}
	if r.Intact() || r.Broken.Checkpoint != 1 {
		t.Fatalf("checkpoint signed by another key: report %+v", r)
	}
}

// auditWrongKeyNotExtended: a checkpointer never builds on a checkpoint
// it cannot verify (one made with the wrong master key), and says why.
func auditWrongKeyNotExtended(t *testing.T, s AuditStores) {
	signer, verifier := Keys(t, "a")
	wrongSigner, wrongVerifier := Keys(t, "b")
	right := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	wrong := &consent.Checkpointer{Store: s, Signer: wrongSigner, Verifier: wrongVerifier}
	appendN(t, s, "cit_1", 1)
	if _, err := wrong.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "cit_2", 1)
	cp, err := right.Commit(t.Context())
	if cp != nil || !errors.Is(err, consent.ErrCheckpointKey) || !strings.Contains(err.Error(), "wrong master key") {
		t.Fatalf("extending a checkpoint signed by another key: %+v, %v", cp, err)
	}
	if last, err := s.LastCheckpoint(t.Context()); err != nil || last.Size != 1 {
		t.Fatalf("last checkpoint after the refusal: %+v, %v", last, err)
	}
	// Verify with the right key names the wrong-key checkpoint.
	if r, err := consent.Verify(t.Context(), s, verifier); err != nil || r.Intact() || r.Broken.Checkpoint != 1 {
		t.Fatalf("verify of a wrong-key checkpoint: %+v, %v", r, err)
	}
}

// auditConcurrent appends through a and b while a checkpointer on each
// commits in a loop; the tree must stay consistent and every chain valid.
func auditConcurrent(t *testing.T, a, b AuditStores) {
	signer, verifier := Keys(t, "a")
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		errs    = make(chan error, 1000)
		commits atomic.Int64
	)
	for _, s := range []AuditStores{a, b} {
		c := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier, Batch: 4}
		wg.Go(func() {
			for !stop.Load() {
				cp, err := c.Commit(t.Context())
				if err != nil {
					errs <- err
					return
				}
				if cp != nil {
					commits.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	var writers sync.WaitGroup
	for w := range 6 {
		s := []AuditStores{a, b}[w%2]
		writers.Go(func() {
			for i := range 15 {
				for _, c := range []string{"cit_hot", fmt.Sprintf("cit_w%d", w)} {
					if err := s.Append(t.Context(), entry(c, fmt.Sprint(i))); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	writers.Wait()
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := (&consent.Checkpointer{Store: a, Signer: signer, Verifier: verifier}).Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	r := mustVerify(t, b, verifier)
	if r.Entries != 6*15*2 || r.Citizens != 7 || r.TreeSize < 7 {
		t.Fatalf("report after concurrent appends and checkpoints: %+v (commits %d)", r, commits.Load())
	}
	// Every head is committed as it is now.
	for _, c := range []string{"cit_hot", "cit_w0", "cit_w5"} {
		head, err := a.ChainHead(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		leaves, err := a.CitizenLeaves(t.Context(), c, head.Seq-1, 10)
		if err != nil || len(leaves) != 1 || !bytes.Equal(leaves[0].Hash, head.Hash) {
			t.Fatalf("%s's head at seq %d is not committed: %+v, %v", c, head.Seq, leaves, err)
		}
	}
}
