package accesstoken

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Cache remembers the tokens whose signature and claims a Verifier
// checked, until they expire, so a resource server pays for the ES256
// verification once per token rather than once per request. The deny list
// is read again once the last read is older than recheck: a revocation
// still takes effect within that bound on every replica.
type Cache struct {
	v       *Verifier
	recheck time.Duration
	max     int
	now     func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]*cached
}

type cached struct {
	c       *Claims
	checked time.Time
}

// NewCache returns a cache over v holding up to size tokens.
func NewCache(v *Verifier, recheck time.Duration, size int) *Cache {
	return &Cache{v: v, recheck: recheck, max: size, now: v.now, m: map[[sha256.Size]byte]*cached{}}
}

// VerifyFor is Verifier.VerifyFor with the cache. The returned claims are
// shared: callers must not modify them.
func (c *Cache) VerifyFor(ctx context.Context, token string, exp Expect) (*Claims, error) {
	if exp.Audience == "" || exp.Kind == "" {
		return nil, fmt.Errorf("expectation without audience or kind: %w", ErrInvalid)
	}
	key := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	e := c.m[key]
	c.mu.Unlock()
	if e == nil {
		cl, err := c.v.VerifyFor(ctx, token, exp)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if len(c.m) >= c.max {
			clear(c.m) // rare: a full cache starts again rather than track recency
		}
		c.m[key] = &cached{c: cl, checked: now}
		c.mu.Unlock()
		return cl, nil
	}
	cl := e.c
	if cl.ExpiresAt == nil || !now.Before(cl.ExpiresAt.Add(c.v.skew)) {
		c.forget(key)
		return nil, fmt.Errorf("token expired: %w", ErrInvalid)
	}
	if !slices.Contains(cl.Audience, exp.Audience) {
		return nil, fmt.Errorf("token not minted for this audience: %w", ErrInvalid)
	}
	if cl.Kind != exp.Kind {
		return nil, fmt.Errorf("token of kind %q, want %q: %w", cl.Kind, exp.Kind, ErrInvalid)
	}
	c.mu.Lock()
	stale := now.Sub(e.checked) >= c.recheck
	c.mu.Unlock()
	if stale {
		if err := c.v.checkRevoked(ctx, cl); err != nil {
			c.forget(key)
			return nil, err
		}
		c.mu.Lock()
		e.checked = now
		c.mu.Unlock()
	}
	return cl, nil
}

// Known reports whether token was verified and has not expired: a caller
// may let such a token through where it refuses unverified ones (the mobile
// API over an address's limit of failed authentications) without paying
// for a signature check. VerifyFor still decides.
func (c *Cache) Known(token string) bool {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	e := c.m[key]
	c.mu.Unlock()
	return e != nil && e.c.ExpiresAt != nil && c.now().Before(e.c.ExpiresAt.Add(c.v.skew))
}

func (c *Cache) forget(key [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}
