package sqlstore_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// tamperEnv is a store with four entries for cit_victim (committed by a
// checkpoint) and two for cit_other, and the database under it, which
// the tests change by hand as an operator with SQL access would.
type tamperEnv struct {
	t        *testing.T
	db       *sql.DB
	s        *sqlstore.Store
	cp       *consent.Checkpointer
	verifier interface {
		Name() string
		KeyHash() uint32
		Verify(msg, sig []byte) bool
	}
	victim []*consent.Entry
}

func newTamperEnv(t *testing.T, opener func(t testing.TB) (*sql.DB, sqldb.Dialect)) *tamperEnv {
	db, d := opener(t)
	s := migrated(t, db, d)
	signer, verifier := consenttest.Keys(t, "a")
	e := &tamperEnv{t: t, db: db, s: s, cp: &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}, verifier: verifier}
	for i := range 4 {
		en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_victim", At: time.Now(), Actor: consent.Actor{Agency: "BOYTE", ClientID: "c1"},
			Channel: consent.ChannelBroker, Items: []string{"name"}, Purpose: fmt.Sprint("p", i), Basis: consent.BasisCitizenRequest,
			Outcome: consent.OutcomeReleased}
		if err := s.Append(t.Context(), en); err != nil {
			t.Fatal(err)
		}
		e.victim = append(e.victim, en)
		if err := s.Append(t.Context(), &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("cit_other", i%2), At: time.Now(),
			Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.cp.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(); !r.Intact() {
		t.Fatalf("untouched log: %v", r.Broken)
	}
	return e
}

func (e *tamperEnv) exec(query string, args ...any) {
	e.t.Helper()
	if _, err := e.db.ExecContext(e.t.Context(), query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

func (e *tamperEnv) verify() *consent.Report {
	e.t.Helper()
	r, err := consent.Verify(e.t.Context(), e.s, e.verifier)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *tamperEnv) wantBroken(citizen string, seq int64, entryID, what string) (leaf *int64) {
	e.t.Helper()
	r := e.verify()
	if r.Intact() {
		e.t.Fatalf("tampering went unnoticed: report %+v", r)
	}
	p := r.Broken
	if p.CitizenID != citizen || p.Seq != seq || p.EntryID != entryID || !strings.Contains(p.What, what) {
		e.t.Fatalf("broken: got %+v (%v), want citizen %s seq %d entry %s, %q", p, p, citizen, seq, entryID, what)
	}
	return p.Leaf
}

// rewrite changes the victim's entry at seq (its purpose) and recomputes
// its hash and every later one, and the head: a chain that verifies on its
// own.
func (e *tamperEnv) rewrite(seq int64) {
	e.t.Helper()
	chain, err := e.s.Chain(e.t.Context(), "cit_victim", 0, 100)
	if err != nil {
		e.t.Fatal(err)
	}
	var prev *consent.Head
	for _, en := range chain {
		if en.Seq == seq {
			en.Purpose = "something-innocent"
		}
		if en.Seq >= seq {
			en.Seal(prev)
			e.exec(`UPDATE consent_log SET purpose = $1, prev = $2, hash = $3 WHERE id = $4`, en.Purpose, nullable(en.Prev), en.Hash, en.ID)
		}
		prev = &consent.Head{CitizenID: en.CitizenID, Seq: en.Seq, Hash: en.Hash}
	}
	e.exec(`UPDATE consent_chain_heads SET hash = $1 WHERE citizen_id = $2`, prev.Hash, "cit_victim")
}

func nullable(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func forEachBackend(t *testing.T, fn func(t *testing.T, e *tamperEnv)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, newTamperEnv(t, b.open)) })
	}
}

func TestTamper_EditedRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		e.exec(`UPDATE consent_log SET items = $1 WHERE id = $2`, `["name","address"]`, e.victim[1].ID)
		e.wantBroken("cit_victim", 2, e.victim[1].ID, "does not match its contents")
	})
}

// TestTamper_UnreadableRow: a column replaced with something the store
// cannot decode is still reported as that entry, not as a read error.
func TestTamper_UnreadableRow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		e.exec(`UPDATE consent_log SET items = $1 WHERE id = $2`, `not json`, e.victim[2].ID)
		e.wantBroken("cit_victim", 3, e.victim[2].ID, "does not match its contents")
	})
}

func TestTamper_EditedRowWithItsHash(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		en := *e.victim[1]
		en.Actor.Agency = "BOCONGAN"
		en.Hash = en.ComputeHash()
		e.exec(`UPDATE consent_log SET agency = $1, hash = $2 WHERE id = $3`, en.Actor.Agency, en.Hash, en.ID)
		e.wantBroken("cit_victim", 3, e.victim[2].ID, "does not link to entry 2")
	})
}

