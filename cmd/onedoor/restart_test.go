package main

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
)

// A restart of a login request that has not expired starts nothing new:
// it shows the same request again, so one authorization request never has
// two live login requests (which would give two codes). Restarts of an
// answered request are refused.
func TestLoginRestart_OnlyOnceExpired(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Name: "X", Scope: "openid profile", Purposes: []consent.Purpose{purposeTax}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	authURL, _, _, _ := authorizeURL(r)
	a := newBrowser()
	payload, statusURL := a.loginPage(t, authURL)
	su, _ := url.Parse(statusURL)
	oldID := su.Query().Get("id")
	restart := e.issuer + "/login/restart?id=" + url.QueryEscape(oldID) + "&lang=en"

	var wg sync.WaitGroup
	locs := make([]string, 2)
	for i := range 2 {
		wg.Go(func() {
			resp, _ := a.post(t, restart, nil, nil)
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("restart of a pending request: %d, want 303 to its own page", resp.StatusCode)
			}
			locs[i] = resp.Header.Get("Location")
		})
	}
	wg.Wait()
	for _, l := range locs {
		u, err := url.Parse(l)
		if err != nil || u.Query().Get("id") != oldID {
			t.Fatalf("restart of a pending request led to %q, want the same request %s", l, oldID)
		}
	}
	_, _, body := a.get(t, locs[0])
	if m := qrRE.FindStringSubmatch(body); m == nil || html.UnescapeString(m[1]) != payload {
		t.Fatalf("the page after a pending restart is not the same request: %.300s", body)
	}
	if _, err := e.app.Approve(t.Context(), payload, pick(payload), false, nil); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if loc := a.follow(t, e.issuer+"/login/continue?id="+url.QueryEscape(oldID)); loc.Query().Get("code") == "" {
		t.Fatalf("the login did not finish: %s", loc)
	}
	if resp, _ := a.post(t, restart, nil, nil); resp.StatusCode != http.StatusGone {
		t.Errorf("restart after the login finished: %d, want 410", resp.StatusCode)
	}
}

// Over the login rate limit, a restart (a browser's form post) is answered
// with a page in the citizen's language and Retry-After, not OAuth JSON.
func TestLoginRestart_RateLimitedIsAPage(t *testing.T) {
	e := startMain(t, shortLogin, func(c *Config) { c.LoginRateLimit = 1 })
	id, secret := e.client(ClientSpec{Name: "X", Scope: "openid profile", Purposes: []consent.Purpose{purposeTax}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	authURL, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("ui_locales", "en"))
	a := newBrowser()
	_, statusURL := a.loginPage(t, authURL)
	su, _ := url.Parse(statusURL)
	a.waitExpired(t, statusURL)
	restart := e.issuer + "/login/restart?id=" + url.QueryEscape(su.Query().Get("id")) + "&lang=en"
	// Another login from this address uses up this minute's one login.
	other, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("ui_locales", "en"))
	a.get(t, other)
	resp, body := a.post(t, restart, nil, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "Too many attempts") {
		t.Fatalf("rate-limited restart: %d %v %.300s, want a 429 page", resp.StatusCode, resp.Header, body)
	}
	if !strings.Contains(body, `id="message-title"`) {
		t.Errorf("the 429 page is not the message page: %.300s", body)
	}
}
