package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/represent"
)

// openDir opens the storage of a data directory as an admin command does.
func openDir(t *testing.T, dir string) *Main {
	t.Helper()
	m := NewMain()
	m.Config.DataDir = dir
	m.existingOnly = true
	if err := m.OpenStorage(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func writeTemp(t *testing.T, name, data string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

const householdCSV = "personal_id,family_name,given_name,birthdate,gender,address,phone_number,guardians\n" +
	"000000000201,Đỗ,Văn Demo,1980-01-01,male,Hà Nội (giả),,\n" +
	"000000000202,Đỗ,Con Demo,2016-05-05,female,Hà Nội (giả),,000000000201;000000000203\n" +
	"000000000203,Hồ,Thị Demo,1982-02-02,female,Hà Nội (giả),,\n"

// Citizen import records the guardians a file names, as registry
// guardianships, all or none.
func TestCLI_CitizenImportGuardians(t *testing.T) {
	dir := migratedDir(t)
	code, out, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, writeTemp(t, "h.csv", householdCSV))
	if code != 0 || !strings.Contains(out, `"imported": 3`) {
		t.Fatalf("import a household: exit %d: %s %s", code, out, errs)
	}
	// A guardian already registered, by JSON; one neither in the file nor
	// registered refuses the whole file, naming the row.
	good := `[{"personal_id":"000000000204","family_name":"Đỗ","given_name":"Út Demo","birthdate":"2019-01-01","gender":"male","address":"","phone_number":"","guardians":["000000000201"]}]`
	if code, out, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, writeTemp(t, "g.json", good)); code != 0 {
		t.Fatalf("a registered guardian: exit %d: %s %s", code, out, errs)
	}
	bad := `[{"personal_id":"000000000205","family_name":"Đỗ","given_name":"Lạ Demo","birthdate":"2019-01-01","gender":"male","address":"","phone_number":""},
		{"personal_id":"000000000206","family_name":"Đỗ","given_name":"Mồ Côi Demo","birthdate":"2019-01-01","gender":"male","address":"","phone_number":"","guardians":["000000000299"]}]`
	code, _, errs = cli(t, nil, "citizen", "import", "--data-dir", dir, writeTemp(t, "b.json", bad))
	if code != 1 || !strings.Contains(errs, "row 2: guardian 000000000299 is neither in the file nor registered") {
		t.Fatalf("an unknown guardian: exit %d: %s", code, errs)
	}
	self := strings.Replace(good, `"000000000201"]`, `"000000000207"]`, 1)
	self = strings.Replace(self, "000000000204", "000000000207", 1)
	code, _, errs = cli(t, nil, "citizen", "import", "--data-dir", dir, writeTemp(t, "s.json", self))
	if code != 1 || !strings.Contains(errs, "cannot be their own guardian") {
		t.Fatalf("one's own guardian: exit %d: %s", code, errs)
	}
	m := openDir(t, dir)
	ctx := t.Context()
	for _, pid := range []string{"000000000205", "000000000206", "000000000207"} {
		if _, err := m.Store.GetCitizenByPersonalID(ctx, pid); err == nil {
			t.Errorf("%s imported from a refused file", pid)
		}
	}
	child, err := m.Store.GetCitizenByPersonalID(ctx, "000000000202")
	if err != nil {
		t.Fatal(err)
	}
	gs, err := m.Store.Guardianships(ctx, child.ID)
	if err != nil || len(gs) != 2 || gs[0].Source != represent.GuardianRegistry {
		t.Fatalf("the child's guardianships: %v %+v", err, gs)
	}
	// The guardians act for the child.
	father, _ := m.Store.GetCitizenByPersonalID(ctx, "000000000201")
	reps, err := m.Represent.Representations(ctx, father.ID)
	if err != nil {
		t.Fatal(err)
	}
	var wards []string
	for _, r := range reps {
		wards = append(wards, r.Party.PersonalID)
	}
	slices.Sort(wards)
	if !slices.Equal(wards, []string{"000000000202", "000000000204"}) {
		t.Errorf("the father acts for %v", wards)
	}
}

const orgsCSV = "tax_code,name,name_en,address,legal_representative,status\n" +
	"0100000101,Công ty TNHH Thử Demo,TEST DEMO LLC,Hà Nội (giả),000000000101,\n" +
	"0100000102-001,Chi nhánh Thử Demo,,,000000000102,active\n"

func TestCLI_Org(t *testing.T) {
	dir := migratedDir(t)
	if code, _, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, writeTemp(t, "c.json", citizensJSON)); code != 0 {
		t.Fatal(errs)
	}
	// A legal representative who is not registered refuses the file.
	unknownRep := orgsCSV + "0100000103,Công ty Ma Demo,,,000000000199,\n"
	code, _, errs := cli(t, nil, "org", "import", "--data-dir", dir, writeTemp(t, "o.csv", unknownRep))
	if code != 1 || !strings.Contains(errs, "row 3: legal_representative 000000000199 is not a registered citizen") {
		t.Fatalf("an unknown representative: exit %d: %s", code, errs)
	}
	// Bad rows are listed, each.
	code, _, errs = cli(t, nil, "org", "import", "--data-dir", dir, writeTemp(t, "o.csv", "tax_code,name,name_en,address,legal_representative,status\n1,,,,2,gone\n"))
	if code != 1 || !strings.Contains(errs, "row 1: tax_code must be") || !strings.Contains(errs, "status must be") {
		t.Fatalf("bad rows: exit %d: %s", code, errs)
	}
	code, _, errs = cli(t, nil, "org", "import", "--data-dir", dir, writeTemp(t, "o.csv", "tax_code,name\n"))
	if code != 1 || !strings.Contains(errs, "header must be exactly") {
		t.Fatalf("bad header: exit %d: %s", code, errs)
	}
	code, out, _ := cli(t, nil, "org", "list", "--data-dir", dir)
	var list []map[string]any
	decodeList(t, out, "organisations", &list)
	if code != 0 || len(list) != 0 {
		t.Fatalf("refused files imported %d organisations", len(list))
	}

	code, out, errs = cli(t, nil, "org", "import", "--data-dir", dir, writeTemp(t, "o.csv", orgsCSV))
	if code != 0 || !strings.Contains(out, `"imported": 2`) || !strings.Contains(out, `"created": 2`) {
		t.Fatalf("import: exit %d: %s %s", code, out, errs)
	}
	code, out, _ = cli(t, nil, "org", "list", "--data-dir", dir)
	decodeList(t, out, "organisations", &list)
	if code != 0 || len(list) != 2 || list[0]["tax_code"] != "0100000101" || list[0]["status"] != "active" || !strings.HasPrefix(list[0]["id"].(string), "org:") {
		t.Fatalf("list: %v", list)
	}
	code, out, _ = cli(t, nil, "org", "list", "--data-dir", dir, "--after", "0100000101", "--limit", "1")
	decodeList(t, out, "organisations", &list)
	if code != 0 || len(list) != 1 || list[0]["tax_code"] != "0100000102-001" {
		t.Fatalf("second page: %v", list)
	}
	code, out, _ = cli(t, nil, "org", "show", "--data-dir", dir, "0100000101")
	var shown map[string]any
	decode(t, out, &shown)
	if code != 0 || shown["name_en"] != "TEST DEMO LLC" || shown["legal_representative"] != "000000000101" {
		t.Fatalf("show: %s", out)
	}
	if code, _, errs := cli(t, nil, "org", "show", "--data-dir", dir, "0100000999"); code != 1 || !strings.Contains(errs, "no organisation has tax code 0100000999") {
		t.Errorf("show a missing one: exit %d %s", code, errs)
	}
	for _, args := range [][]string{{"org", "show", "123"}, {"org", "show"}, {"org", "import"}, {"org", "list", "extra"}, {"org", "list", "--limit", "-1"}, {"org", "fly"}, {"org"}} {
		if code, _, _ := cli(t, nil, append(args, "--data-dir", dir)...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}

	// The legal representative replaced: the old one's tokens are denied
	// and they no longer represent it.
	m := openDir(t, dir)
	ctx := t.Context()
	old, _ := m.Store.GetCitizenByPersonalID(ctx, "000000000101")
	org, _ := m.RepStore.GetOrganisation(ctx, "0100000101")
	if _, err := m.Represent.Check(ctx, old.ID, org.ID, "", ""); err != nil {
		t.Fatalf("the legal representative does not represent: %v", err)
	}
	replaced := strings.Replace(orgsCSV, "TEST DEMO LLC,Hà Nội (giả),000000000101", "TEST DEMO LLC,Hà Nội (giả),000000000102", 1)
	code, out, errs = cli(t, nil, "org", "import", "--data-dir", dir, writeTemp(t, "o.csv", replaced))
	if code != 0 || !strings.Contains(out, `"updated": 2`) || !strings.Contains(out, `"old_legal_representative":"000000000101"`) && !strings.Contains(out, `"old_legal_representative": "000000000101"`) {
		t.Fatalf("replace: exit %d: %s %s", code, out, errs)
	}
	if denied, err := m.Store.AnyRevoked(ctx, represent.LegalRepKey(org.ID, old.ID)); err != nil || !denied {
		t.Errorf("the old representative's key is not denied: %v %v", denied, err)
	}
	if _, err := m.Represent.Check(ctx, old.ID, org.ID, "", ""); err == nil {
		t.Error("the replaced representative still represents")
	}
	again, _ := m.RepStore.GetOrganisation(ctx, "0100000101")
	if again.ID != org.ID {
		t.Errorf("the organisation's id changed on update: %s -> %s", org.ID, again.ID)
	}
}

func TestCLI_CitizenGuardian(t *testing.T) {
	dir := migratedDir(t)
	if code, _, errs := cli(t, nil, "citizen", "import", "--data-dir", dir, writeTemp(t, "c.json", citizensJSON)); code != 0 {
		t.Fatal(errs)
	}
	ward, guardian := "000000000101", "000000000102"
	until := time.Now().AddDate(1, 0, 0).Format("2006-01-02")
	code, out, errs := cli(t, nil, "citizen", "guardian", "--data-dir", dir, "--ward", ward, "--guardian", guardian, "--until", until)
	if code != 0 || !strings.Contains(out, `"source": "court"`) && !strings.Contains(out, `"source":"court"`) {
		t.Fatalf("appoint: exit %d: %s %s", code, out, errs)
	}
	for _, pid := range []string{ward, guardian} {
		code, out, _ := cli(t, nil, "citizen", "show", "--data-dir", dir, "--id", pid)
		var v struct {
			Guardianships []map[string]any `json:"guardianships"`
		}
		decode(t, out, &v)
		if code != 0 || len(v.Guardianships) != 1 || v.Guardianships[0]["ward"] != ward || v.Guardianships[0]["guardian"] != guardian ||
			v.Guardianships[0]["source"] != "court" || v.Guardianships[0]["until"] != until {
			t.Errorf("citizen show %s: %s", pid, out)
		}
	}
	code, _, errs = cli(t, nil, "citizen", "guardian", "--data-dir", dir, "--ward", ward, "--guardian", guardian)
	if code != 1 || !strings.Contains(errs, "already a court-appointed guardian") {
		t.Fatalf("appoint twice: exit %d: %s", code, errs)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--guardian", guardian}, 2, "--ward must be"},
		{[]string{"--ward", ward}, 2, "--guardian must be"},
		{[]string{"--ward", ward, "--guardian", ward}, 2, "own guardian"},
		{[]string{"--ward", ward, "--guardian", guardian, "--until", "31/12/2030"}, 2, "YYYY-MM-DD"},
		{[]string{"--ward", ward, "--guardian", guardian, "--until", "2001-01-01"}, 2, "is past"},
		{[]string{"--ward", ward, "--guardian", guardian, "--until", until, "--end"}, 2, "do not go together"},
		{[]string{"--ward", "000000000199", "--guardian", guardian}, 1, "no citizen has the ward's personal id"},
		{[]string{"--ward", ward, "--guardian", "000000000199"}, 1, "no citizen has the guardian's personal id"},
		{[]string{"--ward", guardian, "--guardian", ward, "--end"}, 1, "is not a guardian of"},
	} {
		code, _, errs := cli(t, nil, append([]string{"citizen", "guardian", "--data-dir", dir}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	m := openDir(t, dir)
	ctx := t.Context()
	w, _ := m.Store.GetCitizenByPersonalID(ctx, ward)
	g, _ := m.Store.GetCitizenByPersonalID(ctx, guardian)
	r, err := m.Represent.Check(ctx, g.ID, w.ID, "", "")
	if err != nil || r.Until == nil {
		t.Fatalf("the court's guardian does not act for the ward until a date: %v %+v", err, r)
	}
	// The last day counts, in Vietnam.
	if day := r.Until.In(represent.Zone).AddDate(0, 0, -1).Format("2006-01-02"); day != until {
		t.Errorf("until %v, want through %s", r.Until, until)
	}
	if code, _, errs := cli(t, nil, "citizen", "guardian", "--data-dir", dir, "--ward", ward, "--guardian", guardian, "--end"); code != 0 {
		t.Fatalf("end: %s", errs)
	}
	if denied, err := m.Store.AnyRevoked(ctx, represent.GuardianKey(w.ID, g.ID)); err != nil || !denied {
		t.Errorf("the guardian's key is not denied: %v %v", denied, err)
	}
	if _, err := m.Represent.Check(ctx, g.ID, w.ID, "", ""); err == nil {
		t.Error("an ended guardianship still represents")
	}
	if code, _, _ := cli(t, nil, "citizen", "guardian", "--data-dir", dir, "--ward", ward, "--guardian", guardian, "--end"); code != 1 {
		t.Errorf("end twice: exit %d, want 1", code)
	}
}

// The demo seeds a household and two companies its first citizen acts
// for, and seeding twice changes nothing.
func TestDemo_Representation(t *testing.T) {
	m := newTestMain(t)
	ctx := t.Context()
	for range 2 {
		if _, _, err := m.seedDemo(ctx, "http://localhost:9"); err != nil {
			t.Fatal(err)
		}
	}
	me, err := m.Store.GetCitizenByPersonalID(ctx, demoCitizens[0].PersonalID)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := m.Represent.Representations(ctx, me.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range reps {
		got = append(got, string(r.Basis)+":"+r.Party.Ref())
	}
	slices.Sort(got)
	if want := []string{"guardian:000000000006", "legal_representative:0100000001"}; !slices.Equal(got, want) {
		t.Errorf("the demo citizen acts for %v, want %v", got, want)
	}
	second, _ := m.Store.GetCitizenByPersonalID(ctx, demoCitizens[1].PersonalID)
	if _, err := m.Represent.Check(ctx, second.ID, mustOrg(t, m, "0100000002").ID, "", ""); err != nil {
		t.Errorf("the second company's representative: %v", err)
	}
	child, _ := m.Store.GetCitizenByPersonalID(ctx, "000000000006")
	if b, _ := time.Parse("2006-01-02", child.Birthdate); time.Since(b) > 11*365*24*time.Hour {
		t.Errorf("the demo child is not a child: born %s", child.Birthdate)
	}
	for _, o := range demoOrganisations {
		if !strings.Contains(o.Name, "Demo") || !strings.Contains(o.NameEn, "DEMO") {
			t.Errorf("a demo organisation that does not look fake: %+v", o)
		}
	}
	if _, err := m.Store.GetCitizenByPersonalID(ctx, "000000000005"); err != nil {
		t.Error(err)
	}
}

func mustOrg(t *testing.T, m *Main, taxCode string) *represent.Organisation {
	t.Helper()
	o, err := m.RepStore.GetOrganisation(t.Context(), taxCode)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// The representation guide's CSV example imports as it says, and its
// table describes every field.
func TestGuide_OrgImport(t *testing.T) {
	doc := readDoc(t, "representation.md")
	ex := fencedBlocks(doc, "csv", "tax_code")
	if len(ex) != 1 {
		t.Fatalf("want one CSV example, got %d", len(ex))
	}
	dir := migratedDir(t)
	m := openDir(t, dir)
	if err := m.ImportCitizens(t.Context(), demoCitizens[:2]); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli(t, nil, "org", "import", "--data-dir", dir, writeTemp(t, "orgs.csv", ex[0]))
	if code != 0 || !strings.Contains(out, `"imported": 2`) {
		t.Fatalf("the guide's example: exit %d: %s %s", code, out, errs)
	}
	code, out, _ = cli(t, nil, "org", "show", "--data-dir", dir, "0100000002-001")
	var o map[string]any
	decode(t, out, &o)
	if code != 0 || o["status"] != "active" || o["name"] != "Chi nhánh Demo Hai" {
		t.Errorf("the guide's second row is stored as %v", o)
	}
	rt := reflect.TypeFor[represent.OrganisationRecord]()
	for i := range rt.NumField() {
		if field, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ","); !strings.Contains(doc, "| `"+field+"` |") {
			t.Errorf("the guide's table does not describe %s", field)
		}
	}
}
