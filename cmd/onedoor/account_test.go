package main

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
)

// The citizen's account page on the IdP (issue 7): list, read and withdraw
// consents, download their receipts. These tests are the abuse cases first:
// no session, a logged-out, expired or revoked device's session, a missing,
// forged or other session's CSRF token, a cross-site post, another
// citizen's consent, a second withdrawal.

var (
	accountCSRFRE   = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	accountActionRE = regexp.MustCompile(`<form method="post" action="([^"]+/withdraw[^"]*)"`)
	receiptLinkRE   = regexp.MustCompile(`<a href="([^"]+/account/receipts/[^"]+)" download=`)
	nextPageRE      = regexp.MustCompile(`id="next-page" href="([^"]+)"`)
	consentItemRE   = regexp.MustCompile(`data-consent="(cns_[a-z0-9]+)"`)
)

// accountPage is what GET /account shows one browser.
type accountView struct {
	status   int
	body     string
	signedIn bool
	csrf     string
	actions  []string // withdraw form actions, in page order
	consents []string // consent ids, in page order
}

func (b *browser) account(t *testing.T, u string) accountView {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v := accountView{status: resp.StatusCode, body: string(body)}
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode == http.StatusOK && !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("account page CSP = %q", csp)
	}
	v.signedIn = strings.Contains(v.body, `id="account-title"`)
	if m := accountCSRFRE.FindStringSubmatch(v.body); m != nil {
		v.csrf = html.UnescapeString(m[1])
	}
	for _, m := range accountActionRE.FindAllStringSubmatch(v.body, -1) {
		v.actions = append(v.actions, html.UnescapeString(m[1]))
	}
	for _, m := range consentItemRE.FindAllStringSubmatch(v.body, -1) {
		v.consents = append(v.consents, m[1])
	}
	return v
}

