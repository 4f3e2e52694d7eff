package search

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// catalogSource is a catalog held in memory, counting the reads; gate,
// when set, holds ListServices until closed.
type catalogSource struct {
	mu       sync.Mutex
	services []*mobileapi.Service
	version  int64
	err      error // of both methods
	listErr  error // of ListServices alone
	gate     chan struct{}

	versions, lists atomic.Int32
}

func (s *catalogSource) ListServices(ctx context.Context) ([]*mobileapi.Service, error) {
	s.lists.Add(1)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := errors.Join(s.err, s.listErr); err != nil {
		return nil, err
	}
	return s.services, nil
}

// hold makes ListServices wait until the returned gate is closed.
func (s *catalogSource) hold() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
	return s.gate
}

// indexLater asks c for its index on another goroutine.
func indexLater(c *Cache) <-chan *Index {
	done := make(chan *Index, 1)
	go func() {
		got, _ := c.Index(context.Background())
		done <- got
	}()
	return done
}

func (s *catalogSource) CatalogVersion(context.Context) (int64, error) {
	s.versions.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	return s.version, nil
}

func (s *catalogSource) set(services []*mobileapi.Service, version int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services, s.version, s.err = services, version, err
}

// clock is a settable time.
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

func newTestCache(src Source) (*Cache, *clock) {
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	c := NewCache(src)
	c.now = clk.now
	return c, clk
}

// settle waits for the look Index last started in the background.
func settle(t *testing.T, c *Cache) {
	t.Helper()
	c.mu.Lock()
	ch := c.bg
	c.bg = nil
	c.mu.Unlock()
	if ch == nil {
		t.Fatal("no look was started in the background")
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("the background look did not end")
	}
}

