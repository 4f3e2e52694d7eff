package sqlstore_test

// Review findings (branch review7): each test states what an outsider or
// an operator with SQL access can do today and fails until it is fixed.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
)

// TestVerify_ConsentRecordRewrittenByHand: an operator who un-withdraws a
// citizen's consent and widens its items by SQL is named by `onedoor audit
// verify`: the record no longer equals its last event in the consent trail.
func TestVerify_ConsentRecordRewrittenByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		rec := testRecord(t, e.s, time.Now().Add(-time.Minute), "name")
		if _, err := e.s.WithdrawRecord(ctx, "cit_1", rec.ID, time.Time{}, testReceipt); err != nil {
			t.Fatal(err)
		}
		// The operator rewrites the citizen's consent history.
		e.exec(`UPDATE consent_records SET withdrawn_at = NULL, items = $1 WHERE id = $2`, `["name","address"]`, rec.ID)

		// The store now releases under the withdrawn consent, items the
		// citizen never agreed to included.
		en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_1", At: time.Now(),
			Actor: consent.Actor{Agency: "BYT", ClientID: "his-app"}, Channel: consent.ChannelBroker, Items: []string{"name", "address"},
			Purpose: "kham-benh", Basis: consent.BasisConsent, ConsentID: rec.ID, Outcome: consent.OutcomeReleased}
		if err := e.s.AppendRelease(ctx, en); err != nil {
			t.Fatalf("release refused (the rewrite was noticed): %v", err)
		}
		if _, err := e.cp.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		r := e.verify()
		if r.Intact() {
			t.Fatalf("audit verify reports intact after consent %s was un-withdrawn and widened by hand and released under", rec.ID)
		}
		// The report names the record and what was changed.
		if p := r.Broken; p.ConsentID != rec.ID || !strings.Contains(p.What, "items") || !strings.Contains(p.What, "withdrawal") {
			t.Errorf("broken: %v, want consent %s's items and withdrawal named", p, rec.ID)
		}
	})
}

// TestVerify_FlagErasedByHand: a citizen's "this wasn't me", cleared by
// SQL (the evidence that a release was disputed), is named by verify: its
// flag event in the consent trail has no flag any more.
func TestVerify_FlagErasedByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		id := e.victim[1].ID
		if _, err := e.s.FlagEntry(ctx, "cit_victim", id, "not me", time.Time{}); err != nil {
			t.Fatal(err)
		}
		e.exec(`UPDATE consent_log SET flagged_at = NULL, flag_note = '' WHERE id = $1`, id)
		r := e.verify()
		if r.Intact() {
			t.Fatalf("audit verify reports intact after the citizen's flag on %s was erased by hand", id)
		}
		if p := r.Broken; p.EntryID != id || !strings.Contains(p.What, "flag was erased") {
			t.Errorf("broken: %v, want entry %s's erased flag", p, id)
		}
	})
}

// TestCheckpoint_OldestPendingFirst: a checkpoint commits the heads that
// have waited longest first, so citizens whose ids sort first and keep
// moving cannot keep a later one out of every signed checkpoint (batch 1,
// two citizens).
func TestCheckpoint_OldestPendingFirst(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := be.open(t)
			s := migrated(t, db, d)
			signer, verifier := consenttest.Keys(t, "a")
			cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier, Batch: 1}
			appendFor := func(citizen string) {
				t.Helper()
				if err := s.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: citizen, At: time.Now(),
					Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
					t.Fatal(err)
				}
			}
			appendFor("cit_z_quiet") // one release, then nothing
			for range 10 {
				appendFor("cit_a_busy") // a busy citizen (or one batch's worth of them) moves each interval
				if _, err := cp.Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			leaves, err := s.CitizenLeaves(ctx, "cit_z_quiet", 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(leaves) == 0 {
				t.Errorf("after 10 checkpoints cit_z_quiet's entry is still in none: later citizens starve while earlier ones keep moving")
			}
		})
	}
}

// countingStore counts the checkpoint look-ups a published checkpoint
// costs.
type countingStore struct {
	*sqlstore.Store
	checkpointAt int
}

func (c *countingStore) CheckpointAt(ctx context.Context, size int64) (*consent.Checkpoint, error) {
	c.checkpointAt++
	return c.Store.CheckpointAt(ctx, size)
}

