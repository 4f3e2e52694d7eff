package form

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// applicationSchema exercises the keywords forms use: nested objects,
// arrays, formats, patterns, enums and a conditional requirement.
const applicationSchema = `{
 "$schema": "https://json-schema.org/draft/2020-12/schema",
 "type": "object",
 "required": ["full_name", "personal_id", "birthdate", "gender", "home"],
 "additionalProperties": false,
 "properties": {
  "full_name": {"type": "string", "minLength": 2, "maxLength": 20, "title": "Họ và tên",
   "x-title": {"vi": "Họ và tên", "en": "Full name"}, "examples": ["Nguyễn Văn Demo"], "x-prefill": "citizen.full_name"},
  "personal_id": {"type": "string", "pattern": "^[0-9]{12}$", "title": "Số định danh cá nhân",
   "x-title": {"vi": "Số định danh cá nhân", "en": "Personal identification number"}, "examples": ["000000000001"],
   "x-prefill": "citizen.personal_id"},
  "birthdate": {"type": "string", "format": "date", "title": "Ngày sinh",
   "x-title": {"vi": "Ngày sinh", "en": "Date of birth"}, "examples": ["1990-01-15"], "x-prefill": "citizen.birthdate"},
  "gender": {"type": "string", "enum": ["female", "male"], "title": "Giới tính",
   "x-title": {"vi": "Giới tính", "en": "Sex"}, "examples": ["female"], "x-prefill": "citizen.gender"},
  "phone": {"type": "string", "pattern": "^\\+84[0-9]{9}$", "title": "Số điện thoại",
   "x-title": {"vi": "Số điện thoại", "en": "Phone number"}, "examples": ["+84900000001"], "x-prefill": "citizen.phone_number"},
  "email": {"type": "string", "format": "email", "title": "Thư điện tử",
   "x-title": {"vi": "Thư điện tử", "en": "Email"}, "examples": ["demo@example.org"]},
  "children": {"type": "integer", "minimum": 0, "maximum": 20, "title": "Số con",
   "x-title": {"vi": "Số con", "en": "Number of children"}, "examples": [2]},
  "married": {"type": "boolean", "title": "Đã kết hôn",
   "x-title": {"vi": "Đã kết hôn", "en": "Married"}, "examples": [true]},
  "spouse_name": {"type": "string", "maxLength": 50, "title": "Họ tên vợ/chồng",
   "x-title": {"vi": "Họ tên vợ/chồng", "en": "Spouse's name"}, "examples": ["Trần Thị Demo"]},
  "home": {"type": "object", "title": "Nơi cư trú", "x-title": {"vi": "Nơi cư trú", "en": "Residence"},
   "required": ["address", "province"], "additionalProperties": false,
   "examples": [{"address": "1 Phố Mẫu, Hà Nội", "province": "HN"}],
   "properties": {
    "address": {"type": "string", "maxLength": 40, "title": "Địa chỉ", "x-title": {"vi": "Địa chỉ", "en": "Address"},
     "examples": ["1 Phố Mẫu, Hà Nội"], "x-prefill": "citizen.address"},
    "province": {"type": "string", "pattern": "^[A-Z]{2,3}$", "title": "Tỉnh", "x-title": {"vi": "Tỉnh", "en": "Province"},
     "examples": ["HN"]}
   }},
  "documents": {"type": "array", "maxItems": 3, "uniqueItems": true, "title": "Giấy tờ",
   "x-title": {"vi": "Giấy tờ", "en": "Documents"}, "examples": [["cccd"]],
   "items": {"type": "string", "enum": ["cccd", "passport", "birth_certificate"]}}
 },
 "if": {"properties": {"married": {"const": true}}, "required": ["married"]},
 "then": {"required": ["spouse_name"]}
}`

