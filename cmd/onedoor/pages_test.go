package main

import (
	"flag"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
)

// The IdP's own pages as a citizen meets them: how logout ends, what an
// expired login offers, and who may start a login request again.

var (
	messageTitleRE = regexp.MustCompile(`id="message-title">([^<]*)<`)
	messageRE      = regexp.MustCompile(`id="message">([^<]*)<`)
	startAgainRE   = regexp.MustCompile(`<form method="post" action="([^"]+/login/restart[^"]*)">`)
	logoutActionRE = regexp.MustCompile(`<form method="post" action="([^"]+/logout[^"]*)">`)
)

// get fetches u and returns status, Location and body.
func (b *browser) get(t *testing.T, u string) (int, string, string) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), string(body)
}

func firstMatch(re *regexp.Regexp, body string) string {
	if m := re.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// TestLogout_EndsOnLoggedOutPage: without post_logout_redirect_uri the
// logout ends on a page that says so in the citizen's language; with one it
// returns to the client (OIDC RP-Initiated Logout), as before.
func TestLogout_EndsOnLoggedOutPage(t *testing.T) {
	e := startMain(t)
	const bye = "http://127.0.0.1:9/bye"
	id, secret := e.client(ClientSpec{Scope: "openid profile", PostLogoutRedirectURIs: []string{bye}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	for _, c := range []struct{ name, query, title, msg string }{
		{"English by lang", "lang=en", "Logged out", "You have logged out of OneDoor."},
		{"Vietnamese by ui_locales", "ui_locales=vi", "Đã đăng xuất", "Bạn đã đăng xuất khỏi OneDoor."},
		{"English by ui_locales with a client but no redirect", "ui_locales=en&client_id=" + url.QueryEscape(id), "Logged out", "You have logged out of OneDoor."},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBrowser()
			e.codeFlow(r, b, e.app)
			status, _, body := b.get(t, e.issuer+"/logout?"+c.query)
			action := firstMatch(logoutActionRE, body)
			if status != http.StatusOK || action == "" {
				t.Fatalf("logout: %d, no confirmation form: %.300s", status, body)
			}
			form, _ := logoutGET(t, b, e.issuer+"/logout?"+c.query)
			resp, out := b.post(t, action, form, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("confirmed logout: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := firstMatch(messageTitleRE, out); got != c.title {
				t.Errorf("title %q, want %q", got, c.title)
			}
			if got := firstMatch(messageRE, out); got != c.msg {
				t.Errorf("message %q, want %q", got, c.msg)
			}
			if u, _, _, _ := authorizeURL(r); !b.showsLoginPage(t, u) {
				t.Error("the session survived the logout")
			}
		})
	}
	t.Run("with a registered redirect", func(t *testing.T) {
		b := newBrowser()
		tok, _ := e.codeFlow(r, b, e.app)
		hint, _ := tok.Extra("id_token").(string)
		_, redirect := logoutGET(t, b, e.issuer+"/logout?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {bye}, "state": {"s1"}, "ui_locales": {"en"}}.Encode())
		if redirect != bye+"?state=s1" {
			t.Errorf("redirect %q, want %s?state=s1", redirect, bye)
		}
	})
	t.Run("a refused logout request offers a plain logout", func(t *testing.T) {
		b := newBrowser()
		status, _, body := b.get(t, e.issuer+"/logout?"+url.Values{"post_logout_redirect_uri": {"https://evil.example/"}, "client_id": {id}, "lang": {"en"}}.Encode())
		if status != http.StatusBadRequest || !strings.Contains(body, `id="logout-again"`) || !strings.Contains(body, "<code>invalid_request</code>") ||
			strings.Contains(body, "not registered for this client") {
			t.Errorf("refused logout: %d %.600s", status, body)
		}
	})
}

// TestErrorPage_NoServerText: an authorization error that cannot go back to
// the client is explained in the citizen's language; fosite's and our own
// English descriptions stay off the page.
func TestErrorPage_NoServerText(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	good, _, _, _ := authorizeURL(r)
	bad := func(k, v string) string {
		u, _ := url.Parse(good)
		q := u.Query()
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		q.Set("ui_locales", "en")
		u.RawQuery = q.Encode()
		return u.String()
	}
	for _, c := range []struct{ name, u, code, text string }{
		{"unknown client", bad("client_id", "no-such-client"), "invalid_client", "is not registered with OneDoor"},
		{"unregistered redirect", bad("redirect_uri", "https://evil.example/cb"), "invalid_request", "The return address this site sent is not registered"},
		{"request object", bad("request", "x.y.z"), "request_not_supported", "sent a login request OneDoor cannot accept"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, _, body := newBrowser().get(t, c.u)
			if status != http.StatusBadRequest && status != http.StatusUnauthorized {
				t.Errorf("status %d", status)
			}
			if !strings.Contains(body, c.text) || !strings.Contains(body, "Error code: <code>"+c.code+"</code>") {
				t.Errorf("page lacks the explanation or the code reference: %.900s", body)
			}
			for _, english := range []string{"Client authentication failed", "The redirect_uri is not registered", "Request objects are not supported", "The request is missing"} {
				if strings.Contains(body, english) {
					t.Errorf("server text %q on the page", english)
				}
			}
		})
	}
}

// waitExpired polls the status URL until the login request has expired.
func (b *browser) waitExpired(t *testing.T, statusURL string) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if st, _ := b.status(t, statusURL); st == "expired" {
			return
		}
		if time.Now().After(end) {
			t.Fatal("the login request did not expire")
		}
	}
}

