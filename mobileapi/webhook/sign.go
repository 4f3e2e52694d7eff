package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onedoor/onedoor/idp/keyset"
)

// Signer signs delivery bodies with the platform's current key.
type Signer interface {
	// Sign returns the JWS compact serialization with detached payload of
	// payload, whose protected header holds alg, kid and the given
	// parameters (which must not name alg, kid, crit, b64 or jwk).
	Sign(ctx context.Context, payload []byte, header map[string]any) (string, error)
}

// SigningKeys resolves the active signing key; *keyset.Manager implements
// it.
type SigningKeys interface {
	SigningKey(ctx context.Context, alg string) (*keyset.Key, error)
}

// KeySigner signs with the active ES256 key of a key set: the IdP's, so
// agencies verify with the JWKS they already trust for tokens.
type KeySigner struct {
	Keys SigningKeys
}

// reserved are header parameters a caller may not set: the signer owns
// them, and a stray crit or b64 would change how the JWS is verified.
var reserved = map[string]bool{"alg": true, "kid": true, "crit": true, "b64": true, "jwk": true, "x5c": true, "nonce": true}

// Sign implements Signer.
func (s KeySigner) Sign(ctx context.Context, payload []byte, header map[string]any) (string, error) {
	k, err := s.Keys.SigningKey(ctx, keyset.ES256)
	if err != nil {
		return "", fmt.Errorf("webhook signing key: %w", err)
	}
	priv, ok := k.Private.(*ecdsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("webhook signing key %s is not ECDSA", k.ID)
	}
	opts := &jose.SignerOptions{}
	for name, v := range header {
		if reserved[name] {
			return "", fmt.Errorf("webhook signature: header parameter %q is the signer's", name)
		}
		opts.WithHeader(jose.HeaderKey(name), v)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: k.ID}}, opts)
	if err != nil {
		return "", fmt.Errorf("webhook signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("webhook signature: %w", err)
	}
	return jws.DetachedCompactSerialize()
}

// ErrSignature is the error Verify wraps for every signature it refuses.
var ErrSignature = errors.New("webhook signature not valid")

// ErrUnknownKey is wrapped (with ErrSignature) when no key has the
// signature's kid: the receiver should fetch the key set again, once, and
// retry.
var ErrUnknownKey = errors.New("unknown signing key")

// DefaultMaxAge is how old a signature Verify accepts by default.
const DefaultMaxAge = 5 * time.Minute

// maxAhead tolerates a signer's clock running ahead of the receiver's.
const maxAhead = time.Minute

// KeyFunc returns the public key with the given kid (an *ecdsa.PublicKey,
// or a jose.JSONWebKey holding one), or an error wrapping ErrUnknownKey.
type KeyFunc func(kid string) (any, error)

// JWKS returns a KeyFunc over a fetched JSON Web Key Set, such as the IdP's
// /jwks.
func JWKS(set *jose.JSONWebKeySet) KeyFunc {
	return func(kid string) (any, error) {
		for _, k := range set.Key(kid) {
			if k.Use != "" && k.Use != "sig" || k.Algorithm != "" && k.Algorithm != string(jose.ES256) {
				continue
			}
			if k.IsPublic() {
				return k, nil
			}
			return k.Public(), nil
		}
		return nil, fmt.Errorf("kid %q: %w", kid, ErrUnknownKey)
	}
}

// Expect is what Verify requires of a signature besides being valid: the
// receiver's own webhook and endpoint (at least one of them), and a recent
// signing time.
type Expect struct {
	WebhookID string // the onedoor_webhook parameter must equal it, when set
	URL       string // the url parameter must equal it, when set
	Now       time.Time
	MaxAge    time.Duration // 0: DefaultMaxAge
}

// Verify checks the OneDoor-Signature header value sig against the request
// body exactly as received, with keys resolving the signing key. Every
// refusal wraps ErrSignature.
func Verify(body []byte, sig string, keys KeyFunc, want Expect) error {
	if want.WebhookID == "" && want.URL == "" {
		return fmt.Errorf("%w: expect a webhook id or URL, so another endpoint's delivery is refused", ErrSignature)
	}
	if want.Now.IsZero() {
		want.Now = time.Now()
	}
	if want.MaxAge <= 0 {
		want.MaxAge = DefaultMaxAge
	}
	jws, err := jose.ParseDetached(sig, body, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	h := jws.Signatures[0].Protected // compact serialization: exactly one
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != SignatureType {
		return fmt.Errorf("%w: typ %q, want %q", ErrSignature, typ, SignatureType)
	}
	if h.KeyID == "" {
		return fmt.Errorf("%w: no kid", ErrSignature)
	}
	key, err := keys(h.KeyID)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	if !isP256(key) {
		return fmt.Errorf("%w: key %q is not a P-256 public key", ErrSignature, h.KeyID)
	}
	if err := jws.DetachedVerify(body, key); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	iat, ok := h.ExtraHeaders[ParamIssuedAt].(float64)
	if !ok || iat != math.Trunc(iat) || math.Abs(iat) > 1e11 {
		return fmt.Errorf("%w: iat missing or not a whole number of seconds", ErrSignature)
	}
	at := time.Unix(int64(iat), 0)
	if at.Before(want.Now.Add(-want.MaxAge)) {
		return fmt.Errorf("%w: signed at %s, older than %s", ErrSignature, at.UTC().Format(time.RFC3339), want.MaxAge)
	}
	if at.After(want.Now.Add(maxAhead)) {
		return fmt.Errorf("%w: signed at %s, in the future", ErrSignature, at.UTC().Format(time.RFC3339))
	}
	if want.WebhookID != "" {
		if got, _ := h.ExtraHeaders[ParamWebhookID].(string); got != want.WebhookID {
			return fmt.Errorf("%w: signed for webhook %q, not %q", ErrSignature, got, want.WebhookID)
		}
	}
	if want.URL != "" {
		if got, _ := h.ExtraHeaders[ParamURL].(string); got != want.URL {
			return fmt.Errorf("%w: signed for another URL", ErrSignature)
		}
	}
	return nil
}

func isP256(key any) bool {
	if jwk, ok := key.(jose.JSONWebKey); ok {
		key = jwk.Key
	}
	if jwk, ok := key.(*jose.JSONWebKey); ok && jwk != nil {
		key = jwk.Key
	}
	pub, ok := key.(*ecdsa.PublicKey)
	return ok && pub.Curve == elliptic.P256()
}
