// Package redis implements push.Hub over Redis Pub/Sub for scale mode, so an
// event published on one replica reaches the live streams held by every
// other.
//
// Each replica holds one Pub/Sub connection, subscribed to the channels of
// the citizens with a live stream on it; local streams hang off a
// push.LocalHub. Redis Pub/Sub is fire-and-forget: an event published while
// the connection is down is lost to the live streams. So whenever the
// connection is lost, the hub closes every local stream, which tells each
// app to reconnect and catch up from the database.
//
// Broadcasts travel on one more channel, which every replica with a live
// stream subscribes to once: a broadcast is one message per replica,
// whatever its audience, and each stream filters it by its citizen. A
// stream is so held by two channels, its citizen's and the broadcast
// channel, and is closed when either's connection is lost.
//
// On a Redis Cluster (a *redis.ClusterClient) the hub uses sharded Pub/Sub
// and holds one such connection per master, each subscribed to the
// channels of that master's slots: Redis accepts an SSUBSCRIBE only from a
// connection to the master of the channel's slot. A connection is lost,
// and its streams closed, also when its node gives a slot away (Redis then
// unsubscribes the slot's channels) or answers MOVED; the other masters'
// connections and streams go on.
//
// What is relied on from go-redis (v9), each checked by a test or read in
// its pubsub.go: PubSub.ReceiveTimeout returns an error when the connection
// it reads breaks, a timeout error that leaves the connection usable when
// nothing arrived in time, and a *net.OpError "dial" when it could not
// connect at all; writes (SUBSCRIBE, UNSUBSCRIBE, PING) return an error when
// they fail; and Redis answers each single-channel SUBSCRIBE and UNSUBSCRIBE
// with one *redis.Subscription, in order. A lost connection is noticed by
// any of: a receive or write error, a health-check PING left unanswered, or
// a *redis.Subscription nobody asked for (go-redis reconnected and
// resubscribed on its own). go-redis's resubscription itself is not relied
// on: the hub closes that PubSub and starts a fresh one, so no reply from an
// old connection can be mistaken for a new one.
package redis

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("push/redis: hub closed")

// errLost fails subscriptions pending when the connection was lost.
var errLost = errors.New("push/redis: pub/sub connection lost")

// conn is one Pub/Sub connection, to the one Redis or to one cluster node,
// and the local streams of the channels subscribed on it.
type conn struct {
	rdb redis.UniversalClient // the one Redis, or a cluster node's client
	settings
	// local is the hub's, shared by its connections: a stream hangs off
	// it once, and the connections of its citizen's channel and of the
	// broadcast channel (on a cluster perhaps two) deliver to it.
	local *push.LocalHub

	mu     sync.Mutex
	ps     *redis.PubSub     // the connection's current incarnation
	gen    uint64            // bumped whenever ps is replaced
	topics map[string]*topic // by channel
	closed bool
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the receive loop ends
	// wake cuts short the receive loop's backoff once a Subscribe has
	// connected, so its confirmation is read at once.
	wake chan struct{}
}

// topic is a citizen's channel on this replica, or the broadcast channel.
type topic struct {
	citizenID string
	// broadcast marks the channel of broadcasts, which every stream of
	// the replica hears.
	broadcast bool
	// subs maps each local stream, known by its channel, to the
	// push.LocalHub function that ends it.
	subs map[<-chan push.Event]func()
	// pending are the SUBSCRIBE and UNSUBSCRIBE commands sent on the channel
	// and not yet answered, oldest first: Redis answers them in order, so
	// a quick unsubscribe-resubscribe cannot confirm the wrong one.
	pending []*command
}

type command struct {
	subscribe bool
	done      chan struct{} // closed when answered or failed; nil for UNSUBSCRIBE
	err       error
}

// Hub is push.Hub over Redis Pub/Sub.
type Hub struct {
	rdb     redis.UniversalClient
	cluster *redis.ClusterClient // nil on one Redis
	settings
	// local holds the replica's streams for every connection. Locks are
	// taken in the order Hub.mu, a conn's mu, local's; never two conns' at
	// once, so a stream spanning two connections is added and removed on
	// each in turn.
	local push.LocalHub

	mu     sync.Mutex
	conns  map[string]*conn // by node address; one, under "", on one Redis
	closed bool
}

var _ push.Hub = (*Hub)(nil)

type settings struct {
	prefix string
	health time.Duration
	log    *slog.Logger
	// sharded uses Redis 7's sharded Pub/Sub (SPUBLISH, SSUBSCRIBE): on a
	// cluster a message then travels only within its channel's shard
	// instead of to every node.
	sharded bool
	// noBroadcasts keeps the hub off the broadcast channel.
	noBroadcasts bool
}

