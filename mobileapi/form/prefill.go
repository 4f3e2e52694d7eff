package form

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// SourceCitizenRegistry is the Provenance.Source of values taken from the
// citizen registry.
const SourceCitizenRegistry = "citizen_registry"

// registryFields reads each field of the citizen register.
var registryFields = map[string]func(*idp.Citizen) string{
	"personal_id":  func(c *idp.Citizen) string { return c.PersonalID },
	"full_name":    (*idp.Citizen).Name,
	"family_name":  func(c *idp.Citizen) string { return c.FamilyName },
	"given_name":   func(c *idp.Citizen) string { return c.GivenName },
	"birthdate":    func(c *idp.Citizen) string { return c.Birthdate },
	"gender":       func(c *idp.Citizen) string { return c.Gender },
	"address":      func(c *idp.Citizen) string { return c.Address },
	"phone_number": func(c *idp.Citizen) string { return c.PhoneNumber },
}

// registerAliases maps the register names x-prefill accepts to the one
// register there is. "population" (the national population database) is
// the name the OpenAPI document's example schema uses.
var registerAliases = map[string]bool{"citizen": true, "population": true}

// fieldAliases are other names for registry fields ("name" is in the
// OpenAPI document's example schema).
var fieldAliases = map[string]string{"name": "full_name"}

// PrefillFields lists the x-prefill values Compile accepts, sorted.
func PrefillFields() []string {
	var out []string
	for reg := range registerAliases {
		for f := range registryFields {
			out = append(out, reg+"."+f)
		}
		for a := range fieldAliases {
			out = append(out, reg+"."+a)
		}
	}
	sort.Strings(out)
	return out
}

// registryField resolves an x-prefill value to a registry field name.
func registryField(ref string) (string, bool) {
	reg, field, ok := strings.Cut(ref, ".")
	if !ok || !registerAliases[reg] {
		return "", false
	}
	if canon, ok := fieldAliases[field]; ok {
		field = canon
	}
	if _, ok := registryFields[field]; !ok {
		return "", false
	}
	return field, true
}

// Prefill returns a form holding, for every property with x-prefill, the
// citizen's registry value, and where each came from keyed by JSON Pointer
// into that form. Empty registry values are left out, and so are values
// the property's own schema rejects (a registry address longer than the
// field's maxLength, a gender its enum lacks): the citizen fills those in,
// rather than the draft carrying a value marked as the registry's that
// can never be submitted. A nil citizen gives an empty form.
func (f *Form) Prefill(c *idp.Citizen, asOf time.Time) (json.RawMessage, map[string]mobileapi.Provenance) {
	if c == nil {
		return json.RawMessage(`{}`), map[string]mobileapi.Provenance{}
	}
	return f.PrefillWith(func(field string) (string, time.Time, bool) {
		v := registryFields[field](c)
		return v, asOf, v != ""
	})
}

// ItemOf is the data item (the IdP's claim name, what consent and the
// access log speak of) of a registry field.
func ItemOf(field string) string {
	if field == "full_name" {
		return "name"
	}
	return field
}

// PrefillItems lists, sorted and once each, the data items the form's
// x-prefill names: all that pre-filling it may read about the citizen.
func (f *Form) PrefillItems() []string {
	var out []string
	for _, p := range f.prefills {
		out = append(out, ItemOf(p.field))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PrefillWith is Prefill over values read elsewhere (the data broker):
// get returns a registry field's value and when the register last changed
// it, ok false when it holds none.
func (f *Form) PrefillWith(get func(field string) (v string, asOf time.Time, ok bool)) (json.RawMessage, map[string]mobileapi.Provenance) {
	doc := map[string]any{}
	prov := map[string]mobileapi.Provenance{}
	for _, p := range f.prefills {
		v, asOf, ok := get(p.field)
		if !ok || v == "" || p.schema.Validate(v) != nil {
			continue
		}
		if !setPath(doc, p.path, v) {
			continue
		}
		prov[p.pointer] = mobileapi.Provenance{Source: SourceCitizenRegistry, Field: p.field, AsOf: asOf.UTC()}
	}
	out, err := encode(doc)
	if err != nil { // cannot happen: strings in maps
		return json.RawMessage(`{}`), map[string]mobileapi.Provenance{}
	}
	return out, prov
}

// setPath sets doc[path...] = v, creating objects on the way; false when
// a value that is not an object is in the way.
func setPath(doc map[string]any, path []string, v any) bool {
	for _, name := range path[:len(path)-1] {
		next, ok := doc[name]
		if !ok {
			m := map[string]any{}
			doc[name] = m
			doc = m
			continue
		}
		if doc, ok = next.(map[string]any); !ok {
			return false
		}
	}
	last := path[len(path)-1]
	if _, taken := doc[last]; taken {
		return false
	}
	doc[last] = v
	return true
}

// ChangedPrefilled returns, sorted, the pointers of prefilled whose value
// differs between two versions of a form: a value the register vouches
// for must not be replaced under that provenance.
func ChangedPrefilled(before, after json.RawMessage, prefilled map[string]mobileapi.Provenance) []string {
	var a, b any
	if json.Unmarshal(before, &a) != nil || json.Unmarshal(after, &b) != nil {
		return nil
	}
	var out []string
	for ptr := range prefilled {
		va, oka := resolve(a, ptr)
		vb, okb := resolve(b, ptr)
		if oka != okb || !reflect.DeepEqual(va, vb) {
			out = append(out, ptr)
		}
	}
	slices.Sort(out)
	return out
}
