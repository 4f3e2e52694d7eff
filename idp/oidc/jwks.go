package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
)

// JWKSFetcher fetches the key sets private_key_jwt clients publish at their
// jwks_uri. It is fosite's JWKSFetcherStrategy, with the limits an outbound
// fetch driven by client data needs (SECURITY.md 69):
//
//   - its own HTTP client: connect, header and overall timeouts, no
//     redirects, a body limit;
//   - https only, except http on a loopback address;
//   - a cache per URL whose TTL follows Cache-Control max-age, clamped to
//     [MinTTL, MaxTTL];
//   - at most one fetch per URL per RefetchInterval, whatever asks for it: an
//     unauthenticated stream of assertions with unknown kids, or a jwks_uri
//     that is down, costs at most one outbound request a minute;
//   - concurrent misses for one URL share a single fetch.
//
// Every failure is fosite.ErrInvalidClient, so the token endpoint answers 401
// invalid_client, never a 500.
type JWKSFetcher struct {
	client *http.Client
	now    func() time.Time
	// maxBody bounds a key set document; maxKeys the keys kept from it.
	maxBody int64
	maxKeys int
	minTTL  time.Duration
	maxTTL  time.Duration
	refetch time.Duration

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

// Defaults of the fetcher.
const (
	JWKSMaxBody          = 64 << 10
	JWKSMaxKeys          = 32
	JWKSDefaultTTL       = 10 * time.Minute
	JWKSMinTTL           = 5 * time.Minute
	JWKSMaxTTL           = 15 * time.Minute
	JWKSRefetchInterval  = time.Minute
	jwksConnectTimeout   = 3 * time.Second
	jwksOverallTimeout   = 10 * time.Second
	jwksMaxEntries       = 4096
	jwksEntryIdleEvicted = time.Hour
)

var _ fosite.JWKSFetcherStrategy = (*JWKSFetcher)(nil)

// jwksEntry is the cache of one URL. lock is a one-slot semaphore so a
// waiting request can give up when its context ends.
type jwksEntry struct {
	lock    chan struct{}
	set     *jose.JSONWebKeySet
	expires time.Time
	// tried is the start of the last fetch, successful or not.
	tried time.Time
	err   error
	used  time.Time
}

// NewJWKSFetcher returns a fetcher with the default limits. now may be nil.
func NewJWKSFetcher(now func() time.Time) *JWKSFetcher {
	if now == nil {
		now = time.Now
	}
	dialer := &net.Dialer{Timeout: jwksConnectTimeout}
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    jwksConnectTimeout,
		ResponseHeaderTimeout:  jwksOverallTimeout,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           16,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &JWKSFetcher{
		client: &http.Client{
			Transport: tr,
			Timeout:   jwksOverallTimeout,
			// A key set is where it is registered: a redirect is an error.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now:     now,
		maxBody: JWKSMaxBody,
		maxKeys: JWKSMaxKeys,
		minTTL:  JWKSMinTTL,
		maxTTL:  JWKSMaxTTL,
		refetch: JWKSRefetchInterval,
		entries: map[string]*jwksEntry{},
	}
}

// Resolve implements fosite.JWKSFetcherStrategy. With ignoreCache a fresh
// copy is fetched unless one was fetched (or tried) within the refetch
// interval; then the cached set, or the last error, is returned.
func (f *JWKSFetcher) Resolve(ctx context.Context, location string, ignoreCache bool) (*jose.JSONWebKeySet, error) {
	if err := checkJWKSURL(location); err != nil {
		return nil, invalidJWKS(err)
	}
	e := f.entry(location)
	select {
	case e.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, invalidJWKS(ctx.Err())
	}
	defer func() { <-e.lock }()

	now := f.now()
	e.used = now
	fresh := e.set != nil && now.Before(e.expires)
	throttled := !e.tried.IsZero() && now.Sub(e.tried) < f.refetch
	switch {
	case fresh && !ignoreCache:
		return e.set, nil
	case throttled:
		if fresh {
			return e.set, nil
		}
		if e.err != nil {
			return nil, e.err
		}
		// Expired and throttled cannot both hold with TTL > refetch, unless
		// the clock moved back; fetch.
	}
	e.tried = now
	set, ttl, err := f.fetch(ctx, location)
	if err != nil {
		e.err = invalidJWKS(err)
		if fresh {
			// A forced refresh that failed keeps the cached set.
			return e.set, nil
		}
		e.set = nil
		return nil, e.err
	}
	e.set, e.err, e.expires = set, nil, now.Add(ttl)
	return set, nil
}

// entry returns the cache entry of a URL, creating it. Entries idle for an
// hour are dropped when the table grows large (clients are registered by an
// operator, so their number is bounded, but URLs change).
func (f *JWKSFetcher) entry(location string) *jwksEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[location]; ok {
		return e
	}
	if len(f.entries) >= jwksMaxEntries {
		cutoff := f.now().Add(-jwksEntryIdleEvicted)
		for k, e := range f.entries {
			select {
			case e.lock <- struct{}{}:
				if e.used.Before(cutoff) {
					delete(f.entries, k)
				}
				<-e.lock
			default:
			}
		}
	}
	e := &jwksEntry{lock: make(chan struct{}, 1)}
	f.entries[location] = e
	return e
}

func (f *JWKSFetcher) fetch(ctx context.Context, location string) (*jose.JSONWebKeySet, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("fetch: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read: %w", err)
	}
	if int64(len(body)) > f.maxBody {
		return nil, 0, fmt.Errorf("key set larger than %d bytes", f.maxBody)
	}
	set, err := parseKeySet(body, f.maxKeys)
	if err != nil {
		return nil, 0, err
	}
	return set, f.ttl(resp.Header.Get("Cache-Control")), nil
}

// ttl honours max-age within [minTTL, maxTTL]; no-store or no-cache still
// cache for minTTL, or every assertion would cost a fetch.
func (f *JWKSFetcher) ttl(cc string) time.Duration {
	ttl := JWKSDefaultTTL
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return min(max(ttl, f.minTTL), f.maxTTL)
}

// parseKeySet keeps the public signature keys of a key set document; keys
// that do not parse, carry private material or are for encryption are
// skipped, so one odd key does not disable the others.
func parseKeySet(body []byte, maxKeys int) (*jose.JSONWebKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	set := &jose.JSONWebKeySet{}
	for _, raw := range doc.Keys {
		if len(set.Keys) == maxKeys {
			break
		}
		var k jose.JSONWebKey
		if err := json.Unmarshal(raw, &k); err != nil {
			continue
		}
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		set.Keys = append(set.Keys, k)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("key set has no usable public signature key")
	}
	return set, nil
}

// checkJWKSURL allows https, and http only on a loopback address.
func checkJWKSURL(location string) error { return idp.ValidJWKSURI(location) }

func invalidJWKS(err error) error {
	return fosite.ErrInvalidClient.WithHint("The client's JSON Web Key Set could not be retrieved.").WithWrap(err).WithDebug(err.Error())
}
