package eid

import (
	"context"
	"time"
)

// LoginTopic is the wake-up topic of login request id (idp.Wakeups).
func LoginTopic(id string) string { return "eid-login:" + id }

// wake tells waiters on every replica that login id was decided. A failed
// publish is not the decision's failure: the waiters see it at their
// timeout, when the page asks again.
func (s *Service) wake(ctx context.Context, id string) {
	_ = s.cfg.Wakeups.Publish(context.WithoutCancel(ctx), LoginTopic(id))
}

// fallbackPoll is how often a waiter re-reads the store when it could not
// subscribe to wake-ups (the pub/sub connection is down).
const fallbackPoll = 2 * time.Second

// WaitLookup is Lookup that, while the request is pending, waits up to
// wait for it to be decided or to expire. It subscribes before it reads,
// so a decision made between the read and the wait is not missed. Each
// store read gets its own callTimeout; nothing is held between reads.
// When ctx ends (the client left, or the server is stopping) it returns
// pending at once, with no error.
func (s *Service) WaitLookup(ctx context.Context, id string, wait, callTimeout time.Duration) (*LoginRequest, Status, error) {
	lookup := func() (*LoginRequest, Status, error) {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		defer cancel()
		return s.Lookup(c, id)
	}
	if wait <= 0 || !validID(id) {
		return lookup()
	}
	woken, unsubscribe, err := s.cfg.Wakeups.Subscribe(ctx, LoginTopic(id))
	if err != nil {
		woken = nil // poll the store slowly instead
	} else {
		defer unsubscribe()
	}
	lr, st, err := lookup()
	if err != nil || st != StatusPending {
		return lr, st, err
	}
	deadline := time.NewTimer(min(wait, lr.ExpiresAt.Sub(s.now())+time.Second))
	defer deadline.Stop()
	var tick <-chan time.Time
	if woken == nil {
		t := time.NewTicker(fallbackPoll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return lr, StatusPending, nil
		case <-deadline.C:
			return lookup()
		case <-tick:
		case _, ok := <-woken:
			if !ok { // the subscription was lost: answer what the store says
				return lookup()
			}
		}
		next, st, err := lookup()
		if err != nil || st != StatusPending {
			return next, st, err
		}
	}
}
