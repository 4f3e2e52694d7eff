package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// wantRecordBroken checks that verify reports what, naming consent id
// (when not empty).
func (e *tamperEnv) wantRecordBroken(id, what string) {
	e.t.Helper()
	r := e.verify()
	if r.Intact() {
		e.t.Fatalf("tampering went unnoticed: %+v", r)
	}
	if (id != "" && r.Broken.ConsentID != id) || !strings.Contains(r.Broken.What, what) {
		e.t.Fatalf("broken: %v, want consent %q: %q", r.Broken, id, what)
	}
}

// TestRecordTrail_HonestHistory: grants, re-grants, withdrawals and flags
// each append one consent trail event, committed by checkpoints, and an
// honest history verifies.
func TestRecordTrail_HonestHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		rec := testRecord(t, e.s, time.Now().Add(-time.Minute), "name")
		again := *rec
		again.Items, again.UpdatedAt = []string{"name", "address"}, time.Time{}
		if err := e.s.PutRecord(ctx, &again, testReceipt); err != nil || again.ID != rec.ID || again.Version != 2 {
			t.Fatalf("re-grant: %+v %v", again, err)
		}
		if _, err := e.s.WithdrawRecord(ctx, "cit_1", rec.ID, time.Time{}, testReceipt); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.FlagEntry(ctx, "cit_victim", e.victim[0].ID, "không phải tôi", time.Time{}); err != nil {
			t.Fatal(err)
		}
		// A second flag keeps the first and appends nothing.
		if _, err := e.s.FlagEntry(ctx, "cit_victim", e.victim[0].ID, "again", time.Time{}); err != nil {
			t.Fatal(err)
		}
		events, err := e.s.RecordTrail(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, ev := range events {
			actions = append(actions, string(ev.Action))
		}
		if got := strings.Join(actions, " "); got != "granted regranted withdrawn flagged" {
			t.Fatalf("trail: %s", got)
		}
		if _, err := e.cp.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		leaves, err := e.s.CitizenLeaves(ctx, consent.RecordTrailChain, 0, 10)
		if err != nil || len(leaves) != 1 || leaves[0].Seq != 4 {
			t.Fatalf("the trail's head is not committed: %+v %v", leaves, err)
		}
		r := e.verify()
		if !r.Intact() || r.RecordEvents != 4 || r.Records != 1 {
			t.Fatalf("honest history: %+v %v", r, r.Broken)
		}
	})
}

// TestRecordTrail_RecordsEditedByHand: a record inserted, edited,
// withdrawn, restored or deleted by hand differs from the consent trail.
func TestRecordTrail_RecordsEditedByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		rec := testRecord(t, e.s, time.Now().Add(-time.Minute), "name")
		if _, err := e.cp.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ name, set, undo, what string }{
			{"items widened", `items = '["name","address"]'`, `items = '["name"]'`, "in its items: it was edited by hand"},
			{"expiry extended", `expires_at = expires_at + 1000`, `expires_at = expires_at - 1000`, "in its expiry"},
			{"another agency", `agency = 'BCA'`, `agency = 'BYT'`, "in its agency"},
			{"withdrawn by hand", `withdrawn_at = 1`, `withdrawn_at = NULL`, "in its withdrawal"},
			{"evidence replaced", `evidence = 'x'`, `evidence = 'e.e.e'`, "in its evidence"},
		} {
			e.exec(`UPDATE consent_records SET `+c.set+` WHERE id = $1`, rec.ID)
			e.wantRecordBroken(rec.ID, c.what)
			e.exec(`UPDATE consent_records SET `+c.undo+` WHERE id = $1`, rec.ID)
			if r := e.verify(); !r.Intact() {
				t.Fatalf("%s undone: %v", c.name, r.Broken)
			}
		}
		// A record inserted by hand, beside the real one.
		e.exec(`INSERT INTO consent_records (id, citizen_id, client_id, agency, recipient, purpose_code, purpose_text, items, declined, basis,
			notice, method, evidence, version, granted_at, updated_at, expires_at, withdrawn_at, given_by)
			SELECT 'cns_forged', citizen_id, client_id, agency, recipient, 'quang-cao', purpose_text, items, declined, basis,
			notice, method, evidence, version, granted_at, updated_at, expires_at, withdrawn_at, given_by FROM consent_records WHERE id = $1`, rec.ID)
		e.wantRecordBroken("cns_forged", "no event in the consent trail: it was inserted by hand")
		e.exec(`DELETE FROM consent_records WHERE id = 'cns_forged'`)
		// The real one deleted (with its receipts).
		e.exec(`DELETE FROM consent_receipts WHERE consent_id = $1`, rec.ID)
		e.exec(`DELETE FROM consent_records WHERE id = $1`, rec.ID)
		e.wantRecordBroken(rec.ID, "no longer stored: it was deleted by hand")
	})
}

