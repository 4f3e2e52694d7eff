package form

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Bounds on what the package parses: a form is a few kilobytes, so these
// leave room while keeping a hostile document from costing much.
const (
	// MaxSchemaBytes bounds a service's form schema.
	MaxSchemaBytes = 256 << 10
	// MaxDocumentBytes bounds a filled form and a merge patch.
	MaxDocumentBytes = 256 << 10
	// MaxDepth bounds the nesting of arrays and objects in any input.
	MaxDepth = 32
	// MaxProperties bounds the properties a schema declares, all levels
	// together.
	MaxProperties = 1000
)

// depth returns the deepest nesting of arrays and objects in doc, scanning
// bytes (strings skipped) so that a deep document is refused before a
// recursive decoder sees it. It stops counting past limit.
func depth(doc []byte, limit int) int {
	d, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range doc {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			d++
			if d > deepest {
				deepest = d
				if deepest > limit {
					return deepest
				}
			}
		case c == ']' || c == '}':
			d--
		}
	}
	return deepest
}

// limitProblem says whether doc is too large or too deep, as a problem of
// the whole document, or "" when it is not.
func limitProblem(doc []byte, maxBytes int) (rule, en, vi string) {
	if len(doc) > maxBytes {
		return "maxSize", fmt.Sprintf("is larger than %d bytes (maxSize)", maxBytes),
			fmt.Sprintf("Dữ liệu lớn hơn %d byte.", maxBytes)
	}
	if depth(doc, MaxDepth) > MaxDepth {
		return "maxDepth", fmt.Sprintf("nests arrays and objects deeper than %d levels (maxDepth)", MaxDepth),
			fmt.Sprintf("Dữ liệu lồng nhau quá %d cấp.", MaxDepth)
	}
	return "", "", ""
}

// decode parses one JSON value keeping numbers exact (json.Number).
func decode(doc []byte) (any, error) {
	return jsonschema.UnmarshalJSON(bytes.NewReader(doc))
}

// encode writes v compactly without HTML escaping (forms hold text, not
// markup for a browser).
func encode(v any) (json.RawMessage, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
