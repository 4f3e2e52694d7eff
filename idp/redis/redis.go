// Package redis implements idp.Ephemeral in Redis for scale mode, with
// native TTLs instead of garbage collection.
//
// It runs on one Redis or on a Redis Cluster (DialCluster): every command
// touches one key, and the one script (Incr) only the key it is given, so
// no command or script spans hash slots.
package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	neturl "net/url"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/redis/go-redis/v9"
)

// Ephemeral is idp.Ephemeral over a Redis client. Every key is prefixed, so
// several deployments or areas can share one Redis.
type Ephemeral struct {
	c      redis.UniversalClient
	prefix string
}

var _ idp.Ephemeral = (*Ephemeral)(nil)

// New returns an Ephemeral over client whose keys all start with prefix.
func New(client redis.UniversalClient, prefix string) *Ephemeral {
	return &Ephemeral{c: client, prefix: prefix}
}

// Dial connects to the Redis at url (redis://[user:pass@]host:port/db or
// rediss://) with short timeouts, so a dead Redis fails requests fast
// instead of hanging them, and checks it answers.
func Dial(ctx context.Context, url string) (redis.UniversalClient, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		// The URL may hold a password; don't echo it.
		return nil, fmt.Errorf("dial redis: bad url: %w", idp.ErrInvalid)
	}
	// Values given in the URL's query win.
	setDefault(&opt.DialTimeout, 2*time.Second)
	setDefault(&opt.ReadTimeout, time.Second)
	setDefault(&opt.WriteTimeout, time.Second)
	setDefault(&opt.PoolTimeout, 2*time.Second)
	if opt.PoolSize == 0 {
		opt.PoolSize = 20
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = 2 // the default 5 keeps a request waiting on a dead server
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial redis %s: %w: %w", opt.Addr, idp.ErrUnavailable, err)
	}
	if multiShard(ctx, c) {
		// Its PING answers, but every key of another shard's slots would
		// get MOVED (an outage, read as such) for as long as it runs.
		c.Close()
		return nil, fmt.Errorf("dial redis %s: a node of a Redis Cluster whose slots other masters share: dial the cluster (DialCluster): %w", opt.Addr, idp.ErrInvalid)
	}
	return c, nil
}

// multiShard reports whether c is a node of a Redis Cluster with more than
// one master serving slots. A Redis that hides CLUSTER INFO (or is not a
// cluster) is taken as one shard.
func multiShard(ctx context.Context, c *redis.Client) bool {
	info, err := c.ClusterInfo(ctx).Result()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_size:"); ok {
			return v != "0" && v != "1"
		}
	}
	return false
}

// DialCluster connects to the Redis Cluster at url, in go-redis's
// ParseClusterURL form: redis://[user:pass@]host:port?addr=host2:port2&...
// (or rediss://), the first node in the authority and any others as addr.
// One reachable node is enough: the client learns the others and the slot
// map from CLUSTER SLOTS, and follows MOVED and ASK redirections. The
// timeouts are Dial's. It checks that every master answers and that the
// cluster serves all its slots.
func DialCluster(ctx context.Context, url string) (redis.UniversalClient, error) {
	opt, err := redis.ParseClusterURL(url)
	if err != nil {
		// The URL may hold a password; don't echo it.
		return nil, fmt.Errorf("dial redis cluster: bad url (want redis://host:port?addr=host2:port2&addr=...): %w", idp.ErrInvalid)
	}
	if path := strings.TrimPrefix(pathOf(url), "/"); path != "" && path != "0" {
		return nil, fmt.Errorf("dial redis cluster: a cluster has only database 0, not %q: %w", path, idp.ErrInvalid)
	}
	setDefault(&opt.DialTimeout, 2*time.Second)
	setDefault(&opt.ReadTimeout, time.Second)
	setDefault(&opt.WriteTimeout, time.Second)
	setDefault(&opt.PoolTimeout, 2*time.Second)
	if opt.PoolSize == 0 {
		opt.PoolSize = 20 // per node
	}
	if opt.DialerRetries == 0 {
		opt.DialerRetries = 2
	}
	c := redis.NewClusterClient(opt)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := pingCluster(ctx, c); err != nil {
		c.Close()
		return nil, fmt.Errorf("dial redis cluster %s: %w", strings.Join(opt.Addrs, ","), err)
	}
	return c, nil
}

// pathOf returns url's path, "" when it does not parse (ParseClusterURL
// has already said whether it does).
func pathOf(url string) string {
	u, err := neturl.Parse(url)
	if err != nil {
		return ""
	}
	return u.Path
}

// pingCluster asks every master for CLUSTER INFO: each must answer and
// report cluster_state:ok, or some slots have no master serving them and
// the requests for their keys would fail.
func pingCluster(ctx context.Context, c *redis.ClusterClient) error {
	err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		info, err := node.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("node %s: %w", node.Options().Addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("node %s: %w", node.Options().Addr, errClusterDown)
		}
		return nil
	})
	return redisErr("ping cluster", err)
}

// errClusterDown is a cluster_state other than ok: an outage, as redisErr
// reads any error that is not an error reply.
var errClusterDown = errors.New("cluster state is not ok")