// TestRecordTrail_EventsEditedByHand: the trail is a hash chain whose
// head checkpoints commit: an event edited to match an edited record, or
// the trail rewritten with every hash recomputed, is found.
func TestRecordTrail_EventsEditedByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		rec := testRecord(t, e.s, time.Now().Add(-time.Minute), "name")
		if _, err := e.s.WithdrawRecord(ctx, "cit_1", rec.ID, time.Time{}, testReceipt); err != nil {
			t.Fatal(err)
		}
		if _, err := e.cp.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		// The operator drops the withdrawal's event and restores the
		// record, moving the trail's head back: the committed leaf differs.
		events, err := e.s.RecordTrail(ctx, 0, 10)
		if err != nil || len(events) != 2 {
			t.Fatal(events, err)
		}
		e.exec(`DELETE FROM consent_record_trail WHERE seq = 2`)
		e.exec(`UPDATE consent_records SET withdrawn_at = NULL WHERE id = $1`, rec.ID)
		e.exec(`UPDATE consent_chain_heads SET seq = 1, hash = $1 WHERE citizen_id = $2`, events[0].Hash, consent.RecordTrailChain)
		r := e.verify()
		if r.Intact() || r.Broken.CitizenID != consent.RecordTrailChain {
			t.Fatalf("a withdrawal's event removed: %+v", r.Broken)
		}
		// An event's state edited in place.
		e.exec(`UPDATE consent_record_trail SET state = REPLACE(state, '"name"', '"address"') WHERE seq = 1`)
		r = e.verify()
		if r.Intact() || r.Broken.Seq != 1 || !strings.Contains(r.Broken.What, "does not match its contents") {
			t.Fatalf("an event edited: %+v", r.Broken)
		}
	})
}

// TestRecordTrail_FlagsEditedByHand: a flag added, changed or erased by
// hand differs from the consent trail.
func TestRecordTrail_FlagsEditedByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		id := e.victim[2].ID
		if _, err := e.s.FlagEntry(ctx, "cit_victim", id, "not me", time.Time{}); err != nil {
			t.Fatal(err)
		}
		want := func(entry, what string) {
			t.Helper()
			r := e.verify()
			if r.Intact() || r.Broken.EntryID != entry || !strings.Contains(r.Broken.What, what) {
				t.Fatalf("broken: %+v, want entry %s: %q", r.Broken, entry, what)
			}
		}
		e.exec(`UPDATE consent_log SET flag_note = 'it was me after all' WHERE id = $1`, id)
		want(id, "flag note differs")
		e.exec(`UPDATE consent_log SET flag_note = 'not me', flagged_at = flagged_at + 86400000 WHERE id = $1`, id)
		want(id, "flag time")
		e.exec(`UPDATE consent_log SET flagged_at = flagged_at - 86400000 WHERE id = $1`, id)
		if r := e.verify(); !r.Intact() {
			t.Fatalf("undone: %v", r.Broken)
		}
		other := e.victim[3].ID
		e.exec(`UPDATE consent_log SET flagged_at = 1, flag_note = 'x' WHERE id = $1`, other)
		want(other, "flagged by hand")
	})
}

