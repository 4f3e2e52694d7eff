package idptest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
	store  idp.Store
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
		{"RefreshGraceNoFork", testFositeRefreshGraceNoFork},
		{"RefreshOlderTokenReuse", testFositeRefreshOlderToken},
		{"RefreshConcurrentRedemption", testFositeRefreshConcurrent},
		{"RefreshDeviceRevocation", testFositeRefreshDevice},
		{"AuthorizeCodeRestoreAfterOutage", testFositeCodeRestore},
		{"PARSingleUseConcurrent", testFositePARConcurrent},
		{"PARRestoreAfterOutage", testFositePARRestore},
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
			verifier := accesstoken.NewVerifier(fositeIssuer, keys, b.Store, 30*time.Second, clock.Now)
			c := &idp.Client{ID: "agency", Name: "Agency", RedirectURIs: []string{"https://agency.example/cb"},
				GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"},
				AuthMethod: idp.AuthSecretBasic, SecretHash: []byte("h"), IDTokenAlg: "ES256"}
			mustNil(t, b.Store.CreateClient(context.Background(), c), "create client")
			f := &fositeFixture{
				s:      oidc.NewStorage(b.Store, b.Eph, verifier, life, clock.Now),
				store:  b.Store,
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

// testFositePKCE: the PKCE record is the code's record (one write per
// login); it is read while the code is live and absent without a challenge.
func testFositePKCE(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	mustNil(t, f.s.CreateAuthorizeCodeSession(ctx, "sig-p", ar), "create code")
	mustNil(t, f.s.CreatePKCERequestSession(ctx, "sig-p", ar), "create")
	got, err := f.s.GetPKCERequestSession(ctx, "sig-p", oidc.NewSession())
	mustNil(t, err, "get")
	equal(t, got.GetRequestForm().Get("code_challenge"), "abc", "challenge")
	mustNil(t, f.s.DeletePKCERequestSession(ctx, "sig-p"), "delete")
	mustNil(t, f.s.InvalidateAuthorizeCodeSession(ctx, "sig-p"), "invalidate code")
	_, err = f.s.GetPKCERequestSession(ctx, "sig-p", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get after the code was used")

	plain := f.request(t)
	plain.Form.Del("code_challenge")
	mustNil(t, f.s.CreateAuthorizeCodeSession(ctx, "sig-p2", plain), "create code without PKCE")
	_, err = f.s.GetPKCERequestSession(ctx, "sig-p2", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get without a challenge")
	_, err = f.s.GetPKCERequestSession(ctx, "unknown", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get unknown")
}

// testFositeOpenID: the OpenID Connect record is the code's record, looked up
// by the code (key.signature); fosite reads it after invalidating the code in
// the same exchange, so a used code's record still answers.
func testFositeOpenID(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	code := "key-o.sig-o"
	mustNil(t, f.s.CreateAuthorizeCodeSession(ctx, "sig-o", ar), "create code")
	mustNil(t, f.s.CreateOpenIDConnectSession(ctx, code, ar), "create")
	got, err := f.s.GetOpenIDConnectSession(ctx, code, ar)
	mustNil(t, err, "get")
	sameRequest(t, got, ar, "get")
	mustNil(t, f.s.InvalidateAuthorizeCodeSession(ctx, "sig-o"), "invalidate code")
	got, err = f.s.GetOpenIDConnectSession(ctx, code, ar)
	mustNil(t, err, "get after invalidation")
	sameRequest(t, got, ar, "get after invalidation")
	mustNil(t, f.s.DeleteOpenIDConnectSession(ctx, code), "delete")

	for _, c := range []string{"unknown.sig", "no-signature", ""} {
		_, err = f.s.GetOpenIDConnectSession(ctx, c, ar)
		mustBe(t, err, openid.ErrNoSessionFound, "get "+c)
	}
	// Without the openid scope fosite keeps no OpenID Connect record.
	oauthOnly := f.request(t)
	oauthOnly.GrantedScope = fosite.Arguments{"offline_access"}
	mustNil(t, f.s.CreateAuthorizeCodeSession(ctx, "sig-o2", oauthOnly), "create oauth code")
	_, err = f.s.GetOpenIDConnectSession(ctx, "key.sig-o2", ar)
	mustBe(t, err, openid.ErrNoSessionFound, "get without openid")
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
	_, err = f.s.GetPARSession(ctx, uri)
	mustBe(t, err, fosite.ErrNotFound, "get a used request_uri")
	mustNil(t, f.s.DeletePARSession(ctx, uri), "delete after use")
}

// testFositePARConcurrent: two replicas (or two tabs) present one
// request_uri at once; exactly one gets the pushed request.
func testFositePARConcurrent(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	ar.RedirectURI, _ = url.Parse("https://agency.example/cb")
	ar.ResponseTypes = fosite.Arguments{"code"}
	uri := "urn:ietf:params:oauth:request_uri:" + randomKey()
	mustNil(t, f.s.CreatePARSession(ctx, uri, ar), "create")
	errs := runConcurrently(16, func(int) error {
		_, err := f.s.GetPARSession(ctx, uri)
		return err
	})
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, fosite.ErrNotFound):
			t.Errorf("losing use of a request_uri: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent uses of one request_uri succeeded, want 1", wins, len(errs))
	}
}

// testFositePARRestore: an /authorize that took a pushed request and then
// failed on an outage puts it back, so the browser's retry works; a use that
// did not fail spends it.
func testFositePARRestore(t *testing.T, f *fositeFixture) {
	bg := context.Background()
	ar := f.request(t)
	ar.RedirectURI, _ = url.Parse("https://agency.example/cb")
	ar.ResponseTypes = fosite.Arguments{"code"}
	uri := "urn:ietf:params:oauth:request_uri:" + randomKey()
	mustNil(t, f.s.CreatePARSession(bg, uri, ar), "create")
	ctx := oidc.WithRequestMemo(bg)
	_, err := f.s.GetPARSession(ctx, uri)
	mustNil(t, err, "take")
	mustNil(t, oidc.RestoreAfterOutage(ctx), "restore")
	_, err = f.s.GetPARSession(oidc.WithRequestMemo(bg), uri)
	mustNil(t, err, "use after the failed attempt")
	_, err = f.s.GetPARSession(oidc.WithRequestMemo(bg), uri)
	mustBe(t, err, fosite.ErrNotFound, "use after a successful one")
}

// redeem does what fosite's refresh handler does with the storage in one
// request: read the presented token, rotate it, store the child.
func (f *fositeFixture) redeem(t *testing.T, presented, child string) error {
	t.Helper()
	ctx := oidc.WithRequestMemo(context.Background())
	r, err := f.s.GetRefreshTokenSession(ctx, presented, oidc.NewSession())
	if err != nil {
		return err
	}
	if err := f.s.RotateRefreshToken(ctx, r.GetID(), presented); err != nil {
		return err
	}
	return f.s.CreateRefreshTokenSession(ctx, child, "at", r)
}

// usable reports whether a refresh token would be accepted now.
func (f *fositeFixture) usable(sig string) bool {
	_, err := f.s.GetRefreshTokenSession(context.Background(), sig, oidc.NewSession())
	return err == nil
}

func testFositeRefresh(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	ar.Session.(*oidc.Session).DeviceID = "phone-1"
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "rt-1", "at", ar), "create rt-1")
	got, err := f.s.GetRefreshTokenSession(ctx, "rt-1", oidc.NewSession())
	mustNil(t, err, "get")
	sameRequest(t, got, ar, "get")

	// Rotation: the old token stays usable for the grace window only.
	mustNil(t, f.redeem(t, "rt-1", "rt-2"), "redeem rt-1")
	if !f.usable("rt-1") || !f.usable("rt-2") {
		t.Fatal("parent within grace or child not usable")
	}
	f.clock.Advance(f.life.RefreshGrace + time.Second)
	got, err = f.s.GetRefreshTokenSession(ctx, "rt-1", oidc.NewSession())
	mustBe(t, err, fosite.ErrInactiveToken, "rotated token after grace")
	sameRequest(t, got, ar, "inactive token still returns its request")
	mustBe(t, f.redeem(t, "rt-1", "rt-x"), fosite.ErrInactiveToken, "redeem parent after grace")
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

	// fosite's reuse path deletes the presented token first: the family
	// stays, revoked.
	mustNil(t, f.s.DeleteRefreshTokenSession(ctx, "rt-other"), "delete on reuse")
	_, err = f.s.GetRefreshTokenSession(ctx, "rt-other", oidc.NewSession())
	mustBe(t, err, fosite.ErrInactiveToken, "get after delete on reuse")
	mustNil(t, f.s.DeleteRefreshTokenSession(ctx, "rt-unknown"), "delete unknown")
}

