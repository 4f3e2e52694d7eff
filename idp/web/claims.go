package web

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// Scope values OneDoor understands.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeAddress = "address"
	ScopePhone   = "phone"
	ScopeEID     = "eid"
	ScopeOffline = "offline_access"
)

// ClaimPersonalID carries the 12-digit personal identification number; only
// the eid scope or an explicit claims request releases it.
const ClaimPersonalID = "personal_id"

// scopeClaims maps scopes to the registry claims they request (OIDC 5.4).
var scopeClaims = map[string][]string{
	ScopeProfile: {"name", "family_name", "given_name", "birthdate", "gender"},
	ScopeAddress: {"address"},
	ScopePhone:   {"phone_number"},
	ScopeEID:     {ClaimPersonalID},
}

// knownClaims is every claim the registry can supply, in display order.
var knownClaims = []string{"name", "family_name", "given_name", "birthdate", "gender", "address", "phone_number", ClaimPersonalID}

// requestedClaims works out what a request asks for. Claims implied by scopes
// are voluntary (OIDC 5.4), except the personal id that the eid scope exists
// to obtain; the claims parameter can mark any known claim essential.
func requestedClaims(scopes []string, claimsParam string) []eid.ClaimRequest {
	want := map[string]bool{} // name -> optional
	for _, sc := range scopes {
		for _, c := range scopeClaims[sc] {
			want[c] = c != ClaimPersonalID
		}
	}
	for name, essential := range parseClaimsParam(claimsParam) {
		if !slices.Contains(knownClaims, name) {
			continue
		}
		opt, seen := want[name]
		switch {
		case essential:
			want[name] = false
		case !seen:
			want[name] = true
		default:
			want[name] = opt
		}
	}
	var out []eid.ClaimRequest
	for _, c := range knownClaims {
		if opt, ok := want[c]; ok {
			out = append(out, eid.ClaimRequest{Name: c, Optional: opt})
		}
	}
	return out
}

// parseClaimsParam reads the OIDC claims request parameter (5.5): claim name
// to whether it is essential, merged over userinfo and id_token. A malformed
// value is rejected earlier by validateAuthorize.
func parseClaimsParam(raw string) map[string]bool {
	out := map[string]bool{}
	if raw == "" {
		return out
	}
	var doc map[string]map[string]*struct {
		Essential bool `json:"essential"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return out
	}
	for _, member := range []string{"userinfo", "id_token"} {
		for name, spec := range doc[member] {
			out[name] = out[name] || (spec != nil && spec.Essential)
		}
	}
	return out
}

// validClaimsParam reports whether raw is a well-formed claims parameter.
func validClaimsParam(raw string) bool {
	if raw == "" {
		return true
	}
	var doc map[string]map[string]json.RawMessage
	return json.Unmarshal([]byte(raw), &doc) == nil
}

// essentialCovered reports whether every non-optional requested claim is in granted.
func essentialCovered(req []eid.ClaimRequest, granted []string) bool {
	for _, c := range req {
		if !c.Optional && !slices.Contains(granted, c.Name) {
			return false
		}
	}
	return true
}

// intersect keeps the requested claims that are in granted.
func intersect(req []eid.ClaimRequest, granted []string) []string {
	var out []string
	for _, c := range req {
		if slices.Contains(granted, c.Name) {
			out = append(out, c.Name)
		}
	}
	return out
}

// citizenClaims returns the values of the released claims from the registry,
// the one copy of the data.
func citizenClaims(c *idp.Citizen, released []string) map[string]any {
	out := map[string]any{"sub": c.ID}
	for _, name := range released {
		switch name {
		case "name":
			out[name] = c.Name()
		case "family_name":
			out[name] = c.FamilyName
		case "given_name":
			out[name] = c.GivenName
		case "birthdate":
			out[name] = c.Birthdate
		case "gender":
			out[name] = c.Gender
		case "address":
			if c.Address != "" {
				out[name] = map[string]string{"formatted": c.Address, "country": "VN"}
			}
		case "phone_number":
			if c.PhoneNumber != "" {
				out[name] = c.PhoneNumber
				out["phone_number_verified"] = true
			}
		case ClaimPersonalID:
			out[name] = c.PersonalID
		}
	}
	return out
}

// levelFromACRValues returns the highest level named in acr_values, or low.
func levelFromACRValues(v string) idp.Level {
	best := idp.LevelLow
	for _, a := range strings.Fields(v) {
		if l, err := idp.ParseLevel(a); err == nil && l.Rank() > best.Rank() {
			best = l
		}
	}
	return best
}
