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
	"sync"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/redis/go-redis/v9"
)

// ErrClosed is returned by Subscribe after Close.
var ErrClosed = errors.New("push/redis: hub closed")

// errLost fails subscriptions pending when the connection was lost.
var errLost = errors.New("push/redis: pub/sub connection lost")

// Hub is push.Hub over Redis Pub/Sub.
type Hub struct {
	rdb    redis.UniversalClient
	prefix string
	health time.Duration
	log    *slog.Logger
	// sharded uses Redis 7's sharded Pub/Sub (SPUBLISH, SSUBSCRIBE): on a
	// cluster a message then travels only within its channel's shard
	// instead of to every node.
	sharded      bool
	noBroadcasts bool
	local        push.LocalHub

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

var _ push.Hub = (*Hub)(nil)

// topic is a citizen's channel on this replica.
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

// Option configures a Hub.
type Option func(*Hub)

// WithPrefix sets the prefix of the hub's channel names, as --redis-prefix
// does for keys, so deployments sharing a Redis do not hear each other.
// The default is "onedoor:".
func WithPrefix(p string) Option { return func(h *Hub) { h.prefix = p } }

// WithHealthCheck sets how long the connection may stay silent before the
// hub pings it; a ping unanswered for as long again counts as a lost
// connection (a peer that vanished without closing it). The default is 5s.
func WithHealthCheck(d time.Duration) Option { return func(h *Hub) { h.health = d } }

// WithSharded makes the hub use sharded Pub/Sub (SPUBLISH, SSUBSCRIBE,
// Redis 7 or later), for a Redis that runs as a cluster. Every replica
// must agree: a sharded subscriber does not hear a plain PUBLISH.
func WithSharded() Option { return func(h *Hub) { h.sharded = true } }

// WithoutBroadcasts keeps the hub off the broadcast channel, for a hub
// that carries no live streams (the IdP's login wake-ups).
func WithoutBroadcasts() Option { return func(h *Hub) { h.noBroadcasts = true } }

// WithLogger sets where lost connections and malformed events are logged.
// The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(h *Hub) { h.log = l } }

// NewHub connects a Pub/Sub connection of rdb and starts receiving on it.
// The client stays the caller's: Close does not close it.
func NewHub(ctx context.Context, rdb redis.UniversalClient, opts ...Option) (*Hub, error) {
	h := &Hub{rdb: rdb, prefix: "onedoor:", health: 5 * time.Second, log: slog.Default(),
		topics: map[string]*topic{}, done: make(chan struct{}), exited: make(chan struct{}),
		wake: make(chan struct{}, 1)}
	for _, o := range opts {
		o(h)
	}
	if h.health <= 0 {
		return nil, fmt.Errorf("push/redis: health check interval %v must be positive", h.health)
	}
	h.ps = h.newPubSub(ctx)
	// A PING dials the connection now, so a dead Redis fails start-up.
	if err := h.ps.Ping(ctx); err != nil {
		_ = h.ps.Close()
		return nil, fmt.Errorf("push/redis: connect pub/sub: %w", err)
	}
	// The loop lives until Close, not until ctx ends; it keeps ctx's values.
	go h.run(context.WithoutCancel(ctx))
	return h, nil
}

// channel returns the citizen's channel name. Citizen IDs are opaque and of
// any length, so the name carries a hash: bounded, and not the ID itself
// (PUBSUB CHANNELS lists names to anyone allowed to run it).
func (h *Hub) channel(citizenID string) string {
	sum := sha256.Sum256([]byte(citizenID))
	return h.prefix + "push:live:" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// broadcastChannel is the one channel of broadcasts: every replica with a
// live stream subscribes to it once, so a broadcast is one message per
// replica, whatever its audience.
func (h *Hub) broadcastChannel() string { return h.prefix + "push:live:broadcast" }

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

// Publish tells every replica's streams of the citizen about e. It fails
// when Redis does; the app then catches up from the database when it next
// connects.
func (h *Hub) Publish(ctx context.Context, citizenID string, e push.Event) error {
	b, err := encode(e)
	if err != nil {
		return fmt.Errorf("push/redis: encode live event: %w", err)
	}
	publish := h.rdb.Publish
	if h.sharded {
		publish = h.rdb.SPublish
	}
	if err := publish(ctx, h.channel(citizenID), b).Err(); err != nil {
		return fmt.Errorf("push/redis: publish live event: %w", err)
	}
	return nil
}

// PublishBroadcast tells every replica's streams of a broadcast: one
// message on the broadcast channel, each replica filtering its streams by
// their citizens.
func (h *Hub) PublishBroadcast(ctx context.Context, e push.Event) error {
	b, err := encode(e)
	if err != nil {
		return fmt.Errorf("push/redis: encode broadcast event: %w", err)
	}
	publish := h.rdb.Publish
	if h.sharded {
		publish = h.rdb.SPublish
	}
	if err := publish(ctx, h.broadcastChannel(), b).Err(); err != nil {
		return fmt.Errorf("push/redis: publish broadcast event: %w", err)
	}
	return nil
}

// Subscribe implements push.Hub. It returns once Redis has confirmed the
// replica's subscriptions to the citizen's channel and to the broadcast
// channel, so every event published after it returns reaches the channel
// (unless the channel is closed).
func (h *Hub) Subscribe(ctx context.Context, citizenID string) (<-chan push.Event, func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("push/redis: subscribe: %w", err)
	}
	names := []string{h.channel(citizenID), h.broadcastChannel()}
	if h.noBroadcasts {
		names = names[:1]
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, nil, ErrClosed
	}
	var (
		topics = make([]*topic, len(names))
		waits  []*command
	)
	for i, name := range names {
		t := h.topics[name]
		if t == nil {
			t = &topic{broadcast: i == 1, subs: map[<-chan push.Event]func(){}}
			if !t.broadcast {
				t.citizenID = citizenID
			}
			h.topics[name] = t
		}
		topics[i] = t
		if len(t.subs) == 0 {
			// The first local stream: subscribe this replica. The write is
			// made under h.mu so commands on a channel go out in the order
			// of t.pending. The caller's cancellation is dropped: go-redis
			// treats a canceled write as a broken connection.
			c := &command{subscribe: true, done: make(chan struct{})}
			if err := h.subscribe(context.WithoutCancel(ctx), name); err != nil {
				h.reset(err)
				h.mu.Unlock()
				return nil, nil, fmt.Errorf("push/redis: subscribe: %w", err)
			}
			t.pending = append(t.pending, c)
			waits = append(waits, c)
			select {
			case h.wake <- struct{}{}:
			default:
			}
		} else if n := len(t.pending); n > 0 {
			// Streams exist, so the newest command is their SUBSCRIBE; it
			// may be unanswered yet.
			waits = append(waits, t.pending[n-1])
		}
	}
	// Registered before h.mu is released: a message can only follow the
	// confirmation, which the receive loop handles under h.mu.
	ch, end, err := h.local.Subscribe(ctx, citizenID)
	if err != nil { // LocalHub does not fail; keep it honest if it starts to
		h.mu.Unlock()
		return nil, nil, fmt.Errorf("push/redis: subscribe locally: %w", err)
	}
	for _, t := range topics {
		t.subs[ch] = end
	}
	h.mu.Unlock()

	unsubscribe := sync.OnceFunc(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		for i, t := range topics {
			h.unsubscribe(names[i], t, ch)
		}
	})
	for _, wait := range waits {
		select {
		case <-wait.done:
			err = wait.err
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			unsubscribe()
			return nil, nil, fmt.Errorf("push/redis: subscribe: %w", err)
		}
	}
	return ch, unsubscribe, nil
}

