package webpush

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// VAPID tokens (RFC 8292) live 12 hours, half the 24 hours push services
// accept, so a service whose clock runs ahead still takes them; a cached
// token is replaced once less than an hour of it is left.
const (
	jwtLifetime    = 12 * time.Hour
	jwtRenewBefore = time.Hour
	// maxCachedOrigins bounds the cache: endpoints, and so origins, come
	// from citizens, while real push services are a handful.
	maxCachedOrigins = 256
)

// vapid signs and caches one Authorization header per push service origin.
type vapid struct {
	key     *ecdsa.PrivateKey
	public  string // base64url uncompressed point, the header's k
	subject string

	mu     sync.Mutex
	tokens map[string]token
}

type token struct {
	header  string
	expires time.Time
}

// authorization returns the "vapid t=..., k=..." header for origin.
func (v *vapid) authorization(origin string, now time.Time) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if t, ok := v.tokens[origin]; ok {
		// A clock that jumped back would leave the token more than 24 h
		// ahead, which services refuse; so renew then too.
		if left := t.expires.Sub(now); left > jwtRenewBefore && left <= jwtLifetime {
			return t.header, nil
		}
	}
	expires := now.Add(jwtLifetime).Truncate(time.Second)
	signed, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"aud": origin,
		"exp": expires.Unix(),
		"sub": v.subject,
	}).SignedString(v.key)
	if err != nil {
		return "", fmt.Errorf("sign vapid jwt: %w", err)
	}
	if len(v.tokens) >= maxCachedOrigins {
		for o, t := range v.tokens {
			if !now.Before(t.expires.Add(-jwtRenewBefore)) {
				delete(v.tokens, o)
			}
		}
		if len(v.tokens) >= maxCachedOrigins {
			clear(v.tokens)
		}
	}
	header := "vapid t=" + signed + ", k=" + v.public
	v.tokens[origin] = token{header: header, expires: expires}
	return header, nil
}

// origin is the ASCII serialization of u's origin (RFC 6454), the VAPID
// token's audience: scheme and host in lower case, the default port left out.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port == "" || scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		return scheme + "://" + host
	}
	return scheme + "://" + host + ":" + port
}

// validSubject reports whether sub is a contact RFC 8292 accepts: a mailto:
// address or an https: URL.
func validSubject(sub string) bool {
	u, err := url.Parse(sub)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "mailto":
		return strings.Contains(u.Opaque, "@")
	case "https":
		return u.Host != ""
	}
	return false
}

// GenerateKey makes a new VAPID key: an ECDSA key on P-256.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webpush: generate vapid key: %w", err)
	}
	return k, nil
}

// ParseKey reads a VAPID private key in PEM (PKCS #8 "PRIVATE KEY" or SEC 1
// "EC PRIVATE KEY"), or as the 32-byte scalar in base64url that web-push
// tools print. The key must be on P-256. Errors never quote the input.
func ParseKey(b []byte) (*ecdsa.PrivateKey, error) {
	b = bytes.TrimSpace(b)
	if bytes.HasPrefix(b, []byte("-----BEGIN")) {
		return parsePEMKey(b)
	}
	s := strings.TrimRight(string(b), "=")
	s = strings.NewReplacer("+", "-", "/", "_").Replace(s)
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(raw) != 32 {
		return nil, errors.New("webpush: vapid key is neither PEM nor a base64url 32-byte P-256 scalar")
	}
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, errors.New("webpush: vapid key is not a valid P-256 scalar")
	}
	return k, nil
}

func parsePEMKey(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("webpush: vapid key: malformed PEM")
	}
	var k *ecdsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("webpush: vapid key: %w", err)
		}
		var ok bool
		if k, ok = parsed.(*ecdsa.PrivateKey); !ok {
			return nil, fmt.Errorf("webpush: vapid key is a %T, not an ECDSA key", parsed)
		}
	case "EC PRIVATE KEY":
		var err error
		if k, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("webpush: vapid key: %w", err)
		}
	default:
		return nil, fmt.Errorf("webpush: vapid key: PEM block %q, want PRIVATE KEY or EC PRIVATE KEY", block.Type)
	}
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("webpush: vapid key is on %s, not P-256", k.Curve.Params().Name)
	}
	return k, nil
}
