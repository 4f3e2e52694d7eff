package idptest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// Expiry runs on the wall clock because Redis TTLs do; keep the waits short
// but well clear of scheduling noise under -race.
const (
	shortTTL = 200 * time.Millisecond
	longTTL  = time.Hour
	slack    = 100 * time.Millisecond
)

// RunEphemeralTests runs the ephemeral-store suite; newEph returns a fresh,
// empty store for each subtest. Expiry is checked with real sleeps.
func RunEphemeralTests(t *testing.T, newEph func(t *testing.T) idp.Ephemeral) {
	tests := []struct {
		name string
		run  func(t *testing.T, e idp.Ephemeral)
	}{
		{"Ping", testEphPing},
		{"SetGet", testSetGet},
		{"Delete", testDelete},
		{"Create", testCreate},
		{"CreateMany", testCreateMany},
		{"ConcurrentCreateMany", testConcurrentCreateMany},
		{"Take", testTake},
		{"Expiry", testExpiry},
		{"Incr", testIncr},
		{"IncrTTLNotExtended", testIncrTTL},
		{"InvalidTTL", testInvalidTTL},
		{"OpaqueKeys", testOpaqueKeys},
		{"ConcurrentTake", testConcurrentTake},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentIncr", testConcurrentIncr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEph(t)
			t.Cleanup(func() { e.Close() })
			withTimeout(subtestTimeout, func() { tt.run(t, e) })
		})
	}
}

func mustGet(t *testing.T, e idp.Ephemeral, key string, want []byte) {
	t.Helper()
	got, err := e.Get(t.Context(), key)
	mustNil(t, err, "get "+key)
	if !bytes.Equal(got, want) {
		t.Errorf("Get(%q): got %q, want %q", key, got, want)
	}
}

func mustBeGone(t *testing.T, e idp.Ephemeral, key string) {
	t.Helper()
	_, err := e.Get(t.Context(), key)
	mustBe(t, err, idp.ErrNotFound, "get "+key)
}

func testEphPing(t *testing.T, e idp.Ephemeral) {
	mustNil(t, e.Ping(t.Context()), "ping")
}

func testSetGet(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	mustBeGone(t, e, "missing")
	mustNil(t, e.Set(ctx, "k", []byte("v1"), longTTL), "set")
	mustGet(t, e, "k", []byte("v1"))
	mustNil(t, e.Set(ctx, "k", []byte("v2"), longTTL), "set again")
	mustGet(t, e, "k", []byte("v2"))

	bin := []byte{0, 0xff, 0, '\n', 0x80}
	mustNil(t, e.Set(ctx, "bin", bin, longTTL), "set binary")
	mustGet(t, e, "bin", bin)
	mustNil(t, e.Set(ctx, "empty", nil, longTTL), "set empty")
	mustGet(t, e, "empty", nil)
}

func testDelete(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	mustNil(t, e.Set(ctx, "k", []byte("v"), longTTL), "set")
	mustNil(t, e.Delete(ctx, "k"), "delete")
	mustBeGone(t, e, "k")
	mustNil(t, e.Delete(ctx, "k"), "delete absent key")
}

func testCreate(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	mustNil(t, e.Create(ctx, "k", []byte("first"), longTTL), "create")
	mustBe(t, e.Create(ctx, "k", []byte("second"), longTTL), idp.ErrConflict, "create existing key")
	mustGet(t, e, "k", []byte("first"))
	mustNil(t, e.Set(ctx, "s", []byte("set"), longTTL), "set")
	mustBe(t, e.Create(ctx, "s", []byte("create"), longTTL), idp.ErrConflict, "create over a set key")
	mustNil(t, e.Delete(ctx, "k"), "delete")
	mustNil(t, e.Create(ctx, "k", []byte("third"), longTTL), "create after delete")
	mustGet(t, e, "k", []byte("third"))
}

