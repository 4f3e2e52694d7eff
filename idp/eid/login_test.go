package eid_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

func TestService_NewLogin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.newLogin(t, "")
	if len(r.ID) != 22 || !regexp.MustCompile(`^[0-9]{2}$`).MatchString(r.MatchNumber) || !slices.Contains(r.MatchChoices, r.MatchNumber) || r.Level != idp.LevelSubstantial {
		t.Errorf("request = %+v", r)
	}
	if !r.CreatedAt.Equal(f.clock.Now()) || !r.ExpiresAt.Equal(f.clock.Now().Add(2*time.Minute)) {
		t.Errorf("times = %v, %v", r.CreatedAt, r.ExpiresAt)
	}
	got, err := f.svc.Login(ctx, r.ID)
	if err != nil || got.ClientID != "dvc" || string(got.BrowserKey) != "browser-key-hash" || got.MatchNumber != r.MatchNumber {
		t.Errorf("Login = %+v, %v", got, err)
	}
	if st, d, err := f.svc.Status(ctx, r.ID); st != eid.StatusPending || d != nil || err != nil {
		t.Errorf("Status = %s, %v, %v", st, d, err)
	}
	f.clock.Advance(2 * time.Minute)
	if _, err := f.svc.Login(ctx, r.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("Login after expiry: err = %v, want ErrNotFound", err)
	}
	if st, _, err := f.svc.Status(ctx, r.ID); st != eid.StatusExpired || err != nil {
		t.Errorf("Status after expiry = %s, %v", st, err)
	}
	for _, id := range []string{"", "nope", "../../etc/passwd"} {
		if st, _, err := f.svc.Status(ctx, id); st != eid.StatusExpired || err != nil {
			t.Errorf("Status(%q) = %s, %v", id, st, err)
		}
	}

	bad := []eid.LoginRequest{
		{},
		{ClientID: "dvc", Level: "urn:other"},
		{ClientID: "dvc", Claims: []eid.ClaimRequest{{Name: "name"}, {Name: "name", Optional: true}}},
		{ClientID: "dvc", Claims: []eid.ClaimRequest{{Name: ""}}},
		{ClientID: "dvc", Purpose: strings.Repeat("x", 513)},
	}
	for _, b := range bad {
		if err := f.svc.NewLogin(ctx, &b); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("NewLogin(%+v): err = %v, want ErrInvalid", b, err)
		}
	}
}

func TestService_MatchNumberUniform(t *testing.T) {
	f := newFixture(t)
	seen := map[string]bool{}
	for range 2000 {
		seen[f.newLogin(t, "").MatchNumber] = true
	}
	if len(seen) != 100 {
		t.Errorf("%d distinct match numbers in 2000 draws, want all 100", len(seen))
	}
}

func TestService_AppView(t *testing.T) {
	f := newFixture(t)
	r := f.newLogin(t, idp.LevelHigh)
	b, err := json.Marshal(f.svc.AppView(r))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// No match_number: the app is told the three choices, not which one
	// the browser shows.
	want := []string{"claims", "client_id", "client_name", "expires_at", "level", "match_choices", "purpose", "purpose_code", "request_id"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %v, want %v", keys, want)
	}
	if got["expires_at"] != "2025-03-01T09:02:00Z" || got["request_id"] != r.ID || got["level"] != string(idp.LevelHigh) {
		t.Errorf("view = %s", b)
	}
	if !strings.Contains(string(b), `"claims":[{"name":"name","optional":false},{"name":"phone_number","optional":true}]`) {
		t.Errorf("claims in %s", b)
	}
	if b, _ := json.Marshal(f.svc.AppView(&eid.LoginRequest{})); !strings.Contains(string(b), `"claims":[]`) {
		t.Errorf("no claims should be [], got %s", b)
	}
}

