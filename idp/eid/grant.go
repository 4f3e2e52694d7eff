package eid

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onedoor/onedoor/idp"
)

// TypeGrant is the typ of the assertion with which the eID app obtains its
// own tokens (RFC 7523 JWT-bearer grant). A type of its own means a device
// token or an approval can never be replayed as a grant, nor a grant as
// either of them.
const TypeGrant = "eid-grant+jwt"

// GrantClaims are the claims of a grant assertion: iss and sub are the
// device ID, aud the token endpoint URL, jti single use, exp - iat at most
// MaxTokenLifetime.
type GrantClaims = DeviceClaims

// AuthenticateGrant verifies the assertion of the eID app's JWT-bearer grant
// (typ eid-grant+jwt, ES256 by the device key, kid = iss = sub = device ID,
// aud = audience, the token endpoint URL; lifetime at most two minutes) and
// spends its jti, so an assertion obtains tokens once. It returns the device
// and the RFC 7638 SHA-256 thumbprint of its key (base64url), to which the
// tokens are bound. Refusals, a revoked or unknown device among them, wrap
// ErrDeviceAuth; store failures are returned as they are.
func (s *Service) AuthenticateGrant(ctx context.Context, assertion, audience string) (*idp.Device, string, error) {
	var c GrantClaims
	dev, err := s.verifier.Verify(assertion, TypeGrant, audience, func(kid string) (*idp.Device, error) {
		return s.store.GetDevice(ctx, kid)
	}, &c)
	if err != nil {
		return nil, "", rekind(err, ErrDeviceAuth)
	}
	if c.Subject != dev.ID {
		return nil, "", rekind(refuse("sub must be the device id"), ErrDeviceAuth)
	}
	if c.ID == "" || len(c.ID) > maxJTILen {
		return nil, "", rekind(refuse("jti required, at most %d bytes", maxJTILen), ErrDeviceAuth)
	}
	jkt, err := KeyThumbprint(dev)
	if err != nil {
		return nil, "", rekind(refuse("stored device key unusable"), ErrDeviceAuth)
	}
	// Keep the jti as long as the assertion could still pass the exp check.
	ttl := max(c.ExpiresAt.Add(s.cfg.Skew).Sub(s.now()), time.Second)
	if err := s.eph.Create(ctx, "eid:grant-jti:"+dev.ID+":"+c.ID, []byte{1}, ttl); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return nil, "", rekind(refuse("assertion replayed"), ErrDeviceAuth)
		}
		return nil, "", fmt.Errorf("grant assertion replay check: %w", err)
	}
	s.used(ctx, dev)
	return dev, jkt, nil
}

// KeyThumbprint is the RFC 7638 JWK SHA-256 thumbprint of a device's public
// key, base64url without padding: the value of cnf.jkt in tokens bound to
// the device.
func KeyThumbprint(d *idp.Device) (string, error) {
	pub, err := parseDeviceKey([]byte(d.PublicKey))
	if err != nil {
		return "", fmt.Errorf("device key: %w", err)
	}
	sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("device key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}