func testCreateMany(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	mustNil(t, e.Set(ctx, "live", []byte("kept"), longTTL), "set")
	mustNil(t, e.Set(ctx, "old", []byte("expiring"), shortTTL), "set")
	time.Sleep(shortTTL + slack)
	keys := []string{"a", "live", "b", "a", "old"}
	got, err := e.CreateMany(ctx, keys, longTTL)
	mustNil(t, err, "create many")
	if want := []bool{true, false, true, false, true}; !slices.Equal(got, want) {
		t.Errorf("CreateMany(%q) = %v, want %v", keys, got, want)
	}
	mustGet(t, e, "live", []byte("kept"))
	mustBe(t, e.Create(ctx, "a", []byte("x"), longTTL), idp.ErrConflict, "create a key CreateMany stored")
	mustBe(t, e.Create(ctx, "old", []byte("x"), longTTL), idp.ErrConflict, "create an expired key CreateMany stored again")
	again, err := e.CreateMany(ctx, []string{"b", "c"}, longTTL)
	mustNil(t, err, "create many again")
	if !slices.Equal(again, []bool{false, true}) {
		t.Errorf("second CreateMany = %v, want [false true]", again)
	}
	mustBe(t, e.Create(ctx, "c", []byte("x"), longTTL), idp.ErrConflict, "create a key CreateMany stored")
	none, err := e.CreateMany(ctx, nil, longTTL)
	mustNil(t, err, "create none")
	if len(none) != 0 {
		t.Errorf("CreateMany(nil) = %v", none)
	}
	// More keys than one statement takes on SQL stores.
	many := make([]string, 2500)
	for i := range many {
		many[i] = fmt.Sprintf("bulk:%d", i)
	}
	many[2499] = "a"
	bulk, err := e.CreateMany(ctx, many, longTTL)
	mustNil(t, err, "create 2,500")
	for i, ok := range bulk {
		if ok != (i != 2499) {
			t.Fatalf("bulk created[%d] = %v", i, ok)
		}
	}
	_, err = e.CreateMany(ctx, []string{"k"}, 0)
	mustBe(t, err, idp.ErrInvalid, "create many with no ttl")
}

// testConcurrentCreateMany: of batches racing for the same keys, each key
// is stored by exactly one.
func testConcurrentCreateMany(t *testing.T, e idp.Ephemeral) {
	const workers, keys = 8, 50
	wins := make([][]bool, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ks := make([]string, keys)
			for i := range ks {
				ks[i] = fmt.Sprintf("race:%d", (i+w*7)%keys)
			}
			wins[w], errs[w] = e.CreateMany(t.Context(), ks, longTTL)
		})
	}
	wg.Wait()
	count := map[int]int{}
	for w := range workers {
		mustNil(t, errs[w], "concurrent create many")
		for i, ok := range wins[w] {
			if ok {
				count[(i+w*7)%keys]++
			}
		}
	}
	for k := range keys {
		if count[k] != 1 {
			t.Errorf("key race:%d stored by %d batches, want 1", k, count[k])
		}
	}
}

func testTake(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	_, err := e.Take(ctx, "missing")
	mustBe(t, err, idp.ErrNotFound, "take missing key")
	mustNil(t, e.Set(ctx, "code", []byte("session"), longTTL), "set")
	got, err := e.Take(ctx, "code")
	mustNil(t, err, "take")
	if !bytes.Equal(got, []byte("session")) {
		t.Errorf("Take: got %q, want %q", got, "session")
	}
	_, err = e.Take(ctx, "code")
	mustBe(t, err, idp.ErrNotFound, "take twice")
	mustBeGone(t, e, "code")
}

func testExpiry(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	mustNil(t, e.Set(ctx, "set", []byte("v"), shortTTL), "set")
	mustNil(t, e.Set(ctx, "take", []byte("v"), shortTTL), "set")
	mustNil(t, e.Create(ctx, "create", []byte("old"), shortTTL), "create")
	mustNil(t, e.Set(ctx, "long", []byte("v"), longTTL), "set long")
	n, err := e.Incr(ctx, "counter", shortTTL)
	mustNil(t, err, "incr")
	if n != 1 {
		t.Fatalf("Incr: got %d, want 1", n)
	}
	mustGet(t, e, "set", []byte("v"))

	time.Sleep(shortTTL + slack)

	mustBeGone(t, e, "set")
	_, err = e.Take(ctx, "take")
	mustBe(t, err, idp.ErrNotFound, "take expired key")
	mustNil(t, e.Create(ctx, "create", []byte("new"), longTTL), "create over expired key")
	mustGet(t, e, "create", []byte("new"))
	n, err = e.Incr(ctx, "counter", longTTL)
	mustNil(t, err, "incr expired counter")
	if n != 1 {
		t.Errorf("Incr of an expired counter: got %d, want 1", n)
	}
	mustGet(t, e, "long", []byte("v"))
}

