package redis_test

import (
	"testing"
	"time"

	"github.com/onedoor/onedoor/push/redis"
	goredis "github.com/redis/go-redis/v9"
)

func newLimiter(tb testing.TB, c goredis.UniversalClient, prefix string, lease time.Duration) *redis.Limiter {
	tb.Helper()
	l, err := redis.NewLimiter(c, redis.WithLimiterPrefix(prefix), redis.WithLease(lease))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}

func acquireSlot(t *testing.T, l *redis.Limiter, citizen string, limit int) (func(), bool) {
	t.Helper()
	release, ok, err := l.Acquire(t.Context(), citizen, limit)
	if err != nil {
		t.Fatalf("Acquire(%s): %v", citizen, err)
	}
	return release, ok
}

// Two replicas sharing one Redis hold a citizen to the limit together.
func TestLimiter_AcrossReplicas(t *testing.T) {
	prefix := uniquePrefix()
	l1 := newLimiter(t, newClient(t, "", ""), prefix, time.Minute)
	l2 := newLimiter(t, newClient(t, "", ""), prefix, time.Minute)
	var releases []func()
	for i := range 3 {
		l := l1
		if i%2 == 1 {
			l = l2
		}
		r, ok := acquireSlot(t, l, "alice", 3)
		if !ok {
			t.Fatalf("slot %d refused", i+1)
		}
		releases = append(releases, r)
	}
	for i, l := range []*redis.Limiter{l1, l2} {
		if _, ok := acquireSlot(t, l, "alice", 3); ok {
			t.Errorf("replica %d gave a 4th slot of 3", i+1)
		}
	}
	if r, ok := acquireSlot(t, l2, "bob", 3); !ok {
		t.Error("another citizen was refused")
	} else {
		r()
	}
	releases[0]()
	releases[0]() // idempotent: frees one slot, not two
	r, ok := acquireSlot(t, l2, "alice", 3)
	if !ok {
		t.Fatal("a released slot was not freed")
	}
	if _, ok := acquireSlot(t, l1, "alice", 3); ok {
		t.Error("a double release freed two slots")
	}
	r()
}

// Parallel connects on two replicas cannot overshoot the limit.
func TestLimiter_Concurrent(t *testing.T) {
	prefix := uniquePrefix()
	ls := []*redis.Limiter{newLimiter(t, newClient(t, "", ""), prefix, time.Minute), newLimiter(t, newClient(t, "", ""), prefix, time.Minute)}
	got := make(chan bool, 40)
	for i := range 40 {
		go func() {
			_, ok, err := ls[i%2].Acquire(t.Context(), "alice", 5)
			if err != nil {
				t.Error(err)
			}
			got <- ok
		}()
	}
	n := 0
	for range 40 {
		if <-got {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d slots granted in parallel, want 5", n)
	}
}

// A replica that dies keeps its slots only until their leases pass; a
// live replica renews its own beyond the lease.
func TestLimiter_CrashedHolderFreesAfterLease(t *testing.T) {
	prefix := uniquePrefix()
	const lease = 600 * time.Millisecond
	crashed := newLimiter(t, newClient(t, "", ""), prefix, lease)
	alive := newLimiter(t, newClient(t, "", ""), prefix, lease)
	if _, ok := acquireSlot(t, crashed, "alice", 2); !ok {
		t.Fatal("refused")
	}
	if _, ok := acquireSlot(t, alive, "alice", 2); !ok {
		t.Fatal("refused")
	}
	_ = crashed.Close() // stops renewing without releasing: a SIGKILL
	if _, ok := acquireSlot(t, alive, "alice", 2); ok {
		t.Fatal("a crashed replica's slot was free at once")
	}
	// Polled, not timed: the slot frees some time after the lease.
	deadline := time.Now().Add(guard)
	for {
		r, ok := acquireSlot(t, alive, "alice", 2)
		if ok {
			r()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the crashed replica's slot was never freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Several leases later the live replica's own slot is still held.
	time.Sleep(3 * lease)
	if _, ok := acquireSlot(t, alive, "alice", 2); !ok {
		t.Fatal("refused the second slot")
	}
	if _, ok := acquireSlot(t, alive, "alice", 2); ok {
		t.Error("the renewed slot lapsed")
	}
}

// Redis down: the limiter says it cannot tell, never "allowed".
func TestLimiter_RedisDown(t *testing.T) {
	c := newClient(t, "", "127.0.0.1:1")
	l := newLimiter(t, c, uniquePrefix(), time.Minute)
	if _, ok, err := l.Acquire(t.Context(), "alice", 5); err == nil || ok {
		t.Errorf("Acquire with Redis down: %v, %v; want an error", ok, err)
	}
}
