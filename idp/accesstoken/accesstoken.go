// Package accesstoken issues and verifies OneDoor's access tokens: ES256 JWTs
// in the RFC 9068 profile (typ at+jwt). They are self-contained, so issuing
// one writes nothing. Every token names its audience (aud, RFC 9068 2.2) and
// its kind (a citizen's or a client's own), and a relying service accepts
// only tokens minted for it: VerifyFor. Revocation goes to a durable deny
// list (idp.RevocationStore) keyed by grant, token, device and consent,
// checked in one read. Relying services (userinfo now, the mobile API later) share this
// verifier.
package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
)

// Type is the JOSE typ of an access token (RFC 9068 section 2.1).
const Type = "at+jwt"

// MaxLifetime is the longest an access token may live. The verifier refuses
// longer-lived tokens, so a grant or device denied for MaxLifetime has no
// token left that outlives the denial.
const MaxLifetime = time.Hour

// ErrInvalid is returned for any token that fails verification.
var ErrInvalid = errors.New("invalid access token")

// Kind says for whom a token was minted.
type Kind string

// Token kinds.
const (
	// KindCitizen: a citizen's token, obtained by a client the citizen
	// logged in to (or by the eID app itself). sub is the citizen.
	KindCitizen Kind = "citizen"
	// KindClient: a client acting for itself (client_credentials); sub is
	// the client_id.
	KindClient Kind = "client"
)

// Keys resolves the active ES256 signing key and published keys by kid.
// *keyset.Manager implements it.
type Keys interface {
	SigningKey(ctx context.Context, alg string) (*keyset.Key, error)
	PublicKey(ctx context.Context, kid string) (*keyset.Key, error)
}

// Confirmation is the cnf claim (RFC 7800): the key the token is bound to.
type Confirmation struct {
	// JKT is the base64url SHA-256 JWK thumbprint (RFC 7638) of that key.
	JKT string `json:"jkt,omitempty"`
}

