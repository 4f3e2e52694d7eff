package sqlstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
)

// TestTrail_UpgradeKeepsOldEntriesAndAdoptsBases stores entries, chain
// heads, a checkpoint and legal bases as the binary before migration 0004
// did, migrates, and checks that the old entries (hash form 1) still
// verify beside new ones (form 2), that the old checkpoint's heads are not
// committed again, and that the bases registered before the trail are
// adopted into it once.
func TestTrail_UpgradeKeepsOldEntriesAndAdoptsBases(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := be.open(t)
			s := sqlstore.New(db, d)
			if err := s.MigrateTo(ctx, 3); err != nil {
				t.Fatal(err)
			}
			// Two form-1 entries for one citizen, as Append stored them.
			var prev []byte
			for i := int64(1); i <= 2; i++ {
				e := &consent.Entry{V: 1, ID: fmt.Sprint("log_old", i), CitizenID: "cit_old", Seq: i, At: time.UnixMilli(1_700_000_000_000 + i).UTC(),
					Actor: consent.Actor{Agency: "BYT", ClientID: "his"}, Channel: consent.ChannelBroker, Items: []string{"name"},
					Purpose: "kham-benh", Basis: consent.BasisPublicTask, Law: "Luật KCB", Outcome: consent.OutcomeReleased, Prev: prev}
				e.Hash = e.ComputeHash()
				if _, err := db.ExecContext(ctx, `INSERT INTO consent_log (id, citizen_id, seq, at, agency, client_id, operator, channel, items, purpose,
					consent_id, basis, law, outcome, reason, prev, hash) VALUES ($1, $2, $3, $4, 'BYT', 'his', '', 'broker', '["name"]', 'kham-benh',
					'', 'public_task', 'Luật KCB', 'released', '', $5, $6)`, e.ID, e.CitizenID, e.Seq, e.At.UnixMilli(), prev, e.Hash); err != nil {
					t.Fatal(err)
				}
				prev = e.Hash
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO consent_chain_heads (citizen_id, seq, hash) VALUES ('cit_old', 2, $1)`, prev); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO consent_legal_bases (id, agency, purpose, items, basis, law, created_at, revoked_at)
					VALUES ('lb_live', 'BYT', 'kham-benh', '["name"]', 'public_task', 'Luật KCB', 1700000000000, NULL)`,
				`INSERT INTO consent_legal_bases (id, agency, purpose, items, basis, law, created_at, revoked_at)
					VALUES ('lb_gone', 'BYT', 'tiem-chung', '["name"]', 'public_task', 'Luật PB', 1700000000000, 1700000001000)`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			// A head an old checkpoint committed (its mark in the table the
			// migration replaces) stays committed.
			if _, err := db.ExecContext(ctx, `INSERT INTO consent_chain_heads (citizen_id, seq, hash) VALUES ('cit_done', 1, $1)`, prev); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO consent_tree_citizens (citizen_id, seq) VALUES ('cit_done', 1)`); err != nil {
				t.Fatal(err)
			}
			signer, verifier := consenttest.Keys(t, "a")
			cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			var committed int64
			if err := db.QueryRowContext(ctx, `SELECT committed_seq FROM consent_chain_heads WHERE citizen_id = 'cit_done'`).Scan(&committed); err != nil || committed != 1 {
				t.Fatalf("committed seq of an old checkpoint's head: %d, %v", committed, err)
			}
			// (It has no entries or leaves here: remove it before verifying.)
			if _, err := db.ExecContext(ctx, `DELETE FROM consent_chain_heads WHERE citizen_id = 'cit_done'`); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil { // adoption happens once
				t.Fatal(err)
			}
			trail, err := s.BasisTrail(ctx, 0, 100)
			if err != nil || len(trail) != 3 || trail[0].Action != consent.BasisAdopted || trail[1].Action != consent.BasisAdopted ||
				trail[2].Action != consent.BasisRevoked || trail[2].BasisID != "lb_gone" {
				t.Fatalf("adopted trail: %+v, %v", trail, err)
			}
			if err := s.Append(ctx, &consent.Entry{ID: "log_new", CitizenID: "cit_old", At: time.Now(), Actor: consent.Actor{Agency: "BYT"},
				Channel: consent.ChannelBroker, Items: []string{"name"}, Outcome: consent.OutcomeReleased, Names: &consent.Names{AgencyVI: "Bộ Y tế"}}); err != nil {
				t.Fatal(err)
			}
			c, err := cp.Commit(ctx)
			if err != nil || c == nil || c.Size != 2 { // cit_old and the trail
				t.Fatalf("checkpoint: %+v, %v", c, err)
			}
			if c, err := cp.Commit(ctx); err != nil || c != nil {
				t.Fatalf("a second checkpoint with nothing moved: %+v, %v", c, err)
			}
			r, err := consent.Verify(ctx, s, verifier)
			if err != nil || !r.Intact() || r.Entries != 3 || r.BasisEvents != 3 || r.LegalBases != 2 || r.Citizens != 1 || r.Leaves != 2 {
				t.Fatalf("verify after the upgrade: %+v, %v", r, err)
			}
			chain, err := s.Chain(ctx, "cit_old", 0, 10)
			if err != nil || len(chain) != 3 || chain[0].V != 1 || chain[2].V != consent.EntryVersion || chain[2].Names.AgencyVI != "Bộ Y tế" {
				t.Fatalf("chain: %+v, %v", chain, err)
			}
			// An adoption marker put back by hand adopts nothing new, and
			// a basis inserted by hand before it is adopted after the
			// trail began: verify says so.
			if _, err := db.ExecContext(ctx, `INSERT INTO consent_legal_bases (id, agency, purpose, items, basis, law, created_at, revoked_at, version, updated_at)
				VALUES ('lb_forged', 'BYT', 'thue', '["name"]', 'public_task', 'none', 1, NULL, 1, 1)`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO consent_basis_adopt (id) VALUES (1)`); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			r, err = consent.Verify(ctx, s, verifier)
			if err != nil || r.Intact() || !strings.Contains(r.Broken.What, "adopted after the trail began") || r.Broken.BasisID != "lb_forged" {
				t.Fatalf("verify after a forged adoption: %+v, %v", r.Broken, err)
			}
		})
	}
}

