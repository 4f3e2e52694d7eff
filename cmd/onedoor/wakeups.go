package main

import (
	"context"
	"fmt"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/push"
	pushredis "github.com/onedoor/onedoor/push/redis"
)

// hubOptions are the options of a Redis hub on the channels under prefix.
func (m *Main) hubOptions(prefix string) []pushredis.Option {
	opts := []pushredis.Option{pushredis.WithPrefix(prefix), pushredis.WithLogger(m.Logger)}
	if m.Config.RedisShardedPubSub || m.Config.RedisCluster {
		opts = append(opts, pushredis.WithSharded())
	}
	return opts
}

// startWakeups returns the IdP's wake-ups: in-process, or across replicas
// over Redis.
func (m *Main) startWakeups(ctx context.Context) (idp.Wakeups, error) {
	if m.redis == nil {
		return &idp.LocalWakeups{}, nil
	}
	h, err := pushredis.NewHub(ctx, m.redis, append(m.hubOptions(m.Config.RedisPrefix+"wake:"), pushredis.WithoutBroadcasts())...)
	if err != nil {
		return nil, fmt.Errorf("login wake-ups on redis: %w", err)
	}
	m.wakeHub = h
	return hubWakeups{hub: h}, nil
}

// hubWakeups carries the IdP's wake-ups (a login was decided) over a push
// hub: its Redis hub already keeps one Pub/Sub connection per replica,
// confirms each subscription before returning and closes every stream when
// the connection is lost, which is what a waiter needs. A wake-up is an
// empty event on the topic's channel; the channels' names are hashed, so
// the login request ids do not show in Redis.
type hubWakeups struct{ hub push.Hub }

var _ idp.Wakeups = hubWakeups{}

func (h hubWakeups) Publish(ctx context.Context, topic string) error {
	if err := h.hub.Publish(ctx, topic, push.Event{}); err != nil {
		return fmt.Errorf("wake-up: %w", err)
	}
	return nil
}

func (h hubWakeups) Subscribe(ctx context.Context, topic string) (<-chan struct{}, func(), error) {
	events, end, err := h.hub.Subscribe(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("wake-up: %w", err)
	}
	woken := make(chan struct{}, 1)
	// Ends when the stream is closed: by end, or by a lost connection.
	go func() {
		defer close(woken)
		for range events {
			select {
			case woken <- struct{}{}:
			default:
			}
		}
	}()
	return woken, end, nil
}

// pushPrompter sends a targeted login's approval request (login_hint) to
// the citizen's installations through the push outbox: a login-approval
// message, which ignores quiet hours and carries only the generic text and
// an opaque id; the app lists the request over the eID API.
type pushPrompter struct{ m *Main }

var _ web.Prompter = pushPrompter{}

func (p pushPrompter) PromptLogin(ctx context.Context, citizenID string, lr *eid.LoginRequest) error {
	if p.m.PushStore == nil {
		return nil
	}
	msg := &push.Message{ID: push.NewMessageID(), CitizenID: citizenID, Kind: push.KindLoginApproval,
		Priority: push.High, CollapseKey: "login", ExpiresAt: lr.ExpiresAt}
	if err := p.m.PushStore.Enqueue(ctx, msg); err != nil {
		return fmt.Errorf("enqueue login approval push: %w", err)
	}
	if d := p.m.loginPushes.Load(); d != nil {
		d.Notify()
	}
	return nil
}