// TestPublished_BoundedWithoutQuorum: with a witness that never cosigns
// and a quorum that needs it, a published-checkpoint request (unauthenticated
// GET /audit/v1/checkpoint, GET /v1/access-log/proof) costs a bounded
// number of look-ups, not one per checkpoint ever made.
func TestPublished_BoundedWithoutQuorum(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := be.open(t)
			s := &countingStore{Store: migrated(t, db, d)}
			signer, verifier := consenttest.Keys(t, "a")
			cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
			witness := func(name string) (*consent.Witness, ed25519.PrivateKey) {
				pub, priv, err := ed25519.GenerateKey(nil)
				if err != nil {
					t.Fatal(err)
				}
				w, err := consent.NewWitness(name, pub, "https://"+name)
				if err != nil {
					t.Fatal(err)
				}
				return w, priv
			}
			up, upKey := witness("up.example")
			down, downKey := witness("down.example")
			const checkpoints = 40
			cosign := func(w *consent.Witness, key ed25519.PrivateKey, c *consent.Checkpoint) {
				t.Helper()
				at := time.Now().Truncate(time.Second)
				msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s\n%d\n%s\n", at.Unix(), consent.CheckpointOrigin, c.Size,
					base64.StdEncoding.EncodeToString(c.Root))
				sig := binary.BigEndian.AppendUint64(nil, uint64(at.Unix())) // #nosec G115 -- a current time is positive
				sig = append(sig, ed25519.Sign(key, msg)...)
				cs := &consent.Cosignature{Witness: w.Name, KeyHash: w.KeyHash, Size: c.Size, Root: c.Root, SignedAt: at.UTC(), Signature: sig}
				if !cs.Verify(w) {
					t.Fatal("test cosignature does not verify")
				}
				if err := s.AddCosignature(ctx, cs); err != nil {
					t.Fatal(err)
				}
			}
			var made []*consent.Checkpoint
			for i := range checkpoints {
				if err := s.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("cit_", i), At: time.Now(),
					Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
					t.Fatal(err)
				}
				c, err := cp.Commit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				// The reachable witness cosigns each checkpoint.
				cosign(up, upKey, c)
				made = append(made, c)
			}
			s.checkpointAt = 0
			_, _, err := (&consent.Published{Store: s, Witnesses: []*consent.Witness{up, down}, Quorum: 2}).Checkpoint(ctx)
			if !errors.Is(err, consent.ErrNotFound) {
				t.Fatalf("published checkpoint: %v, want ErrNotFound (no quorum)", err)
			}
			if s.checkpointAt > 2 {
				t.Errorf("one request for the published checkpoint made %d checkpoint queries (one per checkpoint ever made)", s.checkpointAt)
			}
			// With a quorum the reachable witness meets, the latest checkpoint it
			// cosigned is published, in as few queries.
			s.checkpointAt = 0
			got, _, err := (&consent.Published{Store: s, Witnesses: []*consent.Witness{up, down}, Quorum: 1}).Checkpoint(ctx)
			if err != nil || got.Size != checkpoints {
				t.Fatalf("published checkpoint with quorum 1: %+v, %v, want size %d", got, err, checkpoints)
			}
			if s.checkpointAt > 1 {
				t.Errorf("the published checkpoint took %d checkpoint queries", s.checkpointAt)
			}
			// The other witness cosigned one old checkpoint only: that one
			// has the quorum of two, found without a walk of the history.
			cosign(down, downKey, made[19])
			s.checkpointAt = 0
			got, _, err = (&consent.Published{Store: s, Witnesses: []*consent.Witness{up, down}, Quorum: 2}).Checkpoint(ctx)
			if err != nil || got.Size != made[19].Size {
				t.Fatalf("published checkpoint with quorum 2: %+v, %v, want size %d", got, err, made[19].Size)
			}
			if s.checkpointAt > 2 {
				t.Errorf("the published checkpoint took %d checkpoint queries", s.checkpointAt)
			}
		})
	}
}

type fakeJWS struct{}

func (fakeJWS) SignJWS(context.Context, string, map[string]any) (string, error) { return "h.p.s", nil }

