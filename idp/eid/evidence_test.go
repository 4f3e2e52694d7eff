package eid_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// The approval a decision carries is evidence: long after it expired it
// still proves which device agreed to which claims for which request, and
// nothing else passes for it.
func TestVerifyEvidence(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelHigh)
	other, _ := f.enroll(t, idp.LevelHigh)
	r := f.newLogin(t, idp.LevelHigh)
	d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	recorded := f.clock.Now()
	f.clock.Advance(24 * time.Hour) // far beyond the approval's two minutes
	c, err := eid.VerifyEvidence(d.Approval, testIssuer, dev, recorded)
	if err != nil {
		t.Fatalf("VerifyEvidence: %v", err)
	}
	if c.RequestID != r.ID || c.Decision != eid.DecisionApprove || !slices.Equal(c.Claims, []string{"name"}) || c.Issuer != dev.ID {
		t.Errorf("evidence claims = %+v", c)
	}
	// A device revoked after the grant still vouches for it; revoked before, not.
	revoked := *dev
	later, earlier := recorded.Add(time.Hour), recorded.Add(-time.Hour)
	revoked.RevokedAt = &later
	if _, err := eid.VerifyEvidence(d.Approval, testIssuer, &revoked, recorded); err != nil {
		t.Errorf("device revoked after the grant: %v", err)
	}
	revoked.RevokedAt = &earlier
	if _, err := eid.VerifyEvidence(d.Approval, testIssuer, &revoked, recorded); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("device revoked before the grant: err = %v, want ErrInvalid", err)
	}
	for name, tc := range map[string]struct {
		ev     string
		issuer string
		dev    *idp.Device
		at     time.Time
	}{
		"another device's key":          {d.Approval, testIssuer, other, recorded},
		"another issuer":                {d.Approval, "https://id.other.test", dev, recorded},
		"recorded before it was signed": {d.Approval, testIssuer, dev, recorded.Add(-time.Hour)},
		"tampered payload":              {d.Approval[:len(d.Approval)-90] + "A" + d.Approval[len(d.Approval)-89:], testIssuer, dev, recorded},
		"empty":                         {"", testIssuer, dev, recorded},
		"no device":                     {d.Approval, testIssuer, nil, recorded},
	} {
		if _, err := eid.VerifyEvidence(tc.ev, tc.issuer, tc.dev, tc.at); err == nil {
			t.Errorf("%s: evidence accepted", name)
		}
	}
}
