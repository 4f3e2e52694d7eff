package eid_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// What the app declares about itself is display text: checked, stored as
// declared, never a reason to trust the device more.
func TestService_EnrollPlatformModel(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, platform, model string
		ok                    bool
		wantModel             string
	}{
		{"android and a model", "android", "Pixel 9 Pro", true, "Pixel 9 Pro"},
		{"ios, model trimmed", "ios", "  iPhone 16  ", true, "iPhone 16"},
		{"nothing declared", "", "", true, ""},
		{"vietnamese model", "web", "Máy tính của Lan", true, "Máy tính của Lan"},
		{"platform with digits", "harmonyos5", "", true, ""},
		{"upper-case platform", "Android", "", false, ""},
		{"platform starting with a digit", "9os", "", false, ""},
		{"platform with a space", "and roid", "", false, ""},
		{"platform too long", strings.Repeat("a", eid.MaxPlatform+1), "", false, ""},
		{"platform with markup", "<b>", "", false, ""},
		{"model too long", "android", strings.Repeat("m", eid.MaxDeviceModel+1), false, ""},
		{"model with a bidi override", "android", "Pixel\u202e9", false, ""},
		{"model with a newline", "android", "Pixel\n9", false, ""},
		{"model not UTF-8", "android", "Pixel \xff", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			code, _, err := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
			if err != nil {
				t.Fatal(err)
			}
			dev, err := f.svc.Enroll(ctx, eid.EnrollRequest{PersonalID: testCitizen.PersonalID, ActivationCode: code,
				PublicKey: publicJWK(t, newKey(t).Public()), Platform: c.platform, Model: c.model})
			if !c.ok {
				if !errors.Is(err, eid.ErrEnrollmentFailed) {
					t.Fatalf("Enroll: got %v, want ErrEnrollmentFailed", err)
				}
				// Refused before the code was looked at: it still works.
				if _, err := f.svc.Enroll(ctx, eid.EnrollRequest{PersonalID: testCitizen.PersonalID, ActivationCode: code,
					PublicKey: publicJWK(t, newKey(t).Public())}); err != nil {
					t.Errorf("the code after a refused declaration: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.store.GetDevice(ctx, dev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Platform != c.platform || got.Model != c.wantModel || got.LastUsedAt != nil {
				t.Errorf("stored platform %q model %q last used %v, want %q %q never", got.Platform, got.Model, got.LastUsedAt, c.platform, c.wantModel)
			}
		})
	}
}

// touchCounter counts the service's last-use writes and can fail them.
type touchCounter struct {
	eid.Store
	n   int
	err error
}

func (s *touchCounter) TouchDevice(ctx context.Context, id string, at time.Time, every time.Duration) (bool, error) {
	s.n++
	if s.err != nil {
		return false, s.err
	}
	return s.Store.TouchDevice(ctx, id, at, every)
}

// A device's approvals and denials record its last use, at most once per
// eid.LastUsedEvery, so a busy phone does not write on every approval; a
// store that cannot record it does not undo the approval.
func TestService_LastUsed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	tc := &touchCounter{Store: f.store}
	svc := eid.New(tc, f.eph, eid.Config{Issuer: testIssuer, CodeKey: []byte("0123456789abcdef0123456789abcdef"), Now: f.clock.Now})
	dev, key := f.enroll(t, idp.LevelHigh)
	// decide answers a new login as the web handler does: with the device
	// as the store has it now.
	decide := func(decision string) {
		t.Helper()
		d, err := f.store.GetDevice(ctx, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		r := f.newLogin(t, idp.LevelHigh)
		if _, err := svc.Decide(ctx, r.ID, d, f.approval(t, d, key, r, decision, []string{"name"}, nil)); err != nil {
			t.Fatalf("Decide %s: %v", decision, err)
		}
	}
	lastUsed := func() *time.Time {
		t.Helper()
		d, err := f.store.GetDevice(ctx, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		return d.LastUsedAt
	}
	first := f.clock.Now()
	decide(eid.DecisionApprove)
	if lu := lastUsed(); lu == nil || !lu.Equal(first.Truncate(time.Millisecond)) {
		t.Fatalf("after an approval: last used %v, want %v", lu, first)
	}
	f.clock.Advance(30 * time.Second)
	decide(eid.DecisionApprove)
	decide(eid.DecisionDeny)
	if tc.n != 1 {
		t.Errorf("three decisions within a minute wrote %d times, want 1", tc.n)
	}
	if lu := lastUsed(); !lu.Equal(first.Truncate(time.Millisecond)) {
		t.Errorf("within the minute: last used %v, want %v", lu, first)
	}
	f.clock.Advance(eid.LastUsedEvery)
	decide(eid.DecisionDeny)
	if lu := lastUsed(); lu == nil || !lu.Equal(f.clock.Now().Truncate(time.Millisecond)) {
		t.Errorf("a denial a minute later: last used %v, want %v", lu, f.clock.Now())
	}
	// The store failing to record a use does not undo what the device did.
	f.clock.Advance(time.Hour)
	tc.err = idp.ErrUnavailable
	decide(eid.DecisionApprove)
}