// post sends a form as a browser would, with the headers given.
func (b *browser) post(t *testing.T, u string, form url.Values, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// rpLogin logs the env's citizen in to the consent client in b, so b holds
// an SSO session, and returns the tokens, the raw ID token and the consent.
func rpLogin(t *testing.T, e *testEnv, r *rp, b *browser, clientID string) (*oauth2.Token, string, *consent.Record) {
	t.Helper()
	tok, idt := e.codeFlow(r, b, e.app)
	rec, err := e.m.Consent.Remembered(context.Background(), idt.Subject, clientID, purposeTax.Code)
	if err != nil || rec == nil {
		t.Fatalf("consent after login: %+v %v", rec, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	return tok, raw, rec
}

func withdrawURL(issuer, id string) string {
	return issuer + "/account/consents/" + url.PathEscape(id) + "/withdraw"
}

func TestAccount_Abuse(t *testing.T) {
	e := startMain(t)
	ctx := context.Background()
	origin := map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"}
	id, secret := e.consentClient()
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	b := newBrowser()
	tok, rawIDToken, rec := rpLogin(t, e, r, b, id)
	active := func(t *testing.T, citizen, consentID string) bool {
		t.Helper()
		got, err := e.m.ConsentStore.GetRecord(ctx, citizen, consentID)
		if err != nil {
			t.Fatal(err)
		}
		return got.WithdrawnAt == nil
	}

	t.Run("NoSession", func(t *testing.T) {
		anon := newBrowser()
		v := anon.account(t, e.issuer+"/account")
		if v.status != http.StatusOK || v.signedIn || !strings.Contains(v.body, `id="account-signin"`) ||
			!strings.Contains(v.body, `action="`+e.issuer+`/account/login?lang=vi"`) {
			t.Fatalf("without a session: %d %.400s", v.status, v.body)
		}
		if strings.Contains(v.body, rec.ID) {
			t.Error("the sign-in page names a consent")
		}
		resp, _ := anon.post(t, withdrawURL(e.issuer, rec.ID), url.Values{"csrf": {"x"}}, origin)
		if resp.StatusCode != http.StatusUnauthorized || !active(t, rec.CitizenID, rec.ID) {
			t.Errorf("withdraw without a session: %d, active %v", resp.StatusCode, active(t, rec.CitizenID, rec.ID))
		}
		resp, err := anon.Get(e.issuer + "/account/receipts/rcpt_x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("receipt without a session: %d", resp.StatusCode)
		}
	})

	v := b.account(t, e.issuer+"/account?lang=en")
	if !v.signedIn || v.csrf == "" || len(v.consents) != 1 || v.consents[0] != rec.ID || len(v.actions) != 1 || !strings.HasPrefix(v.actions[0], withdrawURL(e.issuer, rec.ID)) {
		t.Fatalf("account page with a session: signed in %v, csrf %q, actions %v: %.600s", v.signedIn, v.csrf, v.actions, v.body)
	}
	for _, want := range []string{"Cục Thuế", purposeTax.Text, "Full name", "Active"} {
		if !strings.Contains(v.body, html.EscapeString(want)) {
			t.Errorf("account page lacks %q", want)
		}
	}

	t.Run("CSRF", func(t *testing.T) {
		other := newBrowser() // another session of the same citizen
		rpLogin(t, e, r, other, id)
		otherCSRF := other.account(t, e.issuer+"/account").csrf
		if otherCSRF == "" || otherCSRF == v.csrf {
			t.Fatalf("second session's token %q", otherCSRF)
		}
		anonCSRF := accountCSRFRE.FindStringSubmatch(newBrowser().account(t, e.issuer+"/account").body)
		for name, form := range map[string]url.Values{
			"missing":       {},
			"empty":         {"csrf": {""}},
			"forged":        {"csrf": {strings.Repeat("A", len(v.csrf))}},
			"other session": {"csrf": {otherCSRF}},
			"repeated":      {"csrf": {"forged", v.csrf}},
		} {
			resp, _ := b.post(t, withdrawURL(e.issuer, rec.ID), form, origin)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s token: status %d, want 403", name, resp.StatusCode)
			}
		}
		if anonCSRF != nil {
			t.Error("the sign-in page carries a CSRF token")
		}
		if !active(t, rec.CitizenID, rec.ID) {
			t.Fatal("a refused post withdrew the consent")
		}
	})

	t.Run("CrossSite", func(t *testing.T) {
		for name, h := range map[string]map[string]string{
			"other origin":           {"Origin": "https://evil.example"},
			"null origin":            {"Origin": "null"},
			"cross-site fetch":       {"Sec-Fetch-Site": "cross-site"},
			"same-site fetch":        {"Origin": e.issuer, "Sec-Fetch-Site": "same-site"},
			"other origin same-site": {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-origin"},
		} {
			resp, _ := b.post(t, withdrawURL(e.issuer, rec.ID), url.Values{"csrf": {v.csrf}}, h)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", name, resp.StatusCode)
			}
		}
		resp, _ := b.post(t, e.issuer+"/account/login", url.Values{}, map[string]string{"Sec-Fetch-Site": "cross-site"})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site account login: %d", resp.StatusCode)
		}
		if !active(t, rec.CitizenID, rec.ID) {
			t.Fatal("a cross-site post withdrew the consent")
		}
	})

	t.Run("OtherCitizen", func(t *testing.T) {
		app2 := e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh)
		b2 := newBrowser()
		_, idt2 := e.codeFlow(r, b2, app2)
		rec2, err := e.m.Consent.Remembered(ctx, idt2.Subject, id, purposeTax.Code)
		if err != nil || rec2 == nil {
			t.Fatal(rec2, err)
		}
		resp, body := b.post(t, withdrawURL(e.issuer, rec2.ID), url.Values{"csrf": {v.csrf}}, origin)
		resp404, body404 := b.post(t, withdrawURL(e.issuer, "cns_doesnotexist"), url.Values{"csrf": {v.csrf}}, origin)
		if resp.StatusCode != http.StatusNotFound || resp404.StatusCode != http.StatusNotFound || body != body404 {
			t.Errorf("another citizen's consent: %d, an unknown one: %d; the bodies differ: %v", resp.StatusCode, resp404.StatusCode, body != body404)
		}
		if !active(t, rec2.CitizenID, rec2.ID) {
			t.Fatal("another citizen's consent was withdrawn")
		}
		rs, err := e.m.ConsentStore.Receipts(ctx, rec2.CitizenID, rec2.ID)
		if err != nil || len(rs) == 0 {
			t.Fatal(rs, err)
		}
		got, err := b.Get(e.issuer + "/account/receipts/" + rs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		got.Body.Close()
		if got.StatusCode != http.StatusNotFound {
			t.Errorf("another citizen's receipt: %d", got.StatusCode)
		}
		if strings.Contains(b.account(t, e.issuer+"/account").body, rec2.ID) {
			t.Error("the account page lists another citizen's consent")
		}
	})

	t.Run("Withdraw", func(t *testing.T) {
		tok = refresh(t, r, tok.RefreshToken) // works before
		resp, _ := b.post(t, v.actions[0], url.Values{"csrf": {v.csrf}}, origin)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || loc != e.issuer+"/account?lang=en&withdrawn="+rec.ID {
			t.Fatalf("withdraw: %d, Location %q", resp.StatusCode, loc)
		}
		after := b.account(t, loc)
		if !strings.Contains(after.body, `id="notice" role="status"`) || !strings.Contains(after.body, "Cục Thuế</p>") || len(after.actions) != 0 || !strings.Contains(after.body, "Withdrawn at") {
			t.Errorf("after withdrawal the page shows: %.800s", after.body)
		}
		if active(t, rec.CitizenID, rec.ID) {
			t.Fatal("the consent is still active")
		}
		// A crafted confirmation link for an active or unknown consent shows none.
		for _, crafted := range []string{"cns_unknown", "x"} {
			if strings.Contains(b.account(t, e.issuer+"/account?withdrawn="+crafted).body, `id="notice"`) {
				t.Errorf("a crafted link (%s) shows a withdrawal notice", crafted)
			}
		}
		_, err := refreshErr(r, tok.RefreshToken)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("refresh after withdrawal: %v, want invalid_grant", err)
		}
		if st, _ := userinfoStatus(t, e.issuer, tok.AccessToken); st != http.StatusUnauthorized {
			t.Errorf("userinfo after withdrawal: %d", st)
		}
		// Twice: a 409, and the first withdrawal is kept.
		resp, _ = b.post(t, v.actions[0], url.Values{"csrf": {v.csrf}}, origin)
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("second withdrawal: %d, want 409", resp.StatusCode)
		}
		rs, err := e.m.ConsentStore.Receipts(ctx, rec.CitizenID, rec.ID)
		// A grant, the re-grant of the CSRF case's second login, the withdrawal.
		if err != nil || len(rs) != 3 || rs[2].Kind != consent.ReceiptWithdrawn {
			t.Fatalf("receipts: %+v %v", rs, err)
		}
		// Every receipt is linked and downloads as the signed JWS.
		links := receiptLinkRE.FindAllStringSubmatch(after.body, -1)
		if len(links) != len(rs) {
			t.Fatalf("receipt links: %v", links)
		}
		for i, l := range links {
			dl, err := b.Get(html.UnescapeString(l[1]))
			if err != nil {
				t.Fatal(err)
			}
			jws, _ := io.ReadAll(dl.Body)
			dl.Body.Close()
			if dl.StatusCode != http.StatusOK || dl.Header.Get("Content-Type") != "application/jose" ||
				!strings.HasPrefix(dl.Header.Get("Content-Disposition"), "attachment;") || string(jws) != rs[i].JWS {
				t.Errorf("receipt %d: %d %q %q", i, dl.StatusCode, dl.Header.Get("Content-Type"), dl.Header.Get("Content-Disposition"))
				continue
			}
			c := verifyReceipt(t, e.issuer, string(jws))
			if c["event"] != string(rs[i].Kind) {
				t.Errorf("receipt %d event %v", i, c["event"])
			}
		}
	})

	t.Run("LoggedOut", func(t *testing.T) {
		csrf := v.csrf
		resp, err := b.Get(e.issuer + "/logout?" + url.Values{"id_token_hint": {rawIDToken}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if after := b.account(t, e.issuer+"/account"); after.signedIn {
			t.Fatal("the account page is still open after logout")
		}
		// A fresh consent, withdrawn with the old session's token: refused.
		id2, secret2 := e.consentClient()
		b2 := newBrowser()
		_, _, rec2 := rpLogin(t, e, e.rp(id2, secret2, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess), b2, id2)
		resp, _ = b.post(t, withdrawURL(e.issuer, rec2.ID), url.Values{"csrf": {csrf}}, origin)
		if resp.StatusCode != http.StatusUnauthorized || !active(t, rec2.CitizenID, rec2.ID) {
			t.Errorf("withdraw after logout: %d", resp.StatusCode)
		}
	})

	t.Run("RevokedDevice", func(t *testing.T) {
		id3, secret3 := e.consentClient()
		b3 := newBrowser()
		_, _, rec3 := rpLogin(t, e, e.rp(id3, secret3, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess), b3, id3)
		v3 := b3.account(t, e.issuer+"/account")
		if !v3.signedIn {
			t.Fatal("no account page after login")
		}
		if err := e.m.EID.RevokeDevice(ctx, rec3.CitizenID, e.app.Enrollment().DeviceID); err != nil {
			t.Fatal(err)
		}
		if b3.account(t, e.issuer+"/account").signedIn {
			t.Error("a revoked device's session still opens the account page")
		}
		resp, _ := b3.post(t, withdrawURL(e.issuer, rec3.ID), url.Values{"csrf": {v3.csrf}}, origin)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("withdraw with a revoked device's session: %d", resp.StatusCode)
		}
	})
}