func TestService_Decide(t *testing.T) {
	ctx := context.Background()

	t.Run("approve, then take once", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, idp.LevelHigh)
		d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if !d.Approved || d.CitizenID != testCitizen.ID || d.DeviceID != dev.ID || d.Level != idp.LevelHigh || !slices.Equal(d.Claims, []string{"name"}) || d.Approval == "" {
			t.Errorf("decision = %+v", d)
		}
		if st, sd, err := f.svc.Status(ctx, r.ID); st != eid.StatusApproved || sd == nil || sd.CitizenID != testCitizen.ID || err != nil {
			t.Errorf("Status = %s, %+v, %v", st, sd, err)
		}
		gr, gd, err := f.svc.TakeDecision(ctx, r.ID)
		if err != nil || gr.ID != r.ID || string(gr.BrowserKey) != "browser-key-hash" || !gd.Approved {
			t.Fatalf("TakeDecision = %+v, %+v, %v", gr, gd, err)
		}
		if _, _, err := f.svc.TakeDecision(ctx, r.ID); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("second TakeDecision: err = %v, want ErrNotFound", err)
		}
		if _, err := f.svc.Login(ctx, r.ID); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("Login after TakeDecision: err = %v, want ErrNotFound", err)
		}
		again := f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil)
		if _, err := f.svc.Decide(ctx, r.ID, dev, again); err == nil {
			t.Errorf("Decide after TakeDecision succeeded")
		}
	})

	t.Run("deny", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelSubstantial)
		r := f.newLogin(t, idp.LevelHigh) // a deny needs no level
		d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionDeny, []string{"name"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if d.Approved || len(d.Claims) != 0 {
			t.Errorf("decision = %+v", d)
		}
		if st, _, _ := f.svc.Status(ctx, r.ID); st != eid.StatusDenied {
			t.Errorf("Status = %s, want denied", st)
		}
		if _, gd, err := f.svc.TakeDecision(ctx, r.ID); err != nil || gd.Approved {
			t.Errorf("TakeDecision = %+v, %v", gd, err)
		}
	})

	t.Run("optional claim shared", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"phone_number", "name"}, nil)); err != nil {
			t.Error(err)
		}
	})

	t.Run("double decision", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionDeny, nil, nil)); err != nil {
			t.Fatal(err)
		}
		_, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil))
		if !errors.Is(err, idp.ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
		if st, _, _ := f.svc.Status(ctx, r.ID); st != eid.StatusDenied {
			t.Errorf("first answer lost: Status = %s", st)
		}
	})

	t.Run("expired request", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		f.clock.Advance(2 * time.Minute)
		_, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil))
		if !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("device level too low", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelSubstantial)
		r := f.newLogin(t, idp.LevelHigh)
		_, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil))
		if !errors.Is(err, eid.ErrLevelTooLow) {
			t.Errorf("err = %v, want ErrLevelTooLow", err)
		}
	})

	t.Run("revoked device", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		ap := f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil)
		if err := f.svc.RevokeDevice(ctx, testCitizen.ID, dev.ID); err != nil {
			t.Fatal(err)
		}
		dev, _ = f.store.GetDevice(ctx, dev.ID)
		if _, err := f.svc.Decide(ctx, r.ID, dev, ap); !errors.Is(err, eid.ErrDeviceAuth) {
			t.Errorf("err = %v, want ErrDeviceAuth", err)
		}
	})

	refused := []struct {
		name     string
		decision string
		claims   []string
		mod      func(h map[string]any, c *eid.ApprovalClaims)
		why      string
	}{
		{"unknown mode", eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.Mode = "no_proof"
		}, "mode must be"},
		// The pick is compared last: a refused approval with a wrong
		// pick says nothing of the pick and leaves the request pending.
		{"wrong pick in an otherwise refused approval", eid.DecisionApprove, []string{"name", "address"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.MatchNumber = otherMatch(c.MatchNumber)
		}, "not requested"},
		{"wrong request id", eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.RequestID = "AAAAAAAAAAAAAAAAAAAAAA"
		}, "another login request"},
		// Consent evidence: an approval signed for another recipient or
		// purpose than the request shows (a consent for client A replayed
		// for client B, a purpose swapped after display) is refused.
		{"approval for another client", eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.ClientID = "other-agency"
		}, "another recipient"},
		{"approval without a recipient", eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.ClientID = ""
		}, "another recipient"},
		{"approval for another purpose", eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.Purpose = "marketing"
		}, "another purpose"},
		{"claim not requested", eid.DecisionApprove, []string{"name", "address"}, nil, `"address" that was not requested`},
		{"required claim missing", eid.DecisionApprove, []string{"phone_number"}, nil, `required claim "name"`},
		{"claim repeated", eid.DecisionApprove, []string{"name", "name"}, nil, "twice"},
		{"unknown decision", "maybe", []string{"name"}, nil, "decision must be"},
		{"wrong audience", eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.Audience = jwt.ClaimStrings{"https://other.test"}
		}, "audience"},
		{"device token as approval", eid.DecisionApprove, []string{"name"}, func(h map[string]any, _ *eid.ApprovalClaims) {
			h["typ"] = eid.TypeDeviceToken
		}, "typ"},
		{"kid of another device", eid.DecisionApprove, []string{"name"}, func(h map[string]any, c *eid.ApprovalClaims) {
			h["kid"], c.Issuer = "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA"
		}, "unknown device"},
		{"expired approval", eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.IssuedAt = jwt.NewNumericDate(c.IssuedAt.Add(-3 * time.Minute))
			c.ExpiresAt = jwt.NewNumericDate(c.ExpiresAt.Add(-3 * time.Minute))
		}, "expired"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			dev, key := f.enroll(t, idp.LevelHigh)
			r := f.newLogin(t, "")
			_, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, tt.decision, tt.claims, tt.mod))
			if !errors.Is(err, idp.ErrInvalid) || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("err = %v, want ErrInvalid about %q", err, tt.why)
			}
			if st, _, _ := f.svc.Status(ctx, r.ID); st != eid.StatusPending {
				t.Errorf("Status after refusal = %s, want pending", st)
			}
		})
	}

	t.Run("signed by another enrolled device", func(t *testing.T) {
		f := newFixture(t)
		dev, _ := f.enroll(t, idp.LevelHigh)
		_, otherKey := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		_, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, otherKey, r, eid.DecisionApprove, []string{"name"}, nil))
		if !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("err = %v, want ErrInvalid", err)
		}
	})

	t.Run("ephemeral store unavailable", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		f.eph.setFail(errDown)
		_, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, nil))
		if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, idp.ErrInvalid) {
			t.Errorf("Decide: err = %v, want ErrUnavailable", err)
		}
		if _, _, err := f.svc.Status(ctx, r.ID); !errors.Is(err, idp.ErrUnavailable) {
			t.Errorf("Status: err = %v, want ErrUnavailable", err)
		}
	})
}

