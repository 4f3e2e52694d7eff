package democatalog

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/onedoor/onedoor/mobileapi"
)

var (
	codeRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`) // the contract's code pattern
	categoryRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	categories = []string{"civil_status", "residence", "justice", "transport", "identity", "business", "social_insurance", "construction", "land"}
	provinces  = []string{"HN", "HCM", "DN", "HP", "CT", "HUE"}
	prefills   = []string{"personal_id", "full_name", "family_name", "given_name", "birthdate", "gender", "address", "phone_number"}
)

func load(t *testing.T) ([]*mobileapi.Agency, []*mobileapi.Service) {
	t.Helper()
	agencies, services, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(agencies) < 20 || len(services) < 25 {
		t.Fatalf("%d agencies, %d services", len(agencies), len(services))
	}
	return agencies, services
}

func bothLanguages(t *testing.T, what string, x mobileapi.Text) {
	t.Helper()
	if strings.TrimSpace(x.VI) == "" || strings.TrimSpace(x.EN) == "" {
		t.Errorf("%s: %+v lacks a language", what, x)
	}
}

func TestAgencies(t *testing.T) {
	agencies, _ := load(t)
	byCode := map[string]*mobileapi.Agency{}
	for _, a := range agencies {
		if !codeRE.MatchString(a.Code) || byCode[a.Code] != nil {
			t.Errorf("agency code %q malformed or repeated", a.Code)
		}
		bothLanguages(t, a.Code, a.Name)
		if a.ParentCode != "" {
			// Parents come first, so the agencies can be created in order.
			parent := byCode[a.ParentCode]
			if parent == nil {
				t.Errorf("%s: parent %s unknown or later", a.Code, a.ParentCode)
			} else if parent.ProvinceCode != "" && parent.ProvinceCode != a.ProvinceCode {
				t.Errorf("%s: province %q under %s of %q", a.Code, a.ProvinceCode, parent.Code, parent.ProvinceCode)
			}
		}
		if a.ProvinceCode != "" && !slices.Contains(provinces, a.ProvinceCode) {
			t.Errorf("%s: unknown province %q", a.Code, a.ProvinceCode)
		}
		if a.ProvinceCode != "" && !strings.HasPrefix(a.Code, a.ProvinceCode+"-") && a.Code != "UBND-"+a.ProvinceCode {
			t.Errorf("%s: code does not follow the scheme for province %s", a.Code, a.ProvinceCode)
		}
		byCode[a.Code] = a
	}
	for _, p := range provinces {
		if a := byCode["UBND-"+p]; a == nil || a.ParentCode != "" || a.ProvinceCode != p {
			t.Errorf("province %s: people's committee %+v", p, a)
		}
	}
	for _, c := range []string{"BTP", "BCA", "BXD", "BTC", "BHXH", "BNNMT", "BNV"} {
		if a := byCode[c]; a == nil || a.ProvinceCode != "" {
			t.Errorf("national body %s: %+v", c, a)
		}
	}
	// Load returns new values every time.
	again, _, _ := Load()
	again[0].Code = "X"
	if agencies[0].Code == "X" {
		t.Error("Load shares its values")
	}
}

func TestServices(t *testing.T) {
	agencies, services := load(t)
	province := map[string]string{}
	for _, a := range agencies {
		province[a.Code] = a.ProvinceCode
	}
	seen := map[string]bool{}
	used := map[string]bool{}
	for _, s := range services {
		if !codeRE.MatchString(s.Code) || seen[s.Code] {
			t.Errorf("service code %q malformed or repeated", s.Code)
		}
		seen[s.Code] = true
		bothLanguages(t, s.Code+" name", s.Name)
		bothLanguages(t, s.Code+" description", s.Description)
		if !categoryRE.MatchString(s.Category) || !slices.Contains(categories, s.Category) {
			t.Errorf("%s: category %q", s.Code, s.Category)
		}
		used[s.Category] = true
		if s.Fee.Currency != "VND" || s.Fee.Amount < 0 || s.ProcessingDays < 1 {
			t.Errorf("%s: fee %+v, %d days", s.Code, s.Fee, s.ProcessingDays)
		}
		if _, ok := province[s.AgencyCode]; !ok || province[s.AgencyCode] != "" {
			t.Errorf("%s: owner %q is not a national body", s.Code, s.AgencyCode)
		}
		// Handled in every province, by agencies that exist.
		covered := map[string]bool{}
		for _, h := range s.HandlingAgencies {
			p, ok := province[h]
			if !ok {
				t.Errorf("%s: unknown handling agency %q", s.Code, h)
			}
			covered[p] = true
		}
		for _, p := range provinces {
			if !covered[p] {
				t.Errorf("%s: no handling agency in %s", s.Code, p)
			}
		}
		docs := map[string]bool{}
		for _, d := range s.RequiredDocuments {
			if !codeRE.MatchString(d.Code) || docs[d.Code] {
				t.Errorf("%s: document code %q malformed or repeated", s.Code, d.Code)
			}
			docs[d.Code] = true
			bothLanguages(t, s.Code+" document "+d.Code, d.Name)
		}
		if s.ID != "" || s.Version != 0 || !json.Valid(s.Schema) {
			t.Errorf("%s: ID %q, version %d, schema valid %v", s.Code, s.ID, s.Version, json.Valid(s.Schema))
		}
	}
	for _, c := range categories {
		if !used[c] {
			t.Errorf("no service in category %s", c)
		}
	}
	if !seen["1.001193"] {
		t.Error("the birth registration of the contract's examples is missing")
	}
}

// formSchema is the part of a form schema checked beyond the metaschema.
type formSchema struct {
	Schema               string                     `json:"$schema"`
	Type                 string                     `json:"type"`
	Required             []string                   `json:"required"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
	Properties           map[string]json.RawMessage `json:"properties"`
}

