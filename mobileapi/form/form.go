// Package form compiles the application forms of public services and checks
// what citizens fill in. A service's form is a JSON Schema 2020-12 document
// of "type": "object" whose every property carries a Vietnamese title, an
// x-title {vi, en} and examples; a property with x-prefill
// "<register>.<field>" is pre-filled from the citizen registry when an
// application is created.
//
// Problems come back as a *ValidationError (wrapping idp.ErrInvalid) that
// lists every bad field by JSON Pointer, relative to the checked document:
// the HTTP layer prefixes "/form". Messages never repeat the value checked,
// which may be personal data.
//
// Validation uses github.com/santhosh-tekuri/jsonschema/v6 with format
// assertion on (a "date" must be a date) and no loader at all: a schema may
// only refer to itself, so compiling one never reads a file or the network.
package form

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Form is a compiled service form. It is safe for concurrent use.
type Form struct {
	full     *jsonschema.Schema
	partial  *jsonschema.Schema // required and dependentRequired dropped
	prefills []prefillSpec      // by pointer
}

type prefillSpec struct {
	pointer   string   // into the form
	path      []string // the same, unescaped
	schemaPtr string   // of the property, in the schema
	field     string   // registry field
	schema    *jsonschema.Schema
}

// formURL names the schema inside the compiler; nothing is ever loaded
// from it.
const formURL = "urn:onedoor:form"

// draft2020 is the only dialect accepted in $schema.
const draft2020 = "https://json-schema.org/draft/2020-12/schema"

// knownFormats are the formats the validator asserts. Another format would
// be ignored silently, so Compile refuses it instead.
var knownFormats = map[string]bool{
	"date": true, "time": true, "date-time": true, "duration": true,
	"email": true, "hostname": true, "ipv4": true, "ipv6": true,
	"uri": true, "uri-reference": true, "iri": true, "iri-reference": true,
	"uri-template": true, "uuid": true, "json-pointer": true,
	"relative-json-pointer": true, "regex": true,
}

// noLoader refuses every URL the compiler would fetch: a form may refer
// only within itself.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("%s: only references within the schema are allowed", u)
}

func newCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	return c
}

// Compile checks a service's form schema against JSON Schema 2020-12 and
// OneDoor's rules and compiles it:
//   - at most MaxSchemaBytes, nested at most MaxDepth deep, declaring at
//     most MaxProperties properties;
//   - the top level is "type": "object" with non-empty "properties";
//   - every property, at every level, is an object schema with a
//     non-empty "title", an "x-title" with non-empty "vi" and "en", and a
//     non-empty "examples" array whose every item validates against the
//     property;
//   - "x-prefill" names a registry field (PrefillFields), on a property
//     reached from the top through "properties" alone that accepts strings;
//   - "$ref" and "$dynamicRef" are local ("#..."), "$schema" is 2020-12,
//     "format" is one the validator asserts, regular expressions compile.
//
// A bad schema gives a *ValidationError listing every problem found, with
// pointers into the schema.
func Compile(schema json.RawMessage) (*Form, error) {
	var p problems
	if rule, en, vi := limitProblem(schema, MaxSchemaBytes); rule != "" {
		p.add("", rule, en, vi)
		return nil, p.err()
	}
	doc, err := decode(schema)
	if err != nil {
		p.add("", "json", "is not one JSON value (json)", "Không phải là một giá trị JSON hợp lệ.")
		return nil, p.err()
	}
	// Cost first: compiling validates the examples, which is where an
	// exponential schema would start to cost.
	if checkCost(doc, &p); len(p.list) > 0 {
		return nil, p.err()
	}
	ck := checker{p: &p}
	ck.root(doc)

	c := newCompiler()
	if err := c.AddResource(formURL, doc); err != nil {
		return nil, uncompilable(&p, "", err)
	}
	full, err := c.Compile(formURL)
	if err != nil {
		var sve *jsonschema.SchemaValidationError
		var verr *jsonschema.ValidationError
		switch {
		case errors.As(err, &sve) && errors.As(sve.Err, &verr):
			// What the rules above said of a member is said better than
			// the metaschema's words for the same member; and the library
			// misplaces propertyNames failures (only bad patternProperties
			// patterns, which the rules report).
			var q problems
			q.addValidation(verr, "")
			said := map[string]bool{}
			for _, fe := range p.list {
				said[fe.Pointer] = true
			}
			for _, fe := range q.list {
				if !said[fe.Pointer] && fe.Rule != "propertyNames" {
					p.add(fe.Pointer, fe.Rule, fe.Message, fe.MessageVI)
				}
			}
		case len(p.list) == 0:
			// The rules above catch most of what makes a schema
			// uncompilable (bad patterns, remote refs), and better.
			_ = uncompilable(&p, "", err)
		}
	}
	if full == nil {
		return nil, p.err()
	}
	// The examples document each property and must hold against it (checked
	// even when rules above failed, to list every problem at once).
	for _, ex := range ck.examples {
		sch, err := c.Compile(formURL + "#" + fragment(ex.pointer))
		if err != nil {
			_ = uncompilable(&p, ex.pointer, err)
			continue
		}
		for i, v := range ex.values {
			var verr *jsonschema.ValidationError
			if err := sch.Validate(v); errors.As(err, &verr) {
				var q problems
				q.addValidation(verr, "")
				for _, fe := range q.list {
					p.add(ex.pointer+"/examples/"+strconv.Itoa(i)+fe.Pointer, "examples",
						"example does not validate: "+fe.Message, "Ví dụ không hợp lệ: "+fe.MessageVI)
				}
			}
		}
	}
	if len(p.list) > 0 {
		return nil, p.err()
	}

	f := &Form{full: full}
	for _, pf := range ck.prefills {
		if pf.schema, err = c.Compile(formURL + "#" + fragment(pf.schemaPtr)); err != nil {
			return nil, uncompilable(&p, pf.schemaPtr, err)
		}
		f.prefills = append(f.prefills, pf)
	}
	sort.Slice(f.prefills, func(i, j int) bool { return f.prefills[i].pointer < f.prefills[j].pointer })

	pc := newCompiler()
	if err := pc.AddResource(formURL, withoutRequired(doc)); err != nil {
		return nil, uncompilable(&p, "", err)
	}
	if f.partial, err = pc.Compile(formURL); err != nil {
		return nil, uncompilable(&p, "", err)
	}
	return f, nil
}