func otherMatch(m string) string {
	if m == "00" {
		return "01"
	}
	return "00"
}

// TestService_MatchChoices: three distinct two-digit numbers, the request's
// among them exactly once, stored with the request so every fetch shows the
// same three, in an order that does not give the right one away.
func TestService_MatchChoices(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	two := regexp.MustCompile(`^[0-9]{2}$`)
	var at [3]int
	decoys := map[string]bool{}
	const n = 600
	for range n {
		r := f.newLogin(t, "")
		v := f.svc.AppView(r)
		if len(v.MatchChoices) != 3 {
			t.Fatalf("choices = %v, want 3", v.MatchChoices)
		}
		right := 0
		for i, c := range v.MatchChoices {
			if !two.MatchString(c) || slices.Index(v.MatchChoices, c) != i {
				t.Fatalf("choices = %v: not three distinct two-digit numbers", v.MatchChoices)
			}
			if c == r.MatchNumber {
				right++
				at[i]++
			} else {
				decoys[c] = true
			}
		}
		if right != 1 {
			t.Fatalf("choices %v hold the match number %s %d times", v.MatchChoices, r.MatchNumber, right)
		}
		got, err := f.svc.Login(ctx, r.ID)
		if err != nil || !slices.Equal(f.svc.AppView(got).MatchChoices, v.MatchChoices) {
			t.Fatalf("choices fetched again = %v, %v; first %v", got.MatchChoices, err, v.MatchChoices)
		}
	}
	// Each place holds the right number a third of the time (200 of 600;
	// below 140 has odds under 1e-6).
	for i, c := range at {
		if c < 140 {
			t.Errorf("the right number was in place %d %d times in %d: %v", i, c, n, at)
		}
	}
	if len(decoys) < 95 {
		t.Errorf("only %d distinct decoys in %d requests: the decoys are predictable", len(decoys), n)
	}
}

