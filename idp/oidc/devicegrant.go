package oidc

import (
	"context"
	"errors"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/onedoor/onedoor/idp"
)

// DeviceAuthenticator verifies a device-signed grant assertion for the token
// endpoint URL audience, spends its jti and returns the device with the
// RFC 7638 thumbprint of its key. Refusals (revoked or unknown device, bad
// signature, replay...) wrap idp.ErrInvalid; anything else is a store failure.
// eid.Service implements it.
type DeviceAuthenticator interface {
	AuthenticateGrant(ctx context.Context, assertion, audience string) (dev *idp.Device, thumbprint string, err error)
}

// deviceGrantHandler serves the eID app's JWT-bearer grant: an access token
// (and an ID token when openid is granted) for the citizen who owns the
// device, bound to the device key, with the device's level of assurance. It
// never issues a refresh token: the app holds its key and signs a new
// assertion instead, so a revoked device can never mint anything again.
type deviceGrantHandler struct {
	auth     DeviceAuthenticator
	tokenURL string
	issuer   string
	lifespan time.Duration
	idTokens openid.OpenIDConnectTokenStrategy
	idLife   time.Duration
	*oauth2.HandleHelper
	now func() time.Time
}

var _ fosite.TokenEndpointHandler = (*deviceGrantHandler)(nil)

func (h *deviceGrantHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(idp.GrantTypeJWTBearer)
}

// CanSkipClientAuth is false: the request names its client (client_id), which
// fosite "authenticates" as a public client by that name alone. The
// assertion is the real authentication, and the handler only serves the eID
// app's own client.
func (h *deviceGrantHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (h *deviceGrantHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	client := r.GetClient()
	if client.GetID() != idp.EIDAppClientID || !client.GetGrantTypes().Has(idp.GrantTypeJWTBearer) {
		return fosite.ErrUnauthorizedClient.WithHint("Only the eID app's own client may use the JWT-bearer grant.")
	}
	form := r.GetRequestForm()
	assertion := form.Get("assertion")
	if assertion == "" {
		return fosite.ErrInvalidRequest.WithHint("The assertion parameter is missing.")
	}
	for _, sc := range r.GetRequestedScopes() {
		if sc == idp.ScopeRepresentation {
			// The app's own tokens are always the citizen's own.
			return fosite.ErrInvalidScope.WithHint("The JWT-bearer grant does not act for anyone else.")
		}
		if sc == "offline_access" {
			return fosite.ErrInvalidScope.WithHint("The JWT-bearer grant issues no refresh token: sign a new assertion instead.")
		}
		if !fosite.ExactScopeStrategy(client.GetScopes(), sc) {
			return fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope %q.", sc)
		}
	}
	if err := fosite.DefaultAudienceMatchingStrategy(client.GetAudience(), r.GetRequestedAudience()); err != nil {
		return err
	}
	dev, jkt, err := h.auth.AuthenticateGrant(ctx, assertion, h.tokenURL)
	if errors.Is(err, idp.ErrInvalid) {
		return fosite.ErrInvalidGrant.WithHint("The assertion is not valid.").WithWrap(err).WithDebug(err.Error())
	}
	if err != nil {
		return err // a store failure: idp.ErrUnavailable becomes a 503
	}

	scopes := r.GetRequestedScopes()
	if len(scopes) == 0 { // RFC 6749 3.3: the registered scopes by default
		for _, sc := range client.GetScopes() {
			if sc != "offline_access" {
				scopes = append(scopes, sc)
			}
		}
	}
	for _, sc := range scopes {
		r.GrantScope(sc)
	}
	for _, a := range r.GetRequestedAudience() {
		r.GrantAudience(a)
	}

	now := h.now().UTC()
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("The session is not a OneDoor session.")
	}
	sess.Subject = dev.CitizenID
	sess.DeviceID = dev.ID
	sess.KeyThumbprint = jkt
	sess.Claims = &jwt.IDTokenClaims{
		Subject:                             dev.CitizenID,
		Issuer:                              h.issuer,
		AuthTime:                            now.Truncate(time.Second),
		RequestedAt:                         now,
		AuthenticationContextClassReference: string(dev.Level),
		// hwk: proof of possession of the device key (RFC 8176).
		AuthenticationMethodsReferences: []string{"hwk"},
		Extra:                           map[string]any{"azp": client.GetID()},
	}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(h.lifespan))
	return nil
}

func (h *deviceGrantHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	_, err := issueWithIDToken(ctx, h.HandleHelper, h.idTokens, h.lifespan, h.idLife, r, resp)
	return err
}

// issueWithIDToken answers a grant whose citizen was authenticated outside
// the authorization endpoint (the eID app's own grant, CIBA): an access
// token and, with openid, an ID token generated from the grant alone. None
// of the authorization-request parameters fosite's strategy would read from
// the form (nonce, prompt, max_age, id_token_hint) belong to such a grant.
// It returns the access token's signature, which a refresh token issued
// beside it names.
func issueWithIDToken(ctx context.Context, hh *oauth2.HandleHelper, idTokens openid.OpenIDConnectTokenStrategy,
	lifespan, idLife time.Duration, r fosite.AccessRequester, resp fosite.AccessResponder) (string, error) {
	sig, err := hh.IssueAccessToken(ctx, lifespan, r, resp)
	if err != nil {
		return "", err
	}
	if !r.GetGrantedScopes().Has("openid") {
		return sig, nil
	}
	idr := &fosite.Request{
		ID:             r.GetID(),
		RequestedAt:    r.GetRequestedAt(),
		Client:         r.GetClient(),
		GrantedScope:   r.GetGrantedScopes(),
		Form:           url.Values{},
		Session:        r.GetSession().Clone(),
		RequestedScope: r.GetRequestedScopes(),
	}
	idt, err := idTokens.GenerateIDToken(ctx, idLife, idr)
	if err != nil {
		return "", err
	}
	resp.SetExtra("id_token", idt)
	return sig, nil
}
