package eid_test

import (
	"context"
	"errors"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// newCIBALogin starts a backchannel (CIBA) login request for dev's citizen.
func (f *fixture) newCIBALogin(t *testing.T, dev *idp.Device) *eid.LoginRequest {
	t.Helper()
	r := &eid.LoginRequest{ClientID: "dvc", ClientName: "Quầy", Claims: []eid.ClaimRequest{{Name: "name"}},
		PurposeCode: "login", Purpose: "Đăng nhập", Target: dev.CitizenID, BindingMessage: "Quầy 3 · 4711"}
	if err := f.svc.NewLogin(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

// A CIBA request is approved only in mode ciba over its own binding
// message, without a match pick; mode ciba approves nothing else.
func TestDecide_CIBAMode(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	dev, key := f.enroll(t, idp.LevelHigh)
	ciba := func(mode, msg string) func(map[string]any, *eid.ApprovalClaims) {
		return func(_ map[string]any, c *eid.ApprovalClaims) { c.Mode, c.BindingMessage, c.MatchNumber = mode, msg, "" }
	}
	r := f.newCIBALogin(t, dev)
	if v := f.svc.AppView(r); v.BindingMessage != r.BindingMessage || len(v.MatchChoices) != 0 {
		t.Errorf("app view %+v", v)
	}
	for name, mod := range map[string]func(map[string]any, *eid.ApprovalClaims){
		"cross-device pick": func(_ map[string]any, c *eid.ApprovalClaims) { c.BindingMessage = r.BindingMessage },
		"same device":       ciba(eid.ModeSameDevice, r.BindingMessage),
		"other message":     ciba(eid.ModeCIBA, "Quầy 4 · 4711"),
		"no message":        ciba(eid.ModeCIBA, ""),
	} {
		_, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, mod))
		if !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, ciba(eid.ModeCIBA, r.BindingMessage)))
	if err != nil || !d.Approved || d.Mode != eid.ModeCIBA {
		t.Fatalf("approve: %+v %v", d, err)
	}
	_, err = f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, ciba(eid.ModeCIBA, r.BindingMessage)))
	if !errors.Is(err, idp.ErrConflict) {
		t.Errorf("approved twice: %v, want ErrConflict", err)
	}

	// Mode ciba on a browser login is refused.
	q := f.newLogin(t, idp.LevelSubstantial)
	_, err = f.svc.Decide(ctx, q.ID, dev, f.approval(t, dev, key, q, eid.DecisionApprove, []string{"name"}, ciba(eid.ModeCIBA, "x")))
	if !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("mode ciba on a browser login: %v", err)
	}
}
