package idptest

import (
	"context"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// Migrator is a durable store that applies its own schema.
type Migrator interface {
	idp.Store
	Migrate(ctx context.Context) error
}

// RunMigrationTests checks Migrate is idempotent, keeps existing rows and is
// safe to run from two processes at once. newPair returns two stores over
// separate connection pools to one fresh, unmigrated database.
func RunMigrationTests(t *testing.T, newPair func(t *testing.T) (a, b Migrator)) {
	t.Run("RerunKeepsRows", func(t *testing.T) {
		a, b := newPair(t)
		withTimeout(subtestTimeout, func() { testMigrateRerun(t, a, b) })
	})
	t.Run("Concurrent", func(t *testing.T) {
		a, b := newPair(t)
		withTimeout(subtestTimeout, func() { testMigrateConcurrent(t, a, b) })
	})
}

func testMigrateRerun(t *testing.T, a, b Migrator) {
	ctx := t.Context()
	mustNil(t, a.Migrate(ctx), "migrate")
	mustNil(t, a.Migrate(ctx), "migrate again")
	_, err := a.GetClient(ctx, idp.EIDAppClientID)
	mustNil(t, err, "get eID app client")

	c := citizen(1)
	mustNil(t, a.CreateCitizens(ctx, []*idp.Citizen{c}), "seed citizen")
	// Deleting the seeded client shows whether a re-run repeats the seed.
	mustNil(t, a.DeleteClient(ctx, idp.EIDAppClientID), "delete eID app client")

	mustNil(t, b.Migrate(ctx), "migrate from a second process")
	got, err := b.GetCitizen(ctx, c.ID)
	mustNil(t, err, "get seeded citizen after re-run")
	equal(t, got, c, "seeded citizen after re-run")
	_, err = b.GetClient(ctx, idp.EIDAppClientID)
	mustBe(t, err, idp.ErrNotFound, "eID app client after re-run (was the migration applied twice?)")
}

func testMigrateConcurrent(t *testing.T, a, b Migrator) {
	ctx := t.Context()
	errs := runConcurrently(4, func(i int) error {
		if i%2 == 0 {
			return a.Migrate(ctx)
		}
		return b.Migrate(ctx)
	})
	for _, err := range errs {
		mustNil(t, err, "concurrent migrate")
	}
	cs, err := a.ListClients(ctx)
	mustNil(t, err, "list clients")
	n := 0
	for _, c := range cs {
		if c.ID == idp.EIDAppClientID {
			n++
		}
	}
	if n != 1 {
		t.Errorf("after concurrent Migrate: %d eID app clients, want 1", n)
	}
}

// Collector is a SQL-backed store that also holds the ephemeral entries and
// garbage-collects them.
type Collector interface {
	idp.Store
	idp.Ephemeral
	GarbageCollect(ctx context.Context, now time.Time) (ephemeralDeleted int64, err error)
}

// RunGarbageCollectTests checks GarbageCollect removes expired ephemeral
// entries, refresh tokens and revocations, and nothing else. newStore returns a fresh,
// migrated store.
func RunGarbageCollectTests(t *testing.T, newStore func(t *testing.T) Collector) {
	t.Run("GarbageCollect", func(t *testing.T) {
		s := newStore(t)
		t.Cleanup(func() { s.Close() })
		ctx := t.Context()
		mustNil(t, s.Set(ctx, "short", []byte("v"), time.Millisecond), "set short")
		mustNil(t, s.Set(ctx, "long", []byte("v"), longTTL), "set long")
		expired, live := refreshToken("expired", "q1"), refreshToken("live", "q2")
		now := time.Now()
		expired.ExpiresAt, live.ExpiresAt = now.Add(-time.Hour), now.Add(time.Hour)
		mustNil(t, s.CreateRefreshToken(ctx, expired), "create expired refresh token")
		mustNil(t, s.CreateRefreshToken(ctx, live), "create live refresh token")

		mustNil(t, s.Revoke(ctx, "grant:ending", now.Add(30*time.Second)), "revoke until before the collection")
		mustNil(t, s.Revoke(ctx, "grant:kept", now.Add(time.Hour)), "revoke until after the collection")

		n, err := s.GarbageCollect(ctx, now.Add(time.Minute))
		mustNil(t, err, "garbage collect")
		// The ended denial's row is gone (the real clock has not reached its
		// end yet, so only a deleted row reads as not revoked).
		mustRevoked(t, s, false, "grant:ending")
		mustRevoked(t, s, true, "grant:kept")
		if n != 1 {
			t.Errorf("GarbageCollect: got %d ephemeral entries deleted, want 1", n)
		}
		mustGet(t, s, "long", []byte("v"))
		_, err = s.GetRefreshToken(ctx, expired.Signature)
		mustBe(t, err, idp.ErrNotFound, "get collected refresh token")
		_, err = s.GetRefreshToken(ctx, live.Signature)
		mustNil(t, err, "get live refresh token")
	})
}
