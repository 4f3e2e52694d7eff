// Package mobileapitest holds the conformance suites of mobileapi's store
// interfaces: every implementation, on every engine, runs them and must
// behave the same.
package mobileapitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// AgencyCatalog is what RunCatalog tests: the agencies and the catalog.
type AgencyCatalog interface {
	mobileapi.AgencyStore
	mobileapi.CatalogStore
}

// RunCatalog runs the conformance suite of mobileapi.AgencyStore and
// mobileapi.CatalogStore. newStore returns an empty, migrated store; each
// subtest gets its own. The store must stamp records with the real clock.
func RunCatalog(t *testing.T, newStore func(t *testing.T) AgencyCatalog) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s AgencyCatalog)
	}{
		{"AgencyRoundTrip", catAgencyRoundTrip},
		{"AgencyDuplicate", catAgencyDuplicate},
		{"AgencyUnknownParent", catAgencyUnknownParent},
		{"AgencyInvalid", catAgencyInvalid},
		{"AgencyList", catAgencyList},
		{"AgencyConcurrentCreate", catAgencyConcurrentCreate},
		{"ServiceCreate", catServiceCreate},
		{"ServiceUnchanged", catServiceUnchanged},
		{"ServiceVersions", catServiceVersions},
		{"ServicePrecondition", catServicePrecondition},
		{"ServiceUnknownAgencies", catServiceUnknownAgencies},
		{"ServiceInvalid", catServiceInvalid},
		{"ServiceNotFound", catServiceNotFound},
		{"ServiceEmptyLists", catServiceEmptyLists},
		{"ServiceSchemaFidelity", catServiceSchemaFidelity},
		{"ServiceList", catServiceList},
		{"CatalogVersion", catCatalogVersion},
		{"ServiceConcurrentPuts", catServiceConcurrentPuts},
		{"ServiceConcurrentPreconditions", catServiceConcurrentPreconditions},
		{"QuotaServices", catQuotaServices},
		{"ServiceRepresentation", catServiceRepresentation},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// catSeed creates the agencies the catalog tests refer to.
func catSeed(t *testing.T, s AgencyCatalog) {
	t.Helper()
	for _, a := range []*mobileapi.Agency{
		{Code: "BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp", EN: "Ministry of Justice"}},
		{Code: "HN", Name: mobileapi.Text{VI: "UBND thành phố Hà Nội", EN: "Hanoi People's Committee"}, ProvinceCode: "01"},
		{Code: "HN-HOANKIEM", Name: mobileapi.Text{VI: "UBND phường Hoàn Kiếm", EN: "Hoan Kiem Ward People's Committee"}, ParentCode: "HN", ProvinceCode: "01"},
		{Code: "HCM", Name: mobileapi.Text{VI: "UBND Thành phố Hồ Chí Minh", EN: "Ho Chi Minh City People's Committee"}, ProvinceCode: "79"},
	} {
		if err := s.CreateAgency(t.Context(), a); err != nil {
			t.Fatalf("CreateAgency(%s): %v", a.Code, err)
		}
	}
}

// catSchema is a form schema whose bytes a store must not reorder or
// round: keys out of order, escapes, non-ASCII text, a large integer.
const catSchema = `{
  "type": "object",
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "required": ["child_full_name", "birth_date"],
  "properties": {
    "child_full_name": {"type": "string", "title": "Họ và tên trẻ", "maxLength": 100},
    "birth_date": {"type": "string", "format": "date", "description": "Ng\u00e0y sinh \"d\u01b0\u01a1ng l\u1ecbch\""},
    "weight_kg": {"type": "number", "minimum": 0.1, "maximum": 12345678901234567890},
    "twins": {"type": "boolean", "default": false, "examples": [true, false, null]},
    "notes": {}
  },
  "additionalProperties": false
}`

