// Package representtest holds the conformance suite every implementation
// of represent.Store passes, whatever its engine. Only tests import it.
package representtest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/represent"
)

// Run runs the conformance suite of represent.Store. newStore returns an
// empty, migrated store; each subtest gets its own.
func Run(t *testing.T, newStore func(t *testing.T) represent.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s represent.Store)
	}{
		{"PutAndGetOrganisations", orgPutGet},
		{"OrganisationChanges", orgChanges},
		{"OrganisationsAllOrNone", orgAllOrNone},
		{"ListOrganisationsPaging", orgList},
		{"MandateRoundTrip", mandateRoundTrip},
		{"MandateRefused", mandateRefused},
		{"MandateLists", mandateLists},
		{"AcceptOnce", mandateAccept},
		{"RevokeCascades", mandateRevokeCascade},
		{"ConcurrentRevokesOneWins", mandateConcurrentRevoke},
		{"ConcurrentAccepts", mandateConcurrentAccept},
		{"CountActiveGranted", mandateCount},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func mustBe(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Org returns a valid active organisation numbered n, represented by the
// personal id rep.
func Org(n int, rep string) *represent.Organisation {
	return &represent.Organisation{TaxCode: fmt.Sprintf("01%08d", n), Name: fmt.Sprintf("Công ty TNHH Thử Nghiệm %d", n),
		NameEn: fmt.Sprintf("TEST %d LLC", n), Address: "1 Phố Demo, Hà Nội", LegalRepresentative: rep, Status: represent.OrgActive}
}

func orgPutGet(t *testing.T, s represent.Store) {
	ctx := t.Context()
	_, err := s.GetOrganisation(ctx, "0100000009")
	mustBe(t, err, represent.ErrNotFound, "get a missing organisation")
	_, err = s.GetOrganisationByID(ctx, "org:missing")
	mustBe(t, err, represent.ErrNotFound, "get a missing organisation by id")
	changes, err := s.PutOrganisations(ctx, nil)
	must(t, err, "put no organisations")
	if len(changes) != 0 {
		t.Fatalf("changes of nothing: %v", changes)
	}
	a, b := Org(1, "001090000001"), Org(2, "001090000001")
	b.TaxCode = "0100000002-001" // a branch
	changes, err = s.PutOrganisations(ctx, []*represent.Organisation{a, b})
	must(t, err, "put organisations")
	if len(changes) != 0 {
		t.Errorf("new organisations reported changes: %v", changes)
	}
	for _, o := range []*represent.Organisation{a, b} {
		if !represent.IsOrgSubject(o.ID) || o.CreatedAt.IsZero() || !o.CreatedAt.Equal(o.UpdatedAt) {
			t.Fatalf("put did not stamp %s: id %q created %v updated %v", o.TaxCode, o.ID, o.CreatedAt, o.UpdatedAt)
		}
		got, err := s.GetOrganisation(ctx, o.TaxCode)
		must(t, err, "get organisation")
		if !reflect.DeepEqual(got, o) {
			t.Errorf("GetOrganisation = %+v, want %+v", got, o)
		}
		got, err = s.GetOrganisationByID(ctx, o.ID)
		must(t, err, "get organisation by id")
		if !reflect.DeepEqual(got, o) {
			t.Errorf("GetOrganisationByID = %+v, want %+v", got, o)
		}
	}
	if a.ID == b.ID {
		t.Fatal("two organisations share an id")
	}
	// An update by tax code keeps the id and creation time.
	time.Sleep(2 * time.Millisecond)
	a2 := Org(1, "001090000001")
	a2.Name, a2.Address = "Công ty TNHH Thử Nghiệm Một (đổi tên)", "2 Phố Demo"
	_, err = s.PutOrganisations(ctx, []*represent.Organisation{a2})
	must(t, err, "update organisation")
	if a2.ID != a.ID || !a2.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("update changed id or creation: %q %v, was %q %v", a2.ID, a2.CreatedAt, a.ID, a.CreatedAt)
	}
	got, err := s.GetOrganisation(ctx, a.TaxCode)
	must(t, err, "get updated organisation")
	if !reflect.DeepEqual(got, a2) {
		t.Errorf("after update = %+v, want %+v", got, a2)
	}
	reps, err := s.OrganisationsRepresentedBy(ctx, "001090000001")
	must(t, err, "organisations represented")
	if len(reps) != 2 {
		t.Errorf("OrganisationsRepresentedBy = %d, want 2", len(reps))
	}
	reps, err = s.OrganisationsRepresentedBy(ctx, "001090000009")
	must(t, err, "organisations represented by nobody")
	if len(reps) != 0 {
		t.Errorf("a stranger represents %d organisations", len(reps))
	}
	// A given id is kept for a new organisation and refused for another's.
	c := Org(3, "001090000003")
	c.ID = "org:given"
	_, err = s.PutOrganisations(ctx, []*represent.Organisation{c})
	must(t, err, "put with an id")
	if c.ID != "org:given" {
		t.Errorf("id = %q, want the one given", c.ID)
	}
	c2 := Org(3, "001090000003")
	c2.ID = "org:other"
	_, err = s.PutOrganisations(ctx, []*represent.Organisation{c2})
	mustBe(t, err, represent.ErrInvalid, "put another id for a tax code")
}

func orgChanges(t *testing.T, s represent.Store) {
	ctx := t.Context()
	orgs := []*represent.Organisation{Org(1, "001090000001"), Org(2, "001090000002"), Org(3, "001090000003"), Org(4, "001090000004")}
	orgs[3].Status = represent.OrgSuspended
	_, err := s.PutOrganisations(ctx, orgs)
	must(t, err, "put organisations")
	// 1: representative replaced; 2: suspended; 3: unchanged; 4: was
	// suspended, replaced (nobody represented it).
	next := []*represent.Organisation{Org(1, "001090000011"), Org(2, "001090000002"), Org(3, "001090000003"), Org(4, "001090000014")}
	next[1].Status = represent.OrgSuspended
	next[3].Status = represent.OrgSuspended
	changes, err := s.PutOrganisations(ctx, next)
	must(t, err, "replace")
	if len(changes) != 2 {
		t.Fatalf("changes = %+v, want 2", changes)
	}
	if c := changes[0]; c.Org.TaxCode != orgs[0].TaxCode || c.OldRepresentative != "001090000001" || c.Ended || c.Org.ID != orgs[0].ID {
		t.Errorf("replaced representative: %+v (org %+v)", c, c.Org)
	}
	if c := changes[1]; c.Org.TaxCode != orgs[1].TaxCode || c.OldRepresentative != "001090000002" || !c.Ended || c.Org.ID != orgs[1].ID {
		t.Errorf("suspended: %+v", c)
	}
	// Dissolving an active organisation while replacing its
	// representative ends the old one's.
	last := Org(1, "001090000021")
	last.Status = represent.OrgDissolved
	changes, err = s.PutOrganisations(ctx, []*represent.Organisation{last})
	must(t, err, "dissolve")
	if len(changes) != 1 || changes[0].OldRepresentative != "001090000011" || !changes[0].Ended {
		t.Errorf("dissolved: %+v", changes)
	}
}

func orgAllOrNone(t *testing.T, s represent.Store) {
	ctx := t.Context()
	first := Org(1, "001090000001")
	_, err := s.PutOrganisations(ctx, []*represent.Organisation{first})
	must(t, err, "put")
	for name, batch := range map[string][]*represent.Organisation{
		"bad tax code":         {Org(2, "001090000002"), {TaxCode: "12345", Name: "X", LegalRepresentative: "001090000002", Status: represent.OrgActive}},
		"bad status":           {Org(3, "001090000002"), {TaxCode: "0100000004", Name: "X", LegalRepresentative: "001090000002", Status: "closed"}},
		"no name":              {Org(5, "001090000002"), {TaxCode: "0100000006", LegalRepresentative: "001090000002", Status: represent.OrgActive}},
		"tax code twice":       {Org(7, "001090000002"), Org(7, "001090000003")},
		"NUL in a name":        {Org(8, "001090000002"), {TaxCode: "0100000009", Name: "X\x00", LegalRepresentative: "001090000002", Status: represent.OrgActive}},
		"invalid UTF-8":        {Org(10, "001090000002"), {TaxCode: "0100000011", Name: "X\xff", LegalRepresentative: "001090000002", Status: represent.OrgActive}},
		"no representative":    {Org(12, "001090000002"), {TaxCode: "0100000013", Name: "X", Status: represent.OrgActive}},
		"an update and an odd": {Org(1, "001090000099"), {TaxCode: "x", Name: "X", LegalRepresentative: "001090000002", Status: represent.OrgActive}},
	} {
		_, err := s.PutOrganisations(ctx, batch)
		mustBe(t, err, represent.ErrInvalid, name)
	}
	// A failure in the database, after rows were written, leaves none:
	// the second organisation takes the first's id.
	clash := Org(20, "001090000002")
	clash.ID = first.ID
	_, err = s.PutOrganisations(ctx, []*represent.Organisation{Org(19, "001090000002"), clash})
	mustBe(t, err, represent.ErrConflict, "an id taken by another tax code")
	list, err := s.ListOrganisations(ctx, "", 0)
	must(t, err, "list")
	if len(list) != 1 || list[0].LegalRepresentative != "001090000001" {
		t.Fatalf("after refused batches: %+v", list)
	}
}

func orgList(t *testing.T, s represent.Store) {
	ctx := t.Context()
	list, err := s.ListOrganisations(ctx, "", 10)
	must(t, err, "list empty")
	if len(list) != 0 {
		t.Fatalf("empty store lists %d", len(list))
	}
	var batch []*represent.Organisation
	for _, n := range []int{5, 3, 1, 4, 2} {
		batch = append(batch, Org(n, "001090000001"))
	}
	_, err = s.PutOrganisations(ctx, batch)
	must(t, err, "put")
	var got []string
	after := ""
	for {
		page, err := s.ListOrganisations(ctx, after, 2)
		must(t, err, "list page")
		if len(page) == 0 {
			break
		}
		if len(page) > 2 {
			t.Fatalf("page of %d, limit 2", len(page))
		}
		for _, o := range page {
			got = append(got, o.TaxCode)
		}
		after = page[len(page)-1].TaxCode
	}
	want := []string{"0100000001", "0100000002", "0100000003", "0100000004", "0100000005"}
	if !slices.Equal(got, want) {
		t.Errorf("pages = %v, want %v", got, want)
	}
}

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 123_000_000, time.UTC)