const validApplication = `{"full_name": "Nguyễn Văn Demo", "personal_id": "000000000001", "birthdate": "1990-01-15",
 "gender": "male", "phone": "+84900000001", "email": "demo@example.org", "children": 2, "married": false,
 "home": {"address": "1 Phố Mẫu, Hà Nội", "province": "HN"}, "documents": ["cccd", "passport"]}`

func compileT(t testing.TB, schema string) *Form {
	t.Helper()
	f, err := Compile(json.RawMessage(schema))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return f
}

func TestValidate(t *testing.T) {
	f := compileT(t, applicationSchema)
	// secret is a value that no message may repeat.
	const secret = "Bí Mật Riêng Tư"
	for _, tt := range []struct {
		name          string
		doc           string
		want, partial []string // "pointer rule"; nil means valid
	}{
		{"valid", validApplication, nil, nil},
		{"empty form", `{}`, []string{"/birthdate required", "/full_name required", "/gender required", "/home required",
			"/personal_id required"}, nil},
		{"wrong types everywhere", `{"full_name": 1, "personal_id": null, "birthdate": true, "gender": [], "home": "x",
			"children": 1.5, "married": "yes", "documents": {}}`,
			[]string{"/birthdate type", "/children type", "/documents type", "/full_name type", "/gender type", "/home type",
				"/married type", "/personal_id type"},
			[]string{"/birthdate type", "/children type", "/documents type", "/full_name type", "/gender type", "/home type",
				"/married type", "/personal_id type"}},
		{"every kind of bad value", `{"full_name": "` + secret + strings.Repeat("x", 20) + `", "personal_id": "12345",
			"birthdate": "15/01/1990", "gender": "` + secret + `", "phone": "0900000001", "email": "` + secret + `",
			"children": 21, "married": true, "home": {"address": "` + secret + `", "province": "hn", "floor": 3},
			"documents": ["cccd", "cccd", "` + secret + `", "passport"], "nickname": "` + secret + `"}`,
			[]string{"/birthdate format", "/children maximum", "/documents maxItems", "/documents uniqueItems",
				"/documents/2 enum", "/email format", "/full_name maxLength", "/gender enum", "/home/floor additionalProperties",
				"/home/province pattern", "/nickname additionalProperties", "/personal_id pattern", "/phone pattern", "/spouse_name required"},
			[]string{"/birthdate format", "/children maximum", "/documents maxItems", "/documents uniqueItems",
				"/documents/2 enum", "/email format", "/full_name maxLength", "/gender enum", "/home/floor additionalProperties",
				"/home/province pattern", "/nickname additionalProperties", "/personal_id pattern", "/phone pattern"}},
		{"nested required", `{"full_name": "Nguyễn Văn Demo", "personal_id": "000000000001", "birthdate": "1990-01-15",
			"gender": "male", "home": {}}`, []string{"/home/address required", "/home/province required"}, nil},
		{"short string", `{"full_name": "A"}`, []string{"/birthdate required", "/full_name minLength", "/gender required",
			"/home required", "/personal_id required"}, []string{"/full_name minLength"}},
		{"impossible date", `{"birthdate": "1990-02-30"}`, []string{"/birthdate format", "/full_name required",
			"/gender required", "/home required", "/personal_id required"}, []string{"/birthdate format"}},
		{"not an object", `["` + secret + `"]`, []string{" type"}, []string{" type"}},
		{"not JSON", `{"full_name": "` + secret, []string{" json"}, []string{" json"}},
		{"two values", `{} {}`, []string{" json"}, []string{" json"}},
		{"empty", ``, []string{" json"}, []string{" json"}},
		{"too large", `{"x":"` + strings.Repeat("a", MaxDocumentBytes) + `"}`, []string{" maxSize"}, []string{" maxSize"}},
		{"too deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), []string{" maxDepth"}, []string{" maxDepth"}},
		{"brackets inside strings do not count", `{"full_name": "` + strings.Repeat("[{", 40) + `"}`,
			[]string{"/birthdate required", "/full_name maxLength", "/gender required", "/home required", "/personal_id required"},
			[]string{"/full_name maxLength"}},
		{"key needing escape", `{"a/b~c": 1}`, []string{"/a~1b~0c additionalProperties", "/birthdate required", "/full_name required",
			"/gender required", "/home required", "/personal_id required"}, []string{"/a~1b~0c additionalProperties"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []struct {
				name string
				fn   func(json.RawMessage) error
				want []string
			}{{"Validate", f.Validate, tt.want}, {"ValidatePartial", f.ValidatePartial, tt.partial}} {
				err := mode.fn(json.RawMessage(tt.doc))
				if mode.want == nil {
					if err != nil {
						t.Errorf("%s: %v", mode.name, err)
					}
					continue
				}
				fes := problemsOf(t, err)
				if got := pairs(fes); !slices.Equal(got, mode.want) {
					t.Errorf("%s problems\n got %q\nwant %q", mode.name, got, mode.want)
				}
				if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "12345") {
					t.Errorf("%s: error repeats a value: %v", mode.name, err)
				}
				for _, fe := range fes {
					if strings.Contains(fe.MessageVI, secret) {
						t.Errorf("%s: Vietnamese message repeats a value: %q", mode.name, fe.MessageVI)
					}
				}
			}
		})
	}
}

