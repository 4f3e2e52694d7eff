package redis_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/internal/redistest"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/redis"
)

func redisURL(tb testing.TB) string {
	tb.Helper()
	return redistest.URL(tb)
}

// newClient opens a client named name, through addr when given. Pub/Sub
// ignores the database number, so tests keep apart by channel prefix.
func newClient(tb testing.TB, name, addr string) *goredis.Client {
	tb.Helper()
	opt, err := goredis.ParseURL(redisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	if addr != "" { // a proxy that may go down: fail fast
		opt.Addr = addr
		opt.MaxRetries, opt.DialerRetries = -1, 1
	}
	opt.ClientName = name
	opt.DialTimeout = time.Second
	c := goredis.NewClient(opt)
	tb.Cleanup(func() { c.Close() })
	return c
}

func uniquePrefix() string { return "pushtest:" + rand.Text() + ":" }

func newHub(tb testing.TB, c goredis.UniversalClient, prefix string, opts ...redis.Option) *redis.Hub {
	tb.Helper()
	log := slog.New(slog.NewTextHandler(tb.Output(), nil))
	h, err := redis.NewHub(context.Background(), c, append([]redis.Option{redis.WithPrefix(prefix), redis.WithLogger(log)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := h.Close(); err != nil {
			tb.Error(err)
		}
	})
	return h
}

// replicas returns two hubs on two clients sharing a fresh prefix: two
// replicas of one deployment.
func replicas(t *testing.T) (h1, h2 *redis.Hub, prefix string) {
	prefix = uniquePrefix()
	return newHub(t, newClient(t, "", ""), prefix), newHub(t, newClient(t, "", ""), prefix), prefix
}

func event(seq int64) push.Event {
	return push.Event{Seq: seq, MessageID: fmt.Sprint("m", seq), Kind: push.KindResult, ServiceCode: "tax",
		ApplicationID: "app-1", CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)}
}

func subscribe(t *testing.T, h *redis.Hub, citizenID string) (<-chan push.Event, func()) {
	t.Helper()
	ch, unsub, err := h.Subscribe(t.Context(), citizenID)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", citizenID, err)
	}
	t.Cleanup(unsub)
	return ch, unsub
}

func publish(t *testing.T, h *redis.Hub, citizenID string, seq int64) {
	t.Helper()
	if err := h.Publish(t.Context(), citizenID, event(seq)); err != nil {
		t.Fatalf("Publish(%s, %d): %v", citizenID, seq, err)
	}
}

// guard only keeps a broken hub from hanging the run; no test depends on it.
const guard = 30 * time.Second

func recv(t *testing.T, ch <-chan push.Event) push.Event {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("stream closed, want an event")
		}
		return e
	case <-time.After(guard):
		t.Fatal("no event")
	}
	return push.Event{}
}

func wantSeq(t *testing.T, ch <-chan push.Event, seq int64) {
	t.Helper()
	if got := recv(t, ch).Seq; got != seq {
		t.Fatalf("got event %d, want %d", got, seq)
	}
}

// waitClosed drains ch until it is closed.
func waitClosed(t *testing.T, ch <-chan push.Event) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-time.After(guard):
			t.Fatal("stream not closed")
		}
	}
}

// hold subscribes a barrier citizen on h and keeps it until the test ends.
// Commands and replies on the replica's connection are ordered, so once it
// returns Redis has run, and the hub has read the answers to, every
// SUBSCRIBE and UNSUBSCRIBE h sent before.
func hold(t *testing.T, h *redis.Hub) {
	t.Helper()
	subscribe(t, h, "barrier")
}

