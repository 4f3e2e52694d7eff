package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/oidc"
)

// Without the representation registry, the scope is refused at /authorize
// (and PAR): never a silent downgrade to a login as the citizen. Discovery
// does not offer it either.
func TestRepresentation_OffWithoutRegistry(t *testing.T) {
	s := &Server{cfg: Config{Issuer: "https://id.onedoor.test"}}
	ar := fosite.NewAuthorizeRequest()
	ar.ResponseTypes = fosite.Arguments{"code"}
	ar.RequestedScope = fosite.Arguments{ScopeOpenID, ScopeRepresentation}
	ar.Client = &oidc.Client{Record: &idp.Client{ID: "rp", Scopes: []string{ScopeOpenID, ScopeRepresentation}}}
	ar.Form = url.Values{"code_challenge": {"x"}, "code_challenge_method": {"S256"}}
	var re *fosite.RFC6749Error
	if err := s.validateAuthorize(ar, false); !errors.As(err, &re) || re.ErrorField != "invalid_scope" {
		t.Errorf("validateAuthorize = %v, want invalid_scope", err)
	}

	rec := httptest.NewRecorder()
	s.discovery(rec, httptest.NewRequest(http.MethodGet, PathDiscovery, nil))
	var d discoveryDoc
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(d.ScopesSupported, ScopeRepresentation) || slices.Contains(d.ClaimsSupported, ClaimAct) {
		t.Errorf("discovery offers representation without the registry: %v %v", d.ScopesSupported, d.ClaimsSupported)
	}
}