func (h *Hub) newPubSub(ctx context.Context) *redis.PubSub {
	if h.sharded {
		return h.rdb.SSubscribe(ctx)
	}
	return h.rdb.Subscribe(ctx)
}

// subscribe and unsubscribeChannel write on h.ps; h.mu is held.
func (h *Hub) subscribe(ctx context.Context, name string) error {
	if h.sharded {
		return h.ps.SSubscribe(ctx, name)
	}
	return h.ps.Subscribe(ctx, name)
}

func (h *Hub) unsubscribeChannel(ctx context.Context, name string) error {
	if h.sharded {
		return h.ps.SUnsubscribe(ctx, name)
	}
	return h.ps.Unsubscribe(ctx, name)
}

// unsubscribe ends stream s, and the replica's subscription with the last.
// It does not wait for Redis to confirm. h.mu is held.
func (h *Hub) unsubscribe(name string, t *topic, s <-chan push.Event) {
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
func (h *Hub) reset(cause error) {
	if h.closed {
		return
	}
	n := h.drop(errLost)
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
// and forgets every topic. It returns how many streams it ended. h.mu is
// held.
func (h *Hub) drop(err error) int {
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
func (h *Hub) run(ctx context.Context) {
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
func (h *Hub) lost(gen uint64, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.gen != gen {
		return false
	}
	h.reset(err)
	return true
}

func (h *Hub) deliver(gen uint64, m *redis.Message) {
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
		_ = h.local.PublishBroadcast(context.Background(), e)
	default:
		_ = h.local.Publish(context.Background(), t.citizenID, e)
	}
}

// answer matches Redis's reply to the oldest pending command on its channel.
func (h *Hub) answer(gen uint64, s *redis.Subscription) {
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

// Close ends every local stream and the Pub/Sub connection. Publish still
// works: the client is the caller's.
func (h *Hub) Close() error {
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
