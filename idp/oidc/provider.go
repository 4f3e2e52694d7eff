// Package oidc wires ory/fosite into OneDoor: the provider configuration with
// an explicit handler list, the storage adapter over OneDoor's stores, and the
// token strategies (JWT access tokens, HMAC codes and refresh tokens, ID
// tokens signed with rotating keys).
package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	enigma "github.com/ory/fosite/token/hmac"
	"github.com/ory/fosite/token/jwt"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
)

// Config configures the provider.
type Config struct {
	Issuer string
	// GlobalSecret keys the HMAC of authorization codes and refresh tokens
	// (32 bytes, derived from the master key).
	GlobalSecret []byte
	// SecretKey keys the hash of client secrets.
	SecretKey []byte
	Lifespans Lifespans
	// IDTokenLifespan defaults to one hour.
	IDTokenLifespan time.Duration
	Now             func() time.Time
}

// Provider is the configured fosite provider plus what the HTTP layer needs.
type Provider struct {
	fosite.OAuth2Provider
	Verifier *accesstoken.Verifier
	Config   Config
	hints    *signer
	storage  *Storage
}

// fositeConfig widens fosite's token URLs to include the issuer: openid-client
// and FAPI 2.0 send the issuer as a client assertion's audience, which fosite
// alone refuses.
type fositeConfig struct {
	*fosite.Config
	tokenURLs []string
}

func (c *fositeConfig) GetTokenURLs(context.Context) []string { return c.tokenURLs }

// TokenURL is the token endpoint for an issuer.
func TokenURL(issuer string) string { return issuer + "/token" }

// New builds the provider. The handler list is explicit: code flow with PKCE,
// refresh, client credentials, OpenID Connect, PAR, introspection and
// revocation; no implicit, hybrid or password grants.
func New(cfg Config, store Store, eph idp.Ephemeral, keys accesstoken.Keys) *Provider {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IDTokenLifespan == 0 {
		cfg.IDTokenLifespan = time.Hour
	}
	l := cfg.Lifespans
	fc := &fosite.Config{
		AccessTokenLifespan:             l.AccessToken,
		RefreshTokenLifespan:            l.RefreshToken,
		AuthorizeCodeLifespan:           l.AuthorizeCode,
		IDTokenLifespan:                 cfg.IDTokenLifespan,
		IDTokenIssuer:                   cfg.Issuer,
		AccessTokenIssuer:               cfg.Issuer,
		TokenURL:                        TokenURL(cfg.Issuer),
		GlobalSecret:                    cfg.GlobalSecret,
		ScopeStrategy:                   fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:        fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCE:                     true,
		EnablePKCEPlainChallengeMethod:  false,
		PushedAuthorizeRequestURIPrefix: "urn:ietf:params:oauth:request_uri:",
		PushedAuthorizeContextLifespan:  l.PAR,
		ClientSecretsHasher:             &secretHasher{key: cfg.SecretKey},
		RefreshTokenScopes:              []string{"offline_access"},
		SendDebugMessagesToClients:      false,
		MinParameterEntropy:             fosite.MinParameterEntropy,
		// The registration rule: https, http on loopback, reverse-domain
		// private-use schemes for native apps (RFC 8252).
		RedirectSecureChecker: func(_ context.Context, u *url.URL) bool { return idp.ValidRedirectURI(u.String()) == nil },
	}
	conf := &fositeConfig{Config: fc, tokenURLs: []string{TokenURL(cfg.Issuer), cfg.Issuer, cfg.Issuer + "/"}}

	verifier := accesstoken.NewVerifier(cfg.Issuer, keys, eph, 30*time.Second, cfg.Now)
	storage := NewStorage(store, eph, verifier, l, cfg.Now)
	es := &signer{keys: keys, alg: "ES256"}
	strat := &strategy{
		HMACSHAStrategyUnPrefixed: oauth2.NewHMACSHAStrategyUnPrefixed(&enigma.HMACStrategy{Config: conf}, conf),
		idTokenStrategy: &idTokenStrategy{
			es256: &openid.DefaultStrategy{Signer: es, Config: conf},
			rs256: &openid.DefaultStrategy{Signer: &signer{keys: keys, alg: "RS256"}, Config: conf},
		},
		signer: es,
		at: &accessTokenStrategy{
			issuer:   accesstoken.NewIssuer(cfg.Issuer, keys, cfg.Now),
			verifier: verifier,
			lifespan: l.AccessToken,
			now:      cfg.Now,
		},
	}
	factories := []compose.Factory{
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.PushedAuthorizeHandlerFactory,
	}
	for _, factory := range factories {
		res := factory(conf, storage, strat)
		if h, ok := res.(fosite.AuthorizeEndpointHandler); ok {
			fc.AuthorizeEndpointHandlers.Append(h)
		}
		if h, ok := res.(fosite.TokenEndpointHandler); ok {
			fc.TokenEndpointHandlers.Append(h)
		}
		if h, ok := res.(fosite.TokenIntrospector); ok {
			fc.TokenIntrospectionHandlers.Append(h)
		}
		if h, ok := res.(fosite.RevocationHandler); ok {
			fc.RevocationHandlers.Append(h)
		}
		if h, ok := res.(fosite.PushedAuthorizeEndpointHandler); ok {
			fc.PushedAuthorizeEndpointHandlers.Append(h)
		}
	}
	return &Provider{
		OAuth2Provider: &fosite.Fosite{Store: storage, Config: conf},
		Verifier:       verifier,
		Config:         cfg,
		hints:          es,
		storage:        storage,
	}
}

