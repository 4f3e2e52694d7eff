package accesstoken

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// The cache verifies a signature once, still refuses a token for another
// audience or kind, sees a revocation within recheck, and drops expired
// tokens.
func TestCache(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := NewCache(f.v, time.Second, 100)
	tok, err := f.iss.Sign(ctx, f.claims())
	if err != nil {
		t.Fatal(err)
	}
	want := Expect{userinfo, KindCitizen}
	if _, err := c.VerifyFor(ctx, tok, want); err != nil {
		t.Fatal(err)
	}
	f.deny.reads = nil
	if _, err := c.VerifyFor(ctx, tok, want); err != nil || len(f.deny.reads) != 0 {
		t.Fatalf("cached: %v, %d deny-list reads", err, len(f.deny.reads))
	}
	if _, err := c.VerifyFor(ctx, tok, Expect{"https://other.example", KindCitizen}); !errors.Is(err, ErrInvalid) {
		t.Errorf("another audience: %v", err)
	}
	if _, err := c.VerifyFor(ctx, tok, Expect{userinfo, KindClient}); !errors.Is(err, ErrInvalid) {
		t.Errorf("another kind: %v", err)
	}
	if _, err := c.VerifyFor(ctx, "garbage", want); !errors.Is(err, ErrInvalid) {
		t.Errorf("garbage: %v", err)
	}

	// A revocation shows once recheck has passed; an outage is an outage.
	if err := f.deny.Revoke(ctx, GrantKey("grant-1"), f.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.deny.down = true
	f.now = f.now.Add(time.Second)
	if _, err := c.VerifyFor(ctx, tok, want); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("deny list down: %v, want ErrUnavailable", err)
	}
	f.deny.down = false
	if _, err := c.VerifyFor(ctx, tok, want); !errors.Is(err, ErrInvalid) {
		t.Errorf("revoked: %v, want ErrInvalid", err)
	}

	// Expiry (with the verifier's skew) ends a cached token.
	c2 := NewCache(f.v, time.Hour, 100)
	cl := f.claims()
	cl.GrantID = "grant-2"
	cl.SetExpiry(f.now.Add(time.Minute))
	tok2, _ := f.iss.Sign(ctx, cl)
	if _, err := c2.VerifyFor(ctx, tok2, want); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(2 * time.Minute)
	if _, err := c2.VerifyFor(ctx, tok2, want); !errors.Is(err, ErrInvalid) {
		t.Errorf("expired: %v", err)
	}
}

// Known names only tokens the cache verified and that have not expired.
func TestCache_Known(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := NewCache(f.v, time.Second, 100)
	cl := f.claims()
	cl.SetExpiry(f.now.Add(time.Minute))
	tok, err := f.iss.Sign(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if c.Known(tok) {
		t.Error("a token never verified is known")
	}
	if _, err := c.VerifyFor(ctx, tok, Expect{userinfo, KindCitizen}); err != nil {
		t.Fatal(err)
	}
	if !c.Known(tok) || c.Known(tok+"x") || c.Known("garbage") {
		t.Error("Known after verification: want the verified token alone")
	}
	f.now = f.now.Add(time.Hour)
	if c.Known(tok) {
		t.Error("an expired token is known")
	}
}
