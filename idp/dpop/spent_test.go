package dpop

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

func key(i int) [32]byte {
	return sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(i))) //nolint:gosec // test indexes are small and positive
}

func TestSpent_ReplayAndExpiry(t *testing.T) {
	ttl := 2 * time.Minute
	s := newSpent(ttl, 1000, 4)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	if err := s.spend(key(1), now); err != nil {
		t.Fatal(err)
	}
	// Still spent anywhere within ttl, whichever generation holds it.
	for _, d := range []time.Duration{0, time.Second, ttl / 2, ttl - time.Second} {
		if err := s.spend(key(1), now.Add(d)); !errors.Is(err, idp.ErrConflict) {
			t.Fatalf("replay after %s: got %v, want ErrConflict", d, err)
		}
	}
	// Past ttl plus a generation's span, the entry is gone and its count
	// with it.
	later := now.Add(ttl + ttl/generations)
	if err := s.spend(key(1), later); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if n := s.shard(key(1)).n; n != 1 {
		t.Fatalf("shard holds %d entries, want 1", n)
	}
}

func TestSpent_CapRefusesThenFrees(t *testing.T) {
	ttl := time.Minute
	s := newSpent(ttl, 64, 4) // 16 per shard
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	accepted, full := 0, 0
	for i := range 1000 {
		switch err := s.spend(key(i), now.Add(time.Duration(i)*time.Millisecond)); {
		case err == nil:
			accepted++
		case errors.Is(err, ErrFull):
			if !errors.Is(err, idp.ErrUnavailable) {
				t.Fatalf("ErrFull %v does not wrap idp.ErrUnavailable", err)
			}
			full++
		default:
			t.Fatalf("spend %d: %v", i, err)
		}
	}
	if accepted != 64 || full != 1000-64 {
		t.Fatalf("accepted %d, refused %d as full; want 64 and %d", accepted, full, 1000-64)
	}
	// A full set still knows its entries: a replay is a replay, not 503.
	if err := s.spend(key(0), now.Add(time.Second)); !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("replay into a full set: got %v, want ErrConflict", err)
	}
	// Once the entries have expired, their room is free again.
	later := now.Add(2 * ttl)
	for i := 1000; i < 1064; i++ {
		if err := s.spend(key(i), later); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	}
	total := 0
	for i := range s.shards {
		total += s.shards[i].n
	}
	if total == 0 || total > 64 {
		t.Fatalf("after expiry the set holds %d entries, want 1..64", total)
	}
}

func TestSpent_ConcurrentSameKey(t *testing.T) {
	s := newSpent(time.Minute, 1000, 16)
	now := time.Now()
	for round := range 50 {
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				switch err := s.spend(key(round), now); {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, idp.ErrConflict):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d spends won, want 1", round, wins.Load())
		}
	}
}

// BenchmarkSpent compares one lock with sharded locks under parallel
// spends of distinct keys (what many app requests do).
func BenchmarkSpent(b *testing.B) {
	for _, shards := range []int{1, 16} {
		b.Run(fmt.Sprintf("shards=%d", shards), func(b *testing.B) {
			s := newSpent(2*time.Minute, 1<<30, shards)
			now := time.Now()
			var next atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.spend(key(int(next.Add(1))), now); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
