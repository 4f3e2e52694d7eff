package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/represent"
)

// precheckToken refuses what RFC 6749 refuses and fosite lets through or
// reports with another code.
func precheckToken(r *http.Request) error {
	if p := repeatedParam(r.PostForm); p != "" {
		return fosite.ErrInvalidRequest.WithHintf("The %q parameter is repeated (RFC 6749 section 3.2).", p)
	}
	gt := r.PostForm.Get("grant_type")
	if gt == "" {
		return fosite.ErrInvalidRequest.WithHint("The grant_type parameter is missing.")
	}
	if !slices.Contains(idp.GrantTypes, gt) {
		return fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", gt)
	}
	if _, _, basic := r.BasicAuth(); !basic && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		return fosite.ErrInvalidClient.WithHint("The client did not authenticate.")
	}
	return nil
}

// publicClient reports whether the request carries no client credential: a
// public client (or one pretending to be), which nothing but a limit slows.
func publicClient(r *http.Request) bool {
	// Basic with an empty password is how some libraries send a public
	// client's id: it is no credential.
	_, pass, basic := r.BasicAuth()
	return (!basic || pass == "") && r.PostForm.Get("client_secret") == "" && r.PostForm.Get("client_assertion") == ""
}

// countValues counts the values of a form.
func countValues(form map[string][]string) int {
	n := 0
	for _, v := range form {
		n += len(v)
	}
	return n
}

// repeatedParam names a parameter sent more than once, if any. resource may
// be repeated (RFC 8707 section 2).
func repeatedParam(form map[string][]string) string {
	for k, v := range form {
		if len(v) > 1 && k != "resource" {
			return k
		}
	}
	return ""
}

