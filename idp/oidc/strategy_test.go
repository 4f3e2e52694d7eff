package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/keyset"
)

const testIssuer = "https://id.onedoor.test"

// oneKey is a single ES256 key.
type oneKey struct{ k *keyset.Key }

func (o oneKey) SigningKey(context.Context, string) (*keyset.Key, error) { return o.k, nil }
func (o oneKey) PublicKey(_ context.Context, kid string) (*keyset.Key, error) {
	if kid != o.k.ID {
		return nil, idp.ErrNotFound
	}
	return o.k, nil
}

func newTestStrategy(t *testing.T) *accessTokenStrategy {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := oneKey{&keyset.Key{ID: "k1", Alg: "ES256", Private: ec, Public: &ec.PublicKey}}
	return &accessTokenStrategy{
		issuer:          accesstoken.NewIssuer(testIssuer, keys, nil),
		verifier:        accesstoken.NewVerifier(testIssuer, keys, nil, time.Second, nil),
		lifespan:        10 * time.Minute,
		defaultAudience: UserinfoURL(testIssuer),
		now:             time.Now,
	}
}

func accessRequest(grant string, granted []string, form url.Values, sess *Session) *fosite.AccessRequest {
	ar := fosite.NewAccessRequest(sess)
	ar.ID = "grant-1"
	ar.GrantTypes = fosite.Arguments{grant}
	ar.Client = &fosite.DefaultClient{ID: "agency"}
	ar.Form = form
	ar.GrantScope("openid")
	for _, a := range granted {
		ar.GrantAudience(a)
	}
	return ar
}

func TestAccessToken_Claims(t *testing.T) {
	s := newTestStrategy(t)
	ctx := context.Background()
	api := "https://api.onedoor.test"
	citizen := func() *Session {
		sess := NewSession()
		sess.Subject = "citizen-1"
		sess.DeviceID = "device-1"
		return sess
	}
	bound := citizen()
	bound.KeyThumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	tests := []struct {
		name    string
		ar      *fosite.AccessRequest
		wantAud []string
		check   func(t *testing.T, c *accesstoken.Claims)
	}{
		{"citizen token: default audience, kind, did", accessRequest("authorization_code", nil, url.Values{}, citizen()), []string{UserinfoURL(testIssuer)},
			func(t *testing.T, c *accesstoken.Claims) {
				if c.Kind != accesstoken.KindCitizen || c.Subject != "citizen-1" || c.DeviceID != "device-1" || c.Confirmation != nil {
					t.Errorf("claims = %+v", c)
				}
			}},
		{"key-bound session: cnf.jkt", accessRequest("authorization_code", nil, url.Values{}, bound), []string{UserinfoURL(testIssuer)},
			func(t *testing.T, c *accesstoken.Claims) {
				if c.Confirmation == nil || c.Confirmation.JKT != bound.KeyThumbprint {
					t.Errorf("cnf = %+v, want jkt %s", c.Confirmation, bound.KeyThumbprint)
				}
			}},
		{"the grant's audience", accessRequest("refresh_token", []string{api, UserinfoURL(testIssuer)}, url.Values{}, citizen()), []string{api, UserinfoURL(testIssuer)}, nil},
		{"narrowed by resource", accessRequest("refresh_token", []string{api, UserinfoURL(testIssuer)}, url.Values{"resource": {api, api}}, citizen()), []string{api}, nil},
		{"client_credentials: a client token", accessRequest("client_credentials", nil, url.Values{}, NewSession()), []string{UserinfoURL(testIssuer)},
			func(t *testing.T, c *accesstoken.Claims) {
				if c.Kind != accesstoken.KindClient || c.Subject != "agency" || c.DeviceID != "" {
					t.Errorf("claims = %+v", c)
				}
			}},
		{"client_credentials with a resource", accessRequest("client_credentials", []string{api}, url.Values{"resource": {api}}, NewSession()), []string{api}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, _, err := s.GenerateAccessToken(ctx, tt.ar)
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.verifier.Verify(ctx, tok)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !slices.Equal([]string(c.Audience), tt.wantAud) {
				t.Errorf("aud = %v, want %v", c.Audience, tt.wantAud)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
	// An agency-bound client's own token names the agency; a citizen's token
	// obtained by the same client never does.
	boundClient := newClient(&idp.Client{ID: "agency", Agency: "HN-HOANKIEM", GrantTypes: []string{"client_credentials", "authorization_code"}})
	for _, tt := range []struct {
		grant string
		sess  *Session
		want  string
	}{
		{"client_credentials", NewSession(), "HN-HOANKIEM"},
		{"authorization_code", citizen(), ""},
		{"refresh_token", citizen(), ""},
	} {
		ar := accessRequest(tt.grant, nil, url.Values{}, tt.sess)
		ar.Client = boundClient
		tok, _, err := s.GenerateAccessToken(ctx, ar)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.verifier.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("%s: verify: %v", tt.grant, err)
		}
		if c.Agency != tt.want {
			t.Errorf("%s: agency %q, want %q", tt.grant, c.Agency, tt.want)
		}
	}

	// A resource outside the grant is never minted, whatever the caller
	// checked before.
	_, _, err := s.GenerateAccessToken(ctx, accessRequest("refresh_token", []string{UserinfoURL(testIssuer)}, url.Values{"resource": {api}}, citizen()))
	if !errors.Is(err, ErrInvalidTarget) {
		t.Errorf("resource outside the grant: %v, want invalid_target", err)
	}
}

func TestValidResource(t *testing.T) {
	for _, r := range []string{"https://api.onedoor.test", "https://api.onedoor.test/v1/", "urn:onedoor:mobile"} {
		if err := ValidResource(r); err != nil {
			t.Errorf("ValidResource(%q) = %v", r, err)
		}
	}
	for _, r := range []string{"", "api", "/v1", "//api.onedoor.test", "https://api.onedoor.test/#", "https://api.onedoor.test/#x"} {
		if err := ValidResource(r); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("ValidResource(%q) = %v, want ErrInvalid", r, err)
		}
	}
}
