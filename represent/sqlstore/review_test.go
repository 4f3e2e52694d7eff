package sqlstore_test

// Review of the representation change: failing tests that show a defect
// each, on the real stores (SQLite and PostgreSQL).

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/represent"
)

// TestReview_RevokeRetryAfterDenyOutageDeniesTokens: the mandate is revoked
// in the database, then denying its tokens fails (the deny list is down:
// the grantor is answered 503). The retry the 503 invites is refused as
// "revoked already" (ErrConflict, a 409) without denying anything, so the
// grantee's access tokens under the mandate (and its sub-mandates') stay
// valid until they expire (up to an hour): SECURITY.md 65 and 70.
func TestReview_RevokeRetryAfterDenyOutageDeniesTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		var down atomic.Bool
		e.svc.Deny = func(ctx context.Context, keys ...string) error {
			if down.Load() {
				return idp.ErrUnavailable // the deny list's outage, as its store reports it
			}
			return accesstoken.DenyKeys(ctx, e.idp, e.clock(), keys...)
		}
		a, b, c := e.adult(), e.adult(), e.adult()
		e.org("0100000001", a, represent.OrgActive)
		req := func(grantor, grantee *idp.Citizen) represent.GrantRequest {
			return represent.GrantRequest{GrantorID: grantor.ID, Organisation: "0100000001", Grantee: grantee.PersonalID,
				Services: []string{"tax-return"}, ValidUntil: start.AddDate(1, 0, 0), MayDelegate: true}
		}
		m := e.grant(req(a, b))
		sub := e.grant(req(b, c))

		down.Store(true)
		if _, err := e.svc.Revoke(ctx, a.ID, m.ID); err == nil {
			t.Fatal("revoke with the deny list down succeeded")
		}
		down.Store(false)
		// The grantor retries, as a 503 tells them to.
		_, err := e.svc.Revoke(ctx, a.ID, m.ID)
		if err != nil && !errors.Is(err, represent.ErrConflict) {
			t.Fatalf("retry: %v", err)
		}
		for _, id := range []string{m.ID, sub.ID} {
			if !e.denied(represent.MandateKey(id)) {
				t.Errorf("after the retry (%v) the tokens of mandate %s are not denied: they stay valid until they expire", err, id)
			}
		}
	})
}

// TestReview_SecondMandateForSamePartyCounts: a citizen holding two
// mandates from the same party (one for each of two services) may act for
// the party only under the first: Representations keeps one entry per
// party and drops the second bounded one (service.go add), so Check for
// the second mandate's service is refused (applications for it are
// refused, its login tokens carry the wrong services and rk).
func TestReview_SecondMandateForSamePartyCounts(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		a, b := e.adult(), e.adult()
		e.org("0100000001", a, represent.OrgActive)
		for _, svc := range []string{"tax-return", "land-registry"} {
			e.grant(represent.GrantRequest{GrantorID: a.ID, Organisation: "0100000001", Grantee: b.PersonalID,
				Services: []string{svc}, ValidUntil: start.AddDate(1, 0, 0)})
		}
		o, err := e.rep.GetOrganisation(ctx, "0100000001")
		if err != nil {
			t.Fatal(err)
		}
		for _, svc := range []string{"tax-return", "land-registry"} {
			if _, err := e.svc.Check(ctx, b.ID, o.ID, svc, ""); err != nil {
				t.Errorf("the holder of an accepted, active mandate for %s is refused for it: %v", svc, err)
			}
		}
	})
}

// TestReview_OrgImportAgainDeniesAgain: docs/representation.md and `org
// import` promise that when denying the replaced representative's tokens
// fails after the import committed, "import the same file again to deny
// them again". The second import finds the new representative already
// stored, reports no change, and denies nothing: the former legal
// representative's tokens for the company (and those of every mandate they
// granted) stay valid until they expire.
func TestReview_OrgImportAgainDeniesAgain(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		var down atomic.Bool
		e.svc.Deny = func(ctx context.Context, keys ...string) error {
			if down.Load() {
				return idp.ErrUnavailable
			}
			return accesstoken.DenyKeys(ctx, e.idp, e.clock(), keys...)
		}
		former, successor := e.adult(), e.adult()
		o := e.org("0100000001", former, represent.OrgActive)
		file := func() []*represent.Organisation { // the file, as `org import` parses it each run
			return []*represent.Organisation{{TaxCode: "0100000001", Name: o.Name, LegalRepresentative: successor.PersonalID, Status: represent.OrgActive}}
		}
		down.Store(true)
		if _, err := e.svc.ImportOrganisations(ctx, file()); err == nil {
			t.Fatal("import with the deny list down succeeded")
		}
		if cur, _ := e.rep.GetOrganisation(ctx, "0100000001"); cur.LegalRepresentative != former.PersonalID {
			t.Fatal("an import whose denial failed was written")
		}
		down.Store(false)
		// The operator imports the same file again, as told.
		changes, err := e.svc.ImportOrganisations(ctx, file())
		if err != nil {
			t.Fatal(err)
		}
		if key := represent.LegalRepKey(o.ID, former.ID); !e.denied(key) {
			t.Errorf("after importing again (%d changes reported) the former representative's key %s is not denied", len(changes), key)
		}
	})
}

// TestReview_GuardianEndAgainDeniesAgain: `citizen guardian --end` ends
// the guardianship, then denying the guardian's tokens fails ("ended, but
// the guardian's tokens for the ward could not be denied"). Running the
// command again is refused as "not a guardian" (EndGuardianship finds none
// in force) before anything is denied: the tokens stay valid.
func TestReview_GuardianEndAgainDeniesAgain(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		guardian := e.adult()
		ward := e.citizen("2015-01-01", guardian.PersonalID)
		var down atomic.Bool
		e.svc.Deny = func(ctx context.Context, keys ...string) error {
			if down.Load() {
				return idp.ErrUnavailable
			}
			return accesstoken.DenyKeys(ctx, e.idp, e.clock(), keys...)
		}
		// guardianCmd's --end, run twice.
		end := func() error {
			return e.svc.EndGuardianship(ctx, ward.ID, guardian.ID, func(ctx context.Context) error {
				return e.idp.EndGuardianship(ctx, ward.ID, guardian.ID, e.clock())
			})
		}
		down.Store(true)
		if err := end(); err == nil {
			t.Fatal("deny with the deny list down succeeded")
		}
		down.Store(false)
		err := end()
		if err != nil {
			t.Errorf("running --end again: %v", err)
		}
		if key := represent.GuardianKey(ward.ID, guardian.ID); !e.denied(key) {
			t.Errorf("after running --end again (%v) the guardian's key %s is not denied", err, key)
		}
	})
}
