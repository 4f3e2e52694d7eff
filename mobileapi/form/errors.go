package form

import (
	"fmt"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/onedoor/onedoor/idp"
)

// MaxErrors bounds the problems one ValidationError lists: a huge document
// of unknown members must not make a huge response. When more were found,
// the last entry (rule "maxErrors") says so.
const MaxErrors = 100

// FieldError is one problem with a form (or, from Compile, with a schema).
// Messages name the rule that failed and never repeat the value, which may
// be personal data. It is not a wire type: the HTTP layer writes a
// ProblemError {pointer: "/form" + Pointer, message: In(lang)}.
type FieldError struct {
	// Pointer is the RFC 6901 JSON Pointer of the bad member, relative to
	// the validated document ("" is the document itself). A missing
	// required member is pointed at where it should be.
	Pointer string
	// Rule is the JSON Schema keyword (required, type, maxLength, format,
	// ...) or OneDoor rule (title, x-title, examples, x-prefill, $ref,
	// maxSize, maxDepth, json, ...) that failed.
	Rule string
	// Message is a short English explanation.
	Message string
	// MessageVI is the same in Vietnamese.
	MessageVI string
}

// In returns the message in lang: "en" for English, else Vietnamese.
func (e FieldError) In(lang string) string {
	if lang == "en" || e.MessageVI == "" {
		return e.Message
	}
	return e.MessageVI
}

// ValidationError lists every problem found. It wraps idp.ErrInvalid.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid field", len(e.Errors))
	if len(e.Errors) != 1 {
		b.WriteByte('s')
	}
	for i, fe := range e.Errors {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		ptr := fe.Pointer
		if ptr == "" {
			ptr = "(document)"
		}
		b.WriteString(ptr + ": " + fe.Message)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, idp.ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return idp.ErrInvalid }

// problems collects field errors, deduplicated, in a stable order.
type problems struct {
	list []FieldError
	seen map[[2]string]bool
}

func (p *problems) add(ptr, rule, en, vi string) {
	if p.seen == nil {
		p.seen = map[[2]string]bool{}
	}
	k := [2]string{ptr, rule}
	if p.seen[k] {
		return
	}
	p.seen[k] = true
	p.list = append(p.list, FieldError{Pointer: ptr, Rule: rule, Message: en, MessageVI: vi})
}

// err returns nil or the sorted, bounded *ValidationError.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sort.SliceStable(p.list, func(i, j int) bool {
		if p.list[i].Pointer != p.list[j].Pointer {
			return p.list[i].Pointer < p.list[j].Pointer
		}
		return p.list[i].Rule < p.list[j].Rule
	})
	list := p.list
	if len(list) > MaxErrors {
		list = append(list[:MaxErrors-1:MaxErrors-1], FieldError{Rule: "maxErrors",
			Message:   fmt.Sprintf("more than %d problems; only the first are listed", MaxErrors-1),
			MessageVI: fmt.Sprintf("Có hơn %d lỗi; chỉ liệt kê các lỗi đầu tiên.", MaxErrors-1)})
	}
	return &ValidationError{Errors: list}
}

// escapeToken escapes one RFC 6901 reference token.
func escapeToken(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

// pointer joins reference tokens into a JSON Pointer.
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapeToken(t))
	}
	return b.String()
}

// addValidation walks the library's error tree into p, every leaf under
// prefix. anyOf, oneOf and not are reported once where they failed: the
// reasons each alternative failed would only confuse a citizen.
func (p *problems) addValidation(e *jsonschema.ValidationError, prefix string) {
	at := prefix + pointer(e.InstanceLocation...)
	switch k := e.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		if len(e.Causes) == 0 {
			p.add(at, "schema", "is not valid", "Giá trị không hợp lệ.")
		}
		for _, c := range e.Causes {
			p.addValidation(c, prefix)
		}
	case *kind.Required:
		for _, m := range k.Missing {
			p.add(at+pointer(m), "required", "is required (required)", "Trường này là bắt buộc.")
		}
	case *kind.DependentRequired:
		for _, m := range k.Missing {
			p.add(at+pointer(m), "dependentRequired", "is required when "+k.Prop+" is present (dependentRequired)",
				"Trường này là bắt buộc khi đã khai "+k.Prop+".")
		}
	case *kind.Dependency:
		for _, m := range k.Missing {
			p.add(at+pointer(m), "dependencies", "is required when "+k.Prop+" is present (dependencies)",
				"Trường này là bắt buộc khi đã khai "+k.Prop+".")
		}
	case *kind.AdditionalProperties:
		for _, name := range k.Properties {
			p.add(at+pointer(name), "additionalProperties", "is not a field of this form (additionalProperties)",
				"Trường này không có trong biểu mẫu.")
		}
	case *kind.PropertyNames:
		// jsonschema v6.0.3 stores the validator's location slice itself
		// here, which later validation overwrites: take the object's place
		// from the schema location where it is a plain chain of properties,
		// else name the property at the form's root.
		at = prefix + propertyNamesAt(e.SchemaURL)
		p.add(at+pointer(k.Property), "propertyNames", "has a name that is not allowed (propertyNames)",
			"Tên trường không được phép.")
	default:
		rule, en, vi := describe(e.ErrorKind)
		p.add(at, rule, en, vi)
	}
}