// testFositeRefreshGraceNoFork: a client that lost the response redeems the
// parent again within the grace window. It gets a new child and the child of
// the first redemption dies: never two live children, at most one usable
// token besides the parent in its window.
func testFositeRefreshGraceNoFork(t *testing.T, f *fositeFixture) {
	ar := f.request(t)
	mustNil(t, f.s.CreateRefreshTokenSession(context.Background(), "p", "at", ar), "create")
	mustNil(t, f.redeem(t, "p", "c1"), "first redemption")
	f.clock.Advance(f.life.RefreshGrace / 2)
	mustNil(t, f.redeem(t, "p", "c2"), "second redemption within grace")
	if f.usable("c1") {
		t.Fatal("the first child is still usable after the parent was redeemed again: the family forked")
	}
	mustBe(t, f.redeem(t, "c1", "c1-child"), fosite.ErrNotFound, "redeem the dead first child")
	if !f.usable("c2") {
		t.Fatal("the second child is not usable")
	}
	// The grace window counts from the first redemption and is not stretched.
	f.clock.Advance(f.life.RefreshGrace/2 + time.Second)
	mustBe(t, f.redeem(t, "p", "c3"), fosite.ErrInactiveToken, "parent after the window")
	// The second child rotates normally.
	mustNil(t, f.redeem(t, "c2", "c4"), "redeem the live child")
	if f.usable("p") || !f.usable("c2") || !f.usable("c4") {
		t.Fatal("after rotating c2: want c2 (in grace) and c4 usable, p not")
	}
}