// catService returns a complete service (fake demo data) owned by BTP.
func catService(code string) *mobileapi.Service {
	return &mobileapi.Service{
		Code:           code,
		Name:           mobileapi.Text{VI: "Đăng ký khai sinh", EN: "Birth registration"},
		Description:    mobileapi.Text{VI: "Đăng ký khai sinh cho trẻ em (dữ liệu thử).", EN: "Registers a child's birth (test data)."},
		AgencyCode:     "BTP",
		Category:       "civil_status",
		Fee:            mobileapi.Fee{Amount: 8000, Currency: "VND"},
		ProcessingDays: 3,
		RequiredDocuments: []mobileapi.RequiredDocument{
			{Code: "birth_certificate_medical", Name: mobileapi.Text{VI: "Giấy chứng sinh", EN: "Medical birth certificate"}, Required: true},
			{Code: "marriage_certificate", Name: mobileapi.Text{VI: "Giấy chứng nhận kết hôn", EN: "Marriage certificate"}},
		},
		HandlingAgencies: []string{"HN-HOANKIEM", "HCM"},
		Schema:           json.RawMessage(catSchema),
	}
}

// catCopy returns a deep copy, so a test's expectations never alias what it
// hands the store.
func catCopy(s *mobileapi.Service) *mobileapi.Service {
	c := *s
	c.RequiredDocuments = slices.Clone(s.RequiredDocuments)
	c.HandlingAgencies = slices.Clone(s.HandlingAgencies)
	c.Schema = bytes.Clone(s.Schema)
	return &c
}

var catIDPattern = regexp.MustCompile(`^svc_[a-z2-7]{26}$`)

// catEqualService fails unless got is want: schemas compare as JSON, nil
// and empty lists alike, times as instants (and got's must be UTC).
func catEqualService(t *testing.T, what string, got, want *mobileapi.Service) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil service", what)
		return
	}
	if got.UpdatedAt.Location() != time.UTC {
		t.Errorf("%s: UpdatedAt %v not in UTC", what, got.UpdatedAt)
	}
	if !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s: UpdatedAt = %v, want %v", what, got.UpdatedAt, want.UpdatedAt)
	}
	if !catSameJSON(got.Schema, want.Schema) {
		t.Errorf("%s: Schema = %s, want %s", what, got.Schema, want.Schema)
	}
	g, w := catCopy(got), catCopy(want)
	for _, c := range []*mobileapi.Service{g, w} {
		c.UpdatedAt, c.Schema = time.Time{}, nil
		if len(c.RequiredDocuments) == 0 {
			c.RequiredDocuments = nil
		}
		if len(c.HandlingAgencies) == 0 {
			c.HandlingAgencies = nil
		}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

// catSameJSON compares two JSON texts as values, numbers as written.
func catSameJSON(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	decode := func(b []byte) (any, error) {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		err := d.Decode(&v)
		return v, err
	}
	va, errA := decode(a)
	vb, errB := decode(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

// catPut puts s and fails the test on error.
func catPut(t *testing.T, st AgencyCatalog, s *mobileapi.Service, ifVersion int) bool {
	t.Helper()
	created, err := st.PutService(t.Context(), s, ifVersion)
	if err != nil {
		t.Fatalf("PutService(%s, ifVersion %d): %v", s.Code, ifVersion, err)
	}
	return created
}

// catCheckStored checks every read of the service's latest version against
// want.
func catCheckStored(t *testing.T, st AgencyCatalog, want *mobileapi.Service) {
	t.Helper()
	ctx := t.Context()
	got, err := st.GetService(ctx, want.ID)
	if err != nil {
		t.Fatalf("GetService: %v", err)
	}
	catEqualService(t, "GetService", got, want)
	got, err = st.GetServiceByCode(ctx, want.Code)
	if err != nil {
		t.Fatalf("GetServiceByCode: %v", err)
	}
	catEqualService(t, "GetServiceByCode", got, want)
	got, err = st.GetServiceVersion(ctx, want.ID, want.Version)
	if err != nil {
		t.Fatalf("GetServiceVersion(%d): %v", want.Version, err)
	}
	catEqualService(t, fmt.Sprintf("GetServiceVersion(%d)", want.Version), got, want)
}

func catWantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func catAgencyRoundTrip(t *testing.T, s AgencyCatalog) {
	ctx := t.Context()
	before := time.Now().Add(-time.Second)
	root := &mobileapi.Agency{Code: "HN", Name: mobileapi.Text{VI: "UBND thành phố Hà Nội", EN: "Hanoi People's Committee"}, ProvinceCode: "01"}
	child := &mobileapi.Agency{Code: "HN-HOANKIEM", Name: mobileapi.Text{VI: "UBND phường Hoàn Kiếm", EN: "Hoan Kiem Ward People's Committee"}, ParentCode: "HN", ProvinceCode: "01"}
	national := &mobileapi.Agency{Code: "BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp", EN: "Ministry of Justice"}}
	for _, a := range []*mobileapi.Agency{root, child, national} {
		if err := s.CreateAgency(ctx, a); err != nil {
			t.Fatalf("CreateAgency(%s): %v", a.Code, err)
		}
		if a.CreatedAt.Before(before) || a.CreatedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("CreateAgency(%s) set CreatedAt %v, want about now", a.Code, a.CreatedAt)
		}
	}
	for _, want := range []*mobileapi.Agency{root, child, national} {
		got, err := s.GetAgency(ctx, want.Code)
		if err != nil {
			t.Fatalf("GetAgency(%s): %v", want.Code, err)
		}
		if got.CreatedAt.Location() != time.UTC || !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("GetAgency(%s).CreatedAt = %v, want %v in UTC", want.Code, got.CreatedAt, want.CreatedAt)
		}
		g, w := *got, *want
		g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("GetAgency(%s):\n got  %+v\n want %+v", want.Code, g, w)
		}
	}
	_, err := s.GetAgency(ctx, "NOPE")
	catWantErr(t, "GetAgency(unknown)", err, idp.ErrNotFound)
}

