package oidc

import (
	"context"
	"net/http"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"

	"github.com/onedoor/onedoor/idp"
)

// CIBAResolver redeems a CIBA auth_req_id for the authenticated client of
// r: it fills r's Session (a *Session: subject, claims, release, consent)
// and grants scopes and audience, or returns one of the CIBA token errors
// (ErrAuthorizationPending, ErrSlowDown, ErrExpiredToken,
// fosite.ErrAccessDenied, fosite.ErrInvalidGrant). idp/web implements it.
type CIBAResolver interface {
	RedeemCIBA(ctx context.Context, r fosite.AccessRequester, authReqID string) error
}

// The token endpoint's CIBA errors (CIBA Core 1.0 section 11, taken from
// RFC 8628 section 3.5), each a 400.
var (
	ErrAuthorizationPending = &fosite.RFC6749Error{ErrorField: "authorization_pending", CodeField: http.StatusBadRequest,
		DescriptionField: "The citizen has not yet answered the authentication request."}
	ErrSlowDown = &fosite.RFC6749Error{ErrorField: "slow_down", CodeField: http.StatusBadRequest,
		DescriptionField: "The client polls faster than the interval: wait 5 seconds more between polls."}
	ErrExpiredToken = &fosite.RFC6749Error{ErrorField: "expired_token", CodeField: http.StatusBadRequest,
		DescriptionField: "The authentication request has expired."}
)

// cibaGrantHandler serves grant_type=urn:openid:params:grant-type:ciba: an
// access token and an ID token for the citizen who approved the request in
// the eID app, minted as the code flow mints them. No refresh token: a
// counter's or call centre's login is for the call (bc-authorize refuses
// offline_access).
type cibaGrantHandler struct {
	resolver CIBAResolver
	lifespan time.Duration
	idTokens openid.OpenIDConnectTokenStrategy
	idLife   time.Duration
	*oauth2.HandleHelper
	now func() time.Time
}

var _ fosite.TokenEndpointHandler = (*cibaGrantHandler)(nil)

func (h *cibaGrantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(idp.GrantTypeCIBA)
}

// CanSkipClientAuth is false: only the client that made the request may
// redeem it, and CIBA clients are confidential.
func (h *cibaGrantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (h *cibaGrantHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if !r.GetClient().GetGrantTypes().Has(idp.GrantTypeCIBA) {
		return fosite.ErrUnauthorizedClient.WithHint("The client is not registered for the CIBA grant.")
	}
	if h.resolver == nil {
		return fosite.ErrUnsupportedGrantType
	}
	id := r.GetRequestForm().Get("auth_req_id")
	if id == "" {
		return fosite.ErrInvalidRequest.WithHint("The auth_req_id parameter is missing.")
	}
	if err := h.resolver.RedeemCIBA(ctx, r, id); err != nil {
		return err
	}
	r.GetSession().SetExpiresAt(fosite.AccessToken, h.now().UTC().Add(h.lifespan))
	return nil
}

func (h *cibaGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	return issueWithIDToken(ctx, h.HandleHelper, h.idTokens, h.lifespan, h.idLife, r, resp)
}

// SetCIBAResolver lets the web layer, built after the provider, serve the
// CIBA grant; until then the grant is unsupported.
func (p *Provider) SetCIBAResolver(r CIBAResolver) { p.ciba.resolver = r }