// Option configures a Hub.
type Option func(*settings)

// WithPrefix sets the prefix of the hub's channel names, as --redis-prefix
// does for keys, so deployments sharing a Redis do not hear each other.
// The default is "onedoor:".
func WithPrefix(p string) Option { return func(s *settings) { s.prefix = p } }

// WithHealthCheck sets how long the connection may stay silent before the
// hub pings it; a ping unanswered for as long again counts as a lost
// connection (a peer that vanished without closing it). The default is 5s.
func WithHealthCheck(d time.Duration) Option { return func(s *settings) { s.health = d } }

// WithSharded makes the hub use sharded Pub/Sub (SPUBLISH, SSUBSCRIBE,
// Redis 7 or later). Every replica must agree: a sharded subscriber does
// not hear a plain PUBLISH. A hub over a cluster client always uses it.
func WithSharded() Option { return func(s *settings) { s.sharded = true } }

// WithoutBroadcasts keeps the hub off the broadcast channel, for a hub
// that carries no live streams (the IdP's login wake-ups).
func WithoutBroadcasts() Option { return func(s *settings) { s.noBroadcasts = true } }

// WithLogger sets where lost connections and malformed events are logged.
// The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.log = l } }

// NewHub connects rdb's Pub/Sub and starts receiving on it. The client
// stays the caller's: Close does not close it.
//
// On a *redis.ClusterClient the hub uses sharded Pub/Sub and keeps one
// connection per master, made when a channel of its slots is first
// subscribed to: an SSUBSCRIBE must go to the master of its channel's slot.
// NewHub connects to every master it knows, so a dead node fails start-up.
func NewHub(ctx context.Context, rdb redis.UniversalClient, opts ...Option) (*Hub, error) {
	h := &Hub{rdb: rdb, settings: settings{prefix: "onedoor:", health: 5 * time.Second, log: slog.Default()},
		conns: map[string]*conn{}}
	for _, o := range opts {
		o(&h.settings)
	}
	if h.health <= 0 {
		return nil, fmt.Errorf("push/redis: health check interval %v must be positive", h.health)
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		h.cluster, h.sharded = cc, true
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			c, err := h.nodeConn(ctx, node)
			if err == nil {
				err = c.ping(ctx)
			}
			if err != nil {
				return fmt.Errorf("node %s: %w", node.Options().Addr, err)
			}
			return nil
		})
	} else {
		c := newConn(ctx, rdb, h.settings, &h.local)
		h.conns[""] = c
		// A PING dials the connection now, so a dead Redis fails start-up.
		err = c.ping(ctx)
	}
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("push/redis: connect pub/sub: %w", err)
	}
	return h, nil
}

// connFor returns the connection on which to subscribe to channel name.
func (h *Hub) connFor(ctx context.Context, name string) (*conn, error) {
	if h.cluster == nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.closed {
			return nil, ErrClosed
		}
		return h.conns[""], nil
	}
	// From go-redis's copy of the slot map, refreshed when a command meets
	// a MOVED; an SSUBSCRIBE sent to a master that no longer owns the slot
	// is answered with MOVED, which fails the subscription.
	node, err := h.cluster.MasterForKey(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("push/redis: subscribe: find the channel's node: %w", err)
	}
	return h.nodeConn(ctx, node)
}

// nodeConn returns the connection to a cluster node, made on first use.
func (h *Hub) nodeConn(ctx context.Context, node *redis.Client) (*conn, error) {
	addr := node.Options().Addr
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	c := h.conns[addr]
	if c != nil && c.rdb == node {
		return c, nil
	}
	if c != nil {
		// go-redis replaced its client of the node (it left the cluster
		// and came back): the old one is closed, so is what dials through it.
		_ = c.Close()
	}
	c = newConn(ctx, node, h.settings, &h.local)
	h.conns[addr] = c
	return c, nil
}

// Publish tells every replica's streams of the citizen about e. It fails
// when Redis does; the app then catches up from the database when it next
// connects. On a cluster go-redis sends it to the channel's master and
// follows MOVED and ASK redirections.
func (h *Hub) Publish(ctx context.Context, citizenID string, e push.Event) error {
	b, err := encode(e)
	if err != nil {
		return fmt.Errorf("push/redis: encode live event: %w", err)
	}
	publish := h.rdb.Publish
	if h.sharded {
		publish = h.rdb.SPublish
	}
	if err := publish(ctx, channel(h.prefix, citizenID), b).Err(); err != nil {
		return fmt.Errorf("push/redis: publish live event: %w", err)
	}
	return nil
}

