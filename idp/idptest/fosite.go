package idptest

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/idp/oidc"
)

// FositeBackend is a durable store and an ephemeral store to build the fosite
// storage adapter on; they may be the same object.
type FositeBackend struct {
	Store idp.Store
	Eph   idp.Ephemeral
}

// fositeClock is a settable clock for grace-window tests.
type fositeClock struct{ ns atomic.Int64 }

func (c *fositeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fositeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

const fositeIssuer = "https://id.onedoor.test"

type fositeFixture struct {
	s      *oidc.Storage
	clock  *fositeClock
	issuer *accesstoken.Issuer
	client *idp.Client
	life   oidc.Lifespans
}

// RunFositeStorageTests checks the fosite storage contract that fosite itself
// does not test, on OneDoor's adapter over the given backend: invalidated
// codes, refresh rotation with its grace window and family revocation, PKCE,
// OpenID and PAR sessions, revocation by request id, client assertion replay,
// and concurrent redemption of one code.
func RunFositeStorageTests(t *testing.T, newBackend func(t *testing.T) FositeBackend) {
	tests := []struct {
		name string
		run  func(t *testing.T, f *fositeFixture)
	}{
		{"AuthorizeCode", testFositeCode},
		{"AuthorizeCodeConcurrentRedemption", testFositeCodeConcurrent},
		{"PKCE", testFositePKCE},
		{"OpenIDSession", testFositeOpenID},
		{"PAR", testFositePAR},
		{"RefreshRotation", testFositeRefresh},
		{"AccessTokenRevocation", testFositeAccessToken},
		{"Client", testFositeClient},
		{"ClientAssertionReplay", testFositeJTI},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t)
			clock := &fositeClock{}
			clock.ns.Store(time.Now().UnixNano())
			sealer, err := keyset.NewSealer(make([]byte, 32))
			mustNil(t, err, "sealer")
			keys := keyset.New(b.Store, sealer, keyset.Options{Now: clock.Now})
			mustNil(t, keys.Ensure(context.Background()), "keys")
			life := oidc.Lifespans{AuthorizeCode: time.Minute, AccessToken: 10 * time.Minute, RefreshToken: time.Hour, PAR: time.Minute, RefreshGrace: 30 * time.Second}
			verifier := accesstoken.NewVerifier(fositeIssuer, keys, b.Eph, 30*time.Second, clock.Now)
			c := &idp.Client{ID: "agency", Name: "Agency", RedirectURIs: []string{"https://agency.example/cb"},
				GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"},
				AuthMethod: idp.AuthSecretBasic, SecretHash: []byte("h"), IDTokenAlg: "ES256"}
			mustNil(t, b.Store.CreateClient(context.Background(), c), "create client")
			f := &fositeFixture{
				s:      oidc.NewStorage(b.Store, b.Eph, verifier, life, clock.Now),
				clock:  clock,
				issuer: accesstoken.NewIssuer(fositeIssuer, keys, clock.Now),
				client: c,
				life:   life,
			}
			withTimeout(subtestTimeout, func() { tt.run(t, f) })
		})
	}
}

// request builds a granted authorize request for the fixture's client.
func (f *fositeFixture) request(t *testing.T) *fosite.AuthorizeRequest {
	t.Helper()
	client, err := f.s.GetClient(context.Background(), f.client.ID)
	mustNil(t, err, "get client")
	ar := fosite.NewAuthorizeRequest()
	ar.ID = randomKey()
	ar.RequestedAt = f.clock.Now().UTC().Truncate(time.Second)
	ar.Client = client
	ar.SetRequestedScopes(fosite.Arguments{"openid", "offline_access"})
	ar.GrantScope("openid")
	ar.GrantScope("offline_access")
	ar.Form = url.Values{"nonce": {"n-0123456789"}, "code_challenge": {"abc"}}
	sess := oidc.NewSession()
	sess.Subject = "citizen-1"
	sess.Claims.Subject = "citizen-1"
	sess.Released = []string{"name"}
	ar.Session = sess
	return ar
}

func sameRequest(t *testing.T, got fosite.Requester, want *fosite.AuthorizeRequest, what string) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil requester", what)
	}
	equal(t, got.GetID(), want.GetID(), what+": id")
	equal(t, got.GetClient().GetID(), want.GetClient().GetID(), what+": client")
	equal(t, []string(got.GetGrantedScopes()), []string(want.GetGrantedScopes()), what+": granted scopes")
	equal(t, got.GetRequestForm().Get("nonce"), want.GetRequestForm().Get("nonce"), what+": form")
	equal(t, got.GetSession().GetSubject(), "citizen-1", what+": subject")
	if s, ok := got.GetSession().(*oidc.Session); !ok || len(s.Released) != 1 {
		t.Errorf("%s: session %T lost its released claims", what, got.GetSession())
	}
}

