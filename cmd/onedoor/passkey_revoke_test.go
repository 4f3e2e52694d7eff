package main

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/passkey/passkeytest"
)

// A citizen who lost their phone signs in to the account page with a
// passkey and revokes the phone, within the level rule (a passkey session
// is at most substantial, so it cannot revoke a high device).
func TestAccount_PasskeySessionRevokesDevice(t *testing.T) {
	e := startMain(t)
	_, _, a := passkeyEnv(t, e)
	phone := e.enroll(demoCitizens[0].PersonalID, idp.LevelSubstantial)
	b := newBrowser()
	resp, body := b.post(t, e.issuer+"/account/login?lang=en", url.Values{}, sameOriginHeaders(e))
	passkeyAnswer(t, e, b, resp.StatusCode, []byte(body), a, passkeytest.Options{})
	v := b.account(t, e.issuer+"/account?lang=en")
	if !v.signedIn {
		t.Fatal("passkey account login failed")
	}
	revoke := func(deviceID string) int {
		u := e.issuer + "/account/devices/" + url.PathEscape(deviceID) + "/revoke?lang=en"
		resp, _ := b.post(t, u, url.Values{"csrf": {v.csrf}, "confirm": {"yes"}}, sameOriginHeaders(e))
		return resp.StatusCode
	}
	if got := revoke(e.app.Enrollment().DeviceID); got != http.StatusForbidden {
		t.Errorf("revoke a high device from a passkey session: %d, want 403", got)
	}
	if got := revoke(phone.Enrollment().DeviceID); got != http.StatusSeeOther {
		t.Fatalf("revoke the phone from a passkey session: %d", got)
	}
	if _, err := phone.Login(context.Background()); err == nil {
		t.Error("the revoked phone still logs in")
	}
}