// token is the token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	s.setDPoPNonce(w)
	if err := precheckToken(r); err != nil {
		if errors.Is(err, fosite.ErrInvalidClient) {
			w.Header().Set("WWW-Authenticate", `Basic realm="onedoor"`)
		}
		s.provider.WriteAccessError(ctx, w, fosite.NewAccessRequest(oidc.NewSession()), err)
		return
	}
	if publicClient(r) && !s.allow(ctx, w, s.limitTokenPublicAddr(), s.clientKey(r)) {
		return
	}
	// The DPoP proof is checked before anything of the grant is touched.
	// Its jti is spent at once only for a request without a client
	// credential, which the per-address limit above has already counted: the
	// eID app's assertion (spent in NewAccessRequest) then stays unspent
	// when its proof is replayed or the replay store is down, and the app
	// may retry it. A request with a credential, which no limit counts
	// before the client authenticates, spends its jti only after that and
	// the per-client limit: a wrong secret must not let strangers fill the
	// replay store with proofs of their own keys.
	proof, err := s.tokenProof(w, r, PathToken, s.cfg.DPoPNonce, !publicClient(r))
	if err == nil && proof == nil && r.PostForm.Get("grant_type") == idp.GrantTypeJWTBearer {
		// The eID app's tokens are always DPoP-bound to its device key and
		// the mobile API takes them only with proofs: a grant without one
		// is refused before its assertion (and jti) is spent.
		err = errInvalidDPoPProof.WithHint("The JWT-bearer grant needs a DPoP proof signed with the device key.")
	}
	if err != nil {
		s.tokenError(w, r, fosite.NewAccessRequest(oidc.NewSession()), err)
		return
	}
	// A grant whose redemption takes something before tokens are minted
	// (CIBA takes the citizen's decision) spends the proof first, from ctx.
	ctx = withPendingProof(ctx, proof, PathToken)
	ar, err := s.provider.NewAccessRequest(ctx, r, oidc.NewSession())
	if err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	// Counted once the client is authenticated, so strangers naming it
	// with a wrong secret do not spend its allowance.
	if !ar.GetClient().IsPublic() && !s.allow(ctx, w, s.limitTokenClient(), ar.GetClient().GetID()) {
		return
	}
	// Before any token is minted or the grant changes: a replayed proof
	// leaves both as they were.
	if err := s.spendPending(ctx); err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	// RFC 8707: the resources asked for here pick the access token's
	// audience (see oidc's GenerateAccessToken); checked in memory.
	resources, err := s.provider.Resources(r.PostForm)
	if err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	switch {
	case ar.GetGrantTypes().ExactOne("client_credentials"):
		// A client acting for itself gets no user-facing scopes. fosite has
		// checked the scopes against the registration; the agency scope
		// also needs the agency (a client registered with the scope before
		// the rule existed has none).
		agency := false
		for _, sc := range ar.GetRequestedScopes() {
			if sc == idp.ScopeAgency {
				if c, ok := ar.GetClient().(*oidc.Client); !ok || c.Record.Agency == "" {
					s.tokenError(w, r, ar, fosite.ErrInvalidScope.WithHint("The agency scope is only for a client bound to an agency."))
					return
				}
				agency = true
			}
			if sc != ScopeOpenID && sc != ScopeOffline {
				ar.GrantScope(sc)
			}
		}
		// The audience: the resources asked for; else the audience
		// parameter (fosite checked it against the resource servers); else,
		// for an agency's own token, the mobile API.
		if len(resources) == 0 {
			for _, a := range ar.GetRequestedAudience() {
				if !slices.Contains(resources, a) {
					resources = append(resources, a)
				}
			}
		}
		if len(resources) == 0 && agency && s.provider.AgencyAudience() != "" {
			resources = []string{s.provider.AgencyAudience()}
		}
		for _, a := range resources {
			ar.GrantAudience(a)
		}
	case ar.GetGrantTypes().ExactOne(idp.GrantTypeJWTBearer):
		// The eID app's own tokens: for the resource servers it names (the
		// mobile API), or the IdP's userinfo.
		for _, a := range resources {
			ar.GrantAudience(a)
		}
	default:
		// A code or refresh token may be exchanged only for resources its
		// grant was authorised for (fosite copies them into the request).
		granted := []string(ar.GetRequestedAudience())
		if len(granted) == 0 {
			granted = []string{s.provider.DefaultAudience()}
		}
		for _, a := range resources {
			if !slices.Contains(granted, a) {
				s.tokenError(w, r, ar, oidc.ErrInvalidTarget.WithHintf("The grant does not cover %q.", a))
				return
			}
		}
	}
	// Before the code or refresh token is spent: a refusal leaves the
	// grant as it was.
	if err := s.checkFAPI2(ar, proof); err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	if err := bindDPoP(ar, proof); err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	rel, err := s.settleSession(ctx, ar)
	if err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	if proof != nil {
		resp.SetTokenType("DPoP")
	}
	// The tokens are minted, not sent: the ID token's release is logged
	// and the consent's receipt attached first, or nothing leaves.
	if err := s.beforeTokensLeave(ctx, ar, resp, rel); err != nil {
		s.releaseFailed(w, r, ar, err)
		return
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// tokenError maps failures to RFC 6749 errors. A store outage is a 503, a
// lost race for a code is invalid_grant, and fosite's 500s on malformed
// client assertions are invalid_client.
func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	if errors.Is(err, idp.ErrUnavailable) {
		// What the failed exchange consumed (a code) goes back before the
		// 503 is written (see middleware), so the retry it asks for is not
		// mistaken for code reuse.
		s.unavailable(w, "store", err)
		return
	}
	if errors.Is(err, fosite.ErrInactiveToken) && r.PostForm.Get("grant_type") == "refresh_token" {
		// A superseded or revoked refresh token came back: fosite has
		// revoked its family. A security event: a stolen token, or a client
		// that lost track of its tokens. Ids only, never the token.
		client := ""
		if ar != nil && ar.GetClient() != nil {
			client = ar.GetClient().GetID()
		}
		s.log.Warn("refresh token reuse: family revoked", "client_id", client)
	}
	err = normaliseError(r, err)
	s.logServerError("token", err)
	s.provider.WriteAccessError(r.Context(), w, ar, err)
}