// Claims are the access token's claims.
type Claims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	GrantID  string `json:"gid"` // the fosite request id shared by a refresh family
	Kind     Kind   `json:"kind"`
	// DeviceID is the eID device that approved the login or holds the token
	// (citizen tokens).
	DeviceID     string        `json:"did,omitempty"`
	Confirmation *Confirmation `json:"cnf,omitempty"`
	AuthTime     int64         `json:"auth_time,omitempty"`
	ACR          string        `json:"acr,omitempty"`
	Released     []string      `json:"rel,omitempty"` // claim names the citizen agreed to release
	// ConsentID is the citizen's consent record the release rests on: its
	// withdrawal denies the token (ConsentKey).
	ConsentID string `json:"cid,omitempty"`
	// Agency is the code of the agency a client's own token acts for
	// (idp.Client.Agency), so a resource server knows it without a lookup.
	// Only client tokens carry it.
	Agency string `json:"agency,omitempty"`
	// ClientRegistered is when the client's registration was created (unix
	// ms), on a client's own tokens: a client id deleted and registered
	// again (a replaced secret) does not revive the old registration's
	// tokens, even within the same second.
	ClientRegistered int64 `json:"creg,omitempty"`
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
// The claims must name an audience and a kind.
func (i *Issuer) Sign(ctx context.Context, c *Claims) (string, error) {
	if len(c.Audience) == 0 || (c.Kind != KindCitizen && c.Kind != KindClient) {
		return "", errors.New("access token without audience or kind")
	}
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

// Deny-list keys. Each names what is revoked; a token is refused when its
// grant, its own jti or its device is on the list.

// GrantKey is the deny-list key of a grant (a refresh family and every
// access token minted from it).
func GrantKey(grantID string) string { return "grant:" + grantID }

// TokenKey is the deny-list key of one access token.
func TokenKey(jti string) string { return "token:" + jti }

// DeviceKey is the deny-list key of an eID device: every access token it
// approved or holds.
func DeviceKey(deviceID string) string { return "device:" + deviceID }

// ConsentKey is the deny-list key of a citizen's consent: every access
// token released under it.
func ConsentKey(consentID string) string { return "consent:" + consentID }

// DenyConsent denies every access token released under the consent (the
// cid claim) for MaxLifetime, with the same margin as DenyDevice: the
// consent service calls it when the citizen withdraws.
func DenyConsent(ctx context.Context, revoked idp.RevocationStore, consentID string, now time.Time) error {
	return revoked.Revoke(ctx, ConsentKey(consentID), now.Add(MaxLifetime+denyMargin))
}

// DenyKeys denies every access token carrying any of the keys (a
// representation's revocation keys, the rep claim's chain) for
// MaxLifetime, with the same margin as DenyConsent: representation calls
// it when a mandate is revoked, a legal representative replaced or a
// guardianship ended. It stops at the first failure; denying again is
// harmless.
func DenyKeys(ctx context.Context, revoked idp.RevocationStore, now time.Time, keys ...string) error {
	until := now.Add(MaxLifetime + denyMargin)
	for _, k := range keys {
		if err := revoked.Revoke(ctx, k, until); err != nil {
			return err
		}
	}
	return nil
}

// Verifier checks access tokens.
type Verifier struct {
	issuer  string
	keys    Keys
	revoked idp.RevocationStore
	skew    time.Duration
	now     func() time.Time
}

// NewVerifier returns a verifier; revoked may be nil to skip the deny list
// (only for tests of the signature path).
func NewVerifier(issuer string, keys Keys, revoked idp.RevocationStore, skew time.Duration, now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{issuer: issuer, keys: keys, revoked: revoked, skew: skew, now: now}
}

// denyAll is how long a grant or device stays denied: longer than any token
// minted before the denial (or in flight while it was written) can live.
func (v *Verifier) denyAll() time.Time { return v.now().Add(MaxLifetime + v.skew + time.Minute) }

// RevokeGrant denies every access token of the grant. Refresh tokens are
// revoked separately, in the refresh store.
func (v *Verifier) RevokeGrant(ctx context.Context, grantID string) error {
	return v.revoked.Revoke(ctx, GrantKey(grantID), v.denyAll())
}

// DenyDevice denies every access token the device approved or holds (the did
// claim) for MaxLifetime, with a margin wider than any verifier's clock skew.
// The eID service calls it when a device is revoked, from the app or an
// admin command.
func DenyDevice(ctx context.Context, revoked idp.RevocationStore, deviceID string, now time.Time) error {
	return revoked.Revoke(ctx, DeviceKey(deviceID), now.Add(MaxLifetime+denyMargin))
}

// denyMargin outlasts the clock skew verifiers allow (30 s here) and the
// replicas' disagreement about now.
const denyMargin = 5 * time.Minute

// RevokeToken denies one access token until it expires; other tokens of its
// grant are untouched.
func (v *Verifier) RevokeToken(ctx context.Context, c *Claims) error {
	until := v.now().Add(MaxLifetime)
	if c.ExpiresAt != nil {
		until = c.ExpiresAt.Time
	}
	return v.revoked.Revoke(ctx, TokenKey(c.ID), until.Add(v.skew+time.Second))
}

// Expect is what a relying service accepts.
type Expect struct {
	// Audience is the service's own identifier; the token's aud must
	// contain it.
	Audience string
	// Kind is the kind of token the service serves.
	Kind Kind
}

// VerifyFor checks token and that it was minted for exp: its aud contains
// exp.Audience and its kind is exp.Kind. This is the entry point for every
// relying service. Errors wrap ErrInvalid, or idp.ErrUnavailable when a
// store could not be read.
func (v *Verifier) VerifyFor(ctx context.Context, token string, exp Expect) (*Claims, error) {
	if exp.Audience == "" || exp.Kind == "" {
		return nil, fmt.Errorf("expectation without audience or kind: %w", ErrInvalid)
	}
	c, err := v.Parse(ctx, token)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(c.Audience, exp.Audience) {
		return nil, fmt.Errorf("token not minted for this audience: %w", ErrInvalid)
	}
	if c.Kind != exp.Kind {
		return nil, fmt.Errorf("token of kind %q, want %q: %w", c.Kind, exp.Kind, ErrInvalid)
	}
	if err := v.checkRevoked(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Verify checks token and the deny list but NOT its audience or kind. Only
// the IdP itself uses it, where the caller's relation to the token is
// checked separately (introspection, the fosite storage); a relying service
// must use VerifyFor. Errors wrap ErrInvalid, or idp.ErrUnavailable when the
// deny list could not be read: a store outage is never reported as an
// invalid token.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	c, err := v.Parse(ctx, token)
	if err != nil {
		return nil, err
	}
	if err := v.checkRevoked(ctx, c); err != nil {
		return nil, err
	}
	return c, nil
}

// checkRevoked asks the deny list about the token's grant, jti, device and
// consent in one read.
func (v *Verifier) checkRevoked(ctx context.Context, c *Claims) error {
	if v.revoked == nil {
		return nil
	}
	keys := []string{GrantKey(c.GrantID), TokenKey(c.ID)}
	if c.DeviceID != "" {
		keys = append(keys, DeviceKey(c.DeviceID))
	}
	if c.ConsentID != "" {
		keys = append(keys, ConsentKey(c.ConsentID))
	}
	revoked, err := v.revoked.AnyRevoked(ctx, keys...)
	if err != nil {
		return fmt.Errorf("revocation list: %w", err)
	}
	if revoked {
		return fmt.Errorf("token revoked: %w", ErrInvalid)
	}
	return nil
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
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &c, nil
}

// validate checks what the JWT library does not: the claims every OneDoor
// token carries, and that it lives no longer than MaxLifetime.
func (c *Claims) validate() error {
	switch {
	case c.GrantID == "" || c.ClientID == "" || c.ID == "":
		return errors.New("missing gid, client_id or jti")
	case len(c.Audience) == 0 || slices.Contains(c.Audience, ""):
		return errors.New("missing aud")
	case c.Subject == "":
		return errors.New("missing sub")
	case c.IssuedAt == nil:
		return errors.New("missing iat")
	case c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime:
		return errors.New("lifetime longer than allowed")
	}
	switch c.Kind {
	case KindCitizen:
		if c.Agency != "" {
			return errors.New("citizen token with an agency")
		}
	case KindClient:
		if c.Subject != c.ClientID {
			return errors.New("client token whose sub is not its client_id")
		}
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
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