// TestTrail_EntryFormTwoTamper: the names and basis version of a form-2
// entry are covered by its hash, and relabelling it as form 1 (dropping
// them) does not pass either.
func TestTrail_EntryFormTwoTamper(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		// A basis at version 3, which the entry names: verify checks the
		// claim against the trail too.
		if err := e.s.PutLegalBasis(t.Context(), &consent.LegalBasis{ID: "lb_1", Agency: "BYT", Items: []string{"name"}, Purpose: "p",
			Basis: consent.BasisPublicTask, Law: "L"}, consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := e.s.AmendLegalBasis(t.Context(), "lb_1", []string{"name"}, "L", consenttest.TestChange); err != nil {
				t.Fatal(err)
			}
		}
		en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_named", At: time.Now(), Actor: consent.Actor{Agency: "BYT", ClientID: "his"},
			Channel: consent.ChannelBroker, Items: []string{"name"}, Purpose: "p", Basis: consent.BasisPublicTask, Law: "L", BasisID: "lb_1", BasisVersion: 3,
			Outcome: consent.OutcomeReleased, Names: &consent.Names{Client: "Bệnh viện A", AgencyVI: "Bộ Y tế"}}
		if err := e.s.Append(t.Context(), en); err != nil {
			t.Fatal(err)
		}
		if r := e.verify(); !r.Intact() {
			t.Fatalf("untouched: %+v", r.Broken)
		}
		for _, edit := range []string{
			`UPDATE consent_log SET names = '{"client":"Bệnh viện B","agency_vi":"Bộ Y tế"}' WHERE id = $1`,
			`UPDATE consent_log SET basis_version = 1 WHERE id = $1`,
			`UPDATE consent_log SET v = 1, names = '', basis_id = '', basis_version = 0 WHERE id = $1`,
		} {
			e.exec(`UPDATE consent_log SET v = 2, names = '{"client":"Bệnh viện A","agency_vi":"Bộ Y tế"}', basis_id = 'lb_1', basis_version = 3 WHERE id = $1`, en.ID)
			if r := e.verify(); !r.Intact() {
				t.Fatalf("restored: %+v", r.Broken)
			}
			e.exec(edit, en.ID)
			r := e.verify()
			if r.Intact() || r.Broken.EntryID != en.ID || !strings.Contains(r.Broken.What, "stored hash does not match") {
				t.Errorf("%s: %+v", edit, r.Broken)
			}
		}
		got, err := e.s.GetEntry(t.Context(), "cit_named", en.ID)
		if err != nil || !bytes.Equal(got.Hash, en.Hash) {
			t.Fatal(err)
		}
	})
}