// normaliseError turns the errors fosite reports as server_error although the
// client caused them into the error the client should see.
func normaliseError(r *http.Request, err error) error {
	// A concurrent redemption of the same code lost the race, either at the
	// atomic invalidation or at fosite's second read of the code.
	if errors.Is(err, idp.ErrConflict) || errors.Is(err, fosite.ErrInvalidatedAuthorizeCode) {
		return fosite.ErrInvalidGrant.WithHint("The authorization code has already been used.")
	}
	// fosite reads the code again when it mints the tokens and calls a
	// missing code a server error; a concurrent redemption can take it
	// between the two reads (while it moves to the used codes): a spent
	// code, invalid_grant.
	// Only an unclassified not-found is that: an unknown client is also a
	// not-found underneath, and stays invalid_client.
	rfc := fosite.ErrorToRFC6749Error(err)
	unclassified := rfc.ErrorField == "error" || rfc.ErrorField == fosite.ErrServerError.ErrorField
	if r != nil && r.PostForm.Get("grant_type") == "authorization_code" && errors.Is(err, fosite.ErrNotFound) && unclassified {
		return fosite.ErrInvalidGrant.WithHint("The authorization code has already been used or has expired.")
	}
	// Client assertions are verified by oidc's clientAuth, which answers
	// every bad one (malformed, expired, replayed) with invalid_client, so
	// a 5xx here is a real server failure.
	if rfc.ErrorField == "error" { // unclassified: answer a standard code
		return fosite.ErrServerError.WithWrap(err)
	}
	return err
}

// par is the pushed authorization request endpoint (RFC 9126).
func (s *Server) par(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.allow(ctx, w, s.limitPARAddr(), s.clientKey(r)) {
		return
	}
	if countValues(r.Form) > maxPARParams {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "A pushed authorization request has at most 40 parameters.")
		return
	}
	if r.Form.Get("request") != "" || r.Form.Get("request_uri") != "" {
		// RFC 9126 2.1: no request_uri; request objects are not supported.
		// Refused before fosite, which would parse an unsigned one.
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "Request objects and request_uri are not accepted at the pushed authorization request endpoint.")
		return
	}
	ar, err := s.provider.NewPushedAuthorizeRequest(ctx, r)
	if err != nil {
		s.parError(w, r, ar, err)
		return
	}
	if p := repeatedParam(r.PostForm); p != "" {
		s.parError(w, r, ar, fosite.ErrInvalidRequest.WithHintf("The %q parameter is repeated.", p))
		return
	}
	if err := s.validateAuthorize(ar, true); err != nil {
		s.parError(w, r, ar, err)
		return
	}
	// A DPoP proof at PAR binds the code to its key, as dpop_jkt does
	// (RFC 9449 section 10.1). No nonce is asked here (but the embedded
	// default's verifier asks for one right after a restart): the proof
	// only names a key, which the token request proves again.
	proof, err := s.tokenProof(w, r, PathPAR, false, true)
	if err == nil {
		err = checkDPoPJKT(r.PostForm, proof)
	}
	if err != nil {
		s.parError(w, r, ar, err)
		return
	}
	if proof != nil {
		ar.GetRequestForm().Set("dpop_jkt", proof.JKT)
	}
	// Counted once the client is authenticated, so nobody can spend another
	// client's allowance by naming it.
	if !s.allow(ctx, w, s.limitPARClient(), ar.GetClient().GetID()) {
		return
	}
	// Its jti too: only a request the client's allowance admits spends one.
	if err := s.spendProof(ctx, PathPAR, proof); err != nil {
		s.parError(w, r, ar, err)
		return
	}
	resp, err := s.provider.NewPushedAuthorizeResponse(ctx, ar, oidc.NewSession())
	if err != nil {
		s.parError(w, r, ar, err)
		return
	}
	s.provider.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

func (s *Server) parError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	if errors.Is(err, idp.ErrUnavailable) {
		s.unavailable(w, "store", err)
		return
	}
	s.provider.WritePushedAuthorizeError(r.Context(), w, ar, normaliseError(r, err))
}