// TestRecordTrail_Adoption: records and flags stored before migration
// 0007 are adopted into the trail once, and verify; a record inserted by
// hand and adopted by putting the marker back is reported.
func TestRecordTrail_Adoption(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := be.open(t)
			s := sqlstore.New(db, d)
			if err := s.MigrateTo(ctx, 6); err != nil {
				t.Fatal(err)
			}
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			insert := func(id string, withdrawn any) {
				t.Helper()
				exec(`INSERT INTO consent_records (id, citizen_id, client_id, agency, recipient, purpose_code, purpose_text, items, declined, basis,
					notice, method, evidence, version, granted_at, updated_at, expires_at, withdrawn_at, given_by)
					VALUES ($1, 'cit_old', 'his-app', 'BYT', 'HIS', $1, 'Khám', '["name"]', '[]', 'consent', 'v1', 'eid_app', 'e.e.e', 2,
					1700000000000, 1700000001000, 1900000000000, $2, '')`, id, withdrawn)
			}
			insert("cns_live", nil)
			insert("cns_gone", int64(1700000002000))
			// The entry as today's code appends it: 0008's column (which
			// the append sets) exists only for the append.
			exec(`ALTER TABLE consent_chain_heads ADD COLUMN pending_since BIGINT NOT NULL DEFAULT 0`)
			if err := s.Append(ctx, &consent.Entry{ID: "log_old", CitizenID: "cit_old", At: time.Now(), Channel: consent.ChannelUserInfo,
				Outcome: consent.OutcomeReleased}); err != nil {
				t.Fatal(err)
			}
			exec(`ALTER TABLE consent_chain_heads DROP COLUMN pending_since`)
			exec(`UPDATE consent_log SET flagged_at = 1700000003000, flag_note = 'not me' WHERE id = 'log_old'`)
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil { // once only
				t.Fatal(err)
			}
			events, err := s.RecordTrail(ctx, 0, 10)
			if err != nil || len(events) != 3 || events[0].Action != consent.RecordAdopted || events[2].Action != consent.FlagAdopted {
				t.Fatalf("adopted: %+v %v", events, err)
			}
			signer, verifier := consenttest.Keys(t, "a")
			cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
			if _, err := cp.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// The adopted records live on: a re-grant and a withdrawal.
			if _, err := s.WithdrawRecord(ctx, "cit_old", "cns_live", time.Time{}, testReceipt); err != nil {
				t.Fatal(err)
			}
			r, err := consent.Verify(ctx, s, verifier)
			if err != nil || !r.Intact() || r.Records != 2 || r.RecordEvents != 4 {
				t.Fatalf("after adoption: %+v %v %v", r, r.Broken, err)
			}
			// An operator inserts a record and puts the marker back.
			insert("cns_forged", nil)
			exec(`INSERT INTO consent_record_adopt (id) VALUES (1)`)
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			r, err = consent.Verify(ctx, s, verifier)
			if err != nil || r.Intact() || !strings.Contains(r.Broken.What, "adoption after the trail began") {
				t.Fatalf("a late adoption: %+v %v", r.Broken, err)
			}
		})
	}
}

// TestRecordTrail_VerifyWhileGranting: verify running while citizens
// grant, re-grant, withdraw and flag reports nothing: a record or flag
// newer than the trail it read sends it to the trail's newer events.
func TestRecordTrail_VerifyWhileGranting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		done := make(chan error, 1)
		go func() {
			var err error
			defer func() { done <- err }()
			for i := range 30 {
				r := &consent.Record{CitizenID: fmt.Sprint("cit_busy", i%3), ClientID: "his-app", Agency: "BYT", Purpose: consent.Purpose{Code: "kham-benh"},
					Items: []string{"name"}, Method: consent.MethodWebForm, Evidence: "form", ExpiresAt: time.Now().Add(time.Hour), ID: consent.NewID("cns")}
				if err = e.s.PutRecord(ctx, r, testReceipt); err != nil {
					return
				}
				if i%2 == 0 {
					if _, err = e.s.WithdrawRecord(ctx, r.CitizenID, r.ID, time.Time{}, testReceipt); err != nil {
						return
					}
				}
				if i < len(e.victim) {
					if _, err = e.s.FlagEntry(ctx, "cit_victim", e.victim[i].ID, "not me", time.Time{}); err != nil {
						return
					}
				}
				if i%10 == 0 {
					if _, err = e.cp.Commit(ctx); err != nil {
						return
					}
				}
			}
		}()
		for running := true; running; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				running = false
			default:
			}
			if r := e.verify(); !r.Intact() {
				t.Fatalf("verify while granting: %v", r.Broken)
			}
		}
	})
}

