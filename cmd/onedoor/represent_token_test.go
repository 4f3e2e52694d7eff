package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp/accesstoken"
)

// The mobile API's citizen routes take the citizen's own tokens: a token
// acting for someone else (act, representation, rk) is refused even when it
// is otherwise the eID app's, signed by the IdP, for the API and bound to
// the device's key, so an organisation's subject is never taken for a
// citizen's. Whom the app acts for is chosen per application (subject).
func TestMobileAPI_RefusesRepresentedTokens(t *testing.T) {
	t.Parallel()
	e := startMain(t)
	cit := e.citizenAPI(t, e.app)
	cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil)

	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(cit.token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c accesstoken.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	// Acting for another registered citizen (as a guardian for a ward):
	// taken as the caller, it would open the ward's account.
	ward, err := e.m.Store.GetCitizenByPersonalID(t.Context(), demoCitizens[1].PersonalID)
	if err != nil {
		t.Fatal(err)
	}
	c.Act = &accesstoken.Actor{Subject: c.Subject}
	c.Subject = ward.ID
	c.Representation = &accesstoken.Representation{Basis: "guardian", Type: "person"}
	c.RevocationKeys = []string{"rep:guardian:" + ward.ID + ":" + c.Act.Subject}
	forged, err := accesstoken.NewIssuer(e.issuer, e.m.Keys, e.m.Now).Sign(t.Context(), &c)
	if err != nil {
		t.Fatal(err)
	}
	acting := *cit
	acting.token = forged
	if r := acting.do(http.MethodGet, "/v1/me", nil); r.status != http.StatusUnauthorized || !strings.Contains(string(r.body), "acting for someone else") {
		t.Errorf("a token acting for a ward at a citizen route: %d %s, want 401", r.status, r.body)
	}
}
