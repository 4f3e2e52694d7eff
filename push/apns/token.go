package apns

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// renewAfter is the provider token's working life. APNs refuses a token
// issued more than an hour ago and throttles one renewed within 20
// minutes of the last (TooManyProviderTokenUpdates); renewing at 50
// minutes keeps clear of both, with room for clock skew.
const renewAfter = 50 * time.Minute

// providerToken is one signed provider token and when it was issued.
type providerToken struct {
	bearer string // the authorization header value
	issued time.Time
}

// tokenSource signs provider tokens and shares each among concurrent
// sends until it is due for renewal or APNs calls it expired.
type tokenSource struct {
	key           *ecdsa.PrivateKey
	keyID, teamID string
	now           func() time.Time

	current atomic.Pointer[providerToken]
	signing sync.Mutex // one signer at a time, so a stale token is renewed once
}

func (s *tokenSource) get() (*providerToken, error) {
	if t := s.current.Load(); t != nil && s.fresh(t) {
		return t, nil
	}
	s.signing.Lock()
	defer s.signing.Unlock()
	if t := s.current.Load(); t != nil && s.fresh(t) {
		return t, nil // another send renewed it while this one waited
	}
	t, err := s.sign()
	if err != nil {
		return nil, err
	}
	s.current.Store(t)
	return t, nil
}

func (s *tokenSource) fresh(t *providerToken) bool {
	return s.now().Sub(t.issued) < renewAfter
}

// expire drops t if it is still the current token: APNs refused it as
// expired. When many sends carried t, only the first refusal renews.
func (s *tokenSource) expire(t *providerToken) {
	s.current.CompareAndSwap(t, nil)
}

func (s *tokenSource) sign() (*providerToken, error) {
	// iat has one-second precision; keeping the truncated time makes the
	// renewal age match what APNs computes.
	issued := s.now().Truncate(time.Second)
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer:   s.teamID,
		IssuedAt: jwt.NewNumericDate(issued),
	})
	// Apple's token header is {alg, kid}; typ is not part of it.
	tok.Header = map[string]any{"alg": jwt.SigningMethodES256.Alg(), "kid": s.keyID}
	signed, err := tok.SignedString(s.key)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return &providerToken{bearer: "bearer " + signed, issued: issued}, nil
}

// parseKey reads the .p8 file: a PEM "PRIVATE KEY" block holding a PKCS#8
// P-256 key. Its errors never quote the key.
func parseKey(p8 []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(p8)
	if block == nil {
		return nil, errors.New("key is not PEM (expected the .p8 file)")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("key is a PEM %q block, not PRIVATE KEY (PKCS#8)", block.Type)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("key is not a PKCS#8 private key")
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("key is not a P-256 (ES256) key")
	}
	return key, nil
}
