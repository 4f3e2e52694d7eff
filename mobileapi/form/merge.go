package form

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/onedoor/onedoor/idp"
)

// MergePatch applies patch to target as RFC 7396 JSON Merge Patch and
// returns the result. An empty target counts as absent (the result is then
// the patch with its null members removed). Both inputs are bounded by
// MaxDocumentBytes and MaxDepth, as is the result; anything beyond, or
// input that is not one JSON value, is idp.ErrInvalid.
//
// The merge is written here rather than taken from
// github.com/evanphx/json-patch/v5, whose MergePatch departs from RFC 7396
// where a form patch may go: it removes nulls inside arrays the patch sets
// ({"a":[{"b":null}]} gives [{}], not the array as sent) and refuses a null
// target. Members come back in key order; numbers keep their exact text.
func MergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	var t any
	if len(bytes.TrimSpace(target)) > 0 {
		var err error
		if t, err = parseBounded("target", target); err != nil {
			return nil, err
		}
	}
	p, err := parseBounded("patch", patch)
	if err != nil {
		return nil, err
	}
	out, err := encode(merge(t, p))
	if err != nil {
		return nil, fmt.Errorf("merge patch: %w", err)
	}
	if len(out) > MaxDocumentBytes {
		return nil, fmt.Errorf("merge patch: the result is larger than %d bytes: %w", MaxDocumentBytes, idp.ErrInvalid)
	}
	return out, nil
}

// merge is RFC 7396 section 2's MergePatch. It may modify target.
func merge(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = make(map[string]any, len(pm))
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = merge(tm[k], v)
	}
	return tm
}

// parseBounded decodes one JSON value within the package's bounds; the
// error names the input, never its content.
func parseBounded(what string, doc []byte) (any, error) {
	if rule, en, _ := limitProblem(doc, MaxDocumentBytes); rule != "" {
		return nil, fmt.Errorf("merge patch: the %s %s: %w", what, en, idp.ErrInvalid)
	}
	v, err := decode(doc)
	if err != nil {
		return nil, fmt.Errorf("merge patch: the %s is not one JSON value: %w", what, idp.ErrInvalid)
	}
	return v, nil
}
