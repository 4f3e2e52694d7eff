package main

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
)

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// logoutGET opens a logout URL; it returns the confirmation form's fields
// when the IdP asks, or the redirect target when it logs out at once.
func logoutGET(t *testing.T, b *browser, u string) (form url.Values, redirect string) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		form = url.Values{}
		for _, m := range hiddenRE.FindAllSubmatch(body, -1) {
			form.Set(html.UnescapeString(string(m[1])), html.UnescapeString(string(m[2])))
		}
		if form.Get("csrf") == "" {
			t.Fatalf("logout page without a confirmation form: %.300s", body)
		}
		return form, ""
	case http.StatusSeeOther, http.StatusFound:
		return nil, resp.Header.Get("Location")
	}
	t.Fatalf("logout: status %d %.300s", resp.StatusCode, body)
	return nil, ""
}

// An id_token_hint is no proof that the browser's citizen wants to log out:
// any client that received an ID token of another citizen, or of an earlier
// session, could send it in a cross-site link. Such a hint gets the
// confirmation page; only a hint of the browser's current session logs out
// at once. Today every valid hint logs out at once.
func TestLogout_HintOfAnotherSessionAsks(t *testing.T) {
	e := startMain(t)
	const bye = "http://127.0.0.1:9/bye"
	id, secret := e.client(ClientSpec{Scope: "openid profile", PostLogoutRedirectURIs: []string{bye}})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	logoutURL := func(hint, state string) string {
		return e.issuer + "/logout?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {bye}, "state": {state}}.Encode()
	}
	alive := func(b *browser) bool {
		u, _, _, _ := authorizeURL(r)
		return !b.showsLoginPage(t, u)
	}

	// Citizen A in browser a, citizen B in browser b.
	a := newBrowser()
	tokA1, _ := e.codeFlow(r, a, e.app)
	hintA1, _ := tokA1.Extra("id_token").(string)
	appB := e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh)
	b := newBrowser()
	tokB, _ := e.codeFlow(r, b, appB)
	hintB, _ := tokB.Extra("id_token").(string)

	t.Run("another citizen's hint", func(t *testing.T) {
		form, redirect := logoutGET(t, a, logoutURL(hintB, "s1"))
		if form == nil {
			t.Fatalf("B's hint logged A out at once (redirect %s)", redirect)
		}
		if !alive(a) {
			t.Fatal("the confirmation page ended A's session")
		}
		if form.Get("id_token_hint") != hintB || form.Get("post_logout_redirect_uri") != bye {
			t.Errorf("confirmation form lost the request: %v", form)
		}
		// The citizen confirms: the logout completes as requested.
		resp, err := a.PostForm(e.issuer+"/logout", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); loc != bye+"?state=s1" {
			t.Errorf("after confirmation: status %d, Location %q", resp.StatusCode, loc)
		}
		if alive(a) {
			t.Error("confirmed logout did not end A's session")
		}
		if !alive(b) {
			t.Error("A's logout ended B's session")
		}
	})

	t.Run("an earlier session's hint", func(t *testing.T) {
		// A logs in again: a new session with a new sid.
		tokA2, _ := e.codeFlow(r, a, e.app)
		hintA2, _ := tokA2.Extra("id_token").(string)
		// An ID token of A's first session.
		if form, redirect := logoutGET(t, a, logoutURL(hintA1, "s2")); form == nil {
			t.Fatalf("a hint of an ended session logged the new one out (redirect %s)", redirect)
		}
		if !alive(a) {
			t.Fatal("the confirmation page ended the session")
		}
		// prompt=login starts yet another session.
		state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
		loc := e.login(a, r.conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "login")), e.app, nil)
		tokA3, _ := e.exchange(r, loc, state, nonce, verifier)
		hintA3, _ := tokA3.Extra("id_token").(string)
		if form, _ := logoutGET(t, a, logoutURL(hintA2, "s3")); form == nil {
			t.Fatal("a hint of the session before prompt=login logged out at once")
		}
		if !alive(a) {
			t.Fatal("the confirmation page ended the session")
		}
		// The current session's own hint logs out at once, as before.
		_, redirect := logoutGET(t, a, logoutURL(hintA3, "s4"))
		if redirect != bye+"?state=s4" {
			t.Fatalf("the current session's hint: redirect %q, want %s?state=s4", redirect, bye)
		}
		if alive(a) {
			t.Error("logout with the current session's hint did not end it")
		}
	})

	t.Run("a hint for a session already gone", func(t *testing.T) {
		// Browser a has no session any more; a fresh browser never had one.
		// There is nothing to end: the IdP returns to the client at once.
		for name, br := range map[string]*browser{"ended": a, "fresh": newBrowser()} {
			_, redirect := logoutGET(t, br, logoutURL(hintA1, "s5"))
			if redirect != bye+"?state=s5" {
				t.Errorf("%s browser: redirect %q, want %s?state=s5", name, redirect, bye)
			}
		}
		if !alive(b) {
			t.Error("a hint of A's ended session ended B's session")
		}
	})
}