func testFositeCode(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	mustNil(t, f.s.CreateAuthorizeCodeSession(ctx, "sig-1", ar), "create")
	got, err := f.s.GetAuthorizeCodeSession(ctx, "sig-1", oidc.NewSession())
	mustNil(t, err, "get")
	sameRequest(t, got, ar, "get")
	mustNil(t, f.s.InvalidateAuthorizeCodeSession(ctx, "sig-1"), "invalidate")
	// After invalidation fosite needs the requester AND the error, to revoke
	// what the code issued.
	got, err = f.s.GetAuthorizeCodeSession(ctx, "sig-1", oidc.NewSession())
	mustBe(t, err, fosite.ErrInvalidatedAuthorizeCode, "get invalidated")
	sameRequest(t, got, ar, "get invalidated")
	mustBe(t, f.s.InvalidateAuthorizeCodeSession(ctx, "sig-1"), idp.ErrConflict, "invalidate twice")
	_, err = f.s.GetAuthorizeCodeSession(ctx, "unknown", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get unknown")
}

func testFositeCodeConcurrent(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	mustNil(t, f.s.CreateAuthorizeCodeSession(ctx, "sig-c", f.request(t)), "create")
	errs := runConcurrently(20, func(int) error { return f.s.InvalidateAuthorizeCodeSession(ctx, "sig-c") })
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, idp.ErrConflict):
			t.Errorf("losing redemption: %v, want ErrConflict", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent redemptions won, want exactly 1", wins, len(errs))
	}
}

func testFositePKCE(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	mustNil(t, f.s.CreatePKCERequestSession(ctx, "sig-p", ar), "create")
	got, err := f.s.GetPKCERequestSession(ctx, "sig-p", oidc.NewSession())
	mustNil(t, err, "get")
	equal(t, got.GetRequestForm().Get("code_challenge"), "abc", "challenge")
	mustNil(t, f.s.DeletePKCERequestSession(ctx, "sig-p"), "delete")
	_, err = f.s.GetPKCERequestSession(ctx, "sig-p", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get deleted")
}

func testFositeOpenID(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	mustNil(t, f.s.CreateOpenIDConnectSession(ctx, "code-o", ar), "create")
	got, err := f.s.GetOpenIDConnectSession(ctx, "code-o", ar)
	mustNil(t, err, "get")
	sameRequest(t, got, ar, "get")
	mustNil(t, f.s.DeleteOpenIDConnectSession(ctx, "code-o"), "delete")
	_, err = f.s.GetOpenIDConnectSession(ctx, "code-o", ar)
	mustBe(t, err, openid.ErrNoSessionFound, "get deleted")
}

func testFositePAR(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	ar.RedirectURI, _ = url.Parse("https://agency.example/cb")
	ar.State = "state-0123456789"
	ar.ResponseTypes = fosite.Arguments{"code"}
	uri := "urn:ietf:params:oauth:request_uri:" + randomKey()
	mustNil(t, f.s.CreatePARSession(ctx, uri, ar), "create")
	got, err := f.s.GetPARSession(ctx, uri)
	mustNil(t, err, "get")
	equal(t, got.GetRedirectURI().String(), "https://agency.example/cb", "redirect uri")
	equal(t, got.GetState(), ar.State, "state")
	equal(t, []string(got.GetResponseTypes()), []string{"code"}, "response types")
	mustNil(t, f.s.DeletePARSession(ctx, uri), "delete")
	_, err = f.s.GetPARSession(ctx, uri)
	mustBe(t, err, fosite.ErrNotFound, "get deleted")
}

func testFositeRefresh(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "rt-1", "at", ar), "create rt-1")
	got, err := f.s.GetRefreshTokenSession(ctx, "rt-1", oidc.NewSession())
	mustNil(t, err, "get")
	sameRequest(t, got, ar, "get")

	// Rotation: the old token stays usable for the grace window only.
	mustNil(t, f.s.RotateRefreshToken(ctx, ar.ID, "rt-1"), "rotate")
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "rt-2", "at", ar), "create rt-2")
	_, err = f.s.GetRefreshTokenSession(ctx, "rt-1", oidc.NewSession())
	mustNil(t, err, "rotated token within grace")
	f.clock.Advance(f.life.RefreshGrace + time.Second)
	got, err = f.s.GetRefreshTokenSession(ctx, "rt-1", oidc.NewSession())
	mustBe(t, err, fosite.ErrInactiveToken, "rotated token after grace")
	sameRequest(t, got, ar, "inactive token still returns its request")
	_, err = f.s.GetRefreshTokenSession(ctx, "rt-2", oidc.NewSession())
	mustNil(t, err, "current token")

	// Reuse detection revokes the family by request id.
	other := f.request(t)
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "rt-other", "at", other), "create other family")
	mustNil(t, f.s.RevokeRefreshToken(ctx, ar.ID), "revoke family")
	_, err = f.s.GetRefreshTokenSession(ctx, "rt-2", oidc.NewSession())
	mustBe(t, err, fosite.ErrInactiveToken, "family member after revocation")
	_, err = f.s.GetRefreshTokenSession(ctx, "rt-other", oidc.NewSession())
	mustNil(t, err, "another family is untouched")

	mustNil(t, f.s.DeleteRefreshTokenSession(ctx, "rt-2"), "delete")
	_, err = f.s.GetRefreshTokenSession(ctx, "rt-2", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get deleted")
}

