package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// A logout that asks the citizen to confirm ends at the client's
// registered post-logout URI in a real browser: the confirmation page's
// Content-Security-Policy lets its form lead there (Chromium applies
// form-action to the redirect that answers the form).
func TestBrowser_LogoutConfirmReturnsToClient(t *testing.T) {
	chromium := chromiumPath(t)
	bye := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><title>bye</title><p id="bye">bye</p></html>`))
	}))
	defer bye.Close()
	byeURL := bye.URL + "/bye"
	e := startMain(t)
	id, _ := e.client(ClientSpec{Scope: "openid profile", PostLogoutRedirectURIs: []string{byeURL}})
	tab := newTab(t, chromium, "en-US,en")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 2*browserStep)
	defer cancel()
	u := e.issuer + "/logout?client_id=" + url.QueryEscape(id) + "&post_logout_redirect_uri=" + url.QueryEscape(byeURL) + "&state=s1"
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.ID("logout-confirm"))); err != nil {
		t.Fatalf("confirmation page: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("logout-confirm")), chromedp.WaitVisible(chromedp.ID("bye"))); err != nil {
		t.Fatalf("the confirmed logout did not reach the client's post-logout URI: %v", err)
	}
	if href, err := chromedp.Run(ctx, chromedp.Location()); err != nil || !strings.HasPrefix(href, byeURL+"?state=s1") {
		t.Errorf("ended at %q (%v), want %s?state=s1", href, err, byeURL)
	}
	console.checkClean(t)
}