// Mandate returns a valid pending mandate from grantor to grantee for an
// organisation party.
func Mandate(id, grantor, grantee string) *represent.Mandate {
	return &represent.Mandate{ID: id, GrantorID: grantor, GranteeID: grantee,
		Party:    represent.Party{Type: represent.TypeOrganisation, ID: "org:p1", TaxCode: "0100000001", Name: "Công ty TNHH Thử Nghiệm 1"},
		Services: []string{"business-licence"}, ValidFrom: t0, ValidUntil: t0.AddDate(1, 0, 0), CreatedAt: t0}
}

func mandateRoundTrip(t *testing.T, s represent.Store) {
	ctx := t.Context()
	_, err := s.GetMandate(ctx, "mdt_missing")
	mustBe(t, err, represent.ErrNotFound, "get a missing mandate")
	m := Mandate("mdt_1", "sub-a", "sub-b")
	m.Categories = []string{"tax", "business"}
	m.MayDelegate, m.Evidence, m.EvidenceDevice = true, "eyJhbGciOiJFUzI1NiJ9.e30.sig", "dev-1"
	must(t, s.CreateMandate(ctx, m), "create")
	got, err := s.GetMandate(ctx, m.ID)
	must(t, err, "get")
	if !reflect.DeepEqual(got, m) {
		t.Errorf("GetMandate = %+v, want %+v", got, m)
	}
	p := Mandate("mdt_2", "sub-b", "sub-c")
	p.Party = represent.Party{Type: represent.TypePerson, ID: "sub-ward", PersonalID: "001210000001", Name: "Trẻ Em Demo"}
	p.ParentID = "mdt_1"
	p.Services = nil
	p.Categories = []string{"education"}
	at := t0.Add(time.Hour)
	p.AcceptedAt = &at
	must(t, s.CreateMandate(ctx, p), "create a person's sub-mandate")
	got, err = s.GetMandate(ctx, p.ID)
	must(t, err, "get")
	if !reflect.DeepEqual(got, p) {
		t.Errorf("GetMandate = %+v, want %+v", got, p)
	}
	mustBe(t, s.CreateMandate(ctx, Mandate("mdt_1", "sub-x", "sub-y")), represent.ErrConflict, "create a duplicate id")
}

