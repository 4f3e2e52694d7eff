package eid

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
)

// JWS types (the typ header) an eID app signs with its device key.
const (
	// TypeDeviceToken authenticates a request to the eID API.
	TypeDeviceToken = "eid-device+jwt" //nolint:gosec // a type name, not a credential
	// TypeApproval carries the citizen's answer to a login request.
	TypeApproval = "eid-approval+jwt"
)

// Decisions an approval carries.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Limits on device-signed tokens.
const (
	MaxTokenLifetime = 2 * time.Minute // exp - iat
	maxTokenLen      = 8 << 10
	maxJTILen        = 128
)

// DeviceClaims are the claims of a device token: iss is the device ID, aud
// the issuer, jti single use.
type DeviceClaims struct {
	jwt.RegisteredClaims
}

// ApprovalClaims are the claims of an approval: iss is the device ID, aud the
// issuer; Claims names the claims the citizen agreed to share, with the
// recipient (ClientID) and the purpose (its code) they were shown, so the
// signed approval is evidence of the whole consent: an approval for another
// recipient or purpose, or for claims that were not asked, is refused.
type ApprovalClaims struct {
	jwt.RegisteredClaims
	RequestID string `json:"request_id"`
	// MatchNumber is the number the citizen picked among the request's
	// match_choices; required to approve in ModeCrossDevice.
	MatchNumber string   `json:"match_number,omitempty"`
	Decision    string   `json:"decision"`       // DecisionApprove or DecisionDeny
	Mode        string   `json:"mode,omitempty"` // ModeCrossDevice (the default) or ModeSameDevice
	ClientID    string   `json:"client_id,omitempty"`
	Purpose     string   `json:"purpose,omitempty"` // the purpose's code
	Claims      []string `json:"claims"`
	// BindingMessage is the CIBA request's binding message the app showed
	// (ModeCIBA approvals only).
	BindingMessage string `json:"binding_message,omitempty"`
	// ActAs is the tax code or personal id of the party the citizen chose
	// to act for (a login asking representation); absent: themselves.
	ActAs string `json:"act_as,omitempty"`
}

// Verifier checks the compact JWS an eID app signs with its device key. Both
// token types go through Verify, so there is one parser to harden and fuzz.
type Verifier struct {
	Now  func() time.Time // default time.Now
	Skew time.Duration    // allowed clock skew on iat, exp and nbf
}

// tokenError says why a token was refused; kind is the sentinel it wraps.
type tokenError struct {
	reason string
	kind   error
}

func (e *tokenError) Error() string { return e.reason + ": " + e.kind.Error() }
func (e *tokenError) Unwrap() error { return e.kind }

func refuse(format string, args ...any) error {
	return &tokenError{reason: fmt.Sprintf(format, args...), kind: idp.ErrInvalid}
}

// rekind re-labels a tokenError with another sentinel and passes any other
// error (a store failure) through.
func rekind(err, kind error) error {
	if te, ok := errors.AsType[*tokenError](err); ok {
		return &tokenError{reason: te.reason, kind: kind}
	}
	return err
}

// The only header parameters a device token may carry. Everything else
// (jku, x5u, x5c, jwk, crit, b64...) is refused rather than ignored.
var allowedHeader = map[string]bool{"alg": true, "typ": true, "kid": true}