// The messages say which rule failed in words a client can show.
func TestValidateMessages(t *testing.T) {
	f := compileT(t, applicationSchema)
	err := f.Validate(json.RawMessage(`{"full_name": "` + strings.Repeat("x", 21) + `", "birthdate": "x"}`))
	byPtr := map[string]FieldError{}
	for _, fe := range problemsOf(t, err) {
		byPtr[fe.Pointer] = fe
	}
	for ptr, want := range map[string][2]string{
		"/full_name":   {"must be at most 20 characters long (maxLength)", "Không được dài quá 20 ký tự."},
		"/birthdate":   {"must be a date written YYYY-MM-DD (format date)", "Ngày phải có dạng YYYY-MM-DD."},
		"/personal_id": {"is required (required)", "Trường này là bắt buộc."},
	} {
		fe := byPtr[ptr]
		if fe.In("en") != want[0] || fe.In("vi") != want[1] {
			t.Errorf("%s: got %q / %q, want %q / %q", ptr, fe.In("en"), fe.In("vi"), want[0], want[1])
		}
	}
}

// Drafts may leave out what is required at any level and under then/else,
// but requirements that select (if, anyOf, oneOf, not) keep their meaning.
func TestValidatePartialKeepsSelectingRequirements(t *testing.T) {
	f := compileT(t, schemaStr(t, func(root, props map[string]any) {
		props["kind"] = prop(`{"enum": ["a", "b"], "examples": ["a"]}`)
		props["a_only"] = prop(`{"examples": ["x"]}`)
		props["b_only"] = prop(`{"examples": ["x"]}`)
		props["extra"] = prop(`{"type": "object", "examples": [{"inner": "x"}], "required": ["inner"]}`)
		props["extra"].(map[string]any)["properties"] = map[string]any{"inner": prop(`{"examples": ["x"]}`)}
		// With kind "a", b_only must be absent: "not": {"required": ...}
		// selects, so it keeps working in drafts.
		root["if"] = map[string]any{"properties": map[string]any{"kind": map[string]any{"const": "a"}}, "required": []any{"kind"}}
		root["then"] = map[string]any{"required": []any{"a_only"}, "not": map[string]any{"required": []any{"b_only"}}}
		root["anyOf"] = []any{map[string]any{"required": []any{"name"}}, map[string]any{"required": []any{"kind"}}}
	}))
	for _, tt := range []struct {
		doc           string
		full, partial []string
	}{
		{`{"name": "Demo"}`, nil, nil},
		{`{"kind": "a"}`, []string{"/a_only required", "/name required"}, nil},
		{`{"kind": "a", "b_only": "x", "a_only": "x", "name": "Demo"}`, []string{" not"}, []string{" not"}},
		{`{"extra": {}}`, []string{" anyOf", "/extra/inner required", "/name required"}, []string{" anyOf"}},
		{`{"kind": "c"}`, []string{"/kind enum", "/name required"}, []string{"/kind enum"}},
	} {
		for _, mode := range []struct {
			name string
			fn   func(json.RawMessage) error
			want []string
		}{{"Validate", f.Validate, tt.full}, {"ValidatePartial", f.ValidatePartial, tt.partial}} {
			err := mode.fn(json.RawMessage(tt.doc))
			var got []string
			if err != nil {
				got = pairs(problemsOf(t, err))
			}
			if !slices.Equal(got, mode.want) {
				t.Errorf("%s(%s)\n got %q\nwant %q", mode.name, tt.doc, got, mode.want)
			}
		}
	}
}

