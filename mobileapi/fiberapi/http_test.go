package fiberapi

import (
	"strings"
	"testing"
)

func TestCheckJSON(t *testing.T) {
	for body, ok := range map[string]bool{
		`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`: true,
		`{"a":1,"a":2}`:                                   false,
		`{"a":{"x":1,"x":2}}`:                             false,
		`[{"a":1,"b":2,"a":3}]`:                           false,
		`{"a":"x\u0000y"}`:                                false,
		`{"a\u0000":1}`:                                   false,
		`{"a":"caf\u00e9"}`:                               true,
		`{"a":[1,2,{"b":[]}],"b":null}`:                   true,
		strings.Repeat("[", 65) + strings.Repeat("]", 65): false,
		strings.Repeat("[", 60) + strings.Repeat("]", 60): true,
		`{"a":`: false,
	} {
		if err := checkJSON([]byte(body)); (err == nil) != ok {
			t.Errorf("checkJSON(%.40s) = %v, want ok=%v", body, err, ok)
		}
	}
}

func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"x":[{}]}]`, `"\u0000"`, `{"a":{"b":{"a":1}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { _ = checkJSON(b) })
}
