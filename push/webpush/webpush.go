// Package webpush delivers notifications to browsers through their push
// services: the Web Push protocol (RFC 8030), payloads encrypted with the
// aes128gcm content coding (RFC 8291) and the sender identified by VAPID
// (RFC 8292).
package webpush

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/push"
)

// DefaultTTL is the TTL of a notification without an expiry: four weeks,
// the longest FCM keeps a message (other services clamp longer TTLs to
// their own maximum), as push.Notification asks of a zero Expires. It is
// also the cap for a far-off expiry.
const DefaultTTL = 28 * 24 * time.Hour

const (
	// defaultTimeout bounds a send when the caller's client has no timeout.
	defaultTimeout = 30 * time.Second
	// Answers are read only for a short error code; the rest is drained up
	// to maxDrain so the connection can be reused, then dropped.
	maxReason = 4 << 10
	maxDrain  = 64 << 10
	// maxRetryAfter caps a service's Retry-After: endpoints come from
	// citizens, and a hostile "push service" could otherwise park a message.
	maxRetryAfter = 24 * time.Hour
)

// Config configures a Client.
type Config struct {
	// PrivateKey is the VAPID key (P-256), see GenerateKey and ParseKey.
	// Its public half is the applicationServerKey pages subscribe with.
	PrivateKey *ecdsa.PrivateKey
	// Subject is the operator's contact, a mailto: or https: URL, sent to
	// push services in every VAPID token. Required.
	Subject string
	// HTTPClient delivers to the endpoints. Required: endpoints come from
	// citizens, so the caller supplies a client whose dialer refuses
	// non-public addresses. The Client uses a copy that follows no
	// redirects, keeps no cookies and times out after 30 seconds unless
	// HTTPClient sets its own timeout.
	HTTPClient *http.Client
	// AllowLoopbackHTTP lets subscriptions use http:// endpoints on a
	// loopback host, for development against a local push service.
	AllowLoopbackHTTP bool
}

// Client is a push.Provider for Web Push. It is safe for concurrent use.
type Client struct {
	hc            *http.Client
	vapid         *vapid
	allowLoopback bool
	now           func() time.Time
	random        io.Reader
}

