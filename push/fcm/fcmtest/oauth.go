package fcmtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	jwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // a grant type name, not a secret
	messagingScope = "https://www.googleapis.com/auth/firebase.messaging"
	platformScope  = "https://www.googleapis.com/auth/cloud-platform"
	// maxAssertionLife is the longest exp - iat Google accepts.
	maxAssertionLife = time.Hour
	// clockSkew is the leeway granted to the signer's clock.
	clockSkew = 5 * time.Minute
)

type assertionClaims struct {
	jwt.RegisteredClaims
	Scope string `json:"scope"`
}

// serveToken is the RFC 7523 token endpoint: a signed assertion in, an
// opaque bearer token out.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenCalls++
	s.mu.Unlock()

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "The request body is not a form.")
		return
	}
	if gt := r.PostForm.Get("grant_type"); gt != jwtBearerGrant {
		oauthError(w, "unsupported_grant_type", "Unsupported grant_type.")
		return
	}
	assertion := r.PostForm.Get("assertion")
	if assertion == "" {
		oauthError(w, "invalid_request", "The assertion is missing.")
		return
	}
	if code, desc := s.verifyAssertion(assertion); code != "" {
		oauthError(w, code, desc)
		return
	}

	access := "ya29.fake-" + randomToken()
	s.mu.Lock()
	now := time.Now()
	for t, exp := range s.tokens {
		if !now.Before(exp) {
			delete(s.tokens, t)
		}
	}
	life := s.lifetime
	s.tokens[access] = now.Add(life)
	s.mu.Unlock()

	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access,
		"expires_in":   int(life / time.Second),
		"token_type":   "Bearer",
	})
}

// verifyAssertion checks what Google checks of a service account's
// assertion; it returns an OAuth error code and description on refusal.
func (s *Server) verifyAssertion(assertion string) (code, desc string) {
	var claims assertionClaims
	_, err := jwt.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != "" && kid != s.keyID {
			return nil, errors.New("unknown key id")
		}
		return &s.key.PublicKey, nil
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithIssuer(s.clientEmail),
		jwt.WithAudience(s.TokenURI()),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid_grant", "Invalid JWT signature."
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "invalid_grant", "Invalid issuer: unknown service account."
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "invalid_grant", "Invalid JWT: the audience is not the token URI."
	case err != nil && !errors.Is(err, jwt.ErrTokenMalformed):
		return "invalid_grant", "Invalid JWT: iat and exp must describe a short-lived token valid now."
	case err != nil:
		return "invalid_grant", "Invalid JWT: malformed assertion."
	case claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > maxAssertionLife ||
		!claims.ExpiresAt.After(claims.IssuedAt.Time):
		return "invalid_grant", "Invalid JWT: iat and exp must describe a short-lived token valid now."
	}
	scopes := strings.Fields(claims.Scope)
	if !slices.Contains(scopes, messagingScope) && !slices.Contains(scopes, platformScope) {
		return "invalid_scope", "The scope does not cover Firebase Cloud Messaging."
	}
	return "", ""
}

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

// checkBearer reports whether r carries a live access token, and whether
// it carried one at all.
func (s *Server) checkBearer(r *http.Request) (ok, present bool) {
	access, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || access == "" {
		return false, false
	}
	s.mu.Lock()
	exp, known := s.tokens[access]
	s.mu.Unlock()
	return known && time.Now().Before(exp), true
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
