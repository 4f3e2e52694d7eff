package form

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fanOut is a small schema whose $defs each refer twice to the next:
// 2^n branches for validation.
func fanOut(n int, kw string) string {
	var defs []string
	for i := range n {
		defs = append(defs, fmt.Sprintf(`"a%d":{"%s":[{"$ref":"#/$defs/a%d"},{"$ref":"#/$defs/a%d"}]}`, i, kw, i+1, i+1))
	}
	defs = append(defs, fmt.Sprintf(`"a%d":{"type":"string","minLength":1}`, n))
	return `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object","$defs":{` + strings.Join(defs, ",") + `},
	 "properties":{"x":{"title":"x","x-title":{"vi":"x","en":"x"},"examples":["a"],"$ref":"#/$defs/a0"}}}`
}

func TestCompile_RefusesCostlySchemas(t *testing.T) {
	for name, schema := range map[string]string{
		"anyOf fan-out":  fanOut(21, "anyOf"),
		"allOf fan-out":  fanOut(30, "allOf"),
		"recursive refs": `{"type":"object","$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}}}},"properties":{"x":{"title":"x","x-title":{"vi":"x","en":"x"},"examples":[{}],"$ref":"#/$defs/n"}}}`,
		"huge pattern":   `{"type":"object","properties":{"x":{"title":"x","x-title":{"vi":"x","en":"x"},"examples":["a"],"type":"string","pattern":"` + strings.Repeat(`(?:[a-z]{1000})?`, 50) + `"}}}`,
		"long pattern":   `{"type":"object","properties":{"x":{"title":"x","x-title":{"vi":"x","en":"x"},"examples":["a"],"type":"string","pattern":"` + strings.Repeat("a", 2000) + `"}}}`,
	} {
		start := time.Now()
		_, err := Compile(json.RawMessage(schema))
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Errors[0].Rule != "complexity" && ve.Errors[0].Rule != "pattern" {
			t.Errorf("%s: %v, want a complexity or pattern problem", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refusing took %v", name, d)
		}
	}
	// A moderate fan-out (a few shared definitions) is fine.
	if _, err := Compile(json.RawMessage(fanOut(5, "anyOf"))); err != nil {
		t.Errorf("five levels: %v", err)
	}
}