func mandateRefused(t *testing.T, s represent.Store) {
	ctx := t.Context()
	for name, edit := range map[string]func(m *represent.Mandate){
		"no id":              func(m *represent.Mandate) { m.ID = "" },
		"no grantee":         func(m *represent.Mandate) { m.GranteeID = "" },
		"no party":           func(m *represent.Mandate) { m.Party = represent.Party{} },
		"odd party type":     func(m *represent.Mandate) { m.Party.Type = "cat" },
		"no terms":           func(m *represent.Mandate) { m.Services = nil },
		"until before from":  func(m *represent.Mandate) { m.ValidUntil = m.ValidFrom },
		"NUL in evidence":    func(m *represent.Mandate) { m.Evidence = "a\x00b" },
		"unknown parent":     func(m *represent.Mandate) { m.ParentID = "mdt_nobody" },
		"its own parent":     func(m *represent.Mandate) { m.ParentID = m.ID },
		"bad UTF-8 in name":  func(m *represent.Mandate) { m.Party.Name = "\xc3" },
		"empty service code": func(m *represent.Mandate) { m.Services = []string{""} },
	} {
		m := Mandate("mdt_bad", "sub-a", "sub-b")
		edit(m)
		mustBe(t, s.CreateMandate(ctx, m), represent.ErrInvalid, name)
	}
	_, err := s.GetMandate(ctx, "mdt_bad")
	mustBe(t, err, represent.ErrNotFound, "a refused mandate is not stored")
}

