package main

import (
	"encoding/json"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

// FuzzParseCitizens: an accepted file holds only valid, distinct citizens,
// and accepted records survive a JSON round trip unchanged.
func FuzzParseCitizens(f *testing.F) {
	f.Add("c.json", []byte(citizensJSON))
	f.Add("c.csv", []byte("personal_id,family_name,given_name,birthdate,gender,address,phone_number\n000000000103,Bùi,Demo,1988-02-29,male,x,+84900000103\n"))
	f.Add("c.csv", []byte("personal_id\n1\n"))
	f.Add("c.json", []byte(`[{"personal_id":"000000000001","extra":1}]`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		recs, err := ParseCitizens(name, data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, r := range recs {
			c := idp.Citizen{PersonalID: r.PersonalID, FamilyName: r.FamilyName, GivenName: r.GivenName, Birthdate: r.Birthdate, Gender: r.Gender, PhoneNumber: r.PhoneNumber}
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted invalid record %+v: %v", r, err)
			}
			if seen[r.PersonalID] {
				t.Fatalf("accepted duplicate %s", r.PersonalID)
			}
			seen[r.PersonalID] = true
		}
		raw, _ := json.Marshal(recs)
		again, err := ParseCitizens("again.json", raw)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("round trip failed: %v", err)
		}
		for i := range recs {
			if again[i] != recs[i] {
				t.Fatalf("round trip changed %+v into %+v", recs[i], again[i])
			}
		}
	})
}
