package sqlstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
)

// TestVerify_ForgedBasisReference: an operator who appends releases
// through the store (bypassing the service's decision) with a consistent
// hash chain but a legal basis the trail does not back is named by
// verify, entry by entry: a basis never granted, a version never made,
// items outside the version, another agency's basis, another law, a time
// before the version or after the change that ended it, and a broker
// release under a legal basis that names none. The service's own path
// (AppendRelease) refuses the same forged references.
func TestVerify_ForgedBasisReference(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L1"}
		if err := e.s.PutLegalBasis(ctx, b, consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		entry := func(mod func(en *consent.Entry)) *consent.Entry {
			en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_forged", At: time.Now(), Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"},
				Channel: consent.ChannelBroker, Items: []string{"name"}, Purpose: "bao-hiem", Basis: consent.BasisPublicTask, Law: "L1",
				BasisID: b.ID, BasisVersion: 1, Outcome: consent.OutcomeReleased}
			if mod != nil {
				mod(en)
			}
			return en
		}
		// forged appends en through the store, checks that verify names
		// it, then removes the citizen's chain (never checkpointed) by hand.
		forged := func(name, what string, en *consent.Entry) {
			t.Helper()
			if err := e.s.Append(ctx, en); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			r := e.verify()
			if r.Intact() || r.Broken.CitizenID != "cit_forged" || r.Broken.EntryID != en.ID || r.Broken.Seq != en.Seq ||
				r.Broken.BasisID != en.BasisID || !strings.Contains(r.Broken.What, what) {
				t.Errorf("%s: broken %+v, want entry %s: %q", name, r.Broken, en.ID, what)
			}
			e.exec(`DELETE FROM consent_log WHERE citizen_id = 'cit_forged'`)
			e.exec(`DELETE FROM consent_chain_heads WHERE citizen_id = 'cit_forged'`)
			if r := e.verify(); !r.Intact() {
				t.Fatalf("%s: cleaned up: %+v", name, r.Broken)
			}
		}
		// The genuine release verifies; a forged one after it is named
		// (the first entry that fails, not the first of the chain).
		if err := e.s.AppendRelease(ctx, entry(nil)); err != nil {
			t.Fatal(err)
		}
		if r := e.verify(); !r.Intact() {
			t.Fatalf("a genuine release: %+v", r.Broken)
		}
		forged("version never made", "version 7 of legal basis "+b.ID+", which the trail never made", entry(func(en *consent.Entry) { en.BasisVersion = 7 }))
		forged("invented basis", "legal basis lb_invented, which the trail never granted", entry(func(en *consent.Entry) { en.BasisID = "lb_invented" }))
		forged("items outside", "it released birthdate, outside version 1", entry(func(en *consent.Entry) { en.Items = []string{"name", "birthdate"} }))
		forged("another agency", "not this entry's", entry(func(en *consent.Entry) { en.Actor.Agency = "THUE" }))
		forged("another law", "basis or law differ from version 1", entry(func(en *consent.Entry) { en.Law = "Luật khác" }))
		grantedAt := lastEventAt(t, e)
		forged("before the grant", "outside version 1", entry(func(en *consent.Entry) { en.At = grantedAt.Add(-time.Minute) }))
		forged("no basis named", "names none", entry(func(en *consent.Entry) { en.BasisID, en.BasisVersion = "", 0 }))

		// The service's path refuses forged references, naming the basis.
		for _, en := range []*consent.Entry{entry(func(en *consent.Entry) { en.BasisVersion = 7 }), entry(func(en *consent.Entry) { en.BasisID = "lb_invented" }),
			entry(func(en *consent.Entry) { en.Actor.Agency = "THUE" })} {
			var refused *consent.RefusedError
			if err := e.s.AppendRelease(ctx, en); !errors.As(err, &refused) || !strings.Contains(refused.Missing["name"], en.BasisID) {
				t.Errorf("AppendRelease of %+v: %v", en, err)
			}
		}
		if err := e.s.AppendRelease(ctx, entry(func(en *consent.Entry) { en.BasisID = "" })); !errors.Is(err, consent.ErrInvalid) {
			t.Errorf("AppendRelease naming no basis: %v", err)
		}

		// After an amendment, version 1 stood until it: a release claiming
		// it later is named; one under version 2 verifies. After the
		// revocation, a release claiming version 2 is named.
		if _, err := e.s.AmendLegalBasis(ctx, b.ID, []string{"name", "birthdate"}, "L2", consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		later := lastEventAt(t, e).Add(time.Minute) // past the clock skew verify allows
		forged("version 1 after its amendment", "outside version 1", entry(func(en *consent.Entry) { en.At = later }))
		v2 := func(en *consent.Entry) {
			en.BasisVersion, en.Law, en.Items, en.At = 2, "L2", []string{"name", "birthdate"}, later
		}
		if err := e.s.Append(ctx, entry(v2)); err != nil {
			t.Fatal(err)
		}
		if r := e.verify(); !r.Intact() {
			t.Fatalf("a release under version 2: %+v", r.Broken)
		}
		e.exec(`DELETE FROM consent_log WHERE citizen_id = 'cit_forged'`)
		e.exec(`DELETE FROM consent_chain_heads WHERE citizen_id = 'cit_forged'`)
		if err := e.s.RevokeLegalBasis(ctx, b.ID, consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		revokedAt := lastEventAt(t, e)
		forged("after the revocation", "outside version 2", entry(func(en *consent.Entry) { v2(en); en.At = revokedAt.Add(time.Minute) }))
	})
}