func ids(ms []*represent.Mandate) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func mandateLists(t *testing.T, s represent.Store) {
	ctx := t.Context()
	now := t0.Add(24 * time.Hour)
	accepted := t0.Add(time.Minute)
	mk := func(id, grantor, grantee string, created time.Duration, edit func(m *represent.Mandate)) {
		m := Mandate(id, grantor, grantee)
		m.CreatedAt = t0.Add(created * time.Minute)
		m.AcceptedAt = &accepted
		if edit != nil {
			edit(m)
		}
		must(t, s.CreateMandate(ctx, m), "create "+id)
	}
	mk("mdt_active", "sub-a", "sub-b", 1, nil)
	mk("mdt_pending", "sub-a", "sub-b", 2, func(m *represent.Mandate) { m.AcceptedAt = nil })
	mk("mdt_expired", "sub-a", "sub-b", 3, func(m *represent.Mandate) { m.ValidUntil = now })
	mk("mdt_upcoming", "sub-a", "sub-b", 4, func(m *represent.Mandate) { m.ValidFrom = now.Add(time.Millisecond) })
	mk("mdt_revoked", "sub-a", "sub-b", 5, func(m *represent.Mandate) { m.RevokedAt, m.RevokedBy = &accepted, "sub-a" })
	mk("mdt_other", "sub-c", "sub-d", 6, func(m *represent.Mandate) { m.Party.ID = "org:p2" })
	mk("mdt_back", "sub-b", "sub-e", 7, nil)

	got, err := s.MandatesReceived(ctx, "sub-b", now)
	must(t, err, "received")
	if !slices.Equal(ids(got), []string{"mdt_active"}) {
		t.Errorf("MandatesReceived = %v, want only the active one", ids(got))
	}
	list, err := s.ListMandates(ctx, "sub-b")
	must(t, err, "list")
	want := []string{"mdt_back", "mdt_revoked", "mdt_upcoming", "mdt_expired", "mdt_pending", "mdt_active"}
	if !slices.Equal(ids(list), want) {
		t.Errorf("ListMandates = %v, want newest first %v", ids(list), want)
	}
	list, err = s.ListMandates(ctx, "sub-stranger")
	must(t, err, "list a stranger's")
	if len(list) != 0 {
		t.Errorf("a stranger lists %v", ids(list))
	}
	of, err := s.MandatesOf(ctx, "org:p1")
	must(t, err, "mandates of")
	if slices.Contains(ids(of), "mdt_revoked") || slices.Contains(ids(of), "mdt_other") || len(of) != 5 {
		t.Errorf("MandatesOf = %v, want the 5 unrevoked of org:p1", ids(of))
	}
}

