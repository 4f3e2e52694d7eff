package keyset

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// SigningKeys resolves the active signing key; *Manager implements it.
type SigningKeys interface {
	SigningKey(ctx context.Context, alg string) (*Key, error)
}

// JWSSigner signs statements of the platform (consent receipts:
// consent.Signer) as compact ES256 JWS with the current signing key, the
// one the JWKS publishes, so anyone can verify them there by kid.
type JWSSigner struct {
	Keys SigningKeys
}

// SignJWS signs claims with typ as the JOSE typ header.
func (s JWSSigner) SignJWS(ctx context.Context, typ string, claims map[string]any) (string, error) {
	if typ == "" {
		return "", errors.New("sign JWS: typ required")
	}
	k, err := s.Keys.SigningKey(ctx, ES256)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	priv, ok := k.Private.(*ecdsa.PrivateKey)
	if !ok {
		return "", fmt.Errorf("sign %s: key %s is not ECDSA", typ, k.ID)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
	t.Header["typ"] = typ
	t.Header["kid"] = k.ID
	out, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", typ, err)
	}
	return out, nil
}
