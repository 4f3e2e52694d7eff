package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/passkey/passkeytest"
)

// Passkeys over HTTP with a software authenticator (idp/passkey/passkeytest):
// the abuse cases of adding, managing and using them. The browser test
// (passkey_browser_test.go) drives the same pages in Chromium.

var (
	passkeyRequestRE = regexp.MustCompile(`<input type="hidden" name="id" value="([^"]+)">`)
	passkeyItemRE    = regexp.MustCompile(`data-passkey="(pk_[^"]+)"`)
)

// sameOriginHeaders are what a browser sends with the page's own posts.
func sameOriginHeaders(e *testEnv) map[string]string {
	return map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"}
}

// addPasskey runs the account page's add ceremony in b and returns the
// authenticator and the redirect's passkey notice.
func addPasskey(t *testing.T, e *testEnv, b *browser, a *passkeytest.Authenticator) string {
	t.Helper()
	v := b.account(t, e.issuer+"/account")
	h := sameOriginHeaders(e)
	h["X-CSRF-Token"] = v.csrf
	resp, opts := b.post(t, e.issuer+"/account/passkeys/begin", url.Values{}, h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("add begin: %d %.200s", resp.StatusCode, opts)
	}
	cred, err := a.Create([]byte(opts), passkeytest.Options{Origin: e.issuer})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = b.post(t, e.issuer+"/account/passkeys/finish", url.Values{"csrf": {v.csrf}, "name": {"Laptop"}, "credential": {string(cred)}}, sameOriginHeaders(e))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil {
		t.Fatalf("add finish: %d", resp.StatusCode)
	}
	return loc.Query().Get("passkey")
}

// passkeyLogin opens authURL in b and answers the login page's passkey
// ceremony with a; it returns the finish's redirect.
func passkeyLogin(t *testing.T, e *testEnv, b *browser, authURL string, a *passkeytest.Authenticator, o passkeytest.Options) *url.URL {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return passkeyAnswer(t, e, b, resp.StatusCode, body, a, o)
}

// passkeyAnswer answers the passkey ceremony of the login page body.
func passkeyAnswer(t *testing.T, e *testEnv, b *browser, status int, body []byte, a *passkeytest.Authenticator, o passkeytest.Options) *url.URL {
	t.Helper()
	m := passkeyRequestRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no passkey form on the login page (%d)", status)
	}
	id := html.UnescapeString(string(m[1]))
	resp, opts := b.post(t, e.issuer+"/login/passkey/begin?id="+url.QueryEscape(id), url.Values{}, sameOriginHeaders(e))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login begin: %d %.200s", resp.StatusCode, opts)
	}
	if o.Origin == "" {
		o.Origin = e.issuer
	}
	cred, err := a.Get([]byte(opts), o)
	if err != nil {
		t.Fatal(err)
	}
	resp, _ = b.post(t, e.issuer+"/login/passkey/finish", url.Values{"id": {id}, "credential": {string(cred)}}, sameOriginHeaders(e))
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("login finish: %d", resp.StatusCode)
	}
	return loc
}

// passkeyEnv logs the citizen in with the app to a consent client (so the
// consent exists) and adds a passkey in that browser.
func passkeyEnv(t *testing.T, e *testEnv) (*rp, *browser, *passkeytest.Authenticator) {
	t.Helper()
	id, secret := e.consentClient()
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	b := newBrowser()
	e.codeFlow(r, b, e.app)
	a := &passkeytest.Authenticator{}
	if n := addPasskey(t, e, b, a); n != "added" {
		t.Fatalf("add passkey: notice %q", n)
	}
	return r, b, a
}

func TestPasskey_LoginToRelyingParty(t *testing.T) {
	runPasskeyLogin(t, startMain(t))
}

// TestPasskey_LoginToRelyingPartyAtScale: the same on PostgreSQL and Redis
// (ceremonies in Redis, passkeys in PostgreSQL).
func TestPasskey_LoginToRelyingPartyAtScale(t *testing.T) {
	runPasskeyLogin(t, startMain(t, scaleOption(t)))
}