func mandateAccept(t *testing.T, s represent.Store) {
	ctx := t.Context()
	_, err := s.AcceptMandate(ctx, "mdt_missing", t0)
	mustBe(t, err, represent.ErrNotFound, "accept a missing mandate")
	must(t, s.CreateMandate(ctx, Mandate("mdt_1", "sub-a", "sub-b")), "create")
	at := t0.Add(time.Hour + 1500*time.Microsecond)
	m, err := s.AcceptMandate(ctx, "mdt_1", at)
	must(t, err, "accept")
	if m.AcceptedAt == nil || !m.AcceptedAt.Equal(at.Truncate(time.Millisecond)) {
		t.Errorf("AcceptedAt = %v, want %v", m.AcceptedAt, at)
	}
	got, err := s.GetMandate(ctx, "mdt_1")
	must(t, err, "get")
	if !reflect.DeepEqual(got, m) {
		t.Errorf("stored %+v, returned %+v", got, m)
	}
	_, err = s.AcceptMandate(ctx, "mdt_1", at)
	mustBe(t, err, represent.ErrConflict, "accept twice")
	must(t, s.CreateMandate(ctx, Mandate("mdt_2", "sub-a", "sub-b")), "create")
	_, err = s.RevokeMandate(ctx, "mdt_2", "sub-a", at)
	must(t, err, "revoke")
	_, err = s.AcceptMandate(ctx, "mdt_2", at)
	mustBe(t, err, represent.ErrConflict, "accept a revoked mandate")
}

