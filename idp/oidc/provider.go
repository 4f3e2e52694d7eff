// Package oidc wires ory/fosite into OneDoor: the provider configuration with
// an explicit handler list, the storage adapter over OneDoor's stores, and the
// token strategies (JWT access tokens, HMAC codes and refresh tokens, ID
// tokens signed with rotating keys).
package oidc

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
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
	// Resources are the resource servers (RFC 8707) access tokens may be
	// minted for besides the IdP's own userinfo endpoint, which is always
	// known and is the default audience. Each is an absolute URI without a
	// fragment (see ValidResource).
	Resources []string
	// AgencyAudience is the audience of an agency's own token (scope
	// agency, client_credentials) asked for without a resource: the mobile
	// API's URL. It is a resource server whether or not Resources lists
	// it. Empty: such tokens get the default audience.
	AgencyAudience string
	Now            func() time.Time
	// DeviceGrant verifies the eID app's JWT-bearer grant assertions; nil
	// leaves the grant unserved.
	DeviceGrant DeviceAuthenticator
}

// Provider is the configured fosite provider plus what the HTTP layer needs.
type Provider struct {
	fosite.OAuth2Provider
	Verifier  *accesstoken.Verifier
	Config    Config
	hints     *signer
	fosite    *fosite.Fosite
	storage   *Storage
	strategy  *strategy
	resources map[string]bool
	ciba      *cibaGrantHandler
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

// UserinfoURL is the userinfo endpoint for an issuer: the default audience
// of access tokens.
func UserinfoURL(issuer string) string { return issuer + "/userinfo" }

// ErrInvalidTarget is RFC 8707's error for a resource that is malformed or
// not one of the provider's resource servers.
var ErrInvalidTarget = &fosite.RFC6749Error{
	ErrorField:       "invalid_target",
	DescriptionField: "The requested resource is invalid, unknown, or malformed.",
	CodeField:        http.StatusBadRequest,
}

// ValidResource checks the form RFC 8707 section 2 requires of a resource
// indicator: an absolute URI without a fragment.
func ValidResource(r string) error {
	u, err := url.Parse(r)
	if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(r, "#") || len(r) > 2048 {
		return fmt.Errorf("resource %q must be an absolute URI without a fragment: %w", r, idp.ErrInvalid)
	}
	return nil
}

// New builds the provider. The handler list is explicit: code flow with PKCE,
// refresh, client credentials, the eID app's JWT-bearer grant, OpenID
// Connect and PAR; no implicit, hybrid or password grants. Introspection and
// revocation are served by idp/web on top of AuthenticateClient, the verifier
// and LookupRefreshToken: fosite's handlers read only Basic authentication and
// revoke a whole family for one access token.
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
		SanitationWhiteList:             CodeRecordParams(),
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
	resources := map[string]bool{UserinfoURL(cfg.Issuer): true}
	for _, r := range cfg.Resources {
		resources[r] = true
	}
	if cfg.AgencyAudience != "" {
		resources[cfg.AgencyAudience] = true
	}
	// fosite checks granted audiences again on refresh against the client's
	// audience list; OneDoor's audiences are the provider's resource servers.
	fc.AudienceMatchingStrategy = func(_ []string, needle []string) error {
		for _, n := range needle {
			if !resources[n] {
				return ErrInvalidTarget.WithHintf("%q is not a resource server of this provider.", n)
			}
		}
		return nil
	}

	verifier := accesstoken.NewVerifier(cfg.Issuer, keys, store, 30*time.Second, cfg.Now)
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
			// The IdP's own userinfo endpoint.
			defaultAudience: UserinfoURL(cfg.Issuer),
		},
	}
	factories := []compose.Factory{
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
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
		if h, ok := res.(fosite.PushedAuthorizeEndpointHandler); ok {
			fc.PushedAuthorizeEndpointHandlers.Append(h)
		}
	}
	if cfg.DeviceGrant != nil {
		fc.TokenEndpointHandlers.Append(&deviceGrantHandler{
			auth:         cfg.DeviceGrant,
			tokenURL:     TokenURL(cfg.Issuer),
			issuer:       cfg.Issuer,
			lifespan:     fc.GetAccessTokenLifespan(context.Background()),
			idTokens:     strat,
			idLife:       cfg.IDTokenLifespan,
			HandleHelper: &oauth2.HandleHelper{AccessTokenStrategy: strat, AccessTokenStorage: storage, Config: conf},
			now:          cfg.Now,
		})
	}
	ciba := &cibaGrantHandler{
		lifespan:     fc.GetAccessTokenLifespan(context.Background()),
		idTokens:     strat,
		idLife:       cfg.IDTokenLifespan,
		HandleHelper: &oauth2.HandleHelper{AccessTokenStrategy: strat, AccessTokenStorage: storage, Config: conf},
		refreshes:    strat,
		refreshSave:  storage,
		refreshLife:  fc.GetRefreshTokenLifespan(context.Background()),
		now:          cfg.Now,
	}
	fc.TokenEndpointHandlers.Append(ciba)
	f := &fosite.Fosite{Store: storage, Config: conf}
	// Client authentication: fosite's strategy for secrets and public
	// clients; client assertions verified by clientAuth, with keys from the
	// registration or fetched by OneDoor's own JWKS fetcher.
	fc.JWKSFetcherStrategy = NewJWKSFetcher(cfg.Now)
	fc.ClientAuthenticationStrategy = (&clientAuth{
		fallback:  f.DefaultClientAuthenticationStrategy,
		storage:   storage,
		jwks:      fc.JWKSFetcherStrategy,
		tokenURLs: conf.tokenURLs,
		now:       cfg.Now,
	}).authenticate
	return &Provider{
		OAuth2Provider: f,
		Verifier:       verifier,
		Config:         cfg,
		hints:          es,
		fosite:         f,
		storage:        storage,
		strategy:       strat,
		resources:      resources,
		ciba:           ciba,
	}
}

