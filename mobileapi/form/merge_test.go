package form

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

// rfc7396AppendixA are the examples of RFC 7396 Appendix A.
var rfc7396AppendixA = [][3]string{
	{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
	{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
	{`{"a":"b"}`, `{"a":null}`, `{}`},
	{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
	{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
	{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
	{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
	{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
	{`["a","b"]`, `["c","d"]`, `["c","d"]`},
	{`{"a":"b"}`, `["c"]`, `["c"]`},
	{`{"a":"foo"}`, `null`, `null`},
	{`{"a":"foo"}`, `"bar"`, `"bar"`},
	{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
	{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
	{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
}

func TestMergePatch(t *testing.T) {
	cases := append([][3]string{}, rfc7396AppendixA...)
	cases = append(cases, [][3]string{
		// Arrays the patch sets are taken as sent, nulls and all.
		{`{}`, `{"a":[{"b":null},null]}`, `{"a":[{"b":null},null]}`},
		// A null or absent target is nothing to merge into.
		{`null`, `{"a":1,"b":null}`, `{"a":1}`},
		{``, `{"a":{"b":null,"c":2}}`, `{"a":{"c":2}}`},
		// Numbers keep their text, however long.
		{`{"n":12345678901234567890123}`, `{"m":1.10}`, `{"m":1.10,"n":12345678901234567890123}`},
		// Text is not HTML-escaped.
		{`{"a":"<b>&"}`, `{"c":"Hà Nội"}`, `{"a":"<b>&","c":"Hà Nội"}`},
		// A form draft, field by field.
		{`{"full_name":"Nguyễn Văn Demo","home":{"address":"1 Phố Mẫu","province":"HN"}}`,
			`{"full_name":null,"home":{"province":"HCM"},"birthdate":"1990-01-15"}`,
			`{"birthdate":"1990-01-15","home":{"address":"1 Phố Mẫu","province":"HCM"}}`},
	}...)
	for _, c := range cases {
		got, err := MergePatch(json.RawMessage(c[0]), json.RawMessage(c[1]))
		if err != nil {
			t.Errorf("MergePatch(%s, %s): %v", c[0], c[1], err)
			continue
		}
		if !sameJSON(t, got, []byte(c[2])) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", c[0], c[1], got, c[2])
		}
	}
	// Exact text where it matters (numbers, escaping).
	if got, _ := MergePatch(json.RawMessage(`{"n":12345678901234567890123}`), json.RawMessage(`{"m":1.10,"s":"<&>"}`)); string(got) != `{"m":1.10,"n":12345678901234567890123,"s":"<&>"}` {
		t.Errorf("exact text: %s", got)
	}
}

func TestMergePatchRefuses(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	big := `{"a":"` + strings.Repeat("x", MaxDocumentBytes) + `"}`
	half := `{"b":"` + strings.Repeat("x", MaxDocumentBytes/2+10) + `"}`
	for _, c := range []struct{ name, target, patch, want string }{
		{"patch not JSON", `{}`, `{"a":`, "patch is not one JSON value"},
		{"target not JSON", `{"a"`, `{}`, "target is not one JSON value"},
		{"patch of two values", `{}`, `{} {}`, "patch is not one JSON value"},
		{"empty patch", `{}`, ``, "patch is not one JSON value"},
		{"patch too deep", `{}`, deep, "deeper than"},
		{"target too deep", deep, `{}`, "deeper than"},
		{"patch too large", `{}`, big, "larger than"},
		{"target too large", big, `{}`, "larger than"},
		{"result too large", half, strings.Replace(half, `"b"`, `"c"`, 1), "result is larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := MergePatch(json.RawMessage(c.target), json.RawMessage(c.patch))
			if got != nil || !errors.Is(err, idp.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %.40s, %v; want ErrInvalid mentioning %q", got, err, c.want)
			}
		})
	}
}

func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}