var _ push.Provider = (*Client)(nil)

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	var errs []error
	var public string
	switch k := cfg.PrivateKey; {
	case k == nil:
		errs = append(errs, errors.New("webpush: a VAPID private key is required"))
	case k.Curve != elliptic.P256():
		errs = append(errs, errors.New("webpush: the VAPID key must be on P-256"))
	default:
		b, err := k.PublicKey.Bytes()
		if err != nil {
			errs = append(errs, fmt.Errorf("webpush: VAPID key: %w", err))
		}
		public = base64.RawURLEncoding.EncodeToString(b)
	}
	if !validSubject(cfg.Subject) {
		errs = append(errs, errors.New("webpush: the VAPID subject must be a mailto: address or an https: URL"))
	}
	if cfg.HTTPClient == nil {
		errs = append(errs, errors.New("webpush: an HTTP client is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	hc := *cfg.HTTPClient
	// A redirect would take the message, and the VAPID token, to a URL the
	// citizen's browser never gave us.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	hc.Jar = nil
	if hc.Timeout == 0 {
		hc.Timeout = defaultTimeout
	}
	return &Client{
		hc: &hc,
		vapid: &vapid{
			key:     cfg.PrivateKey,
			public:  public,
			subject: cfg.Subject,
			tokens:  make(map[string]token),
		},
		allowLoopback: cfg.AllowLoopbackHTTP,
		now:           time.Now,
		random:        rand.Reader,
	}, nil
}

// Platform is push.WebPush.
func (c *Client) Platform() push.Platform { return push.WebPush }

// PublicKey is the VAPID public key as a page passes it to
// PushManager.subscribe as applicationServerKey: the uncompressed P-256
// point in unpadded base64url.
func (c *Client) PublicKey() string { return c.vapid.public }

// payload is what the service worker receives in its push event.
type payload struct {
	MessageID string            `json:"message_id"`
	Kind      string            `json:"kind"`
	Title     string            `json:"title"`
	Body      string            `json:"body"`
	Data      map[string]string `json:"data,omitempty"`
}

// Send encrypts n for the subscription in t and posts it to its push
// service. The service's refusals are *push.ProviderError. So are sends
// refused before anything is posted, with StatusCode 0 and a Reason of
// "InvalidSubscription", "PayloadTooLarge" or "Expired", none retryable.
// Dial failures and timeouts come back as other errors. No error names the
// endpoint's path, which identifies the subscriber, or a key.
func (c *Client) Send(ctx context.Context, t push.Target, n *push.Notification) error {
	if t.Platform != push.WebPush || t.Subscription == nil {
		return refused("InvalidSubscription", errors.New("webpush: the target is not a Web Push subscription"))
	}
	sub := t.Subscription
	if err := sub.Validate(c.allowLoopback); err != nil {
		return refused("InvalidSubscription", fmt.Errorf("webpush: %w", err))
	}
	uaPublic, auth, err := sub.Keys.Decode()
	if err != nil {
		return refused("InvalidSubscription", fmt.Errorf("webpush: %w", err))
	}
	endpoint, err := url.Parse(sub.Endpoint)
	if err != nil { // Validate parsed it already
		return refused("InvalidSubscription", errors.New("webpush: subscription.endpoint: not a URL"))
	}
	origin := origin(endpoint)

	now := c.now()
	ttl := DefaultTTL
	if !n.Expires.IsZero() {
		left := n.Expires.Sub(now)
		if left <= 0 {
			return refused("Expired", fmt.Errorf("webpush: message expired %s ago", (-left).Round(time.Second)))
		}
		ttl = min(left, DefaultTTL)
	}

	plaintext, err := json.Marshal(payload{
		MessageID: n.MessageID,
		Kind:      n.Kind,
		Title:     n.Title,
		Body:      n.Body,
		Data:      n.Data,
	})
	if err != nil {
		return fmt.Errorf("webpush: encode payload: %w", err)
	}
	if len(plaintext) > MaxPayloadSize {
		return refused("PayloadTooLarge", fmt.Errorf("webpush: payload of %d bytes, at most %d fit", len(plaintext), MaxPayloadSize))
	}
	body, err := c.seal(plaintext, uaPublic, auth)
	if err != nil {
		return fmt.Errorf("webpush: encrypt: %w", err)
	}

	authz, err := c.vapid.authorization(origin, now)
	if err != nil {
		return fmt.Errorf("webpush: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webpush: request to %s: %w", origin, withoutURL(err))
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Encoding", "aes128gcm")
	req.Header.Set("TTL", strconv.FormatInt(int64(math.Ceil(ttl.Seconds())), 10))
	req.Header.Set("Urgency", urgency(n.Priority))
	if n.CollapseKey != "" {
		req.Header.Set("Topic", topic(n.CollapseKey))
	}
	req.Header.Set("Authorization", authz)

	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("webpush: post to %s: %w", origin, withoutURL(err))
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return fmt.Errorf("webpush: post to %s: %w", origin, c.answerError(resp, now))
}

// seal encrypts with a fresh sender key and salt, as RFC 8291 requires of
// every message.
func (c *Client) seal(plaintext []byte, uaPublic *ecdh.PublicKey, auth []byte) ([]byte, error) {
	asPrivate, err := ecdh.P256().GenerateKey(c.random)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(c.random, salt); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	return encrypt(plaintext, uaPublic, auth, asPrivate, salt, padBlock)
}

// answerError maps a push service's refusal (RFC 8030 section 5, RFC 8292
// section 4) to a *push.ProviderError.
func (c *Client) answerError(resp *http.Response, now time.Time) *push.ProviderError {
	e := &push.ProviderError{
		Platform:   push.WebPush,
		StatusCode: resp.StatusCode,
		Reason:     reason(io.LimitReader(resp.Body, maxReason)),
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), now),
	}
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound || code == http.StatusGone:
		e.Unregistered = true
	case code == http.StatusTooManyRequests || code >= 500:
		e.Retryable = true
	}
	return e
}

// refused is a send given up before anything was posted.
func refused(reason string, err error) error {
	return fmt.Errorf("%w: %w", err, &push.ProviderError{Platform: push.WebPush, Reason: reason})
}

// withoutURL unwraps a *url.Error, whose message quotes the endpoint.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func urgency(p push.Priority) string {
	if p == push.High {
		return "high"
	}
	return "normal"
}

// topic returns key when it is a valid Topic (RFC 8030 section 5.4: at most
// 32 characters of the URL-safe base64 alphabet), and otherwise a 32-character
// digest of it, so equal keys still replace one another.
func topic(key string) string {
	if len(key) <= 32 && isBase64URL(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// retryAfter reads a Retry-After of delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// A number too large for uint64 parses as ErrRange with secs at
		// the maximum, and is capped like any other.
		d = time.Duration(min(secs, uint64(maxRetryAfter/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, maxRetryAfter))
}

// reason picks the service's error code out of its answer: Apple's JSON
// "reason", Mozilla's numeric "errno". Free text (FCM's
// plain-text answers, Mozilla's "message") is left out: it is not a code
// and might quote the request.
func reason(body io.Reader) string {
	var v struct {
		Reason string          `json:"reason"`
		Errno  json.RawMessage `json:"errno"`
	}
	if err := json.NewDecoder(body).Decode(&v); err != nil {
		return ""
	}
	if v.Reason != "" && len(v.Reason) <= 64 && isBase64URL(v.Reason) {
		return v.Reason
	}
	if n, err := strconv.Atoi(string(v.Errno)); err == nil && n >= 0 && n < 10000 {
		return "errno " + strconv.Itoa(n)
	}
	return ""
}