// PublishBroadcast tells every replica's streams of a broadcast: one
// message on the broadcast channel, each replica filtering its streams by
// their citizens. On a cluster the channel is sharded like a citizen's.
func (h *Hub) PublishBroadcast(ctx context.Context, e push.Event) error {
	b, err := encode(e)
	if err != nil {
		return fmt.Errorf("push/redis: encode broadcast event: %w", err)
	}
	publish := h.rdb.Publish
	if h.sharded {
		publish = h.rdb.SPublish
	}
	if err := publish(ctx, broadcastChannel(h.prefix), b).Err(); err != nil {
		return fmt.Errorf("push/redis: publish broadcast event: %w", err)
	}
	return nil
}

// Subscribe implements push.Hub. It returns once Redis has confirmed the
// replica's subscriptions to the citizen's channel and to the broadcast
// channel, so every event published after it returns reaches the channel
// (unless the channel is closed).
//
// On a cluster the two channels may live on different masters, so the
// stream is registered with each one's connection in turn, never holding
// two connections' locks at once; losing either connection ends it.
func (h *Hub) Subscribe(ctx context.Context, citizenID string) (<-chan push.Event, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("push/redis: subscribe: %w", err)
	}
	names := []string{channel(h.prefix, citizenID), broadcastChannel(h.prefix)}
	if h.noBroadcasts {
		names = names[:1]
	}
	conns := make([]*conn, len(names))
	for i, name := range names {
		c, err := h.connFor(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		conns[i] = c
	}
	// The stream exists before any connection knows it, so whatever a
	// connection delivers once it has confirmed its channel reaches it.
	ch, end, err := h.local.Subscribe(ctx, citizenID)
	if err != nil { // LocalHub does not fail; keep it honest if it starts to
		return nil, nil, fmt.Errorf("push/redis: subscribe locally: %w", err)
	}
	type held struct {
		c    *conn
		name string
		t    *topic
	}
	var (
		hold  []held
		waits []*command
	)
	unsubscribe := sync.OnceFunc(func() {
		for _, x := range hold {
			x.c.unsubscribe(x.name, x.t, ch)
		}
		end() // if no connection held it any more
	})
	for i, name := range names {
		t, wait, err := conns[i].add(ctx, name, citizenID, i == 1, ch, end)
		if err != nil {
			unsubscribe()
			h.reload(ctx, err)
			return nil, nil, err
		}
		hold = append(hold, held{conns[i], name, t})
		if wait != nil {
			waits = append(waits, wait)
		}
	}
	for _, wait := range waits {
		select {
		case <-wait.done:
			err = wait.err
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			unsubscribe()
			h.reload(ctx, err)
			return nil, nil, fmt.Errorf("push/redis: subscribe: %w", err)
		}
	}
	return ch, unsubscribe, nil
}

// reload refreshes a cluster's slot map in the background when a
// subscription failed because its slot has moved (resharding, failover),
// so the client's retry goes to the new master.
func (h *Hub) reload(ctx context.Context, err error) {
	if h.cluster != nil && moved(err) {
		h.cluster.ReloadState(ctx)
	}
}

// moved reports whether err carries a MOVED or ASK reply.
func moved(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}