// TestService_Decide_WrongPick: an app that was never told the number and
// picks another one ends the login: denied, reason wrong_match, and no
// second answer is taken (not even the right number).
func TestService_Decide_WrongPick(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []string{"", eid.ModeCrossDevice, eid.ModeSameDevice} {
		t.Run("mode "+mode, func(t *testing.T) {
			f := newFixture(t)
			dev, key := f.enroll(t, idp.LevelHigh)
			r := f.newLogin(t, "")
			wrong := ""
			for _, c := range f.svc.AppView(r).MatchChoices {
				if c != r.MatchNumber {
					wrong = c
				}
			}
			d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
				c.MatchNumber, c.Mode = wrong, mode
			}))
			if err != nil || d.Approved || d.Reason != eid.ReasonWrongMatch || d.ReturnCode != "" {
				t.Fatalf("Decide = %+v, %v; want a wrong_match denial", d, err)
			}
			if st, sd, _ := f.svc.Status(ctx, r.ID); st != eid.StatusDenied || sd.Reason != eid.ReasonWrongMatch {
				t.Errorf("Status = %s, %+v", st, sd)
			}
			_, err = f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
				c.Mode = mode
			}))
			if !errors.Is(err, idp.ErrConflict) {
				t.Errorf("retry with the right number: err = %v, want ErrConflict", err)
			}
			if _, gd, err := f.svc.TakeDecision(ctx, r.ID); err != nil || gd.Approved || gd.Reason != eid.ReasonWrongMatch {
				t.Errorf("TakeDecision = %+v, %v", gd, err)
			}
		})
	}

	t.Run("no pick across devices", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.MatchNumber = ""
		}))
		if err != nil || d.Approved || d.Reason != eid.ReasonWrongMatch {
			t.Errorf("Decide = %+v, %v; want a wrong_match denial", d, err)
		}
	})

	t.Run("a deny needs no pick", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		r := f.newLogin(t, "")
		d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionDeny, nil, func(_ map[string]any, c *eid.ApprovalClaims) {
			c.MatchNumber = ""
		}))
		if err != nil || d.Approved || d.Reason != "" {
			t.Errorf("Decide = %+v, %v; want a plain denial", d, err)
		}
	})

	t.Run("blind picks win a third of the time", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		won := 0
		const n = 300
		for range n {
			r := f.newLogin(t, "")
			blind := f.svc.AppView(r).MatchChoices[0] // all an app knows
			d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
				c.MatchNumber = blind
			}))
			if err != nil {
				t.Fatal(err)
			}
			if d.Approved {
				won++
			}
		}
		if won < 60 || won > 140 { // 100 expected; outside has odds under 1e-6
			t.Errorf("a blind pick won %d of %d logins, want about a third", won, n)
		}
	})
}

