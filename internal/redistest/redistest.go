// Package redistest finds the Redis servers that tests run against, and
// starts private Redis Clusters for tests that stop nodes or move slots,
// which must not happen to the shared one. A test that needs a server skips
// when its URL is unset; CI sets CI=true, and then it fails instead (as
// internal/dbtest does for PostgreSQL).
package redistest

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// URL returns the single Redis of ONEDOOR_TEST_REDIS_URL.
func URL(tb testing.TB) string {
	tb.Helper()
	return env(tb, "ONEDOOR_TEST_REDIS_URL", "Redis")
}

// ClusterURL returns the Redis Cluster of ONEDOOR_TEST_REDIS_CLUSTER_URL
// (.ci/lib.sh ensure_redis_cluster: three masters on 127.0.0.1:7001-7003),
// in the form --redis-cluster reads: redis://seed?addr=seed2&addr=seed3.
func ClusterURL(tb testing.TB) string {
	tb.Helper()
	return env(tb, "ONEDOOR_TEST_REDIS_CLUSTER_URL", "Redis Cluster")
}

func env(tb testing.TB, name, suite string) string {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set; CI must run the %s suite", name, suite)
		}
		tb.Skipf("%s is not set", name)
	}
	return v
}

// Cluster is a two-master Redis Cluster of the test's own; the first
// master serves slots 0-8191, the second 8192-16383.
type Cluster struct {
	URL     string             // for --redis-cluster and DialCluster
	Servers [2]*exec.Cmd       // the redis-server processes, to stop or kill
	Nodes   [2]*goredis.Client // a client of each master
}

// StartCluster starts a Cluster in the test's temporary directory, torn
// down when the test ends. nodeTimeout is the cluster-node-timeout after
// which a master that does not answer is marked failed; zero keeps
// Redis's default. The shared cluster's URL being set means the cluster
// suite is wanted, so redis-server must be there; otherwise it skips as
// ClusterURL does.
func StartCluster(tb testing.TB, nodeTimeout time.Duration) *Cluster {
	tb.Helper()
	ClusterURL(tb)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server: %v", err)
	}
	dir := tb.TempDir()
	var (
		c     Cluster
		ports [2]int
	)
	for i := range c.Servers {
		ports[i] = freeClusterPort(tb)
		args := []string{"--port", strconv.Itoa(ports[i]), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprint("nodes-", i, ".conf")),
			"--save", "", "--appendonly", "no", "--dir", dir}
		if nodeTimeout > 0 {
			args = append(args, "--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10))
		}
		cmd := exec.Command(bin, args...) // #nosec G204 -- a test starting redis-server from PATH
		if err := cmd.Start(); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		n := goredis.NewClient(&goredis.Options{Addr: fmt.Sprint("127.0.0.1:", ports[i])})
		tb.Cleanup(func() { n.Close() })
		c.Servers[i], c.Nodes[i] = cmd, n
	}
	ctx := tb.Context()
	WaitUntil(tb, "nodes answer", func() bool {
		return c.Nodes[0].Ping(ctx).Err() == nil && c.Nodes[1].Ping(ctx).Err() == nil
	})
	must(tb, c.Nodes[0].ClusterAddSlotsRange(ctx, 0, 8191).Err())
	must(tb, c.Nodes[1].ClusterAddSlotsRange(ctx, 8192, 16383).Err())
	must(tb, c.Nodes[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(ports[1])).Err())
	WaitUntil(tb, "cluster_state:ok", func() bool {
		for _, n := range c.Nodes {
			info, err := n.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:2") {
				return false
			}
		}
		return true
	})
	c.URL = fmt.Sprintf("redis://127.0.0.1:%d?addr=127.0.0.1:%d", ports[0], ports[1])
	return &c
}

// WaitUntil polls ok until it holds, failing the test after 30s: a guard
// against hanging on a broken cluster, not a timed assertion.
func WaitUntil(tb testing.TB, what string, ok func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeClusterPort returns a port free now whose cluster bus port (+10000)
// is free too, below Linux's ephemeral range.
func freeClusterPort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		p := 20000 + mrand.IntN(10000) // #nosec G404 -- a port number, not a secret
		l1, err := net.Listen("tcp", fmt.Sprint("127.0.0.1:", p))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", fmt.Sprint("127.0.0.1:", p+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p
	}
	tb.Fatal("no free port")
	return 0
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
