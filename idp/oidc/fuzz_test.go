package oidc

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/ory/fosite"
)

// A refresh token names its family only when its MAC holds: no input an
// attacker makes up (a victim's family id, re-labelled keys, junk) yields a
// signature naming a family, so reuse detection can never be aimed at
// someone else's grant. And the signature of a genuine token is stable.
func FuzzRefreshTokenSignature(f *testing.F) {
	ctx := context.Background()
	s := refreshStrategy()
	r := fosite.NewRequest()
	r.ID = "victim-family"
	r.Session = NewSession()
	tok, sig, err := s.GenerateRefreshToken(ctx, r)
	if err != nil {
		f.Fatal(err)
	}
	if got := s.RefreshTokenSignature(ctx, tok); got != sig {
		f.Errorf("genuine token's signature %q, want %q", got, sig)
	}
	for _, seed := range []string{tok, sig, "", ".", "victim-family.x", "AAAA.BBBB", tok + "x", strings.ToUpper(tok)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		got := s.RefreshTokenSignature(ctx, token)
		if id, ok := refreshFamily(got); ok && s.Enigma.Validate(ctx, token) != nil {
			t.Errorf("token %q names family %q without a valid MAC", token, id)
		}
		if got != s.RefreshTokenSignature(ctx, token) {
			t.Errorf("signature of %q is not stable", token)
		}
	})
}

// A resource indicator is accepted only as an absolute URI without a
// fragment, and what is accepted survives a round trip through a form.
func FuzzValidResource(f *testing.F) {
	for _, seed := range []string{"https://api.example.gov.vn", "https://api.example.gov.vn/v1#x", "urn:onedoor:api", "/relative", "", "http://[::1]:8081", "https://a\x00b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, r string) {
		if ValidResource(r) != nil {
			return
		}
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || strings.Contains(r, "#") {
			t.Errorf("accepted %q, which is not an absolute URI without a fragment", r)
		}
		if got := (url.Values{"resource": {r}}).Encode(); got != "" {
			back, err := url.ParseQuery(got)
			if err != nil || back.Get("resource") != r {
				t.Errorf("%q does not survive a form round trip", r)
			}
		}
	})
}

// A key set document from a client's jwks_uri (attacker-controlled bytes)
// never panics the parser, and every key kept is a public signature key.
func FuzzParseKeySet(f *testing.F) {
	for _, seed := range []string{
		`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1","use":"sig"}]}`,
		`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, `{"keys":null}`, `[]`, `{`, "",
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		set, err := parseKeySet(body, 8)
		if err != nil {
			return
		}
		if len(set.Keys) == 0 || len(set.Keys) > 8 {
			t.Fatalf("kept %d keys", len(set.Keys))
		}
		for _, k := range set.Keys {
			if !k.IsPublic() || !k.Valid() || (k.Use != "" && k.Use != "sig") {
				t.Errorf("kept a key that is not a public signature key: %+v", k)
			}
		}
	})
}
