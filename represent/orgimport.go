package represent

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OrganisationRecord is the import and display form of a business registry
// entry: the JSON members and CSV columns of `onedoor org import`.
type OrganisationRecord struct {
	TaxCode             string `json:"tax_code"`
	Name                string `json:"name"`
	NameEn              string `json:"name_en"`
	Address             string `json:"address"`
	LegalRepresentative string `json:"legal_representative"`
	Status              string `json:"status"`
}

// Record returns the import form of o.
func (o *Organisation) Record() OrganisationRecord {
	return OrganisationRecord{TaxCode: o.TaxCode, Name: o.Name, NameEn: o.NameEn, Address: o.Address,
		LegalRepresentative: o.LegalRepresentative, Status: o.Status}
}

// orgColumns are the CSV header, exactly (in any order).
var orgColumns = []string{"tax_code", "name", "name_en", "address", "legal_representative", "status"}

// ParseOrganisations reads a JSON array of OrganisationRecord (name_en,
// address and status may be left out) or a CSV file whose header row names
// exactly the columns tax_code,name,name_en,address,legal_representative,
// status (cells of the last four may be empty). An empty status is
// active. Every row is normalised and validated and tax codes must be
// distinct; any problem rejects the whole file (wrapping ErrInvalid) with
// every problem listed by row. The organisations come back without ID:
// Store.PutOrganisations gives new ones theirs and keeps the others'.
// Whether the legal representatives are registered citizens is the
// caller's to check.
func ParseOrganisations(name string, data []byte) ([]*Organisation, error) {
	recs, err := parseOrgRecords(name, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrInvalid)
	}
	var probs []string
	seen := map[string]int{}
	out := make([]*Organisation, 0, len(recs))
	for i, r := range recs {
		o := &Organisation{TaxCode: strings.TrimSpace(r.TaxCode), Name: strings.TrimSpace(r.Name), NameEn: strings.TrimSpace(r.NameEn),
			Address: strings.TrimSpace(r.Address), LegalRepresentative: strings.TrimSpace(r.LegalRepresentative),
			Status: strings.ToLower(strings.TrimSpace(r.Status))}
		if o.Status == "" {
			o.Status = OrgActive
		}
		if bad := checkOrganisation(o); len(bad) > 0 {
			probs = append(probs, fmt.Sprintf("row %d: %s", i+1, strings.Join(bad, "; ")))
		}
		if j, dup := seen[o.TaxCode]; dup && o.TaxCode != "" {
			probs = append(probs, fmt.Sprintf("row %d: tax_code repeats row %d", i+1, j))
		} else {
			seen[o.TaxCode] = i + 1
		}
		out = append(out, o)
	}
	if len(recs) == 0 {
		probs = append(probs, "no organisations in the file")
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%s: nothing imported (%w):\n  %s", name, ErrInvalid, strings.Join(probs, "\n  "))
	}
	return out, nil
}

func checkOrganisation(o *Organisation) []string {
	var bad []string
	if !ValidTaxCode(o.TaxCode) {
		bad = append(bad, "tax_code must be 10 digits, or 10 digits, a dash and 3 digits (a branch)")
	}
	if o.Name == "" {
		bad = append(bad, "name is required")
	}
	for _, f := range []struct{ name, v string }{{"name", o.Name}, {"name_en", o.NameEn}, {"address", o.Address}} {
		if !cleanText(f.v) {
			bad = append(bad, f.name+" must be valid UTF-8 without control characters (at most 300 bytes)")
		}
	}
	if !personalIDRE.MatchString(o.LegalRepresentative) {
		bad = append(bad, "legal_representative must be the 12-digit personal id of a registered citizen")
	}
	switch o.Status {
	case OrgActive, OrgSuspended, OrgDissolved:
	default:
		bad = append(bad, "status must be active, suspended or dissolved (empty is active)")
	}
	return bad
}

// cleanText reports whether s is printable UTF-8 text of reasonable
// length: registry names end up in tokens, pages and logs.
func cleanText(s string) bool {
	if len(s) > 300 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func parseOrgRecords(name string, data []byte) ([]OrganisationRecord, error) {
	var recs []OrganisationRecord
	// JSON would quietly turn bad bytes into U+FFFD: refuse them instead.
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("the file is not UTF-8 text")
	}
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\ufeff")))
	if strings.EqualFold(filepath.Ext(name), ".json") || (len(trimmed) > 0 && trimmed[0] == '[') {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&recs); err != nil {
			if strings.Contains(err.Error(), "unknown field") {
				return nil, fmt.Errorf("%v: each organisation has only these fields: %s", err, strings.Join(orgColumns, ", "))
			}
			return nil, fmt.Errorf("not a JSON array of organisations: %v", err)
		}
		if dec.More() {
			return nil, fmt.Errorf("trailing data after the JSON array")
		}
		return recs, nil
	}
	r := csv.NewReader(bytes.NewReader(trimmed))
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("CSV: %v", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("empty CSV")
	}
	cols := map[string]int{}
	var unknown []string
	for i, h := range rows[0] {
		h = strings.TrimSpace(h)
		if !slices.Contains(orgColumns, h) {
			unknown = append(unknown, h)
		}
		cols[h] = i
	}
	var missing []string
	for _, w := range orgColumns {
		if _, ok := cols[w]; !ok {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 || len(unknown) > 0 || len(rows[0]) != len(orgColumns) {
		return nil, fmt.Errorf("the CSV header must be exactly %s (missing: %v, unknown: %v)", strings.Join(orgColumns, ","), missing, unknown)
	}
	for _, row := range rows[1:] {
		get := func(k string) string { return row[cols[k]] }
		recs = append(recs, OrganisationRecord{TaxCode: get("tax_code"), Name: get("name"), NameEn: get("name_en"),
			Address: get("address"), LegalRepresentative: get("legal_representative"), Status: get("status")})
	}
	return recs, nil
}
