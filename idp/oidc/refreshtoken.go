package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/ory/fosite"
)

// Refresh tokens name their family. A token is fosite's HMAC token
// (base64url(key) "." base64url(HMAC(key))) whose key starts with the
// family's request ID: key = len(id) || id || 32 random bytes. fosite's own
// validation accepts it unchanged; its stored signature is id "." mac. So a
// token older than a family's previous one, which the family row no longer
// names, is still recognised as the family's and its reuse revokes the
// family. The HMAC is checked before the family is trusted: nobody can
// forge a token "of" someone else's family to revoke it.

const refreshEntropy = 32

// GenerateRefreshToken implements oauth2.RefreshTokenStrategy.
func (s *strategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	id := r.GetID()
	if id == "" || len(id) > 255 || strings.Contains(id, ".") {
		return "", "", fmt.Errorf("refresh token for request id %q: unsupported id", id)
	}
	key := make([]byte, 0, 1+len(id)+refreshEntropy)
	key = append(key, byte(len(id))) //nolint:gosec // at most 255, checked above
	key = append(key, id...)
	random := make([]byte, refreshEntropy)
	if _, err := rand.Read(random); err != nil {
		return "", "", err
	}
	key = append(key, random...)
	mac, err := s.refreshMAC(ctx, key)
	if err != nil {
		return "", "", err
	}
	encMAC := base64.RawURLEncoding.EncodeToString(mac)
	return base64.RawURLEncoding.EncodeToString(key) + "." + encMAC, id + "." + encMAC, nil
}

// RefreshTokenSignature implements oauth2.RefreshTokenStrategy. A valid
// family-bound token's signature names its family; anything else gets
// fosite's plain signature (the MAC), as tokens issued before families were
// named have.
func (s *strategy) RefreshTokenSignature(ctx context.Context, token string) string {
	mac := s.HMACSHAStrategyUnPrefixed.RefreshTokenSignature(ctx, token)
	encKey, _, _ := strings.Cut(token, ".")
	key, err := base64.RawURLEncoding.DecodeString(encKey)
	if err != nil || len(key) < 1+refreshEntropy || int(key[0]) > len(key)-1-refreshEntropy || key[0] == 0 {
		return mac
	}
	if s.Enigma.Validate(ctx, token) != nil {
		return mac
	}
	id := string(key[1 : 1+int(key[0])])
	if strings.Contains(id, ".") {
		return mac
	}
	return id + "." + mac
}

// refreshMAC is the HMAC fosite's enigma computes over a token key.
func (s *strategy) refreshMAC(ctx context.Context, key []byte) ([]byte, error) {
	secret, err := s.Enigma.Config.GetGlobalSecret(ctx)
	if err != nil {
		return nil, err
	}
	if len(secret) < 32 {
		return nil, errors.New("the global secret must be at least 32 bytes")
	}
	hasher := s.Enigma.Config.GetHMACHasher(ctx)
	if hasher == nil {
		hasher = sha512.New512_256
	}
	h := hmac.New(hasher, secret[:32])
	h.Write(key)
	return h.Sum(nil), nil
}

// refreshFamily returns the family a refresh-token signature names, if any.
func refreshFamily(sig string) (string, bool) {
	id, _, ok := strings.Cut(sig, ".")
	return id, ok && id != ""
}
