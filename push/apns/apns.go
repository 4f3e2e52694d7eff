// Package apns delivers notifications through Apple Push Notification
// service: HTTP/2 requests authenticated with a provider token (an ES256 JWT
// signed with the team's .p8 key), as Apple documents in "Sending
// notification requests to APNs" and "Establishing a token-based connection
// to APNs".
package apns

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/onedoor/onedoor/push"
)

// APNs servers.
const (
	Production  = "https://api.push.apple.com"
	Development = "https://api.sandbox.push.apple.com"
)

// MaxPayloadSize is APNs' limit on an alert notification's JSON payload.
const MaxPayloadSize = 4096

// maxCollapseIDSize is APNs' limit on apns-collapse-id.
const maxCollapseIDSize = 64

// Reasons the client gives when it refuses a notification before sending:
// the ones APNs would answer for the same request.
const (
	reasonBadDeviceToken  = "BadDeviceToken"
	reasonBadCollapseID   = "BadCollapseId"
	reasonPayloadTooLarge = "PayloadTooLarge"
)

// Config is what a Client needs to reach APNs for one app.
type Config struct {
	// Key is the .p8 file Apple issues: a PEM PKCS#8 P-256 private key.
	Key []byte
	// KeyID is the key's identifier and TeamID the developer team's, both
	// from the developer account.
	KeyID, TeamID string
	// Topic is the app's bundle id.
	Topic string
	// Endpoint defaults to Production.
	Endpoint string
	// HTTPClient must speak HTTP/2; it defaults to NewHTTPClient(nil).
	// The client never follows redirects, whatever HTTPClient says.
	HTTPClient *http.Client
	// Now defaults to time.Now; tests move it to age the provider token.
	Now func() time.Time
}

// Client sends notifications to APNs. It is safe for concurrent use, and
// concurrent sends share one provider token and, through HTTPClient, one
// HTTP/2 connection.
type Client struct {
	http     *http.Client
	endpoint string
	topic    string
	tokens   *tokenSource
}

var _ push.Provider = (*Client)(nil)

// New checks cfg and returns a Client. It reports every problem with cfg
// at once, and never quotes the key.
func New(cfg Config) (*Client, error) {
	var errs []error
	key, err := parseKey(cfg.Key)
	if err != nil {
		errs = append(errs, err)
	}
	if !isIdentifier(cfg.KeyID) {
		errs = append(errs, errors.New("key id must be letters and digits"))
	}
	if !isIdentifier(cfg.TeamID) {
		errs = append(errs, errors.New("team id must be letters and digits"))
	}
	if !isTopic(cfg.Topic) {
		errs = append(errs, errors.New("topic must be a bundle id (printable, no spaces)"))
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = Production
	}
	endpoint, err = checkEndpoint(endpoint)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("apns: config: %w", errors.Join(errs...))
	}

	hc := cfg.HTTPClient
	if hc == nil {
		hc = NewHTTPClient(nil)
	}
	// A copy, so that refusing redirects does not change the caller's client.
	noRedirects := *hc
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Client{
		http:     &noRedirects,
		endpoint: endpoint,
		topic:    cfg.Topic,
		tokens:   &tokenSource{key: key, keyID: cfg.KeyID, teamID: cfg.TeamID, now: now},
	}, nil
}

// NewHTTPClient is the client New uses when Config.HTTPClient is nil, on
// tlsConfig (nil: the system's roots, TLS 1.2 or later). It speaks HTTP/2
// only. It keeps to one connection: a cold burst of sends shares the first
// dial rather than opening a connection each (which net/http otherwise does
// before it knows the server speaks h2), and one connection's streams are
// plenty. It pings a connection that has been quiet for a minute, so that
// one APNs dropped silently is noticed before a send waits on it.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	h2only := new(http.Protocols)
	h2only.SetHTTP2(true)
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			TLSClientConfig:     tlsConfig,
			TLSHandshakeTimeout: 10 * time.Second,
			Protocols:           h2only,
			MaxConnsPerHost:     1,
			HTTP2:               &http.HTTP2Config{SendPingTimeout: time.Minute, PingTimeout: 15 * time.Second},
		},
		Timeout: 30 * time.Second,
	}
}