// HashSecret returns the stored form of a client secret.
func HashSecret(key []byte, secret string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// secretHasher is fosite's client-secret hasher. Client secrets are 256-bit
// random values generated by the server, so a keyed SHA-256 is as strong as a
// password hash against guessing, and it lets the token endpoint serve
// thousands of requests per second instead of the tens a bcrypt would allow.
type secretHasher struct{ key []byte }

func (h *secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return HashSecret(h.key, string(data)), nil
}

func (h *secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) == 0 || !hmac.Equal(hash, HashSecret(h.key, string(data))) {
		return errors.New("secret mismatch")
	}
	return nil
}

// VerifyIDTokenHint checks an ID token we issued, as sent back in
// id_token_hint. Expired tokens are accepted (OIDC RP-Initiated Logout 1.0,
// section 2); a token signed by a retired but still published key verifies.
func (p *Provider) VerifyIDTokenHint(ctx context.Context, token string) (subject string, audience []string, sid string, err error) {
	if len(token) > 8192 {
		return "", nil, "", errors.New("id_token_hint too long")
	}
	t, err := p.hints.Decode(ctx, token)
	if err != nil {
		var ve *jwt.ValidationError
		if !errors.As(err, &ve) || !ve.Has(jwt.ValidationErrorExpired) {
			return "", nil, "", fmt.Errorf("id_token_hint: %w", err)
		}
	}
	if t == nil || t.Claims == nil {
		return "", nil, "", errors.New("id_token_hint: no claims")
	}
	if iss, _ := t.Claims["iss"].(string); iss != p.Config.Issuer {
		return "", nil, "", errors.New("id_token_hint: wrong issuer")
	}
	subject, _ = t.Claims["sub"].(string)
	sid, _ = t.Claims["sid"].(string)
	switch a := t.Claims["aud"].(type) {
	case string:
		audience = []string{a}
	case []any:
		for _, v := range a {
			if s, ok := v.(string); ok {
				audience = append(audience, s)
			}
		}
	}
	if subject == "" || len(audience) == 0 {
		return "", nil, "", errors.New("id_token_hint: missing sub or aud")
	}
	return subject, audience, sid, nil
}