// uncompilable records what the rules did not foresee, in the library's
// words (which may quote the schema, never a citizen's data).
func uncompilable(p *problems, ptr string, err error) error {
	p.add(ptr, "schema", "cannot be compiled: "+err.Error(), "Không biên dịch được lược đồ: "+err.Error())
	return p.err()
}

// fragment makes a JSON Pointer into a URL fragment.
func fragment(ptr string) string {
	toks := strings.Split(ptr, "/")
	for i, t := range toks {
		toks[i] = url.PathEscape(t)
	}
	return strings.Join(toks, "/")
}

// Validate checks a filled form for submission. Every problem is listed in
// a *ValidationError.
func (f *Form) Validate(doc json.RawMessage) error { return validate(f.full, doc) }

// ValidatePartial checks a draft: like Validate, but members may be
// missing (required and dependentRequired are not enforced) while those
// present must be right. Requirements inside if, not, anyOf, oneOf,
// contains and propertyNames are kept, since there they select rather
// than demand.
func (f *Form) ValidatePartial(doc json.RawMessage) error { return validate(f.partial, doc) }

func validate(sch *jsonschema.Schema, doc json.RawMessage) error {
	var p problems
	if rule, en, vi := limitProblem(doc, MaxDocumentBytes); rule != "" {
		p.add("", rule, en, vi)
		return p.err()
	}
	v, err := decode(doc)
	if err != nil {
		p.add("", "json", "is not one JSON value (json)", "Không phải là một giá trị JSON hợp lệ.")
		return p.err()
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("form: %w", err)
	}
	p.addValidation(verr, "")
	return p.err()
}

// Subschema keywords of JSON Schema 2020-12, by shape, and whether the
// properties beneath declare fields of the form (true) or only constrain
// fields declared elsewhere (false: the conditions and alternatives).
var (
	schemaKeywords = map[string]bool{"additionalProperties": true, "items": true, "unevaluatedItems": true,
		"unevaluatedProperties": true, "propertyNames": false, "contains": false, "if": false, "then": false,
		"else": false, "not": false, "contentSchema": false}
	schemaListKeywords = map[string]bool{"allOf": true, "prefixItems": true, "anyOf": false, "oneOf": false}
	schemaMapKeywords  = map[string]bool{"patternProperties": true, "$defs": true, "dependentSchemas": false}
)

