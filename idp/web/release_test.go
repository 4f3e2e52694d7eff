package web

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
)

// TestPersonalClaims: what the access log names is every registry claim
// that leaves, and nothing else (sub, azp, the _verified flag are no
// personal claim of their own).
func TestPersonalClaims(t *testing.T) {
	c := &idp.Citizen{ID: "c-1", PersonalID: "001099012345", FamilyName: "Trần", GivenName: "Bình", PhoneNumber: "+84912345678"}
	out := citizenClaims(c, []string{"phone_number", "name", "address", "salary"})
	out["azp"], out["sid"] = "client", "s"
	// address is empty in the registry: it does not leave, nor is it logged.
	if got := personalClaims(out); !slices.Equal(got, []string{"name", "phone_number"}) {
		t.Errorf("personalClaims = %v", got)
	}
	if got := personalClaims(map[string]any{"sub": "c-1"}); got != nil {
		t.Errorf("sub alone: %v", got)
	}
}

// TestErrInvalidAuthorizationDetails: RFC 9396 section 5's error code with a
// 400, whatever hint it carries.
func TestErrInvalidAuthorizationDetails(t *testing.T) {
	rfc := fosite.ErrorToRFC6749Error(errInvalidAuthorizationDetails.WithHint("an item is not a claim the client may receive"))
	if rfc.ErrorField != "invalid_authorization_details" || rfc.CodeField != http.StatusBadRequest {
		t.Errorf("error %q status %d", rfc.ErrorField, rfc.CodeField)
	}
}

// TestConsentOutage: a consent store outage is the IdP's outage (a 503),
// never a denial; other failures stay what they are.
func TestConsentOutage(t *testing.T) {
	if err := consentOutage(errors.Join(consent.ErrUnavailable)); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("outage mapped to %v", err)
	}
	if err := consentOutage(consent.ErrWithdrawn); errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("a withdrawn consent became an outage")
	}
}
