package idptest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// RunRevocationTests runs the idp.RevocationStore suite (the durable deny
// list of access tokens). newStore returns a fresh, migrated store whose
// clock is the real one.
func RunRevocationTests(t *testing.T, newStore func(t *testing.T) idp.RevocationStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s idp.RevocationStore)
	}{
		{"RevokedUntilEnd", testRevokedUntilEnd},
		{"Idempotent", testRevokeIdempotent},
		{"LaterUntilWins", testRevokeLaterWins},
		{"AnyRevokedSeveralKeys", testAnyRevokedSeveral},
		{"OpaqueKeys", testRevokeOpaqueKeys},
		{"ConcurrentRevokeLaterWins", testRevokeConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			withTimeout(subtestTimeout, func() { tt.run(t, s) })
		})
	}
}

func mustRevoked(t *testing.T, s idp.RevocationStore, want bool, keys ...string) {
	t.Helper()
	got, err := s.AnyRevoked(context.Background(), keys...)
	mustNil(t, err, fmt.Sprintf("AnyRevoked(%q)", keys))
	if got != want {
		t.Errorf("AnyRevoked(%q) = %v, want %v", keys, got, want)
	}
}

func testRevokedUntilEnd(t *testing.T, s idp.RevocationStore) {
	ctx := context.Background()
	now := time.Now()
	mustRevoked(t, s, false, "grant:never")
	mustNil(t, s.Revoke(ctx, "grant:live", now.Add(time.Hour)), "revoke")
	mustRevoked(t, s, true, "grant:live")
	// A denial that has already ended denies nothing.
	mustNil(t, s.Revoke(ctx, "grant:ended", now.Add(-time.Second)), "revoke in the past")
	mustRevoked(t, s, false, "grant:ended")
}

func testRevokeIdempotent(t *testing.T, s idp.RevocationStore) {
	ctx := context.Background()
	until := time.Now().Add(time.Hour)
	for i := range 3 {
		mustNil(t, s.Revoke(ctx, "token:a", until), fmt.Sprintf("revoke #%d", i+1))
	}
	mustRevoked(t, s, true, "token:a")
}

func testRevokeLaterWins(t *testing.T, s idp.RevocationStore) {
	ctx := context.Background()
	now := time.Now()
	// A later, shorter denial (a single token of a revoked grant, say) must
	// not shorten the earlier, longer one.
	mustNil(t, s.Revoke(ctx, "grant:g", now.Add(time.Hour)), "long denial")
	mustNil(t, s.Revoke(ctx, "grant:g", now.Add(-time.Minute)), "shorter denial")
	mustRevoked(t, s, true, "grant:g")
	// And a longer one extends a shorter one.
	mustNil(t, s.Revoke(ctx, "device:d", now.Add(-time.Minute)), "ended denial")
	mustNil(t, s.Revoke(ctx, "device:d", now.Add(time.Hour)), "longer denial")
	mustRevoked(t, s, true, "device:d")
}

func testAnyRevokedSeveral(t *testing.T, s idp.RevocationStore) {
	ctx := context.Background()
	now := time.Now()
	mustRevoked(t, s, false)
	mustRevoked(t, s, false, "grant:1", "token:1", "device:1")
	mustNil(t, s.Revoke(ctx, "device:1", now.Add(time.Hour)), "revoke device")
	mustNil(t, s.Revoke(ctx, "token:2", now.Add(-time.Second)), "ended token denial")
	mustRevoked(t, s, true, "grant:1", "token:1", "device:1")
	mustRevoked(t, s, true, "device:1")
	mustRevoked(t, s, false, "grant:1", "token:1")
	mustRevoked(t, s, false, "grant:1", "token:2", "device:2")
	mustRevoked(t, s, true, "grant:1", "token:2", "device:2", "device:1")
}

func testRevokeOpaqueKeys(t *testing.T, s idp.RevocationStore) {
	ctx := context.Background()
	key := `token:a'); DROP TABLE idp_revocations; --`
	mustNil(t, s.Revoke(ctx, key, time.Now().Add(time.Hour)), "revoke")
	mustRevoked(t, s, true, key)
	mustRevoked(t, s, false, "token:a")
}

func testRevokeConcurrent(t *testing.T, s idp.RevocationStore) {
	ctx := context.Background()
	now := time.Now()
	// One long denial races many that have already ended: whatever the
	// order, the long one stands.
	errs := runConcurrently(16, func(i int) error {
		until := now.Add(-time.Duration(i+1) * time.Second)
		if i == 7 {
			until = now.Add(time.Hour)
		}
		if err := s.Revoke(ctx, "grant:race", until); err != nil {
			return err
		}
		return s.Revoke(ctx, fmt.Sprintf("token:%d", i), now.Add(time.Hour))
	})
	for _, err := range errs {
		mustNil(t, err, "concurrent revoke")
	}
	mustRevoked(t, s, true, "grant:race")
	for i := range 16 {
		mustRevoked(t, s, true, fmt.Sprintf("token:%d", i))
	}
}
