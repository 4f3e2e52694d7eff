package idp

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

func TestReviewChanges(t *testing.T) {
	prev := &Client{Name: "A", RedirectURIs: []string{"https://a.test/cb"}, Scopes: []string{"openid", "profile"},
		Claims: []string{"name"}, GrantTypes: []string{"authorization_code"}, AuthMethod: AuthPrivateKeyJWT, JWKSURI: "https://a.test/k",
		Purposes: []consent.Purpose{{Code: "p", Text: "t"}}}
	same := *prev
	same.JWKSURI, same.IDTokenAlg = "https://a.test/k2", "RS256"
	same.Scopes = []string{"openid"} // narrower
	if r := ReviewChanges(prev, &same); len(r) != 0 {
		t.Errorf("narrowing or a key rotation needs review: %v", r)
	}
	wide := same
	wide.Name = "B"
	wide.RedirectURIs = []string{"https://a.test/cb", "https://evil.test/cb"}
	wide.Scopes = []string{"openid", "phone"}
	wide.Claims = []string{"name", "personal_id"}
	wide.Purposes = []consent.Purpose{{Code: "p", Text: "other text"}}
	wide.AuthMethod = AuthSecretBasic
	want := []string{"redirect_uri https://evil.test/cb", "scope phone", "claim personal_id", "purpose p", "client_name", "token_endpoint_auth_method"}
	if r := ReviewChanges(prev, &wide); !slices.Equal(r, want) {
		t.Errorf("ReviewChanges = %v, want %v", r, want)
	}
}

func TestNarrow(t *testing.T) {
	c := &Client{Scopes: []string{"agency", "registry.read"}, Claims: []string{"name"}}
	if err := c.Narrow([]string{"agency", "registry.write"}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("widening approval: %v", err)
	}
	if err := c.Narrow([]string{"agency"}, []string{}); err != nil || !slices.Equal(c.Scopes, []string{"agency"}) || c.Claims != nil {
		t.Errorf("narrow: %v %v %v", err, c.Scopes, c.Claims)
	}
}

func TestInitialTokenUsable(t *testing.T) {
	now := time.Unix(1000, 0)
	tok := &InitialToken{MaxUses: 1, ExpiresAt: now.Add(time.Minute)}
	if !tok.Usable(now) {
		t.Fatal("fresh token unusable")
	}
	for _, f := range []func(*InitialToken){
		func(t *InitialToken) { t.Uses = 1 },
		func(t *InitialToken) { t.ExpiresAt = now },
		func(t *InitialToken) { t.RevokedAt = &now },
	} {
		c := *tok
		f(&c)
		if c.Usable(now) {
			t.Errorf("usable: %+v", c)
		}
	}
	if string(HashRegistrationToken([]byte("k"), TokenInitial, "x")) == string(HashRegistrationToken([]byte("k"), TokenRegistration, "x")) {
		t.Error("the two kinds of token hash alike")
	}
}

func TestReviewDigest(t *testing.T) {
	c := &Client{ID: "x", Name: "A", Scopes: []string{"openid"}, SecretHash: []byte{1}}
	d := ReviewDigest(c)
	same := *c
	same.SecretHash = []byte{2} // secrets are not reviewed
	if ReviewDigest(&same) != d {
		t.Error("digest depends on the secret")
	}
	for _, f := range []func(*Client){
		func(c *Client) { c.Scopes = []string{"openid", "phone"} },
		func(c *Client) { c.RedirectURIs = []string{"https://a.test/cb"} },
		func(c *Client) { c.JWKSURI = "https://a.test/k" },
		func(c *Client) { c.Purposes = []consent.Purpose{{Code: "p", Text: "t"}} },
	} {
		o := *c
		f(&o)
		if ReviewDigest(&o) == d {
			t.Errorf("digest unchanged by %+v", o)
		}
	}
}