// Close ends every local stream and the Pub/Sub connections. Publish still
// works: the client is the caller's.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	var errs []error
	for _, c := range conns {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// newConn opens a Pub/Sub connection of rdb, which dials when first used,
// and starts receiving on it.
func newConn(ctx context.Context, rdb redis.UniversalClient, s settings, local *push.LocalHub) *conn {
	h := &conn{rdb: rdb, settings: s, local: local, topics: map[string]*topic{}, done: make(chan struct{}),
		exited: make(chan struct{}), wake: make(chan struct{}, 1)}
	h.ps = h.newPubSub(ctx)
	// The loop lives until Close, not until ctx ends; it keeps ctx's values.
	go h.run(context.WithoutCancel(ctx))
	return h
}

// ping dials the connection if need be and checks that Redis answers.
func (h *conn) ping(ctx context.Context) error {
	h.mu.Lock()
	ps := h.ps
	h.mu.Unlock()
	return ps.Ping(ctx)
}

// channel returns the citizen's channel name. Citizen IDs are opaque and of
// any length, so the name carries a hash: bounded, and not the ID itself
// (PUBSUB CHANNELS lists names to anyone allowed to run it).
func channel(prefix, citizenID string) string {
	sum := sha256.Sum256([]byte(citizenID))
	return prefix + "push:live:" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// broadcastChannel is the one channel of broadcasts: every replica with a
// live stream subscribes to it once, so a broadcast is one message per
// replica, whatever its audience.
func broadcastChannel(prefix string) string { return prefix + "push:live:broadcast" }

// wire is an Event on the wire: push.Event keeps its positions and audience
// out of its JSON (the citizen sees neither), but a stream needs them.
type wire struct {
	Seq          int64  `json:"seq,omitempty"`
	BroadcastSeq int64  `json:"broadcast_seq,omitempty"`
	Province     string `json:"province,omitempty"`
	push.Event
}

func encode(e push.Event) ([]byte, error) {
	return json.Marshal(wire{Seq: e.Seq, BroadcastSeq: e.BroadcastSeq, Province: e.Province, Event: e})
}

func decode(b []byte) (push.Event, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return push.Event{}, err
	}
	e := w.Event
	e.Seq, e.BroadcastSeq, e.Province = w.Seq, w.BroadcastSeq, w.Province
	return e, nil
}

// add registers stream ch, which end ends, with channel name (the
// citizen's, or the broadcast channel), subscribing the connection to it
// first if need be. It returns the channel's topic and the SUBSCRIBE to
// wait for, if any is unanswered.
func (h *conn) add(ctx context.Context, name, citizenID string, broadcast bool, ch <-chan push.Event, end func()) (*topic, *command, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, ErrClosed
	}
	t := h.topics[name]
	if t == nil {
		t = &topic{broadcast: broadcast, subs: map[<-chan push.Event]func(){}}
		if !broadcast {
			t.citizenID = citizenID
		}
		h.topics[name] = t
	}
	var wait *command
	if len(t.subs) == 0 {
		// The first local stream: subscribe this replica. The write is made
		// under h.mu so commands on a channel go out in the order of
		// t.pending. The caller's cancellation is dropped: go-redis treats a
		// canceled write as a broken connection.
		wait = &command{subscribe: true, done: make(chan struct{})}
		if err := h.subscribe(context.WithoutCancel(ctx), name); err != nil {
			h.reset(err)
			return nil, nil, fmt.Errorf("push/redis: subscribe: %w", err)
		}
		t.pending = append(t.pending, wait)
		select {
		case h.wake <- struct{}{}:
		default:
		}
	} else if n := len(t.pending); n > 0 {
		// Streams exist, so the newest command is their SUBSCRIBE; it may
		// be unanswered yet.
		wait = t.pending[n-1]
	}
	// Registered before h.mu is released: a message can only follow the
	// confirmation, which the receive loop handles under h.mu.
	t.subs[ch] = end
	return t, wait, nil
}

func (h *conn) newPubSub(ctx context.Context) *redis.PubSub {
	if h.sharded {
		return h.rdb.SSubscribe(ctx)
	}
	return h.rdb.Subscribe(ctx)
}

// subscribe and unsubscribeChannel write on h.ps; h.mu is held.
func (h *conn) subscribe(ctx context.Context, name string) error {
	if h.sharded {
		return h.ps.SSubscribe(ctx, name)
	}
	return h.ps.Subscribe(ctx, name)
}

func (h *conn) unsubscribeChannel(ctx context.Context, name string) error {
	if h.sharded {
		return h.ps.SUnsubscribe(ctx, name)
	}
	return h.ps.Unsubscribe(ctx, name)
}

// unsubscribe ends stream s, and the replica's subscription with the last.
// It does not wait for Redis to confirm.
func (h *conn) unsubscribe(name string, t *topic, s <-chan push.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.topics[name] != t {
		return // a lost connection or Close forgot the topic
	}
	end, ok := t.subs[s]
	if !ok {
		return // already ended by a lost connection or Close
	}
	delete(t.subs, s)
	end()
	if len(t.subs) > 0 {
		return
	}
	if err := h.unsubscribeChannel(context.Background(), name); err != nil {
		h.reset(err)
		return
	}
	t.pending = append(t.pending, &command{})
}

// reset ends every local stream and replaces the Pub/Sub connection, whose
// events may have been lost. h.mu is held.
func (h *conn) reset(cause error) {
	if h.closed {
		return
	}
	n := h.drop(fmt.Errorf("%w: %w", errLost, cause))
	old := h.ps
	h.ps = h.newPubSub(context.Background()) // dials when first used
	h.gen++
	_ = old.Close()
	level := slog.LevelWarn
	if n == 0 {
		level = slog.LevelDebug // nothing lost; during an outage this repeats
	}
	h.log.Log(context.Background(), level, "push/redis: pub/sub connection lost; live streams closed to catch up",
		"streams", n, "err", cause)
}

