package form

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// checkProblems fails unless err is nil or a well-formed *ValidationError.
func checkProblems(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var verr *ValidationError
	if !errors.As(err, &verr) || !errors.Is(err, idp.ErrInvalid) || len(verr.Errors) == 0 || len(verr.Errors) > MaxErrors {
		t.Fatalf("err = %v (%T)", err, err)
	}
	for _, fe := range verr.Errors {
		if fe.Message == "" || fe.MessageVI == "" || fe.Rule == "" || (fe.Pointer != "" && !strings.HasPrefix(fe.Pointer, "/")) {
			t.Fatalf("bad field error %+v", fe)
		}
	}
}

var demoTime = time.Date(2026, 10, 1, 2, 0, 0, 0, time.UTC)

func FuzzValidate(f *testing.F) {
	form := compileT(f, applicationSchema)
	for _, seed := range []string{validApplication, `{}`, `[]`, `null`, `"x"`, `{"home":{"floor":1}}`,
		`{"full_name":1,"birthdate":"1990-02-30","documents":["cccd","cccd"],"children":1e400}`,
		`{"married":true}`, `{"a/b~c":{"d":[1,{"e":null}]}}`, `{"full_name":"\ud800"}`, "{\"full_name\":\"\xff\"}",
		strings.Repeat("[", 40)} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		full := form.Validate(doc)
		checkProblems(t, full)
		partial := form.ValidatePartial(doc)
		checkProblems(t, partial)
		if full == nil && partial != nil {
			t.Fatalf("valid for submission but not as a draft: %v", partial)
		}
	})
}

func FuzzMergePatch(f *testing.F) {
	for _, c := range rfc7396AppendixA {
		f.Add([]byte(c[0]), []byte(c[1]))
	}
	f.Add([]byte(``), []byte(`{"a":{"b":null}}`))
	f.Add([]byte(validApplication), []byte(`{"home":{"province":null},"full_name":"Demo"}`))
	f.Add([]byte(`{"n":1e999}`), []byte(`{"m":-0.0}`))
	f.Fuzz(func(t *testing.T, target, patch []byte) {
		out, err := MergePatch(target, patch)
		if err != nil {
			if out != nil || !errors.Is(err, idp.ErrInvalid) {
				t.Fatalf("MergePatch = %s, %v", out, err)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("result is not JSON: %q", out)
		}
		// Merge patches are idempotent: applying one again changes nothing.
		again, err := MergePatch(out, patch)
		if err != nil {
			t.Fatalf("second application: %v", err)
		}
		if string(again) != string(out) {
			t.Fatalf("not idempotent: %s then %s", out, again)
		}
	})
}

func FuzzCompile(f *testing.F) {
	for _, seed := range []string{baseSchema, applicationSchema, `{}`, `true`, `{"type":"object","properties":{"a":true}}`,
		`{"type":"object","properties":{"a":{"$ref":"#"}},"$defs":{"x":{"$dynamicRef":"#x"}}}`,
		`{"type":"object","properties":{"a":{"title":"a","x-title":{"vi":"a","en":"a"},"examples":[1],"x-prefill":"citizen.address","$ref":"#/properties/a"}}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, schema []byte) {
		form, err := Compile(schema)
		if err != nil {
			if form != nil {
				t.Fatal("form with error")
			}
			checkProblems(t, err)
			return
		}
		// A compiled form validates its own pre-fill without panicking.
		out, _ := form.Prefill(demoCitizen(), demoTime)
		checkProblems(t, form.ValidatePartial(out))
		checkProblems(t, form.Validate(json.RawMessage(`{"a":[1,{"b":"x"}]}`)))
	})
}