// TestLog_TokenReleaseRecheckedAtAppend: an ID token or userinfo release
// under a consent is rechecked in the append's transaction, as the
// broker's is: a withdrawal that commits between the policy's check and
// the append (here while the entry is being built) refuses the release.
func TestLog_TokenReleaseRecheckedAtAppend(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := be.open(t)
			s := migrated(t, db, d)
			svc := &consent.Service{Store: s, Signer: fakeJWS{}, Issuer: "https://id.example"}
			rec, _, err := svc.Grant(ctx, &consent.Record{CitizenID: "cit_1", ClientID: "his-app", Agency: "BYT",
				Purpose: consent.Purpose{Code: "kham-benh"}, Items: []string{"name"}, Method: consent.MethodWebForm, Evidence: "form"})
			if err != nil {
				t.Fatal(err)
			}
			withdrawn := false
			svc.ActorNames = func(ctx context.Context, _ consent.Actor) (*consent.Names, error) {
				if !withdrawn {
					withdrawn = true
					if _, _, err := svc.Withdraw(ctx, "cit_1", rec.ID); err != nil {
						return nil, err
					}
				}
				return nil, nil
			}
			req := consent.Request{CitizenID: "cit_1", Actor: consent.Actor{Agency: "BYT", ClientID: "his-app"}, Channel: consent.ChannelUserInfo,
				Purpose: "kham-benh", Items: []string{"name"}, ConsentID: rec.ID}
			_, err = svc.Log(ctx, req, &consent.Decision{Basis: consent.BasisConsent, ConsentID: rec.ID}, consent.OutcomeReleased)
			if !withdrawn {
				t.Fatal("the withdrawal did not run")
			}
			if err == nil {
				t.Errorf("a userinfo release under consent %s was logged (and the claims would leave) after its withdrawal committed", rec.ID)
			}
		})
	}
}

type noRegistry struct{}

func (noRegistry) Read(context.Context, string, []string) (map[string]consent.Value, error) {
	return map[string]consent.Value{}, nil
}

// TestFetch_RefusalsBoundedAcrossPurposes: an agency that varies the
// purpose of refused data requests adds at most RefusalPurposes refusals
// to a citizen's log per window, not one per request.
func TestFetch_RefusalsBoundedAcrossPurposes(t *testing.T) {
	ctx := t.Context()
	db, d := backends[0].open(t)
	s := migrated(t, db, d)
	seen := map[string]bool{}
	var mu sync.Mutex
	svc := &consent.Service{Store: s, Signer: fakeJWS{}, Issuer: "https://id.example",
		Once: func(_ context.Context, key string, _ time.Duration) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			first := !seen[key]
			seen[key] = true
			return first, nil
		}}
	const requests = 50
	for i := range requests {
		req := consent.Request{CitizenID: "cit_1", Actor: consent.Actor{Agency: "X", ClientID: "curious"}, Channel: consent.ChannelBroker,
			Purpose: fmt.Sprint("p", i), Items: []string{"name"}}
		if _, _, err := svc.Fetch(ctx, noRegistry{}, req); err == nil {
			t.Fatal("released without a basis")
		}
	}
	svc.Drain()
	got, _, err := s.ListEntries(ctx, consent.EntryQuery{CitizenID: "cit_1", Page: consent.Page{Limit: consent.MaxLimit}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > consent.RefusalPurposes {
		t.Errorf("%d requests with invented purposes left %d refusals in the citizen's log", requests, len(got))
	}
}

// TestVerify_StoredTreeHashes: a changed stored tree hash (an operator, or
// a bad restore), which would break citizens' inclusion proofs, is named
// by `onedoor audit verify`.
func TestVerify_StoredTreeHashes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		for i := range 5 {
			if err := e.s.Append(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("cit_more", i), At: time.Now(),
				Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
				t.Fatal(err)
			}
		}
		cp, err := e.cp.Commit(ctx)
		if err != nil || cp == nil || cp.Size != 8 {
			t.Fatalf("checkpoint: %+v %v (want size 8)", cp, err)
		}
		first, err := e.s.Leaves(ctx, 0, 1)
		if err != nil || len(first) != 1 {
			t.Fatal(first, err)
		}
		e.exec(`UPDATE consent_tree_hashes SET hash = $1 WHERE idx = $2`, bytes.Repeat([]byte{7}, 32), tlog.StoredHashIndex(0, 1)) // leaf 0's sibling

		in, err := consent.ProveInclusion(ctx, e.s, first[0].CitizenID)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(in.Proof, in.TreeSize, tlog.Hash(cp.Root), in.LeafIndex, tlog.RecordHash(in.LeafData)); err == nil {
			t.Fatal("the proof still checks: the changed hash is not on its path")
		}
		r := e.verify()
		if r.Intact() {
			t.Errorf("audit verify reports intact, but %s's inclusion proof no longer checks against the signed root", first[0].CitizenID)
		}
		if want := fmt.Sprintf("stored tree hash %d ", tlog.StoredHashIndex(0, 1)); !r.Intact() && !strings.Contains(r.Broken.What, want) {
			t.Errorf("verify names %q, want the changed hash (%q)", r.Broken.What, want)
		}
	})
}