// channels lists the citizens' channels subscribed under prefix (not the
// broadcast channel, which every replica with a stream holds).
func channels(t *testing.T, c *goredis.Client, prefix string) []string {
	t.Helper()
	chs, err := c.PubSubChannels(context.Background(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return withoutBroadcast(chs, prefix)
}

func withoutBroadcast(chs []string, prefix string) []string {
	return slices.DeleteFunc(chs, func(c string) bool { return c == prefix+"push:live:broadcast" })
}

func numSub(t *testing.T, c *goredis.Client, channel string) int64 {
	t.Helper()
	n, err := c.PubSubNumSub(context.Background(), channel).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n[channel]
}

func TestHub_EventReachesOtherReplica(t *testing.T) {
	h1, h2, _ := replicas(t)
	ch1, _ := subscribe(t, h1, "alice")
	ch2, _ := subscribe(t, h2, "alice")
	want := event(7)
	want.InboxMessageID = "inbox-9"
	if err := h2.Publish(t.Context(), "alice", want); err != nil {
		t.Fatal(err)
	}
	for i, ch := range []<-chan push.Event{ch1, ch2} {
		got := recv(t, ch)
		if !got.CreatedAt.Equal(want.CreatedAt) {
			t.Errorf("hub %d: CreatedAt %v, want %v", i+1, got.CreatedAt, want.CreatedAt)
		}
		got.CreatedAt = want.CreatedAt
		if got != want {
			t.Errorf("hub %d: got %+v, want %+v", i+1, got, want)
		}
	}
	publish(t, h1, "alice", 8)
	wantSeq(t, ch1, 8)
	wantSeq(t, ch2, 8)
}

func TestHub_NoCrossCitizenLeak(t *testing.T) {
	h1, h2, _ := replicas(t)
	alice1, _ := subscribe(t, h1, "alice")
	bob1, _ := subscribe(t, h1, "bob")
	alice2, _ := subscribe(t, h2, "alice")
	publish(t, h2, "alice", 1)
	publish(t, h1, "bob", 2)
	publish(t, h2, "alice", 3)
	publish(t, h1, "bob", 4)
	// Publishes are ordered, so a leak would show before the next own event.
	for _, ch := range []<-chan push.Event{alice1, alice2} {
		wantSeq(t, ch, 1)
		wantSeq(t, ch, 3)
	}
	wantSeq(t, bob1, 2)
	wantSeq(t, bob1, 4)
	publish(t, h2, "bob", 5)
	publish(t, h2, "alice", 6)
	wantSeq(t, alice1, 6)
	wantSeq(t, alice2, 6)
	wantSeq(t, bob1, 5)
}

func TestHub_UnsubscribeLeavesRedis(t *testing.T) {
	prefix := uniquePrefix()
	c := newClient(t, "", "")
	h := newHub(t, c, prefix)
	s1, unsub1 := subscribe(t, h, "alice")
	s2, unsub2 := subscribe(t, h, "alice")
	chs := channels(t, c, prefix)
	if len(chs) != 1 {
		t.Fatalf("channels %q, want one", chs)
	}
	alice := chs[0]
	if strings.Contains(alice, "alice") {
		t.Errorf("channel %q names the citizen", alice)
	}
	if n := numSub(t, c, alice); n != 1 {
		t.Errorf("NUMSUB with two streams: %d, want 1 (one per replica)", n)
	}

	unsub1()
	unsub1() // idempotent
	waitClosed(t, s1)
	publish(t, h, "alice", 1)
	wantSeq(t, s2, 1)

	unsub2()
	waitClosed(t, s2)
	hold(t, h)
	if n := numSub(t, c, alice); n != 0 {
		t.Errorf("NUMSUB after the last stream ended: %d, want 0", n)
	}
	if n, err := c.Publish(t.Context(), alice, `{"seq":2}`).Result(); err != nil || n != 0 {
		t.Errorf("PUBLISH reached %d subscribers (%v), want 0", n, err)
	}
	if n := redis.Topics(h); n != 1 {
		t.Errorf("hub keeps %d topics, want 1 (the barrier)", n)
	}
}

// TestHub_Churn subscribes and unsubscribes the same few citizens from many
// goroutines on two replicas: every subscription, once Subscribe returns,
// must get an event published right after, whatever the others do.
func TestHub_Churn(t *testing.T) {
	prefix := uniquePrefix()
	c := newClient(t, "", "")
	hubs := []*redis.Hub{newHub(t, c, prefix), newHub(t, newClient(t, "", ""), prefix)}
	citizens := []string{"c0", "c1", "c2", "c3"}
	var seq atomic.Int64
	var wg sync.WaitGroup
	for g := range uint64(8) {
		wg.Go(func() {
			rng := mrand.New(mrand.NewPCG(g, 1))
			for range 50 {
				i := rng.IntN(2)
				h, other := hubs[i], hubs[1-i]
				cit := citizens[rng.IntN(len(citizens))]
				ch, unsub, err := h.Subscribe(context.Background(), cit)
				if err != nil {
					t.Errorf("Subscribe: %v", err)
					return
				}
				if rng.IntN(4) == 0 { // leave at once: unsubscribe-resubscribe races
					unsub()
					continue
				}
				n := seq.Add(1)
				if err := other.Publish(context.Background(), cit, event(n)); err != nil {
					t.Errorf("Publish: %v", err)
					unsub()
					return
				}
				got := false
				for e := range ch {
					if got = e.Seq == n; got {
						break
					}
				}
				if !got {
					t.Errorf("%s: stream closed before event %d arrived", cit, n)
				}
				unsub()
			}
		})
	}
	wg.Wait()
	for _, h := range hubs {
		hold(t, h)
		if n := redis.Topics(h); n != 1 {
			t.Errorf("hub keeps %d topics, want 1 (the barrier)", n)
		}
	}
	if chs := channels(t, c, prefix); len(chs) != 1 {
		t.Errorf("channels left subscribed: %q, want only the barrier", chs)
	}
}

func TestHub_Close(t *testing.T) {
	prefix := uniquePrefix()
	c := newClient(t, "", "")
	var losses lossLog
	h, err := redis.NewHub(t.Context(), c, redis.WithPrefix(prefix),
		redis.WithLogger(slog.New(slog.NewTextHandler(&losses, nil))))
	if err != nil {
		t.Fatal(err)
	}
	alice, unsub := subscribe(t, h, "alice")
	bob, _ := subscribe(t, h, "bob")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, alice)
	waitClosed(t, bob)
	unsub()
	if _, _, err := h.Subscribe(t.Context(), "alice"); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want %v", err, redis.ErrClosed)
	}
	if err := h.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := losses.n.Load(); n != 0 {
		t.Errorf("%d losses reported, want 0", n)
	}
	// The client is the caller's and still works.
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Errorf("client after Close: %v", err)
	}
}