// describe words one failed keyword without the value that failed it.
func describe(k jsonschema.ErrorKind) (rule, en, vi string) {
	switch k := k.(type) {
	case *kind.Type:
		en, vi := typeNames(k.Want)
		return "type", "must be " + en + " (type)", "Phải là " + vi + "."
	case *kind.Enum:
		return "enum", "must be one of the allowed values (enum)", "Giá trị không nằm trong danh sách cho phép."
	case *kind.Const:
		return "const", "must be the fixed value (const)", "Giá trị không đúng với giá trị quy định."
	case *kind.Format:
		return "format", formatEN(k.Want) + " (format " + k.Want + ")", formatVI(k.Want)
	case *kind.MinLength:
		return "minLength", fmt.Sprintf("must be at least %d characters long (minLength)", k.Want),
			fmt.Sprintf("Phải có ít nhất %d ký tự.", k.Want)
	case *kind.MaxLength:
		return "maxLength", fmt.Sprintf("must be at most %d characters long (maxLength)", k.Want),
			fmt.Sprintf("Không được dài quá %d ký tự.", k.Want)
	case *kind.Pattern:
		return "pattern", "does not have the required form (pattern)", "Không đúng định dạng yêu cầu."
	case *kind.Minimum:
		return "minimum", "must be at least " + rat(k.Want) + " (minimum)", "Phải lớn hơn hoặc bằng " + rat(k.Want) + "."
	case *kind.Maximum:
		return "maximum", "must be at most " + rat(k.Want) + " (maximum)", "Phải nhỏ hơn hoặc bằng " + rat(k.Want) + "."
	case *kind.ExclusiveMinimum:
		return "exclusiveMinimum", "must be greater than " + rat(k.Want) + " (exclusiveMinimum)", "Phải lớn hơn " + rat(k.Want) + "."
	case *kind.ExclusiveMaximum:
		return "exclusiveMaximum", "must be less than " + rat(k.Want) + " (exclusiveMaximum)", "Phải nhỏ hơn " + rat(k.Want) + "."
	case *kind.MultipleOf:
		return "multipleOf", "must be a multiple of " + rat(k.Want) + " (multipleOf)", "Phải là bội số của " + rat(k.Want) + "."
	case *kind.MinItems:
		return "minItems", fmt.Sprintf("must have at least %d items (minItems)", k.Want), fmt.Sprintf("Phải có ít nhất %d mục.", k.Want)
	case *kind.MaxItems:
		return "maxItems", fmt.Sprintf("must have at most %d items (maxItems)", k.Want), fmt.Sprintf("Không được quá %d mục.", k.Want)
	case *kind.UniqueItems:
		return "uniqueItems", fmt.Sprintf("items %d and %d are the same (uniqueItems)", k.Duplicates[0], k.Duplicates[1]),
			fmt.Sprintf("Mục %d và mục %d trùng nhau.", k.Duplicates[0], k.Duplicates[1])
	case *kind.Contains:
		return "contains", "must contain an item of the required kind (contains)", "Phải có ít nhất một mục đúng yêu cầu."
	case *kind.MinContains:
		return "minContains", fmt.Sprintf("must contain at least %d items of the required kind (minContains)", k.Want),
			fmt.Sprintf("Phải có ít nhất %d mục đúng yêu cầu.", k.Want)
	case *kind.MaxContains:
		return "maxContains", fmt.Sprintf("must contain at most %d items of the required kind (maxContains)", k.Want),
			fmt.Sprintf("Không được quá %d mục thuộc loại này.", k.Want)
	case *kind.AdditionalItems:
		return "additionalItems", "has too many items (additionalItems)", "Có quá nhiều mục."
	case *kind.MinProperties:
		return "minProperties", fmt.Sprintf("must have at least %d fields (minProperties)", k.Want), fmt.Sprintf("Phải có ít nhất %d trường.", k.Want)
	case *kind.MaxProperties:
		return "maxProperties", fmt.Sprintf("must have at most %d fields (maxProperties)", k.Want), fmt.Sprintf("Không được quá %d trường.", k.Want)
	case *kind.FalseSchema:
		return "false", "is not allowed here (false schema)", "Trường này không được phép."
	case *kind.AnyOf:
		return "anyOf", "matches none of the allowed alternatives (anyOf)", "Không khớp với phương án nào được phép."
	case *kind.OneOf:
		if len(k.Subschemas) == 0 {
			return "oneOf", "matches none of the allowed alternatives (oneOf)", "Không khớp với phương án nào được phép."
		}
		return "oneOf", "matches more than one alternative (oneOf)", "Khớp với nhiều hơn một phương án."
	case *kind.Not:
		return "not", "has a value that is not allowed (not)", "Giá trị này không được phép."
	case *kind.ContentEncoding:
		return "contentEncoding", "is not encoded as " + k.Want + " (contentEncoding)", "Sai cách mã hóa."
	case *kind.ContentMediaType:
		return "contentMediaType", "is not " + k.Want + " content (contentMediaType)", "Sai loại nội dung."
	case *kind.ContentSchema:
		return "contentSchema", "has content of the wrong form (contentSchema)", "Nội dung không hợp lệ."
	case *kind.RefCycle:
		return "$ref", "cannot be checked: the schema's references form a cycle ($ref)", "Lược đồ có tham chiếu vòng."
	}
	// Unknown kinds (a newer library, custom vocabularies): the keyword
	// path names the rule; the library's text could quote the value.
	rule = "schema"
	if kp := k.KeywordPath(); len(kp) > 0 {
		rule = kp[len(kp)-1]
	}
	return rule, "is not valid (" + rule + ")", "Giá trị không hợp lệ."
}

