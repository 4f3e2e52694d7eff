package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sso"
)

// Sessions and back-channel logout (OIDC Back-Channel Logout 1.0): an RP
// registered with a back-channel logout URI receives a verifiable logout
// token for every session that logged in to it and ended, whether by
// RP-initiated logout, the account page, a device revocation or a lock.

// bclRP is a relying party's back-channel logout endpoint that verifies
// every logout token as section 2.6 asks: signature by the IdP's JWKS, iss,
// aud, exp (go-oidc), typ logout+jwt, the event, no nonce, sid and sub.
type bclRP struct {
	t      *testing.T
	srv    *httptest.Server
	issuer string
	client string
	mu     sync.Mutex
	got    []bclToken
	bad    []string
}

type bclToken struct {
	SID     string                     `json:"sid"`
	Subject string                     `json:"sub"`
	Events  map[string]json.RawMessage `json:"events"`
	Nonce   *string                    `json:"nonce"`
	JTI     string                     `json:"jti"`
}

func newBCLRP(t *testing.T) *bclRP {
	rp := &bclRP{t: t}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := rp.verify(r)
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if err != nil {
			rp.bad = append(rp.bad, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rp.got = append(rp.got, *tok)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rp.srv.Close)
	return rp
}

func (rp *bclRP) url() string { return rp.srv.URL + "/backchannel-logout" }

func (rp *bclRP) verify(r *http.Request) (*bclToken, error) {
	raw := r.PostFormValue("logout_token")
	ctx := r.Context()
	v := gooidc.NewVerifier(rp.issuer, gooidc.NewRemoteKeySet(ctx, rp.issuer+"/.well-known/jwks.json"),
		&gooidc.Config{ClientID: rp.client, SupportedSigningAlgs: []string{"ES256", "RS256"}})
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.SplitN(raw, ".", 2)[0])
	var h struct {
		Typ string `json:"typ"`
	}
	if json.Unmarshal(hdr, &h) != nil || h.Typ != "logout+jwt" {
		return nil, fmt.Errorf("typ %q", h.Typ)
	}
	var c bclToken
	if err := idt.Claims(&c); err != nil {
		return nil, err
	}
	if ev, ok := c.Events[sso.BackchannelLogoutEvent]; !ok || string(ev) != "{}" {
		return nil, fmt.Errorf("events %s", c.Events)
	}
	if c.Nonce != nil {
		return nil, fmt.Errorf("nonce in a logout token")
	}
	if c.SID == "" || c.Subject == "" || c.JTI == "" {
		return nil, fmt.Errorf("sid, sub or jti missing")
	}
	return &c, nil
}

// waitSID waits for a logout token naming sid and returns how many were
// received for it.
func (rp *bclRP) waitSID(t *testing.T, sid string) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rp.mu.Lock()
		n := 0
		for _, g := range rp.got {
			if g.SID == sid {
				n++
			}
		}
		bad := append([]string(nil), rp.bad...)
		rp.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("the RP refused logout tokens: %v", bad)
		}
		if n > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("no back-channel logout for sid %s", sid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (rp *bclRP) count() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.got)
}

// ssoFlow logs in to r by single sign-on: the browser's session answers
// /authorize without the app.
func (e *testEnv) ssoFlow(r *rp, b *browser) (*oauth2.Token, *gooidc.IDToken) {
	e.t.Helper()
	u, state, nonce, verifier := authorizeURL(r)
	return e.exchange(r, b.follow(e.t, u), state, nonce, verifier)
}

func sidOf(t *testing.T, idt *gooidc.IDToken) string {
	t.Helper()
	var c struct {
		SID string `json:"sid"`
	}
	if err := idt.Claims(&c); err != nil || c.SID == "" {
		t.Fatalf("ID token sid: %q %v", c.SID, err)
	}
	return c.SID
}

// bclClient registers a client with the receiver's back-channel logout URI.
func (e *testEnv) bclClient(t *testing.T, rp *bclRP, extra ClientSpec) (string, string) {
	extra.BackchannelLogoutURI = rp.url()
	if extra.Scope == "" {
		extra.Scope = "openid profile offline_access"
		extra.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	id, secret := e.client(extra)
	rp.issuer, rp.client = e.issuer, id
	return id, secret
}

func TestBackchannelLogout_Discovery(t *testing.T) {
	e := startMain(t)
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&d)
	if d["backchannel_logout_supported"] != true || d["backchannel_logout_session_supported"] != true {
		t.Errorf("discovery: backchannel_logout_supported %v, session %v", d["backchannel_logout_supported"], d["backchannel_logout_session_supported"])
	}
}