// drop ends every local stream, fails every pending subscription with err
// and forgets every topic. It returns how many streams it ended, counted
// by their citizens' channels. h.mu is held.
func (h *conn) drop(err error) int {
	n := 0
	for _, t := range h.topics {
		for _, end := range t.subs {
			end() // once per stream: LocalHub's end ignores a second call
			if !t.broadcast {
				n++
			}
		}
		clear(t.subs) // so their unsubscribe functions find nothing to do
		for _, c := range t.pending {
			if c.done != nil {
				c.err = err
				close(c.done)
			}
		}
	}
	clear(h.topics)
	return n
}

// run receives from the Pub/Sub connection until Close: no goroutine per
// event or per citizen, and delivery to a LocalHub never blocks.
func (h *conn) run(ctx context.Context) {
	defer close(h.exited)
	var (
		lastGen uint64
		pinged  bool // a health-check PING is unanswered
		backoff time.Duration
	)
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return
		}
		ps, gen := h.ps, h.gen
		h.mu.Unlock()
		if gen != lastGen {
			lastGen, pinged = gen, false
		}

		msg, err := ps.ReceiveTimeout(ctx, h.health)
		if err != nil {
			if !dialFailed(err) && timeout(err) && !pinged {
				if err = ps.Ping(ctx); err == nil {
					pinged = true
					continue
				}
			}
			// A failed dial lost nothing: no connection carried
			// subscriptions (a Subscribe that meanwhile dialed one is fine).
			// Anything else did.
			if !dialFailed(err) && !h.lost(gen, err) {
				continue // Close, or another goroutine already reset
			}
			// Redis may be down: retry with backoff, the first at once.
			if backoff > 0 {
				select {
				case <-h.done:
					return
				case <-h.wake:
				case <-time.After(backoff):
				}
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 2*time.Second)
			continue
		}
		pinged, backoff = false, 0
		switch m := msg.(type) {
		case *redis.Message:
			h.deliver(gen, m)
		case *redis.Subscription:
			h.answer(gen, m)
		}
	}
}

func dialFailed(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

func timeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// lost resets the hub after the connection of generation gen failed, unless
// it was already replaced or closed. It reports whether it reset.
func (h *conn) lost(gen uint64, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.gen != gen {
		return false
	}
	h.reset(err)
	return true
}

func (h *conn) deliver(gen uint64, m *redis.Message) {
	e, err := decode([]byte(m.Payload))
	if err != nil {
		// Not the payload: it is not ours to log.
		h.log.Warn("push/redis: malformed live event dropped", "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.gen != gen {
		return
	}
	t := h.topics[m.Channel]
	switch {
	case t == nil || len(t.subs) == 0:
	case t.broadcast:
		// To every stream of the hub, also those whose citizen's channel
		// is on another connection: they are all held here too.
		_ = h.local.PublishBroadcast(context.Background(), e)
	default:
		_ = h.local.Publish(context.Background(), t.citizenID, e)
	}
}

// answer matches Redis's reply to the oldest pending command on its channel.
func (h *conn) answer(gen uint64, s *redis.Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.gen != gen {
		return
	}
	t := h.topics[s.Channel]
	if t == nil || len(t.pending) == 0 {
		// Unasked for: go-redis reconnected and resubscribed behind our
		// back (as after a maintenance handoff), so events may be lost.
		h.reset(fmt.Errorf("push/redis: unrequested %s", s.Kind))
		return
	}
	c := t.pending[0]
	t.pending[0] = nil
	t.pending = t.pending[1:]
	if c.subscribe != (s.Kind == "subscribe" || s.Kind == "ssubscribe") {
		h.reset(fmt.Errorf("push/redis: got %s for a %s", s.Kind, kind(c.subscribe)))
		return
	}
	if c.done != nil {
		close(c.done)
	}
	if len(t.subs) == 0 && len(t.pending) == 0 {
		delete(h.topics, s.Channel)
	}
}

func kind(subscribe bool) string {
	if subscribe {
		return "subscribe"
	}
	return "unsubscribe"
}

// Close ends every local stream and the Pub/Sub connection.
func (h *conn) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.drop(ErrClosed)
	close(h.done)
	ps := h.ps
	h.mu.Unlock()
	err := ps.Close()
	<-h.exited
	if err != nil {
		return fmt.Errorf("push/redis: close pub/sub: %w", err)
	}
	return nil
}