// testFositeRefreshOlderToken: a token older than the family's previous
// one (or the child that died when its parent was redeemed again) is
// recognised by the family its signature names and reads as reused, so
// fosite revokes the family. Signatures name their family as the strategy
// makes them: request ID "." MAC.
func testFositeRefreshOlderToken(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	sig := func(s string) string { return ar.ID + "." + s }
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, sig("a"), "at", ar), "create")
	mustNil(t, f.redeem(t, sig("a"), sig("b")), "redeem a")
	mustNil(t, f.redeem(t, sig("b"), sig("c")), "redeem b")
	got, err := f.s.GetRefreshTokenSession(ctx, sig("a"), oidc.NewSession())
	mustBe(t, err, fosite.ErrInactiveToken, "a token two rotations old")
	sameRequest(t, got, ar, "an older token returns its family's request")
	// What fosite does on reuse: delete the presented token, revoke the family.
	mustNil(t, f.s.DeleteRefreshTokenSession(ctx, sig("a")), "delete the reused token")
	_, err = f.s.GetRefreshTokenSession(ctx, sig("c"), oidc.NewSession())
	mustBe(t, err, fosite.ErrInactiveToken, "current token after an older one was reused")

	// A signature naming a family that does not exist is just unknown.
	_, err = f.s.GetRefreshTokenSession(ctx, "no-such-family.x", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "a token of an unknown family")
}

// testFositeRefreshConcurrent: replicas redeem one token at once (a client
// retrying on a timeout, or a thief racing its owner). Afterwards at most
// one child is live.
func testFositeRefreshConcurrent(t *testing.T, f *fositeFixture) {
	ar := f.request(t)
	mustNil(t, f.s.CreateRefreshTokenSession(context.Background(), "p", "at", ar), "create")
	const n = 16
	errs := runConcurrently(n, func(i int) error { return f.redeem(t, "p", fmt.Sprintf("c-%d", i)) })
	for _, err := range errs {
		if err != nil && !errors.Is(err, fosite.ErrNotFound) {
			t.Errorf("concurrent redemption: %v", err)
		}
	}
	live := 0
	for i := range n {
		if f.usable(fmt.Sprintf("c-%d", i)) {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d live children after %d concurrent redemptions of one token, want 1", live, n)
	}
}

// testFositeRefreshDevice: revoking the device that approved a grant stops
// its refresh tokens.
func testFositeRefreshDevice(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	mine, theirs := f.request(t), f.request(t)
	mine.Session.(*oidc.Session).DeviceID = "stolen-phone"
	theirs.Session.(*oidc.Session).DeviceID = "other-phone"
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "mine", "at", mine), "create")
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "theirs", "at", theirs), "create")
	mustNil(t, f.redeem(t, "mine", "mine-2"), "rotate")
	mustNil(t, f.store.RevokeDeviceRefreshTokens(ctx, "stolen-phone"), "revoke device")
	for _, sig := range []string{"mine", "mine-2"} {
		_, err := f.s.GetRefreshTokenSession(ctx, sig, oidc.NewSession())
		mustBe(t, err, fosite.ErrInactiveToken, sig+" after its device was revoked")
	}
	if !f.usable("theirs") {
		t.Fatal("another device's grant was revoked")
	}
}

