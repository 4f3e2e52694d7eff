package web

import (
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/oidc"
)

// grantTypes are the grant types the token endpoint serves.
var grantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}

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
	if !slices.Contains(grantTypes, gt) {
		return fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", gt)
	}
	if _, _, basic := r.BasicAuth(); !basic && r.PostForm.Get("client_id") == "" && r.PostForm.Get("client_assertion") == "" {
		return fosite.ErrInvalidClient.WithHint("The client did not authenticate.")
	}
	return nil
}

// repeatedParam names a parameter sent more than once, if any.
func repeatedParam(form map[string][]string) string {
	for k, v := range form {
		if len(v) > 1 {
			return k
		}
	}
	return ""
}

// token is the token endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := precheckToken(r); err != nil {
		if errors.Is(err, fosite.ErrInvalidClient) {
			w.Header().Set("WWW-Authenticate", `Basic realm="onedoor"`)
		}
		s.provider.WriteAccessError(ctx, w, fosite.NewAccessRequest(oidc.NewSession()), err)
		return
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, oidc.NewSession())
	if err != nil {
		s.tokenError(w, r, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		// A client acting for itself gets no user-facing scopes.
		for _, sc := range ar.GetRequestedScopes() {
			if sc != ScopeOpenID && sc != ScopeOffline {
				ar.GrantScope(sc)
			}
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.tokenError(w, r, ar, err)
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
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == fosite.ErrJTIKnown.ErrorField {
		// RFC 7523 3.2: a replayed assertion is an invalid client.
		return fosite.ErrInvalidClient.WithHint("The client assertion was already used.")
	}
	// fosite answers some malformed or expired client assertions with a 500
	// (server_error, or an error it cannot even classify).
	if rfc.CodeField >= 500 && r.PostForm.Get("client_assertion") != "" {
		return fosite.ErrInvalidClient.WithHint("The client assertion could not be verified.")
	}
	if rfc.ErrorField == "error" { // unclassified: answer a standard code
		return fosite.ErrServerError.WithWrap(err)
	}
	return err
}

// par is the pushed authorization request endpoint (RFC 9126).
func (s *Server) par(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
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
	tok := bearer(r)
	if tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="onedoor"`)
		writeJSONError(w, http.StatusUnauthorized, "invalid_request", "An access token is required.")
		return
	}
	c, err := s.provider.Verifier.Verify(ctx, tok)
	if err != nil {
		if errors.Is(err, accesstoken.ErrInvalid) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="onedoor", error="invalid_token"`)
			writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The access token is not valid.")
			return
		}
		s.unavailable(w, "store", err)
		return
	}
	if !slices.Contains(c.Scopes(), ScopeOpenID) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="onedoor", error="insufficient_scope", scope="openid"`)
		writeJSONError(w, http.StatusForbidden, "insufficient_scope", "The access token lacks the openid scope.")
		return
	}
	cit, err := s.store.GetCitizen(ctx, c.Subject)
	if err != nil {
		if errors.Is(err, idp.ErrNotFound) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="onedoor", error="invalid_token"`)
			writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The access token is not valid.")
			return
		}
		s.unavailable(w, "durable store", err)
		return
	}
	writeJSON(w, http.StatusOK, citizenClaims(cit, c.Released))
}

// bearer extracts an access token from the Authorization header or, for
// POST, the form body (RFC 6750 2.1, 2.2).
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	if r.Method == http.MethodPost {
		return r.PostForm.Get("access_token")
	}
	return ""
}

// introspect is the token introspection endpoint (RFC 7662). Inactive or
// unknown tokens answer {"active": false}.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ir, err := s.provider.NewIntrospectionRequest(ctx, r, oidc.NewSession())
	if err != nil {
		if errors.Is(err, idp.ErrUnavailable) {
			s.unavailable(w, "store", err)
			return
		}
		s.provider.WriteIntrospectionError(ctx, w, normaliseError(r, err))
		return
	}
	s.provider.WriteIntrospectionResponse(ctx, w, ir)
}

// revoke is the token revocation endpoint (RFC 7009).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	err := s.provider.NewRevocationRequest(ctx, r)
	if errors.Is(err, idp.ErrUnavailable) {
		s.unavailable(w, "store", err)
		return
	}
	if err != nil {
		err = normaliseError(r, err)
	}
	s.provider.WriteRevocationResponse(ctx, w, err)
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