func setDefault(d *time.Duration, v time.Duration) {
	if *d == 0 {
		*d = v
	}
}

// redisErr maps redis.Nil to ErrNotFound and outages (network failures,
// timeouts, a server loading, failing over or out of memory) to
// ErrUnavailable. An error reply that retrying cannot fix (an unknown
// command, a wrong type, a permission denied) stays a plain error, which
// transports answer as a server error without Retry-After.
func redisErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("%s: %w", op, idp.ErrNotFound)
	case permanent(err):
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %w: %w", op, idp.ErrUnavailable, err)
}

// transientReplies are the error replies of a server that will answer again.
var transientReplies = []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "OOM", "MOVED", "ASK"}

// permanent reports whether err is an error reply from the server that a
// retry would get again.
func permanent(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false // network, timeout, pool: an outage
	}
	msg := re.Error()
	for _, p := range transientReplies {
		if strings.HasPrefix(msg, p) {
			return false
		}
	}
	return true
}

func checkTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("ttl %v must be positive: %w", ttl, idp.ErrInvalid)
	}
	return nil
}

// px rounds ttl up to whole milliseconds, as SET PX and PEXPIRE need.
func px(ttl time.Duration) time.Duration {
	return (ttl + time.Millisecond - 1).Truncate(time.Millisecond)
}

// Set stores value under key, replacing any previous value.
func (e *Ephemeral) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	return redisErr("set ephemeral", e.c.Set(ctx, e.prefix+key, value, px(ttl)).Err())
}

// Create stores value only when key is absent (SET NX PX).
func (e *Ephemeral) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	ok, err := e.c.SetNX(ctx, e.prefix+key, value, px(ttl)).Result()
	if err != nil {
		return redisErr("create ephemeral", err)
	}
	if !ok {
		return fmt.Errorf("create ephemeral: %w", idp.ErrConflict)
	}
	return nil
}

// CreateMany sends one SET NX PX GET per key in one pipeline (on a cluster,
// one per node). Each call stores a random token of its own as the
// marker: go-redis resends a pipeline whose reply timed out, and the
// resend then finds the keys the first send stored holding this call's
// token, which counts as stored by it, not as a replay (SECURITY.md 56,
// 70). Keys given twice are sent once.
func (e *Ephemeral) CreateMany(ctx context.Context, keys []string, ttl time.Duration) ([]bool, error) {
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	return e.createMany(ctx, keys, ttl, rand.Text())
}

// createMany is CreateMany with the call's token.
func (e *Ephemeral) createMany(ctx context.Context, keys []string, ttl time.Duration, token string) ([]bool, error) {
	first := make(map[string]int, len(keys))
	cmds := make([]*redis.StatusCmd, len(keys))
	_, err := e.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			if _, ok := first[k]; ok {
				continue
			}
			first[k] = i
			cmds[i] = p.SetArgs(ctx, e.prefix+k, token, redis.SetArgs{Mode: "NX", TTL: px(ttl), Get: true})
		}
		return nil
	})
	// A key that was absent answers nil, which the pipeline reports as its
	// first error: only other errors are failures.
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, redisErr("create ephemeral", err)
	}
	created := make([]bool, len(keys))
	for i, c := range cmds {
		if c == nil {
			continue
		}
		old, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			created[i] = true
		case err != nil:
			return nil, redisErr("create ephemeral", err)
		default:
			created[i] = old == token
		}
	}
	return created, nil
}

// Get returns the value under key.
func (e *Ephemeral) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := e.c.Get(ctx, e.prefix+key).Bytes()
	return v, redisErr("get ephemeral", err)
}

// Take returns and deletes the value with GETDEL (Redis 6.2+).
func (e *Ephemeral) Take(ctx context.Context, key string) ([]byte, error) {
	v, err := e.c.GetDel(ctx, e.prefix+key).Bytes()
	return v, redisErr("take ephemeral", err)
}

// Delete removes key; absent keys are not an error.
func (e *Ephemeral) Delete(ctx context.Context, key string) error {
	return redisErr("delete ephemeral", e.c.Del(ctx, e.prefix+key).Err())
}

// incr sets the TTL only on a counter that has none, i.e. one INCR just
// created, so later calls never extend it; one script keeps it atomic.
var incr = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n`)

// Incr adds one to the counter under key.
func (e *Ephemeral) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := checkTTL(ttl); err != nil {
		return 0, err
	}
	n, err := incr.Run(ctx, e.c, []string{e.prefix + key}, px(ttl).Milliseconds()).Int64()
	return n, redisErr("incr ephemeral", err)
}

// Ping reports whether Redis answers; on a cluster, whether every master
// does and serves its slots.
func (e *Ephemeral) Ping(ctx context.Context) error {
	if c, ok := e.c.(*redis.ClusterClient); ok {
		return pingCluster(ctx, c)
	}
	return redisErr("ping", e.c.Ping(ctx).Err())
}

// Close does nothing: the client belongs to the caller, who may share it.
func (e *Ephemeral) Close() error { return nil }