func TestHub_SubscribeCanceled(t *testing.T) {
	prefix := uniquePrefix()
	c := newClient(t, "", "")
	h := newHub(t, c, prefix)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := h.Subscribe(ctx, "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe with a canceled context: got %v, want %v", err, context.Canceled)
	}
	hold(t, h)
	if chs := channels(t, c, prefix); len(chs) != 1 {
		t.Errorf("channels %q, want only the barrier", chs)
	}
	// The connection survived the cancellation.
	ch, _ := subscribe(t, h, "alice")
	publish(t, h, "alice", 1)
	wantSeq(t, ch, 1)
}

// pubSubClientID returns the Redis client ID of the Pub/Sub connection of
// the client named name.
func pubSubClientID(t *testing.T, c *goredis.Client, name string) string {
	t.Helper()
	list, err := c.Do(t.Context(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(list) {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == name {
			return fields["id"]
		}
	}
	t.Fatalf("no pub/sub connection named %s", name)
	return ""
}

// lossLog counts the hub's reports of a lost connection.
type lossLog struct{ n atomic.Int64 }

func (l *lossLog) Write(p []byte) (int, error) {
	if strings.Contains(string(p), "connection lost") {
		l.n.Add(1)
	}
	return len(p), nil
}

func TestHub_ConnectionKilled(t *testing.T) {
	prefix := uniquePrefix()
	name := "pushtest-" + rand.Text()
	c := newClient(t, name, "")
	var losses lossLog
	h1 := newHub(t, c, prefix, redis.WithLogger(slog.New(slog.NewTextHandler(&losses, nil))))
	h2 := newHub(t, newClient(t, "", ""), prefix)
	alice, unsubAlice := subscribe(t, h1, "alice")
	bob, unsubBob := subscribe(t, h1, "bob")
	id := pubSubClientID(t, c, name)
	if err := c.Do(t.Context(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
		t.Fatal(err)
	}
	// Events published until the hub reconnects are lost: every stream
	// ends, so its app reconnects and catches up.
	waitClosed(t, alice)
	waitClosed(t, bob)

	// Ending the closed streams touches nothing on the new connection.
	unsubAlice()
	unsubBob()
	alice, _ = subscribe(t, h1, "alice")
	publish(t, h2, "alice", 1)
	wantSeq(t, alice, 1)
	if got := pubSubClientID(t, c, name); got == id {
		t.Errorf("still on the killed connection %s", id)
	}
	if n := losses.n.Load(); n != 1 {
		t.Errorf("%d losses reported, want 1", n)
	}
}

func TestHub_MalformedEventDropped(t *testing.T) {
	prefix := uniquePrefix()
	c := newClient(t, "", "")
	h := newHub(t, c, prefix)
	ch, _ := subscribe(t, h, "alice")
	chs := channels(t, c, prefix)
	if len(chs) != 1 {
		t.Fatalf("channels %q, want one", chs)
	}
	for _, bad := range []string{"", "not json", `{"seq":"x"}`, `[1,2]`} {
		if err := c.Publish(t.Context(), chs[0], bad).Err(); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, h, "alice", 1)
	wantSeq(t, ch, 1)
}

// proxy forwards TCP to Redis and can go silent or down, as a network can.
type proxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	pairs map[*pair]struct{}
}

type pair struct {
	a, b   net.Conn
	silent atomic.Bool
	once   sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		p.a.Close()
		p.b.Close()
	})
}