// rat prints a schema's bound as a plain decimal.
func rat(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

var typeWords = map[string][2]string{
	"string":  {"a string", "chuỗi ký tự"},
	"integer": {"an integer", "số nguyên"},
	"number":  {"a number", "số"},
	"object":  {"an object", "đối tượng"},
	"array":   {"an array", "danh sách"},
	"boolean": {"true or false", "giá trị đúng/sai"},
	"null":    {"null", "rỗng (null)"},
}

func typeNames(want []string) (en, vi string) {
	var ens, vis []string
	for _, t := range want {
		w, ok := typeWords[t]
		if !ok {
			w = [2]string{t, t}
		}
		ens = append(ens, w[0])
		vis = append(vis, w[1])
	}
	return strings.Join(ens, " or "), strings.Join(vis, " hoặc ")
}

func formatEN(f string) string {
	switch f {
	case "date":
		return "must be a date written YYYY-MM-DD"
	case "date-time":
		return "must be a date and time written as in RFC 3339"
	case "time":
		return "must be a time written hh:mm:ss with a time zone"
	case "email":
		return "must be an email address"
	}
	return "must be a valid " + f
}

func formatVI(f string) string {
	switch f {
	case "date":
		return "Ngày phải có dạng YYYY-MM-DD."
	case "date-time":
		return "Thời điểm phải có dạng RFC 3339 (YYYY-MM-DDThh:mm:ssZ)."
	case "time":
		return "Giờ phải có dạng hh:mm:ss kèm múi giờ."
	case "email":
		return "Phải là địa chỉ email."
	}
	return "Không đúng định dạng " + f + "."
}

// propertyNamesAt is the instance pointer of the object a propertyNames
// keyword at schemaURL applies to, when the schema path is properties
// only ("#/properties/a/properties/b/propertyNames" is /a/b); "" otherwise.
func propertyNamesAt(schemaURL string) string {
	_, frag, ok := strings.Cut(schemaURL, "#")
	if !ok {
		return ""
	}
	if u, err := url.PathUnescape(frag); err == nil {
		frag = u
	}
	segs := strings.Split(strings.TrimPrefix(frag, "/"), "/")
	if len(segs) == 0 || segs[len(segs)-1] != "propertyNames" || len(segs)%2 != 1 {
		return ""
	}
	var b strings.Builder
	for i := 0; i+1 < len(segs); i += 2 {
		if segs[i] != "properties" {
			return ""
		}
		b.WriteString("/" + segs[i+1]) // already escaped as a JSON Pointer token
	}
	return b.String()
}
