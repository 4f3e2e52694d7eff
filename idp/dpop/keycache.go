package dpop

import (
	"strings"
	"sync"
)

// keyCache remembers the key and thumbprint of proof headers already seen
// with a valid signature. A client sends the same header (typ, alg, jwk)
// with every proof, so decoding and checking its JWK, and hashing it for
// the thumbprint, is done once per key instead of once per request. The
// entry is keyed by the header's exact encoded bytes, from which everything
// cached follows; the signature is still verified on every proof.
type keyCache struct {
	mu  sync.Mutex
	max int
	m   map[string]cachedKey
}

type cachedKey struct {
	key any
	jkt string
}

// maxCachedHeader bounds the headers kept: a P-256 proof's is about 230
// bytes and an RSA-4096 one's under 800, so an attacker's padded headers
// cost a bounded amount (keyCacheSize × maxCachedHeader at most).
const (
	maxCachedHeader = 1024
	keyCacheSize    = 8192
)

func newKeyCache(size int) *keyCache {
	return &keyCache{max: size, m: make(map[string]cachedKey)}
}

func (c *keyCache) get(header string) (cachedKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.m[header]
	return k, ok
}

func (c *keyCache) put(header string, k cachedKey) {
	if len(header) > maxCachedHeader {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m) // rare: starting again is cheaper than tracking recency
	}
	// A copy: header is a slice of the proof, which it would keep alive.
	c.m[strings.Clone(header)] = k
}
