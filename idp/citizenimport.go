package idp

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// CitizenRecord is the import and display form of a registry entry: the JSON
// members and CSV columns of `onedoor citizen import`.
type CitizenRecord struct {
	PersonalID  string `json:"personal_id"`
	FamilyName  string `json:"family_name"`
	GivenName   string `json:"given_name"`
	Birthdate   string `json:"birthdate"`
	Gender      string `json:"gender"`
	Address     string `json:"address"`
	PhoneNumber string `json:"phone_number"`
	// Guardians are the personal ids of the citizen's parents or
	// guardians (optional; in the CSV, a guardians column of ids separated
	// by ";"): each must be in the same file or already registered. They
	// act for the citizen until the age of majority.
	Guardians []string `json:"guardians,omitempty"`
}

// citizenColumns are the CSV header, exactly, but for the optional
// guardiansColumn.
var citizenColumns = []string{"personal_id", "family_name", "given_name", "birthdate", "gender", "address", "phone_number"}

// guardiansColumn is the CSV's optional column of guardians' personal ids,
// separated by guardianSep.
const (
	guardiansColumn = "guardians"
	guardianSep     = ";"
	// maxGuardians bounds one citizen's guardians in an import.
	maxGuardians = 4
)

// Citizen returns the registry entry the record describes, without subject
// or creation time.
func (r CitizenRecord) Citizen() *Citizen {
	return &Citizen{PersonalID: r.PersonalID, FamilyName: r.FamilyName, GivenName: r.GivenName,
		Birthdate: r.Birthdate, Gender: r.Gender, Address: r.Address, PhoneNumber: r.PhoneNumber,
		Guardians: slices.Clone(r.Guardians)}
}

// Record returns the import form of c.
func (c *Citizen) Record() CitizenRecord {
	return CitizenRecord{PersonalID: c.PersonalID, FamilyName: c.FamilyName, GivenName: c.GivenName,
		Birthdate: c.Birthdate, Gender: c.Gender, Address: c.Address, PhoneNumber: c.PhoneNumber,
		Guardians: slices.Clone(c.Guardians)}
}

// ParseCitizens reads a JSON array of CitizenRecord or a CSV file whose
// header row names exactly the same columns. Every row is normalised and
// validated and personal ids must be distinct; any problem rejects the whole
// file (wrapping ErrInvalid) with every problem listed by row. The citizens
// come back without subject identifiers: see NewSubject.
func ParseCitizens(name string, data []byte) ([]*Citizen, error) {
	recs, err := parseCitizenRecords(name, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %w", name, err, ErrInvalid)
	}
	cs := make([]*Citizen, 0, len(recs))
	for _, r := range recs {
		cs = append(cs, r.Citizen())
	}
	if err := CheckCitizens(cs); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cs, nil
}

// CheckCitizens normalises a batch of citizens to import and reports every
// problem at once, by row (1-based): invalid fields, a personal id repeated
// within the batch, a guardian who is not a personal id, is the citizen or
// is repeated, an empty batch. The error wraps ErrInvalid. Whether each
// guardian is in the batch or registered is CheckGuardians'.
func CheckCitizens(cs []*Citizen) error {
	var probs []string
	seen := map[string]int{}
	for i, c := range cs {
		c.Normalize()
		if err := c.Validate(); err != nil {
			probs = append(probs, fmt.Sprintf("row %d: %v", i+1, strings.TrimSuffix(err.Error(), ": "+ErrInvalid.Error())))
		}
		if j, dup := seen[c.PersonalID]; dup && c.PersonalID != "" {
			probs = append(probs, fmt.Sprintf("row %d: personal_id repeats row %d", i+1, j))
		}
		seen[c.PersonalID] = i + 1
		if len(c.Guardians) == 0 {
			c.Guardians = nil
		}
		if len(c.Guardians) > maxGuardians {
			probs = append(probs, fmt.Sprintf("row %d: at most %d guardians", i+1, maxGuardians))
		}
		for k, g := range c.Guardians {
			g = strings.TrimSpace(g)
			c.Guardians[k] = g
			switch {
			case !ValidPersonalID(g):
				probs = append(probs, fmt.Sprintf("row %d: guardians must be 12-digit personal ids (%d is not)", i+1, k+1))
			case g == c.PersonalID:
				probs = append(probs, fmt.Sprintf("row %d: a citizen cannot be their own guardian", i+1))
			case slices.Contains(c.Guardians[:k], g):
				probs = append(probs, fmt.Sprintf("row %d: guardian %s is listed twice", i+1, g))
			}
		}
	}
	if len(cs) == 0 {
		probs = append(probs, "no citizens in the file")
	}
	if len(probs) > 0 {
		return fmt.Errorf("nothing imported (%w):\n  %s", ErrInvalid, strings.Join(probs, "\n  "))
	}
	return nil
}

