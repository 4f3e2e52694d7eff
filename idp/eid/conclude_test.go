package eid_test

import (
	"context"
	"errors"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// TestService_Conclude: a login the browser finished with a passkey can no
// longer be answered by the app, nor its decision taken; a login whose
// decision was taken cannot be concluded.
func TestService_Conclude(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelHigh)

	r := f.newLogin(t, "")
	if err := f.svc.Conclude(ctx, r.ID); err != nil {
		t.Fatalf("Conclude: %v", err)
	}
	if st, _, err := f.svc.Status(ctx, r.ID); st != eid.StatusExpired || err != nil {
		t.Errorf("Status after Conclude = %s, %v", st, err)
	}
	if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil)); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("Decide after Conclude: %v, want ErrNotFound", err)
	}
	if err := f.svc.Conclude(ctx, r.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("Conclude twice: %v, want ErrNotFound", err)
	}

	// The app approved a moment before the passkey finished: the browser
	// concludes first, so the approval is never taken.
	r2 := f.newLogin(t, "")
	if _, err := f.svc.Decide(ctx, r2.ID, dev, f.approval(t, dev, key, r2, eid.DecisionApprove, []string{"name"}, nil)); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Conclude(ctx, r2.ID); err != nil {
		t.Fatalf("Conclude a decided login: %v", err)
	}
	if _, _, err := f.svc.TakeDecision(ctx, r2.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("TakeDecision after Conclude: %v, want ErrNotFound", err)
	}

	// And the other way round.
	r3 := f.newLogin(t, "")
	if _, err := f.svc.Decide(ctx, r3.ID, dev, f.approval(t, dev, key, r3, eid.DecisionApprove, []string{"name"}, nil)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.svc.TakeDecision(ctx, r3.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Conclude(ctx, r3.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("Conclude after TakeDecision: %v, want ErrNotFound", err)
	}
	if err := f.svc.Conclude(ctx, "../x"); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("Conclude of a malformed id: %v", err)
	}
}