// DefaultAudience is the audience of an access token minted without a
// resource: the IdP's userinfo endpoint.
func (p *Provider) DefaultAudience() string { return UserinfoURL(p.Config.Issuer) }

// AgencyAudience is the audience of an agency's own token asked for without
// a resource (see Config.AgencyAudience); empty when none is configured.
func (p *Provider) AgencyAudience() string { return p.Config.AgencyAudience }

// Resources returns the resource indicators (RFC 8707) of a request form,
// each checked to be an absolute URI without a fragment and one of the
// provider's resource servers; otherwise an error wrapping ErrInvalidTarget.
// Repeated values are allowed (RFC 8707 section 2) and deduplicated.
func (p *Provider) Resources(form url.Values) ([]string, error) {
	vals := form["resource"]
	if len(vals) > 8 {
		return nil, ErrInvalidTarget.WithHint("Too many resource parameters.")
	}
	var out []string
	for _, r := range vals {
		if err := ValidResource(r); err != nil {
			return nil, ErrInvalidTarget.WithHint("A resource must be an absolute URI without a fragment (RFC 8707).")
		}
		if !p.resources[r] {
			return nil, ErrInvalidTarget.WithHintf("%q is not a resource server of this provider.", r)
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out, nil
}

// AuthenticateClient authenticates the client of a request the way the
// token endpoint does (client_secret_basic, client_secret_post,
// private_key_jwt, or none for public clients), for the endpoints OneDoor
// serves itself (introspection, revocation).
func (p *Provider) AuthenticateClient(ctx context.Context, r *http.Request) (*Client, error) {
	c, err := p.fosite.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		return nil, err
	}
	oc, ok := c.(*Client)
	if !ok {
		return nil, fosite.ErrInvalidClient
	}
	return oc, nil
}

// RefreshGrant is what a refresh token stands for.
type RefreshGrant struct {
	fosite.Requester
	// Active is whether the token can be redeemed now: not revoked, not
	// rotated beyond the grace window, not expired.
	Active    bool
	ExpiresAt time.Time
}

// LookupRefreshToken finds the grant of a refresh token; fosite.ErrNotFound
// when token is not one of ours.
func (p *Provider) LookupRefreshToken(ctx context.Context, token string) (*RefreshGrant, error) {
	if token == "" || len(token) > 512 {
		return nil, fosite.ErrNotFound
	}
	sess := NewSession()
	r, err := p.storage.GetRefreshTokenSession(ctx, p.strategy.RefreshTokenSignature(ctx, token), sess)
	inactive := errors.Is(err, fosite.ErrInactiveToken)
	if err != nil && !inactive {
		return nil, err
	}
	if r == nil {
		return nil, fosite.ErrNotFound
	}
	g := &RefreshGrant{Requester: r, Active: !inactive, ExpiresAt: r.GetSession().GetExpiresAt(fosite.RefreshToken)}
	if err := p.strategy.ValidateRefreshToken(ctx, r, token); err != nil {
		if !errors.Is(err, fosite.ErrTokenExpired) {
			return nil, fosite.ErrNotFound.WithWrap(err)
		}
		g.Active = false
	}
	return g, nil
}

// RevokeGrant revokes a refresh-token family and denies every access token
// of the grant: a revoked grant stays revoked.
func (p *Provider) RevokeGrant(ctx context.Context, grantID string) error {
	if err := p.storage.RevokeRefreshToken(ctx, grantID); err != nil {
		return err
	}
	return p.storage.RevokeAccessToken(ctx, grantID)
}

// secretHasher is fosite's client-secret hasher. Client secrets are 256-bit
// random values generated by the server, so a keyed SHA-256 is as strong as a
// password hash against guessing, and it lets the token endpoint serve
// thousands of requests per second instead of the tens a bcrypt would allow.
type secretHasher struct{ key []byte }

func (h *secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return idp.HashClientSecret(h.key, string(data)), nil
}

func (h *secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) == 0 || !hmac.Equal(hash, idp.HashClientSecret(h.key, string(data))) {
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

// Clients looks clients up the way the token endpoint does (request memo,
// then the cache), for the release policy: userinfo then costs no client
// read.
func (p *Provider) Clients() idp.ClientLookup { return clientLookup{p.storage} }

type clientLookup struct{ s *Storage }

func (l clientLookup) GetClient(ctx context.Context, id string) (*idp.Client, error) {
	fc, err := l.s.GetClient(ctx, id)
	if err != nil {
		if errors.Is(err, fosite.ErrNotFound) {
			return nil, fmt.Errorf("client %s: %w", id, idp.ErrNotFound)
		}
		return nil, err
	}
	return fc.(*Client).Record, nil
}
