package eid_test

import (
	"context"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

const callTimeout = 5 * time.Second

func TestService_WaitLookup(t *testing.T) {
	ctx := context.Background()

	t.Run("a decision wakes the waiter at once", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, idp.LevelHigh)
		approval := f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil)
		type result struct {
			st  eid.Status
			err error
			d   time.Duration
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			_, st, err := f.svc.WaitLookup(ctx, r.ID, 20*time.Second, callTimeout)
			done <- result{st, err, time.Since(start)}
		}()
		time.Sleep(200 * time.Millisecond) // let it subscribe and read pending
		if _, err := f.svc.Decide(ctx, r.ID, dev, approval); err != nil {
			t.Fatal(err)
		}
		got := <-done
		if got.err != nil || got.st != eid.StatusApproved || got.d > 5*time.Second {
			t.Errorf("WaitLookup = %s, %v after %v; want approved well before 20s", got.st, got.err, got.d)
		}
	})

	t.Run("a decision made before the wait is seen without a wake-up", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, idp.LevelHigh)
		if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionDeny, nil, nil)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, st, err := f.svc.WaitLookup(ctx, r.ID, 20*time.Second, callTimeout); st != eid.StatusDenied || err != nil || time.Since(start) > time.Second {
			t.Errorf("WaitLookup = %s, %v after %v; want denied at once", st, err, time.Since(start))
		}
	})

	t.Run("timeout answers pending", func(t *testing.T) {
		f := newFixture(t)
		r := f.newLogin(t, idp.LevelHigh)
		start := time.Now()
		_, st, err := f.svc.WaitLookup(ctx, r.ID, time.Second, callTimeout)
		if st != eid.StatusPending || err != nil {
			t.Errorf("WaitLookup = %s, %v; want pending", st, err)
		}
		if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("waited %v, want about 1s", d)
		}
	})

	t.Run("unknown or malformed id is expired at once", func(t *testing.T) {
		f := newFixture(t)
		for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "nope", ""} {
			start := time.Now()
			if _, st, err := f.svc.WaitLookup(ctx, id, 20*time.Second, callTimeout); st != eid.StatusExpired || err != nil || time.Since(start) > time.Second {
				t.Errorf("WaitLookup(%q) = %s, %v after %v; want expired at once", id, st, err, time.Since(start))
			}
		}
	})

	t.Run("a canceled wait answers pending at once", func(t *testing.T) {
		f := newFixture(t)
		r := f.newLogin(t, idp.LevelHigh)
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		if _, st, err := f.svc.WaitLookup(cctx, r.ID, 20*time.Second, callTimeout); st != eid.StatusPending || err != nil || time.Since(start) > 2*time.Second {
			t.Errorf("WaitLookup = %s, %v after %v; want pending at once", st, err, time.Since(start))
		}
	})

	t.Run("another request's decision does not answer this one", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		mine, other := f.newLogin(t, idp.LevelHigh), f.newLogin(t, idp.LevelHigh)
		done := make(chan eid.Status, 1)
		go func() {
			_, st, _ := f.svc.WaitLookup(ctx, mine.ID, 1500*time.Millisecond, callTimeout)
			done <- st
		}()
		time.Sleep(200 * time.Millisecond)
		if _, err := f.svc.Decide(ctx, other.ID, dev, f.approval(t, dev, key, other, eid.DecisionDeny, nil, nil)); err != nil {
			t.Fatal(err)
		}
		if st := <-done; st != eid.StatusPending {
			t.Errorf("mine = %s, want pending", st)
		}
	})
}

func TestLocalWakeups(t *testing.T) {
	var w idp.LocalWakeups
	ctx := context.Background()
	ch, end, err := w.Subscribe(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, endOther, _ := w.Subscribe(ctx, "b")
	for range 3 { // never blocks, however often it is published
		_ = w.Publish(ctx, "a")
	}
	select {
	case <-ch:
	default:
		t.Error("subscriber of a not woken")
	}
	select {
	case <-other:
		t.Error("subscriber of b woken by a")
	default:
	}
	end()
	end()
	endOther()
	if n := w.Topics(); n != 0 {
		t.Errorf("%d topics left after every subscription ended", n)
	}
}
