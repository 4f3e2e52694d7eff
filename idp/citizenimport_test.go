package idp

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const citizensJSON = `[
 {"personal_id":"000000000101","family_name":"Đặng","given_name":"Thị Demo","birthdate":"1999-09-09","gender":"nữ","address":"Hà Nội (giả)","phone_number":"0900 000 101"},
 {"personal_id":"000000000102","family_name":"Võ","given_name":"Văn Demo","birthdate":"1970-01-01","gender":"male","address":"","phone_number":""}
]`

func TestParseCitizens(t *testing.T) {
	cs, err := ParseCitizens("c.json", []byte(citizensJSON))
	if err != nil || len(cs) != 2 {
		t.Fatalf("ParseCitizens = %d citizens, %v", len(cs), err)
	}
	if cs[0].Gender != "female" || cs[0].PhoneNumber != "+84900000101" || cs[0].ID != "" {
		t.Errorf("first citizen not normalised or already has a subject: %+v", cs[0])
	}
	csv := "\ufeffpersonal_id,family_name,given_name,birthdate,gender,address,phone_number\n000000000103,Bùi,Demo,1988-02-29,male,x,+84900000103\n"
	if cs, err := ParseCitizens("c.csv", []byte(csv)); err != nil || len(cs) != 1 || cs[0].FamilyName != "Bùi" {
		t.Errorf("CSV: %v, %v", cs, err)
	}
	for _, tt := range []struct{ name, file, data, want string }{
		{"unknown JSON member", "c.json", `[{"personal_id":"000000000001","extra":1}]`, "unknown field"},
		{"trailing JSON", "c.json", citizensJSON + "[]", "trailing data"},
		{"CSV header missing a column", "c.csv", "personal_id\n000000000001\n", "missing: [family_name"},
		{"CSV header with an extra column", "c.csv", "personal_id,family_name,given_name,birthdate,gender,address,phone_number,salary\n", "header must be exactly"},
		{"empty", "c.csv", "", "empty CSV"},
		{"no rows", "c.json", "[]", "no citizens"},
		{"every bad row reported", "c.json", `[{"personal_id":"1"},{"personal_id":"000000000001","family_name":"A","given_name":"B","birthdate":"2999-01-01","gender":"male"}]`, "row 2: birthdate"},
		{"duplicate personal id", "c.json", `[` + strings.Repeat(`{"personal_id":"000000000001","family_name":"A","given_name":"B","birthdate":"1999-01-01","gender":"male"},`, 2) + `{"personal_id":"000000000002","family_name":"A","given_name":"B","birthdate":"1999-01-01","gender":"male"}]`, "row 2: personal_id repeats row 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCitizens(tt.file, []byte(tt.data))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

// FuzzParseCitizens: an accepted file holds only valid, distinct citizens,
// and accepted records survive a JSON round trip unchanged.
func FuzzParseCitizens(f *testing.F) {
	f.Add("c.json", []byte(citizensJSON))
	f.Add("c.csv", []byte("personal_id,family_name,given_name,birthdate,gender,address,phone_number\n000000000103,Bùi,Demo,1988-02-29,male,x,+84900000103\n"))
	f.Add("c.csv", []byte("personal_id\n1\n"))
	f.Add("c.json", []byte(`[{"personal_id":"000000000001","extra":1}]`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		cs, err := ParseCitizens(name, data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		recs := make([]CitizenRecord, 0, len(cs))
		for _, c := range cs {
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted invalid citizen %+v: %v", c, err)
			}
			if seen[c.PersonalID] {
				t.Fatalf("accepted duplicate %s", c.PersonalID)
			}
			seen[c.PersonalID] = true
			recs = append(recs, c.Record())
		}
		raw, _ := json.Marshal(recs)
		again, err := ParseCitizens("again.json", raw)
		if err != nil || len(again) != len(cs) {
			t.Fatalf("round trip failed: %v", err)
		}
		for i := range cs {
			if !reflect.DeepEqual(again[i], cs[i]) {
				t.Fatalf("round trip changed %+v into %+v", cs[i], again[i])
			}
		}
	})
}

// An unknown field in an import names the fields a record may have.
func TestParseCitizens_UnknownFieldListsTheExpectedOnes(t *testing.T) {
	_, err := ParseCitizens("c.json", []byte(`[{"personal_id":"000000000101","family_name":"Võ","given_name":"Demo","birthdate":"1990-01-01","gender":"male","address":"x","phone_number":"+84900000101","email":"a@b"}]`))
	if err == nil || !strings.Contains(err.Error(), `"email"`) || !strings.Contains(err.Error(), "personal_id, family_name, given_name, birthdate, gender, address, phone_number") {
		t.Fatalf("unknown JSON field: %v", err)
	}
	_, err = ParseCitizens("c.csv", []byte("personal_id,family_name,given_name,birthdate,gender,address,phone_number,email\n"))
	if err == nil || !strings.Contains(err.Error(), "unknown: [email]") {
		t.Fatalf("unknown CSV column: %v", err)
	}
}

func TestParseCitizens_Guardians(t *testing.T) {
	const head = "personal_id,family_name,given_name,birthdate,gender,address,phone_number"
	old := head + "\n000000000101,Võ,Demo,1990-01-01,male,x,\n"
	cs, err := ParseCitizens("old.csv", []byte(old))
	if err != nil || len(cs) != 1 || cs[0].Guardians != nil {
		t.Fatalf("the old exact header: %v %+v", err, cs)
	}
	rows := "guardians," + head + "\n" +
		"000000000102;000000000999 ; ,000000000201,Võ,Con,2015-01-01,female,x,\n" +
		",000000000102,Võ,Mẹ,1985-01-01,female,x,\n"
	cs, err = ParseCitizens("family.csv", []byte(rows))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cs[0].Guardians, []string{"000000000102", "000000000999"}) || cs[1].Guardians != nil {
		t.Errorf("guardians = %q, %q", cs[0].Guardians, cs[1].Guardians)
	}
	js := `[{"personal_id":"000000000201","family_name":"Võ","given_name":"Con","birthdate":"2015-01-01","gender":"female","address":"x","phone_number":"","guardians":["000000000102"]}]`
	cs, err = ParseCitizens("family.json", []byte(js))
	if err != nil || !reflect.DeepEqual(cs[0].Guardians, []string{"000000000102"}) {
		t.Fatalf("JSON guardians: %v %+v", err, cs)
	}
	// Every bad guardian is listed by row, and nothing comes back.
	bad := `[{"personal_id":"000000000201","family_name":"Võ","given_name":"Con","birthdate":"2015-01-01","gender":"female","address":"x","phone_number":"","guardians":["12","000000000201","000000000102","000000000102"]},
		{"personal_id":"000000000202","family_name":"Võ","given_name":"Em","birthdate":"2016-01-01","gender":"male","address":"x","phone_number":"","guardians":["1","2","3","4","5"]}]`
	cs, err = ParseCitizens("bad.json", []byte(bad))
	if !errors.Is(err, ErrInvalid) || cs != nil {
		t.Fatalf("bad guardians: %v", err)
	}
	for _, w := range []string{"row 1: guardians must be 12-digit personal ids (1 is not)", "row 1: a citizen cannot be their own guardian",
		"row 1: guardian 000000000102 is listed twice", "row 2: at most 4 guardians"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
	_, err = ParseCitizens("x.csv", []byte("guardians,guardians,"+head+"\n"))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "optionally with guardians") {
		t.Errorf("a repeated guardians column: %v", err)
	}

	// CheckGuardians: in the batch, registered, or neither.
	cs, _ = ParseCitizens("family.csv", []byte(rows))
	registered := func(pid string) (bool, error) { return pid == "000000000999", nil }
	if err := CheckGuardians(cs, registered); err != nil {
		t.Errorf("guardians in the file and registered: %v", err)
	}
	err = CheckGuardians(cs, func(string) (bool, error) { return false, nil })
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "row 1: guardian 000000000999 is neither in the file nor registered") {
		t.Errorf("an unknown guardian: %v", err)
	}
	down := errors.New("down")
	if err := CheckGuardians(cs, func(string) (bool, error) { return false, down }); !errors.Is(err, down) {
		t.Errorf("a failing registry: %v", err)
	}
}