func testIncr(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	for want := int64(1); want <= 3; want++ {
		n, err := e.Incr(ctx, "a", longTTL)
		mustNil(t, err, "incr a")
		if n != want {
			t.Fatalf("Incr(a): got %d, want %d", n, want)
		}
	}
	n, err := e.Incr(ctx, "b", longTTL)
	mustNil(t, err, "incr b")
	if n != 1 {
		t.Errorf("Incr(b): got %d, want 1", n)
	}
	// Counters read as decimal text, as in Redis.
	mustGet(t, e, "a", []byte("3"))
	mustNil(t, e.Delete(ctx, "a"), "delete counter")
	n, err = e.Incr(ctx, "a", longTTL)
	mustNil(t, err, "incr deleted counter")
	if n != 1 {
		t.Errorf("Incr of a deleted counter: got %d, want 1", n)
	}
}

// testIncrTTL checks the window is fixed at creation: a rate limit must not
// slide forward with every hit.
func testIncrTTL(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	ttl := 2*shortTTL + slack // 500ms
	incr := func(want int64) {
		t.Helper()
		n, err := e.Incr(ctx, "c", ttl)
		mustNil(t, err, "incr")
		if n != want {
			t.Fatalf("Incr: got %d, want %d", n, want)
		}
	}
	incr(1)
	time.Sleep(ttl / 2)
	incr(2)
	time.Sleep(ttl/2 + slack) // past the first TTL, well before a renewed one
	incr(1)
}

func testInvalidTTL(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	for _, ttl := range []time.Duration{0, -time.Second} {
		mustBe(t, e.Set(ctx, "k", []byte("v"), ttl), idp.ErrInvalid, fmt.Sprintf("set with ttl %v", ttl))
		mustBe(t, e.Create(ctx, "k", []byte("v"), ttl), idp.ErrInvalid, fmt.Sprintf("create with ttl %v", ttl))
		_, err := e.Incr(ctx, "k", ttl)
		mustBe(t, err, idp.ErrInvalid, fmt.Sprintf("incr with ttl %v", ttl))
	}
	mustBeGone(t, e, "k")
}

func testOpaqueKeys(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	keys := []string{"code:abc/def", "rl:login:203.0.113.7", "a b\tc", "Nguyễn", `q'"%_*?`, ""}
	for i, k := range keys {
		mustNil(t, e.Set(ctx, k, []byte{byte(i)}, longTTL), fmt.Sprintf("set %q", k))
	}
	for i, k := range keys {
		mustGet(t, e, k, []byte{byte(i)})
	}
}

func testConcurrentTake(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	mustNil(t, e.Set(ctx, "code", []byte("once"), longTTL), "set")
	vals := make([][]byte, 20)
	errs := runConcurrently(len(vals), func(i int) error {
		var err error
		vals[i], err = e.Take(ctx, "code")
		return err
	})
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			if !bytes.Equal(vals[i], []byte("once")) {
				t.Errorf("Take: got %q, want %q", vals[i], "once")
			}
		case !errors.Is(err, idp.ErrNotFound):
			t.Errorf("Take: got error %v, want %v", err, idp.ErrNotFound)
		}
	}
	if winners != 1 {
		t.Errorf("concurrent Take: %d callers got the value, want exactly 1", winners)
	}
}

func testConcurrentCreate(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	errs := runConcurrently(20, func(i int) error {
		return e.Create(ctx, "jti", []byte(fmt.Sprint(i)), longTTL)
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("concurrent Create: callers %d and %d both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, idp.ErrConflict):
			t.Errorf("Create: got error %v, want %v", err, idp.ErrConflict)
		}
	}
	if winner < 0 {
		t.Fatal("concurrent Create: no caller succeeded")
	}
	mustGet(t, e, "jti", []byte(fmt.Sprint(winner)))
}

func testConcurrentIncr(t *testing.T, e idp.Ephemeral) {
	ctx := t.Context()
	const n = 50
	got := make([]int64, n)
	errs := runConcurrently(n, func(i int) error {
		var err error
		got[i], err = e.Incr(ctx, "hits", longTTL)
		return err
	})
	for _, err := range errs {
		mustNil(t, err, "concurrent incr")
	}
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("concurrent Incr returned %v, want each of 1..%d once", got, n)
		}
	}
	mustGet(t, e, "hits", []byte(fmt.Sprint(n)))
}
