package idp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const (
	fapi2ECKey     = `{"kty":"EC","crv":"P-256","kid":"ec","x":"x","y":"y"}`
	fapi2PS256Key  = `{"kty":"RSA","alg":"PS256","kid":"ps","n":"n","e":"AQAB"}`
	fapi2RSANoAlg  = `{"kty":"RSA","kid":"rsa","n":"n","e":"AQAB"}`
	fapi2RS256Key  = `{"kty":"RSA","alg":"RS256","kid":"rs","n":"n","e":"AQAB"}`
	fapi2P384Key   = `{"kty":"EC","crv":"P-384","kid":"p384","x":"x","y":"y"}`
	fapi2ES256Alg  = `{"kty":"EC","crv":"P-256","alg":"ES256","kid":"es","x":"x","y":"y"}`
	fapi2WrongPair = `{"kty":"EC","crv":"P-256","alg":"PS256","kid":"mix","x":"x","y":"y"}`
)

func fapi2Client() *Client {
	c := &Client{Name: "Bank", Profile: ProfileFAPI2, AuthMethod: AuthPrivateKeyJWT,
		JWKS:         `{"keys":[` + fapi2ECKey + `,` + fapi2PS256Key + `,` + fapi2ES256Alg + `]}`,
		RedirectURIs: []string{"https://bank.example/cb"}, Scopes: []string{ScopeOpenID, ScopeOffline}}
	c.ApplyDefaults()
	return c
}

func TestClientValidate_FAPI2(t *testing.T) {
	if err := fapi2Client().Validate(); err != nil {
		t.Fatalf("a FAPI 2.0 client: %v", err)
	}
	c := fapi2Client()
	if !c.PARRequired || !c.IsFAPI2() || c.IDTokenAlg != "ES256" || strings.Join(c.GrantTypes, " ") != "authorization_code refresh_token" {
		t.Errorf("defaults: par %v alg %s grants %v", c.PARRequired, c.IDTokenAlg, c.GrantTypes)
	}
	// ApplyDefaults picks private_key_jwt for a fapi2 client that names none.
	bare := &Client{Profile: ProfileFAPI2}
	bare.ApplyDefaults()
	if bare.AuthMethod != AuthPrivateKeyJWT || !bare.PARRequired {
		t.Errorf("bare fapi2 defaults: %s par %v", bare.AuthMethod, bare.PARRequired)
	}
	for _, tt := range []struct {
		name, want string
		edit       func(c *Client)
	}{
		{"client secret", "private_key_jwt", func(c *Client) { c.AuthMethod, c.JWKS, c.SecretHash = AuthSecretBasic, "", []byte("h") }},
		{"public client", "private_key_jwt", func(c *Client) { c.AuthMethod, c.JWKS = AuthNone, "" }},
		{"http loopback redirect", "https URL", func(c *Client) { c.RedirectURIs = []string{"http://127.0.0.1:9/cb"} }},
		{"https loopback redirect", "loopback", func(c *Client) { c.RedirectURIs = []string{"https://127.0.0.1/cb"} }},
		{"private-use scheme", "https URL", func(c *Client) { c.RedirectURIs = []string{"vn.bank.app:/cb"} }},
		{"wildcard", "wildcards", func(c *Client) { c.RedirectURIs = []string{"https://*.bank.example/cb"} }},
		{"RS256 ID tokens", "ES256", func(c *Client) { c.IDTokenAlg = "RS256" }},
		{"client credentials", "client_credentials", func(c *Client) { c.GrantTypes = append(c.GrantTypes, "client_credentials") }},
		{"no code grant", "authorization_code grant is required", func(c *Client) { c.GrantTypes, c.RedirectURIs = []string{"client_credentials"}, nil }},
		{"PAR off", "pushed authorization", func(c *Client) { c.PARRequired = false }},
		{"RS256 key", `key "rs"`, func(c *Client) { c.JWKS = `{"keys":[` + fapi2RS256Key + `]}` }},
		{"RSA key without alg", `key "rsa"`, func(c *Client) { c.JWKS = `{"keys":[` + fapi2RSANoAlg + `]}` }},
		{"P-384 key", `key "p384"`, func(c *Client) { c.JWKS = `{"keys":[` + fapi2P384Key + `]}` }},
		{"alg that does not fit the key", `key "mix"`, func(c *Client) { c.JWKS = `{"keys":[` + fapi2WrongPair + `]}` }},
		{"http JWKS URI", "JWKS URI must use https", func(c *Client) { c.JWKS, c.JWKSURI = "", "http://127.0.0.1/jwks" }},
		{"unknown profile", `profile "fapi1"`, func(c *Client) { c.Profile = "fapi1" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := fapi2Client()
			tt.edit(c)
			err := c.Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want ErrInvalid naming %q", err, tt.want)
			}
		})
	}
}

func TestReviewChanges_LeavingTheProfile(t *testing.T) {
	prev := fapi2Client()
	next := *prev
	next.Profile = ""
	if got := ReviewChanges(prev, &next); len(got) != 1 || got[0] != "onedoor_profile" {
		t.Errorf("leaving fapi2: %v", got)
	}
	if got := ReviewChanges(&next, prev); len(got) != 0 {
		t.Errorf("joining fapi2 is no widening: %v", got)
	}
	if ReviewDigest(prev) == ReviewDigest(&next) {
		t.Error("the review digest ignores the profile")
	}
}

// FuzzFAPI2KeyProblems: an agency's key set comes from /register. Whatever
// it holds, the check neither panics nor reports more problems than keys,
// and a key set it accepts holds only keys that cannot sign RS256.
func FuzzFAPI2KeyProblems(f *testing.F) {
	for _, k := range []string{fapi2ECKey, fapi2PS256Key, fapi2RSANoAlg, fapi2RS256Key, fapi2P384Key, fapi2WrongPair} {
		f.Add(`{"keys":[` + k + `]}`)
	}
	f.Add(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	f.Add(`{"keys":null}`)
	f.Add(`[]`)
	f.Add(`{"keys":[{"kty":"RSA","ALG":"PS256","kid":"case","n":"n","e":"AQAB"}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		probs := fapi2KeyProblems(doc)
		// What go-jose would read: exact member names.
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		if err := json.Unmarshal([]byte(doc), &set); err != nil {
			return
		}
		if len(probs) > len(set.Keys) {
			t.Errorf("%d problems for %d keys", len(probs), len(set.Keys))
		}
		if len(probs) == 0 {
			for _, k := range set.Keys {
				kty, _ := k["kty"].(string)
				alg, _ := k["alg"].(string)
				if alg == "RS256" || (kty == "RSA" && alg != "PS256") || (kty != "RSA" && kty != "EC") {
					t.Errorf("accepted a key of type %q alg %q", kty, alg)
				}
			}
		}
	})
}