func schemaStr(t testing.TB, mut func(root, props map[string]any)) string {
	return string(schemaWith(t, mut))
}

// More problems than MaxErrors: the list is cut and says so.
func TestValidateBoundsTheList(t *testing.T) {
	f := compileT(t, baseSchema)
	var b strings.Builder
	b.WriteString(`{"name": "Demo"`)
	for i := range 2 * MaxErrors {
		fmt.Fprintf(&b, `, "x%03d": 1`, i)
	}
	b.WriteString("}")
	fes := problemsOf(t, f.Validate(json.RawMessage(b.String())))
	if len(fes) != MaxErrors || fes[MaxErrors-1].Rule != "maxErrors" || fes[0].Pointer != "/x000" {
		t.Errorf("got %d problems, last %+v", len(fes), fes[len(fes)-1])
	}
}

// The library reports propertyNames failures at a misplaced location in
// some cases; check where form validation puts them.
func TestValidatePropertyNames(t *testing.T) {
	f := compileT(t, schemaStr(t, func(root, props map[string]any) {
		delete(root, "additionalProperties")
		props["tags"] = prop(`{"type": "object", "examples": [{"a": 1}], "propertyNames": {"pattern": "^[a-z]+$"}}`)
	}))
	got := pairs(problemsOf(t, f.Validate(json.RawMessage(`{"name": "Demo", "tags": {"a": 1, "B1": 2}}`))))
	if want := []string{"/tags/B1 propertyNames"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A Form is shared by every request; run with -race.
func TestValidateConcurrently(t *testing.T) {
	f := compileT(t, applicationSchema)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				if i%2 == 0 {
					if err := f.Validate(json.RawMessage(validApplication)); err != nil {
						t.Error(err)
						return
					}
				} else if err := f.ValidatePartial(json.RawMessage(`{"birthdate": "x"}`)); err == nil {
					t.Error("bad draft accepted")
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkValidate(b *testing.B) {
	f := compileT(b, applicationSchema)
	doc := json.RawMessage(validApplication)
	bad := json.RawMessage(`{"full_name": 1, "birthdate": "x", "home": {"floor": 1}, "extra": true}`)
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := f.Validate(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("invalid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := f.Validate(bad); err == nil {
				b.Fatal("accepted")
			}
		}
	})
}

func TestPropertyNamesAt(t *testing.T) {
	for in, want := range map[string]string{
		"urn:form#/properties/tags/propertyNames":              "/tags",
		"urn:form#/properties/a/properties/b~1c/propertyNames": "/a/b~1c",
		"urn:form#/propertyNames":                              "",
		"urn:form#/$defs/x/propertyNames":                      "",
		"urn:form#/properties/a/items/propertyNames":           "",
		"urn:form": "",
		"urn:form#/properties/caf%C3%A9/propertyNames": "/café",
	} {
		if got := propertyNamesAt(in); got != want {
			t.Errorf("propertyNamesAt(%q) = %q, want %q", in, got, want)
		}
	}
}
