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
