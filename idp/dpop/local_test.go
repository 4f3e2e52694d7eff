package dpop_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
)

// counted is the durable store with a count of the spends it received.
type counted struct {
	dpop.Replay
	n atomic.Int64
}

func (c *counted) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.n.Add(1)
	return c.Replay.Create(ctx, key, value, ttl)
}

// localFixture is a verifier spending in memory over a SQLite store, on a
// clock the test moves (whole seconds, like iat).
type localFixture struct {
	*fixture
	store *counted
}

func newLocalFixture(t testing.TB, capacity int) *localFixture {
	t.Helper()
	f := newFixture(t, sqliteEph(t))
	f.now = f.now.Truncate(time.Second)
	lf := &localFixture{fixture: f, store: &counted{Replay: f.eph}}
	f.v = lf.local(capacity)
	return lf
}

// local is a process started at f.now.
func (lf *localFixture) local(capacity int) *dpop.Verifier {
	return dpop.New(dpop.Config{Local: true, LocalCap: capacity, Now: func() time.Time { return lf.now }}, lf.store)
}

// skew is Config.Skew's default.
const skew = 30 * time.Second

func TestVerifyLocal_ReplayRefusedInMemory(t *testing.T) {
	f := newLocalFixture(t, 0)
	f.now = f.now.Add(time.Minute) // the proof is issued a minute after start
	p := f.proof(t, dpop.ProofRequest{})
	if _, err := f.v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
		t.Fatal(err)
	}
	_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "replay in memory")
	if !errors.Is(err, dpop.ErrInvalidProof) || err.Error() != "jti replayed: invalid DPoP proof" {
		t.Fatalf("got %q, want the jti replayed refusal", err)
	}
	if n := f.store.n.Load(); n != 0 {
		t.Fatalf("%d spends reached the durable store, want 0", n)
	}
}

func TestVerifyLocal_ProofFromBeforeStartGoesToDurableStore(t *testing.T) {
	f := newLocalFixture(t, 0)
	start := f.now
	f.now = start.Add(10 * time.Second)
	// iat before start, at start, and at start + Skew exactly: a previous
	// process may have seen each.
	for i, iat := range []time.Time{start.Add(-40 * time.Second), start, start.Add(skew)} {
		p := f.proof(t, dpop.ProofRequest{Now: iat})
		if _, err := f.v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
			t.Fatalf("iat %s: %v", iat.Sub(start), err)
		}
		// Each earlier proof was spent and its replay checked there too.
		if n := f.store.n.Load(); n != int64(2*i+1) {
			t.Fatalf("iat %s: %d durable calls, want %d", iat.Sub(start), n, 2*i+1)
		}
		_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
		wantInvalid(t, err, "replay of a proof spent in the durable store")
	}
	// One second later than start + Skew: memory.
	p := f.proof(t, dpop.ProofRequest{Now: start.Add(skew + time.Second)})
	if _, err := f.v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
		t.Fatal(err)
	}
	if n := f.store.n.Load(); n != 6 { // 3 spends + 3 refused replays
		t.Fatalf("%d durable calls, want 6: the late proof went to the durable store", n)
	}
}

// TestVerifyLocal_Restart: the next process over the same durable store
// refuses what the first one spent, in the store and, once flushed, in
// memory.
func TestVerifyLocal_Restart(t *testing.T) {
	f := newLocalFixture(t, 0)
	start := f.now
	early := f.proof(t, dpop.ProofRequest{Now: start}) // durable
	f.now = start.Add(40 * time.Second)                // past start + Skew
	late := f.proof(t, dpop.ProofRequest{Now: f.now})  // memory
	for _, p := range []string{early, late} {
		if _, err := f.v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
			t.Fatal(err)
		}
	}
	n, err := f.v.Flush(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("flush: %d, %v; want 1 entry", n, err)
	}
	// Restarted 5 s later: both proofs are still within MaxAge.
	f.now = f.now.Add(5 * time.Second)
	next := f.local(0)
	for name, p := range map[string]string{"spent in the durable store": early, "spent in memory, flushed": late} {
		_, err := next.Verify(t.Context(), []string{p}, tokenCheck)
		wantInvalid(t, err, "after a restart, a proof "+name)
	}
	// The next process's own proofs go to memory again.
	f.now = f.now.Add(skew + time.Second)
	if _, err := next.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyLocal_CapRefusesWith503NotReplay(t *testing.T) {
	const capacity = 32 // 2 per shard
	f := newLocalFixture(t, capacity)
	f.now = f.now.Add(time.Minute)
	accepted := 0
	var full error
	for range 200 {
		_, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
		if err != nil {
			full = err
			break
		}
		accepted++
	}
	if full == nil || accepted > capacity {
		t.Fatalf("accepted %d proofs over a cap of %d", accepted, capacity)
	}
	if !errors.Is(full, dpop.ErrFull) || !errors.Is(full, idp.ErrUnavailable) || errors.Is(full, dpop.ErrInvalidProof) {
		t.Fatalf("full set: got %v, want ErrFull (idp.ErrUnavailable, not ErrInvalidProof)", full)
	}
	// MaxAge + 2·Skew later every entry has expired and frees its room.
	f.now = f.now.Add(3 * time.Minute)
	for range capacity / 4 {
		if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil && !errors.Is(err, dpop.ErrFull) {
			t.Fatal(err)
		} else if err == nil {
			return
		}
	}
	t.Fatal("no room freed after the entries expired")
}

func TestVerifyLocal_ExpiryFreesEntries(t *testing.T) {
	f := newLocalFixture(t, 0)
	f.now = f.now.Add(time.Minute)
	p := f.proof(t, dpop.ProofRequest{})
	if _, err := f.v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
		t.Fatal(err)
	}
	// Once the proof is too old to verify, the entry goes; nothing of it is
	// left to flush.
	f.now = f.now.Add(3 * time.Minute)
	_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "a stale proof")
	if n, err := f.v.Flush(t.Context()); err != nil || n != 0 {
		t.Fatalf("flush after expiry: %d, %v; want 0", n, err)
	}
}

func TestVerifyLocal_ConcurrentSpendsOneWins(t *testing.T) {
	f := newLocalFixture(t, 0)
	f.now = f.now.Add(time.Minute)
	for range 10 {
		p := f.proof(t, dpop.ProofRequest{})
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				_, err := f.v.Verify(context.Background(), []string{p}, tokenCheck)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, dpop.ErrInvalidProof):
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d of 32 concurrent spends of one proof won, want 1", wins.Load())
		}
	}
}

// BenchmarkVerify: a whole verification (ES256 signature, claims, spend)
// with the jti spent in memory and in the embedded SQLite store.
func BenchmarkVerify(b *testing.B) {
	for _, local := range []bool{true, false} {
		name := "sqlite"
		if local {
			name = "memory"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, sqliteEph(b))
			f.v = dpop.New(dpop.Config{Local: local, Now: func() time.Time { return f.now }}, f.eph)
			f.now = f.now.Add(time.Minute) // after start + Skew: memory when local
			proofs := make([]string, b.N)
			for i := range proofs {
				proofs[i] = f.proof(b, dpop.ProofRequest{})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := f.v.Verify(b.Context(), []string{proofs[i]}, tokenCheck); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