// checker walks a schema for OneDoor's rules. It tolerates any shape: the
// metaschema reports what is not a schema.
type checker struct {
	p        *problems
	props    int
	examples []examplesSpec
	prefills []prefillSpec
}

type examplesSpec struct {
	pointer string // of the property, in the schema
	values  []any
}

func (ck *checker) root(doc any) {
	m, ok := doc.(map[string]any)
	if !ok {
		ck.p.add("", "type", `must be a JSON Schema object of "type": "object" (type)`,
			`Lược đồ phải là đối tượng JSON có "type": "object".`)
		return
	}
	if t, _ := m["type"].(string); t != "object" {
		ck.p.add("/type", "type", `must be "object": a form is an object (type)`, `Phải là "object": biểu mẫu là một đối tượng.`)
	}
	if props, _ := m["properties"].(map[string]any); len(props) == 0 {
		ck.p.add("/properties", "properties", "must declare the form's fields (properties)", "Phải khai báo các trường của biểu mẫu.")
	}
	ck.schema(m, "", []string{}, true)
	if ck.props > MaxProperties {
		ck.p.add("", "maxProperties", fmt.Sprintf("declares more than %d properties (maxProperties)", MaxProperties),
			fmt.Sprintf("Khai báo quá %d trường.", MaxProperties))
	}
}

// schema checks one schema at ptr. formPath is where its instance sits in
// the form when it is reached from the top through properties alone, nil
// otherwise (x-prefill needs a place to put the value). declares is false
// beneath conditions and alternatives, whose properties need no titles:
// they constrain fields the form declares elsewhere.
func (ck *checker) schema(v any, ptr string, formPath []string, declares bool) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	for _, kw := range []string{"$ref", "$dynamicRef"} {
		if ref, ok := m[kw].(string); ok && !strings.HasPrefix(ref, "#") {
			ck.p.add(ptr+pointer(kw), kw, "must refer within the schema (starting with #); nothing is fetched ("+kw+")",
				"Chỉ được tham chiếu trong chính lược đồ (bắt đầu bằng #).")
		}
	}
	if s, ok := m["$schema"].(string); ok && strings.TrimSuffix(s, "#") != draft2020 {
		ck.p.add(ptr+"/$schema", "$schema", "must be "+draft2020+" ($schema)", "Phải là "+draft2020+".")
	}
	if f, ok := m["format"].(string); ok && !knownFormats[f] {
		ck.p.add(ptr+"/format", "format", "is not a format the validator checks (format)", "Định dạng này không được hỗ trợ.")
	}
	if pat, ok := m["pattern"].(string); ok {
		if _, err := regexp.Compile(pat); err != nil {
			ck.p.add(ptr+"/pattern", "pattern", "is not a valid regular expression (pattern)", "Biểu thức chính quy không hợp lệ.")
		}
	}
	if pp, ok := m["patternProperties"].(map[string]any); ok {
		for pat := range pp {
			if _, err := regexp.Compile(pat); err != nil {
				ck.p.add(ptr+pointer("patternProperties", pat), "patternProperties",
					"is not a valid regular expression (patternProperties)", "Biểu thức chính quy không hợp lệ.")
			}
		}
	}

	for kw, decl := range schemaKeywords {
		if sub, ok := m[kw]; ok {
			ck.schema(sub, ptr+pointer(kw), nil, declares && decl)
		}
	}
	for kw, decl := range schemaListKeywords {
		if list, ok := m[kw].([]any); ok {
			for i, sub := range list {
				ck.schema(sub, ptr+pointer(kw, strconv.Itoa(i)), nil, declares && decl)
			}
		}
	}
	for kw, decl := range schemaMapKeywords {
		if subs, ok := m[kw].(map[string]any); ok {
			for name, sub := range subs {
				ck.schema(sub, ptr+pointer(kw, name), nil, declares && decl)
			}
		}
	}
	props, ok := m["properties"].(map[string]any)
	if !ok {
		return
	}
	if !allowsType(m, "object") {
		formPath = nil
	}
	for name, sub := range props {
		ck.props++
		pptr := ptr + pointer("properties", name)
		var path []string
		if formPath != nil {
			path = append(append([]string{}, formPath...), name)
		}
		ck.property(sub, pptr, path, declares)
		ck.schema(sub, pptr, path, declares)
	}
}