// TestAccount_FirstPartyLogin: without a session the page starts a login for
// itself through the eID app; the approval signs the account page as its
// recipient and releases nothing; the continuation checks the browser
// binding and lands on the account page with a session.
func TestAccount_FirstPartyLogin(t *testing.T) {
	e := startMain(t)
	b := newBrowser()
	origin := map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"}
	resp, body := b.post(t, e.issuer+"/account/login?lang=en", url.Values{}, origin)
	m := qrRE.FindStringSubmatch(body)
	noteLoginPage([]byte(body))
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("account login: %d %.300s", resp.StatusCode, body)
	}
	payload, statusURL := html.UnescapeString(m[1]), html.UnescapeString(m[2])
	if !strings.Contains(body, "See and manage your data sharing consents") {
		t.Error("the login page does not say what the login is for")
	}
	res, err := e.app.Approve(context.Background(), payload, pick(payload), false, nil)
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if len(res.Claims) != 0 || res.ClientID != "onedoor account" || res.PurposeCode != "account" {
		t.Errorf("the app approved %+v", res)
	}
	st, next := b.status(t, statusURL)
	if st != "approved" {
		t.Fatalf("status %q", st)
	}
	// Another browser cannot take the continuation.
	if resp, err := newBrowser().Get(next); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("continuation in another browser: %v %v", resp.StatusCode, err)
	}
	loc := b.follow(t, next)
	if loc.String() != e.issuer+"/account?lang=en" {
		t.Fatalf("after approval: %s", loc)
	}
	if v := b.account(t, loc.String()); !v.signedIn || !strings.Contains(v.body, `id="no-consents"`) {
		t.Errorf("account page after first-party login: %.400s", v.body)
	}
	// The continuation works once (its binding cookie is gone, the decision taken).
	if resp, err := b.Get(next); err != nil || (resp.StatusCode != http.StatusGone && resp.StatusCode != http.StatusForbidden) {
		t.Errorf("second continuation: %v %v", resp.StatusCode, err)
	}
}

