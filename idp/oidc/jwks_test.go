package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testKeySet(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	return b
}

// jwksServer serves a key set (or what handle writes) and counts requests.
type jwksServer struct {
	*httptest.Server
	hits atomic.Int32
}

func newJWKSServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *jwksServer {
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		handle(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func serveSet(set []byte, cacheControl string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(set)
	}
}

func wantInvalidClient(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, fosite.ErrInvalidClient) {
		t.Errorf("%s: %v, want invalid_client", what, err)
	}
}

func TestJWKSFetcher_CacheAndOneRefetchAMinute(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv := newJWKSServer(t, serveSet(testKeySet(t), ""))
	f := NewJWKSFetcher(clk.now)

	for range 10 {
		set, err := f.Resolve(ctx, srv.URL, false)
		if err != nil || len(set.Keys) != 1 {
			t.Fatalf("resolve: %v %v", set, err)
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches for 10 resolves within the TTL, want 1", n)
	}
	// An unknown kid asks for a refresh; within a minute of the last fetch
	// none happens, however many ask.
	for range 100 {
		if _, err := f.Resolve(ctx, srv.URL, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches after 100 forced refreshes within a minute, want 1", n)
	}
	clk.add(61 * time.Second)
	for range 100 {
		if _, err := f.Resolve(ctx, srv.URL, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches after a minute and 100 forced refreshes, want 2", n)
	}
	// The default TTL is 10 minutes.
	clk.add(9 * time.Minute)
	_, _ = f.Resolve(ctx, srv.URL, false)
	if n := srv.hits.Load(); n != 2 {
		t.Fatalf("fetched again within the TTL (%d)", n)
	}
	clk.add(2 * time.Minute)
	_, _ = f.Resolve(ctx, srv.URL, false)
	if n := srv.hits.Load(); n != 3 {
		t.Fatalf("not fetched after the TTL (%d fetches)", n)
	}
}

func TestJWKSFetcher_TTLFollowsMaxAgeWithinBounds(t *testing.T) {
	ctx := context.Background()
	set := testKeySet(t)
	for _, tc := range []struct {
		cacheControl string
		fresh, stale time.Duration
	}{
		{"max-age=600", 9 * time.Minute, 11 * time.Minute},
		{"public, max-age=420", 6 * time.Minute, 8 * time.Minute},
		{"max-age=0", 4 * time.Minute, 6 * time.Minute},       // at least 5 minutes
		{"no-store", 9 * time.Minute, 11 * time.Minute},       // default 10
		{"max-age=86400", 14 * time.Minute, 16 * time.Minute}, // at most 15
	} {
		t.Run(tc.cacheControl, func(t *testing.T) {
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			srv := newJWKSServer(t, serveSet(set, tc.cacheControl))
			f := NewJWKSFetcher(clk.now)
			_, _ = f.Resolve(ctx, srv.URL, false)
			clk.add(tc.fresh)
			_, _ = f.Resolve(ctx, srv.URL, false)
			if n := srv.hits.Load(); n != 1 {
				t.Errorf("refetched after %v", tc.fresh)
			}
			clk.add(tc.stale - tc.fresh)
			_, _ = f.Resolve(ctx, srv.URL, false)
			if n := srv.hits.Load(); n != 2 {
				t.Errorf("not refetched after %v", tc.stale)
			}
		})
	}
}

func TestJWKSFetcher_Refusals(t *testing.T) {
	ctx := context.Background()
	set := testKeySet(t)
	target := newJWKSServer(t, serveSet(set, ""))
	redirect := newJWKSServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	})
	huge := newJWKSServer(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", JWKSMaxBody) + `"}`))
	})
	status := newJWKSServer(t, func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) })
	garbage := newJWKSServer(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) })
	private := newJWKSServer(t, func(w http.ResponseWriter, _ *http.Request) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1", Algorithm: "ES256"}}})
		_, _ = w.Write(b)
	})
	release := make(chan struct{})
	hang := newJWKSServer(t, func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)

	for _, tc := range []struct{ name, url string }{
		{"redirect is not followed", redirect.URL},
		{"body over the limit", huge.URL},
		{"error status", status.URL},
		{"not a key set", garbage.URL},
		{"private keys only", private.URL},
		{"plain http outside loopback", "http://jwks.agency.example/keys"},
		{"other scheme", "ftp://127.0.0.1/keys"},
		{"userinfo", "https://user:pass@agency.example/keys"},
		{"relative", "/keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewJWKSFetcher(nil)
			_, err := f.Resolve(ctx, tc.url, false)
			wantInvalidClient(t, tc.name, err)
		})
	}
	if n := target.hits.Load(); n != 0 {
		t.Errorf("the redirect target was fetched %d times", n)
	}
	t.Run("timeout", func(t *testing.T) {
		f := NewJWKSFetcher(nil)
		f.client.Timeout = 200 * time.Millisecond
		_, err := f.Resolve(ctx, hang.URL, false)
		wantInvalidClient(t, "hanging server", err)
	})
}

// A jwks_uri that is down is asked at most once a minute, and the error is
// remembered meanwhile.
func TestJWKSFetcher_FailuresAreThrottled(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var up atomic.Bool
	set := testKeySet(t)
	srv := newJWKSServer(t, func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		serveSet(set, "")(w, r)
	})
	f := NewJWKSFetcher(clk.now)
	for i := range 50 {
		_, err := f.Resolve(ctx, srv.URL, i%2 == 0)
		wantInvalidClient(t, "down", err)
	}
	if n := srv.hits.Load(); n != 1 {
		t.Fatalf("%d fetches of a failing jwks_uri within a minute, want 1", n)
	}
	up.Store(true)
	clk.add(time.Minute)
	if _, err := f.Resolve(ctx, srv.URL, false); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// A forced refresh that fails keeps the cached set.
	up.Store(false)
	clk.add(time.Minute)
	if _, err := f.Resolve(ctx, srv.URL, true); err != nil {
		t.Fatalf("failed refresh dropped the cached set: %v", err)
	}
}

func TestJWKSFetcher_ConcurrentMissesShareOneFetch(t *testing.T) {
	ctx := context.Background()
	srv := newJWKSServer(t, serveSet(testKeySet(t), ""))
	f := NewJWKSFetcher(nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.Resolve(ctx, srv.URL, false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("%d fetches for 20 concurrent misses, want 1", n)
	}
}