func catAgencyDuplicate(t *testing.T, s AgencyCatalog) {
	ctx := t.Context()
	if err := s.CreateAgency(ctx, &mobileapi.Agency{Code: "BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp", EN: "Ministry of Justice"}}); err != nil {
		t.Fatal(err)
	}
	err := s.CreateAgency(ctx, &mobileapi.Agency{Code: "BTP", Name: mobileapi.Text{VI: "Khác", EN: "Other"}})
	catWantErr(t, "CreateAgency(duplicate)", err, idp.ErrConflict)
	got, err := s.GetAgency(ctx, "BTP")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name.EN != "Ministry of Justice" {
		t.Errorf("the duplicate changed the agency: %+v", got)
	}
}

func catAgencyUnknownParent(t *testing.T, s AgencyCatalog) {
	ctx := t.Context()
	err := s.CreateAgency(ctx, &mobileapi.Agency{Code: "HN-HOANKIEM", Name: mobileapi.Text{VI: "Hoàn Kiếm", EN: "Hoan Kiem"}, ParentCode: "HN"})
	catWantErr(t, "CreateAgency(unknown parent)", err, idp.ErrNotFound)
	err = s.CreateAgency(ctx, &mobileapi.Agency{Code: "SELF", Name: mobileapi.Text{VI: "Tự", EN: "Self"}, ParentCode: "SELF"})
	catWantErr(t, "CreateAgency(own parent)", err, idp.ErrNotFound)
	for _, code := range []string{"HN-HOANKIEM", "SELF"} {
		_, err = s.GetAgency(ctx, code)
		catWantErr(t, "GetAgency after a refused create", err, idp.ErrNotFound)
	}
}

func catAgencyInvalid(t *testing.T, s AgencyCatalog) {
	ctx := t.Context()
	for _, a := range []*mobileapi.Agency{
		{Code: "", Name: mobileapi.Text{VI: "Không mã", EN: "No code"}},
		{Code: "NONAME"},
	} {
		err := s.CreateAgency(ctx, a)
		catWantErr(t, fmt.Sprintf("CreateAgency(%+v)", a), err, idp.ErrInvalid)
	}
	list, err := s.ListAgencies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("refused agencies were stored: %+v", list)
	}
}