// TestConcurrency_ConsentTrail runs, side by side on PostgreSQL,
// releases under consent (record row shared, then a citizen's head),
// re-grants and withdrawals (record row, then the consent trail's head),
// flags (entry row, then the trail's head) and checkpoints (the trail's
// head, then citizens' heads): none may fail (deadlock detected), and the
// result verifies.
func TestConcurrency_ConsentTrail(t *testing.T) {
	db := dbtest.Postgres(t)
	s := migrated(t, db, sqldb.PostgreSQL)
	ctx := t.Context()
	signer, verifier := consenttest.Keys(t, "a")
	cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
	const citizens = 4
	var flaggable []*consent.Entry
	for i := range citizens * 8 {
		en := &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("cit_", i%citizens), At: time.Now(),
			Channel: consent.ChannelUserInfo, Outcome: consent.OutcomeReleased}
		if err := s.Append(ctx, en); err != nil {
			t.Fatal(err)
		}
		flaggable = append(flaggable, en)
	}
	grant := func(citizen string) (*consent.Record, error) {
		r := &consent.Record{ID: consent.NewID("cns"), CitizenID: citizen, ClientID: "his-app", Agency: "BYT", Purpose: consent.Purpose{Code: "kham-benh"},
			Items: []string{"name"}, Method: consent.MethodWebForm, Evidence: "form", ExpiresAt: time.Now().Add(time.Hour)}
		return r, s.PutRecord(ctx, r, testReceipt)
	}
	load := newMixedLoad(t, 1500*time.Millisecond, func(err error) bool {
		var refused *consent.RefusedError
		// a withdrawal overtook the release
		return errors.As(err, &refused) || errors.Is(err, consent.ErrWithdrawn) || errors.Is(err, consent.ErrNotFound)
	})
	loop := load.loop
	for w := range 3 {
		loop("release", func(i int) error {
			citizen := fmt.Sprint("cit_", (w+i)%citizens)
			r, err := s.LiveRecord(ctx, citizen, "his-app", "kham-benh")
			if err != nil {
				return err
			}
			return s.AppendRelease(ctx, &consent.Entry{ID: consent.NewID("log"), CitizenID: citizen, At: time.Now(),
				Actor: consent.Actor{Agency: "BYT", ClientID: "his-app"}, Channel: consent.ChannelBroker, Items: []string{"name"},
				Purpose: "kham-benh", Basis: consent.BasisConsent, ConsentID: r.ID, Outcome: consent.OutcomeReleased})
		})
	}
	loop("grant-withdraw", func(i int) error {
		r, err := grant(fmt.Sprint("cit_", i%citizens))
		if err != nil || i%2 == 1 {
			return err
		}
		_, err = s.WithdrawRecord(ctx, r.CitizenID, r.ID, time.Time{}, testReceipt)
		return err
	})
	loop("flag", func(i int) error {
		en := flaggable[i%len(flaggable)] // a second flag changes nothing
		_, err := s.FlagEntry(ctx, en.CitizenID, en.ID, "not me", time.Time{})
		return err
	})
	loop("checkpoint", func(int) error {
		_, err := cp.Commit(ctx)
		return err
	})
	load.verify(t, cp, s)
}