func testFositeAccessToken(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	c := &accesstoken.Claims{ClientID: f.client.ID, Scope: "openid", GrantID: ar.ID}
	c.Subject = "citizen-1"
	c.SetExpiry(f.clock.Now().Add(f.life.AccessToken))
	tok, err := f.issuer.Sign(ctx, c)
	mustNil(t, err, "sign")
	mustNil(t, f.s.CreateAccessTokenSession(ctx, tok, ar), "create")
	got, err := f.s.GetAccessTokenSession(ctx, tok, oidc.NewSession())
	mustNil(t, err, "get")
	equal(t, got.GetID(), ar.ID, "grant id")
	equal(t, got.GetSession().GetSubject(), "citizen-1", "subject")
	mustNil(t, f.s.RevokeAccessToken(ctx, ar.ID), "revoke")
	_, err = f.s.GetAccessTokenSession(ctx, tok, oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get revoked")
	_, err = f.s.GetAccessTokenSession(ctx, tok+"x", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get tampered")
}

func testFositeClient(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	c, err := f.s.GetClient(ctx, f.client.ID)
	mustNil(t, err, "get")
	equal(t, c.GetRedirectURIs(), f.client.RedirectURIs, "redirect uris")
	equal(t, c.IsPublic(), false, "public")
	_, err = f.s.GetClient(ctx, "nobody")
	mustBe(t, err, fosite.ErrNotFound, "unknown client")
}

func testFositeJTI(t *testing.T, f *fositeFixture) {
	// jtis are remembered per client: the client authentication strategy
	// names the client in the context.
	ctx := oidc.WithAssertingClient(context.Background(), f.client.ID)
	exp := f.clock.Now().Add(time.Minute)
	// ClientAssertionJWTValid is only fosite's pre-check; the atomic Set is
	// what refuses a replay.
	mustNil(t, f.s.ClientAssertionJWTValid(ctx, "jti-1"), "unknown jti")
	mustNil(t, f.s.SetClientAssertionJWT(ctx, "jti-1", exp), "set")
	mustBe(t, f.s.SetClientAssertionJWT(ctx, "jti-1", exp), fosite.ErrJTIKnown, "set twice")
	other := oidc.WithAssertingClient(context.Background(), f.client.ID+"-other")
	mustNil(t, f.s.SetClientAssertionJWT(other, "jti-1", exp), "same jti, another client")
	if err := f.s.SetClientAssertionJWT(context.Background(), "jti-2", exp); err == nil {
		t.Error("a jti without a client was remembered")
	}
	far := f.clock.Now().Add(oidc.MaxAssertionLifetime + time.Minute)
	mustBe(t, f.s.SetClientAssertionJWT(ctx, "jti-far", far), fosite.ErrInvalidClient, "exp beyond MaxAssertionLifetime")
	errs := runConcurrently(20, func(int) error { return f.s.SetClientAssertionJWT(ctx, "jti-race", exp) })
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent uses of one jti succeeded, want 1", wins, len(errs))
	}
}

func randomKey() string { return rand.Text() }