func catAgencyList(t *testing.T, s AgencyCatalog) {
	ctx := t.Context()
	list, err := s.ListAgencies(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListAgencies on an empty store = %v, %v; want none", list, err)
	}
	// Byte order, whatever the database's locale: "B" before "a", "a-b"
	// before "ab".
	codes := []string{"b", "B", "ab", "a-b", "a", "A.1", "0", "a_b"}
	for _, c := range codes {
		if err := s.CreateAgency(ctx, &mobileapi.Agency{Code: c, Name: mobileapi.Text{VI: "Cơ quan " + c, EN: "Agency " + c}}); err != nil {
			t.Fatalf("CreateAgency(%s): %v", c, err)
		}
	}
	list, err = s.ListAgencies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range list {
		got = append(got, a.Code)
		if a.Name.EN != "Agency "+a.Code || a.Name.VI != "Cơ quan "+a.Code || a.CreatedAt.IsZero() {
			t.Errorf("listed %+v", a)
		}
	}
	want := slices.Clone(codes)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("ListAgencies codes = %q, want %q", got, want)
	}
}

func catAgencyConcurrentCreate(t *testing.T, s AgencyCatalog) {
	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.CreateAgency(t.Context(), &mobileapi.Agency{Code: "BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp", EN: fmt.Sprintf("writer %d", i)}})
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, idp.ErrConflict):
			t.Errorf("writer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent creates of one code succeeded, want 1", ok)
	}
}

func catServiceCreate(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	before := time.Now().Add(-time.Second)
	svc := catService("1.001193")
	if !catPut(t, s, svc, 0) {
		t.Error("PutService of a new code reported created = false")
	}
	if !catIDPattern.MatchString(svc.ID) {
		t.Errorf("ID %q, want svc_ and 26 lowercase base32 characters", svc.ID)
	}
	if svc.Version != 1 {
		t.Errorf("Version = %d, want 1", svc.Version)
	}
	if svc.UpdatedAt.Before(before) || svc.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("UpdatedAt = %v, want about now", svc.UpdatedAt)
	}
	// What the store filled in is what the input said plus the stamps.
	want := catService("1.001193")
	want.ID, want.Version, want.UpdatedAt = svc.ID, 1, svc.UpdatedAt
	catEqualService(t, "the filled service", svc, want)
	catCheckStored(t, s, want)
	if got := want.Handlers(); !slices.Equal(got, []string{"HN-HOANKIEM", "HCM"}) {
		t.Errorf("Handlers() = %q", got)
	}

	// Another code is another service.
	other := catService("1.000001")
	if !catPut(t, s, other, 0) {
		t.Error("second service not created")
	}
	if other.ID == svc.ID {
		t.Error("two services share an ID")
	}
}

func catServiceUnchanged(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	first := catService("1.001193")
	catPut(t, s, first, 0)
	for _, ifVersion := range []int{0, 1} {
		again := catService("1.001193")
		if catPut(t, s, again, ifVersion) {
			t.Errorf("ifVersion %d: an unchanged put reported created", ifVersion)
		}
		catEqualService(t, fmt.Sprintf("ifVersion %d: an unchanged put", ifVersion), again, first)
	}
	// Fields a caller may carry over from a read do not make a change.
	stale := catService("1.001193")
	stale.ID, stale.Version, stale.UpdatedAt = first.ID, 7, time.Now().Add(time.Hour)
	if catPut(t, s, stale, 0) {
		t.Error("created")
	}
	catEqualService(t, "a put carrying a stale version and time", stale, first)
	catCheckStored(t, s, first)
	_, err := s.GetServiceVersion(t.Context(), first.ID, 2)
	catWantErr(t, "version 2 after unchanged puts", err, idp.ErrNotFound)
}

