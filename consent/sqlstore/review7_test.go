package sqlstore_test

// Review findings (branch review7): each test states what an outsider or
// an operator with SQL access can do today and fails until it is fixed.

import (
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// TestReview_ConsentRecordRewrittenByHand: consent records have no trail
// and verify never compares them with their signed receipts. An operator
// who un-withdraws a citizen's consent and widens its items by SQL can
// then have the broker release the widened items, and `onedoor audit
// verify` still reports the log intact, although the withdrawal receipt
// (and the grant receipt naming only "name") are stored beside it.
func TestReview_ConsentRecordRewrittenByHand(t *testing.T) {
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
		if r := e.verify(); r.Intact() {
			t.Errorf("audit verify reports intact after consent %s was un-withdrawn and widened by hand and released under", rec.ID)
		}
	})
}

// TestReview_FlagErasedByHand: the citizen's "this wasn't me" lives
// outside every hash and checkpoint: an operator who clears it (the
// evidence that a release was disputed) is not noticed by verify.
func TestReview_FlagErasedByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		id := e.victim[1].ID
		if _, err := e.s.FlagEntry(ctx, "cit_victim", id, "not me", time.Time{}); err != nil {
			t.Fatal(err)
		}
		e.exec(`UPDATE consent_log SET flagged_at = NULL, flag_note = '' WHERE id = $1`, id)
		if r := e.verify(); r.Intact() {
			t.Errorf("audit verify reports intact after the citizen's flag on %s was erased by hand", id)
		}
	})
}