func mustIndex(t *testing.T, c *Cache) *Index {
	t.Helper()
	ix, err := c.Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestCacheRebuildsOnlyWhenTheVersionChanges(t *testing.T) {
	src := &catalogSource{}
	src.set(catalog()[:2], 7, nil)
	c, clk := newTestCache(src)

	ix := mustIndex(t, c)
	if ix.Len() != 2 || ix.Version() != 7 {
		t.Fatalf("first index: %d services, version %d", ix.Len(), ix.Version())
	}
	// Within the interval the store is not asked.
	clk.add(checkEvery - time.Millisecond)
	if got := mustIndex(t, c); got != ix || src.versions.Load() != 1 {
		t.Fatalf("within the interval: same index %v, %d version reads", got == ix, src.versions.Load())
	}
	// After it, the version is read in the background while the search
	// answers from the index it has; unchanged, nothing is rebuilt.
	clk.add(time.Millisecond)
	if got := mustIndex(t, c); got != ix {
		t.Fatal("a new index before the look")
	}
	settle(t, c)
	if got := mustIndex(t, c); got != ix || src.versions.Load() != 2 || src.lists.Load() != 1 {
		t.Fatalf("same version: same index %v, %d version reads, %d lists", got == ix, src.versions.Load(), src.lists.Load())
	}
	// The catalog changes on another replica: the next look rebuilds.
	src.set(catalog(), 8, nil)
	if got := mustIndex(t, c); got != ix {
		t.Fatal("rebuilt before the interval passed")
	}
	clk.add(checkEvery)
	if got := mustIndex(t, c); got != ix {
		t.Fatal("the search waited for the rebuild")
	}
	settle(t, c)
	ix2 := mustIndex(t, c)
	if ix2 == ix || ix2.Len() != len(catalog()) || ix2.Version() != 8 || src.lists.Load() != 2 {
		t.Fatalf("after the change: %d services, version %d, %d lists", ix2.Len(), ix2.Version(), src.lists.Load())
	}
	if hits := ix2.Search(Query{Text: "ly lich tu phap"}); len(hits) != 1 {
		t.Errorf("new service not found: %v", hits)
	}
}

func TestCacheServesTheOldIndexWhenTheStoreFails(t *testing.T) {
	src := &catalogSource{}
	down := fmt.Errorf("catalog: %w", idp.ErrUnavailable)
	src.set(nil, 1, down)
	c, clk := newTestCache(src)

	// No index yet: the error.
	if ix, err := c.Index(context.Background()); !errors.Is(err, idp.ErrUnavailable) || ix != nil {
		t.Fatalf("no index and a failing store: %v, %v", ix, err)
	}
	// Without an index, the next call tries again at once.
	src.set(catalog(), 1, nil)
	ix := mustIndex(t, c)

	src.set(catalog(), 2, down)
	clk.add(checkEvery)
	_ = mustIndex(t, c)
	settle(t, c)
	if got := mustIndex(t, c); got != ix {
		t.Fatal("the old index was not served while the store fails")
	}
	// The failure counts as a look: no retry within the interval.
	reads := src.versions.Load()
	_ = mustIndex(t, c)
	if src.versions.Load() != reads {
		t.Error("a failing store was asked again within the interval")
	}
	// ListServices failing alone (the version moved) keeps the old one too.
	src.set(catalog(), 2, nil)
	src.mu.Lock()
	src.listErr = down
	src.mu.Unlock()
	clk.add(checkEvery)
	_ = mustIndex(t, c)
	settle(t, c)
	if got := mustIndex(t, c); got != ix || src.lists.Load() != 2 {
		t.Fatalf("failing list: old index %v, %d lists", got == ix, src.lists.Load())
	}
	// Once the store is back, the new version is built.
	src.mu.Lock()
	src.listErr = nil
	src.mu.Unlock()
	clk.add(checkEvery)
	_ = mustIndex(t, c)
	settle(t, c)
	if got := mustIndex(t, c); got == ix || got.Version() != 2 {
		t.Fatalf("recovered store: version %d", got.Version())
	}

	// A caller whose context ends while a refresh is slow gets the index
	// there is.
	src.set(catalog(), 3, nil)
	src.mu.Lock()
	src.gate = make(chan struct{})
	src.mu.Unlock()
	t.Cleanup(func() { close(src.gate) })
	clk.add(checkEvery)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := c.Index(ctx); got == nil || got.Version() != 2 || err != nil {
		t.Fatalf("cancelled caller with an index: %v, %v", got, err)
	}
}

func TestCacheSharesOneRebuild(t *testing.T) {
	src := &catalogSource{gate: make(chan struct{})}
	src.set(catalog(), 3, nil)
	c, _ := newTestCache(src)

	const callers = 32
	var wg sync.WaitGroup
	results := make(chan *Index, callers)
	for range callers {
		wg.Go(func() {
			ix, err := c.Index(context.Background())
			if err != nil {
				t.Error(err)
			}
			results <- ix
		})
	}
	// Let every caller reach the shared refresh, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for src.lists.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(src.gate)
	wg.Wait()
	close(results)
	var first *Index
	for ix := range results {
		if first == nil {
			first = ix
		}
		if ix == nil || ix != first {
			t.Fatal("callers got different indexes")
		}
	}
	// Callers arriving after the shared refresh ended find the index
	// fresh; a late one may have started a second look, never a second
	// list of an unchanged catalog.
	if n := src.lists.Load(); n != 1 {
		t.Errorf("%d lists for %d concurrent callers", n, callers)
	}
}

func TestCacheCancelledCallerDoesNotFailOthers(t *testing.T) {
	src := &catalogSource{gate: make(chan struct{})}
	src.set(catalog(), 1, nil)
	c, _ := newTestCache(src)

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.Index(ctx)
		first <- err
	}()
	for src.lists.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan *Index, 1)
	go func() {
		ix, err := c.Index(context.Background())
		if err != nil {
			t.Error(err)
		}
		second <- ix
	}()
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(src.gate)
	if ix := <-second; ix == nil || ix.Len() != len(catalog()) {
		t.Fatal("the other caller did not get the index")
	}
}