func catServiceVersions(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	cur := catService("1.001193")
	catPut(t, s, cur, 0)
	versions := []*mobileapi.Service{nil, catCopy(cur)} // by version
	changes := []struct {
		what   string
		change func(*mobileapi.Service)
	}{
		{"name.vi", func(s *mobileapi.Service) { s.Name.VI = "Đăng ký khai sinh (mới)" }},
		{"name.en", func(s *mobileapi.Service) { s.Name.EN = "Birth registration (new)" }},
		{"description.vi", func(s *mobileapi.Service) { s.Description.VI = "Mô tả mới." }},
		{"description.en", func(s *mobileapi.Service) { s.Description.EN = "New description." }},
		{"category", func(s *mobileapi.Service) { s.Category = "residence" }},
		{"fee.amount", func(s *mobileapi.Service) { s.Fee.Amount = 0 }},
		{"fee.currency", func(s *mobileapi.Service) { s.Fee.Currency = "USD" }},
		{"processing_days", func(s *mobileapi.Service) { s.ProcessingDays = 5 }},
		{"required_documents[].required", func(s *mobileapi.Service) { s.RequiredDocuments[1].Required = true }},
		{"required_documents[].name", func(s *mobileapi.Service) { s.RequiredDocuments[0].Name.EN = "Birth certificate from the hospital" }},
		{"required_documents added", func(s *mobileapi.Service) {
			s.RequiredDocuments = append(s.RequiredDocuments, mobileapi.RequiredDocument{Code: "id_card", Name: mobileapi.Text{VI: "Căn cước", EN: "Identity card"}, Required: true})
		}},
		{"required_documents emptied", func(s *mobileapi.Service) { s.RequiredDocuments = nil }},
		{"handling_agencies removed one", func(s *mobileapi.Service) { s.HandlingAgencies = []string{"HCM"} }},
		{"handling_agencies emptied", func(s *mobileapi.Service) { s.HandlingAgencies = nil }},
		{"schema", func(s *mobileapi.Service) {
			s.Schema = json.RawMessage(`{"type":"object","properties":{"child_full_name":{"type":"string","maxLength":80}}}`)
		}},
		{"schema removed", func(s *mobileapi.Service) { s.Schema = nil }},
	}
	for i, c := range changes {
		next := catCopy(cur)
		c.change(next)
		put := catCopy(next)
		ifVersion := 0
		if i%2 == 1 {
			ifVersion = cur.Version
		}
		if catPut(t, s, put, ifVersion) {
			t.Errorf("%s: reported created", c.what)
		}
		if put.ID != cur.ID || put.Version != cur.Version+1 {
			t.Errorf("%s: stored %s v%d, want %s v%d", c.what, put.ID, put.Version, cur.ID, cur.Version+1)
		}
		if put.UpdatedAt.Before(cur.UpdatedAt) {
			t.Errorf("%s: UpdatedAt went back from %v to %v", c.what, cur.UpdatedAt, put.UpdatedAt)
		}
		next.ID, next.Version, next.UpdatedAt = put.ID, put.Version, put.UpdatedAt
		catEqualService(t, c.what+": the filled service", put, next)
		cur = next
		versions = append(versions, catCopy(cur))
	}
	catCheckStored(t, s, cur)
	// Every version stays readable as it was, as applications following it
	// need.
	for v := 1; v < len(versions); v++ {
		got, err := s.GetServiceVersion(t.Context(), cur.ID, v)
		if err != nil {
			t.Fatalf("GetServiceVersion(%d): %v", v, err)
		}
		catEqualService(t, fmt.Sprintf("GetServiceVersion(%d)", v), got, versions[v])
	}
	list, err := s.ListServices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("ListServices returned %d services, want 1 (versions are not services)", len(list))
	}
	catEqualService(t, "ListServices", list[0], cur)
}

