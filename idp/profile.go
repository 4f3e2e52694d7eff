package idp

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"
)

// ProfileFAPI2 is the FAPI 2.0 Security Profile (final, 2025), held per
// client: PAR only, PKCE S256, private_key_jwt, DPoP-bound tokens, ES256 or
// PS256 signatures, exact https redirect URIs, codes living at most
// FAPI2CodeLifetime, iss in the authorization response. The registration
// rules are here; the IdP enforces the rest on each request (idp/oidc's
// client assertions, idp/web's authorize and token endpoints).
const ProfileFAPI2 = "fapi2"

// FAPI2CodeLifetime bounds the age of a fapi2 client's authorization code at
// its exchange (FAPI 2.0 section 5.3.2.1: at most 60 seconds).
const FAPI2CodeLifetime = 60 * time.Second

// FAPI2Algs are the signature algorithms the profile allows (FAPI 2.0
// section 5.4.1): a fapi2 client's assertions, keys and DPoP proofs use one
// of them. RS256 (PKCS#1 v1.5) is forbidden.
var FAPI2Algs = []string{"ES256", "PS256"}

// IsFAPI2 reports whether the client is held to the FAPI 2.0 profile.
func (c *Client) IsFAPI2() bool { return c.Profile == ProfileFAPI2 }

// fapi2Problems lists what the FAPI 2.0 profile forbids in a registration.
func fapi2Problems(c *Client) []string {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	if c.AuthMethod != AuthPrivateKeyJWT {
		add("the client must authenticate with private_key_jwt (not %q)", c.AuthMethod)
	}
	if !slices.Contains(c.GrantTypes, "authorization_code") {
		add("the authorization_code grant is required")
	}
	for _, g := range c.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			add("grant type %q is not allowed (authorization_code and refresh_token only)", g)
		}
	}
	for _, u := range c.RedirectURIs {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" || Loopback(p.Hostname()) {
			add("redirect URI %q must be an https URL on a host other than a loopback address", u)
		}
	}
	if !c.PARRequired {
		add("pushed authorization requests must be required")
	}
	if c.IDTokenAlg != "ES256" {
		// PS256 ID tokens are not offered: the signing keys are ES256 and
		// RS256 (PKCS#1 v1.5), which the profile forbids.
		add("the ID token algorithm must be ES256 (not %q)", c.IDTokenAlg)
	}
	if c.JWKSURI != "" {
		if u, err := url.Parse(c.JWKSURI); err != nil || u.Scheme != "https" {
			add("the JWKS URI must use https")
		}
	}
	if c.JWKS != "" {
		probs = append(probs, fapi2KeyProblems(c.JWKS)...)
	}
	return probs
}

// fapi2KeyProblems checks a client's key set document for keys the profile
// forbids: each key is a P-256 EC key (ES256) or an RSA key declaring
// alg PS256, and a declared alg is ES256 or PS256. An RSA key without alg
// could sign RS256, so it must say PS256.
func fapi2KeyProblems(doc string) []string {
	// Members are read by their exact names, as go-jose reads them (its
	// JSON is case-sensitive, encoding/json's struct matching is not).
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return nil // ValidateJWKS reports a document that does not parse
	}
	member := func(k map[string]json.RawMessage, name string) string {
		var v string
		_ = json.Unmarshal(k[name], &v) // absent or not a string: ""
		return v
	}
	var probs []string
	for _, k := range set.Keys {
		kty, crv, alg, kid := member(k, "kty"), member(k, "crv"), member(k, "alg"), member(k, "kid")
		switch {
		case alg != "" && !slices.Contains(FAPI2Algs, alg):
			probs = append(probs, fmt.Sprintf("key %q has alg %q (ES256 or PS256 only)", kid, alg))
		case kty == "EC" && crv == "P-256" && (alg == "" || alg == "ES256"):
		case kty == "RSA" && alg == "PS256":
		default:
			probs = append(probs, fmt.Sprintf("key %q must be a P-256 EC key (ES256) or an RSA key with alg PS256", kid))
		}
	}
	return probs
}
