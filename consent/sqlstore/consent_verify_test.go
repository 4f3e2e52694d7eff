package sqlstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// forgedIn returns a helper that appends en straight through the store
// (as an operator bypassing the service could), checks that verify names
// it with what, then removes the entry's chain (never checkpointed).
func forgedIn(t *testing.T, e *tamperEnv) func(name, what string, en *consent.Entry) {
	return func(name, what string, en *consent.Entry) {
		t.Helper()
		if err := e.s.Append(t.Context(), en); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := e.verify()
		if r.Intact() || r.Broken.CitizenID != en.CitizenID || r.Broken.EntryID != en.ID || !strings.Contains(r.Broken.What, what) {
			t.Errorf("%s: broken %+v, want entry %s: %q", name, r.Broken, en.ID, what)
		}
		e.clear(en.CitizenID)
	}
}

func (e *tamperEnv) clear(citizen string) {
	e.t.Helper()
	e.exec(`DELETE FROM consent_log WHERE citizen_id = $1`, citizen)
	e.exec(`DELETE FROM consent_chain_heads WHERE citizen_id = $1`, citizen)
	if r := e.verify(); !r.Intact() {
		e.t.Fatalf("cleaned up: %+v", r.Broken)
	}
}

// TestVerify_ForgedConsentReference: a release under consent must name a
// record of the citizen's, given to its client (and agency, for the
// broker) for its purpose, granted by its time and not withdrawn before
// it (within the clock skew verify allows).
func TestVerify_ForgedConsentReference(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		rec := testRecord(t, e.s, time.Now(), "name")
		forged := forgedIn(t, e)
		entry := func(mod func(en *consent.Entry)) *consent.Entry {
			en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_1", At: rec.GrantedAt.Add(time.Second),
				Actor: consent.Actor{Agency: "BYT", ClientID: "his-app"}, Channel: consent.ChannelBroker, Items: []string{"name"},
				Purpose: "kham-benh", Basis: consent.BasisConsent, ConsentID: rec.ID, Outcome: consent.OutcomeReleased}
			if mod != nil {
				mod(en)
			}
			return en
		}
		honest := func(name string, en *consent.Entry) {
			t.Helper()
			if err := e.s.Append(ctx, en); err != nil {
				t.Fatal(err)
			}
			if r := e.verify(); !r.Intact() {
				t.Errorf("%s: %+v", name, r.Broken)
			}
		}
		honest("a release under the consent", entry(nil))
		// An ID token release is logged with the client's current agency,
		// which may have changed since the grant.
		honest("an ID token release after the client moved agency", entry(func(en *consent.Entry) {
			en.Channel, en.Actor.Agency = consent.ChannelIDToken, "BHXH"
		}))
		honest("300 ms before the grant (clock skew)", entry(func(en *consent.Entry) { en.At = rec.GrantedAt.Add(-300 * time.Millisecond) }))
		e.clear("cit_1")

		forged("no consent named", "names no consent", entry(func(en *consent.Entry) { en.ConsentID = "" }))
		forged("invented consent", "which the citizen never gave", entry(func(en *consent.Entry) { en.ConsentID = "cns_invented" }))
		forged("another citizen's consent", "which the citizen never gave", entry(func(en *consent.Entry) { en.CitizenID = "cit_2" }))
		forged("another client", "not to this entry's", entry(func(en *consent.Entry) { en.Actor.ClientID = "other-app" }))
		forged("another purpose", "not to this entry's", entry(func(en *consent.Entry) { en.Purpose = "quang-cao" }))
		forged("the broker for another agency", "not to this entry's", entry(func(en *consent.Entry) { en.Actor.Agency = "BHXH" }))
		forged("before the grant", "before consent "+rec.ID+" was granted", entry(func(en *consent.Entry) { en.At = rec.GrantedAt.Add(-time.Minute) }))

		withdrawn, err := e.s.WithdrawRecord(ctx, "cit_1", rec.ID, time.Time{}, testReceipt)
		if err != nil {
			t.Fatal(err)
		}
		honest("300 ms after the withdrawal (clock skew)", entry(func(en *consent.Entry) { en.At = withdrawn.WithdrawnAt.Add(300 * time.Millisecond) }))
		e.clear("cit_1")
		forged("after the withdrawal", "after consent "+rec.ID+" was withdrawn", entry(func(en *consent.Entry) { en.At = withdrawn.WithdrawnAt.Add(time.Minute) }))
	})
}

// TestVerify_LegalBasisNamedOnEveryChannel: only an operator's look-up
// releases under a legal basis without naming a registered one.
func TestVerify_LegalBasisNamedOnEveryChannel(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		entry := func(ch consent.Channel) *consent.Entry {
			return &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_1", At: time.Now(), Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"},
				Channel: ch, Items: []string{"name"}, Purpose: "bao-hiem", Basis: consent.BasisPublicTask, Law: "L1", Outcome: consent.OutcomeReleased}
		}
		lookup := entry(consent.ChannelOperator)
		lookup.Actor = consent.Actor{Operator: "op"}
		if err := e.s.Append(t.Context(), lookup); err != nil {
			t.Fatal(err)
		}
		if r := e.verify(); !r.Intact() {
			t.Fatalf("an operator's look-up: %+v", r.Broken)
		}
		e.clear("cit_1")
		forged := forgedIn(t, e)
		for _, ch := range []consent.Channel{consent.ChannelIDToken, consent.ChannelUserInfo, consent.ChannelApplication, consent.ChannelPrefill} {
			forged(string(ch), "on channel "+string(ch)+" under a legal basis but the entry names none", entry(ch))
		}
	})
}

// TestVerify_OlderHashForm: new entries are sealed in the newest hash
// form; an entry in the older form (which covers no basis id or version)
// after one in the newer form was written by hand.
func TestVerify_OlderHashForm(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		var last *consent.Entry
		for range 2 {
			last = &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_1", At: time.Now(), Channel: consent.ChannelUserInfo,
				Basis: consent.BasisCitizenRequest, Outcome: consent.OutcomeReleased}
			if err := e.s.Append(ctx, last); err != nil {
				t.Fatal(err)
			}
		}
		// Re-seal the last entry in form 1, its hash and the head with it:
		// a chain that links.
		last.V = 1
		last.Hash = last.ComputeHash()
		e.exec(`UPDATE consent_log SET v = 1, hash = $1 WHERE id = $2`, last.Hash, last.ID)
		e.exec(`UPDATE consent_chain_heads SET hash = $1 WHERE citizen_id = 'cit_1'`, last.Hash)
		e.wantBroken("cit_1", last.Seq, last.ID, "its hash form (version 1) is older than the entry before it (version 2)")
	})
}
