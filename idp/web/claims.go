package web

import (
	"encoding/json"
	"net/http"
	"net/url"
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
// claims parameter or authorization_details is refused earlier by
// validateAuthorize (and the policy checks the details again).
func claimsRequest(ar fosite.AuthorizeRequester) idp.ClaimsRequest {
	req, _ := idp.ParseClaimsRequest(ar.GetRequestedScopes(), ar.GetRequestForm().Get("claims"))
	req.Details, _ = idp.ParseAuthorizationDetails(ar.GetRequestForm().Get("authorization_details"), clientRecord(ar))
	return req
}

// errInvalidAuthorizationDetails is RFC 9396's error for a malformed or
// widening authorization_details parameter.
var errInvalidAuthorizationDetails = &fosite.RFC6749Error{
	ErrorField:       "invalid_authorization_details",
	DescriptionField: "The authorization_details parameter is not acceptable.",
	CodeField:        http.StatusBadRequest,
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

// errUnmetAuthentication is OpenID Connect's answer when an essential acr
// cannot be met (OpenID Connect Core 5.5.1.1; the code is from OpenID
// Connect Unmet Authentication Requirements 1.0).
var errUnmetAuthentication = &fosite.RFC6749Error{
	ErrorField:       "unmet_authentication_requirements",
	DescriptionField: "The authentication requirements cannot be met.",
	CodeField:        http.StatusBadRequest,
}

// requiredLevel is the level a login must reach: the highest named in
// acr_values, raised by an essential acr in the claims parameter (OIDC Core
// 5.5.1.1), whose least listed level is the floor: any listed level
// satisfies it, and none below may be returned. An essential acr naming no
// level OneDoor has cannot be met.
func requiredLevel(form url.Values) (idp.Level, error) {
	level := levelFromACRValues(form.Get("acr_values"))
	var doc struct {
		IDToken map[string]json.RawMessage `json:"id_token"`
	}
	if err := json.Unmarshal([]byte(form.Get("claims")), &doc); err != nil {
		return level, nil // no claims parameter, or validateAuthorize refuses it
	}
	var spec *struct {
		Essential bool     `json:"essential"`
		Value     *string  `json:"value"`
		Values    []string `json:"values"`
	}
	if err := json.Unmarshal(doc.IDToken["acr"], &spec); err != nil || spec == nil || !spec.Essential {
		return level, nil // voluntary: a preference, not a requirement
	}
	names := spec.Values
	if spec.Value != nil {
		names = append(names, *spec.Value)
	}
	var floor idp.Level
	for _, n := range names {
		if l, err := idp.ParseLevel(n); err == nil && (floor == "" || l.Rank() < floor.Rank()) {
			floor = l
		}
	}
	switch {
	case floor == "" && len(names) > 0:
		return "", errUnmetAuthentication.WithHint("The essential acr names no level this provider has: see acr_values_supported.")
	case floor.Rank() > level.Rank():
		return floor, nil
	}
	return level, nil
}
