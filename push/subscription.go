package push

import (
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// ErrInvalidSubscription matches every error Validate and
// SubscriptionKeys.Decode return, so a handler can answer 400 for them.
var ErrInvalidSubscription = errors.New("push: invalid subscription")

// MaxEndpointLength bounds a subscription's endpoint. Browsers' endpoints
// are a few hundred bytes; the bound keeps stored rows and logs small.
const MaxEndpointLength = 2048

// authSecretLength is the size of the RFC 8291 authentication secret.
const authSecretLength = 16

// Validate checks a subscription as a page hands it over: the endpoint is an
// absolute https URL (http too when allowLoopbackHTTP is set and the host is
// a loopback address or "localhost", for development) with no userinfo or
// fragment, and the keys decode (see SubscriptionKeys.Decode). Its errors
// name the offending field and never repeat the endpoint or a key.
//
// Validate does not judge where the endpoint points: refusing private and
// internal addresses is the job of the HTTP client that delivers to it.
func (s Subscription) Validate(allowLoopbackHTTP bool) error {
	if err := validateEndpoint(s.Endpoint, allowLoopbackHTTP); err != nil {
		return err
	}
	_, _, err := s.Keys.Decode()
	return err
}

func validateEndpoint(endpoint string, allowLoopbackHTTP bool) error {
	bad := func(why string) error {
		return fmt.Errorf("subscription.endpoint: %s: %w", why, ErrInvalidSubscription)
	}
	if endpoint == "" {
		return bad("missing")
	}
	if len(endpoint) > MaxEndpointLength {
		return bad(fmt.Sprintf("longer than %d bytes", MaxEndpointLength))
	}
	// Push services hand out plain ASCII URLs; anything else (spaces,
	// controls, raw UTF-8) is refused before it reaches a log or a request.
	for i := 0; i < len(endpoint); i++ {
		if c := endpoint[i]; c <= ' ' || c >= 0x7f {
			return bad("has a character outside printable ASCII")
		}
	}
	// url.Parse's own error quotes the input, which names the subscriber.
	u, err := url.Parse(endpoint)
	if err != nil {
		return bad("not a URL")
	}
	if !u.IsAbs() || u.Opaque != "" || u.Host == "" {
		return bad("not an absolute URL")
	}
	if u.User != nil {
		return bad("has userinfo")
	}
	if u.Fragment != "" || strings.Contains(endpoint, "#") {
		return bad("has a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return bad("has no host")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowLoopbackHTTP || !isLoopback(host) {
			return bad("scheme is not https")
		}
	default:
		return bad("scheme is not https")
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Decode returns the user agent's P-256 public key and the authentication
// secret. The W3C Push API serializes both as unpadded base64url, but pages
// and older libraries also send padded or standard-alphabet base64, so all
// four forms are accepted. Errors name the field and never repeat the key.
func (k SubscriptionKeys) Decode() (p256dh *ecdh.PublicKey, auth []byte, err error) {
	raw, err := decodeBase64(k.P256DH)
	if err != nil {
		return nil, nil, fmt.Errorf("subscription.keys.p256dh: %w: %w", err, ErrInvalidSubscription)
	}
	// NewPublicKey accepts only the 65-byte uncompressed form of a point on
	// the curve, which is what RFC 8291 requires.
	p256dh, err = ecdh.P256().NewPublicKey(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("subscription.keys.p256dh: not an uncompressed P-256 point (%d bytes): %w", len(raw), ErrInvalidSubscription)
	}
	auth, err = decodeBase64(k.Auth)
	if err != nil {
		return nil, nil, fmt.Errorf("subscription.keys.auth: %w: %w", err, ErrInvalidSubscription)
	}
	if len(auth) != authSecretLength {
		return nil, nil, fmt.Errorf("subscription.keys.auth: %d bytes, want %d: %w", len(auth), authSecretLength, ErrInvalidSubscription)
	}
	return p256dh, auth, nil
}

var errNotBase64 = errors.New("not base64url")

// decodeBase64 decodes base64 in either alphabet, padded or not. Its error
// says only that the text is not base64: the standard library's names the
// offending byte's offset, harmless, but there is nothing to gain from it.
func decodeBase64(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("missing")
	}
	// At most two '=' can pad, and only at the end; the strict raw decoder
	// below then checks the rest (including the unused trailing bits).
	t := strings.TrimSuffix(strings.TrimSuffix(s, "="), "=")
	if len(s) != len(t) && len(s)%4 != 0 {
		return nil, errNotBase64
	}
	// The decoders skip '\r' and '\n'; a key in JSON has no business
	// holding them, so only the two alphabets pass.
	buf := []byte(t)
	for i, c := range buf {
		switch {
		case c == '+':
			buf[i] = '-'
		case c == '/':
			buf[i] = '_'
		case c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		default:
			return nil, errNotBase64
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(string(buf))
	if err != nil {
		return nil, errNotBase64
	}
	return b, nil
}

// DefaultWebPushHosts are the browsers' push services (Chrome's FCM,
// Firefox's autopush, Edge's WNS, Safari's): endpoints come from
// citizens, so only these are reached, not any public URL.
var DefaultWebPushHosts = []string{"fcm.googleapis.com", "push.services.mozilla.com", "notify.windows.com", "push.apple.com"}

// ServiceAllowed reports whether endpoint's host is one of hosts or a
// subdomain of one. A loopback endpoint is allowed when allowLoopback is
// (tests and the demo).
func ServiceAllowed(endpoint string, hosts []string, allowLoopback bool) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if allowLoopback && (host == "localhost" || isLoopbackIP(host)) {
		return true
	}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimPrefix(h, "."))
		if h != "" && (host == h || strings.HasSuffix(host, "."+h)) {
			return true
		}
	}
	return false
}

func isLoopbackIP(host string) bool {
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