func newProxy(t *testing.T) *proxy {
	opt, err := goredis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{target: opt.Addr, pairs: map[*pair]struct{}{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", p.target)
			if err != nil {
				a.Close()
				continue
			}
			pr := &pair{a: a, b: b}
			p.mu.Lock()
			p.pairs[pr] = struct{}{}
			p.mu.Unlock()
			go pr.pump(b, a)
			go pr.pump(a, b)
		}
	}()
}

// pump copies src to dst; a silent pair swallows what it reads.
func (p *pair) pump(dst, src net.Conn) {
	defer p.close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if p.silent.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// silence makes the open connections drop everything while staying open,
// like a peer gone without a FIN; new connections work.
func (p *proxy) silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.pairs {
		pr.silent.Store(true)
	}
}

// down closes every connection and refuses new ones.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for pr := range p.pairs {
		pr.close()
		delete(p.pairs, pr)
	}
}

func (p *proxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

func TestHub_SilentConnection(t *testing.T) {
	p := newProxy(t)
	prefix := uniquePrefix()
	h1 := newHub(t, newClient(t, "", p.addr), prefix, redis.WithHealthCheck(50*time.Millisecond))
	h2 := newHub(t, newClient(t, "", ""), prefix)
	alice, _ := subscribe(t, h1, "alice")
	p.silence()
	// Only the unanswered health check can notice.
	waitClosed(t, alice)

	alice, _ = subscribe(t, h1, "alice")
	publish(t, h2, "alice", 1)
	wantSeq(t, alice, 1)
}

func TestHub_Outage(t *testing.T) {
	p := newProxy(t)
	prefix := uniquePrefix()
	h1 := newHub(t, newClient(t, "", p.addr), prefix)
	h2 := newHub(t, newClient(t, "", ""), prefix)
	alice, _ := subscribe(t, h1, "alice")
	p.down()
	waitClosed(t, alice)
	if err := h1.Publish(t.Context(), "alice", event(1)); err == nil {
		t.Error("Publish with Redis down: got nil, want an error")
	}
	if _, _, err := h1.Subscribe(t.Context(), "alice"); err == nil {
		t.Error("Subscribe with Redis down: got nil, want an error")
	}

	p.up(t)
	alice, _ = subscribe(t, h1, "alice")
	publish(t, h2, "alice", 2)
	wantSeq(t, alice, 2)
	publish(t, h1, "alice", 3)
	wantSeq(t, alice, 3)
}

func TestNewHub_Unreachable(t *testing.T) {
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	if h, err := redis.NewHub(t.Context(), c); err == nil {
		h.Close()
		t.Fatal("NewHub on a dead address: got nil, want an error")
	}
}

var _ io.Closer = (*redis.Hub)(nil)

// TestHub_Sharded runs the hub on sharded Pub/Sub (SPUBLISH, SSUBSCRIBE),
// as on a Redis cluster: an event reaches the other replica, churn is
// confirmed in order, and a plain PUBLISH is not heard.
func TestHub_Sharded(t *testing.T) {
	prefix := uniquePrefix()
	c := newClient(t, "", "")
	h1 := newHub(t, c, prefix, redis.WithSharded())
	h2 := newHub(t, newClient(t, "", ""), prefix, redis.WithSharded())
	ch1, unsub1 := subscribe(t, h1, "alice")
	ch2, _ := subscribe(t, h2, "alice")
	publish(t, h2, "alice", 1)
	wantSeq(t, ch1, 1)
	wantSeq(t, ch2, 1)
	chs, err := c.PubSubShardChannels(t.Context(), prefix+"*").Result()
	chs = withoutBroadcast(chs, prefix)
	if err != nil || len(chs) != 1 {
		t.Fatalf("shard channels %q (%v), want one", chs, err)
	}
	if n, err := c.Publish(t.Context(), chs[0], `{"seq":9}`).Result(); err != nil || n != 0 {
		t.Errorf("plain PUBLISH reached %d subscribers (%v), want 0", n, err)
	}
	unsub1()
	waitClosed(t, ch1)
	ch1, _ = subscribe(t, h1, "alice")
	publish(t, h1, "alice", 2)
	wantSeq(t, ch1, 2)
	wantSeq(t, ch2, 2)
}

// A broadcast is one message per replica, whatever the number of streams,
// and reaches every stream of every replica once, with its position and
// audience (which the streams filter by).
func TestHub_BroadcastReachesEveryStream(t *testing.T) {
	for _, sharded := range []bool{false, true} {
		t.Run(fmt.Sprint("sharded=", sharded), func(t *testing.T) {
			var opts []redis.Option
			if sharded {
				opts = append(opts, redis.WithSharded())
			}
			prefix := uniquePrefix()
			c := newClient(t, "", "")
			h1, h2 := newHub(t, c, prefix, opts...), newHub(t, newClient(t, "", ""), prefix, opts...)
			alice, unsubAlice := subscribe(t, h1, "alice")
			bob, unsubBob := subscribe(t, h1, "bob")
			carol, unsubCarol := subscribe(t, h2, "carol")
			name := redis.BroadcastChannel(h1)
			if !sharded {
				if n := numSub(t, c, name); n != 2 {
					t.Errorf("NUMSUB of the broadcast channel with 3 streams on 2 replicas: %d, want 2", n)
				}
			}
			want := push.Event{BroadcastSeq: 7, Province: "01", MessageID: "brd_1", Kind: push.KindNotice,
				CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			if err := h2.PublishBroadcast(t.Context(), want); err != nil {
				t.Fatal(err)
			}
			for _, ch := range []<-chan push.Event{alice, bob, carol} {
				if got := recv(t, ch); got != want {
					t.Errorf("got %+v, want %+v", got, want)
				}
			}
			// Once: the next event on each stream is the citizen's own.
			publish(t, h2, "alice", 8)
			wantSeq(t, alice, 8)
			unsubAlice()
			unsubBob()
			unsubCarol()
			for _, ch := range []<-chan push.Event{alice, bob, carol} {
				waitClosed(t, ch)
			}
			if !sharded {
				hold(t, h1)
				hold(t, h2)
				// The barriers hold it again: one per replica still.
				if n := numSub(t, c, name); n != 2 {
					t.Errorf("NUMSUB of the broadcast channel: %d, want 2", n)
				}
			}
		})
	}
}

// A hub without broadcasts (login wake-ups) holds only its topics'
// channels.
func TestHub_WithoutBroadcasts(t *testing.T) {
	prefix := uniquePrefix()
	c := newClient(t, "", "")
	h := newHub(t, c, prefix, redis.WithoutBroadcasts())
	ch, _ := subscribe(t, h, "login-1")
	all, err := c.PubSubChannels(t.Context(), prefix+"*").Result()
	if err != nil || len(all) != 1 {
		t.Fatalf("channels %q (%v), want the topic's alone", all, err)
	}
	publish(t, h, "login-1", 1)
	wantSeq(t, ch, 1)
}