func TestBackchannelLogout_ClientRegistration(t *testing.T) {
	dir := migratedDir(t)
	for _, bad := range []string{"http://rp.example/bcl", "https://user:pw@rp.example/bcl", "https://rp.example/bcl#x", "rp.example/bcl"} {
		code, _, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "RP", "--redirect-uri", "https://rp.example/cb", "--backchannel-logout-uri", bad)
		if code == 0 || !strings.Contains(errs, "back-channel logout URI") {
			t.Errorf("--backchannel-logout-uri %q: exit %d %s, want refused", bad, code, errs)
		}
	}
	code, out, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "RP", "--redirect-uri", "https://rp.example/cb",
		"--backchannel-logout-uri", "https://rp.example/bcl", "--backchannel-logout-session-required")
	if code != 0 {
		t.Fatalf("client create: %s", errs)
	}
	var v map[string]any
	_ = json.Unmarshal([]byte(out), &v)
	if v["backchannel_logout_uri"] != "https://rp.example/bcl" || v["backchannel_logout_session_required"] != true {
		t.Errorf("client create printed %s", out)
	}
}

// RP-initiated logout with the session's ID token ends the session and every
// client it logged in to that registered a URI receives a logout token
// whose sid is the ID token's.
func TestBackchannelLogout_RPInitiated(t *testing.T) {
	e := startMain(t)
	rpA, rpB := newBCLRP(t), newBCLRP(t)
	idA, secretA := e.bclClient(t, rpA, ClientSpec{PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"}})
	idB, secretB := e.bclClient(t, rpB, ClientSpec{Scope: "openid", GrantTypes: []string{"authorization_code"}})
	idC, secretC := e.client(ClientSpec{Scope: "openid"}) // no back-channel URI
	b := newBrowser()
	tokA, idtA := e.codeFlow(e.rp(idA, secretA, gooidc.ScopeOpenID, "profile"), b, e.app)
	// B and C by single sign-on, in the same session.
	_, idtB := e.ssoFlow(e.rp(idB, secretB, gooidc.ScopeOpenID), b)
	_, _ = e.ssoFlow(e.rp(idC, secretC, gooidc.ScopeOpenID), b)
	sid := sidOf(t, idtA)
	if sidOf(t, idtB) != sid {
		t.Fatalf("single sign-on: sid %s then %s", sid, sidOf(t, idtB))
	}
	hint, _ := tokA.Extra("id_token").(string)
	_, redirect := logoutGET(t, b, e.issuer+"/logout?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}}.Encode())
	if !strings.HasPrefix(redirect, "http://127.0.0.1:9/bye") {
		t.Fatalf("logout redirected to %q", redirect)
	}
	if rpA.waitSID(t, sid) != 1 || rpB.waitSID(t, sid) != 1 {
		t.Error("a client received more than one logout token for the session")
	}
	// Logging out again (the same hint, replayed) sends nothing more.
	if resp, err := b.Get(e.issuer + "/logout?" + url.Values{"id_token_hint": {hint}}.Encode()); err == nil {
		resp.Body.Close()
	}
	time.Sleep(300 * time.Millisecond)
	if rpA.count() != 1 || rpB.count() != 1 {
		t.Errorf("after a replayed logout: %d and %d tokens, want 1 and 1", rpA.count(), rpB.count())
	}
	u, _, _, _ := authorizeURL(e.rp(idA, secretA, gooidc.ScopeOpenID))
	if !b.showsLoginPage(t, u) {
		t.Error("the browser is still signed in after logout")
	}
}

// `onedoor citizen lock` for a citizen who lost their phone: every device
// revoked, every session ended with back-channel logouts, every refresh
// token revoked, every access token refused.
func TestCitizenLock_SQLite(t *testing.T) {
	e := startMain(t)
	runCitizenLock(t, e, "--data-dir", e.m.Config.DataDir)
}

func TestCitizenLock_PostgresRedis(t *testing.T) {
	e := startMain(t, scaleOption(t))
	runCitizenLock(t, e, "--postgres-dsn", e.m.Config.PostgresDSN, "--master-key-file", e.m.Config.MasterKeyFile,
		"--redis-url", e.m.Config.RedisURL, "--redis-prefix", e.m.Config.RedisPrefix)
}

func runCitizenLock(t *testing.T, e *testEnv, storage ...string) {
	ctx := context.Background()
	pid := demoCitizens[0].PersonalID
	second := e.enroll(pid, idp.LevelHigh)
	rcv := newBCLRP(t)
	id, secret := e.bclClient(t, rcv, ClientSpec{})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	b1, b2 := newBrowser(), newBrowser()
	tok1, idt1 := e.codeFlow(r, b1, e.app)
	tok2, idt2 := e.codeFlow(r, b2, second)
	own, err := second.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another citizen is untouched.
	appB := e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh)
	bOther := newBrowser()
	tokOther, _ := e.codeFlow(r, bOther, appB)

	keys := liveEntries(t, e, idt1.Subject)
	args := append([]string{"citizen", "lock"}, storage...)
	args = append(args, "--personal-id", pid)
	code, out, errs := cli(t, nil, args...)
	if code != 0 {
		t.Fatalf("citizen lock: %d %s", code, errs)
	}
	var res LockResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.RevokedDevices) != 2 || res.EndedSessions != 2 || res.Subject != idt1.Subject {
		t.Fatalf("citizen lock printed %s (%v)", out, err)
	}
	for _, x := range []struct {
		what string
		tok  string
	}{{"first browser's access token", tok1.AccessToken}, {"second browser's access token", tok2.AccessToken}, {"the app's own access token", own.AccessToken}} {
		mustUserinfo(t, e.issuer, x.tok, false, "after lock: "+x.what)
	}
	for _, rt := range []string{tok1.RefreshToken, tok2.RefreshToken} {
		if _, err := refreshErr(r, rt); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Errorf("refresh after lock: %v, want invalid_grant", err)
		}
	}
	u, _, _, _ := authorizeURL(r)
	for _, b := range []*browser{b1, b2} {
		if !b.showsLoginPage(t, u) {
			t.Error("a browser is still signed in after the lock")
		}
	}
	mustEntriesGone(t, e, keys, "after citizen lock")
	for _, b := range []*browser{b1, b2} {
		if got := silentSSO(t, b, r); got != "login_required" {
			t.Errorf("silent SSO after the lock: %q, want login_required", got)
		}
	}
	rcv.waitSID(t, sidOf(t, idt1))
	rcv.waitSID(t, sidOf(t, idt2))
	if _, err := e.app.Login(ctx); err == nil {
		t.Error("a locked citizen's device obtained new tokens")
	}
	mustUserinfo(t, e.issuer, tokOther.AccessToken, true, "another citizen's access token")
	if bOther.showsLoginPage(t, u) {
		t.Error("another citizen's session ended")
	}
	// Locking again is harmless.
	if code, _, errs := cli(t, nil, args...); code != 0 {
		t.Fatalf("second lock: %s", errs)
	}
}