// Verify checks token as a compact JWS of type typ for audience, signed with
// ES256 by the device that device(kid) returns, and decodes its payload into
// claims (a *DeviceClaims or *ApprovalClaims). It checks iss = kid, iat and
// exp (both required, exp - iat at most MaxTokenLifetime, skew allowed) and
// that the device is not revoked. Refusals wrap idp.ErrInvalid; an error from
// device other than idp.ErrNotFound is returned as is.
func (v Verifier) Verify(token, typ, audience string, device func(kid string) (*idp.Device, error), claims jwt.Claims) (*idp.Device, error) {
	if audience == "" {
		return nil, refuse("no audience to check")
	}
	if err := wellFormed(token); err != nil {
		return nil, err
	}
	now := v.Now
	if now == nil {
		now = time.Now
	}
	var (
		dev       *idp.Device
		lookupErr error
	)
	keyFunc := func(t *jwt.Token) (any, error) {
		for name := range t.Header {
			if !allowedHeader[name] {
				return nil, refuse("header %.32q not allowed", name)
			}
		}
		if t.Header["typ"] != typ {
			return nil, refuse("typ must be %s", typ)
		}
		kid, _ := t.Header["kid"].(string)
		if !validID(kid) {
			return nil, refuse("kid is not a device id")
		}
		d, err := device(kid)
		if err != nil {
			if errors.Is(err, idp.ErrNotFound) {
				return nil, refuse("unknown device")
			}
			lookupErr = err
			return nil, err
		}
		if d == nil || d.ID != kid {
			return nil, refuse("unknown device")
		}
		if d.RevokedAt != nil {
			return nil, refuse("device revoked")
		}
		key, err := parseDeviceKey([]byte(d.PublicKey))
		if err != nil {
			return nil, refuse("stored device key unusable")
		}
		dev = d
		return key, nil
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithStrictDecoding(), // unused base64 bits must be zero: one token, one encoding
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.Skew),
		jwt.WithTimeFunc(now),
	)
	if _, err := p.ParseWithClaims(token, claims, keyFunc); err != nil {
		if lookupErr != nil {
			return nil, lookupErr
		}
		if te, ok := errors.AsType[*tokenError](err); ok {
			return nil, te
		}
		return nil, refuse("%s", jwtReason(err))
	}
	if iss, _ := claims.GetIssuer(); iss != dev.ID {
		return nil, refuse("iss must be the device id")
	}
	iat, _ := claims.GetIssuedAt()
	exp, _ := claims.GetExpirationTime()
	if iat == nil || exp == nil {
		return nil, refuse("iat and exp are required")
	}
	if life := exp.Sub(iat.Time); life <= 0 || life > MaxTokenLifetime {
		return nil, refuse("exp - iat must be positive and at most %s", MaxTokenLifetime)
	}
	return dev, nil
}

// ParseApproval verifies an approval signed by dev for audience and returns
// its claims. Decide adds the checks against the login request.
func (v Verifier) ParseApproval(token, audience string, dev *idp.Device) (*ApprovalClaims, error) {
	if dev == nil {
		return nil, refuse("no device")
	}
	var c ApprovalClaims
	_, err := v.Verify(token, TypeApproval, audience, func(kid string) (*idp.Device, error) {
		if kid != dev.ID {
			return nil, idp.ErrNotFound
		}
		return dev, nil
	}, &c)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// wellFormed rejects what is not a compact JWS made of base64url segments
// before any decoding: no whitespace, padding or stray bytes get through.
func wellFormed(token string) error {
	if len(token) > maxTokenLen {
		return refuse("token longer than %d bytes", maxTokenLen)
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		switch c := token[i]; {
		case c == '.':
			dots++
		case !isB64URL(c):
			return refuse("token is not a compact JWS")
		}
	}
	if dots != 2 {
		return refuse("token is not a compact JWS")
	}
	return nil
}

// jwtReason names the failed check without echoing token content.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token malformed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrECDSAVerification):
		return "signature invalid or alg not ES256"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token unverifiable"
	}
	return "token invalid"
}

// Members a device public JWK may not carry: private parts, symmetric keys and
// certificate references (which would also make parsing costly).
var forbiddenJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv", "x5c", "x5u"}

// parseDeviceKey accepts only an EC P-256 public key as a JWK.
func parseDeviceKey(raw []byte) (*ecdsa.PublicKey, error) {
	if len(raw) == 0 || len(raw) > 2048 {
		return nil, errors.New("key missing or too long")
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, errors.New("key is not a JSON object")
	}
	for _, m := range forbiddenJWKMembers {
		if _, ok := members[m]; ok {
			return nil, fmt.Errorf("key must not contain %q", m)
		}
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, errors.New("key is not a valid JWK")
	}
	pub, ok := k.Key.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, errors.New("key must be an EC P-256 public key")
	}
	if k.Algorithm != "" && k.Algorithm != "ES256" {
		return nil, errors.New("key alg must be ES256")
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, errors.New("key use must be sig")
	}
	if _, err := pub.ECDH(); err != nil { // rejects points off the curve or at infinity
		return nil, errors.New("key is not a valid P-256 point")
	}
	return pub, nil
}

// canonicalKey is the JWK stored for a device: public part only, with the
// device ID as kid.
func canonicalKey(pub *ecdsa.PublicKey, kid string) (string, error) {
	b, err := json.Marshal(jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		return "", fmt.Errorf("encode device key: %w", err)
	}
	return string(b), nil
}