// TestTamper_RewrittenChain: the chain is rewritten from entry 2 with
// every later hash recomputed, so it verifies on its own; the checkpoint
// committed the old head, which no longer matches.
func TestTamper_RewrittenChain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		e.rewrite(2)
		if leaf := e.wantBroken("cit_victim", 4, e.victim[3].ID, "differs from what a checkpoint committed"); leaf == nil {
			t.Fatal("the problem names no leaf")
		}
	})
}

// TestTamper_RewrittenChainAndLeaf: rewriting the committed leaf too
// changes the tree, whose root the signed checkpoint fixes.
func TestTamper_RewrittenChainAndLeaf(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		e.rewrite(2)
		head, err := e.s.ChainHead(t.Context(), "cit_victim")
		if err != nil {
			t.Fatal(err)
		}
		e.exec(`UPDATE consent_tree_leaves SET hash = $1 WHERE citizen_id = $2 AND seq = $3`, head.Hash, "cit_victim", head.Seq)
		r := e.verify()
		if r.Intact() || r.Broken.Checkpoint == 0 || !strings.Contains(r.Broken.What, "checkpoint's root") {
			t.Fatalf("rewritten chain and leaf: report %+v, broken %v", r, r.Broken)
		}
		// An operator who also rewrites the stored tree hashes only stops
		// the checkpointer, which refuses to sign on top of a tree that no
		// longer hashes to the last signed root.
		leaves, err := e.s.CitizenLeaves(t.Context(), "cit_victim", head.Seq-1, 1)
		if err != nil || len(leaves) != 1 {
			t.Fatalf("victim's leaf: %v, %v", leaves, err)
		}
		last, err := e.s.LastCheckpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Every stored hash over the leaf, up to the frontier the
		// checkpointer reads (wherever the leaf sits in the tree).
		for l, i := 0, leaves[0].Index; (i>>l+1)<<l <= last.Size; l++ {
			e.exec(`UPDATE consent_tree_hashes SET hash = $1 WHERE idx = $2`, bytes.Repeat([]byte{9}, 32), tlog.StoredHashIndex(l, i>>l))
		}
		if err := e.s.Append(t.Context(), &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_new", At: time.Now(),
			Channel: consent.ChannelBroker, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cp.Commit(t.Context()); !errors.Is(err, consent.ErrTreeMismatch) {
			t.Fatalf("checkpoint over a changed tree: got %v, want ErrTreeMismatch", err)
		}
	})
}

// TestTamper_ForgedCheckpoint: an operator who also rewrites the stored
// root cannot sign it without the key.
func TestTamper_ForgedCheckpoint(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		last, err := e.s.LastCheckpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// The signed text changed (another root), the signature kept.
		oldRoot := base64.StdEncoding.EncodeToString(last.Root)
		forged := strings.Replace(last.Note, oldRoot, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)), 1)
		if forged == last.Note {
			t.Fatal("the note does not carry the root")
		}
		e.exec(`UPDATE consent_checkpoints SET note = $1 WHERE size = $2`, forged, last.Size)
		r := e.verify()
		if r.Intact() || r.Broken.Checkpoint != last.Size || !strings.Contains(r.Broken.What, "signature") {
			t.Fatalf("forged checkpoint: %+v", r.Broken)
		}
		root := bytes.Repeat([]byte{7}, 32)
		e.exec(`UPDATE consent_checkpoints SET note = $1, root = $2 WHERE size = $3`, last.Note, root, last.Size)
		r = e.verify()
		if r.Intact() || !strings.Contains(r.Broken.What, "differs from what was signed") {
			t.Fatalf("changed root: %+v", r.Broken)
		}
	})
}

// TestTamper_Truncated: removing the last entries and moving the head
// back is caught by the committed leaf.
func TestTamper_Truncated(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		e.exec(`DELETE FROM consent_log WHERE id = $1`, e.victim[3].ID)
		e.exec(`UPDATE consent_chain_heads SET seq = 3, hash = $1 WHERE citizen_id = $2`, e.victim[2].Hash, "cit_victim")
		r := e.verify()
		if r.Intact() || r.Broken.CitizenID != "cit_victim" || r.Broken.Seq != 4 || r.Broken.Leaf == nil || !strings.Contains(r.Broken.What, "removed") {
			t.Fatalf("truncated chain: %+v", r.Broken)
		}
	})
}