// TestVerify_BasisClockSkew: a release's time comes from the replica that
// served it, a basis change's from the host that made it; releases 300 ms
// before the grant and 300 ms after the revocation (clocks that disagree)
// verify, while one a minute outside is still named.
func TestVerify_BasisClockSkew(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L1"}
		if err := e.s.PutLegalBasis(ctx, b, consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		grantedAt := lastEventAt(t, e)
		if err := e.s.RevokeLegalBasis(ctx, b.ID, consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		revokedAt := lastEventAt(t, e)
		release := func(at time.Time) *consent.Entry {
			en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_skew", At: at, Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"},
				Channel: consent.ChannelBroker, Items: []string{"name"}, Purpose: "bao-hiem", Basis: consent.BasisPublicTask, Law: "L1",
				BasisID: b.ID, BasisVersion: 1, Outcome: consent.OutcomeReleased}
			if err := e.s.Append(ctx, en); err != nil {
				t.Fatal(err)
			}
			return en
		}
		release(grantedAt.Add(-300 * time.Millisecond))
		release(revokedAt.Add(300 * time.Millisecond))
		if r := e.verify(); !r.Intact() {
			t.Fatalf("releases 300 ms outside (clock skew): %+v", r.Broken)
		}
		late := release(revokedAt.Add(time.Minute))
		if r := e.verify(); r.Intact() || r.Broken.EntryID != late.ID || !strings.Contains(r.Broken.What, "outside version 1") {
			t.Errorf("a release a minute after the revocation: %+v", r.Broken)
		}
	})
}

// lastEventAt is the time of the trail's last event.
func lastEventAt(t *testing.T, e *tamperEnv) time.Time {
	t.Helper()
	trail, err := e.s.BasisTrail(t.Context(), 0, 100)
	if err != nil || len(trail) == 0 {
		t.Fatalf("trail: %v", err)
	}
	return trail[len(trail)-1].At
}

// TestVerify_BasisTimesEditedByHand: a basis's granted, amended and
// revoked times must be its trail events' times; one edited by hand is
// named with the event it contradicts.
func TestVerify_BasisTimesEditedByHand(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *tamperEnv) {
		ctx := t.Context()
		b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L1"}
		if err := e.s.PutLegalBasis(ctx, b, consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.AmendLegalBasis(ctx, b.ID, []string{"name", "birthdate"}, "L2", consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		if err := e.s.RevokeLegalBasis(ctx, b.ID, consenttest.TestChange); err != nil {
			t.Fatal(err)
		}
		if r := e.verify(); !r.Intact() {
			t.Fatalf("untouched: %+v", r.Broken)
		}
		for _, c := range []struct{ column, what string }{
			{"created_at", "its granted time"},
			{"updated_at", "its last change time"},
			{"revoked_at", "its revocation time"},
		} {
			e.exec(`UPDATE consent_legal_bases SET ` + c.column + ` = ` + c.column + ` - 60000 WHERE id = '` + b.ID + `'`)
			r := e.verify()
			if r.Intact() || r.Broken.BasisID != b.ID || !strings.Contains(r.Broken.What, c.what) || !strings.Contains(r.Broken.What, "edited by hand") {
				t.Errorf("%s edited: %+v", c.column, r.Broken)
			}
			e.exec(`UPDATE consent_legal_bases SET ` + c.column + ` = ` + c.column + ` + 60000 WHERE id = '` + b.ID + `'`)
			if r := e.verify(); !r.Intact() {
				t.Fatalf("%s restored: %+v", c.column, r.Broken)
			}
		}
	})
}
