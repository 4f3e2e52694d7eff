package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
)

// authorizeURL builds a fresh code+PKCE request and returns it with its
// state, nonce and verifier.
func authorizeURL(r *rp, extra ...oauth2.AuthCodeOption) (u, state, nonce, verifier string) {
	state, nonce, verifier = randomString(12), randomString(12), oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}, extra...)
	return r.conf.AuthCodeURL(state, opts...), state, nonce, verifier
}

// showsLoginPage reports whether GET u answers with the QR login page (a new
// approval is needed) rather than a redirect.
func (b *browser) showsLoginPage(t *testing.T, u string) bool {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && strings.Contains(string(body), `id="eid-qr"`)
}

func TestStepUpAndPrompt(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	b := newBrowser()

	// prompt=none without a session cannot show a page: login_required.
	u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("prompt", "none"))
	if loc := b.follow(t, u); loc.Query().Get("error") != "login_required" || loc.Query().Get("iss") != e.issuer {
		t.Fatalf("prompt=none without session: %v", loc)
	}

	// The first login is approved at substantial: the activation level.
	sub := e.enroll(demoCitizens[1].PersonalID, idp.LevelSubstantial)
	e.codeFlow(r, b, sub)

	u, _, _, _ = authorizeURL(r)
	if b.showsLoginPage(t, u) {
		t.Error("a second login within the session asked the app again")
	}
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("prompt", "login"))
	if !b.showsLoginPage(t, u) {
		t.Error("prompt=login did not ask the app")
	}
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("prompt", "consent"))
	if !b.showsLoginPage(t, u) {
		t.Error("prompt=consent did not ask the app")
	}
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("prompt", "none login"))
	if loc := b.follow(t, u); loc.Query().Get("error") != "invalid_request" {
		t.Errorf("prompt=none combined with login: %v", loc)
	}
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)))
	if !b.showsLoginPage(t, u) {
		t.Error("acr_values above the session's level did not ask the app")
	}
	time.Sleep(1100 * time.Millisecond)
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("max_age", "1"))
	if !b.showsLoginPage(t, u) {
		t.Error("max_age exceeded did not ask the app")
	}

	// A device enrolled at substantial cannot approve a login that needs high.
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)), oauth2.SetAuthURLParam("prompt", "login"))
	payload, _ := newBrowser().loginPage(t, u)
	if _, err := sub.Approve(context.Background(), payload, pick(payload), false, nil); err == nil {
		t.Error("a substantial device approved a high-level login")
	}

	// The same request approved by a high device reaches high.
	hb := newBrowser()
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)))
	_, idt := e.exchange(r, e.login(hb, u, e.app, nil), state, nonce, verifier)
	var c struct {
		ACR string `json:"acr"`
	}
	_ = idt.Claims(&c)
	if c.ACR != string(idp.LevelHigh) {
		t.Errorf("acr = %q, want high", c.ACR)
	}
}

// TestEssentialACR: an essential acr in the claims parameter (OIDC Core
// 5.5.1.1) is a requirement, not a preference: a session below it steps up,
// a device below it cannot approve, and a level OneDoor does not have is
// refused instead of answered with a lower acr.
func TestEssentialACR(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	essential := func(values ...string) oauth2.AuthCodeOption {
		b, _ := json.Marshal(map[string]any{"id_token": map[string]any{"acr": map[string]any{"essential": true, "values": values}}})
		return oauth2.SetAuthURLParam("claims", string(b))
	}
	b := newBrowser()
	sub := e.enroll(demoCitizens[1].PersonalID, idp.LevelSubstantial)
	e.codeFlow(r, b, sub) // a session at substantial

	u, _, _, _ := authorizeURL(r, essential(string(idp.LevelHigh)))
	if !b.showsLoginPage(t, u) {
		t.Fatal("an essential high acr was answered from a substantial session")
	}
	payload, _ := newBrowser().loginPage(t, u)
	if _, err := sub.Approve(context.Background(), payload, pick(payload), false, nil); err == nil {
		t.Error("a substantial device approved a login whose essential acr is high")
	}
	// Either listed level satisfies: the substantial session does.
	u, _, _, _ = authorizeURL(r, essential(string(idp.LevelSubstantial), string(idp.LevelHigh)))
	if b.showsLoginPage(t, u) {
		t.Error("an essential acr listing the session's level asked the app again")
	}
	// A voluntary acr is a preference: no step-up forced by it alone.
	vol, _ := json.Marshal(map[string]any{"id_token": map[string]any{"acr": map[string]any{"values": []string{string(idp.LevelHigh)}}}})
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("claims", string(vol)))
	if b.showsLoginPage(t, u) {
		t.Error("a voluntary acr asked the app again")
	}
	// A level OneDoor does not have cannot be met: an error, not a login.
	u, _, _, _ = authorizeURL(r, essential("urn:example:loa:4"))
	if loc := b.follow(t, u); loc.Query().Get("error") != "unmet_authentication_requirements" || loc.Query().Get("iss") != e.issuer {
		t.Errorf("unknown essential acr: %v", loc)
	}
	// High through the app with a high device.
	hb := newBrowser()
	u, state, nonce, verifier := authorizeURL(r, essential(string(idp.LevelHigh)))
	_, idt := e.exchange(r, e.login(hb, u, e.app, nil), state, nonce, verifier)
	var c struct {
		ACR string `json:"acr"`
	}
	_ = idt.Claims(&c)
	if c.ACR != string(idp.LevelHigh) {
		t.Errorf("acr = %q, want high", c.ACR)
	}
}