func catServicePrecondition(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	ctx := t.Context()
	v1 := catService("1.001193")
	catPut(t, s, v1, 0)

	changed := catService("1.001193")
	changed.ProcessingDays = 10
	_, err := s.PutService(ctx, catCopy(changed), 2)
	catWantErr(t, "PutService(ifVersion 2 while 1 is current)", err, mobileapi.ErrPrecondition)
	catCheckStored(t, s, v1)
	_, err = s.GetServiceVersion(ctx, v1.ID, 2)
	catWantErr(t, "version 2 after a refused put", err, idp.ErrNotFound)

	v2 := catCopy(changed)
	catPut(t, s, v2, 1)
	if v2.Version != 2 {
		t.Fatalf("Version = %d, want 2", v2.Version)
	}
	again := catService("1.001193")
	again.ProcessingDays = 20
	_, err = s.PutService(ctx, again, 1)
	catWantErr(t, "PutService(ifVersion 1 while 2 is current)", err, mobileapi.ErrPrecondition)
	catCheckStored(t, s, v2)

	// A service that does not exist has no version to match.
	_, err = s.PutService(ctx, catService("2.000001"), 1)
	catWantErr(t, "PutService(new code, ifVersion 1)", err, mobileapi.ErrPrecondition)
	_, err = s.GetServiceByCode(ctx, "2.000001")
	catWantErr(t, "GetServiceByCode after a refused create", err, idp.ErrNotFound)
}

func catServiceUnknownAgencies(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	ctx := t.Context()
	noOwner := catService("1.001193")
	noOwner.AgencyCode = "NOPE"
	_, err := s.PutService(ctx, noOwner, 0)
	catWantErr(t, "PutService(unknown owner)", err, idp.ErrInvalid)
	noHandler := catService("1.001193")
	noHandler.HandlingAgencies = []string{"HN-HOANKIEM", "NOPE"}
	_, err = s.PutService(ctx, noHandler, 0)
	catWantErr(t, "PutService(unknown handling agency)", err, idp.ErrInvalid)
	_, err = s.GetServiceByCode(ctx, "1.001193")
	catWantErr(t, "GetServiceByCode after refused creates", err, idp.ErrNotFound)

	v1 := catService("1.001193")
	catPut(t, s, v1, 0)
	noHandler = catService("1.001193")
	noHandler.HandlingAgencies = []string{"NOPE"}
	_, err = s.PutService(ctx, noHandler, 0)
	catWantErr(t, "PutService(new version with an unknown handling agency)", err, idp.ErrInvalid)
	noOwner = catService("1.001193")
	noOwner.AgencyCode = "NOPE"
	_, err = s.PutService(ctx, noOwner, 1)
	catWantErr(t, "PutService(new version with an unknown owner)", err, idp.ErrInvalid)
	catCheckStored(t, s, v1)

	// Another agency cannot take the code over, even racing its creation:
	// the owner is checked under the service's row lock.
	other := catService("1.001193")
	other.AgencyCode = "HN"
	_, err = s.PutService(ctx, other, 0)
	catWantErr(t, "PutService(another agency's code)", err, mobileapi.ErrNotOwner)
	catCheckStored(t, s, v1)
}

func catServiceInvalid(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	ctx := t.Context()
	for _, c := range []struct {
		what   string
		change func(*mobileapi.Service)
	}{
		{"empty code", func(s *mobileapi.Service) { s.Code = "" }},
		{"empty name", func(s *mobileapi.Service) { s.Name = mobileapi.Text{} }},
		{"empty owner", func(s *mobileapi.Service) { s.AgencyCode = "" }},
		{"schema not JSON", func(s *mobileapi.Service) { s.Schema = json.RawMessage(`{"type":`) }},
		{"negative fee", func(s *mobileapi.Service) { s.Fee.Amount = -1 }},
		{"negative processing days", func(s *mobileapi.Service) { s.ProcessingDays = -1 }},
		{"required document without code", func(s *mobileapi.Service) { s.RequiredDocuments[0].Code = "" }},
		{"required document listed twice", func(s *mobileapi.Service) { s.RequiredDocuments[1].Code = s.RequiredDocuments[0].Code }},
	} {
		svc := catService("1.001193")
		c.change(svc)
		_, err := s.PutService(ctx, svc, 0)
		catWantErr(t, "PutService("+c.what+")", err, idp.ErrInvalid)
	}
	list, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("refused services were stored: %d", len(list))
	}
}