func parseCitizenRecords(name string, data []byte) ([]CitizenRecord, error) {
	var recs []CitizenRecord
	trimmed := bytes.TrimSpace(data)
	if strings.EqualFold(filepath.Ext(name), ".json") || (len(trimmed) > 0 && trimmed[0] == '[') {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&recs); err != nil {
			if strings.Contains(err.Error(), "unknown field") {
				return nil, fmt.Errorf("%v: each citizen has exactly these fields: %s, and optionally %s", err, strings.Join(citizenColumns, ", "), guardiansColumn)
			}
			return nil, fmt.Errorf("not a JSON array of citizens: %v", err)
		}
		if dec.More() {
			return nil, fmt.Errorf("trailing data after the JSON array")
		}
		return recs, nil
	}
	rows, err := csv.NewReader(bytes.NewReader(trimmed)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("CSV: %v", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("empty CSV")
	}
	cols := map[string]int{}
	for i, h := range rows[0] {
		cols[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	_, withGuardians := cols[guardiansColumn]
	want := len(citizenColumns)
	if withGuardians {
		want++
	}
	var missing []string
	for _, w := range citizenColumns {
		if _, ok := cols[w]; !ok {
			missing = append(missing, w)
		}
	}
	var unknown []string
	for _, h := range rows[0] {
		if h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")); !slices.Contains(citizenColumns, h) && h != guardiansColumn {
			unknown = append(unknown, h)
		}
	}
	if len(missing) > 0 || len(unknown) > 0 || len(cols) != want || len(rows[0]) != want {
		return nil, fmt.Errorf("the CSV header must be exactly %s, optionally with %s (missing: %v, unknown: %v)", strings.Join(citizenColumns, ","), guardiansColumn, missing, unknown)
	}
	for _, row := range rows[1:] {
		get := func(k string) string { return strings.TrimSpace(row[cols[k]]) }
		recs = append(recs, CitizenRecord{
			PersonalID: get("personal_id"), FamilyName: get("family_name"), GivenName: get("given_name"),
			Birthdate: get("birthdate"), Gender: get("gender"), Address: get("address"), PhoneNumber: get("phone_number"),
		})
		if withGuardians {
			for g := range strings.SplitSeq(get(guardiansColumn), guardianSep) {
				if g = strings.TrimSpace(g); g != "" {
					recs[len(recs)-1].Guardians = append(recs[len(recs)-1].Guardians, g)
				}
			}
		}
	}
	return recs, nil
}

// CheckGuardians reports, by row, every guardian of the batch that is
// neither in it nor registered (registered answers for a personal id). The
// error wraps ErrInvalid; registered's own errors come out as they are.
func CheckGuardians(cs []*Citizen, registered func(personalID string) (bool, error)) error {
	inBatch := make(map[string]bool, len(cs))
	for _, c := range cs {
		inBatch[c.PersonalID] = true
	}
	var probs []string
	for i, c := range cs {
		for _, g := range c.Guardians {
			if inBatch[g] {
				continue
			}
			ok, err := registered(g)
			if err != nil {
				return err
			}
			if !ok {
				probs = append(probs, fmt.Sprintf("row %d: guardian %s is neither in the file nor registered", i+1, g))
			}
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("nothing imported (%w):\n  %s", ErrInvalid, strings.Join(probs, "\n  "))
	}
	return nil
}

// NewSubject returns a fresh subject identifier for a citizen: 128 random
// bits, unrelated to the personal id, so a `sub` reveals nothing.
func NewSubject() string { return randomString(16) }

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
