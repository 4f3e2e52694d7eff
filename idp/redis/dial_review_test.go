package redis_test

import (
	"errors"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/redis"
	"github.com/onedoor/onedoor/internal/redistest"
)

// TestDial_MultiShardClusterNode: the plain Dial of one node of a
// multi-shard Redis Cluster (--redis-url without --redis-cluster) must fail
// at start-up. It used to succeed: PING answers, so the replica reported
// ready while every key of the other shards' slots got MOVED, read as an
// outage (503) for good.
func TestDial_MultiShardClusterNode(t *testing.T) {
	opt, err := goredis.ParseClusterURL(redistest.ClusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c, err := redis.Dial(t.Context(), "redis://"+opt.Addrs[0]+"/0")
	if err == nil {
		defer c.Close()
		e := redis.New(c, "review-dial:")
		unavailable := 0
		for i := range 32 {
			if _, err := e.Get(t.Context(), "k"+string(rune('a'+i))); errors.Is(err, idp.ErrUnavailable) {
				unavailable++
			}
		}
		t.Fatalf("Dial of a cluster node succeeded; then %d of 32 reads were refused as an outage", unavailable)
	}
	if !errors.Is(err, idp.ErrInvalid) || errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Dial of a cluster node: %v; want a misconfiguration (ErrInvalid), not an outage", err)
	}
}