// userinfo returns the claims the citizen agreed to release, read fresh from
// the registry.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	scheme, tok := dpop.Authorization(r.Header.Get("Authorization"))
	if tok == "" && r.Header.Get("Authorization") == "" && r.Method == http.MethodPost {
		scheme, tok = "Bearer", r.PostForm.Get("access_token")
	}
	if tok == "" {
		w.Header().Add("WWW-Authenticate", `Bearer realm="onedoor"`)
		w.Header().Add("WWW-Authenticate", dpop.Challenge("", ""))
		writeJSONError(w, http.StatusUnauthorized, "invalid_request", "An access token is required.")
		return
	}
	// Only citizen tokens minted for userinfo: a client's own token or a
	// token for another resource server is worthless here.
	c, err := s.provider.Verifier.VerifyFor(ctx, tok, accesstoken.Expect{Audience: s.provider.DefaultAudience(), Kind: accesstoken.KindCitizen})
	if err != nil {
		if errors.Is(err, accesstoken.ErrInvalid) {
			s.invalidToken(w, scheme, "invalid_token", "The access token is not valid.")
			return
		}
		s.unavailable(w, "store", err)
		return
	}
	if !s.userinfoProof(w, r, scheme, tok, c) {
		return
	}
	if !slices.Contains(c.Scopes(), ScopeOpenID) {
		s.invalidToken(w, scheme, "insufficient_scope", "The access token lacks the openid scope.")
		return
	}
	if c.Act != nil && represent.IsOrgSubject(c.Subject) {
		s.userinfoOrganisation(ctx, w, scheme, c)
		return
	}
	// A ward's data when a guardian acts for them (sub is the ward's):
	// never the acting citizen's own.
	cit, err := s.store.GetCitizen(ctx, c.Subject)
	if err != nil {
		if errors.Is(err, idp.ErrNotFound) {
			s.invalidToken(w, scheme, "invalid_token", "The access token is not valid.")
			return
		}
		s.unavailable(w, "durable store", err)
		return
	}
	// What the token recorded as agreed, narrowed to what the client may
	// receive now and to the consent's current items: an operator narrowing
	// a client, or the citizen withdrawing, takes effect at once.
	onBehalf, bounded := tokenRepresentative(c.Act, c.Representation)
	rel, err := s.release.Released(ctx, idp.TokenRelease{ClientID: c.ClientID, CitizenID: c.Subject, ConsentID: c.ConsentID, Agreed: c.Released,
		OnBehalf: onBehalf, Bounded: bounded})
	if errors.Is(err, idp.ErrNotFound) || errors.Is(err, idp.ErrConsentWithdrawn) { // the client was deleted, the consent withdrawn
		s.invalidToken(w, scheme, "invalid_token", "The access token is not valid.")
		return
	}
	if err != nil {
		s.unavailable(w, "durable store", err)
		return
	}
	out := citizenClaims(cit, rel.Claims)
	if c.Act != nil {
		more, err := s.actingClaims(ctx, c.Subject, c.Act, c.Representation)
		if err != nil {
			s.unavailable(w, "representation store", err)
			return
		}
		maps.Copy(out, more)
	}
	// No release without its entry in the citizen's access log.
	if err := s.logRelease(ctx, consent.ChannelUserInfo, c.ClientID, c.Subject, rel, personalClaims(out), tokenOnBehalf(c.Act, c.Representation)); err != nil {
		if errors.Is(err, idp.ErrConsentWithdrawn) { // withdrawn since Released looked
			s.invalidToken(w, scheme, "invalid_token", "The access token is not valid.")
			return
		}
		s.unavailable(w, "consent store", err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// authenticateClient authenticates the caller of the introspection and
// revocation endpoints with every method the token endpoint accepts. On
// failure it has written the error and returns nil.
func (s *Server) authenticateClient(w http.ResponseWriter, r *http.Request, endpoint string) *oidc.Client {
	ctx := r.Context()
	if p := repeatedParam(r.PostForm); p != "" {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The "+strconv.Quote(p)+" parameter is repeated.")
		return nil
	}
	if _, _, basic := r.BasicAuth(); !basic && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		s.clientError(w, fosite.ErrInvalidClient.WithHint("The client did not authenticate."))
		return nil
	}
	c, err := s.provider.AuthenticateClient(ctx, r)
	if err != nil {
		if errors.Is(err, idp.ErrUnavailable) {
			s.unavailable(w, "store", err)
			return nil
		}
		err = normaliseError(r, err)
		s.logServerError(endpoint, err)
		s.clientError(w, err)
		return nil
	}
	return c
}

// clientError writes an authentication failure (RFC 6749 5.2).
func (s *Server) clientError(w http.ResponseWriter, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	status := rfc.CodeField
	if rfc.ErrorField == fosite.ErrInvalidClient.ErrorField {
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Basic realm="onedoor"`)
	}
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
	}
	writeJSONError(w, status, rfc.ErrorField, rfc.GetDescription())
}

// isJWT tells an access token (a JWS: three parts) from a refresh token
// (fosite's HMAC token: two parts).
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

// introspection is an RFC 7662 response; only active carries for inactive
// tokens.
type introspection struct {
	Active    bool                      `json:"active"`
	Scope     string                    `json:"scope,omitempty"`
	ClientID  string                    `json:"client_id,omitempty"`
	Subject   string                    `json:"sub,omitempty"`
	ExpiresAt int64                     `json:"exp,omitempty"`
	IssuedAt  int64                     `json:"iat,omitempty"`
	NotBefore int64                     `json:"nbf,omitempty"`
	Audience  []string                  `json:"aud,omitempty"`
	Issuer    string                    `json:"iss,omitempty"`
	TokenType string                    `json:"token_type,omitempty"`
	JTI       string                    `json:"jti,omitempty"`
	Kind      accesstoken.Kind          `json:"kind,omitempty"`
	Cnf       *accesstoken.Confirmation `json:"cnf,omitempty"`
	Agency    string                    `json:"agency,omitempty"`
	// Act and Representation: a represented subject's (RFC 8693 section 4.1).
	Act            *accesstoken.Actor          `json:"act,omitempty"`
	Representation *accesstoken.Representation `json:"representation,omitempty"`
}

// introspect is the token introspection endpoint (RFC 7662). A confidential
// client authenticated like at the token endpoint learns the state of its
// own tokens and of access tokens whose aud names it (it is their resource
// server); every other token, unknown, expired or revoked, is
// {"active": false}. Public clients cannot introspect.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	client := s.authenticateClient(w, r, "introspect")
	if client == nil {
		return
	}
	if client.IsPublic() {
		s.clientError(w, fosite.ErrInvalidClient.WithHint("Public clients cannot introspect tokens."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The token parameter is missing.")
		return
	}
	inactive := introspection{}
	if isJWT(token) {
		c, err := s.provider.Verifier.Verify(ctx, token)
		if err != nil {
			if errors.Is(err, accesstoken.ErrInvalid) {
				writeJSON(w, http.StatusOK, inactive)
				return
			}
			s.unavailable(w, "store", err)
			return
		}
		// A resource server is a client whose client_id is one of the
		// token's audiences; the IdP's own userinfo is no client's.
		rs := slices.Contains(c.Audience, client.GetID()) && client.GetID() != s.provider.DefaultAudience()
		if c.ClientID != client.GetID() && !rs {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		if rs {
			// A deleted client's tokens are inactive (its own requests no
			// longer authenticate, so only a resource server needs this).
			if _, err := s.provider.Clients().GetClient(ctx, c.ClientID); err != nil {
				if errors.Is(err, idp.ErrNotFound) {
					writeJSON(w, http.StatusOK, inactive)
					return
				}
				s.unavailable(w, "durable store", err)
				return
			}
		}
		resp := introspection{Active: true, Scope: c.Scope, ClientID: c.ClientID, Subject: c.Subject,
			Audience: c.Audience, Issuer: c.Issuer, TokenType: "access_token", JTI: c.ID, Kind: c.Kind, Cnf: c.Confirmation, Agency: c.Agency,
			Act: c.Act, Representation: c.Representation}
		if c.Confirmation != nil && c.Confirmation.JKT != "" {
			// RFC 9449 section 6.2: a key-bound token is of type DPoP.
			resp.TokenType = "DPoP"
		}
		resp.ExpiresAt = c.ExpiresAt.Unix()
		resp.IssuedAt = c.IssuedAt.Unix()
		if c.NotBefore != nil {
			resp.NotBefore = c.NotBefore.Unix()
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	g, err := s.provider.LookupRefreshToken(ctx, token)
	switch {
	case errors.Is(err, idp.ErrUnavailable):
		s.unavailable(w, "store", err)
		return
	case err != nil:
		if !errors.Is(err, fosite.ErrNotFound) {
			s.log.Warn("introspect refresh token", "err", err.Error())
		}
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	// A refresh token concerns only the client it was issued to.
	if !g.Active || g.GetClient().GetID() != client.GetID() {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	// A family whose representation ended is refused at its next refresh:
	// it is inactive now.
	if os, ok := g.GetSession().(*oidc.Session); ok && os.Act != nil {
		if _, err := s.representation(ctx, os.Act.Subject, os.Subject); err != nil {
			if errors.Is(err, represent.ErrNotRepresented) {
				writeJSON(w, http.StatusOK, inactive)
				return
			}
			s.unavailable(w, "representation store", err)
			return
		}
	}
	// A family whose consent was withdrawn is refused at its next refresh:
	// it is inactive now.
	if os, ok := g.GetSession().(*oidc.Session); ok && os.ConsentID != "" {
		rec, err := s.consent.Active(ctx, os.ConsentID)
		if err != nil {
			if errors.Is(err, consent.ErrWithdrawn) || errors.Is(err, consent.ErrNotFound) {
				writeJSON(w, http.StatusOK, inactive)
				return
			}
			s.unavailable(w, "consent store", consentOutage(err))
			return
		}
		// Re-granted since by someone else (a guardian over the ward's
		// own, or the ward over a guardian's): the next refresh fails.
		if onBehalf, _ := tokenRepresentative(os.Act, os.Representation); !idp.SameGiver(rec.GivenBy, onBehalf) {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
	}
	resp := introspection{Active: true, Scope: strings.Join(g.GetGrantedScopes(), " "), ClientID: g.GetClient().GetID(),
		Subject: g.GetSession().GetSubject(), IssuedAt: g.GetRequestedAt().Unix(), Issuer: s.cfg.Issuer,
		TokenType: "refresh_token", Kind: accesstoken.KindCitizen}
	if os, ok := g.GetSession().(*oidc.Session); ok && os.KeyThumbprint != "" {
		resp.Cnf = &accesstoken.Confirmation{JKT: os.KeyThumbprint}
	}
	if os, ok := g.GetSession().(*oidc.Session); ok && os.Act != nil {
		resp.Act, resp.Representation = os.Act, os.Representation
	}
	if !g.ExpiresAt.IsZero() {
		resp.ExpiresAt = g.ExpiresAt.Unix()
	}
	writeJSON(w, http.StatusOK, resp)
}

// revoke is the token revocation endpoint (RFC 7009), and precise: revoking
// an access token denies that token alone until it expires (its refresh
// token and later access tokens keep working); revoking a refresh token
// revokes its family and denies every access token of the grant. Only the
// token's own client may revoke it; for anyone else, as for unknown or
// expired tokens, the answer is 200 and nothing happens.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	client := s.authenticateClient(w, r, "revoke")
	if client == nil {
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The token parameter is missing.")
		return
	}
	done := func() {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}
	if isJWT(token) {
		// Parse, not Verify: revoking an already revoked token is a no-op
		// either way, and Parse needs no deny-list read.
		c, err := s.provider.Verifier.Parse(ctx, token)
		switch {
		case errors.Is(err, accesstoken.ErrInvalid):
			done()
		case err != nil:
			s.unavailable(w, "key store", err)
		case c.ClientID != client.GetID():
			done()
		default:
			if err := s.provider.Verifier.RevokeToken(ctx, c); err != nil {
				s.unavailable(w, "durable store", err)
				return
			}
			done()
		}
		return
	}
	g, err := s.provider.LookupRefreshToken(ctx, token)
	switch {
	case errors.Is(err, idp.ErrUnavailable):
		s.unavailable(w, "store", err)
		return
	case err != nil:
		done()
		return
	case g.GetClient().GetID() != client.GetID():
		done()
		return
	}
	if err := s.provider.RevokeGrant(ctx, g.GetID()); err != nil {
		if errors.Is(err, idp.ErrUnavailable) {
			s.unavailable(w, "durable store", err)
			return
		}
		s.log.Error("revoke grant", "err", err.Error())
		writeJSONError(w, http.StatusInternalServerError, "server_error", "The token could not be revoked.")
		return
	}
	done()
}

// logServerError records why fosite answered server_error. fosite's debug
// text names the failing step, never token values.
func (s *Server) logServerError(endpoint string, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == fosite.ErrServerError.ErrorField {
		cause := ""
		if c := rfc.Cause(); c != nil {
			cause = c.Error()
		}
		s.log.Error("server error", "endpoint", endpoint, "debug", rfc.GetDescription()+" "+rfc.DebugField, "cause", cause)
	}
}

// settleSession brings a grant's session up to date before tokens are
// minted from it, and returns what a citizen's code or refresh grant may
// release now (nil for other grants).
func (s *Server) settleSession(ctx context.Context, ar fosite.AccessRequester) (*idp.Release, error) {
	os, ok := ar.GetSession().(*oidc.Session)
	if !ok {
		return nil, nil
	}
	if ar.GetGrantTypes().ExactOne(idp.GrantTypeJWTBearer) {
		// The eID app's own tokens release to the citizen's own app what
		// its scopes name (the device was checked by the assertion). They
		// rest on no consent and are not logged: the citizen is both the
		// subject and the recipient, and no third party receives anything.
		os.Released = nil
		for _, sc := range ar.GetGrantedScopes() {
			os.Released = append(os.Released, idp.ScopeClaims(sc)...)
		}
		return nil, nil
	}
	if !ar.GetGrantTypes().ExactOne("authorization_code") && !ar.GetGrantTypes().ExactOne("refresh_token") && !ar.GetGrantTypes().ExactOne(idp.GrantTypeCIBA) {
		return nil, nil
	}
	if os.DeviceID != "" {
		// A code or refresh family is worth no more than the device that
		// approved it: a code approved just before the device was revoked,
		// or a family created while the revocation ran, yields nothing.
		if err := s.authenticatorActive(ctx, os.Actor(), os.DeviceID); err != nil {
			if errors.Is(err, idp.ErrNotFound) {
				return nil, fosite.ErrInvalidGrant.WithHint("The eID device or passkey that approved this grant has been revoked.")
			}
			return nil, err
		}
	}
	if os.Act != nil {
		// A representation ends at once (a mandate revoked, a ward come of
		// age, a legal representative replaced): re-checked at the code
		// and at every refresh, with the consent below.
		if err := s.recheckRepresentation(ctx, os); err != nil {
			if errors.Is(err, fosite.ErrInvalidGrant) && ar.GetGrantTypes().ExactOne("refresh_token") {
				if rerr := s.provider.RevokeGrant(ctx, ar.GetID()); rerr != nil {
					s.log.Warn("revoke the family of an ended representation", "err", rerr.Error())
				}
			}
			return nil, err
		}
	}
	// A code or refresh re-issues the login's ID token claims and released
	// claims: narrow them to what the client may receive now and to what
	// the consent still covers, so an operator narrowing a client or a
	// citizen withdrawing reaches existing codes and refresh families.
	rel, err := s.narrow(ctx, ar.GetClient().GetID(), os)
	if errors.Is(err, idp.ErrConsentWithdrawn) {
		if ar.GetGrantTypes().ExactOne("refresh_token") {
			// The family is finished; revoke it so it stops at once
			// everywhere, not only at this check.
			if rerr := s.provider.RevokeGrant(ctx, ar.GetID()); rerr != nil {
				s.log.Warn("revoke the family of a withdrawn consent", "err", rerr.Error())
			}
		}
		return nil, fosite.ErrInvalidGrant.WithHint("The citizen withdrew the consent this grant rests on, or it has expired.")
	}
	return rel, err
}

// narrow drops from a session the registry claims the release policy no
// longer lets the client receive, and binds a session minted before
// consent records to the consent it now rests on.
func (s *Server) narrow(ctx context.Context, clientID string, os *oidc.Session) (*idp.Release, error) {
	onBehalf, bounded := tokenRepresentative(os.Act, os.Representation)
	rel, err := s.release.Released(ctx, idp.TokenRelease{ClientID: clientID, CitizenID: os.Subject, ConsentID: os.ConsentID, Agreed: os.Released,
		OnBehalf: onBehalf, Bounded: bounded})
	if err != nil {
		return nil, err
	}
	os.Released = rel.Claims
	if os.ConsentID == "" {
		os.ConsentID = rel.ConsentID
	}
	if os.Claims == nil {
		return rel, nil
	}
	for name := range os.Claims.Extra {
		base := strings.TrimSuffix(name, "_verified")
		if idp.KnownClaim(base) && !slices.Contains(rel.Claims, base) {
			delete(os.Claims.Extra, name)
		}
	}
	return rel, nil
}

// authenticatorActive checks that what approved a grant still stands: the
// eID device, or the citizen's passkey (idp.PasskeyAuthenticator);
// idp.ErrNotFound when it was revoked or removed.
func (s *Server) authenticatorActive(ctx context.Context, citizenID, id string) error {
	pk, ok := idp.PasskeyOfAuthenticator(id)
	if !ok {
		_, err := s.eid.ActiveDevice(ctx, id)
		return err
	}
	if s.cfg.PasskeyStore == nil {
		return fmt.Errorf("passkeys are off: %w", idp.ErrNotFound)
	}
	p, err := s.cfg.PasskeyStore.GetPasskey(ctx, pk)
	if err != nil {
		return err
	}
	if p.CitizenID != citizenID {
		return fmt.Errorf("passkey of another citizen: %w", idp.ErrNotFound)
	}
	return nil
}