// The account page's devices, sessions and lock: the abuse cases first.
func TestAccount_DevicesSessionsLock_SQLite(t *testing.T) {
	runAccountDevicesSessionsLock(t, startMain(t))
}

func TestAccount_DevicesSessionsLock_PostgresRedis(t *testing.T) {
	runAccountDevicesSessionsLock(t, startMain(t, scaleOption(t)))
}

func runAccountDevicesSessionsLock(t *testing.T, e *testEnv) {
	pid := demoCitizens[0].PersonalID
	origin := map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"}
	rcv := newBCLRP(t)
	id, secret := e.bclClient(t, rcv, ClientSpec{Name: "Cổng dịch vụ"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	second := e.enroll(pid, idp.LevelSubstantial)
	b, other := newBrowser(), newBrowser()
	tok, idt := e.codeFlow(r, b, e.app)
	tokOther, idtOther := e.codeFlow(r, other, second)
	appB := e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh)
	bB := newBrowser()
	_, idtB := e.codeFlow(r, bB, appB)
	sid, sidOther, sidB := sidOf(t, idt), sidOf(t, idtOther), sidOf(t, idtB)

	v := b.account(t, e.issuer+"/account?lang=en")
	for _, want := range []string{`id="devices"`, `id="sessions"`, `id="lock-account"`, "Cổng dịch vụ", `data-session="` + sid + `"`,
		`data-session="` + sidOther + `"`, `data-device="` + e.app.Enrollment().DeviceID + `"`, "this browser"} {
		if !strings.Contains(v.body, want) {
			t.Fatalf("account page lacks %s", want)
		}
	}
	if strings.Contains(v.body, sidB) || strings.Contains(v.body, appB.Enrollment().DeviceID) {
		t.Fatal("the account page shows another citizen's session or device")
	}
	deviceURL := func(id string) string { return e.issuer + "/account/devices/" + url.PathEscape(id) + "/revoke" }
	sessionURL := func(id string) string { return e.issuer + "/account/sessions/" + url.PathEscape(id) + "/revoke" }
	deviceActive := func(id string) bool {
		d, err := e.m.Store.GetDevice(context.Background(), id)
		return err == nil && d.RevokedAt == nil
	}

	t.Run("CSRFMissing", func(t *testing.T) {
		for _, u := range []string{deviceURL(second.Enrollment().DeviceID), sessionURL(sidOther), e.issuer + "/account/lock"} {
			resp, _ := b.post(t, u, url.Values{"confirm": {"yes"}}, origin)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s without CSRF: %d, want 403", u, resp.StatusCode)
			}
			resp, _ = b.post(t, u, url.Values{"confirm": {"yes"}, "csrf": {"forged"}}, origin)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with a forged CSRF: %d, want 403", u, resp.StatusCode)
			}
		}
		// Another session's (valid) token is worthless here.
		ov := other.account(t, e.issuer+"/account")
		resp, _ := b.post(t, sessionURL(sidOther), url.Values{"csrf": {ov.csrf}}, origin)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("another session's CSRF token: %d, want 403", resp.StatusCode)
		}
	})
	t.Run("CrossSite", func(t *testing.T) {
		resp, _ := b.post(t, e.issuer+"/account/lock", url.Values{"csrf": {v.csrf}, "confirm": {"yes"}},
			map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
		if resp.StatusCode != http.StatusForbidden || !deviceActive(e.app.Enrollment().DeviceID) {
			t.Errorf("cross-site lock: %d", resp.StatusCode)
		}
	})
	t.Run("AnotherCitizensDeviceAndSession", func(t *testing.T) {
		resp, _ := b.post(t, deviceURL(appB.Enrollment().DeviceID), url.Values{"csrf": {v.csrf}, "confirm": {"yes"}}, origin)
		if resp.StatusCode != http.StatusNotFound || !deviceActive(appB.Enrollment().DeviceID) {
			t.Errorf("revoking another citizen's device: %d, active %v; want 404 and untouched", resp.StatusCode, deviceActive(appB.Enrollment().DeviceID))
		}
		resp, _ = b.post(t, sessionURL(sidB), url.Values{"csrf": {v.csrf}}, origin)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("ending another citizen's session: %d, want 404", resp.StatusCode)
		}
		u, _, _, _ := authorizeURL(r)
		if bB.showsLoginPage(t, u) {
			t.Error("another citizen's session ended")
		}
	})
	t.Run("DeviceNeedsConfirmation", func(t *testing.T) {
		resp, body := b.post(t, deviceURL(second.Enrollment().DeviceID), url.Values{"csrf": {v.csrf}}, origin)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) || !deviceActive(second.Enrollment().DeviceID) {
			t.Fatalf("first post: %d, device active %v; want a confirmation page", resp.StatusCode, deviceActive(second.Enrollment().DeviceID))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("confirmation page CSP %q", csp)
		}
	})
	t.Run("RevokeOtherDeviceEndsItsSessions", func(t *testing.T) {
		resp, _ := b.post(t, deviceURL(second.Enrollment().DeviceID), url.Values{"csrf": {v.csrf}, "confirm": {"yes"}}, origin)
		if resp.StatusCode != http.StatusSeeOther || deviceActive(second.Enrollment().DeviceID) {
			t.Fatalf("revoke device: %d", resp.StatusCode)
		}
		rcv.waitSID(t, sidOther)
		mustUserinfo(t, e.issuer, tokOther.AccessToken, false, "the revoked device's access token")
		if _, err := refreshErr(r, tokOther.RefreshToken); err == nil {
			t.Error("the revoked device's refresh token still works")
		}
		mustUserinfo(t, e.issuer, tok.AccessToken, true, "this browser's access token")
		u, _, _, _ := authorizeURL(r)
		if !other.showsLoginPage(t, u) {
			t.Error("the revoked device's browser is still signed in")
		}
		if b.showsLoginPage(t, u) {
			t.Error("revoking another device signed this browser out")
		}
	})
	t.Run("LockSignsOut", func(t *testing.T) {
		keys := liveEntries(t, e, idt.Subject)
		resp, body := b.post(t, e.issuer+"/account/lock?lang=en", url.Values{"csrf": {v.csrf}}, origin)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="confirm"`) {
			t.Fatalf("lock without confirmation: %d", resp.StatusCode)
		}
		resp, body = b.post(t, e.issuer+"/account/lock?lang=en", url.Values{"csrf": {v.csrf}, "confirm": {"yes"}}, origin)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Account locked") {
			t.Fatalf("lock: %d %.300s", resp.StatusCode, body)
		}
		if deviceActive(e.app.Enrollment().DeviceID) {
			t.Error("the session's device is still active after the lock")
		}
		mustUserinfo(t, e.issuer, tok.AccessToken, false, "access token after lock")
		if _, err := refreshErr(r, tok.RefreshToken); err == nil {
			t.Error("refresh after lock succeeded")
		}
		rcv.waitSID(t, sid)
		mustEntriesGone(t, e, keys, "after the account page's lock")
		if got := silentSSO(t, b, r); got != "login_required" {
			t.Errorf("silent SSO after the lock: %q, want login_required", got)
		}
		if again := b.account(t, e.issuer+"/account"); again.signedIn {
			t.Error("still signed in to the account page after the lock")
		}
		if !deviceActive(appB.Enrollment().DeviceID) {
			t.Error("the lock revoked another citizen's device")
		}
	})
}

// End to end in Chromium: the citizen logs in to a relying party, which
// sends the browser to RP-initiated logout with its ID token; the browser
// lands on the RP's post-logout page and the RP's back-channel endpoint
// receives a logout token for the ID token's sid.
func TestBrowser_LogoutWithBackchannel(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t)
	codes := make(chan url.Values, 1)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			select {
			case codes <- r.URL.Query():
			default:
			}
		}
		page := "rp-callback"
		if r.URL.Path == "/bye" {
			page = "rp-bye"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><html lang="en"><title>RP</title><p id="`+page+`">ok</p></html>`)
	}))
	t.Cleanup(site.Close)
	rcv := newBCLRP(t)
	id, secret := e.bclClient(t, rcv, ClientSpec{Scope: "openid profile", RedirectURIs: []string{site.URL + "/callback"},
		PostLogoutRedirectURIs: []string{site.URL + "/bye"}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	r.conf.RedirectURL = site.URL + "/callback"
	authURL, state, nonce, verifier := authorizeURL(r)

	tab := newTab(t, chromium, "en-US,en")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 4*browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("eid-qr"))); err != nil {
		t.Fatalf("login page: %v", err)
	}
	payload, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-qr"), "data-payload"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Approve(ctx, payload.Value, shownNumber(ctx, t), false, nil); err != nil {
		t.Fatalf("approve: %v", err)
	}
	var q url.Values
	select {
	case q = <-codes:
	case <-ctx.Done():
		t.Fatal("the browser never reached the relying party")
	}
	tok, idt := e.exchange(r, &url.URL{RawQuery: q.Encode()}, state, nonce, verifier)
	hint, _ := tok.Extra("id_token").(string)
	logoutURL := e.issuer + "/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {site.URL + "/bye"}, "state": {"s1"}}.Encode()
	if err := chromedp.Do(ctx, chromedp.Navigate(logoutURL), chromedp.WaitVisible(chromedp.ID("rp-bye"))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " " + document.body.innerText`))
		t.Fatalf("logout did not return to the RP: %v; page %q", err, page)
	}
	if n := rcv.waitSID(t, sidOf(t, idt)); n != 1 {
		t.Errorf("%d logout tokens for the session, want 1", n)
	}
	// The IdP session is gone: the account page asks to sign in.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.issuer+"/account"), chromedp.WaitVisible(chromedp.ID("account-signin"))); err != nil {
		t.Fatalf("after logout the account page is not the sign-in page: %v", err)
	}
	console.checkClean(t)
}

// A session started before the session index existed (an upgrade with
// sessions live in Redis) is indexed at its next login to a client, and its
// logout then reaches that client.
func TestSessions_UnindexedSessionIsIndexedOnUse(t *testing.T) {
	e := startMain(t)
	idA, secretA := e.client(ClientSpec{Scope: "openid"})
	rcv := newBCLRP(t)
	idB, secretB := e.bclClient(t, rcv, ClientSpec{Scope: "openid", GrantTypes: []string{"authorization_code"}})
	b := newBrowser()
	_, idt := e.codeFlow(e.rp(idA, secretA, gooidc.ScopeOpenID), b, e.app)
	for _, q := range []string{`DELETE FROM idp_sso_session_clients`, `DELETE FROM idp_sso_sessions`} {
		if _, err := e.m.DB.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	tok, idtB := e.ssoFlow(e.rp(idB, secretB, gooidc.ScopeOpenID), b)
	if sidOf(t, idtB) != sidOf(t, idt) {
		t.Fatal("single sign-on started another session")
	}
	hint, _ := tok.Extra("id_token").(string)
	resp, err := b.Get(e.issuer + "/logout?" + url.Values{"id_token_hint": {hint}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rcv.waitSID(t, sidOf(t, idt))
}

// The account page's lock works from the keyboard alone, in Vietnamese,
// through its confirmation page (checked with axe), and signs the browser
// out.
func TestBrowser_AccountLockByKeyboard(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t)
	tab := newTab(t, chromium, "vi-VN,vi")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 4*browserStep)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " " + document.body.innerText`))
			t.Fatalf("%s: %v; page %.400q", what, err, page)
		}
	}
	run("account sign-in", chromedp.Navigate(e.issuer+"/account?lang=vi"), chromedp.WaitVisible(chromedp.ID("account-login")),
		chromedp.Click(chromedp.ID("account-login")), chromedp.WaitVisible(chromedp.ID("eid-qr")))
	payload, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-qr"), "data-payload"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Approve(ctx, payload.Value, shownNumber(ctx, t), false, nil); err != nil {
		t.Fatalf("approve: %v", err)
	}
	run("account page", chromedp.WaitVisible(chromedp.ID("lock-account")))
	// Tab from the page's start reaches the lock button: no trap, no
	// pointer needed.
	reached := false
	for range 40 {
		run("tab", chromedp.KeyEvent("\t"))
		id, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
		if id == "lock-account" {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatal("the lock button is not reachable with Tab")
	}
	run("confirmation", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.ID("confirm")))
	checkAxe(ctx, t, "lock confirmation")
	run("confirm", chromedp.Focus(chromedp.ID("confirm")), chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.ID("message-title")))
	title, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("message-title")))
	if title != "Đã khóa tài khoản" {
		t.Errorf("after the lock: %q", title)
	}
	if d, err := e.m.Store.GetDevice(context.Background(), e.app.Enrollment().DeviceID); err != nil || d.RevokedAt == nil {
		t.Errorf("the device is not revoked after the lock (%v)", err)
	}
	run("signed out", chromedp.Navigate(e.issuer+"/account?lang=vi"), chromedp.WaitVisible(chromedp.ID("account-login")))
	console.checkClean(t)
}

// Ending this browser's own session on the account page signs it out, and
// the clients it logged in to are told.
func TestAccount_EndOwnSessionSignsOut(t *testing.T) {
	e := startMain(t)
	rcv := newBCLRP(t)
	id, secret := e.bclClient(t, rcv, ClientSpec{})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	b := newBrowser()
	_, idt := e.codeFlow(r, b, e.app)
	sid := sidOf(t, idt)
	v := b.account(t, e.issuer+"/account?lang=en")
	resp, body := b.post(t, e.issuer+"/account/sessions/"+url.PathEscape(sid)+"/revoke?lang=en", url.Values{"csrf": {v.csrf}},
		map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="message-title"`) {
		t.Fatalf("end own session: %d %.300s", resp.StatusCode, body)
	}
	if again := b.account(t, e.issuer+"/account"); again.signedIn {
		t.Error("still signed in after ending this browser's session")
	}
	rcv.waitSID(t, sid)
	// The device is untouched: the citizen signs in again with one approval.
	if d, err := e.m.Store.GetDevice(context.Background(), e.app.Enrollment().DeviceID); err != nil || d.RevokedAt != nil {
		t.Errorf("ending a session revoked the device (%v)", err)
	}
}
