package represent

import (
	"errors"
	"strings"
	"testing"
)

func TestParseOrganisations(t *testing.T) {
	csvOK := "\ufefftax_code,name,name_en,address,legal_representative,status\n" +
		"0100000001,Công ty TNHH Demo Một,DEMO ONE LLC,1 Phố Demo,001090000001,\n" +
		"0100000002-001, Chi nhánh Demo Hai ,,,001090000002, Suspended \n"
	orgs, err := ParseOrganisations("orgs.csv", []byte(csvOK))
	if err != nil {
		t.Fatal(err)
	}
	if len(orgs) != 2 || orgs[0].Status != OrgActive || orgs[1].Status != OrgSuspended || orgs[1].Name != "Chi nhánh Demo Hai" || orgs[0].NameEn != "DEMO ONE LLC" {
		t.Errorf("CSV: %+v %+v", orgs[0], orgs[1])
	}
	// Columns in another order.
	reordered := "status,legal_representative,address,name_en,name,tax_code\nactive,001090000001,,,Demo,0100000001\n"
	if orgs, err := ParseOrganisations("o.csv", []byte(reordered)); err != nil || orgs[0].TaxCode != "0100000001" {
		t.Errorf("reordered CSV: %v %+v", err, orgs)
	}
	jsonOK := `[{"tax_code":"0100000001","name":"Công ty TNHH Demo Một","legal_representative":"001090000001"},
		{"tax_code":"0100000003","name":"Demo Ba","name_en":"DEMO THREE","address":"x","legal_representative":"001090000003","status":"dissolved"}]`
	orgs, err = ParseOrganisations("orgs.json", []byte(jsonOK))
	if err != nil {
		t.Fatal(err)
	}
	if len(orgs) != 2 || orgs[0].Status != OrgActive || orgs[1].Status != OrgDissolved || orgs[0].ID != "" {
		t.Errorf("JSON: %+v %+v", orgs[0], orgs[1])
	}

	for _, tc := range []struct {
		name, file, data string
		want             []string
	}{
		{"bad header", "o.csv", "tax_code,name,address,legal_representative,status\n", []string{"header must be exactly", "missing: [name_en]"}},
		{"extra column", "o.csv", "tax_code,name,name_en,address,legal_representative,status,ceo\n", []string{"unknown: [ceo]"}},
		{"repeated column", "o.csv", "tax_code,name,name_en,address,legal_representative,tax_code\n", []string{"header must be exactly"}},
		{"empty", "o.csv", "", []string{"empty CSV"}},
		{"header only", "o.csv", "tax_code,name,name_en,address,legal_representative,status\n", []string{"no organisations"}},
		{"ragged", "o.csv", "tax_code,name,name_en,address,legal_representative,status\n0100000001,x\n", []string{"CSV:"}},
		{"unknown JSON field", "o.json", `[{"tax_code":"0100000001","ceo":"x"}]`, []string{"unknown field", "tax_code, name"}},
		{"not an array", "o.json", `{"tax_code":"0100000001"}`, []string{"not a JSON array"}},
		{"trailing", "o.json", `[] []`, []string{"trailing data"}},
		{"every row problem", "o.csv", "tax_code,name,name_en,address,legal_representative,status\n" +
			"123,,,,00109,closed\n" +
			"0100000001,A\x01B,,,001090000001,\n" +
			"0100000001,Dup,,,001090000001,\n", []string{
			"row 1: tax_code must be", "row 1: ", "name is required", "legal_representative must be", "status must be",
			"row 2: name must be valid UTF-8", "row 3: tax_code repeats row 2"}},
		{"bad UTF-8", "o.json", "[{\"tax_code\":\"0100000001\",\"name\":\"\xff\",\"legal_representative\":\"001090000001\"}]", []string{"not UTF-8"}},
		{"too long", "o.json", `[{"tax_code":"0100000001","name":"` + strings.Repeat("a", 301) + `","legal_representative":"001090000001"}]`, []string{"at most 300 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orgs, err := ParseOrganisations(tc.file, []byte(tc.data))
			if !errors.Is(err, ErrInvalid) || orgs != nil {
				t.Fatalf("got %v, %v; want ErrInvalid and nothing", orgs, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func FuzzParseOrganisations(f *testing.F) {
	f.Add("o.csv", []byte("tax_code,name,name_en,address,legal_representative,status\n0100000001,Demo,,,001090000001,\n"))
	f.Add("o.json", []byte(`[{"tax_code":"0100000001","name":"Demo","legal_representative":"001090000001","status":"active"}]`))
	f.Add("o", []byte("\ufeff[]"))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		orgs, err := ParseOrganisations(name, data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || orgs != nil {
				t.Fatalf("error %v does not wrap ErrInvalid, or came with organisations", err)
			}
			return
		}
		if len(orgs) == 0 {
			t.Fatal("success with no organisations")
		}
		seen := map[string]bool{}
		for _, o := range orgs {
			if bad := checkOrganisation(o); len(bad) > 0 {
				t.Fatalf("accepted an invalid organisation %+v: %v", o, bad)
			}
			if seen[o.TaxCode] {
				t.Fatalf("accepted tax code %s twice", o.TaxCode)
			}
			seen[o.TaxCode] = true
		}
	})
}