func mandateRevokeCascade(t *testing.T, s represent.Store) {
	ctx := t.Context()
	_, err := s.RevokeMandate(ctx, "mdt_missing", "sub-a", t0)
	mustBe(t, err, represent.ErrNotFound, "revoke a missing mandate")
	// root (a→b) ← m2 (b→c) ← m3 (c→d); root ← m4 (b→e); m2 ← m5 revoked
	// already; other (a→f) unrelated.
	mk := func(id, grantor, grantee, parent string) {
		m := Mandate(id, grantor, grantee)
		m.ParentID, m.MayDelegate = parent, true
		must(t, s.CreateMandate(ctx, m), "create "+id)
	}
	mk("mdt_root", "sub-a", "sub-b", "")
	mk("mdt_2", "sub-b", "sub-c", "mdt_root")
	mk("mdt_3", "sub-c", "sub-d", "mdt_2")
	mk("mdt_4", "sub-b", "sub-e", "mdt_root")
	mk("mdt_5", "sub-c", "sub-g", "mdt_2")
	mk("mdt_other", "sub-a", "sub-f", "")
	early := t0.Add(time.Minute)
	_, err = s.RevokeMandate(ctx, "mdt_5", "sub-g", early)
	must(t, err, "revoke a leaf")
	at := t0.Add(time.Hour)
	got, err := s.RevokeMandate(ctx, "mdt_root", "sub-a", at)
	must(t, err, "revoke the root")
	if len(got) != 4 || got[0] != "mdt_root" {
		t.Fatalf("revoked %v, want the root first and 3 descendants", got)
	}
	rest := slices.Sorted(slices.Values(got[1:]))
	if !slices.Equal(rest, []string{"mdt_2", "mdt_3", "mdt_4"}) {
		t.Errorf("descendants revoked %v", rest)
	}
	for _, id := range got {
		m, err := s.GetMandate(ctx, id)
		must(t, err, "get")
		by := represent.ParentActor
		if id == "mdt_root" {
			by = "sub-a"
		}
		if m.RevokedAt == nil || !m.RevokedAt.Equal(at) || m.RevokedBy != by {
			t.Errorf("%s revoked at %v by %q, want %v by %q", id, m.RevokedAt, m.RevokedBy, at, by)
		}
	}
	m5, err := s.GetMandate(ctx, "mdt_5")
	must(t, err, "get")
	if m5.RevokedBy != "sub-g" || !m5.RevokedAt.Equal(early) {
		t.Errorf("an earlier revocation was overwritten: %v by %q", m5.RevokedAt, m5.RevokedBy)
	}
	other, err := s.GetMandate(ctx, "mdt_other")
	must(t, err, "get")
	if other.RevokedAt != nil {
		t.Error("an unrelated mandate was revoked")
	}
	_, err = s.RevokeMandate(ctx, "mdt_root", "sub-b", at)
	mustBe(t, err, represent.ErrConflict, "revoke twice")
	_, err = s.RevokeMandate(ctx, "mdt_3", represent.OperatorActor, at)
	mustBe(t, err, represent.ErrConflict, "revoke a mandate its parent took down")
}

func mandateConcurrentRevoke(t *testing.T, s represent.Store) {
	ctx := t.Context()
	m := Mandate("mdt_1", "sub-a", "sub-b")
	must(t, s.CreateMandate(ctx, m), "create")
	c := Mandate("mdt_2", "sub-b", "sub-c")
	c.ParentID = "mdt_1"
	must(t, s.CreateMandate(ctx, c), "create child")
	const n = 8
	errs := make([]error, n)
	results := make([][]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = s.RevokeMandate(ctx, "mdt_1", fmt.Sprintf("actor-%d", i), t0) })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
			if !slices.Equal(results[i], []string{"mdt_1", "mdt_2"}) {
				t.Errorf("the winner revoked %v", results[i])
			}
		case !errors.Is(err, represent.ErrConflict):
			t.Errorf("revoke %d: %v, want ErrConflict", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d revocations succeeded, want exactly 1", ok)
	}
}

func mandateConcurrentAccept(t *testing.T, s represent.Store) {
	ctx := t.Context()
	must(t, s.CreateMandate(ctx, Mandate("mdt_1", "sub-a", "sub-b")), "create")
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = s.AcceptMandate(ctx, "mdt_1", t0) })
	}
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, represent.ErrConflict):
			t.Errorf("accept %d: %v, want ErrConflict", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d acceptances succeeded, want exactly 1", ok)
	}
}

func mandateCount(t *testing.T, s represent.Store) {
	ctx := t.Context()
	now := t0.Add(24 * time.Hour)
	for i, edit := range []func(m *represent.Mandate){
		nil,
		func(m *represent.Mandate) { m.ValidUntil = now },                   // expired
		func(m *represent.Mandate) { m.RevokedAt, m.RevokedBy = &now, "x" }, // revoked
		func(m *represent.Mandate) { m.GrantorID = "sub-z" },                // another's
		func(m *represent.Mandate) { m.AcceptedAt = nil },                   // pending counts
	} {
		m := Mandate(fmt.Sprintf("mdt_%d", i), "sub-a", "sub-b")
		if edit != nil {
			edit(m)
		}
		must(t, s.CreateMandate(ctx, m), "create")
	}
	n, err := s.CountActiveGranted(ctx, "sub-a", now)
	must(t, err, "count")
	if n != 2 {
		t.Errorf("CountActiveGranted = %d, want 2", n)
	}
}
