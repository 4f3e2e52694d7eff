package eid_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

func TestService_TargetedLogin(t *testing.T) {
	ctx := context.Background()
	const window = 10 * time.Minute

	t.Run("prompts are counted per key within the window", func(t *testing.T) {
		f := newFixture(t)
		for i := range 3 {
			if _, ok, err := f.svc.ReservePrompt(ctx, "k", 2, window); err != nil || ok != (i < 2) {
				t.Errorf("prompt %d: ok %v, %v", i+1, ok, err)
			}
		}
		if _, ok, _ := f.svc.ReservePrompt(ctx, "other", 2, window); !ok {
			t.Error("another key is limited too")
		}
		f.clock.Advance(window)
		if _, ok, _ := f.svc.ReservePrompt(ctx, "k", 2, window); !ok {
			t.Error("next window still limited")
		}
	})

	t.Run("only the target's devices list and answer it", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		p, _, err := f.svc.ReservePrompt(ctx, "k", 5, window)
		if err != nil {
			t.Fatal(err)
		}
		r := &eid.LoginRequest{ClientID: "dvc", Claims: []eid.ClaimRequest{{Name: "name"}}, PurposeCode: "login", Target: "someone-else"}
		if err := f.svc.NewLogin(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Index(ctx, r, p); err != nil {
			t.Fatal(err)
		}
		if got, err := f.svc.PendingFor(ctx, dev.CitizenID, 5, window); err != nil || len(got) != 0 {
			t.Errorf("PendingFor(own citizen) = %v, %v; want none", got, err)
		}
		if got, _ := f.svc.PendingFor(ctx, "someone-else", 5, window); len(got) != 1 {
			t.Errorf("PendingFor(target) = %v, want the request", got)
		}
		for _, d := range []string{eid.DecisionApprove, eid.DecisionDeny} {
			if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, d, []string{"name"}, nil)); !errors.Is(err, idp.ErrNotFound) {
				t.Errorf("%s from another citizen's device: %v, want ErrNotFound", d, err)
			}
		}
		if r.For(dev) {
			t.Error("For(another citizen's device) = true")
		}
	})

	t.Run("unmatched target: no device answers, as for a registered one", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := &eid.LoginRequest{ClientID: "dvc", Claims: []eid.ClaimRequest{{Name: "name"}}, PurposeCode: "login", Target: eid.Unmatched}
		if err := f.svc.NewLogin(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil)); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("approval of an unmatched request: %v, want ErrNotFound", err)
		}
	})

	t.Run("decided requests leave the list", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		p, _, _ := f.svc.ReservePrompt(ctx, "k", 5, window)
		r := &eid.LoginRequest{ClientID: "dvc", Claims: []eid.ClaimRequest{{Name: "name"}}, PurposeCode: "login", Target: dev.CitizenID}
		if err := f.svc.NewLogin(ctx, r); err != nil {
			t.Fatal(err)
		}
		_ = f.svc.Index(ctx, r, p)
		if got, _ := f.svc.PendingFor(ctx, dev.CitizenID, 5, window); len(got) != 1 || got[0].ID != r.ID {
			t.Fatalf("PendingFor = %v", got)
		}
		if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil)); err != nil {
			t.Fatal(err)
		}
		if got, _ := f.svc.PendingFor(ctx, dev.CitizenID, 5, window); len(got) != 0 {
			t.Errorf("PendingFor after the decision = %v", got)
		}
	})
}
