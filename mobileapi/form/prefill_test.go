package form

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// demoCitizen is clearly fake (personal ID 000..., "Demo" names).
func demoCitizen() *idp.Citizen {
	return &idp.Citizen{ID: "sub-demo", PersonalID: "000000000001", FamilyName: "Nguyễn", GivenName: "Văn Demo",
		Birthdate: "1990-01-15", Gender: "male", Address: "1 Phố Mẫu, Hà Nội (địa chỉ giả)", PhoneNumber: "+84900000001"}
}

func TestPrefill(t *testing.T) {
	asOf := time.Date(2026, 10, 1, 9, 0, 0, 0, time.FixedZone("ICT", 7*3600))
	prov := func(field string) mobileapi.Provenance {
		return mobileapi.Provenance{Source: "citizen_registry", Field: field, AsOf: asOf.UTC()}
	}
	every := schemaStr(t, func(_, props map[string]any) {
		for _, f := range []string{"personal_id", "full_name", "family_name", "given_name", "birthdate", "gender", "address", "phone_number"} {
			props["r_"+f] = prop(`{"x-prefill": "citizen.` + f + `"}`)
		}
		props["a/b"] = prop(`{"x-prefill": "population.name"}`)
		props["applicant"] = prop(`{"type": "object", "examples": [{}]}`)
		props["applicant"].(map[string]any)["properties"] = map[string]any{
			"home": prop(`{"x-prefill": "citizen.address"}`),
			"id":   prop(`{"x-prefill": "citizen.personal_id"}`),
		}
	})
	for _, tt := range []struct {
		name     string
		schema   string
		citizen  *idp.Citizen
		wantForm string
		wantProv map[string]mobileapi.Provenance
	}{
		{"contract example", string(contractExampleSchema(t)), demoCitizen(),
			`{"applicant_address": "1 Phố Mẫu, Hà Nội (địa chỉ giả)", "applicant_full_name": "Nguyễn Văn Demo",
			  "applicant_personal_id": "000000000001"}`,
			map[string]mobileapi.Provenance{"/applicant_address": prov("address"), "/applicant_full_name": prov("full_name"),
				"/applicant_personal_id": prov("personal_id")}},
		{"every field, nested, escaped", every, demoCitizen(),
			`{"r_personal_id": "000000000001", "r_full_name": "Nguyễn Văn Demo", "r_family_name": "Nguyễn",
			  "r_given_name": "Văn Demo", "r_birthdate": "1990-01-15", "r_gender": "male",
			  "r_address": "1 Phố Mẫu, Hà Nội (địa chỉ giả)", "r_phone_number": "+84900000001",
			  "a/b": "Nguyễn Văn Demo", "applicant": {"home": "1 Phố Mẫu, Hà Nội (địa chỉ giả)", "id": "000000000001"}}`,
			map[string]mobileapi.Provenance{"/r_personal_id": prov("personal_id"), "/r_full_name": prov("full_name"),
				"/r_family_name": prov("family_name"), "/r_given_name": prov("given_name"), "/r_birthdate": prov("birthdate"),
				"/r_gender": prov("gender"), "/r_address": prov("address"), "/r_phone_number": prov("phone_number"),
				"/a~1b": prov("full_name"), "/applicant/home": prov("address"), "/applicant/id": prov("personal_id")}},
		{"empty registry values are left out", every,
			&idp.Citizen{PersonalID: "000000000002", GivenName: "Demo", Gender: "female"},
			`{"r_personal_id": "000000000002", "r_full_name": "Demo", "r_given_name": "Demo", "r_gender": "female",
			  "a/b": "Demo", "applicant": {"id": "000000000002"}}`,
			map[string]mobileapi.Provenance{"/r_personal_id": prov("personal_id"), "/r_full_name": prov("full_name"),
				"/r_given_name": prov("given_name"), "/r_gender": prov("gender"), "/a~1b": prov("full_name"),
				"/applicant/id": prov("personal_id")}},
		{"values the field rejects are left out", applicationSchema,
			&idp.Citizen{PersonalID: "000000000004", FamilyName: "Phạm", GivenName: "Minh Demo", Birthdate: "1978-03-21",
				Gender: "other", Address: "4 Phố Mẫu, Phường Giả Lập, Cần Thơ (địa chỉ giả)", PhoneNumber: "0900000004"},
			`{"full_name": "Phạm Minh Demo", "personal_id": "000000000004", "birthdate": "1978-03-21"}`,
			map[string]mobileapi.Provenance{"/full_name": prov("full_name"), "/personal_id": prov("personal_id"),
				"/birthdate": prov("birthdate")}},
		{"no citizen", every, nil, `{}`, map[string]mobileapi.Provenance{}},
		{"no x-prefill", baseSchema, demoCitizen(), `{}`, map[string]mobileapi.Provenance{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := compileT(t, tt.schema)
			form, got := f.Prefill(tt.citizen, asOf)
			var gotForm, wantForm any
			if err := json.Unmarshal(form, &gotForm); err != nil {
				t.Fatalf("form %s: %v", form, err)
			}
			if err := json.Unmarshal([]byte(tt.wantForm), &wantForm); err != nil {
				t.Fatal(err)
			}
			if g, w := mustJSON(t, gotForm), mustJSON(t, wantForm); g != w {
				t.Errorf("form\n got %s\nwant %s", g, w)
			}
			if !maps.Equal(got, tt.wantProv) {
				t.Errorf("provenance\n got %v\nwant %v", got, tt.wantProv)
			}
			// A pre-filled form is a valid draft, and every provenance
			// key points at a value in it.
			if err := f.ValidatePartial(form); err != nil {
				t.Errorf("pre-filled form is not a valid draft: %v", err)
			}
			for ptr := range got {
				if !resolves(gotForm, ptr) {
					t.Errorf("provenance key %s points at nothing", ptr)
				}
			}
		})
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// resolves reports whether the JSON Pointer ptr names a string in doc.
func resolves(doc any, ptr string) bool {
	toks := splitPointer(ptr)
	for _, tok := range toks {
		m, ok := doc.(map[string]any)
		if !ok {
			return false
		}
		if doc, ok = m[tok]; !ok {
			return false
		}
	}
	_, ok := doc.(string)
	return ok
}

func splitPointer(ptr string) []string {
	toks := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	for i, t := range toks {
		toks[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(t)
	}
	return toks
}

func TestChangedPrefilled(t *testing.T) {
	prov := map[string]mobileapi.Provenance{"/name": {}, "/addr/city": {}, "/gone": {}}
	before := json.RawMessage(`{"name":"A","addr":{"city":"HN","street":"1"},"gone":"x","free":1}`)
	for after, want := range map[string]string{
		`{"name":"A","addr":{"city":"HN","street":"2"},"gone":"x","free":2}`: "[]",
		`{"name":"B","addr":{"city":"HN"},"gone":"x"}`:                       "[/name]",
		`{"name":"A","addr":{"city":"HCM"}}`:                                 "[/addr/city /gone]",
	} {
		if got := fmt.Sprint(ChangedPrefilled(before, json.RawMessage(after), prov)); got != want && !(want == "[]" && got == "[]") {
			t.Errorf("ChangedPrefilled(%s) = %s, want %s", after, got, want)
		}
	}
}