// TestTrail_ChangesNeedOperatorAndReason: no basis changes without who
// and why, and a failed change leaves neither the basis nor the trail
// changed.
func TestTrail_ChangesNeedOperatorAndReason(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			s := open(t, be.open)
			b := &consent.LegalBasis{Agency: "BYT", Purpose: "p", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L"}
			for _, c := range []consent.BasisChange{{}, {Operator: "op"}, {Reason: "why"}, {Operator: " ", Reason: "why"}, {Operator: "op", Reason: " "},
				{Operator: "op", Reason: "x\x00"}, {Operator: strings.Repeat("o", 300), Reason: "why"}} {
				if err := s.PutLegalBasis(ctx, b, c); !errors.Is(err, consent.ErrInvalid) {
					t.Errorf("PutLegalBasis by %+v: %v", c, err)
				}
			}
			if err := s.PutLegalBasis(ctx, b, consenttest.TestChange); err != nil {
				t.Fatal(err)
			}
			if _, err := s.AmendLegalBasis(ctx, b.ID, []string{"name"}, "L2", consent.BasisChange{Operator: "op"}); !errors.Is(err, consent.ErrInvalid) {
				t.Errorf("amend without a reason: %v", err)
			}
			if _, err := s.AmendLegalBasis(ctx, b.ID, nil, "L2", consenttest.TestChange); !errors.Is(err, consent.ErrInvalid) {
				t.Errorf("amend to no items: %v", err)
			}
			if _, err := s.AmendLegalBasis(ctx, "lb_unknown", []string{"name"}, "L2", consenttest.TestChange); !errors.Is(err, consent.ErrNotFound) {
				t.Errorf("amend unknown: %v", err)
			}
			if err := s.RevokeLegalBasis(ctx, b.ID, consent.BasisChange{Reason: "why"}); !errors.Is(err, consent.ErrInvalid) {
				t.Errorf("revoke without an operator: %v", err)
			}
			// A second grant for the agency and purpose fails whole: no
			// trail event for it.
			if err := s.PutLegalBasis(ctx, &consent.LegalBasis{Agency: "BYT", Purpose: "p", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L"},
				consenttest.TestChange); !errors.Is(err, consent.ErrConflict) {
				t.Errorf("second live basis: %v", err)
			}
			trail, err := s.BasisTrail(ctx, 0, 10)
			if err != nil || len(trail) != 1 || trail[0].Operator != "op.test" || trail[0].Reason != "conformance suite" {
				t.Fatalf("trail: %+v, %v", trail, err)
			}
			bs, err := s.LegalBases(ctx, "BYT", "p")
			if err != nil || len(bs) != 1 || bs[0].Version != 1 || bs[0].Law != "L" {
				t.Fatalf("basis: %+v, %v", bs, err)
			}
		})
	}
}

// TestTrail_TwoPools: basis changes from two replicas at once form one
// valid trail.
func TestTrail_TwoPools(t *testing.T) {
	a, b := twoPools(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			errs <- s.PutLegalBasis(ctx, &consent.LegalBasis{Agency: "BYT", Purpose: fmt.Sprint("p", i), Items: []string{"name"},
				Basis: consent.BasisPublicTask, Law: "L"}, consenttest.TestChange)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	_, verifier := consenttest.Keys(t, "a")
	r, err := consent.Verify(ctx, a, verifier)
	if err != nil || !r.Intact() || r.BasisEvents != 20 || r.LegalBases != 20 {
		t.Fatalf("verify: %+v, %v", r, err)
	}
}