func runPasskeyLogin(t *testing.T, e *testEnv) {
	r, _, a := passkeyEnv(t, e)
	b := newBrowser()
	authURL, state, nonce, verifier := authorizeURL(r)
	_, idt := e.exchange(r, passkeyLogin(t, e, b, authURL, a, passkeytest.Options{}), state, nonce, verifier)
	var c struct {
		ACR string   `json:"acr"`
		AMR []string `json:"amr"`
	}
	_ = idt.Claims(&c)
	if c.ACR != string(idp.LevelSubstantial) || strings.Join(c.AMR, " ") != "hwk user mfa" {
		t.Errorf("passkey ID token acr %q amr %v", c.ACR, c.AMR)
	}
	// The passkey session is single sign-on like any other.
	authURL, state, nonce, verifier = authorizeURL(r)
	e.exchange(r, b.follow(t, authURL), state, nonce, verifier)
}

func TestPasskey_LoginReplayedChallenge(t *testing.T) {
	e := startMain(t)
	r, _, a := passkeyEnv(t, e)
	b := newBrowser()
	authURL, _, _, _ := authorizeURL(r)
	resp, _ := b.Get(authURL)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := html.UnescapeString(string(passkeyRequestRE.FindSubmatch(body)[1]))
	_, opts := b.post(t, e.issuer+"/login/passkey/begin?id="+url.QueryEscape(id), url.Values{}, sameOriginHeaders(e))
	cred, _ := a.Get([]byte(opts), passkeytest.Options{Origin: e.issuer})
	// The ceremony cookie is sent twice: an attacker who captured the
	// browser's post replays it.
	var cookies []*http.Cookie
	u, _ := url.Parse(e.issuer)
	cookies = b.Jar.Cookies(u)
	form := url.Values{"id": {id}, "credential": {string(cred)}}
	first, _ := b.post(t, e.issuer+"/login/passkey/finish", form, sameOriginHeaders(e))
	if first.StatusCode != http.StatusSeeOther || strings.Contains(first.Header.Get("Location"), "passkey=") {
		t.Fatalf("first use: %d %s", first.StatusCode, first.Header.Get("Location"))
	}
	replay := newBrowser()
	replay.Jar.SetCookies(u, cookies)
	again, _ := replay.post(t, e.issuer+"/login/passkey/finish", form, sameOriginHeaders(e))
	if loc := again.Header.Get("Location"); again.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "passkey=failed") {
		t.Errorf("replayed assertion: %d %s, want back to the login page with passkey=failed", again.StatusCode, loc)
	}
}

func TestPasskey_CeremonyBoundToBrowser(t *testing.T) {
	e := startMain(t)
	r, _, a := passkeyEnv(t, e)
	b := newBrowser()
	authURL, _, _, _ := authorizeURL(r)
	resp, _ := b.Get(authURL)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := html.UnescapeString(string(passkeyRequestRE.FindSubmatch(body)[1]))
	// Another browser cannot begin a ceremony for b's login request.
	other := newBrowser()
	if resp, _ := other.post(t, e.issuer+"/login/passkey/begin?id="+url.QueryEscape(id), url.Values{}, sameOriginHeaders(e)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("begin from another browser: %d", resp.StatusCode)
	}
	// Nor finish b's ceremony without its cookie.
	_, opts := b.post(t, e.issuer+"/login/passkey/begin?id="+url.QueryEscape(id), url.Values{}, sameOriginHeaders(e))
	cred, _ := a.Get([]byte(opts), passkeytest.Options{Origin: e.issuer})
	got, _ := other.post(t, e.issuer+"/login/passkey/finish", url.Values{"id": {id}, "credential": {string(cred)}}, sameOriginHeaders(e))
	if !strings.Contains(got.Header.Get("Location"), "passkey=failed") {
		t.Errorf("finish from another browser: %d %s", got.StatusCode, got.Header.Get("Location"))
	}
	// A cross-site post is refused before anything.
	if resp, _ := b.post(t, e.issuer+"/login/passkey/begin?id="+url.QueryEscape(id), url.Values{}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site begin: %d", resp.StatusCode)
	}
}

