package redis_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/redis"
)

// clusterClient opens a client of the Redis Cluster of
// ONEDOOR_TEST_REDIS_CLUSTER_URL (.ci/lib.sh ensure_redis_cluster) whose
// seed list starts at its seed'th node, so two replicas first meet the
// cluster at different nodes.
func clusterClient(tb testing.TB, seed int) *goredis.ClusterClient {
	tb.Helper()
	url := os.Getenv("ONEDOOR_TEST_REDIS_CLUSTER_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatal("ONEDOOR_TEST_REDIS_CLUSTER_URL is not set; CI must run the Redis Cluster suite")
		}
		tb.Skip("ONEDOOR_TEST_REDIS_CLUSTER_URL is not set")
	}
	opt, err := goredis.ParseClusterURL(url)
	if err != nil {
		tb.Fatal(err)
	}
	seed %= len(opt.Addrs)
	opt.Addrs = append(opt.Addrs[seed:], opt.Addrs[:seed]...)
	opt.DialTimeout = time.Second
	c := goredis.NewClusterClient(opt)
	tb.Cleanup(func() { c.Close() })
	return c
}

// shardChannels lists, per master, the shard channels under prefix that
// somebody is subscribed to there.
func shardChannels(t *testing.T, c *goredis.ClusterClient, prefix string) map[string][]string {
	t.Helper()
	var mu sync.Mutex
	out := map[string][]string{}
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, node *goredis.Client) error {
		chs, err := node.PubSubShardChannels(ctx, prefix+"*").Result()
		mu.Lock()
		out[node.Options().Addr] = chs
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHub_Cluster_WakesAcrossShards: two replicas whose clients entered
// the cluster at different nodes wake each other on many citizens'
// channels, which Redis places on every shard; each replica subscribes on
// the master of each channel's slot and publishes with SPUBLISH there.
func TestHub_Cluster_WakesAcrossShards(t *testing.T) {
	c1, c2 := clusterClient(t, 0), clusterClient(t, 1)
	prefix := uniquePrefix()
	// No WithSharded: over a cluster client the hub always shards.
	h1, h2 := newHub(t, c1, prefix), newHub(t, c2, prefix)

	var masters []string
	var mu sync.Mutex
	if err := c1.ForEachMaster(t.Context(), func(_ context.Context, node *goredis.Client) error {
		mu.Lock()
		masters = append(masters, node.Options().Addr)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(masters) < 3 {
		t.Fatalf("the cluster has %d masters, want at least 3", len(masters))
	}
	for i, h := range []*redis.Hub{h1, h2} {
		if got := redis.Conns(h); got != len(masters) {
			t.Errorf("hub %d: %d Pub/Sub connections, want one per master (%d)", i+1, got, len(masters))
		}
	}

	const n = 48
	citizens := make([]string, n)
	chs1 := make([]<-chan push.Event, n)
	chs2 := make([]<-chan push.Event, n)
	ends := make([]func(), 0, 2*n)
	for i := range citizens {
		citizens[i] = fmt.Sprint("citizen-", i)
		ch1, end1 := subscribe(t, h1, citizens[i])
		ch2, end2 := subscribe(t, h2, citizens[i])
		chs1[i], chs2[i] = ch1, ch2
		ends = append(ends, end1, end2)
	}

	// Where Redis holds the subscriptions: each channel on the master of
	// its slot, with both replicas subscribed, and every master holding
	// some.
	where := shardChannels(t, c1, prefix)
	total := 0
	for _, addr := range masters {
		if len(where[addr]) == 0 {
			t.Errorf("master %s holds none of the %d channels", addr, n)
		}
		total += len(where[addr])
		node := goredis.NewClient(&goredis.Options{Addr: addr})
		defer node.Close()
		for _, ch := range where[addr] {
			subs, err := node.PubSubShardNumSub(t.Context(), ch).Result()
			if err != nil {
				t.Fatal(err)
			}
			if subs[ch] != 2 {
				t.Errorf("channel %s on %s: %d subscribers, want 2 (one per replica)", ch, addr, subs[ch])
			}
			owner, err := c1.MasterForKey(t.Context(), ch)
			if err != nil {
				t.Fatal(err)
			}
			if owner.Options().Addr != addr {
				t.Errorf("channel %s is on %s, but its slot's master is %s", ch, addr, owner.Options().Addr)
			}
		}
	}
	if total != n {
		t.Errorf("the masters hold %d channels, want %d", total, n)
	}
	for i, id := range citizens {
		name := redis.Channel(prefix, id)
		slot, err := c1.ClusterKeySlot(t.Context(), name).Result()
		if err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			t.Logf("citizen %s: channel slot %d", id, slot)
		}
	}

	// Each replica wakes the other on every channel, and itself.
	for i, id := range citizens {
		publish(t, h2, id, int64(2*i+1))
		wantSeq(t, chs1[i], int64(2*i+1))
		wantSeq(t, chs2[i], int64(2*i+1))
		publish(t, h1, id, int64(2*i+2))
		wantSeq(t, chs1[i], int64(2*i+2))
		wantSeq(t, chs2[i], int64(2*i+2))
	}

	// Ending the streams unsubscribes both replicas on every master.
	for _, end := range ends {
		end()
	}
	// Redis has unsubscribed once its masters list no channel, and the
	// hubs have read its answers once they hold no topic.
	deadline := time.Now().Add(guard)
	for {
		left := shardChannels(t, c1, prefix)
		empty := redis.Topics(h1)+redis.Topics(h2) == 0
		for _, chs := range left {
			empty = empty && len(chs) == 0
		}
		if empty {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("channels left subscribed: %v; topics held: %d, %d", left, redis.Topics(h1), redis.Topics(h2))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
