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
// the eID app, minted as the code flow mints them; and a refresh token under
// the code flow's rule: the client is registered for the refresh_token grant
// and was granted offline_access. The refresh token starts a family like a
// code's, bound to the approving device and the consent, so revoking either
// (or locking the account) revokes it.
type cibaGrantHandler struct {
	resolver CIBAResolver
	lifespan time.Duration
	idTokens openid.OpenIDConnectTokenStrategy
	idLife   time.Duration
	*oauth2.HandleHelper
	refreshes   oauth2.RefreshTokenStrategy
	refreshSave oauth2.RefreshTokenStorage
	refreshLife time.Duration
	now         func() time.Time
}

// issuesRefresh is fosite's canIssueRefreshToken for the code flow.
func issuesRefresh(r fosite.Requester) bool {
	return r.GetGrantedScopes().Has("offline_access") && r.GetClient().GetGrantTypes().Has("refresh_token")
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
	now := h.now().UTC()
	r.GetSession().SetExpiresAt(fosite.AccessToken, now.Add(h.lifespan))
	if issuesRefresh(r) && h.refreshLife > 0 {
		r.GetSession().SetExpiresAt(fosite.RefreshToken, now.Add(h.refreshLife).Round(time.Second))
	}
	return nil
}

func (h *cibaGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	accessSig, err := issueWithIDToken(ctx, h.HandleHelper, h.idTokens, h.lifespan, h.idLife, r, resp)
	if err != nil || !issuesRefresh(r) || h.refreshes == nil {
		return err
	}
	refresh, refreshSig, err := h.refreshes.GenerateRefreshToken(ctx, r)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	if err := h.refreshSave.CreateRefreshTokenSession(ctx, refreshSig, accessSig, r.Sanitize([]string{})); err != nil {
		return fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
	resp.SetExtra("refresh_token", refresh)
	return nil
}

// SetCIBAResolver lets the web layer, built after the provider, serve the
// CIBA grant; until then the grant is unsupported.
func (p *Provider) SetCIBAResolver(r CIBAResolver) { p.ciba.resolver = r }
