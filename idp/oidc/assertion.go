package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
)

// Client assertions (private_key_jwt, RFC 7523 section 2.2 and OIDC Core 9).
const (
	// ClientAssertionType is the only client_assertion_type accepted.
	ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// MaxAssertionLifetime bounds how far ahead of the server's clock an
	// assertion's exp may be. An assertion is a one-shot credential; clients
	// use lifetimes of one to five minutes. A longer one would have to be
	// remembered (its jti) for as long, and is refused as invalid_client.
	MaxAssertionLifetime = 10 * time.Minute
	// AssertionLeeway is the clock skew allowed on exp, nbf and iat. The
	// replay cache keeps a jti until exp + AssertionLeeway.
	AssertionLeeway  = 30 * time.Second
	maxAssertionSize = 8 << 10
	maxJTILength     = 256
	// maxKeyTries bounds signature checks when the assertion names no kid.
	maxKeyTries = 4
)

// AssertionAlgs are the client-assertion algorithms accepted. A client's
// keys, not its registration, decide which one it uses: the assertion's alg
// must fit the key it names (kid and key type). HS* (client_secret_jwt) and
// none are never accepted.
var AssertionAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.PS256}

// clientAuth is fosite's ClientAuthenticationStrategy: client assertions are
// verified here, every other method by fosite's default strategy.
//
// fosite's own assertion check binds a client to one algorithm, needs
// use=sig on every key, answers an unknown kid with invalid_request and a
// failed key fetch with a 500, and passes no client id to the replay cache.
type clientAuth struct {
	fallback  fosite.ClientAuthenticationStrategy
	storage   *Storage
	jwks      fosite.JWKSFetcherStrategy
	tokenURLs []string
	now       func() time.Time
}

func (a *clientAuth) authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	typ, raw := form.Get("client_assertion_type"), form.Get("client_assertion")
	if typ == "" && raw == "" {
		return a.fallback(ctx, r, form)
	}
	if typ != ClientAssertionType {
		return nil, fosite.ErrInvalidRequest.WithHintf("Unknown client_assertion_type %q.", typ)
	}
	if raw == "" {
		return nil, fosite.ErrInvalidRequest.WithHint("client_assertion is missing.")
	}
	// RFC 6749 section 2.3: one authentication method per request.
	if _, _, basic := r.BasicAuth(); basic || form.Get("client_secret") != "" {
		return nil, fosite.ErrInvalidRequest.WithHint("Use exactly one client authentication method.")
	}
	return a.verify(ctx, form.Get("client_id"), raw)
}

