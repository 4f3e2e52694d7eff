package dpop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// ErrFull means the in-memory jti set holds its cap of live entries, none
// of which may be dropped yet. The proof is neither accepted nor called a
// replay: it wraps idp.ErrUnavailable, so the endpoints answer 503 and the
// client's retry (with a fresh proof) is safe.
var ErrFull = fmt.Errorf("dpop: in-memory jti set full: %w", idp.ErrUnavailable)

// DefaultLocalCap is the default bound of the in-memory jti set: some
// 28,000 proofs a second sustained (each held up to 1.25 × (MaxAge +
// 2·Skew)), about 80 bytes each, so 330 MB at most.
const DefaultLocalCap = 4 << 20

// spent is the in-memory set of spent jtis: shards by the key's first byte,
// each a short list of generations (one map per span of time). Lookups try
// every live generation; a generation is dropped whole once its newest
// entry is older than ttl, so cleanup costs O(1) per entry and needs no
// scan.
type spent struct {
	ttl, span time.Duration
	shardCap  int
	shards    []shard
}

type shard struct {
	mu   sync.Mutex
	gens []gen // oldest first
	n    int   // entries in gens
}

type gen struct {
	end  time.Time // every entry was spent before end (or the clock stepped back)
	keys map[[32]byte]struct{}
}

// generations is how many spans make a ttl: a dropped generation is at
// most ttl/generations past its expiry.
const generations = 4

// newSpent returns a set that keeps each key for at least ttl, refusing
// new keys beyond about limit (rounded down to a multiple of shards).
func newSpent(ttl time.Duration, limit, shards int) *spent {
	s := &spent{ttl: ttl, span: ttl / generations, shardCap: max(1, limit/shards), shards: make([]shard, shards)}
	if s.span <= 0 {
		s.span = 1
	}
	return s
}

func (s *spent) shard(k [32]byte) *shard {
	return &s.shards[int(k[0])%len(s.shards)]
}

// spend records k, spent at now: idp.ErrConflict if it is already there,
// ErrFull if the shard is at its cap.
func (s *spent) spend(k [32]byte, now time.Time) error {
	sh := s.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Drop the generations whose every entry has lived ttl.
	drop := 0
	for drop < len(sh.gens) && !now.Before(sh.gens[drop].end.Add(s.ttl)) {
		sh.n -= len(sh.gens[drop].keys)
		drop++
	}
	// Delete zeroes the vacated tail, so the dropped maps are freed.
	sh.gens = slices.Delete(sh.gens, 0, drop)
	for i := range sh.gens {
		if _, ok := sh.gens[i].keys[k]; ok {
			return idp.ErrConflict
		}
	}
	if sh.n >= s.shardCap {
		return ErrFull
	}
	if len(sh.gens) == 0 || !now.Before(sh.gens[len(sh.gens)-1].end) {
		sh.gens = append(sh.gens, gen{end: now.Add(s.span), keys: make(map[[32]byte]struct{})})
	}
	sh.gens[len(sh.gens)-1].keys[k] = struct{}{}
	sh.n++
	return nil
}

// flush writes to replay, under their durable key, the keys whose proofs
// could still be accepted: spent less than keep ago (MaxAge + Skew: the
// latest iat a spend allows, plus the age a proof may have), each for what
// is left of that.
func (s *spent) flush(ctx context.Context, replay Replay, now time.Time, keep time.Duration) (int, error) {
	type entry struct {
		k   [32]byte
		ttl time.Duration
	}
	var live []entry
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, g := range sh.gens {
			ttl := g.end.Add(keep).Sub(now)
			if ttl <= 0 {
				continue
			}
			for k := range g.keys {
				live = append(live, entry{k, ttl})
			}
		}
		sh.mu.Unlock()
	}
	for i, e := range live {
		if err := replay.Create(ctx, replayKey(e.k), []byte{1}, e.ttl); err != nil && !errors.Is(err, idp.ErrConflict) {
			return i, fmt.Errorf("dpop: flush spent jtis: %w", err)
		}
	}
	return len(live), nil
}