// TestService_Decide_SameDevice: an approval made on the phone that shows
// the login page needs no pick and returns a one-time code, kept hashed.
func TestService_Decide_SameDevice(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelHigh)
	r := f.newLogin(t, "")
	d, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
		c.MatchNumber, c.Mode = "", eid.ModeSameDevice
	}))
	if err != nil || !d.Approved || d.Mode != eid.ModeSameDevice || len(d.ReturnCode) != 22 || !d.NeedsReturnCode() {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
	_, sd, err := f.svc.Status(ctx, r.ID)
	if err != nil || sd.ReturnCode != "" || !sd.NeedsReturnCode() {
		t.Fatalf("stored decision = %+v, %v: the code must be kept hashed only", sd, err)
	}
	if !sd.ReturnCodeMatches(d.ReturnCode) {
		t.Error("the return code does not match its stored decision")
	}
	for _, bad := range []string{"", d.ReturnCode + "x", d.ReturnCode[:21], strings.ToUpper(d.ReturnCode)} {
		if bad != d.ReturnCode && sd.ReturnCodeMatches(bad) {
			t.Errorf("ReturnCodeMatches(%q) = true", bad)
		}
	}
	// Bound to its request: another request's decision refuses the code.
	r2 := f.newLogin(t, "")
	if _, err := f.svc.Decide(ctx, r2.ID, dev, f.approval(t, dev, key, r2, eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
		c.MatchNumber, c.Mode = "", eid.ModeSameDevice
	})); err != nil {
		t.Fatal(err)
	}
	if _, sd2, _ := f.svc.Status(ctx, r2.ID); sd2.ReturnCodeMatches(d.ReturnCode) {
		t.Error("request 1's return code matches request 2")
	}
	// Across devices no code is issued nor needed.
	r3 := f.newLogin(t, "")
	d3, err := f.svc.Decide(ctx, r3.ID, dev, f.approval(t, dev, key, r3, eid.DecisionApprove, []string{"name"}, nil))
	if err != nil || !d3.Approved || d3.Mode != eid.ModeCrossDevice || d3.ReturnCode != "" || d3.NeedsReturnCode() || d3.ReturnCodeMatches("") {
		t.Errorf("cross-device Decide = %+v, %v", d3, err)
	}
}

// TestPayloadMode: the form of what opened the app sets its mode; the
// same-device payload parses like the QR payload and takes no other mode.
func TestPayloadMode(t *testing.T) {
	id := "AbCdEfGhIjKlMnOpQrStU_"
	iss := "https://id.onedoor.test"
	for p, want := range map[string]string{
		eid.Payload(iss, id):           eid.ModeCrossDevice,
		eid.AppLink(iss, id):           eid.ModeSameDevice,
		eid.SameDevicePayload(iss, id): eid.ModeSameDevice,
	} {
		if gi, gid, err := eid.ParsePayload(p); err != nil || gi != iss || gid != id {
			t.Errorf("ParsePayload(%q) = %q, %q, %v", p, gi, gid, err)
		}
		if got := eid.PayloadMode(p); got != want {
			t.Errorf("PayloadMode(%q) = %s, want %s", p, got, want)
		}
	}
	for _, b := range []string{
		eid.Payload(iss, id) + "&mode=cross_device",
		eid.Payload(iss, id) + "&mode=none",
		eid.SameDevicePayload(iss, id) + "&mode=" + eid.ModeSameDevice,
	} {
		if _, _, err := eid.ParsePayload(b); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("ParsePayload(%q): err = %v, want ErrInvalid", b, err)
		}
	}
}

func TestPayload(t *testing.T) {
	id := "AbCdEfGhIjKlMnOpQrStU_"
	p := eid.Payload("https://id.onedoor.test/base?", id)
	if want := "onedoor-eid://login?request=" + id + "&issuer=https%3A%2F%2Fid.onedoor.test%2Fbase%3F"; p != want {
		t.Errorf("Payload = %s, want %s", p, want)
	}
	p = eid.Payload("http://127.0.0.1:8080", id)
	iss, rid, err := eid.ParsePayload(p)
	if err != nil || iss != "http://127.0.0.1:8080" || rid != id {
		t.Errorf("ParsePayload = %q, %q, %v", iss, rid, err)
	}
	// Parameter order is free: url.Values.Encode puts issuer first.
	encoded := "onedoor-eid://login?" + url.Values{"request": {id}, "issuer": {"https://id.onedoor.test"}}.Encode()
	if iss, rid, err := eid.ParsePayload(encoded); err != nil || iss != "https://id.onedoor.test" || rid != id {
		t.Errorf("ParsePayload(%q) = %q, %q, %v", encoded, iss, rid, err)
	}
	bad := []string{
		"",
		"https://login?request=" + id + "&issuer=https%3A%2F%2Fa",
		"onedoor-eid://evil?request=" + id + "&issuer=https%3A%2F%2Fa",
		"onedoor-eid://login?request=short&issuer=https%3A%2F%2Fa",
		"onedoor-eid://login?request=" + id + "&issuer=javascript%3Aalert(1)",
		"onedoor-eid://login?request=" + id + "&issuer=https%3A%2F%2Fa&issuer=https%3A%2F%2Fb",
		"onedoor-eid://login?request=" + id,
		"onedoor-eid://login?request=" + id + "&issuer=https%3A%2F%2Fuser%40a",
	}
	for _, b := range bad {
		if _, _, err := eid.ParsePayload(b); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("ParsePayload(%q): err = %v, want ErrInvalid", b, err)
		}
	}
}

