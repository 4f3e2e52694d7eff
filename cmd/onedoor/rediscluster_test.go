package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// --redis-cluster reads --redis-url as a cluster's seed nodes; a URL a
// cluster cannot use is refused at start with every problem named.
func TestConfig_RedisCluster(t *testing.T) {
	for _, tt := range []struct {
		url, want string
	}{
		{"", "--redis-cluster needs --redis-url"},
		{"unix:///run/redis.sock", "not unix://"},
		{"redis://127.0.0.1:7001/3?addr=127.0.0.1:7002", "only database 0"},
		{"redis://127.0.0.1:7001?addr=127.0.0.1:7002&addr=127.0.0.1:7003", ""},
		{"rediss://user:pass@redis-a:6379/0?addr=redis-b:6379", ""},
	} {
		c := DefaultConfig()
		c.RedisCluster, c.RedisURL = true, tt.url
		err := c.Validate(true)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("--redis-url %q: %v, want it accepted", tt.url, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("--redis-url %q: got %v, want an error saying %q", tt.url, err, tt.want)
		}
	}
	// Every node of a cluster counts for the plain-text warning.
	c := NewMain().Config
	c.RedisCluster, c.RedisURL = true, "redis://127.0.0.1:7001?addr=10.20.0.5:7002"
	if got := c.Warnings(); len(got) != 1 || !strings.Contains(got[0], "--redis-url") {
		t.Errorf("a plain-text cluster node on another host: warnings %q, want one about --redis-url", got)
	}
}

// TestServe_RedisClusterOnPlainRedis: --redis-cluster naming a Redis that
// does not run in cluster mode stops the server at start with Redis's
// reason, not at the first request.
func TestServe_RedisClusterOnPlainRedis(t *testing.T) {
	url := os.Getenv("ONEDOOR_TEST_REDIS_URL")
	if url == "" {
		t.Skip("ONEDOOR_TEST_REDIS_URL is not set")
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, nil, "serve", "--data-dir", t.TempDir(), "--idp-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--api-addr", "127.0.0.1:"+strconv.Itoa(freePort(t)),
		"--redis-cluster", "--redis-url", "redis://"+opt.Addr)
	if code == 0 || !strings.Contains(stderr, "cluster support disabled") {
		t.Fatalf("serve --redis-cluster on a plain Redis: exit %d, stderr %q, want a start-up error naming the cause", code, stderr)
	}
}
