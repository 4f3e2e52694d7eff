package search

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/onedoor/onedoor/mobileapi"
)

// Source is what a Cache reads the catalog from (mobileapi.CatalogStore
// has both methods).
type Source interface {
	ListServices(ctx context.Context) ([]*mobileapi.Service, error)
	CatalogVersion(ctx context.Context) (int64, error)
}

// Check and rebuild bounds of a Cache.
const (
	// checkEvery bounds how often the catalog version is read: a change on
	// another replica shows here within this time, and a busy replica
	// asks the store once per interval, not once per search.
	checkEvery = 500 * time.Millisecond
	// refreshTimeout bounds a shared refresh, which runs detached from the
	// caller that started it so that its cancellation does not fail the
	// others waiting on the same refresh.
	refreshTimeout = 10 * time.Second
)

// Cache keeps an Index of a catalog current on one replica: it rebuilds
// the index when the catalog version changes, looking at most every 500 ms.
// The look runs in the background while the index at hand is less than
// maxStale old, so a search does not wait on the store for it; the first
// build, a look after Invalidate and a look at an older index are waited
// for. It is safe for concurrent use; concurrent callers share one look
// and one rebuild.
type Cache struct {
	src   Source
	now   func() time.Time
	group singleflight.Group

	mu      sync.Mutex
	index   *Index    // nil until the first build
	checked time.Time // last look at the version, successful or not
	// invalidated counts Invalidate calls; seen is what it was when the
	// last look that read the store began. Callers wait while seen is
	// behind.
	invalidated, seen uint64
	failed            time.Time                  // the last look that could not read the store
	looking           bool                       // a background look runs
	bg                <-chan singleflight.Result // the last one (for tests)
	waiting           atomic.Int32               // callers waiting on a look (for tests)
}

// maxStale bounds how old an index a search is answered from while the
// look runs in the background: after an idle spell the first search waits.
const maxStale = 10 * time.Second

// NewCache returns a cache over src; it reads nothing until the first
// Index call.
func NewCache(src Source) *Cache {
	return &Cache{src: src, now: time.Now}
}

// Invalidate makes the next Index look at the catalog version at once and
// wait for it: this replica's own catalog writes are searchable
// immediately, others' within the polling interval while searches come.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	c.invalidated++
	c.mu.Unlock()
}

// Index returns an index of the current catalog. When the store fails, the
// last index built is returned without error (stale search beats no
// search); without one the store's error is.
func (c *Cache) Index(ctx context.Context) (*Index, error) {
	c.mu.Lock()
	ix, want := c.index, c.invalidated
	now := c.now()
	age := now.Sub(c.checked)
	// Within the interval after a look that could not read the store,
	// nobody waits for another: a failing store must not stall every
	// search, even one that would wait for this replica's write.
	failing := now.Sub(c.failed) < checkEvery
	if ix != nil && (c.seen >= want || failing) && age < maxStale {
		if age >= checkEvery && !c.looking {
			c.looking = true
			c.bg = c.look(ctx)
		}
		c.mu.Unlock()
		return ix, nil
	}
	c.mu.Unlock()
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	// A look that began before the Invalidate this caller saw may still be
	// running; it is joined, then one more is taken.
	for range 2 {
		select {
		case r := <-c.look(ctx):
			if r.Err != nil {
				return nil, r.Err
			}
			ix = r.Val.(*Index)
			c.mu.Lock()
			done := c.seen >= want
			c.mu.Unlock()
			if done {
				return ix, nil
			}
		case <-ctx.Done():
			// The look goes on for the other callers; this one serves the
			// index it has, if any.
			if ix != nil {
				return ix, nil
			}
			return nil, ctx.Err()
		}
	}
	// The store could not be read: the index there is, as when it fails.
	return ix, nil
}

// look starts a refresh shared by every caller until it ends (or joins
// the one running). It runs detached from the caller that started it, so
// that its cancellation does not fail the others.
func (c *Cache) look(ctx context.Context) <-chan singleflight.Result {
	return c.group.DoChan("refresh", func() (any, error) {
		c.mu.Lock()
		gen := c.invalidated
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		ix, read, err := c.refresh(ctx)
		c.mu.Lock()
		if read {
			c.seen = max(c.seen, gen)
		} else if err == nil {
			c.failed = c.now() // the old index was kept
		}
		// Whichever look ends, a background look may start again (one
		// asked for while a waited-for look ran joined it).
		c.looking = false
		c.mu.Unlock()
		return ix, err
	})
}

// refresh looks at the catalog version and rebuilds the index if it moved.
// read reports whether the store answered: when it failed, the old index
// is returned, and a look this replica's own write asked for is still due.
func (c *Cache) refresh(ctx context.Context) (ix *Index, read bool, err error) {
	c.mu.Lock()
	old := c.index
	c.mu.Unlock()
	// The version is read before the services: were the catalog to change
	// in between, the index holds newer services under an older version
	// and the next look rebuilds it, where the other order could keep
	// older services under the newer version for good.
	version, err := c.src.CatalogVersion(ctx)
	if err == nil && old != nil && version == old.version {
		c.keep(old)
		return old, true, nil
	}
	var services []*mobileapi.Service
	if err == nil {
		services, err = c.src.ListServices(ctx)
	}
	if err != nil {
		if old == nil {
			return nil, false, fmt.Errorf("loading the catalog for search: %w", err)
		}
		// Look again only after the interval, so a failing store is not
		// asked on every search.
		c.keep(old)
		return old, false, nil
	}
	// The index answers with summaries; forms are read from the store
	// when needed, so an agency's large schemas are not held on every
	// replica for as long as the index lives.
	for _, s := range services {
		s.Schema = nil
	}
	ix = New(services)
	ix.version = version
	c.keep(ix)
	return ix, true, nil
}

// keep makes ix the current index, looked at now.
func (c *Cache) keep(ix *Index) {
	c.mu.Lock()
	c.index, c.checked = ix, c.now()
	c.mu.Unlock()
}