func TestPasskey_WrongOriginRefused(t *testing.T) {
	e := startMain(t)
	r, _, a := passkeyEnv(t, e)
	authURL, _, _, _ := authorizeURL(r)
	loc := passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{Origin: "http://127.0.0.1:1"})
	if loc.Query().Get("passkey") != "failed" {
		t.Errorf("assertion from another origin: redirected to %s", loc)
	}
}

func TestPasskey_UserVerificationMissingRefused(t *testing.T) {
	e := startMain(t)
	r, _, a := passkeyEnv(t, e)
	authURL, _, _, _ := authorizeURL(r)
	loc := passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{Flags: passkeytest.FlagUP, SetFlags: true})
	if loc.Query().Get("passkey") != "failed" {
		t.Errorf("assertion without UV: redirected to %s", loc)
	}
}

func TestPasskey_HighLevelNeedsApp(t *testing.T) {
	e := startMain(t)
	r, _, _ := passkeyEnv(t, e)
	b := newBrowser()
	authURL, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)))
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`id="eid-qr"`)) || bytes.Contains(body, []byte("passkey-login-box")) {
		t.Fatal("a request needing high: want the app's QR code and no passkey")
	}
	m := regexp.MustCompile(`data-status-url="[^"]*id=([^"&]+)"`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no status URL")
	}
	id, _ := url.QueryUnescape(html.UnescapeString(string(m[1])))
	if resp, _ := b.post(t, e.issuer+"/login/passkey/begin?id="+url.QueryEscape(id), url.Values{}, sameOriginHeaders(e)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("passkey ceremony for a high request: %d", resp.StatusCode)
	}
}

// TestPasskey_ConsentNotGivenNeedsApp: a client the citizen has not agreed
// to share with cannot be satisfied by a passkey: the page says so, and the
// login request still waits for the app.
func TestPasskey_ConsentNotGivenNeedsApp(t *testing.T) {
	e := startMain(t)
	_, _, a := passkeyEnv(t, e)
	id, secret := e.client(ClientSpec{Name: "Sở Y tế", Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	b := newBrowser()
	authURL, _, _, _ := authorizeURL(r)
	loc := passkeyLogin(t, e, b, authURL, a, passkeytest.Options{})
	if loc.Query().Get("passkey") != "consent" || !strings.HasSuffix(loc.Path, "/login/continue") {
		t.Fatalf("passkey for claims never agreed: redirected to %s", loc)
	}
	resp, err := b.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`id="eid-qr"`)) || !bytes.Contains(body, []byte(`id="passkey-notice"`)) || !bytes.Contains(body, []byte("không thể thay bạn đồng ý")) {
		t.Errorf("the login page after a passkey without consent: %d, want the QR code and the explanation", resp.StatusCode)
	}
	// prompt=consent: the citizen must be asked, so no passkey is offered.
	authURL, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("prompt", "consent"))
	resp, _ = b.Get(authURL)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(body, []byte("passkey-login-box")) {
		t.Error("prompt=consent offers a passkey")
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.d) }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.d += d; c.mu.Unlock() }

// startClockedMain is startMain with the server on clk and its log in w.
func startClockedMain(t *testing.T, clk *clock, w io.Writer) *testEnv {
	t.Helper()
	m := NewMain()
	m.Now = clk.Now
	m.Config.IDPAddr, m.Config.APIAddr, m.Config.Issuer, m.Config.DataDir = "127.0.0.1:0", "127.0.0.1:0", "", t.TempDir()
	m.Config.ShutdownGrace, m.Config.ShutdownDelay = 2*time.Second, 0
	m.Config.RedisPrefix = "test-" + randomHex(4) + ":"
	m.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	if err := m.ImportCitizens(context.Background(), demoCitizens[:2]); err != nil && !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("import: %v", err)
	}
	e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	return e
}

