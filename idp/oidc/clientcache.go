package oidc

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// ClientVersions is what the client cache needs from the durable store to
// notice client changes (sqlstore.Store implements it).
type ClientVersions interface {
	// ClientsVersion returns a number that changes with every committed
	// write to the clients, by any process sharing the database.
	ClientsVersion(ctx context.Context) (int64, error)
	// ClientWrites counts the client writes this process made through the
	// store; it changes after each write has returned.
	ClientWrites() uint64
}

// Client cache timing. A client written by another process (an admin command,
// another replica) is served from memory at most ClientPollInterval plus one
// poll query after the write commits, and never longer than ClientMaxStale:
// when polls fail or stall, the cache is bypassed and every lookup reads the
// store, as without a cache. Writes through this process's store take effect
// at once.
const (
	ClientPollInterval = 500 * time.Millisecond
	ClientMaxStale     = 2 * time.Second
)

// clientCache keeps converted clients in memory (the fosite client with its
// JWKS parsed once) and drops them all whenever any client changes. A cached
// *Client (and its Record) is shared by concurrent requests: treat it as
// immutable.
//
// Correctness rests on one rule: a client read from the store is put into
// the cache generation that was current when the read started. Every change
// replaces the generation, so a read that raced with a change lands in a
// generation nobody serves from any more.
type clientCache struct {
	load     func(ctx context.Context, id string) (*idp.Client, error)
	versions ClientVersions // nil: no caching
	cur      atomic.Pointer[clientGen]
	base     time.Time // monotonic origin of clientGen.checked
	interval time.Duration
	maxStale time.Duration
}

// clientGen is one generation of cached clients.
type clientGen struct {
	// version is the store's ClientsVersion observed at the start of the
	// poll that made (or inherited into) this generation; every entry was
	// read after that poll started.
	version int64
	// local is the store's ClientWrites when the generation was made.
	local uint64
	// checked is when (time since clientCache.base) the last poll that
	// found version unchanged started: every commit before it is reflected.
	checked atomic.Int64
	clients sync.Map // id -> *Client
}

const neverChecked = -1 << 62

func newClientCache(load func(ctx context.Context, id string) (*idp.Client, error), versions ClientVersions) *clientCache {
	c := &clientCache{load: load, versions: versions, base: time.Now(), interval: ClientPollInterval, maxStale: ClientMaxStale}
	g := &clientGen{version: -1 << 62}
	g.checked.Store(neverChecked)
	if versions != nil {
		g.local = versions.ClientWrites()
	}
	c.cur.Store(g)
	return c
}

func (c *clientCache) elapsed() int64 { return int64(time.Since(c.base)) }

// generation returns the generation to serve from and to fill, or nil when
// the cache is off or not known to be fresh.
func (c *clientCache) generation() *clientGen {
	if c.versions == nil {
		return nil
	}
	for {
		g := c.cur.Load()
		if w := c.versions.ClientWrites(); w != g.local {
			// This process wrote a client: start a generation that inherits
			// the freshness of the last poll, since everything read into it
			// is read after the write.
			ng := &clientGen{version: g.version, local: w}
			ng.checked.Store(g.checked.Load())
			if !c.cur.CompareAndSwap(g, ng) {
				continue
			}
			g = ng
		}
		if c.elapsed()-g.checked.Load() > int64(c.maxStale) {
			return nil
		}
		return g
	}
}

// get returns the client from memory, or reads and converts it.
func (c *clientCache) get(ctx context.Context, id string) (*Client, error) {
	g := c.generation()
	if g != nil {
		if v, ok := g.clients.Load(id); ok {
			return v.(*Client), nil
		}
	}
	rec, err := c.load(ctx, id)
	if err != nil {
		return nil, err
	}
	fc := newClient(rec)
	if g != nil {
		g.clients.Store(id, fc)
	}
	return fc, nil
}

// poll reads the store's client version once: unchanged extends the current
// generation's freshness, changed starts an empty generation. A failed poll
// changes nothing, so the cache goes stale and is bypassed after maxStale.
func (c *clientCache) poll(ctx context.Context) error {
	start := c.elapsed()
	ctx, cancel := context.WithTimeout(ctx, c.maxStale)
	defer cancel()
	v, err := c.versions.ClientsVersion(ctx)
	if err != nil {
		return err
	}
	for {
		g := c.cur.Load()
		if g.version == v {
			for {
				old := g.checked.Load()
				if old >= start || g.checked.CompareAndSwap(old, start) {
					return nil
				}
			}
		}
		// Everything read into the new generation is read after this poll
		// started, and this poll saw every commit before it.
		ng := &clientGen{version: v, local: g.local}
		ng.checked.Store(start)
		if c.cur.CompareAndSwap(g, ng) {
			return nil
		}
	}
}

// run polls until ctx ends.
func (c *clientCache) run(ctx context.Context, onErr func(error)) {
	if c.versions == nil {
		return
	}
	t := time.NewTicker(c.interval)
	defer t.Stop()
	failing := false
	for {
		err := c.poll(ctx)
		// Report the first failure of a run of them, not one per poll.
		if err != nil && !failing && ctx.Err() == nil && onErr != nil {
			onErr(err)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WatchClients keeps the provider's in-memory client cache fresh until ctx
// ends, polling the store's client version every ClientPollInterval. Without
// it (or when the store cannot report versions) clients are read from the
// store on every request. onErr, if not nil, hears of the first failed poll
// after a success.
func (p *Provider) WatchClients(ctx context.Context, onErr func(error)) {
	p.storage.clients.run(ctx, onErr)
}
