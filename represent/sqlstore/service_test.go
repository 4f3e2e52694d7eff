package sqlstore_test

// The representation service on the real stores: the business registry
// and mandates here, the citizen registry and the deny list of the
// identity provider's store on the same database, and an injected clock.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/sqlite"
	idpsql "github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/represent"
	"github.com/onedoor/onedoor/represent/sqlstore"
)

type env struct {
	t   *testing.T
	svc *represent.Service
	idp *idpsql.Store
	rep *sqlstore.Store
	mu  sync.Mutex
	now time.Time
	n   int
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) set(t time.Time) {
	e.mu.Lock()
	e.now = t
	e.mu.Unlock()
}

var start = time.Date(2026, 6, 1, 3, 0, 0, 0, time.UTC)

func newEnv(t *testing.T, db func(t testing.TB) (*sql.DB, sqldb.Dialect)) *env {
	t.Helper()
	e := &env{t: t, now: start}
	d, dialect := db(t)
	if dialect == sqldb.SQLite {
		e.idp = sqlite.New(d, idpsql.WithNow(e.clock))
	} else {
		e.idp = postgres.New(d, idpsql.WithNow(e.clock))
	}
	if err := e.idp.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.rep = open(t, d, dialect, sqlstore.WithNow(e.clock))
	e.svc = &represent.Service{Store: e.rep, Registry: idp.RepresentRegistry{Citizens: e.idp}, Now: e.clock,
		Deny: func(ctx context.Context, keys ...string) error {
			return accesstoken.DenyKeys(ctx, e.idp, e.clock(), keys...)
		}}
	return e
}

// citizen registers a citizen born on birthdate with registry guardians
// (personal ids) and returns them.
func (e *env) citizen(birthdate string, guardians ...string) *idp.Citizen {
	e.t.Helper()
	e.n++
	c := &idp.Citizen{ID: fmt.Sprintf("sub-%d", e.n), PersonalID: fmt.Sprintf("0010%08d", e.n), FamilyName: "Demo",
		GivenName: fmt.Sprintf("Người %d", e.n), Birthdate: birthdate, Gender: "other", CreatedAt: start, Guardians: guardians}
	if err := e.idp.CreateCitizens(e.t.Context(), []*idp.Citizen{c}); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) adult() *idp.Citizen { return e.citizen("1980-01-01") }

func (e *env) org(taxCode string, rep *idp.Citizen, status string) *represent.Organisation {
	e.t.Helper()
	o := &represent.Organisation{TaxCode: taxCode, Name: "Công ty Demo " + taxCode, LegalRepresentative: rep.PersonalID, Status: status}
	if _, err := e.rep.PutOrganisations(e.t.Context(), []*represent.Organisation{o}); err != nil {
		e.t.Fatal(err)
	}
	return o
}

func (e *env) denied(key string) bool {
	e.t.Helper()
	ok, err := e.idp.AnyRevoked(e.t.Context(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// acts lists whom the citizen may act for now, as basis:ref.
func (e *env) acts(c *idp.Citizen) []string {
	e.t.Helper()
	rs, err := e.svc.Representations(e.t.Context(), c.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	out := []string{}
	for _, r := range rs {
		out = append(out, string(r.Basis)+":"+r.Party.Ref())
	}
	return out
}

// grant grants and has the grantee accept.
func (e *env) grant(req represent.GrantRequest) *represent.Mandate {
	e.t.Helper()
	m, err := e.svc.Grant(e.t.Context(), req)
	if err != nil {
		e.t.Fatalf("grant: %v", err)
	}
	if _, err := e.svc.Accept(e.t.Context(), m.GranteeID, m.ID); err != nil {
		e.t.Fatalf("accept: %v", err)
	}
	return m
}

func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, newEnv(t, b.open)) })
	}
}

