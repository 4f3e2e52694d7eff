package fcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
	"golang.org/x/sync/singleflight"
)

// messagingScope is the OAuth 2.0 scope that FCM HTTP v1 requires.
const messagingScope = "https://www.googleapis.com/auth/firebase.messaging"

// tokenFetchTimeout bounds one token request when the caller's HTTP client
// has no timeout of its own: x/oauth2/jwt sends it without a context.
const tokenFetchTimeout = 30 * time.Second

// maxEarlyRefresh is how long before its expiry an access token is
// replaced at most (a quarter of its lifetime for short-lived tokens), so
// that a send never goes out with a token about to lapse.
const maxEarlyRefresh = time.Minute

// tokenCache holds the access token that Sends share. Refreshes go through
// one singleflight call, so concurrent Sends wait for one token request
// and each waiter can still give up on its own context.
type tokenCache struct {
	conf *jwt.Config
	hc   *http.Client
	now  func() time.Time // replaced in tests

	flight singleflight.Group

	mu        sync.Mutex
	access    string
	refreshAt time.Time // zero: the token endpoint gave no lifetime
}

func newTokenCache(sa *serviceAccount, hc *http.Client) *tokenCache {
	fetchClient := *hc
	if fetchClient.Timeout == 0 {
		fetchClient.Timeout = tokenFetchTimeout
	}
	return &tokenCache{
		conf: &jwt.Config{
			Email:        sa.ClientEmail,
			PrivateKey:   []byte(sa.PrivateKey),
			PrivateKeyID: sa.PrivateKeyID,
			Scopes:       []string{messagingScope},
			TokenURL:     sa.TokenURI,
			Audience:     sa.TokenURI,
		},
		hc:  &fetchClient,
		now: time.Now,
	}
}

// token returns a valid access token, fetching one if none is cached.
func (c *tokenCache) token(ctx context.Context) (string, error) {
	if tok, ok := c.cached(); ok {
		return tok, nil
	}
	ch := c.flight.DoChan("", func() (any, error) {
		// A flight that ended just before this one began may have
		// stored a fresh token already.
		if tok, ok := c.cached(); ok {
			return tok, nil
		}
		return c.fetch()
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("fcm: waiting for an access token: %w", ctx.Err())
	}
}

func (c *tokenCache) cached() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.access == "" || (!c.refreshAt.IsZero() && !c.now().Before(c.refreshAt)) {
		return "", false
	}
	return c.access, true
}

// fetch runs the JWT assertion flow (RFC 7523) once. It is detached from
// any one Send's context: other Sends may be waiting for its result.
func (c *tokenCache) fetch() (string, error) {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.hc)
	// TokenSource wraps the assertion flow in a cache of its own; a new
	// one per fetch leaves caching, early refresh and invalidation here.
	tok, err := c.conf.TokenSource(ctx).Token()
	if err != nil {
		return "", tokenError(err)
	}
	if tok.AccessToken == "" {
		return "", errors.New("fcm: the token endpoint returned no access token")
	}
	var refreshAt time.Time
	if !tok.Expiry.IsZero() {
		life := time.Until(tok.Expiry)
		refreshAt = c.now().Add(life - min(maxEarlyRefresh, life/4))
	}
	c.mu.Lock()
	c.access, c.refreshAt = tok.AccessToken, refreshAt
	c.mu.Unlock()
	return tok.AccessToken, nil
}

// invalidate drops the cached token if it is still the one a send was
// refused with, so that the next send fetches a new one.
func (c *tokenCache) invalidate(access string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.access == access {
		c.access, c.refreshAt = "", time.Time{}
	}
}

// tokenError describes a failed token request without quoting the token
// endpoint's body: oauth2.RetrieveError's message includes all of it.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("fcm: fetching an access token: %w", err)
	}
	code := re.ErrorCode
	if code == "" {
		var body struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			code = body.Error
		}
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	if code = safeCode(code); code != "" {
		return fmt.Errorf("fcm: the token endpoint refused the assertion: status %d (%s)", status, code)
	}
	return fmt.Errorf("fcm: the token endpoint refused the assertion: status %d", status)
}