// property checks what OneDoor asks of every property the form declares;
// of one that only constrains, that it does not ask to be pre-filled.
func (ck *checker) property(v any, ptr string, formPath []string, declared bool) {
	m, ok := v.(map[string]any)
	if !declared {
		if _, has := m["x-prefill"]; has {
			ck.p.add(ptr+"/x-prefill", "x-prefill", "is allowed only on a field reached from the top through properties alone (x-prefill)",
				"Chỉ dùng cho trường nằm trực tiếp trong cây properties của biểu mẫu.")
		}
		return
	}
	if !ok {
		ck.p.add(ptr, "title", "must be an object schema with title, x-title and examples (title)",
			"Mỗi trường phải là một lược đồ đối tượng có title, x-title và examples.")
		return
	}
	if t, _ := m["title"].(string); strings.TrimSpace(t) == "" {
		ck.p.add(ptr+"/title", "title", "must be the field's name in Vietnamese (title)", "Phải có tên trường bằng tiếng Việt.")
	}
	xt, _ := m["x-title"].(map[string]any)
	for _, lang := range []string{"vi", "en"} {
		if s, _ := xt[lang].(string); strings.TrimSpace(s) == "" {
			ck.p.add(ptr+"/x-title/"+lang, "x-title", "must be the field's name in "+map[string]string{"vi": "Vietnamese", "en": "English"}[lang]+" (x-title)",
				"Phải có tên trường bằng "+map[string]string{"vi": "tiếng Việt", "en": "tiếng Anh"}[lang]+".")
		}
	}
	if ex, _ := m["examples"].([]any); len(ex) == 0 {
		ck.p.add(ptr+"/examples", "examples", "must be a non-empty array of example values (examples)",
			"Phải có ít nhất một giá trị ví dụ.")
	} else {
		ck.examples = append(ck.examples, examplesSpec{pointer: ptr, values: ex})
	}
	ref, has := m["x-prefill"]
	if !has {
		return
	}
	s, _ := ref.(string)
	field, known := registryField(s)
	switch {
	case !known:
		ck.p.add(ptr+"/x-prefill", "x-prefill", "must name a registry field such as citizen.full_name (x-prefill)",
			"Phải là một trường của cơ sở dữ liệu công dân, ví dụ citizen.full_name.")
	case formPath == nil:
		ck.p.add(ptr+"/x-prefill", "x-prefill", "is allowed only on a field reached from the top through properties alone (x-prefill)",
			"Chỉ dùng cho trường nằm trực tiếp trong cây properties của biểu mẫu.")
	case !allowsType(m, "string"):
		ck.p.add(ptr+"/x-prefill", "x-prefill", "needs a field that accepts text (x-prefill)", "Trường được điền sẵn phải nhận chuỗi ký tự.")
	default:
		ck.prefills = append(ck.prefills, prefillSpec{pointer: pointer(formPath...), path: formPath, schemaPtr: ptr, field: field})
	}
}

// allowsType reports whether the schema's own "type" admits t.
func allowsType(m map[string]any, t string) bool {
	switch typ := m["type"].(type) {
	case nil:
		return true
	case string:
		return typ == t
	case []any:
		for _, x := range typ {
			if x == t {
				return true
			}
		}
	}
	return false
}

// Positions where a subschema demands (its required may go for drafts) and
// where it only selects (its required must stay).
var (
	demandKeywords     = []string{"additionalProperties", "items", "then", "else", "unevaluatedItems", "unevaluatedProperties"}
	demandListKeywords = []string{"allOf", "prefixItems"}
	demandMapKeywords  = []string{"properties", "patternProperties", "$defs", "dependentSchemas"}
)

// withoutRequired returns a copy of a schema without required and
// dependentRequired wherever they demand rather than select.
func withoutRequired(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := make(map[string]any, len(m))
	for k, x := range m {
		if k != "required" && k != "dependentRequired" {
			out[k] = x
		}
	}
	for _, kw := range demandKeywords {
		if sub, ok := m[kw]; ok {
			out[kw] = withoutRequired(sub)
		}
	}
	for _, kw := range demandListKeywords {
		if list, ok := m[kw].([]any); ok {
			cp := make([]any, len(list))
			for i, sub := range list {
				cp[i] = withoutRequired(sub)
			}
			out[kw] = cp
		}
	}
	for _, kw := range demandMapKeywords {
		if subs, ok := m[kw].(map[string]any); ok {
			cp := make(map[string]any, len(subs))
			for name, sub := range subs {
				cp[name] = withoutRequired(sub)
			}
			out[kw] = cp
		}
	}
	return out
}