func TestServiceLegalRepresentative(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		boss, heir := e.adult(), e.adult()
		e.org("0100000001", boss, represent.OrgActive)
		e.org("0100000002", boss, represent.OrgSuspended)
		if got := e.acts(boss); len(got) != 1 || got[0] != "legal_representative:0100000001" {
			t.Fatalf("the legal representative acts for %v, want only the active organisation", got)
		}
		// A mandate the legal representative grants works until they are
		// replaced; then it and they stop, and their key is denied.
		clerk := e.adult()
		m := e.grant(represent.GrantRequest{GrantorID: boss.ID, Organisation: "0100000001", Grantee: clerk.PersonalID,
			Services: []string{"tax-return"}, ValidUntil: start.AddDate(1, 0, 0)})
		if got := e.acts(clerk); len(got) != 1 || got[0] != "mandate:0100000001" {
			t.Fatalf("the clerk acts for %v", got)
		}
		r, err := e.svc.Check(ctx, clerk.ID, m.Party.ID, "tax-return", "")
		if err != nil || len(r.Chain) != 2 || r.Chain[0] != represent.MandateKey(m.ID) || r.Chain[1] != represent.LegalRepKey(m.Party.ID, boss.ID) {
			t.Fatalf("the clerk's chain: %v %+v", err, r)
		}
		if _, err := e.svc.Check(ctx, clerk.ID, m.Party.ID, "land-title", ""); !errors.Is(err, represent.ErrNotRepresented) {
			t.Errorf("a service the mandate does not cover: %v", err)
		}
		changes, err := e.rep.PutOrganisations(ctx, []*represent.Organisation{{TaxCode: "0100000001", Name: "Công ty Demo", LegalRepresentative: heir.PersonalID, Status: represent.OrgActive}})
		if err != nil || len(changes) != 1 {
			t.Fatalf("replace: %v %+v", err, changes)
		}
		if err := e.svc.OrganisationsChanged(ctx, changes); err != nil {
			t.Fatal(err)
		}
		if !e.denied(represent.LegalRepKey(m.Party.ID, boss.ID)) {
			t.Error("the replaced representative's key is not denied")
		}
		if got := e.acts(boss); len(got) != 0 {
			t.Errorf("the replaced representative acts for %v", got)
		}
		if got := e.acts(clerk); len(got) != 0 {
			t.Errorf("a mandate of the replaced representative still works: %v", got)
		}
		if got := e.acts(heir); len(got) != 1 || got[0] != "legal_representative:0100000001" {
			t.Errorf("the new representative acts for %v", got)
		}
		reps, err := e.svc.Representatives(ctx, m.Party)
		if err != nil || len(reps) != 1 || reps[0] != heir.ID {
			t.Errorf("Representatives = %v %v", reps, err)
		}
	})
}

func TestServiceGuardians(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		mother, father := e.adult(), e.adult()
		// Turns 18 on 2026-09-15 in Vietnam.
		child := e.citizen("2008-09-15", mother.PersonalID, father.PersonalID)
		majority := time.Date(2026, 9, 15, 0, 0, 0, 0, represent.Zone)
		for _, g := range []*idp.Citizen{mother, father} {
			if got := e.acts(g); len(got) != 1 || got[0] != "guardian:"+child.PersonalID {
				t.Fatalf("a parent acts for %v", got)
			}
		}
		r, err := e.svc.Check(ctx, mother.ID, child.ID, "", "")
		if err != nil || r.Until == nil || !r.Until.Equal(majority) {
			t.Fatalf("until majority: %v %+v", err, r)
		}
		reps, err := e.svc.Representatives(ctx, represent.Party{Type: represent.TypePerson, ID: child.ID})
		if err != nil || len(reps) != 2 {
			t.Errorf("the child's representatives: %v %v", reps, err)
		}
		// A court appoints the father too, without an end: that outlives
		// the registry guardianship.
		if err := e.idp.AddGuardianship(ctx, represent.Guardianship{WardID: child.ID, GuardianID: father.ID, Source: represent.GuardianCourt}); err != nil {
			t.Fatal(err)
		}
		// An aunt appointed until a date.
		aunt := e.adult()
		auntUntil := time.Date(2026, 8, 1, 0, 0, 0, 0, represent.Zone)
		if err := e.idp.AddGuardianship(ctx, represent.Guardianship{WardID: child.ID, GuardianID: aunt.ID, Source: represent.GuardianCourt, Until: &auntUntil}); err != nil {
			t.Fatal(err)
		}
		if got := e.acts(aunt); len(got) != 1 {
			t.Fatalf("the aunt acts for %v", got)
		}
		e.set(auntUntil)
		if got := e.acts(aunt); len(got) != 0 {
			t.Errorf("the aunt acts past the court's date: %v", got)
		}
		e.set(majority.Add(-time.Second))
		if got := e.acts(mother); len(got) != 1 {
			t.Errorf("the mother stops the day before majority: %v", got)
		}
		e.set(majority)
		if got := e.acts(mother); len(got) != 0 {
			t.Errorf("the mother acts for an adult: %v", got)
		}
		if got := e.acts(father); len(got) != 1 || got[0] != "guardian:"+child.PersonalID {
			t.Errorf("the court's open-ended guardian stops at majority: %v", got)
		}
		// Ending the court's guardianship early ends it and denies its key.
		if err := e.idp.EndGuardianship(ctx, child.ID, father.ID, e.clock()); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.GuardianshipEnded(ctx, child.ID, father.ID); err != nil {
			t.Fatal(err)
		}
		if got := e.acts(father); len(got) != 0 {
			t.Errorf("an ended guardianship acts: %v", got)
		}
		if !e.denied(represent.GuardianKey(child.ID, father.ID)) {
			t.Error("the ended guardianship's key is not denied")
		}
	})
}

func TestServiceGrantRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		a, b, c, stranger := e.adult(), e.adult(), e.adult(), e.adult()
		parent := e.adult()
		ward := e.citizen("2015-01-01", parent.PersonalID)
		e.org("0100000001", a, represent.OrgActive)
		year := start.AddDate(1, 0, 0)
		base := func() represent.GrantRequest {
			return represent.GrantRequest{GrantorID: a.ID, Organisation: "0100000001", Grantee: b.PersonalID,
				Services: []string{"tax-return"}, ValidUntil: year, MayDelegate: true}
		}
		invalid := func(name string, req represent.GrantRequest, field, detail string) {
			t.Helper()
			_, err := e.svc.Grant(ctx, req)
			var ie represent.InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, represent.ErrInvalid) {
				t.Errorf("%s: %v, want an InvalidError", name, err)
				return
			}
			for _, f := range ie {
				if f.Field == field && strings.Contains(f.Detail, detail) {
					return
				}
			}
			t.Errorf("%s: %v, want %s: …%s…", name, err, field, detail)
		}
		r := base()
		r.Organisation = "0100000099"
		invalid("unknown tax code", r, "organisation", "nobody is registered")
		r = base()
		r.Grantee = "001099999999"
		invalid("unknown grantee", r, "grantee", "no citizen has this personal id")
		r = base()
		r.Grantee = a.PersonalID
		invalid("to oneself", r, "grantee", "oneself")
		r = represent.GrantRequest{GrantorID: parent.ID, Person: ward.PersonalID, Grantee: ward.PersonalID, Services: []string{"school"}, ValidUntil: year}
		invalid("to the ward", r, "grantee", "act for themselves")
		r = base()
		r.ValidUntil = start.Add(-time.Hour)
		invalid("expired", r, "valid_until", "in the past")
		r = base()
		r.Services = nil
		invalid("no services", r, "services", "at least one")
		r = base()
		r.Organisation = "12"
		invalid("a malformed tax code", r, "organisation", "tax code")

		// A stranger represents nothing to grant.
		r = base()
		r.GrantorID = stranger.ID
		if _, err := e.svc.Grant(ctx, r); !errors.Is(err, represent.ErrNotRepresented) {
			t.Errorf("a stranger grants: %v", err)
		}

		// A→B, then B→A would be circular.
		ab := e.grant(base())
		r = base()
		r.GrantorID, r.Grantee = b.ID, a.PersonalID
		invalid("A→B→A", r, "grantee", "circular")
		// A→B→C, then C→B.
		r = base()
		r.GrantorID, r.Grantee = b.ID, c.PersonalID
		bc := e.grant(r)
		if bc.ParentID != ab.ID {
			t.Fatalf("the sub-mandate's parent = %q, want %q", bc.ParentID, ab.ID)
		}
		r = base()
		r.GrantorID, r.Grantee = c.ID, b.PersonalID
		invalid("A→B→C→B", r, "grantee", "chain")
		// Wider than its parent: another service, or longer.
		d := e.adult()
		r = base()
		r.GrantorID, r.Grantee, r.Services = b.ID, d.PersonalID, []string{"tax-return", "land-title"}
		if _, err := e.svc.Grant(ctx, r); !errors.Is(err, represent.ErrNotRepresented) || !strings.Contains(err.Error(), "does not cover") {
			t.Errorf("wider than the parent: %v", err)
		}
		r = base()
		r.GrantorID, r.Grantee, r.ValidUntil = b.ID, d.PersonalID, year.Add(time.Hour)
		if _, err := e.svc.Grant(ctx, r); !errors.Is(err, represent.ErrNotRepresented) || !strings.Contains(err.Error(), "ends before") {
			t.Errorf("longer than the parent: %v", err)
		}
		// A parent that may not be delegated.
		r = base()
		r.Grantee, r.MayDelegate = d.PersonalID, false
		e.grant(r)
		r = base()
		r.GrantorID, r.Grantee = d.ID, stranger.PersonalID
		if _, err := e.svc.Grant(ctx, r); !errors.Is(err, represent.ErrNotRepresented) || !strings.Contains(err.Error(), "may not be delegated") {
			t.Errorf("from a non-delegable mandate: %v", err)
		}
	})
}

