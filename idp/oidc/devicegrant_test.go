package oidc_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/idp/sqlite"
)

const issuer = "https://id.onedoor.test"

type grantEnv struct {
	p     *oidc.Provider
	devID string
	key   *ecdsa.PrivateKey
}

// newGrantEnv builds the provider over a real SQLite store and eID service
// with one citizen and one device enrolled at substantial.
func newGrantEnv(t *testing.T) *grantEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store := sqlite.New(db)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateCitizens(ctx, []*idp.Citizen{{ID: "c-1", PersonalID: "001099012345", FamilyName: "Trần", GivenName: "Bình"}}); err != nil {
		t.Fatal(err)
	}
	sealer, _ := keyset.NewSealer(bytes.Repeat([]byte{7}, 32))
	keys := keyset.New(store, sealer, keyset.Options{})
	if err := keys.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	svc := eid.New(store, store, eid.Config{Issuer: issuer, CodeKey: bytes.Repeat([]byte{1}, 32)})
	code, _, err := svc.Activate(ctx, "001099012345", idp.LevelSubstantial)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: key.Public()})
	dev, err := svc.Enroll(ctx, eid.EnrollRequest{PersonalID: "001099012345", ActivationCode: code, PublicKey: jwk})
	if err != nil {
		t.Fatal(err)
	}
	p := oidc.New(oidc.Config{
		Issuer: issuer, GlobalSecret: bytes.Repeat([]byte{2}, 32), SecretKey: bytes.Repeat([]byte{3}, 32),
		Lifespans: oidc.Lifespans{AccessToken: 10 * time.Minute}, DeviceGrant: svc,
	}, store, store, keys)
	return &grantEnv{p: p, devID: dev.ID, key: key}
}

func (g *grantEnv) assertion(t *testing.T) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": g.devID, "sub": g.devID, "aud": oidc.TokenURL(issuer),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": rand.Text(),
	})
	tok.Header = map[string]any{"alg": "ES256", "typ": eid.TypeGrant, "kid": g.devID}
	s, err := tok.SignedString(g.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tokenRequest(form url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

// TestDeviceGrant_Session: the grant's session names the citizen, the device
// and its key thumbprint, carries the device's level, and the answer has no
// refresh token.
func TestDeviceGrant_Session(t *testing.T) {
	ctx := context.Background()
	g := newGrantEnv(t)
	form := url.Values{"grant_type": {idp.GrantTypeJWTBearer}, "assertion": {g.assertion(t)}, "client_id": {idp.EIDAppClientID}, "scope": {"openid eid"}}
	ar, err := g.p.NewAccessRequest(ctx, tokenRequest(form), oidc.NewSession())
	if err != nil {
		t.Fatalf("NewAccessRequest: %v", err)
	}
	sess := ar.GetSession().(*oidc.Session)
	sum, _ := (&jose.JSONWebKey{Key: g.key.Public()}).Thumbprint(crypto.SHA256)
	if sess.Subject != "c-1" || sess.DeviceID != g.devID || sess.KeyThumbprint != base64.RawURLEncoding.EncodeToString(sum) {
		t.Errorf("session subject %q, device %q, jkt %q", sess.Subject, sess.DeviceID, sess.KeyThumbprint)
	}
	if sess.Claims.AuthenticationContextClassReference != string(idp.LevelSubstantial) || len(sess.Claims.AuthenticationMethodsReferences) != 1 {
		t.Errorf("acr %q, amr %v", sess.Claims.AuthenticationContextClassReference, sess.Claims.AuthenticationMethodsReferences)
	}
	if got := ar.GetGrantedScopes(); len(got) != 2 || !got.Has("openid", "eid") {
		t.Errorf("granted scopes %v", got)
	}
	resp, err := g.p.NewAccessResponse(ctx, ar)
	if err != nil {
		t.Fatalf("NewAccessResponse: %v", err)
	}
	if resp.GetAccessToken() == "" || resp.GetExtra("id_token") == nil || resp.GetExtra("refresh_token") != nil {
		t.Errorf("answer: access token %t, id_token %v, refresh_token %v", resp.GetAccessToken() != "", resp.GetExtra("id_token") != nil, resp.GetExtra("refresh_token"))
	}

	// Scopes default to what the client registered, minus offline_access.
	form.Set("assertion", g.assertion(t))
	form.Del("scope")
	ar, err = g.p.NewAccessRequest(ctx, tokenRequest(form), oidc.NewSession())
	if err != nil {
		t.Fatalf("without scope: %v", err)
	}
	if got := ar.GetGrantedScopes(); got.Has("offline_access") || !got.Has("openid", "profile", "eid") {
		t.Errorf("default scopes %v", got)
	}
}

func TestDeviceGrant_Refused(t *testing.T) {
	ctx := context.Background()
	g := newGrantEnv(t)
	for _, tt := range []struct {
		name string
		mod  func(f url.Values)
		want *fosite.RFC6749Error
	}{
		{"replayed assertion", nil, fosite.ErrInvalidGrant}, // the first run spends it
		{"garbage assertion", func(f url.Values) { f.Set("assertion", "x.y.z") }, fosite.ErrInvalidGrant},
		{"no assertion", func(f url.Values) { f.Del("assertion") }, fosite.ErrInvalidRequest},
		{"offline_access", func(f url.Values) { f.Set("scope", "openid offline_access") }, fosite.ErrInvalidScope},
		{"representation", func(f url.Values) { f.Set("scope", "openid representation") }, fosite.ErrInvalidScope},
		{"unregistered scope", func(f url.Values) { f.Set("scope", "registry.read") }, fosite.ErrInvalidScope},
		{"audience parameter", func(f url.Values) { f.Set("audience", "https://api.example") }, fosite.ErrInvalidRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := g.assertion(t)
			form := url.Values{"grant_type": {idp.GrantTypeJWTBearer}, "assertion": {a}, "client_id": {idp.EIDAppClientID}}
			if tt.mod == nil {
				if _, err := g.p.NewAccessRequest(ctx, tokenRequest(form), oidc.NewSession()); err != nil {
					t.Fatal(err)
				}
			} else {
				tt.mod(form)
			}
			_, err := g.p.NewAccessRequest(ctx, tokenRequest(form), oidc.NewSession())
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %s", err, tt.want.ErrorField)
			}
		})
	}
}
