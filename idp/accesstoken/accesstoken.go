// Package accesstoken issues and verifies OneDoor's access tokens: ES256 JWTs
// in the RFC 9068 profile (typ at+jwt). They are self-contained, so issuing
// one writes nothing; revocation goes to a deny list keyed by the grant.
// Relying services (userinfo now, the mobile API later) share this verifier.
package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
)

// Type is the JOSE typ of an access token (RFC 9068 section 2.1).
const Type = "at+jwt"

// ErrInvalid is returned for any token that fails verification.
var ErrInvalid = errors.New("invalid access token")

// Keys resolves the active ES256 signing key and published keys by kid.
// *keyset.Manager implements it.
type Keys interface {
	SigningKey(ctx context.Context, alg string) (*keyset.Key, error)
	PublicKey(ctx context.Context, kid string) (*keyset.Key, error)
}

// Claims are the access token's claims.
type Claims struct {
	jwt.RegisteredClaims
	ClientID string   `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	GrantID  string   `json:"gid"` // the fosite request id shared by a refresh family
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	Released []string `json:"rel,omitempty"` // claim names the citizen agreed to release
}

// Scopes splits the scope claim.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// Issuer signs access tokens.
type Issuer struct {
	issuer string
	keys   Keys
	now    func() time.Time
}

// NewIssuer returns an issuer for the given issuer URL.
func NewIssuer(issuer string, keys Keys, now func() time.Time) *Issuer {
	if now == nil {
		now = time.Now
	}
	return &Issuer{issuer: issuer, keys: keys, now: now}
}

// Sign returns a signed token for c; Issuer, IssuedAt and ID are filled in.
func (i *Issuer) Sign(ctx context.Context, c *Claims) (string, error) {
	k, err := i.keys.SigningKey(ctx, "ES256")
	if err != nil {
		return "", fmt.Errorf("access token key: %w", err)
	}
	priv, ok := k.Private.(*ecdsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("access token key %s is not ECDSA", k.ID)
	}
	c.Issuer = i.issuer
	c.IssuedAt = jwt.NewNumericDate(i.now())
	c.ID = randomID()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["typ"] = Type
	t.Header["kid"] = k.ID
	return t.SignedString(priv)
}

// Revocations is where revoked grants are recorded until their tokens expire.
type Revocations interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// Verifier checks access tokens.
type Verifier struct {
	issuer  string
	keys    Keys
	revoked Revocations
	skew    time.Duration
	now     func() time.Time
}

// NewVerifier returns a verifier; revoked may be nil to skip the deny list
// (only for tests of the signature path).
func NewVerifier(issuer string, keys Keys, revoked Revocations, skew time.Duration, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{issuer: issuer, keys: keys, revoked: revoked, skew: skew, now: now}
}

func revocationKey(grantID string) string { return "at:revoked:" + grantID }

// Revoke denies every access token of the grant until ttl has passed (the
// access-token lifetime).
func (v *Verifier) Revoke(ctx context.Context, grantID string, ttl time.Duration) error {
	return v.revoked.Set(ctx, revocationKey(grantID), []byte{1}, ttl)
}

// Verify parses and checks token. Errors wrap ErrInvalid, or idp.ErrUnavailable
// when the deny list could not be read: a store outage is never reported as
// an invalid token.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.Parse(ctx, token)
	if err != nil {
		return nil, err
	}
	if v.revoked != nil {
		_, err := v.revoked.Get(ctx, revocationKey(c.GrantID))
		switch {
		case err == nil:
			return nil, fmt.Errorf("grant revoked: %w", ErrInvalid)
		case !errors.Is(err, idp.ErrNotFound):
			return nil, fmt.Errorf("revocation list: %w", err)
		}
	}
	return c, nil
}

// Parse checks the signature and claims but not the deny list.
func (v *Verifier) Parse(ctx context.Context, token string) (*Claims, error) {
	if len(token) > 8192 {
		return nil, fmt.Errorf("token too long: %w", ErrInvalid)
	}
	var c Claims
	var keyErr error
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, Type) && !strings.EqualFold(typ, "application/"+Type) {
			return nil, errors.New("typ is not at+jwt")
		}
		for _, h := range []string{"jku", "x5u", "x5c", "jwk", "crit"} {
			if _, ok := t.Header[h]; ok {
				return nil, fmt.Errorf("header %s not accepted", h)
			}
		}
		kid, _ := t.Header["kid"].(string)
		if !validKID(kid) {
			return nil, errors.New("bad kid")
		}
		k, err := v.keys.PublicKey(ctx, kid)
		if err != nil {
			if !errors.Is(err, idp.ErrNotFound) {
				keyErr = err
			}
			return nil, err
		}
		if k.Alg != "ES256" {
			return nil, errors.New("key is not ES256")
		}
		return k.Public, nil
	},
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithIssuer(v.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.skew),
		jwt.WithTimeFunc(v.now),
	)
	if keyErr != nil {
		return nil, fmt.Errorf("verification key: %w", keyErr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if c.GrantID == "" || c.ClientID == "" {
		return nil, fmt.Errorf("missing gid or client_id: %w", ErrInvalid)
	}
	return &c, nil
}

// validKID accepts only the characters our key ids use, so no path or SQL
// metacharacters ever reach a key lookup.
func validKID(kid string) bool {
	if kid == "" || len(kid) > 64 {
		return false
	}
	for _, r := range kid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SetExpiry sets the exp claim.
func (c *Claims) SetExpiry(t time.Time) { c.ExpiresAt = jwt.NewNumericDate(t) }