func catServiceNotFound(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	ctx := t.Context()
	_, err := s.GetService(ctx, "svc_aaaaaaaaaaaaaaaaaaaaaaaaaa")
	catWantErr(t, "GetService(unknown)", err, idp.ErrNotFound)
	_, err = s.GetServiceByCode(ctx, "9.999999")
	catWantErr(t, "GetServiceByCode(unknown)", err, idp.ErrNotFound)
	svc := catService("1.001193")
	catPut(t, s, svc, 0)
	for _, v := range []int{0, -1, 2} {
		_, err = s.GetServiceVersion(ctx, svc.ID, v)
		catWantErr(t, fmt.Sprintf("GetServiceVersion(%d)", v), err, idp.ErrNotFound)
	}
	_, err = s.GetServiceVersion(ctx, "svc_aaaaaaaaaaaaaaaaaaaaaaaaaa", 1)
	catWantErr(t, "GetServiceVersion(unknown service)", err, idp.ErrNotFound)
	// A code is not an ID.
	_, err = s.GetService(ctx, svc.Code)
	catWantErr(t, "GetService(a code)", err, idp.ErrNotFound)
}

func catServiceEmptyLists(t *testing.T, s AgencyCatalog) {
	ctx := t.Context()
	list, err := s.ListServices(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListServices on an empty store = %v, %v; want none", list, err)
	}
	catSeed(t, s)
	bare := catService("1.001193")
	bare.RequiredDocuments, bare.HandlingAgencies, bare.Schema = nil, nil, nil
	bare.Description = mobileapi.Text{VI: "Chỉ có tiếng Việt."} // a text in one language stays so
	want := catCopy(bare)
	catPut(t, s, bare, 0)
	want.ID, want.Version, want.UpdatedAt = bare.ID, 1, bare.UpdatedAt
	catCheckStored(t, s, want)
	got, err := s.GetService(ctx, bare.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.RequiredDocuments) != 0 || len(got.HandlingAgencies) != 0 || len(got.Schema) != 0 {
		t.Errorf("empty lists came back as %+v, %q, %s", got.RequiredDocuments, got.HandlingAgencies, got.Schema)
	}
	if h := got.Handlers(); !slices.Equal(h, []string{"BTP"}) {
		t.Errorf("Handlers() = %q, want the owner alone", h)
	}
	// Empty lists given as empty rather than nil are no change.
	again := catCopy(want)
	again.RequiredDocuments, again.HandlingAgencies = []mobileapi.RequiredDocument{}, []string{}
	if catPut(t, s, again, 0) || again.Version != 1 {
		t.Errorf("empty instead of nil lists made version %d", again.Version)
	}
}