func TestService_Lookup(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelHigh)
	r := f.newLogin(t, "")
	if got, st, err := f.svc.Lookup(ctx, r.ID); err != nil || st != eid.StatusPending || got.ID != r.ID {
		t.Fatalf("Lookup pending = %v, %s, %v", got, st, err)
	}
	// Approved in the request's last second, looked up after it expired:
	// the browser must still be able to finish.
	f.clock.Advance(2*time.Minute - time.Second)
	var all []string
	for _, c := range r.Claims {
		all = append(all, c.Name)
	}
	if _, err := f.svc.Decide(ctx, r.ID, dev, f.approval(t, dev, key, r, eid.DecisionApprove, all, nil)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(2 * time.Second)
	got, st, err := f.svc.Lookup(ctx, r.ID)
	if err != nil || st != eid.StatusApproved || got == nil || string(got.BrowserKey) != "browser-key-hash" {
		t.Fatalf("Lookup after a last-second approval = %v, %s, %v", got, st, err)
	}
	if got, st, err := f.svc.Lookup(ctx, "unknown-id-xxxxxxxxxxx"); got != nil || st != eid.StatusExpired || err != nil {
		t.Errorf("Lookup unknown = %v, %s, %v", got, st, err)
	}
}

// TestAppLink: the https app link carries the request's public id and names
// the issuer by its own URL; ParsePayload reads it like the QR payload.
func TestAppLink(t *testing.T) {
	id := "AbCdEfGhIjKlMnOpQrStU_"
	for _, issuer := range []string{"https://id.onedoor.test", "https://id.onedoor.test/idp", "http://127.0.0.1:8080"} {
		l := eid.AppLink(issuer, id)
		if want := issuer + "/app/login?request=" + id; l != want {
			t.Errorf("AppLink = %s, want %s", l, want)
		}
		if iss, rid, err := eid.ParsePayload(l); err != nil || iss != issuer || rid != id {
			t.Errorf("ParsePayload(%q) = %q, %q, %v", l, iss, rid, err)
		}
	}
	if l := eid.AppLink("https://id.onedoor.test/", id); l != "https://id.onedoor.test/app/login?request="+id {
		t.Errorf("AppLink with a trailing slash = %s", l)
	}
	for _, b := range []string{
		"https://id.onedoor.test/app/login",
		"https://id.onedoor.test/app/login?request=short",
		"https://id.onedoor.test/app/login?request=" + id + "&request=" + id,
		"https://id.onedoor.test/app/login?request=" + id + "&issuer=https%3A%2F%2Fevil.example",
		"https://id.onedoor.test/app/login?request=" + id + "#x",
		"https://user@id.onedoor.test/app/login?request=" + id,
		"https://id.onedoor.test/app/logout?request=" + id,
		"https://id.onedoor.test/app/login/x?request=" + id,
		"https:///app/login?request=" + id,
		"ftp://id.onedoor.test/app/login?request=" + id,
	} {
		if _, _, err := eid.ParsePayload(b); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("ParsePayload(%q): err = %v, want ErrInvalid", b, err)
		}
	}
}
