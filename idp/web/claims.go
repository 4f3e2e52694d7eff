package web

import (
	"strings"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/oidc"
)

// Scope values OneDoor understands (idp owns their meaning).
const (
	ScopeOpenID  = idp.ScopeOpenID
	ScopeProfile = idp.ScopeProfile
	ScopeAddress = idp.ScopeAddress
	ScopePhone   = idp.ScopePhone
	ScopeEID     = idp.ScopeEID
	ScopeOffline = idp.ScopeOffline
)

// ClaimPersonalID carries the 12-digit personal identification number.
const ClaimPersonalID = idp.ClaimPersonalID

// claimsRequest reads what an authorization request asks for. A malformed
// claims parameter is refused earlier by validateAuthorize.
func claimsRequest(ar fosite.AuthorizeRequester) idp.ClaimsRequest {
	req, _ := idp.ParseClaimsRequest(ar.GetRequestedScopes(), ar.GetRequestForm().Get("claims"))
	return req
}

// clientRecord is the registered client behind a fosite request.
func clientRecord(ar fosite.Requester) *idp.Client {
	if c, ok := ar.GetClient().(*oidc.Client); ok && c.Record != nil {
		return c.Record
	}
	// Not one of ours: it may receive nothing.
	return &idp.Client{ID: ar.GetClient().GetID()}
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