// TestPasskey_AddNeedsRecentAppLogin: adding a passkey needs a session an
// eID-app login started at most 10 minutes ago; a passkey session cannot
// add one.
func TestPasskey_AddNeedsRecentAppLogin(t *testing.T) {
	clk := &clock{}
	e := startClockedMain(t, clk, testWriter{t})
	r, b, a := passkeyEnv(t, e)
	begin := func(b *browser) int {
		v := b.account(t, e.issuer+"/account")
		h := sameOriginHeaders(e)
		h["X-CSRF-Token"] = v.csrf
		resp, _ := b.post(t, e.issuer+"/account/passkeys/begin", url.Values{}, h)
		return resp.StatusCode
	}
	clk.advance(11 * time.Minute)
	if got := begin(b); got != http.StatusForbidden {
		t.Errorf("add 11 minutes after the app login: %d", got)
	}
	if v := b.account(t, e.issuer+"/account"); !strings.Contains(v.body, `id="passkey-add-needs-app"`) || strings.Contains(v.body, `id="passkey-add"`) {
		t.Error("the account page offers adding a passkey to a stale session")
	}
	pb := newBrowser()
	authURL, _, _, _ := authorizeURL(r)
	passkeyLogin(t, e, pb, authURL, a, passkeytest.Options{})
	if got := begin(pb); got != http.StatusForbidden {
		t.Errorf("add from a passkey session: %d", got)
	}
}

func TestPasskey_AddCSRF(t *testing.T) {
	e := startMain(t)
	id, secret := e.consentClient()
	b := newBrowser()
	e.codeFlow(e.rp(id, secret, gooidc.ScopeOpenID, "profile"), b, e.app)
	v := b.account(t, e.issuer+"/account")
	cross := map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "X-CSRF-Token": v.csrf}
	forged := sameOriginHeaders(e)
	forged["X-CSRF-Token"] = "forged"
	for name, h := range map[string]map[string]string{"no token": sameOriginHeaders(e), "forged token": forged, "cross-site": cross} {
		if resp, _ := b.post(t, e.issuer+"/account/passkeys/begin", url.Values{}, h); resp.StatusCode != http.StatusForbidden {
			t.Errorf("add begin, %s: %d", name, resp.StatusCode)
		}
	}
	for _, path := range []string{"/account/passkeys/finish", "/account/passkeys/pk_x/rename", "/account/passkeys/pk_x/delete"} {
		if resp, _ := b.post(t, e.issuer+path, url.Values{"csrf": {"forged"}, "name": {"x"}}, sameOriginHeaders(e)); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s with a forged token: %d", path, resp.StatusCode)
		}
		if resp, _ := b.post(t, e.issuer+path, url.Values{"csrf": {v.csrf}, "name": {"x"}}, cross); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s cross-site: %d", path, resp.StatusCode)
		}
	}
	// Without a session: nothing to add to.
	if resp, _ := newBrowser().post(t, e.issuer+"/account/passkeys/begin", url.Values{}, sameOriginHeaders(e)); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("add begin without a session: %d", resp.StatusCode)
	}
}