// Invalidate makes the next look at once, within the polling interval.
func TestCacheInvalidate(t *testing.T) {
	src := &catalogSource{}
	c := NewCache(src)
	if _, err := c.Index(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := src.versions.Load()
	if _, err := c.Index(t.Context()); err != nil || src.versions.Load() != before {
		t.Fatalf("a second look within the interval read the store (%v)", err)
	}
	c.Invalidate()
	if _, err := c.Index(t.Context()); err != nil || src.versions.Load() != before+1 {
		t.Errorf("after Invalidate the version was read %d more times, want 1 (%v)", src.versions.Load()-before, err)
	}
}

// With an index, a search never waits on the store's look, however slow;
// after Invalidate it does, and sees the write that invalidated.
func TestCacheLooksInTheBackground(t *testing.T) {
	src := &catalogSource{}
	src.set(catalog()[:2], 1, nil)
	c, clk := newTestCache(src)
	ix := mustIndex(t, c)

	src.set(catalog(), 2, nil)
	gate := src.hold()
	clk.add(checkEvery)
	done := indexLater(c)
	select {
	case got := <-done:
		if got != ix {
			t.Error("not the index there was")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a search waited for the store's look")
	}
	close(gate)
	settle(t, c)
	if got := mustIndex(t, c); got.Version() != 2 {
		t.Errorf("after the look: version %d", got.Version())
	}

	// This replica's own write: the next search waits and sees it.
	src.set(catalog()[:1], 3, nil)
	c.Invalidate()
	if got := mustIndex(t, c); got.Version() != 3 || got.Len() != 1 {
		t.Errorf("after Invalidate: version %d, %d services", got.Version(), got.Len())
	}
}

// A look that began before this replica's write does not satisfy the
// search after it: the caller joins it, then takes one more.
func TestCacheInvalidateDuringALook(t *testing.T) {
	src := &catalogSource{}
	src.set(catalog(), 1, nil)
	c, clk := newTestCache(src)
	_ = mustIndex(t, c)

	src.set(catalog(), 2, nil)
	gate := src.hold()
	clk.add(checkEvery)
	_ = mustIndex(t, c) // the look reads version 2, then waits at the gate
	for src.lists.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	src.set(catalog()[:1], 3, nil) // this replica's write
	c.Invalidate()
	done := make(chan *Index, 1)
	go func() {
		got, err := c.Index(context.Background())
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	for c.waiting.Load() == 0 { // joined the look at the gate
		time.Sleep(time.Millisecond)
	}
	src.mu.Lock()
	src.gate = nil
	src.mu.Unlock()
	close(gate)
	if got := <-done; got == nil || got.Version() != 3 || got.Len() != 1 {
		t.Errorf("after the write: %v", got)
	}
}

// A store that fails the look after this replica's write does not count
// as having seen it: the search answers from the old index, searches within
// the interval do not wait on the store again, and the first after it,
// once the store is back, looks again and finds the write.
func TestCacheInvalidateWhileTheStoreFails(t *testing.T) {
	src := &catalogSource{}
	src.set(catalog(), 1, nil)
	c, clk := newTestCache(src)
	ix := mustIndex(t, c)

	src.set(catalog()[:1], 2, fmt.Errorf("catalog: %w", idp.ErrUnavailable))
	c.Invalidate()
	if got := mustIndex(t, c); got != ix {
		t.Fatal("not the old index while the store fails")
	}
	// Within the interval no search waits on the failing store again.
	reads := src.versions.Load()
	for range 10 {
		if got := mustIndex(t, c); got != ix {
			t.Fatal("not the old index while the store fails")
		}
	}
	if n := src.versions.Load() - reads; n != 0 {
		t.Errorf("10 searches within the interval read the failing store %d times", n)
	}
	src.set(catalog()[:1], 2, nil)
	clk.add(checkEvery)
	if got := mustIndex(t, c); got.Version() != 2 || got.Len() != 1 {
		t.Errorf("once the store is back: version %d, %d services", got.Version(), got.Len())
	}
}

// After an idle spell longer than maxStale, the first search waits for the
// look instead of answering from an index that old.
func TestCacheWaitsPastMaxStale(t *testing.T) {
	src := &catalogSource{}
	src.set(catalog()[:1], 1, nil)
	c, clk := newTestCache(src)
	_ = mustIndex(t, c)

	src.set(catalog(), 2, nil)
	gate := src.hold()
	clk.add(maxStale)
	done := indexLater(c)
	for c.waiting.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("answered from an index older than maxStale")
	default:
	}
	close(gate)
	if got := <-done; got.Version() != 2 {
		t.Errorf("version %d, want 2", got.Version())
	}
}