func shortLogin(c *Config) { c.LoginTTL = 2 * time.Second }

// TestLoginRestart: an expired login request can be started again, by the
// browser that made it only, once, and with its parameters as they were:
// the new login ends at the client with the original state, nonce and PKCE.
func TestLoginRestart(t *testing.T) { runLoginRestart(t, startMain(t, shortLogin)) }

// The restart record lives in Redis with a TTL in scale mode.
func TestLoginRestart_PostgresRedis(t *testing.T) {
	runLoginRestart(t, startMain(t, shortLogin, scaleOption(t)))
}

func runLoginRestart(t *testing.T, e *testEnv) {
	id, secret := e.client(ClientSpec{Name: "Cục Thuế", Scope: "openid profile offline_access",
		GrantTypes: []string{"authorization_code", "refresh_token"}, Purposes: []consent.Purpose{purposeTax}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	authURL, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("ui_locales", "en"))
	a := newBrowser()
	oldPayload, statusURL := a.loginPage(t, authURL)
	su, _ := url.Parse(statusURL)
	oldID := su.Query().Get("id")
	a.waitExpired(t, statusURL)
	continueURL := e.issuer + "/login/continue?id=" + url.QueryEscape(oldID) + "&lang=en"

	// The expired page offers to start again to the browser that made the
	// request, and only a way back to anyone else.
	status, _, body := a.get(t, continueURL)
	restart := firstMatch(startAgainRE, body)
	if status != http.StatusGone || restart == "" || !strings.Contains(body, `id="start-again"`) {
		t.Fatalf("expired page in the request's browser: %d, start again %q: %.600s", status, restart, body)
	}
	other := newBrowser()
	if status, _, body := other.get(t, continueURL); status != http.StatusGone || strings.Contains(body, "start-again") || !strings.Contains(body, `id="back-home"`) {
		t.Errorf("expired page in another browser: %d %.600s", status, body)
	}

	t.Run("another browser cannot restart it", func(t *testing.T) {
		resp, body := other.post(t, restart, nil, nil)
		if resp.StatusCode != http.StatusGone || strings.Contains(body, `id="eid-qr"`) {
			t.Errorf("restart from another browser: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("a cross-site post cannot restart it", func(t *testing.T) {
		resp, _ := a.post(t, restart, nil, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site restart: %d", resp.StatusCode)
		}
	})

	// Parameters sent with the restart change nothing.
	tampered := url.Values{"redirect_uri": {"https://evil.example/cb"}, "scope": {"openid agency"}, "state": {"evil"}, "client_id": {"other"}}
	resp, _ := a.post(t, restart+"&"+tampered.Encode(), tampered, nil)
	next := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(next, e.issuer+"/login/continue?") {
		t.Fatalf("restart: %d, Location %q", resp.StatusCode, next)
	}
	status, _, body = a.get(t, next)
	m := qrRE.FindStringSubmatch(body)
	noteLoginPage([]byte(body))
	if status != http.StatusOK || m == nil {
		t.Fatalf("restarted login page: %d %.300s", status, body)
	}
	payload, newStatus := html.UnescapeString(m[1]), html.UnescapeString(m[2])
	if payload == oldPayload {
		t.Fatal("the restart showed the expired request again")
	}
	if !strings.Contains(body, `<html lang="en">`) || !strings.Contains(body, `id="access-duration"`) {
		t.Errorf("restarted page lost its language or access duration")
	}
	if resp, _ := a.post(t, restart, nil, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("second restart of the same request: %d, want 410", resp.StatusCode)
	}
	if _, err := e.app.Approve(t.Context(), payload, pick(payload), false, nil); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if st, _ := a.status(t, newStatus); st != "approved" {
		t.Fatalf("status after approval %q", st)
	}
	loc := a.follow(t, e.issuer+"/login/continue?"+strings.SplitN(newStatus, "?", 2)[1])
	if loc.Host != "127.0.0.1:9" || loc.Query().Get("state") != state {
		t.Fatalf("after the restarted login at %s, want the client's callback with state %q", loc, state)
	}
	e.exchange(r, loc, state, nonce, verifier)
}

// TestConfig_Brand: the --brand-* flags and --brand-file make the pages'
// header; flags override the file, and bad URLs, numbers or files stop
// the server at start with every problem named.
func TestConfig_Brand(t *testing.T) {
	dir := t.TempDir()
	theme := filepath.Join(dir, "brand.json")
	if err := os.WriteFile(theme, []byte(`{"name":"Cổng DVC","names":{"en":"Public Service Portal"},"help_url":"https://help.example.gov.vn/","hotline":"1900 1234","privacy_url":"https://example.gov.vn/privacy"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.BrandFile, c.BrandHotline = theme, "024 3333 4444"
	b, probs := c.Brand()
	if len(probs) > 0 || b.Name != "Cổng DVC" || b.Names["en"] != "Public Service Portal" || b.HelpURL != "https://help.example.gov.vn/" || b.Hotline != "024 3333 4444" {
		t.Errorf("brand from file and flags: %+v %v", b, probs)
	}
	if err := c.Validate(true); err != nil {
		t.Errorf("valid brand refused: %v", err)
	}

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"name":"x","colour":"red"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c = DefaultConfig()
	c.BrandFile, c.BrandHelpURL, c.BrandPrivacyURL, c.BrandHotline = bad, "/help", "javascript:alert(1)", "call us"
	err := c.Validate(true)
	for _, want := range []string{"--brand-file", `unknown field "colour"`, "--brand-help-url must be an absolute http(s) URL", "--brand-privacy-url must be an absolute http(s) URL", "--brand-hotline"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want a problem naming %s", err, want)
		}
	}
	c = DefaultConfig()
	c.BrandFile = filepath.Join(dir, "missing.json")
	if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "--brand-file") {
		t.Errorf("missing brand file: %v", err)
	}

	// The flags reach the pages; an unset link is not shown.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c = DefaultConfig()
	c.serveFlags(fs)
	if err := parseFlags(fs, []string{"--brand-name", "Cổng Dịch vụ công", "--brand-help-url", "https://help.example.gov.vn/"}, func(n string) string {
		if n == "ONEDOOR_BRAND_HOTLINE" {
			return "1900 0000"
		}
		return ""
	}); err != nil {
		t.Fatal(err)
	}
	e := startMain(t, func(cfg *Config) {
		cfg.BrandName, cfg.BrandHelpURL, cfg.BrandHotline = c.BrandName, c.BrandHelpURL, c.BrandHotline
	})
	status, _, body := newBrowser().get(t, e.issuer+"/logout?lang=vi")
	for _, want := range []string{`<header role="banner"`, `id="brand-name">Cổng Dịch vụ công<`, `id="brand-help" href="https://help.example.gov.vn/"`, `id="brand-hotline"`, "đăng xuất khỏi Cổng Dịch vụ công trên trình duyệt này"} {
		if status != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("logout page (%d) lacks %s", status, want)
		}
	}
	if strings.Contains(body, "brand-privacy") {
		t.Error("the logout page links an unset privacy policy")
	}
}