// assertionClaims are the claims read from a client assertion.
type assertionClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.Audience     `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	ID        string           `json:"jti"`
}

func badAssertion(hint string) error {
	return fosite.ErrInvalidClient.WithHint(hint)
}

func (a *clientAuth) verify(ctx context.Context, formClientID, raw string) (fosite.Client, error) {
	if len(raw) > maxAssertionSize {
		return nil, badAssertion("The client assertion is too large.")
	}
	tok, err := jwt.ParseSigned(raw, AssertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, badAssertion("The client assertion must be a JWT signed with ES256, RS256 or PS256.")
	}
	h := tok.Headers[0]
	clientID := formClientID
	if clientID == "" {
		// The client is named by sub (RFC 7523 3); read before verification
		// only to find its keys.
		var unverified assertionClaims
		if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
			return nil, badAssertion("The client assertion's claims do not parse.")
		}
		clientID = unverified.Subject
	}
	if clientID == "" {
		return nil, badAssertion("The client assertion names no client.")
	}
	fc, err := a.storage.GetClient(ctx, clientID)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, badAssertion("Unknown client.")
	}
	if err != nil {
		return nil, err
	}
	c, ok := fc.(*Client)
	if !ok || c.Record.AuthMethod != idp.AuthPrivateKeyJWT {
		return nil, badAssertion("This client does not authenticate with private_key_jwt.")
	}
	if c.Record.IsFAPI2() && !slices.Contains(idp.FAPI2Algs, h.Algorithm) {
		return nil, badAssertion("This client's FAPI 2.0 profile accepts client assertions signed with ES256 or PS256 only.")
	}

	keys, err := a.keys(ctx, c, false)
	if err != nil {
		return nil, err
	}
	alg := jose.SignatureAlgorithm(h.Algorithm)
	candidates := matchingKeys(keys, h.KeyID, alg)
	if len(candidates) == 0 && c.JSONWebKeysURI != "" && !hasKeyID(keys, h.KeyID) {
		// The client may have rotated its keys. The fetcher refetches a URL
		// at most once a minute, so unknown kids cannot drive fetches.
		if keys, err = a.keys(ctx, c, true); err != nil {
			return nil, err
		}
		candidates = matchingKeys(keys, h.KeyID, alg)
	}
	if len(candidates) == 0 {
		return nil, badAssertion("No registered key of the client fits the client assertion's kid and alg.")
	}
	var claims assertionClaims
	verified := false
	for _, k := range candidates[:min(len(candidates), maxKeyTries)] {
		if err := tok.Claims(k, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, badAssertion("The client assertion's signature does not verify.")
	}
	exp, err := a.checkClaims(&claims, clientID)
	if err != nil {
		return nil, err
	}
	// SetClientAssertionJWT refuses a replay atomically (ClientAssertionJWTValid
	// would only cost a read).
	if err := a.storage.SetClientAssertionJWT(WithAssertingClient(ctx, clientID), claims.ID, exp); err != nil {
		if errors.Is(err, fosite.ErrJTIKnown) {
			return nil, badAssertion("The client assertion was already used.")
		}
		return nil, err
	}
	return c, nil
}

func (a *clientAuth) checkClaims(c *assertionClaims, clientID string) (time.Time, error) {
	now := a.now()
	switch {
	case c.Issuer != clientID || c.Subject != clientID:
		return time.Time{}, badAssertion("The client assertion's iss and sub must be the client id.")
	case !slices.ContainsFunc(a.tokenURLs, c.Audience.Contains):
		return time.Time{}, badAssertion("The client assertion's aud must be the token endpoint or the issuer.")
	case c.Expiry == nil:
		return time.Time{}, badAssertion("The client assertion has no exp.")
	case now.After(c.Expiry.Time().Add(AssertionLeeway)):
		return time.Time{}, badAssertion("The client assertion has expired.")
	case c.Expiry.Time().After(now.Add(MaxAssertionLifetime)):
		return time.Time{}, badAssertion("The client assertion's exp is more than 10 minutes ahead.")
	case c.NotBefore != nil && c.NotBefore.Time().After(now.Add(AssertionLeeway)):
		return time.Time{}, badAssertion("The client assertion is not valid yet.")
	case c.IssuedAt != nil && c.IssuedAt.Time().After(now.Add(AssertionLeeway)):
		return time.Time{}, badAssertion("The client assertion was issued in the future.")
	case c.ID == "" || len(c.ID) > maxJTILength:
		return time.Time{}, badAssertion("The client assertion needs a jti of at most 256 characters.")
	}
	return c.Expiry.Time(), nil
}

// keys returns the client's registered keys: the stored document, or the
// key set at its jwks_uri.
func (a *clientAuth) keys(ctx context.Context, c *Client, refresh bool) ([]josev3.JSONWebKey, error) {
	if c.JSONWebKeys != nil {
		return c.JSONWebKeys.Keys, nil
	}
	if c.JSONWebKeysURI == "" {
		return nil, badAssertion("The client has no registered keys.")
	}
	set, err := a.jwks.Resolve(ctx, c.JSONWebKeysURI, refresh)
	if err != nil {
		return nil, err
	}
	return set.Keys, nil
}

func hasKeyID(keys []josev3.JSONWebKey, kid string) bool {
	return kid == "" || slices.ContainsFunc(keys, func(k josev3.JSONWebKey) bool { return k.KeyID == kid })
}

// matchingKeys are the public keys an assertion signed with alg under kid
// may be verified with: the same kid (any, when the assertion names none),
// a signature key, a declared alg equal to alg, and a key type that fits
// alg (P-256 for ES256, RSA of at least 2048 bits for RS256 and PS256).
func matchingKeys(keys []josev3.JSONWebKey, kid string, alg jose.SignatureAlgorithm) []any {
	var out []any
	for _, k := range keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != string(alg)) {
			continue
		}
		switch pk := k.Key.(type) {
		case *ecdsa.PublicKey:
			if alg == jose.ES256 && pk.Curve == elliptic.P256() {
				out = append(out, pk)
			}
		case *rsa.PublicKey:
			if (alg == jose.RS256 || alg == jose.PS256) && pk.N.BitLen() >= 2048 {
				out = append(out, pk)
			}
		}
	}
	return out
}

type assertingClientKey struct{}

// WithAssertingClient names, for the replay cache, the client a client
// assertion authenticated: fosite's ClientManager passes only the jti, and
// SetClientAssertionJWT refuses a jti without a client.
func WithAssertingClient(ctx context.Context, clientID string) context.Context {
	return context.WithValue(ctx, assertingClientKey{}, clientID)
}

func assertingClient(ctx context.Context) string {
	id, _ := ctx.Value(assertingClientKey{}).(string)
	return id
}
