package redis

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/redis/go-redis/v9"
)

// Limiter is push.StreamLimiter across replicas. Each live stream holds a
// lease: a member of its citizen's sorted set, scored by when it expires
// on Redis's clock (replicas' clocks play no part). The replica renews its
// leases every third of the lease and removes one when its stream ends; a
// replica that dies stops renewing, and its slots free when their leases
// pass. Acquire first drops the expired members, then adds one only below
// the limit, in one script: parallel connects on several replicas cannot
// overshoot.
type Limiter struct {
	rdb    redis.UniversalClient
	prefix string
	lease  time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	held   map[string]string // member → key
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
}

var _ push.StreamLimiter = (*Limiter)(nil)

// DefaultLease is how long a stream's slot outlives its replica.
const DefaultLease = 90 * time.Second

// LimiterOption configures a Limiter.
type LimiterOption func(*Limiter)

// WithLimiterPrefix sets the prefix of the limiter's keys (default
// "onedoor:"), as --redis-prefix does.
func WithLimiterPrefix(p string) LimiterOption { return func(l *Limiter) { l.prefix = p } }

// WithLease sets how long a slot stays held without renewal (default
// DefaultLease): how long a dead replica's streams still count.
func WithLease(d time.Duration) LimiterOption { return func(l *Limiter) { l.lease = d } }

// WithLimiterLogger sets where failed renewals are logged.
func WithLimiterLogger(lg *slog.Logger) LimiterOption { return func(l *Limiter) { l.log = lg } }

// acquire: KEYS[1] the citizen's set; ARGV limit, lease (ms), member.
var acquire = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
	return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// renew: KEYS[1] the citizen's set; ARGV lease (ms), member. Only a lease
// still held is extended (XX): one released while the renewal was on its
// way stays released, instead of coming back as a slot nobody holds, and
// one that lapsed (the replica stalled beyond it) is not taken back over
// the limit.
var renew = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`)

// NewLimiter returns a Limiter on rdb and starts renewing its leases until
// Close. The client stays the caller's.
func NewLimiter(rdb redis.UniversalClient, opts ...LimiterOption) (*Limiter, error) {
	l := &Limiter{rdb: rdb, prefix: "onedoor:", lease: DefaultLease, log: slog.Default(),
		held: map[string]string{}, done: make(chan struct{}), exited: make(chan struct{})}
	for _, o := range opts {
		o(l)
	}
	if l.lease < 3*time.Millisecond {
		return nil, fmt.Errorf("push/redis: stream lease %v too short", l.lease)
	}
	go l.run()
	return l, nil
}

func (l *Limiter) key(citizenID string) string {
	sum := sha256.Sum256([]byte(citizenID))
	return l.prefix + "push:streams:" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Acquire implements push.StreamLimiter.
func (l *Limiter) Acquire(ctx context.Context, citizenID string, limit int) (func(), bool, error) {
	key, member := l.key(citizenID), rand.Text()
	ok, err := acquire.Run(ctx, l.rdb, []string{key}, limit, l.lease.Milliseconds(), member).Int()
	if err != nil {
		return nil, false, fmt.Errorf("push/redis: acquire a stream slot: %w", err)
	}
	if ok != 1 {
		return nil, false, nil
	}
	l.mu.Lock()
	l.held[member] = key
	l.mu.Unlock()
	return sync.OnceFunc(func() { l.release(member, key) }), true, nil
}

// release frees a slot. When Redis cannot be told, the lease passes.
func (l *Limiter) release(member, key string) {
	l.mu.Lock()
	delete(l.held, member)
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.rdb.ZRem(ctx, key, member).Err(); err != nil {
		l.log.Warn("push/redis: stream slot not released; it frees when its lease passes", "err", err)
	}
}

func (l *Limiter) run() {
	defer close(l.exited)
	t := time.NewTicker(l.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			l.renewAll()
		}
	}
}

// renewAll renews every held lease, a pipeline of 500 at a time.
func (l *Limiter) renewAll() {
	l.mu.Lock()
	leases := make([][2]string, 0, len(l.held))
	for m, k := range l.held {
		leases = append(leases, [2]string{k, m})
	}
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.lease/3)
	defer cancel()
	if len(leases) > 0 {
		// EVALSHA in the pipeline needs the script loaded (Redis may have
		// restarted since the last renewal).
		if err := renew.Load(ctx, l.rdb).Err(); err != nil {
			l.log.Warn("push/redis: stream leases not renewed", "leases", len(leases), "err", err)
			return
		}
	}
	for chunk := range slices.Chunk(leases, 500) {
		p := l.rdb.Pipeline()
		for _, lease := range chunk {
			renew.EvalSha(ctx, p, []string{lease[0]}, l.lease.Milliseconds(), lease[1])
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			l.log.Warn("push/redis: stream leases not renewed", "leases", len(chunk), "err", err)
		}
	}
}

// Close stops renewing; the leases still held pass with time (their
// streams end with the server).
func (l *Limiter) Close() error {
	l.once.Do(func() { close(l.done) })
	<-l.exited
	return nil
}