// testFositeCodeRestore: a code exchange that failed on an outage after it
// took the code puts the code (whose record is also its PKCE and OpenID
// sessions) back, and removes the refresh family it created, so a retry is
// not code reuse.
func testFositeCodeRestore(t *testing.T, f *fositeFixture) {
	ar := f.request(t)
	bg := context.Background()
	mustNil(t, f.s.CreateAuthorizeCodeSession(bg, "code-r", ar), "create code")
	mustNil(t, f.s.CreatePKCERequestSession(bg, "code-r", ar), "create pkce")
	mustNil(t, f.s.CreateOpenIDConnectSession(bg, "key.code-r", ar), "create oidc")

	ctx := oidc.WithRequestMemo(bg)
	mustNil(t, f.s.DeletePKCERequestSession(ctx, "code-r"), "take pkce")
	mustNil(t, f.s.InvalidateAuthorizeCodeSession(ctx, "code-r"), "invalidate")
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "rt-r", "at", ar), "create refresh")
	mustNil(t, f.s.DeleteOpenIDConnectSession(ctx, "key.code-r"), "take oidc")
	mustNil(t, oidc.RestoreAfterOutage(ctx), "restore")

	_, err := f.s.GetAuthorizeCodeSession(bg, "code-r", oidc.NewSession())
	mustNil(t, err, "code after restore (reuse would revoke)")
	_, err = f.s.GetPKCERequestSession(bg, "code-r", oidc.NewSession())
	mustNil(t, err, "pkce after restore")
	_, err = f.s.GetOpenIDConnectSession(bg, "key.code-r", ar)
	mustNil(t, err, "oidc session after restore")
	_, err = f.s.GetRefreshTokenSession(bg, "rt-r", oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "refresh token of the failed exchange")

	// The retry goes through and the code is then spent as usual.
	ctx = oidc.WithRequestMemo(bg)
	mustNil(t, f.s.InvalidateAuthorizeCodeSession(ctx, "code-r"), "invalidate on retry")
	mustNil(t, f.s.CreateRefreshTokenSession(ctx, "rt-r2", "at", ar), "create refresh on retry")
	_, err = f.s.GetAuthorizeCodeSession(bg, "code-r", oidc.NewSession())
	mustBe(t, err, fosite.ErrInvalidatedAuthorizeCode, "code after a successful retry")
}

func testFositeAccessToken(t *testing.T, f *fositeFixture) {
	ctx := context.Background()
	ar := f.request(t)
	sign := func() string {
		c := &accesstoken.Claims{ClientID: f.client.ID, Scope: "openid", GrantID: ar.ID, Kind: accesstoken.KindCitizen, DeviceID: "device-1"}
		c.Subject = "citizen-1"
		c.Audience = []string{fositeIssuer + "/userinfo"}
		c.SetExpiry(f.clock.Now().Add(f.life.AccessToken))
		tok, err := f.issuer.Sign(ctx, c)
		mustNil(t, err, "sign")
		return tok
	}
	tok := sign()
	mustNil(t, f.s.CreateAccessTokenSession(ctx, tok, ar), "create")
	got, err := f.s.GetAccessTokenSession(ctx, tok, oidc.NewSession())
	mustNil(t, err, "get")
	equal(t, got.GetID(), ar.ID, "grant id")
	equal(t, got.GetSession().GetSubject(), "citizen-1", "subject")
	equal(t, []string(got.GetGrantedAudience()), []string{fositeIssuer + "/userinfo"}, "audience")
	if s, ok := got.GetSession().(*oidc.Session); !ok || s.DeviceID != "device-1" {
		t.Errorf("session %T lost the device id", got.GetSession())
	}
	mustNil(t, f.s.RevokeAccessToken(ctx, ar.ID), "revoke")
	_, err = f.s.GetAccessTokenSession(ctx, tok, oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get revoked")
	// The grant stays revoked: a token of it minted afterwards is refused too.
	_, err = f.s.GetAccessTokenSession(ctx, sign(), oidc.NewSession())
	mustBe(t, err, fosite.ErrNotFound, "get a later token of the revoked grant")
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