// TestAccount_Pages: many consents are paged, newest first; a malformed
// cursor is a 400 page, not a 500.
func TestAccount_Pages(t *testing.T) {
	e := startMain(t)
	id, secret := e.consentClient()
	b := newBrowser()
	_, _, first := rpLogin(t, e, e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess), b, id)
	ctx := context.Background()
	var ids []string
	for i := range 12 {
		rec, _, err := e.m.Consent.Grant(ctx, &consent.Record{CitizenID: first.CitizenID, ClientID: id, Recipient: "Cục Thuế",
			Purpose: consent.Purpose{Code: "p" + string(rune('a'+i)), Text: "purpose"}, Items: []string{"name"}, Method: consent.MethodWebForm})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
		time.Sleep(2 * time.Millisecond) // distinct grant times
	}
	p1 := b.account(t, e.issuer+"/account")
	if len(p1.consents) != 10 || p1.consents[0] != ids[11] {
		t.Fatalf("page 1: %v", p1.consents)
	}
	m := nextPageRE.FindStringSubmatch(p1.body)
	if m == nil {
		t.Fatal("no next page link")
	}
	p2 := b.account(t, html.UnescapeString(m[1]))
	if len(p2.consents) != 3 || p2.consents[2] != first.ID || nextPageRE.MatchString(p2.body) {
		t.Errorf("page 2: %v", p2.consents)
	}
	if bad := b.account(t, e.issuer+"/account?cursor=%00garbage"); bad.status != http.StatusBadRequest {
		t.Errorf("malformed cursor: %d", bad.status)
	}
}

