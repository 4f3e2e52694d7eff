package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/onedoor/onedoor/idp/passkey/passkeytest"
)

// Removing a passkey ends the sessions it started: the relying parties
// they logged in to receive back-channel logouts, and the account page no
// longer lists them as active.
func TestPasskey_RemovedPasskeySessionsLoggedOut(t *testing.T) {
	e := startMain(t)
	rcv := newBCLRP(t)
	id, secret := e.bclClient(t, rcv, ClientSpec{})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	ab := newBrowser()
	e.codeFlow(r, ab, e.app) // the consent, and an app session to add the passkey
	a := &passkeytest.Authenticator{}
	if n := addPasskey(t, e, ab, a); n != "added" {
		t.Fatalf("add passkey: %q", n)
	}
	b := newBrowser()
	authURL, state, nonce, verifier := authorizeURL(r)
	_, idt := e.exchange(r, passkeyLogin(t, e, b, authURL, a, passkeytest.Options{}), state, nonce, verifier)
	sid := sidOf(t, idt)

	av := ab.account(t, e.issuer+"/account")
	pk := passkeyItemRE.FindStringSubmatch(av.body)
	if pk == nil {
		t.Fatal("no passkey on the account page")
	}
	if resp, _ := ab.post(t, e.issuer+"/account/passkeys/"+pk[1]+"/delete", url.Values{"csrf": {av.csrf}}, sameOriginHeaders(e)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", resp.StatusCode)
	}
	rcv.waitSID(t, sid)
	if v := ab.account(t, e.issuer+"/account"); strings.Contains(v.body, `data-session="`+sid+`"`) {
		t.Error("the removed passkey's session is still listed as active")
	}
}