func catServiceSchemaFidelity(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	svc := catService("1.001193")
	catPut(t, s, svc, 0)
	got, err := s.GetService(t.Context(), svc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !catSameJSON(got.Schema, []byte(catSchema)) {
		t.Errorf("schema came back as %s, want %s", got.Schema, catSchema)
	}
	if !json.Valid(got.Schema) {
		t.Errorf("schema came back as invalid JSON: %s", got.Schema)
	}
	// Key order, the large integer and the text survive (a store that
	// parses into float64 or a map would lose them).
	for _, part := range []string{`"Họ và tên trẻ"`, `12345678901234567890`} {
		if !bytes.Contains(got.Schema, []byte(part)) {
			t.Errorf("schema lost %s: %s", part, got.Schema)
		}
	}
	// The caller's buffer is not kept: changing it changes nothing stored.
	in := catService("1.000002")
	buf := in.Schema
	catPut(t, s, in, 0)
	copy(buf, "[[[[")
	got, err = s.GetService(t.Context(), in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !catSameJSON(got.Schema, []byte(catSchema)) {
		t.Errorf("the stored schema aliases the caller's buffer: %s", got.Schema)
	}
}

func catServiceList(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	ctx := t.Context()
	codes := []string{"b.2", "B.1", "1.001193", "a-1", "a1", "1.000001"}
	byCode := map[string]*mobileapi.Service{}
	for _, c := range codes {
		svc := catService(c)
		svc.Name.EN = "Service " + c
		catPut(t, s, svc, 0)
		byCode[c] = svc
	}
	updated := catCopy(byCode["a1"])
	updated.Name.EN = "Service a1, second version"
	catPut(t, s, updated, 1)
	byCode["a1"] = updated

	list, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(codes)
	sort.Strings(want)
	var got []string
	for _, svc := range list {
		got = append(got, svc.Code)
		if w := byCode[svc.Code]; w != nil {
			catEqualService(t, "ListServices "+svc.Code, svc, w)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListServices codes = %q, want %q", got, want)
	}
}

func catCatalogVersion(t *testing.T, s AgencyCatalog) {
	ctx := t.Context()
	version := func() int64 {
		t.Helper()
		v, err := s.CatalogVersion(ctx)
		if err != nil {
			t.Fatalf("CatalogVersion: %v", err)
		}
		return v
	}
	catSeed(t, s)
	v0 := version()
	if v := version(); v != v0 {
		t.Errorf("CatalogVersion changed from %d to %d with no write", v0, v)
	}
	svc := catService("1.001193")
	catPut(t, s, svc, 0)
	v1 := version()
	if v1 == v0 {
		t.Error("CatalogVersion did not change when a service was created")
	}
	svc = catService("1.001193")
	svc.Fee.Amount = 0
	catPut(t, s, svc, 0)
	v2 := version()
	if v2 == v1 || v2 == v0 {
		t.Errorf("CatalogVersion %d after a new version, seen before (%d, %d)", v2, v0, v1)
	}
}

func catServiceConcurrentPuts(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	const n = 12
	type result struct {
		created bool
		svc     *mobileapi.Service
		err     error
	}
	results := make([]result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			svc := catService("1.001193")
			svc.Description.EN = fmt.Sprintf("writer %d", i)
			<-start
			created, err := s.PutService(t.Context(), svc, 0)
			results[i] = result{created, svc, err}
		})
	}
	close(start)
	wg.Wait()
	created := 0
	versions := map[int]int{} // version -> writer
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("writer %d: %v", i, r.err)
		}
		if r.created {
			created++
		}
		if r.svc.ID != results[0].svc.ID {
			t.Errorf("writers %d and 0 stored services %s and %s for one code", i, r.svc.ID, results[0].svc.ID)
		}
		if w, dup := versions[r.svc.Version]; dup {
			t.Errorf("writers %d and %d both got version %d", w, i, r.svc.Version)
		}
		versions[r.svc.Version] = i
	}
	if created != 1 {
		t.Errorf("%d writers created the service, want 1", created)
	}
	// Every write is a version: none lost, none overwritten.
	for v := 1; v <= n; v++ {
		w, ok := versions[v]
		if !ok {
			t.Errorf("no writer got version %d (versions %v)", v, versions)
			continue
		}
		got, err := s.GetServiceVersion(t.Context(), results[0].svc.ID, v)
		if err != nil {
			t.Fatalf("GetServiceVersion(%d): %v", v, err)
		}
		if want := fmt.Sprintf("writer %d", w); got.Description.EN != want {
			t.Errorf("version %d holds %q, want %q", v, got.Description.EN, want)
		}
	}
	latest, err := s.GetServiceByCode(t.Context(), "1.001193")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != n {
		t.Errorf("latest version %d, want %d", latest.Version, n)
	}
	list, err := s.ListServices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Errorf("ListServices returned %d services for one code", len(list))
	}
}

func catServiceConcurrentPreconditions(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	v1 := catService("1.001193")
	catPut(t, s, v1, 0)
	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			svc := catService("1.001193")
			svc.Description.EN = fmt.Sprintf("writer %d", i)
			<-start
			_, errs[i] = s.PutService(t.Context(), svc, 1)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("writers %d and %d both replaced version 1", winner, i)
			}
			winner = i
		case !errors.Is(err, mobileapi.ErrPrecondition):
			t.Errorf("writer %d: %v, want nil or ErrPrecondition", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer replaced version 1")
	}
	latest, err := s.GetService(t.Context(), v1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("writer %d", winner); latest.Version != 2 || latest.Description.EN != want {
		t.Errorf("latest is v%d %q, want v2 %q", latest.Version, latest.Description.EN, want)
	}
}