// TestAccount_ExpiredSession: a session past its lifetime no longer opens
// the page or withdraws.
func TestAccount_ExpiredSession(t *testing.T) {
	e := startMain(t, func(c *Config) { c.SessionTTL = 2 * time.Second })
	id, secret := e.consentClient()
	b := newBrowser()
	_, _, rec := rpLogin(t, e, e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess), b, id)
	v := b.account(t, e.issuer+"/account")
	if !v.signedIn {
		t.Fatal("no account page right after login")
	}
	time.Sleep(2500 * time.Millisecond)
	if b.account(t, e.issuer+"/account").signedIn {
		t.Error("an expired session opens the account page")
	}
	resp, _ := b.post(t, withdrawURL(e.issuer, rec.ID), url.Values{"csrf": {v.csrf}}, map[string]string{"Origin": e.issuer})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("withdraw with an expired session: %d", resp.StatusCode)
	}
}

// TestBrowser_AccountWithdraw: in a real Chromium at a phone's width, a
// citizen logs in to a relying party with the eID app, opens the account
// page, sees the consent, withdraws it with the page's own button, and the
// relying party's refresh token is then refused; nothing on the way
// violates the pages' CSP.
func TestBrowser_AccountWithdraw(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t)
	// The relying party's redirect URI, served here so the browser lands
	// somewhere real and the test reads the code from it.
	codes := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case codes <- r.URL.Query():
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>RP</title><p id="rp-done">ok</p>`)
	}))
	t.Cleanup(cb.Close)
	id, secret := e.client(ClientSpec{Name: "Cục Thuế", Scope: "openid profile phone offline_access",
		GrantTypes: []string{"authorization_code", "refresh_token"}, Purposes: []consent.Purpose{purposeTax},
		RedirectURIs: []string{cb.URL + "/callback"}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	r.conf.RedirectURL = cb.URL + "/callback"
	authURL, state, nonce, verifier := authorizeURL(r)

	tab := newTab(t, chromium, "en-US,en")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 4*browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(1))); err != nil {
		t.Fatal(err)
	}
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
	loc := &url.URL{RawQuery: q.Encode()}
	tok, _ := e.exchange(r, loc, state, nonce, verifier)
	tok = refresh(t, r, tok.RefreshToken)

	if err := chromedp.Do(ctx, chromedp.Navigate(e.issuer+"/account"), chromedp.WaitVisible(chromedp.ID("account-title"))); err != nil {
		t.Fatalf("account page: %v", err)
	}
	list, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("consents")))
	if err != nil || !strings.Contains(list, "Cục Thuế") || !strings.Contains(list, purposeTax.Text) || !strings.Contains(list, "Active") {
		t.Fatalf("consent list: %q %v", list, err)
	}
	// Usable at 390 px: nothing wider than the viewport, the button reachable
	// by keyboard and named for the recipient.
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil || wide {
		t.Errorf("the account page scrolls sideways at 390 px (%v)", err)
	}
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function () {
		var b = document.querySelector("button.withdraw"); b.focus();
		return document.activeElement === b ? b.getAttribute("aria-label") : "";
	})()`))
	if err != nil || focused != "Withdraw consent from Cục Thuế" {
		t.Errorf("withdraw button focus/label: %q %v", focused, err)
	}
	wctx, wcancel := context.WithTimeout(ctx, browserStep)
	defer wcancel()
	if err := chromedp.Do(wctx, chromedp.Click(chromedp.CSS("button.withdraw")), chromedp.WaitVisible(chromedp.ID("notice"))); err != nil {
		page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " " + document.body.innerText`))
		t.Fatalf("withdraw: %v; page %q; console %v", err, page, console.messages())
	}
	notice, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("notice")))
	status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#consents .status")))
	if !strings.Contains(notice, "Cục Thuế") || !strings.Contains(status, "Withdrawn at") {
		t.Errorf("after withdrawal: notice %q, status %q", notice, status)
	}
	_, err = refreshErr(r, tok.RefreshToken)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh after withdrawal in the browser: %v, want invalid_grant", err)
	}
	console.checkClean(t)
}

// TestAccount_FirstPartyLoginRefused: a login declined in the app, or
// approved by a device revoked before the browser continues, starts no
// session.
func TestAccount_FirstPartyLoginRefused(t *testing.T) {
	e := startMain(t)
	origin := map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"}
	start := func(b *browser) (payload, statusURL string) {
		t.Helper()
		resp, body := b.post(t, e.issuer+"/account/login", url.Values{}, origin)
		m := qrRE.FindStringSubmatch(body)
		noteLoginPage([]byte(body))
		if resp.StatusCode != http.StatusOK || m == nil {
			t.Fatalf("account login: %d", resp.StatusCode)
		}
		return html.UnescapeString(m[1]), html.UnescapeString(m[2])
	}
	cont := func(b *browser, statusURL string) int {
		t.Helper()
		_, next := b.status(t, statusURL)
		resp, err := b.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("Declined", func(t *testing.T) {
		b := newBrowser()
		payload, statusURL := start(b)
		if _, err := e.app.Approve(context.Background(), payload, pick(payload), true, nil); err != nil {
			t.Fatal(err)
		}
		if st := cont(b, statusURL); st != http.StatusForbidden || b.account(t, e.issuer+"/account").signedIn {
			t.Errorf("declined login: %d", st)
		}
	})
	t.Run("DeviceRevoked", func(t *testing.T) {
		b := newBrowser()
		payload, statusURL := start(b)
		if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, nil); err != nil {
			t.Fatal(err)
		}
		c, err := e.m.Store.GetCitizenByPersonalID(context.Background(), demoCitizens[0].PersonalID)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.m.EID.RevokeDevice(context.Background(), c.ID, e.app.Enrollment().DeviceID); err != nil {
			t.Fatal(err)
		}
		if st := cont(b, statusURL); st != http.StatusForbidden || b.account(t, e.issuer+"/account").signedIn {
			t.Errorf("revoked device's login: %d", st)
		}
	})
}
