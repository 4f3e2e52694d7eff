package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/onedoor/onedoor/idp/passkey/passkeytest"
)

// A lock is for a lost phone or a stolen account: whoever holds one of the
// citizen's passkeys must not log in again afterwards.
func TestCitizenLock_PasskeysStopWorking(t *testing.T) {
	e := startMain(t)
	r, _, a := passkeyEnv(t, e)
	cit, err := e.m.Store.GetCitizenByPersonalID(context.Background(), demoCitizens[0].PersonalID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.LockCitizen(context.Background(), cit.ID); err != nil {
		t.Fatal(err)
	}
	authURL, _, _, _ := authorizeURL(r)
	if loc := passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{}); loc.Query().Get("passkey") != "failed" {
		t.Errorf("a locked citizen's passkey still logs in: %s", loc)
	}
}

// The account page's lock, from an app session: the passkeys go too.
func TestAccountLock_PasskeysStopWorking(t *testing.T) {
	e := startMain(t)
	r, b, a := passkeyEnv(t, e)
	v := b.account(t, e.issuer+"/account?lang=en")
	h := sameOriginHeaders(e)
	if resp, body := b.post(t, e.issuer+"/account/lock?lang=en", url.Values{"csrf": {v.csrf}, "confirm": {"yes"}}, h); resp.StatusCode != http.StatusOK {
		t.Fatalf("lock: %d %.300s", resp.StatusCode, body)
	}
	authURL, _, _, _ := authorizeURL(r)
	if loc := passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{}); loc.Query().Get("passkey") != "failed" {
		t.Errorf("a passkey still logs in after the citizen locked the account: %s", loc)
	}
}

// The account page's lock from a passkey session: the citizen is most likely
// locking because the phone is gone, so every device goes (the phone can
// approve nothing more), with the passkeys and what they yielded.
func TestAccountLock_FromPasskeySessionRevokesEveryDevice(t *testing.T) {
	e := startMain(t)
	r, _, a := passkeyEnv(t, e)
	// An agency login with the passkey: its access token must die too.
	authURL, state, nonce, verifier := authorizeURL(r)
	tok, _ := e.exchange(r, passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{}), state, nonce, verifier)

	b := newBrowser()
	resp, body := b.post(t, e.issuer+"/account/login?lang=en", url.Values{}, sameOriginHeaders(e))
	passkeyAnswer(t, e, b, resp.StatusCode, []byte(body), a, passkeytest.Options{})
	v := b.account(t, e.issuer+"/account?lang=en")
	if !v.signedIn {
		t.Fatal("the passkey did not sign in to the account page")
	}
	if resp, body := b.post(t, e.issuer+"/account/lock?lang=en", url.Values{"csrf": {v.csrf}, "confirm": {"yes"}}, sameOriginHeaders(e)); resp.StatusCode != http.StatusOK {
		t.Fatalf("lock: %d %.300s", resp.StatusCode, body)
	}
	if _, err := e.app.Login(context.Background()); err == nil {
		t.Error("the citizen's phone still gets tokens after a lock from a passkey session")
	}
	if status, _ := userinfoStatus(t, e.issuer, tok.AccessToken); status == http.StatusOK {
		t.Error("an access token from a passkey login still answers after the lock")
	}
	authURL, _, _, _ = authorizeURL(r)
	if loc := passkeyLogin(t, e, newBrowser(), authURL, a, passkeytest.Options{}); loc.Query().Get("passkey") != "failed" {
		t.Errorf("the passkey still logs in after the lock: %s", loc)
	}
}