type formProperty struct {
	Type     string          `json:"type"`
	Title    string          `json:"title"`
	XTitle   *mobileapi.Text `json:"x-title"`
	XPrefill *string         `json:"x-prefill"`
	Examples []any           `json:"examples"`
}

func TestSchemas(t *testing.T) {
	_, services := load(t)
	for _, s := range services {
		t.Run(s.Code, func(t *testing.T) {
			var form formSchema
			if err := json.Unmarshal(s.Schema, &form); err != nil {
				t.Fatal(err)
			}
			if form.Schema != "https://json-schema.org/draft/2020-12/schema" || form.Type != "object" ||
				form.AdditionalProperties == nil || *form.AdditionalProperties || len(form.Properties) == 0 {
				t.Errorf("$schema %q, type %q, additionalProperties %v, %d properties",
					form.Schema, form.Type, form.AdditionalProperties, len(form.Properties))
			}

			c := jsonschema.NewCompiler()
			c.DefaultDraft(jsonschema.Draft2020)
			c.AssertFormat()
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(s.Schema))
			if err != nil {
				t.Fatal(err)
			}
			url := "https://demo.onedoor.invalid/services/" + s.Code + ".json"
			if err := c.AddResource(url, doc); err != nil {
				t.Fatal(err)
			}
			whole, err := c.Compile(url)
			if err != nil {
				t.Fatalf("schema does not compile as JSON Schema 2020-12: %v", err)
			}

			for _, r := range form.Required {
				if form.Properties[r] == nil {
					t.Errorf("required %q is no property", r)
				}
			}
			example := map[string]any{}
			for name, raw := range form.Properties {
				var p formProperty
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatal(err)
				}
				if p.Title == "" || p.XTitle == nil || p.XTitle.VI == "" || p.XTitle.EN == "" || p.Title != p.XTitle.VI {
					t.Errorf("%s: title %q, x-title %+v", name, p.Title, p.XTitle)
				}
				if p.XPrefill != nil {
					field, ok := strings.CutPrefix(*p.XPrefill, "citizen.")
					if !ok || !slices.Contains(prefills, field) || p.Type != "string" {
						t.Errorf("%s: x-prefill %q on a %s", name, *p.XPrefill, p.Type)
					}
				}
				if len(p.Examples) == 0 {
					t.Errorf("%s: no examples", name)
					continue
				}
				sub, err := c.Compile(url + "#/properties/" + name)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for _, ex := range examples(t, raw) {
					if err := sub.Validate(ex); err != nil {
						t.Errorf("%s: example %v is invalid: %v", name, ex, err)
					}
				}
				example[name] = examples(t, raw)[0]
			}
			// The first examples together make a valid form.
			if err := whole.Validate(example); err != nil {
				t.Errorf("the examples do not make a valid form: %v", err)
			}
			// And a form missing a required field is not.
			if len(form.Required) > 0 {
				delete(example, form.Required[0])
				if whole.Validate(example) == nil {
					t.Errorf("a form without %s validates", form.Required[0])
				}
			}
		})
	}
}

// examples returns a property's examples decoded the way the validator
// expects (numbers as json.Number).
func examples(t *testing.T, raw json.RawMessage) []any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := v.(map[string]any)["examples"].([]any)
	return ex
}