func TestPasskey_OtherCitizenCannotRenameOrRemove(t *testing.T) {
	e := startMain(t)
	_, _, _ = passkeyEnv(t, e)
	ctx := context.Background()
	cit, err := e.m.Store.GetCitizenByPersonalID(ctx, demoCitizens[0].PersonalID)
	if err != nil {
		t.Fatal(err)
	}
	mine, err := e.m.Store.ListPasskeys(ctx, cit.ID)
	if err != nil || len(mine) != 1 {
		t.Fatalf("passkeys: %d %v", len(mine), err)
	}
	// Citizen B, signed in with their own app.
	appB := e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh)
	id, secret := e.consentClient()
	bb := newBrowser()
	e.codeFlow(e.rp(id, secret, gooidc.ScopeOpenID, "profile"), bb, appB)
	v := bb.account(t, e.issuer+"/account")
	if passkeyItemRE.MatchString(v.body) {
		t.Error("B's account page lists A's passkey")
	}
	for _, op := range []string{"rename", "delete"} {
		resp, _ := bb.post(t, e.issuer+"/account/passkeys/"+mine[0].ID+"/"+op, url.Values{"csrf": {v.csrf}, "name": {"B's now"}}, sameOriginHeaders(e))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("B %s A's passkey: %d, want 404", op, resp.StatusCode)
		}
	}
	got, err := e.m.Store.GetPasskey(ctx, mine[0].ID)
	if err != nil || got.Name != "Laptop" {
		t.Errorf("A's passkey after B's attempts: %+v %v", got, err)
	}
	// A renames and removes their own.
	ab := newBrowser()
	e.codeFlow(e.rp(id, secret, gooidc.ScopeOpenID, "profile"), ab, e.app)
	av := ab.account(t, e.issuer+"/account")
	if resp, _ := ab.post(t, e.issuer+"/account/passkeys/"+mine[0].ID+"/rename", url.Values{"csrf": {av.csrf}, "name": {"\x00"}}, sameOriginHeaders(e)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("rename to a control character: %d", resp.StatusCode)
	}
	if resp, _ := ab.post(t, e.issuer+"/account/passkeys/"+mine[0].ID+"/rename", url.Values{"csrf": {av.csrf}, "name": {"Điện thoại"}}, sameOriginHeaders(e)); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("rename own: %d", resp.StatusCode)
	}
	if got, _ := e.m.Store.GetPasskey(ctx, mine[0].ID); got == nil || got.Name != "Điện thoại" {
		t.Errorf("after rename: %+v", got)
	}
}

func TestPasskey_RemovedPasskeyEndsSession(t *testing.T) {
	e := startMain(t)
	r, ab, a := passkeyEnv(t, e)
	b := newBrowser()
	authURL, state, nonce, verifier := authorizeURL(r)
	tok, _ := e.exchange(r, passkeyLogin(t, e, b, authURL, a, passkeytest.Options{}), state, nonce, verifier)
	// A code the passkey's session issued, not yet redeemed.
	authURL, _, _, pendingVerifier := authorizeURL(r)
	pending := b.follow(t, authURL).Query().Get("code")
	if pending == "" {
		t.Fatal("single sign-on issued no code")
	}
	// The app session removes the passkey.
	av := ab.account(t, e.issuer+"/account")
	pk := passkeyItemRE.FindStringSubmatch(av.body)
	if pk == nil {
		t.Fatal("no passkey on the account page")
	}
	if resp, _ := ab.post(t, e.issuer+"/account/passkeys/"+pk[1]+"/delete", url.Values{"csrf": {av.csrf}}, sameOriginHeaders(e)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", resp.StatusCode)
	}
	// The passkey's session is gone: the next request asks again.
	authURL, _, _, _ = authorizeURL(r)
	if !b.showsLoginPage(t, authURL) {
		t.Error("a removed passkey's session still signs in")
	}
	if b.account(t, e.issuer+"/account").signedIn {
		t.Error("a removed passkey's session still opens the account page")
	}
	if loc := passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{}); loc.Query().Get("passkey") != "failed" {
		t.Errorf("a removed passkey logs in: %s", loc)
	}
	// What the passkey yielded goes with it: its access token and its code.
	if status, _ := userinfoStatus(t, e.issuer, tok.AccessToken); status == http.StatusOK {
		t.Error("an access token from a removed passkey's login still answers at userinfo")
	}
	if _, err := r.conf.Exchange(context.Background(), pending, oauth2.VerifierOption(pendingVerifier)); err == nil {
		t.Error("a code from a removed passkey's session was exchanged")
	}
}

