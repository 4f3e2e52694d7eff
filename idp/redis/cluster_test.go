package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/idptest"
	"github.com/onedoor/onedoor/idp/redis"
	"github.com/onedoor/onedoor/internal/redistest"
)

func dialCluster(t *testing.T) *goredis.ClusterClient {
	t.Helper()
	c, err := redis.DialCluster(t.Context(), redistest.ClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*goredis.ClusterClient)
}

// keysByMaster counts the keys under p on each master.
func keysByMaster(t *testing.T, c *goredis.ClusterClient, p string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	n := map[string]int{}
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, node *goredis.Client) error {
		keys, err := node.Keys(ctx, p+"*").Result()
		mu.Lock()
		n[node.Options().Addr] = len(keys)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// cleanUpKeys deletes the keys under p on every master when the test ends
// (SCAN sees one node's keys).
func cleanUpKeys(t *testing.T, c *goredis.ClusterClient, p string) {
	t.Cleanup(func() {
		err := c.ForEachMaster(context.Background(), func(ctx context.Context, node *goredis.Client) error {
			keys, err := node.Keys(ctx, p+"*").Result()
			for _, k := range keys {
				node.Del(ctx, k)
			}
			return err
		})
		if err != nil {
			t.Errorf("clean up keys %s*: %v", p, err)
		}
	})
}

func TestEphemeral_RedisCluster(t *testing.T) {
	c := dialCluster(t)
	idptest.RunEphemeralTests(t, func(t *testing.T) idp.Ephemeral {
		p := prefix()
		cleanUpKeys(t, c, p)
		return redis.New(c, p)
	})
}

// TestCluster_KeysOnEveryShard: the store's keys spread over every master,
// so the suite above ran on all shards, not on one by chance, and a
// counter's script ran wherever its key lives.
func TestCluster_KeysOnEveryShard(t *testing.T) {
	c := dialCluster(t)
	p := prefix()
	e := redis.New(c, p)
	ctx := t.Context()
	for i := range 60 {
		if err := e.Set(ctx, fmt.Sprint("k", i), []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := e.Incr(ctx, fmt.Sprint("n", i), time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	cleanUpKeys(t, c, p)
	per := keysByMaster(t, c, p)
	if len(per) < 3 {
		t.Fatalf("the cluster has %d masters, want at least 3", len(per))
	}
	total := 0
	for addr, n := range per {
		if n == 0 {
			t.Errorf("master %s holds none of the 120 keys", addr)
		}
		total += n
	}
	if total != 120 {
		t.Errorf("masters hold %d keys, want 120", total)
	}
	for i := range 60 {
		if n, err := e.Incr(ctx, fmt.Sprint("n", i), time.Minute); err != nil || n != 3 {
			t.Fatalf("Incr n%d: got %d, %v, want 3", i, n, err)
		}
	}
	if err := e.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestDialCluster_BadURL(t *testing.T) {
	for _, url := range []string{
		"http://user:secret@host:7001",
		"redis://user:secret@host:7001?addr=nocolon",
		"redis://host:7001?bogus=1",
		"redis://host:7001/3",
	} {
		_, err := redis.DialCluster(t.Context(), url)
		if !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("DialCluster(%q): got %v, want %v", url, err, idp.ErrInvalid)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("DialCluster(%q): the error shows the password: %v", url, err)
		}
	}
}

func TestDialCluster_Unreachable(t *testing.T) {
	_, err := redis.DialCluster(t.Context(), "redis://127.0.0.1:1?addr=127.0.0.1:2")
	if !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("DialCluster: got %v, want %v", err, idp.ErrUnavailable)
	}
}

// TestDialCluster_NotACluster: a cluster URL naming a Redis that is not a
// cluster fails at start-up, not on the first request.
func TestDialCluster_NotACluster(t *testing.T) {
	url := os.Getenv("ONEDOOR_TEST_REDIS_URL")
	if url == "" {
		t.Skip("ONEDOOR_TEST_REDIS_URL is not set")
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c, err := redis.DialCluster(t.Context(), "redis://"+opt.Addr)
	if err == nil {
		c.Close()
		t.Fatal("DialCluster on a Redis that is not a cluster: got no error")
	}
	// A misconfiguration, not an outage that waiting would cure.
	if errors.Is(err, idp.ErrUnavailable) || !strings.Contains(err.Error(), "cluster support disabled") {
		t.Errorf("DialCluster on a Redis that is not a cluster: got %v, want Redis's refusal", err)
	}
}

// privateCluster starts a cluster of the test's own (the shared one must
// not go down or reshard under other tests), whose nodes mark a silent
// master failed after a second, and dials it.
func privateCluster(t *testing.T) (*redistest.Cluster, goredis.UniversalClient) {
	t.Helper()
	cl := redistest.StartCluster(t, time.Second)
	c, err := redis.DialCluster(t.Context(), cl.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return cl, c
}

// TestCluster_NodeDown: with a master down, readiness fails naming it and
// requests fail as an outage (ErrUnavailable, which transports answer with
// 503), on the dead node's keys at once and on every key once the cluster
// has marked it failed; nothing panics, and all recovers once it is back,
// without a new client.
func TestCluster_NodeDown(t *testing.T) {
	cl, c := privateCluster(t)
	cmds := cl.Servers
	cc := c.(*goredis.ClusterClient)
	e := redis.New(c, "down:")
	ctx := t.Context()
	// One key on each master.
	var keys [2]string
	for i := 0; keys[0] == "" || keys[1] == ""; i++ {
		k := fmt.Sprint("k", i)
		slot, err := cc.ClusterKeySlot(ctx, "down:"+k).Result()
		if err != nil {
			t.Fatal(err)
		}
		keys[slot/8192] = k
	}
	for _, k := range keys {
		if err := e.Set(ctx, k, []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Ping(ctx); err != nil {
		t.Fatalf("Ping with every node up: %v", err)
	}

	// Stop (SIGSTOP) the second master: it keeps its port but answers
	// nothing, like a hung or partitioned node, and keeps its data for the
	// recovery below.
	if err := cmds[1].Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	t.Cleanup(func() {
		if stopped {
			_ = cmds[1].Process.Signal(syscall.SIGCONT)
		}
	})
	err := e.Ping(ctx)
	if !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Ping with a master down: got %v, want %v", err, idp.ErrUnavailable)
	}
	t.Logf("Ping with a master down: %v", err)
	start := time.Now()
	if _, err := e.Get(ctx, keys[1]); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Get of a key on the stopped master: got %v, want %v", err, idp.ErrUnavailable)
	}
	t.Logf("Get of a key on the stopped master failed after %v", time.Since(start).Round(time.Millisecond))
	if _, err := e.Incr(ctx, "n"+keys[1], time.Minute); err != nil && !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Incr with a master down: got %v, want nil or %v", err, idp.ErrUnavailable)
	}
	// Once the live master has marked the other failed (node timeout 1s),
	// it refuses every key (CLUSTERDOWN): an outage too, never a not-found.
	redistest.WaitUntil(t, "the live master refuses its keys", func() bool {
		_, err := e.Get(ctx, keys[0])
		if err != nil && !errors.Is(err, idp.ErrUnavailable) {
			t.Fatalf("Get on the live master: got %v, want %v or the value", err, idp.ErrUnavailable)
		}
		return err != nil
	})

	if err := cmds[1].Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	stopped = false
	redistest.WaitUntil(t, "recovery", func() bool { return e.Ping(ctx) == nil })
	for _, k := range keys {
		if v, err := e.Get(ctx, k); err != nil || string(v) != "v" {
			t.Errorf("Get %s after recovery: got %q, %v", k, v, err)
		}
	}
}

// TestCluster_Resharding: a slot moves from one master to the other while
// the store is in use. During the migration the old master answers ASK for
// keys it no longer holds, afterwards MOVED; go-redis follows both, so
// every value stays readable and writable and nothing is lost.
func TestCluster_Resharding(t *testing.T) {
	cl, c := privateCluster(t)
	nodes := cl.Nodes
	ctx := t.Context()
	// A hash tag in the prefix puts every key in one slot; find one the
	// first master serves.
	var (
		prefix string
		slot   int64
		err    error
	)
	for i := 0; ; i++ {
		prefix = fmt.Sprintf("mv:{%d}:", i)
		if slot, err = c.(*goredis.ClusterClient).ClusterKeySlot(ctx, prefix+"k").Result(); err != nil {
			t.Fatal(err)
		}
		if slot < 8192 {
			break
		}
	}
	e := redis.New(c, prefix)
	for i := range 10 {
		if err := e.Set(ctx, fmt.Sprint("k", i), []byte("v"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Incr(ctx, "n", time.Minute); err != nil {
		t.Fatal(err)
	}
	id := func(n *goredis.Client) string {
		v, err := n.Do(ctx, "cluster", "myid").Text()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	from, to := nodes[0], nodes[1]
	fromID, toID := id(from), id(to)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(to.Do(ctx, "cluster", "setslot", slot, "importing", fromID).Err())
	must(from.Do(ctx, "cluster", "setslot", slot, "migrating", toID).Err())
	// Move half the keys: the others are still on the old master, the
	// moved ones and new ones are reached through ASK.
	host, port, _ := net.SplitHostPort(to.Options().Addr)
	for i := range 5 {
		must(from.Do(ctx, "migrate", host, port, prefix+fmt.Sprint("k", i), 0, 5000).Err())
	}
	for i := range 10 {
		if v, err := e.Get(ctx, fmt.Sprint("k", i)); err != nil || string(v) != "v" {
			t.Errorf("Get k%d during the migration: got %q, %v, want v", i, v, err)
		}
	}
	if err := e.Create(ctx, "new", []byte("w"), time.Minute); err != nil {
		t.Errorf("Create during the migration: %v", err)
	}
	for i := 5; i < 10; i++ {
		must(from.Do(ctx, "migrate", host, port, prefix+fmt.Sprint("k", i), 0, 5000).Err())
	}
	must(from.Do(ctx, "migrate", host, port, prefix+"n", 0, 5000).Err())
	for _, n := range nodes {
		must(n.Do(ctx, "cluster", "setslot", slot, "node", toID).Err())
	}
	// The client's slot map still names the old master: MOVED.
	for i := range 10 {
		if v, err := e.Take(ctx, fmt.Sprint("k", i)); err != nil || string(v) != "v" {
			t.Errorf("Take k%d after the move: got %q, %v, want v", i, v, err)
		}
	}
	if v, err := e.Get(ctx, "new"); err != nil || string(v) != "w" {
		t.Errorf("Get of the key created during the migration: got %q, %v, want w", v, err)
	}
	if n, err := e.Incr(ctx, "n", time.Minute); err != nil || n != 2 {
		t.Errorf("Incr after the move: got %d, %v, want 2", n, err)
	}
	if keys, err := to.Keys(ctx, prefix+"*").Result(); err != nil || len(keys) != 2 {
		t.Errorf("keys on the new master: got %v, %v, want the counter and the new key", keys, err)
	}
}
