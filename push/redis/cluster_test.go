package redis_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/internal/redistest"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/redis"
)

// clusterClient opens a client of the Redis Cluster of
// ONEDOOR_TEST_REDIS_CLUSTER_URL (.ci/lib.sh ensure_redis_cluster) whose
// seed list starts at its seed'th node, so two replicas first meet the
// cluster at different nodes.
func clusterClient(tb testing.TB, seed int) *goredis.ClusterClient {
	tb.Helper()
	return namedClusterClient(tb, seed, "")
}

// namedClusterClient is clusterClient whose connections carry name.
func namedClusterClient(tb testing.TB, seed int, name string) *goredis.ClusterClient {
	tb.Helper()
	opt, err := goredis.ParseClusterURL(redistest.ClusterURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	seed %= len(opt.Addrs)
	opt.Addrs = append(opt.Addrs[seed:], opt.Addrs[:seed]...)
	opt.DialTimeout = time.Second
	opt.ClientName = name
	c := goredis.NewClusterClient(opt)
	tb.Cleanup(func() { c.Close() })
	return c
}

// shardChannels lists, per master, the citizens' shard channels under
// prefix that somebody is subscribed to there (not the broadcast channel).
func shardChannels(t *testing.T, c *goredis.ClusterClient, prefix string) map[string][]string {
	t.Helper()
	var mu sync.Mutex
	out := map[string][]string{}
	err := c.ForEachMaster(context.Background(), func(ctx context.Context, node *goredis.Client) error {
		chs, err := node.PubSubShardChannels(ctx, prefix+"*").Result()
		mu.Lock()
		out[node.Options().Addr] = withoutBroadcast(chs, prefix)
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
		t.Cleanup(func() { node.Close() })
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestHub_Cluster_SlotMoves: when the slot of a citizen's channel moves to
// another master, Redis unsubscribes the channel's subscribers (an
// SUNSUBSCRIBE nobody asked for), so the hub closes the live streams on
// that master for the app to reconnect and catch up; a new subscription,
// refused with MOVED while the replica's slot map is stale, then lands on
// the new master and is woken there.
func TestHub_Cluster_SlotMoves(t *testing.T) {
	// A cluster of its own: the shared one must keep its slots where they are.
	nodes := redistest.StartCluster(t, 0).Nodes
	ctx := t.Context()
	newCluster := func() *goredis.ClusterClient {
		c := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{nodes[0].Options().Addr}, DialTimeout: time.Second})
		t.Cleanup(func() { c.Close() })
		return c
	}
	c1, c2 := newCluster(), newCluster()
	prefix := uniquePrefix()
	h1, h2 := newHub(t, c1, prefix), newHub(t, c2, prefix)
	// A citizen whose channel the first master serves.
	var citizen string
	var slot int64
	for i := 0; ; i++ {
		citizen = fmt.Sprint("citizen-", i)
		s, err := c1.ClusterKeySlot(ctx, redis.Channel(prefix, citizen)).Result()
		must(t, err)
		if s < 8192 {
			slot = s
			break
		}
	}
	ch, _ := subscribe(t, h1, citizen)
	publish(t, h2, citizen, 1)
	wantSeq(t, ch, 1)

	id := func(n *goredis.Client) string {
		v, err := n.Do(ctx, "cluster", "myid").Text()
		must(t, err)
		return v
	}
	toID := id(nodes[1])
	for _, n := range nodes {
		must(t, n.Do(ctx, "cluster", "setslot", slot, "node", toID).Err())
	}
	waitClosed(t, ch)

	var err error
	redistest.WaitUntil(t, "a subscription on the new master", func() bool {
		ch, _, err = h1.Subscribe(ctx, citizen)
		if err != nil && !errors.Is(err, redis.ErrClosed) {
			t.Logf("Subscribe while the slot map is stale: %v", err)
			return false
		}
		return err == nil
	})
	subs, err := nodes[1].PubSubShardNumSub(ctx, redis.Channel(prefix, citizen)).Result()
	must(t, err)
	if n := subs[redis.Channel(prefix, citizen)]; n != 1 {
		t.Errorf("subscribers on the new master: %d, want 1", n)
	}
	publish(t, h2, citizen, 2)
	wantSeq(t, ch, 2)
}

// TestHub_Cluster_Broadcast: on a cluster the broadcast channel lives on
// one master and a citizen's channel often on another, so a stream is held
// by two of the replica's connections. A broadcast reaches every stream of
// both replicas once, also those whose citizen's channel is elsewhere; and
// losing the connection to the broadcast channel's master ends every
// stream of that replica, for the apps to reconnect and catch up, while
// the other replica's go on.
func TestHub_Cluster_Broadcast(t *testing.T) {
	name := "pushtest-" + rand.Text()
	c1, c2 := namedClusterClient(t, 0, name), clusterClient(t, 1)
	prefix := uniquePrefix()
	var losses lossLog
	h1 := newHub(t, c1, prefix, redis.WithLogger(slog.New(slog.NewTextHandler(&losses, nil))))
	h2 := newHub(t, c2, prefix)
	ctx := t.Context()

	bname := redis.BroadcastChannel(h1)
	owner, err := c1.MasterForKey(ctx, bname)
	must(t, err)
	baddr := owner.Options().Addr
	// A citizen whose channel is on the broadcast channel's master, and
	// one whose channel is on another.
	var near, far string
	for i := 0; near == "" || far == ""; i++ {
		id := fmt.Sprint("citizen-", i)
		n, err := c1.MasterForKey(ctx, redis.Channel(prefix, id))
		must(t, err)
		if n.Options().Addr == baddr {
			if near == "" {
				near = id
			}
		} else if far == "" {
			far = id
		}
	}
	nearCh, _ := subscribe(t, h1, near)
	farCh, unsubFar := subscribe(t, h1, far)
	otherCh, _ := subscribe(t, h2, far)

	node := goredis.NewClient(&goredis.Options{Addr: baddr})
	t.Cleanup(func() { node.Close() })
	subs, err := node.PubSubShardNumSub(ctx, bname).Result()
	must(t, err)
	if subs[bname] != 2 {
		t.Errorf("broadcast channel on %s: %d subscribers with 3 streams on 2 replicas, want 2", baddr, subs[bname])
	}

	broadcast := func(seq int64) push.Event {
		t.Helper()
		e := push.Event{BroadcastSeq: seq, Province: "01", MessageID: fmt.Sprint("brd_", seq), Kind: push.KindNotice,
			CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
		if err := h2.PublishBroadcast(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	want := broadcast(1)
	for _, ch := range []<-chan push.Event{nearCh, farCh, otherCh} {
		if got := recv(t, ch); got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	// Once: the next event on each stream is the citizen's own.
	publish(t, h2, far, 2)
	wantSeq(t, farCh, 2)
	wantSeq(t, otherCh, 2)
	publish(t, h1, near, 3)
	wantSeq(t, nearCh, 3)

	// Lose h1's connection to the broadcast channel's master: the stream
	// whose citizen's channel is on another master ends too.
	id := pubSubClientID(t, node, name)
	must(t, node.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
	waitClosed(t, nearCh)
	waitClosed(t, farCh)
	want = broadcast(4)
	if got := recv(t, otherCh); got != want {
		t.Errorf("the other replica's stream: got %+v, want %+v", got, want)
	}

	// The app reconnects: its stream hears broadcasts and its citizen
	// again, and the ended stream left nothing behind on the far master.
	unsubFar()
	farCh, _ = subscribe(t, h1, far)
	want = broadcast(5)
	if got := recv(t, farCh); got != want {
		t.Errorf("after reconnecting: got %+v, want %+v", got, want)
	}
	if got := recv(t, otherCh); got != want {
		t.Errorf("the other replica's stream: got %+v, want %+v", got, want)
	}
	publish(t, h2, far, 6)
	wantSeq(t, farCh, 6)
	if n := redis.Topics(h1); n != 1 {
		t.Errorf("h1 holds %d citizens' channels, want 1 (the reconnected stream's)", n)
	}
	if n := losses.n.Load(); n != 1 {
		t.Errorf("%d losses reported, want 1", n)
	}
}