func TestPasskey_ClonedAuthenticatorRefusedAndLogged(t *testing.T) {
	logs := &syncBuffer{}
	e := startClockedMain(t, &clock{}, logs)
	r, _, a := passkeyEnv(t, e)
	authURL, state, nonce, verifier := authorizeURL(r)
	a.Counter = 20
	e.exchange(r, passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{}), state, nonce, verifier)
	clone := *a
	clone.Counter = 3
	authURL, _, _, _ = authorizeURL(r)
	if loc := passkeyLogin(t, e, newBrowser(), authURL, &clone, passkeytest.Options{}); loc.Query().Get("passkey") != "failed" {
		t.Errorf("cloned authenticator: %s", loc)
	}
	if !strings.Contains(logs.String(), "possible cloned authenticator") {
		t.Error("a counter going backwards is not logged")
	}
}

func TestPasskey_SameCredentialTwice(t *testing.T) {
	e := startMain(t)
	_, b, a := passkeyEnv(t, e)
	// The same credential again (an authenticator ignoring
	// excludeCredentials): refused.
	again := &passkeytest.Authenticator{}
	v := b.account(t, e.issuer+"/account")
	h := sameOriginHeaders(e)
	h["X-CSRF-Token"] = v.csrf
	_, opts := b.post(t, e.issuer+"/account/passkeys/begin", url.Values{}, h)
	if !strings.Contains(opts, `"excludeCredentials"`) {
		t.Errorf("registration options do not exclude the citizen's passkey: %.300s", opts)
	}
	cred, _ := again.Create([]byte(opts), passkeytest.Options{Origin: e.issuer})
	cred = bytes.ReplaceAll(cred, []byte(b64url(again.CredentialID)), []byte(b64url(a.CredentialID)))
	cred = replaceInAttestation(t, cred, again.CredentialID, a.CredentialID)
	resp, _ := b.post(t, e.issuer+"/account/passkeys/finish", url.Values{"csrf": {v.csrf}, "name": {"x"}, "credential": {string(cred)}}, sameOriginHeaders(e))
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "passkey=duplicate") {
		t.Errorf("same credential twice: %d %s", resp.StatusCode, loc)
	}
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// replaceInAttestation puts credential id want where got is inside a
// registration response's attestation object.
func replaceInAttestation(t *testing.T, resp, got, want []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resp, &m); err != nil {
		t.Fatal(err)
	}
	r := m["response"].(map[string]any)
	att, _ := base64.RawURLEncoding.DecodeString(r["attestationObject"].(string))
	r["attestationObject"] = b64url(bytes.ReplaceAll(att, got, want))
	out, _ := json.Marshal(m)
	return out
}

// TestPasskey_AccountLogin: a passkey signs in to the account page too, and
// that session can list and remove passkeys but not add one.
func TestPasskey_AccountLogin(t *testing.T) {
	e := startMain(t)
	_, _, a := passkeyEnv(t, e)
	b := newBrowser()
	resp, body := b.post(t, e.issuer+"/account/login?lang=en", url.Values{}, sameOriginHeaders(e))
	loc := passkeyAnswer(t, e, b, resp.StatusCode, []byte(body), a, passkeytest.Options{})
	if !strings.HasSuffix(loc.Path, "/account") || loc.Query().Get("passkey") != "" {
		t.Fatalf("account passkey login went to %s", loc)
	}
	v := b.account(t, e.issuer+"/account")
	if !v.signedIn || !passkeyItemRE.MatchString(v.body) || !strings.Contains(v.body, `id="passkey-add-needs-app"`) {
		t.Errorf("account page after a passkey login: signed in %v, lists the passkey %v", v.signedIn, passkeyItemRE.MatchString(v.body))
	}
}
