package form

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// baseSchema is a small valid form that test cases break one way at a time.
const baseSchema = `{
 "$schema": "https://json-schema.org/draft/2020-12/schema",
 "type": "object",
 "required": ["name"],
 "additionalProperties": false,
 "properties": {
  "name": {"type": "string", "maxLength": 50, "title": "Họ và tên",
   "x-title": {"vi": "Họ và tên", "en": "Full name"}, "examples": ["Nguyễn Văn Demo"]}
 }
}`

// prop is a valid property schema with extra members merged in.
func prop(extra string) map[string]any {
	m := map[string]any{"type": "string", "title": "Trường", "x-title": map[string]any{"vi": "Trường", "en": "Field"},
		"examples": []any{"ví dụ"}}
	if extra != "" {
		if err := json.Unmarshal([]byte(extra), &m); err != nil {
			panic(err)
		}
	}
	return m
}

// schemaWith returns baseSchema after mut.
func schemaWith(t testing.TB, mut func(root, props map[string]any)) json.RawMessage {
	t.Helper()
	var root map[string]any
	if err := json.Unmarshal([]byte(baseSchema), &root); err != nil {
		t.Fatal(err)
	}
	mut(root, root["properties"].(map[string]any))
	b, err := json.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// problemsOf returns the field errors of err, failing unless err is a
// *ValidationError wrapping idp.ErrInvalid.
func problemsOf(t testing.TB, err error) []FieldError {
	t.Helper()
	var verr *ValidationError
	if !errors.As(err, &verr) || !errors.Is(err, idp.ErrInvalid) {
		t.Fatalf("err = %v (%T), want a *ValidationError wrapping idp.ErrInvalid", err, err)
	}
	for _, fe := range verr.Errors {
		if fe.Message == "" || fe.MessageVI == "" || fe.Rule == "" {
			t.Errorf("incomplete field error %+v", fe)
		}
	}
	return verr.Errors
}

// pairs renders field errors as "pointer rule" for comparison.
func pairs(fes []FieldError) []string {
	var out []string
	for _, fe := range fes {
		out = append(out, fe.Pointer+" "+fe.Rule)
	}
	return out
}

// contractExampleSchema is the form schema of the OpenAPI document's
// Service example: the contract's own example must compile.
func contractExampleSchema(t testing.TB) json.RawMessage {
	t.Helper()
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Examples []struct {
					Schema json.RawMessage `json:"schema"`
				} `json:"examples"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(mobileapi.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	ex := doc.Components.Schemas["Service"].Examples
	if len(ex) == 0 || len(ex[0].Schema) == 0 {
		t.Fatal("no Service example with a schema in openapi.json")
	}
	return ex[0].Schema
}

func TestCompileValid(t *testing.T) {
	for name, schema := range map[string]json.RawMessage{
		"base":             json.RawMessage(baseSchema),
		"contract example": contractExampleSchema(t),
		"local refs, nested objects, arrays, conditionals": schemaWith(t, func(root, props map[string]any) {
			root["$defs"] = map[string]any{"phone": map[string]any{"type": "string", "pattern": `^\+?[0-9]{9,15}$`}}
			props["phone"] = prop(`{"$ref": "#/$defs/phone", "examples": ["+84900000001"], "x-prefill": "citizen.phone_number"}`)
			props["home"] = prop(`{"type": "object", "examples": [{"city": "Hà Nội"}], "required": ["city"]}`)
			props["home"].(map[string]any)["properties"] = map[string]any{
				"city": prop(`{"examples": ["Hà Nội"], "x-prefill": "citizen.address"}`)}
			props["children"] = prop(`{"type": "array", "examples": [[{"name": "Bé Demo"}]]}`)
			props["children"].(map[string]any)["items"] = map[string]any{"type": "object",
				"properties": map[string]any{"name": prop(`{"examples": ["Bé Demo"]}`)}}
			props["married"] = prop(`{"type": "boolean", "examples": [true]}`)
			root["if"] = map[string]any{"properties": map[string]any{"married": map[string]any{"const": true}}, "required": []any{"married"}}
			root["then"] = map[string]any{"required": []any{"home"}}
		}),
		"no $schema, alias register": schemaWith(t, func(root, props map[string]any) {
			delete(root, "$schema")
			props["name"].(map[string]any)["x-prefill"] = "population.name"
		}),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Compile(schema); err != nil {
				t.Fatalf("Compile: %v", err)
			}
		})
	}
}

func TestCompileRules(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	for _, tt := range []struct {
		name   string
		schema json.RawMessage
		want   []string // "pointer rule", all of them
	}{
		{"too large", json.RawMessage(`{"type":"object","description":"` + strings.Repeat("x", MaxSchemaBytes) + `"}`), []string{" maxSize"}},
		{"too deep", json.RawMessage(deep), []string{" maxDepth"}},
		{"not JSON", json.RawMessage(`{"type":`), []string{" json"}},
		{"trailing data", json.RawMessage(baseSchema + `{}`), []string{" json"}},
		{"not an object", json.RawMessage(`["object"]`), []string{" type"}},
		{"top level not type object", schemaWith(t, func(root, _ map[string]any) { root["type"] = "array" }), []string{"/type type"}},
		{"top level without type", schemaWith(t, func(root, _ map[string]any) { delete(root, "type") }), []string{"/type type"}},
		{"no properties", json.RawMessage(`{"type":"object"}`), []string{"/properties properties"}},
		{"empty properties", json.RawMessage(`{"type":"object","properties":{}}`), []string{"/properties properties"}},
		{"missing title", schemaWith(t, func(_, props map[string]any) { delete(props["name"].(map[string]any), "title") }),
			[]string{"/properties/name/title title"}},
		{"blank title", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["title"] = "  " }),
			[]string{"/properties/name/title title"}},
		{"missing x-title", schemaWith(t, func(_, props map[string]any) { delete(props["name"].(map[string]any), "x-title") }),
			[]string{"/properties/name/x-title/en x-title", "/properties/name/x-title/vi x-title"}},
		{"x-title without en", schemaWith(t, func(_, props map[string]any) {
			props["name"].(map[string]any)["x-title"] = map[string]any{"vi": "Tên", "en": ""}
		}), []string{"/properties/name/x-title/en x-title"}},
		{"x-title not an object", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["x-title"] = "Tên" }),
			[]string{"/properties/name/x-title/en x-title", "/properties/name/x-title/vi x-title"}},
		{"missing examples", schemaWith(t, func(_, props map[string]any) { delete(props["name"].(map[string]any), "examples") }),
			[]string{"/properties/name/examples examples"}},
		{"empty examples", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["examples"] = []any{} }),
			[]string{"/properties/name/examples examples"}},
		{"example that does not validate", schemaWith(t, func(_, props map[string]any) {
			props["name"].(map[string]any)["examples"] = []any{"ok", strings.Repeat("x", 51), 7}
		}), []string{"/properties/name/examples/1 examples", "/properties/name/examples/2 examples"}},
		{"nested example that does not validate", schemaWith(t, func(_, props map[string]any) {
			props["home"] = prop(`{"type":"object","examples":[{"city":1}]}`)
			props["home"].(map[string]any)["properties"] = map[string]any{"city": prop("")}
		}), []string{"/properties/home/examples/0/city examples"}},
		{"property is a boolean schema", schemaWith(t, func(_, props map[string]any) { props["any"] = true }),
			[]string{"/properties/any title"}},
		{"nested property without titles", schemaWith(t, func(_, props map[string]any) {
			props["home"] = prop(`{"type":"object","examples":[{}]}`)
			props["home"].(map[string]any)["properties"] = map[string]any{"city": map[string]any{"type": "string", "examples": []any{"x"}}}
		}), []string{"/properties/home/properties/city/title title", "/properties/home/properties/city/x-title/en x-title",
			"/properties/home/properties/city/x-title/vi x-title"}},
		{"property of array items without examples", schemaWith(t, func(_, props map[string]any) {
			props["kids"] = prop(`{"type":"array","examples":[[]]}`)
			props["kids"].(map[string]any)["items"] = map[string]any{"type": "object",
				"properties": map[string]any{"name": prop(`{"examples": null}`)}}
		}), []string{"/properties/kids/items/properties/name/examples examples"}},
		{"property in $defs without title", schemaWith(t, func(root, _ map[string]any) {
			root["$defs"] = map[string]any{"addr": map[string]any{"properties": map[string]any{"city": prop(`{"title": ""}`)}}}
		}), []string{"/$defs/addr/properties/city/title title"}},
		{"x-prefill of an unknown register", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["x-prefill"] = "tax.full_name" }),
			[]string{"/properties/name/x-prefill x-prefill"}},
		{"x-prefill of an unknown field", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["x-prefill"] = "citizen.shoe_size" }),
			[]string{"/properties/name/x-prefill x-prefill"}},
		{"x-prefill not a string", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["x-prefill"] = true }),
			[]string{"/properties/name/x-prefill x-prefill"}},
		{"x-prefill on a number", schemaWith(t, func(_, props map[string]any) {
			props["age"] = prop(`{"type":"integer","examples":[30],"x-prefill":"citizen.birthdate"}`)
		}), []string{"/properties/age/x-prefill x-prefill"}},
		{"x-prefill in array items", schemaWith(t, func(_, props map[string]any) {
			props["kids"] = prop(`{"type":"array","examples":[[]]}`)
			props["kids"].(map[string]any)["items"] = map[string]any{"type": "object",
				"properties": map[string]any{"name": prop(`{"x-prefill":"citizen.full_name"}`)}}
		}), []string{"/properties/kids/items/properties/name/x-prefill x-prefill"}},
		{"x-prefill in a condition", schemaWith(t, func(root, _ map[string]any) {
			root["if"] = map[string]any{"properties": map[string]any{"name": map[string]any{"x-prefill": "citizen.full_name"}}}
		}), []string{"/if/properties/name/x-prefill x-prefill"}},
		{"x-prefill under a property that is not an object", schemaWith(t, func(_, props map[string]any) {
			props["n"] = prop(`{"type":"string","examples":["x"]}`)
			props["n"].(map[string]any)["properties"] = map[string]any{"a": prop(`{"x-prefill":"citizen.address"}`)}
		}), []string{"/properties/n/properties/a/x-prefill x-prefill"}},
		{"remote $ref", schemaWith(t, func(_, props map[string]any) {
			props["name"].(map[string]any)["$ref"] = "https://schemas.example/name.json"
		}),
			[]string{"/properties/name/$ref $ref"}},
		{"relative $ref", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["$ref"] = "name.json#/x" }),
			[]string{"/properties/name/$ref $ref"}},
		{"file $ref", schemaWith(t, func(root, _ map[string]any) { root["allOf"] = []any{map[string]any{"$ref": "file:///etc/hostname"}} }),
			[]string{"/allOf/0/$ref $ref"}},
		{"remote $dynamicRef", schemaWith(t, func(_, props map[string]any) {
			props["name"].(map[string]any)["$dynamicRef"] = "https://x.example/s#meta"
		}),
			[]string{"/properties/name/$dynamicRef $dynamicRef"}},
		{"local $ref to nothing", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["$ref"] = "#/$defs/none" }),
			[]string{" schema"}},
		{"older draft", schemaWith(t, func(root, _ map[string]any) { root["$schema"] = "http://json-schema.org/draft-07/schema#" }),
			[]string{"/$schema $schema"}},
		{"unknown format", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["format"] = "phone" }),
			[]string{"/properties/name/format format"}},
		{"bad pattern", schemaWith(t, func(_, props map[string]any) { props["name"].(map[string]any)["pattern"] = "(" }),
			[]string{"/properties/name/pattern pattern"}},
		{"bad patternProperties", schemaWith(t, func(root, _ map[string]any) { root["patternProperties"] = map[string]any{"[": true} }),
			[]string{"/patternProperties/[ patternProperties"}},
		{"not a valid schema (metaschema)", schemaWith(t, func(_, props map[string]any) {
			props["name"].(map[string]any)["maxLength"] = "fifty"
			props["name"].(map[string]any)["type"] = "text"
		}), []string{"/properties/name/maxLength type", "/properties/name/type anyOf"}},
		{"too many properties", schemaWith(t, func(_, props map[string]any) {
			for i := range MaxProperties {
				props[fmt.Sprint("f", i)] = prop("")
			}
		}), []string{" maxProperties"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Compile(tt.schema)
			if f != nil {
				t.Error("a form came back with the error")
			}
			got := pairs(problemsOf(t, err))
			if !slices.Equal(got, tt.want) {
				t.Errorf("problems\n got %q\nwant %q\n(%v)", got, tt.want, err)
			}
		})
	}
}

// One schema with many faults: all are listed, each at its pointer, sorted.
func TestCompileListsEveryProblem(t *testing.T) {
	schema := schemaWith(t, func(root, props map[string]any) {
		root["$schema"] = "https://json-schema.org/draft/2019-09/schema"
		n := props["name"].(map[string]any)
		delete(n, "title")
		n["x-prefill"] = "citizen.nickname"
		n["format"] = "vn-phone"
		props["a/b"] = prop(`{"examples": [], "x-title": {"vi": "Tên"}}`)
		props["age"] = prop(`{"type": "integer", "examples": ["thirty"]}`)
	})
	got := pairs(problemsOf(t, mustFail(Compile(schema))))
	want := []string{
		"/$schema $schema",
		"/properties/age/examples/0 examples",
		"/properties/a~1b/examples examples",
		"/properties/a~1b/x-title/en x-title",
		"/properties/name/format format",
		"/properties/name/title title",
		"/properties/name/x-prefill x-prefill",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems\n got %q\nwant %q", got, want)
	}
}

func mustFail(_ *Form, err error) error { return err }

func TestPrefillFields(t *testing.T) {
	got := PrefillFields()
	for _, want := range []string{"citizen.personal_id", "citizen.full_name", "citizen.family_name", "citizen.given_name",
		"citizen.birthdate", "citizen.gender", "citizen.address", "citizen.phone_number", "population.name"} {
		if !slices.Contains(got, want) {
			t.Errorf("PrefillFields() lacks %s", want)
		}
	}
}