func TestOnlySharedClaimsAreReleased(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile phone eid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", "phone", "eid")
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r)
	// personal_id is essential for the eid scope; the citizen keeps the rest.
	tok, _ := e.exchange(r, e.login(b, u, e.app, []string{"personal_id", "name"}), state, nonce, verifier)
	ui, err := r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = ui.Claims(&got)
	if got["name"] == nil || got["personal_id"] == nil || got["phone_number"] != nil || got["birthdate"] != nil {
		t.Errorf("userinfo = %v, want only sub, name and personal_id", got)
	}
	// Refusing an essential claim cannot be an approval.
	u, _, _, _ = authorizeURL(r)
	payload, _ := newBrowser().loginPage(t, u)
	// The app is told what this citizen already agreed to share here.
	view, err := e.app.Fetch(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(view.Agreed, ",") != "name,personal_id" {
		t.Errorf("agreed = %v, want the claims shared last time", view.Agreed)
	}
	if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, []string{"name"}); err == nil {
		t.Error("approval without the essential personal_id was accepted")
	}
	// Silent SSO releases no more than was agreed.
	u, state, nonce, verifier = authorizeURL(r)
	tok, _ = e.exchange(r, b.follow(t, u), state, nonce, verifier)
	ui, _ = r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	got = nil
	_ = ui.Claims(&got)
	if got["phone_number"] != nil {
		t.Errorf("SSO released an unshared claim: %v", got)
	}
}

func TestDeniedLogin(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	b := newBrowser()
	u, state, _, _ := authorizeURL(r)
	payload, statusURL := b.loginPage(t, u)
	if _, err := e.app.Approve(context.Background(), payload, pick(payload), true, nil); err != nil {
		t.Fatal(err)
	}
	st, next := b.status(t, statusURL)
	if st != "denied" {
		t.Fatalf("status = %q", st)
	}
	loc := b.follow(t, next)
	if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != state || loc.Query().Get("iss") != e.issuer {
		t.Errorf("denied login redirect = %v", loc)
	}
	// The answer cannot be changed afterwards.
	if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, nil); err == nil {
		t.Error("a decided login request accepted a second answer")
	}
	// Another browser cannot pick up this login.
	other := newBrowser()
	_, next2 := other.status(t, statusURL)
	resp, err := other.Get(next2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusGone {
		t.Errorf("a foreign browser continuing the login got %d", resp.StatusCode)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestLogout(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile", PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	b := newBrowser()
	tok, _ := e.codeFlow(r, b, e.app)
	hint, _ := tok.Extra("id_token").(string)

	bad := e.issuer + "/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:9/elsewhere"}}.Encode()
	if resp, _ := b.Get(bad); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unregistered post_logout_redirect_uri: status %d", resp.StatusCode)
	}
	// Without id_token_hint a GET only asks for confirmation.
	resp, err := b.Get(e.issuer + "/logout")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("logout without hint: status %d, no confirmation form", resp.StatusCode)
	}
	u, _, _, _ := authorizeURL(r)
	if b.showsLoginPage(t, u) {
		t.Fatal("the confirmation page logged the citizen out")
	}
	// A cross-site POST without the token does not log out either.
	resp, _ = b.PostForm(e.issuer+"/logout", url.Values{"csrf": {"forged"}})
	resp.Body.Close()
	if b.showsLoginPage(t, u) {
		t.Fatal("a forged confirmation logged the citizen out")
	}

	good := e.issuer + "/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"s1"}}.Encode()
	loc := b.follow(t, good)
	if loc.String() != "http://127.0.0.1:9/bye?state=s1" {
		t.Errorf("logout redirect = %v", loc)
	}
	u, _, _, _ = authorizeURL(r)
	if !b.showsLoginPage(t, u) {
		t.Error("after logout the session still logs in silently")
	}
	// The confirmation form works too.
	e.codeFlow(r, b, e.app)
	resp, _ = b.Get(e.issuer + "/logout")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	m = csrfRE.FindSubmatch(body)
	resp, _ = b.PostForm(e.issuer+"/logout", url.Values{"csrf": {string(m[1])}})
	resp.Body.Close()
	u, _, _, _ = authorizeURL(r)
	if !b.showsLoginPage(t, u) {
		t.Error("confirmed logout did not end the session")
	}
}

