package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
)

// passkeyClient registers a relying party whose redirect URI is served here;
// codes receives each callback's query.
func passkeyClient(t *testing.T, e *testEnv) (*rp, chan url.Values) {
	t.Helper()
	codes := make(chan url.Values, 4)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" { // the favicon
			http.NotFound(w, r)
			return
		}
		select {
		case codes <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>RP</title><p id="rp-done">ok</p>`)
	}))
	t.Cleanup(cb.Close)
	id, secret := e.client(ClientSpec{Name: "Cục Thuế", Scope: "openid profile",
		GrantTypes: []string{"authorization_code"}, Purposes: []consent.Purpose{purposeTax},
		RedirectURIs: []string{cb.URL + "/callback"}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	r.conf.RedirectURL = cb.URL + "/callback"
	return r, codes
}

// virtualAuthenticator gives the tab a platform authenticator that holds
// discoverable credentials and verifies the user (Chromium's CDP WebAuthn
// domain).
func virtualAuthenticator(ctx context.Context, t *testing.T) webauthn.AuthenticatorID {
	t.Helper()
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn domain: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
		Transport: webauthn.AuthenticatorTransportInternal, HasResidentKey: true, HasUserVerification: true,
		IsUserVerified: true, AutomaticPresenceSimulation: true,
	}})
	if err != nil {
		t.Fatalf("virtual authenticator: %v", err)
	}
	id := res.AuthenticatorID
	return id
}

func waitCode(ctx context.Context, t *testing.T, codes chan url.Values) *url.URL {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	select {
	case q := <-codes:
		return &url.URL{RawQuery: q.Encode()}
	case <-wctx.Done():
		t.Fatalf("the browser never reached the relying party; page: %s", pageText(ctx))
		return nil
	}
}

func pageText(ctx context.Context) string {
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " | " + document.body.innerText`))
	return s
}

// TestBrowser_Passkey: in a real Chromium with a virtual authenticator, a
// citizen logs in to a relying party with the eID app, adds a passkey on the
// account page, and later logs in to the same relying party with it alone
// (substantial, amr hwk, a new sid); a request needing high offers only the
// app; removing the passkey ends the session it made and it no longer logs
// in. No step violates the pages' CSP.
func TestBrowser_Passkey(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t)
	if !strings.HasPrefix(e.issuer, "http://localhost:") {
		t.Fatalf("issuer %s: WebAuthn needs the localhost RP ID", e.issuer)
	}
	r, codes := passkeyClient(t, e)
	tab := newTab(t, chromium, "en-US,en")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 6*browserStep)
	defer cancel()
	authn := virtualAuthenticator(ctx, t)

	// 1. eID-app login: records the consent for this client.
	authURL, state, nonce, verifier := authorizeURL(r)
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
	_, appToken := e.exchange(r, waitCode(ctx, t, codes), state, nonce, verifier)
	var appClaims struct {
		SID string   `json:"sid"`
		AMR []string `json:"amr"`
	}
	_ = appToken.Claims(&appClaims)

	// 2. Add a passkey on the account page.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.issuer+"/account"), chromedp.WaitVisible(chromedp.ID("passkey-add"))); err != nil {
		t.Fatalf("account page passkey block: %v; %s", err, pageText(ctx))
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("passkey-name"), "Laptop ở nhà"),
		chromedp.Click(chromedp.ID("passkey-add")), chromedp.WaitVisible(chromedp.ID("passkey-notice"))); err != nil {
		t.Fatalf("add passkey: %v; %s; console %v", err, pageText(ctx), console.messages())
	}
	notice, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("passkey-notice")))
	list, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("passkey-list")))
	if notice != "Passkey added." || !strings.Contains(list, "Laptop ở nhà") {
		t.Fatalf("after adding: notice %q, list %q", notice, list)
	}
	checkAxe(ctx, t, "account page with a passkey")
	got, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: authn})
	stored := got.Credentials
	if err != nil || len(stored) != 1 || !stored[0].IsResidentCredential {
		t.Fatalf("authenticator credentials: %d (%v), want one discoverable", len(stored), err)
	}
	if strings.Contains(string(stored[0].UserHandle), demoCitizens[0].PersonalID) {
		t.Error("the user handle carries the personal ID")
	}

	// 3. A new browser session (cookies gone, authenticator kept): the
	// passkey alone logs in to the same client.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	authURL, state, nonce, verifier = authorizeURL(r)
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("passkey-login"))); err != nil {
		t.Fatalf("login page passkey button: %v; %s", err, pageText(ctx))
	}
	checkAxe(ctx, t, "login page with a passkey")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("passkey-login"))); err != nil {
		t.Fatal(err)
	}
	_, idt := e.exchange(r, waitCode(ctx, t, codes), state, nonce, verifier)
	var claims struct {
		ACR      string   `json:"acr"`
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
		SID      string   `json:"sid"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if claims.ACR != string(idp.LevelSubstantial) || !slices.Contains(claims.AMR, "hwk") || !slices.Contains(claims.AMR, "mfa") ||
		claims.AuthTime == 0 || claims.SID == "" || claims.SID == appClaims.SID {
		t.Errorf("passkey login ID token: %+v (app login sid %q)", claims, appClaims.SID)
	}
	if idt.Subject != appToken.Subject {
		t.Errorf("passkey login subject %q, app login %q", idt.Subject, appToken.Subject)
	}

	// 4. A request needing high: the page offers the app only.
	highURL, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)))
	if err := chromedp.Do(ctx, chromedp.Navigate(highURL), chromedp.WaitVisible(chromedp.ID("eid-qr"))); err != nil {
		t.Fatalf("high login page: %v; %s", err, pageText(ctx))
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#passkey-login-box").length`)); n != 0 {
		t.Error("a request needing high offers a passkey")
	}

	// 5. The passkey session may manage passkeys but not add one; removing
	// the passkey ends it.
	if err := chromedp.Do(ctx, chromedp.Navigate(e.issuer+"/account"), chromedp.WaitVisible(chromedp.ID("passkey-list"))); err != nil {
		t.Fatalf("account page after passkey login: %v; %s", err, pageText(ctx))
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#passkey-add").length + document.querySelectorAll("#passkey-add-needs-app").length * 10`)); n != 10 {
		t.Errorf("a passkey session's account page: add button/needs-app hint = %d, want the hint only", n)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("form.passkey-delete button")), chromedp.WaitVisible(chromedp.ID("account-signin"))); err != nil {
		t.Fatalf("remove passkey: %v; %s", err, pageText(ctx))
	}

	// 6. The removed passkey (still in the authenticator) no longer logs in.
	authURL, _, _, _ = authorizeURL(r)
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("passkey-login")),
		chromedp.Click(chromedp.ID("passkey-login")), chromedp.WaitVisible(chromedp.ID("passkey-notice"))); err != nil {
		t.Fatalf("login with a removed passkey: %v; %s", err, pageText(ctx))
	}
	if notice, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("passkey-notice"))); !strings.Contains(notice, "did not succeed") {
		t.Errorf("removed passkey notice = %q", notice)
	}
	select {
	case q := <-codes:
		t.Errorf("a removed passkey reached the relying party: %v", q)
	default:
	}
	console.checkClean(t)
}