// Platform reports push.APNs.
func (c *Client) Platform() push.Platform { return push.APNs }

// Send delivers n to the device token t.Token. Refusals come back as
// *push.ProviderError; one with StatusCode 0 was refused before sending
// (a token that is not hex, a collapse key or payload over APNs' limits),
// with the reason APNs would have given. Errors never contain the device
// token.
func (c *Client) Send(ctx context.Context, t push.Target, n *push.Notification) error {
	if t.Platform != push.APNs {
		return fmt.Errorf("apns: cannot send to a %q target", t.Platform)
	}
	if n == nil {
		return errors.New("apns: no notification")
	}
	if !isDeviceToken(t.Token) {
		return &push.ProviderError{Platform: push.APNs, Reason: reasonBadDeviceToken, Unregistered: true}
	}
	if len(n.CollapseKey) > maxCollapseIDSize {
		return &push.ProviderError{Platform: push.APNs, Reason: reasonBadCollapseID}
	}
	payload, err := encodePayload(n)
	if errors.Is(err, errPayloadTooLarge) {
		return &push.ProviderError{Platform: push.APNs, Reason: reasonPayloadTooLarge}
	}
	if err != nil {
		return fmt.Errorf("apns: encode payload: %w", err)
	}
	tok, err := c.tokens.get()
	if err != nil {
		return fmt.Errorf("apns: provider token: %w", err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/3/device/"+t.Token, bytes.NewReader(payload))
	if err != nil {
		return errors.New("apns: build request") // its error would quote the URL, token and all
	}
	h := req.Header
	h.Set("authorization", tok.bearer)
	h.Set("apns-push-type", "alert")
	h.Set("apns-topic", c.topic)
	h.Set("apns-priority", priority(n.Priority))
	if n.MessageID != "" {
		h.Set("apns-id", MessageUUID(n.MessageID))
	}
	if n.CollapseKey != "" {
		h.Set("apns-collapse-id", n.CollapseKey)
	}
	// Without the header APNs keeps the notification as long as its
	// storage policy allows, which is what a zero Expires asks for; "0"
	// would mean "try once, keep nothing". A past Expires becomes a past
	// date, which APNs treats as "0".
	if !n.Expires.IsZero() {
		h.Set("apns-expiration", strconv.FormatInt(max(n.Expires.Unix(), 0), 10))
	}

	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which holds the device token.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("apns: post to %s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		return fmt.Errorf("apns: %s answered over %s; APNs speaks HTTP/2 only", c.endpoint, resp.Proto)
	}
	// Error bodies are a small JSON object; a success has none. Reading
	// to the end (within bounds) lets the stream close cleanly.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	perr := classify(resp.StatusCode, parseReason(body), parseRetryAfter(resp.Header.Get("Retry-After"), c.tokens.now()))
	if perr.Reason == reasonExpiredProviderToken && perr.StatusCode == http.StatusForbidden {
		c.tokens.expire(tok)
	}
	return perr
}

// MessageUUID is the apns-id sent for a push.Notification's MessageID: a
// name-based (version 5) UUID, so that every retry of a message carries the
// same apns-id.
func MessageUUID(messageID string) string {
	return uuid.NewSHA1(messageNamespace, []byte(messageID)).String()
}

// messageNamespace keeps OneDoor's apns-ids apart from other name-based
// UUIDs of the same strings.
var messageNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/onedoor/onedoor/push/apns#apns-id"))

func priority(p push.Priority) string {
	if p == push.High {
		return "10"
	}
	return "5"
}

func checkEndpoint(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("endpoint must be an https origin such as " + Production)
	}
	return "https://" + u.Host, nil
}

// isDeviceToken accepts what APNs hands an app: bytes, here hex-encoded.
// Apple warns the length may change, so only a generous bound is kept.
func isDeviceToken(s string) bool {
	if len(s) < 2 || len(s) > 400 || len(s)%2 != 0 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isIdentifier accepts Apple's key and team ids (10 letters and digits),
// without insisting on the length Apple might change.
func isIdentifier(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// isTopic accepts a bundle id: printable ASCII without spaces, since it
// travels as a header value.
func isTopic(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