func TestServiceAcceptAndRevoke(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		a, b, c, stranger := e.adult(), e.adult(), e.adult(), e.adult()
		e.org("0100000001", a, represent.OrgActive)
		req := func(grantor *idp.Citizen, grantee *idp.Citizen) represent.GrantRequest {
			return represent.GrantRequest{GrantorID: grantor.ID, Organisation: "0100000001", Grantee: grantee.PersonalID,
				Services: []string{"tax-return"}, ValidUntil: start.AddDate(1, 0, 0), MayDelegate: true}
		}
		m, err := e.svc.Grant(ctx, req(a, b))
		if err != nil {
			t.Fatal(err)
		}
		if got := e.acts(b); len(got) != 0 {
			t.Errorf("a pending mandate acts: %v", got)
		}
		if _, err := e.svc.Accept(ctx, a.ID, m.ID); !errors.Is(err, represent.ErrForbidden) {
			t.Errorf("the grantor accepts: %v", err)
		}
		if _, err := e.svc.Accept(ctx, stranger.ID, m.ID); !errors.Is(err, represent.ErrNotFound) {
			t.Errorf("a stranger accepts: %v", err)
		}
		if _, err := e.svc.Accept(ctx, b.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Accept(ctx, b.ID, m.ID); !errors.Is(err, represent.ErrConflict) {
			t.Errorf("accept twice: %v", err)
		}
		if _, err := e.svc.Mandate(ctx, stranger.ID, m.ID); !errors.Is(err, represent.ErrNotFound) {
			t.Errorf("a stranger reads a mandate: %v", err)
		}
		sub := e.grant(req(b, c))
		if _, err := e.svc.Revoke(ctx, stranger.ID, m.ID); !errors.Is(err, represent.ErrNotFound) {
			t.Errorf("a stranger revokes: %v", err)
		}
		// Each of grantor, grantee and operator may revoke; the sub-mandate
		// falls with its parent and both keys are denied.
		for i, by := range []string{"grantor", "grantee", "operator"} {
			if i > 0 {
				m = e.grant(req(a, b))
				sub = e.grant(req(b, c))
			}
			actor := map[string]string{"grantor": a.ID, "grantee": b.ID, "operator": represent.OperatorActor}[by]
			got, err := e.svc.Revoke(ctx, actor, m.ID)
			if err != nil {
				t.Fatalf("revoke by the %s: %v", by, err)
			}
			if got.RevokedAt == nil || got.RevokedBy != actor {
				t.Errorf("revoked by the %s: %+v", by, got)
			}
			s, _ := e.rep.GetMandate(ctx, sub.ID)
			if s.RevokedAt == nil || s.RevokedBy != represent.ParentActor {
				t.Errorf("the sub-mandate did not fall with its parent: %+v", s)
			}
			for _, id := range []string{m.ID, sub.ID} {
				if !e.denied(represent.MandateKey(id)) {
					t.Errorf("revoke by the %s: %s not denied", by, id)
				}
			}
			if got := e.acts(c); len(got) != 0 {
				t.Errorf("the sub-grantee still acts: %v", got)
			}
			if _, err := e.svc.Revoke(ctx, actor, m.ID); !errors.Is(err, represent.ErrConflict) {
				t.Errorf("revoke twice: %v", err)
			}
		}
		// Two revocations at once: one wins, the other is told.
		m = e.grant(req(a, b))
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, actor := range []string{a.ID, b.ID} {
			wg.Go(func() { _, errs[i] = e.svc.Revoke(ctx, actor, m.ID) })
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || !(errors.Is(errs[0], represent.ErrConflict) || errors.Is(errs[1], represent.ErrConflict)) {
			t.Errorf("concurrent revocations: %v, %v; want one success and one ErrConflict", errs[0], errs[1])
		}
	})
}

// A decision is copied to whoever may act for the party on that service:
// the legal representative and the holders of accepted mandates covering
// it, not those of a pending mandate, of another service, or of one
// revoked.
func TestServiceRepresentativesFor(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		rep, tax, other, pending := e.adult(), e.adult(), e.adult(), e.adult()
		o := e.org("0100000001", rep, represent.OrgActive)
		grant := func(grantee *idp.Citizen, service string) represent.GrantRequest {
			return represent.GrantRequest{GrantorID: rep.ID, Organisation: "0100000001", Grantee: grantee.PersonalID,
				Services: []string{service}, ValidUntil: start.AddDate(1, 0, 0)}
		}
		m := e.grant(grant(tax, "tax-return"))
		e.grant(grant(other, "social-insurance"))
		if _, err := e.svc.Grant(ctx, grant(pending, "tax-return")); err != nil { // never accepted
			t.Fatal(err)
		}
		got, err := e.svc.RepresentativesFor(ctx, o.Party(), "tax-return", "")
		if err != nil || !slices.Equal(got, []string{rep.ID, tax.ID}) {
			t.Errorf("representatives for tax-return: %v, %v; want the legal representative and the tax mandate's holder", got, err)
		}
		if _, err := e.svc.Revoke(ctx, rep.ID, m.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := e.svc.RepresentativesFor(ctx, o.Party(), "tax-return", ""); err != nil || !slices.Equal(got, []string{rep.ID}) {
			t.Errorf("after the revocation: %v, %v; want the legal representative alone", got, err)
		}
	})
}