func TestKeyRotation(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile", PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	b := newBrowser()
	tok, _ := e.codeFlow(r, b, e.app)
	oldHint, _ := tok.Extra("id_token").(string)
	oldKID := kidOf(t, oldHint)

	jwks := fetchJWKS(t, e.issuer)
	if len(jwks) < 4 {
		t.Fatalf("JWKS has %d keys, want active and next per algorithm", len(jwks))
	}
	next, err := e.m.Keys.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var nextKID string
	for _, k := range next {
		if k.Alg == keyset.ES256 && k.State == idp.KeyNext {
			nextKID = k.ID
		}
	}
	if !contains(jwks, nextKID) {
		t.Fatal("the next key is not published before it signs")
	}
	if _, err := e.m.Keys.Rotate(context.Background(), keyset.ES256, true); err != nil {
		t.Fatal(err)
	}
	// A fresh relying party (no cached keys) gets tokens from the new key.
	r2 := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	tok2, _ := e.codeFlow(r2, newBrowser(), e.app)
	newHint, _ := tok2.Extra("id_token").(string)
	if got := kidOf(t, newHint); got != nextKID {
		t.Errorf("after rotation tokens are signed by %s, want the published next key %s", got, nextKID)
	}
	if jwks = fetchJWKS(t, e.issuer); !contains(jwks, oldKID) {
		t.Error("the retired key was unpublished while its tokens live")
	}
	// Logout with an id_token_hint signed by the retired key still works.
	loc := b.follow(t, e.issuer+"/logout?"+url.Values{"id_token_hint": {oldHint}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}}.Encode())
	if loc.Path != "/bye" {
		t.Errorf("logout with the old key's hint: %v", loc)
	}
	// Userinfo still accepts the access token signed before the rotation.
	if _, err := r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err != nil {
		t.Errorf("pre-rotation access token rejected: %v", err)
	}
}

func TestRS256Client(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid", IDTokenAlg: "RS256", AuthMethod: idp.AuthSecretPost})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	r.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	r.verifier = r.provider.Verifier(&gooidc.Config{ClientID: id, SupportedSigningAlgs: []string{"RS256"}})
	tok, _ := e.codeFlow(r, newBrowser(), e.app)
	raw, _ := tok.Extra("id_token").(string)
	if alg := headerOf(t, raw)["alg"]; alg != "RS256" {
		t.Errorf("alg = %v", alg)
	}
}

func TestLoginRequestsAreRateLimited(t *testing.T) {
	e := startMain(t, func(c *Config) { c.LoginRateLimit = 3 })
	id, secret := e.client(ClientSpec{Scope: "openid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	b := newBrowser()
	for i := range 3 {
		u, _, _, _ := authorizeURL(r)
		if !b.showsLoginPage(t, u) {
			t.Fatalf("login %d refused below the limit", i+1)
		}
	}
	u, _, _, _ := authorizeURL(r)
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("over the limit: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestDeviceRevocation(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	second := e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)

	// The citizen revokes the first phone from the second one.
	ds, err := second.Devices(context.Background())
	if err != nil || len(ds) != 2 {
		t.Fatalf("devices = %v, %v", ds, err)
	}
	if err := second.RevokeDevice(context.Background(), e.app.Enrollment().DeviceID); err != nil {
		t.Fatalf("revoke from the app: %v", err)
	}
	u, _, _, _ := authorizeURL(r)
	payload, _ := newBrowser().loginPage(t, u)
	if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, nil); err == nil {
		t.Error("a revoked device approved a login")
	}
	if _, err := second.Approve(context.Background(), payload, pick(payload), false, nil); err != nil {
		t.Errorf("the remaining device cannot approve: %v", err)
	}

	// An operator revokes the second phone with the admin command.
	code, _, errs := cli(t, nil, "citizen", "revoke-device", "--data-dir", e.m.Config.DataDir, "--id", demoCitizens[0].PersonalID, "--device", second.Enrollment().DeviceID)
	if code != 0 {
		t.Fatalf("revoke-device: %s", errs)
	}
	u, _, _, _ = authorizeURL(r)
	payload, _ = newBrowser().loginPage(t, u)
	if _, err := second.Approve(context.Background(), payload, pick(payload), false, nil); err == nil {
		t.Error("a device revoked by the operator approved a login")
	}
}
