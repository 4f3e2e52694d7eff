// Package fcm delivers notifications through Firebase Cloud Messaging's
// HTTP v1 API, authenticated as a service account with OAuth 2.0 access
// tokens from the JWT assertion flow (RFC 7523).
package fcm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onedoor/onedoor/push"
)

// DefaultEndpoint is FCM's API host.
const DefaultEndpoint = "https://fcm.googleapis.com"

// Config configures a Client.
type Config struct {
	// Credentials is the service-account key file (JSON) as the Firebase
	// console issues it: type, project_id, private_key_id, private_key,
	// client_email, token_uri.
	Credentials []byte
	// Endpoint is the FCM API base URL; empty means DefaultEndpoint.
	Endpoint string
	// HTTPClient sends both token requests and messages; nil means one
	// with HTTP/2 and enough idle connections for thousands of sends a
	// second. A caller's client should keep connections alive likewise.
	HTTPClient *http.Client
}

// Client is a push.Provider for FCM. It is safe for concurrent use.
type Client struct {
	hc      *http.Client
	sendURL string
	tokens  *tokenCache
	now     func() time.Time
}

var _ push.Provider = (*Client)(nil)

// New checks cfg and returns a Client. It does not contact FCM: the first
// Send fetches the access token.
func New(cfg Config) (*Client, error) {
	sa, err := parseCredentials(cfg.Credentials)
	if err != nil {
		return nil, err
	}
	endpoint := strings.TrimRight(cfg.Endpoint, "/")
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	if err := checkURL(endpoint); err != nil {
		return nil, fmt.Errorf("fcm: endpoint: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient()
	}
	return &Client{
		hc:      hc,
		sendURL: endpoint + "/v1/projects/" + url.PathEscape(sa.ProjectID) + "/messages:send",
		tokens:  newTokenCache(sa, hc),
		now:     time.Now,
	}, nil
}

// newHTTPClient keeps connections to FCM open: HTTP/2 multiplexes sends
// over a few of them, and for HTTP/1.1 the idle pool is far above the
// default of two per host.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 20 * time.Second,
		},
	}
}

// Platform reports push.FCM.
func (c *Client) Platform() push.Platform { return push.FCM }

// Send delivers n to the registration token t.Token with one
// messages:send call. FCM's refusals are *push.ProviderError; a 401 also
// drops the cached access token, so the retry fetches a new one.
func (c *Client) Send(ctx context.Context, t push.Target, n *push.Notification) error {
	if t.Platform != push.FCM {
		return fmt.Errorf("fcm: target is for platform %q", t.Platform)
	}
	if n == nil {
		return errors.New("fcm: no notification")
	}
	body, err := encodeMessage(t.Token, n, c.now())
	if err != nil {
		return err
	}
	access, err := c.tokens.token(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.sendURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fcm: building the request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+access)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("fcm: send: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain the {"name": ...} answer so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	errBody, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil {
		return fmt.Errorf("fcm: reading a status %d answer: %w", resp.StatusCode, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		c.tokens.invalidate(access)
	}
	return classify(resp.StatusCode, resp.Header, errBody, c.now())
}