// TestRecordTrail_ReleaseOfItemsWidenedByHand: an operator widens a
// consent's items by hand, has the broker release them, and restores the
// record: the release names items no version of the consent covered.
// Items a re-grant added are covered from the re-grant on.
func TestRecordTrail_ReleaseOfItemsWidenedByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		rec := testRecord(t, e.s, time.Now().Add(-time.Minute), "name")
		release := func(items ...string) *consent.Entry {
			t.Helper()
			en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_1", At: time.Now(),
				Actor: consent.Actor{Agency: "BYT", ClientID: "his-app"}, Channel: consent.ChannelBroker, Items: items,
				Purpose: "kham-benh", Basis: consent.BasisConsent, ConsentID: rec.ID, Outcome: consent.OutcomeReleased}
			if err := e.s.AppendRelease(ctx, en); err != nil {
				t.Fatal(err)
			}
			return en
		}
		release("name")
		e.exec(`UPDATE consent_records SET items = '["name","address"]' WHERE id = $1`, rec.ID)
		forged := release("name", "address")
		e.exec(`UPDATE consent_records SET items = '["name"]' WHERE id = $1`, rec.ID)
		r := e.verify()
		if r.Intact() || r.Broken.EntryID != forged.ID || !strings.Contains(r.Broken.What, "it released address, which consent "+rec.ID+" did not cover") {
			t.Fatalf("broken: %v", r.Broken)
		}
		e.clear("cit_1")
		// Honest: a re-grant adds address, and a release of it follows.
		again := *rec
		again.Items, again.UpdatedAt = []string{"name", "address"}, time.Time{}
		if err := e.s.PutRecord(ctx, &again, testReceipt); err != nil {
			t.Fatal(err)
		}
		release("name", "address")
		if r := e.verify(); !r.Intact() {
			t.Fatalf("a release after the re-grant: %v", r.Broken)
		}
	})
}

// BenchmarkGrant measures new consent grants (record, receipt and the
// consent trail's event, in one transaction that takes the trail's head
// last), from many goroutines for many citizens: every grant waits for
// the trail's head, so this is the platform's grant throughput on one
// database.
func BenchmarkGrant(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			db, d := be.open(b)
			s := migrated(b, db, d)
			var n atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					r := &consent.Record{ID: consent.NewID("cns"), CitizenID: fmt.Sprint("cit_", i), ClientID: "his-app", Agency: "BYT",
						Purpose: consent.Purpose{Code: "kham-benh"}, Items: []string{"name"}, Method: consent.MethodWebForm, Evidence: "form",
						ExpiresAt: time.Now().Add(time.Hour)}
					if err := s.PutRecord(b.Context(), r, testReceipt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}

// TestRecordTrail_HeadPendingSince: a grant marks the consent trail's head
// pending with the time it became so, as appends mark citizens' heads, so
// checkpoints take it in its turn (oldest first).
func TestRecordTrail_HeadPendingSince(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		if _, err := e.cp.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Second).UnixMilli()
		testRecord(t, e.s, time.Now(), "name")
		var pending bool
		var since int64
		if err := e.db.QueryRowContext(t.Context(), `SELECT pending, pending_since FROM consent_chain_heads WHERE citizen_id = $1`,
			consent.RecordTrailChain).Scan(&pending, &since); err != nil {
			t.Fatal(err)
		}
		if !pending || since < before {
			t.Fatalf("the consent trail's head after a grant: pending %v since %d, want pending since about now (>= %d)", pending, since, before)
		}
	})
}

// headAfterChain answers ChainHead as it stood before the chain's first
// entry was appended: the first read of each head finds none, as verify
// reading the head before an append it then reads in the chain.
type headAfterChain struct {
	consent.AuditStore
	asked sync.Map
}

func (h *headAfterChain) ChainHead(ctx context.Context, citizenID string) (*consent.Head, error) {
	if _, again := h.asked.LoadOrStore(citizenID, true); !again {
		return nil, consent.ErrNotFound
	}
	return h.AuditStore.ChainHead(ctx, citizenID)
}

// A chain whose first entry came after its head was read is intact (the
// head is read again); a chain with no head at all is still broken.
func TestVerify_HeadReadBeforeTheFirstEntry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		r := &consent.Record{CitizenID: "cit_new", ClientID: "his-app", Agency: "BYT", Purpose: consent.Purpose{Code: "kham-benh"},
			Items: []string{"name"}, Method: consent.MethodWebForm, Evidence: "form", ExpiresAt: time.Now().Add(time.Hour), ID: consent.NewID("cns")}
		if err := e.s.PutRecord(t.Context(), r, testReceipt); err != nil {
			t.Fatal(err)
		}
		rep, err := consent.Verify(t.Context(), &headAfterChain{AuditStore: e.s}, e.verifier)
		if err != nil || !rep.Intact() {
			t.Fatalf("heads read before their chains: %v %v", err, rep.Broken)
		}
	})
}