// TestTamper_DeletedMiddle: removing an entry in the middle leaves a gap.
func TestTamper_DeletedMiddle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		e.exec(`DELETE FROM consent_log WHERE id = $1`, e.victim[1].ID)
		e.wantBroken("cit_victim", 3, e.victim[2].ID, "entry 2 of the chain is missing")
	})
}

// TestTamper_UncommittedTail: entries after the last checkpoint are
// protected by the chain alone: an edit is caught, and the head keeps a
// truncation visible.
func TestTamper_UncommittedTail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		extra := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_victim", At: time.Now(), Channel: consent.ChannelPrefill, Outcome: consent.OutcomeReleased}
		if err := e.s.Append(t.Context(), extra); err != nil {
			t.Fatal(err)
		}
		e.exec(`DELETE FROM consent_log WHERE id = $1`, extra.ID)
		r := e.verify()
		if r.Intact() || r.Broken.Seq != 5 || !strings.Contains(r.Broken.What, "head") {
			t.Fatalf("removed uncommitted entry: %+v", r.Broken)
		}
	})
}

// TestTamper_RemovedLastCheckpoint: with the newest checkpoint row
// deleted, its leaves are covered by no signature. Verify names the
// first of them (it used to say intact), and the checkpointer says what
// happened instead of failing on a duplicate key forever.
func TestTamper_RemovedLastCheckpoint(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		extra := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_victim", At: time.Now(), Channel: consent.ChannelPrefill, Outcome: consent.OutcomeReleased}
		if err := e.s.Append(t.Context(), extra); err != nil {
			t.Fatal(err)
		}
		cp, err := e.cp.Commit(t.Context())
		if err != nil || cp == nil || cp.Size != 4 {
			t.Fatalf("second checkpoint: %+v, %v", cp, err)
		}
		r := e.verify()
		if !r.Intact() || r.LastCheckpointSize != 4 || r.LastCheckpointAt == nil || !r.LastCheckpointAt.Equal(cp.CreatedAt) {
			t.Fatalf("report before the removal: %+v", r)
		}
		e.exec(`DELETE FROM consent_checkpoints WHERE size = $1`, 4)
		r = e.verify()
		if r.Intact() || r.Broken.Leaf == nil || *r.Broken.Leaf != 3 || r.Broken.CitizenID != "cit_victim" || r.Broken.Seq != 5 ||
			!strings.Contains(r.Broken.What, "no signed checkpoint covers") || r.LastCheckpointSize != 3 {
			t.Fatalf("removed checkpoint: %+v %v", r, r.Broken)
		}
		if err := e.s.Append(t.Context(), &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_other0", At: time.Now(),
			Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
		cp, err = e.cp.Commit(t.Context())
		if cp != nil || !errors.Is(err, consent.ErrUncoveredLeaves) || !strings.Contains(err.Error(), "run onedoor audit verify") {
			t.Fatalf("checkpoint over uncovered leaves: %+v, %v", cp, err)
		}
	})
}

// TestTamper_WrongKeyCheckpoint: a checkpoint signed with another key on
// top of the tree (an admin command run with the wrong master key) is not
// built upon.
func TestTamper_WrongKeyCheckpoint(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		wrongSigner, wrongVerifier := consenttest.Keys(t, "wrong master key")
		wrong := &consent.Checkpointer{Store: e.s, Signer: wrongSigner, Verifier: wrongVerifier}
		if err := e.s.Append(t.Context(), &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_other0", At: time.Now(),
			Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
		if cp, err := wrong.Commit(t.Context()); cp != nil || !errors.Is(err, consent.ErrCheckpointKey) {
			t.Fatalf("the wrong key extending the right checkpoint: %+v, %v", cp, err)
		}
		// Forge it in, as the old checkpointer would have.
		last, err := e.s.LastCheckpoint(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		e.exec(`DELETE FROM consent_checkpoints WHERE size = $1`, last.Size)
		e.exec(`DELETE FROM consent_tree_leaves`)
		e.exec(`DELETE FROM consent_tree_hashes`)
		e.exec(`UPDATE consent_chain_heads SET committed_seq = 0`)
		if cp, err := wrong.Commit(t.Context()); err != nil || cp == nil {
			t.Fatalf("wrong-key checkpoint of an empty tree: %+v, %v", cp, err)
		}
		if err := e.s.Append(t.Context(), &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_other1", At: time.Now(),
			Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}); err != nil {
			t.Fatal(err)
		}
		cp, err := e.cp.Commit(t.Context())
		if cp != nil || !errors.Is(err, consent.ErrCheckpointKey) || !strings.Contains(err.Error(), "wrong master key") {
			t.Fatalf("extending a wrong-key checkpoint: %+v, %v", cp, err)
		}
	})
}
