package idptest

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
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
		time.Sleep(10 * time.Millisecond) // "short" expires by the database's clock

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

// StepMigrator is a Migrator that can stop at a schema version.
type StepMigrator interface {
	Migrator
	MigrateTo(ctx context.Context, version int) error
}

// RunRefreshFamilyMigrationTests seeds refresh tokens in the per-token
// schema of migration 0001 and checks that migration 0003 turns them into
// families without breaking a valid token: each family's unrotated token is
// current, its latest rotated token is previous (usable in its grace
// window), a revoked family stays revoked, and the approving device is read
// from the stored session. newStore returns an unmigrated store and the
// *sql.DB it runs on.
func RunRefreshFamilyMigrationTests(t *testing.T, newStore func(t *testing.T) (*sql.DB, StepMigrator)) {
	t.Run("RefreshFamilies", func(t *testing.T) {
		db, s := newStore(t)
		ctx := t.Context()
		mustNil(t, s.MigrateTo(ctx, 2), "migrate to 0002")
		now := time.Now().UTC().Truncate(time.Millisecond)
		msAt := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
		req := []byte(`{"id":"q1","client_id":"client-a","session":{"subject":"sub-1","device_id":"phone-1"}}`)
		rows := []struct {
			sig, q  string
			active  bool
			rotated any
			created int64
			request []byte
		}{
			{"t1", "q1", true, msAt(-time.Hour), msAt(-2 * time.Hour), req},
			{"t2", "q1", true, msAt(-10 * time.Second), msAt(-time.Hour), req},
			{"t3", "q1", true, nil, msAt(-10 * time.Second), req},
			{"u1", "q2", true, nil, msAt(-time.Minute), []byte(`{"id":"q2"}`)},
			{"v1", "q3", false, msAt(-time.Minute), msAt(-2 * time.Minute), []byte(`{}`)},
			{"v2", "q3", false, nil, msAt(-time.Minute), []byte(`{}`)},
		}
		for _, r := range rows {
			_, err := db.ExecContext(ctx, `INSERT INTO idp_refresh_tokens (signature, request_id, client_id, subject,
				active, rotated_at, expires_at, created_at, request) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				r.sig, r.q, "client-a", "sub-1", r.active, r.rotated, msAt(30*24*time.Hour), r.created, r.request)
			mustNil(t, err, "seed "+r.sig)
		}
		mustNil(t, s.Migrate(ctx), "migrate")

		got, err := s.GetRefreshToken(ctx, "t3")
		mustNil(t, err, "current token after migration")
		equal(t, got, &idp.RefreshToken{Signature: "t3", PreviousSignature: "t2", RequestID: "q1", ClientID: "client-a",
			Subject: "sub-1", DeviceID: "phone-1", Active: true, RotatedAt: ptr(now.Add(-10 * time.Second)),
			ExpiresAt: now.Add(30 * 24 * time.Hour), CreatedAt: now.Add(-10 * time.Second), Request: req}, "family q1")
		got, err = s.GetRefreshToken(ctx, "t2")
		mustNil(t, err, "previous token after migration")
		equal(t, got.Signature, "t3", "family of the previous token")
		_, err = s.GetRefreshToken(ctx, "t1")
		mustBe(t, err, idp.ErrNotFound, "an older rotated token")
		got, err = s.GetRefreshToken(ctx, "u1")
		mustNil(t, err, "single-token family")
		equal(t, []any{got.Active, got.PreviousSignature, got.RotatedAt == nil, got.DeviceID}, []any{true, "", true, ""}, "family q2")
		got, err = s.GetRefreshToken(ctx, "v2")
		mustNil(t, err, "revoked family")
		equal(t, []any{got.Active, got.PreviousSignature}, []any{false, "v1"}, "family q3")
		// The migrated family rotates like a new one.
		mustNil(t, s.RotateRefreshToken(ctx, &idp.RefreshRotation{RequestID: "q1", Redeemed: "t3", Signature: "t4",
			At: now, GraceFrom: now.Add(-30 * time.Second), ExpiresAt: now.Add(time.Hour), Request: req}), "rotate migrated family")
	})
}

// RunEphemeralClockTests checks that ephemeral expiry follows the database's
// clock: newPair returns two stores on one fresh database whose own clocks
// are skewed by skewA and skewB, as two replicas' clocks may be.
func RunEphemeralClockTests(t *testing.T, newPair func(t *testing.T, skewA, skewB time.Duration) (a, b idp.Ephemeral)) {
	t.Run("ReplicaClockSkew", func(t *testing.T) {
		fast, slow := newPair(t, 30*time.Second, -30*time.Second)
		ctx := t.Context()
		// A replica 30 s ahead must not make an entry live 30 s longer for
		// one that is 30 s behind.
		mustNil(t, fast.Set(ctx, "fast", []byte("v"), shortTTL), "set on the fast replica")
		mustGet(t, slow, "fast", []byte("v"))
		// A replica 30 s behind must not create entries that have already
		// expired for one that is ahead.
		mustNil(t, slow.Set(ctx, "slow", []byte("v"), longTTL), "set on the slow replica")
		mustGet(t, fast, "slow", []byte("v"))
		mustNil(t, slow.Create(ctx, "once", []byte("v"), longTTL), "create on the slow replica")
		mustBe(t, fast.Create(ctx, "once", []byte("w"), longTTL), idp.ErrConflict, "create again on the fast replica")
		_, err := slow.Incr(ctx, "n", longTTL)
		mustNil(t, err, "incr")
		if n, err := fast.Incr(ctx, "n", longTTL); err != nil || n != 2 {
			t.Fatalf("incr on the other replica: %d, %v; want 2 (the counter expired early)", n, err)
		}
		time.Sleep(shortTTL + slack)
		_, err = slow.Get(ctx, "fast")
		mustBe(t, err, idp.ErrNotFound, "entry after its TTL, read by the slow replica")
		_, err = slow.Take(ctx, "fast")
		mustBe(t, err, idp.ErrNotFound, "take after TTL on the slow replica")
	})
}

// LockingStore is a store whose WithLock serialises callers across
// processes, with an ephemeral store to keep a counter in.
type LockingStore interface {
	idp.Ephemeral
	WithLock(ctx context.Context, name string, fn func(ctx context.Context) error) error
}

// RunLockTests checks WithLock across two stores on one database (two
// processes: an admin command and the server): read-modify-write sequences
// under the lock lose no update. newPair returns two migrated stores over
// separate connection pools to one database.
func RunLockTests(t *testing.T, newPair func(t *testing.T) (a, b LockingStore)) {
	t.Run("NoLostUpdate", func(t *testing.T) {
		a, b := newPair(t)
		ctx := t.Context()
		mustNil(t, a.Set(ctx, "counter", []byte("0"), longTTL), "set counter")
		const n = 16
		errs := runConcurrently(n, func(i int) error {
			s := a
			if i%2 == 1 {
				s = b
			}
			return s.WithLock(ctx, "counter", func(ctx context.Context) error {
				v, err := s.Get(ctx, "counter")
				if err != nil {
					return err
				}
				var c int
				if _, err := fmt.Sscan(string(v), &c); err != nil {
					return err
				}
				time.Sleep(2 * time.Millisecond) // what a key rotation does between its read and its write
				return s.Set(ctx, "counter", []byte(fmt.Sprint(c+1)), longTTL)
			})
		})
		for _, err := range errs {
			mustNil(t, err, "locked increment")
		}
		mustGet(t, a, "counter", []byte(fmt.Sprint(n)))
		// Another name is not held by the first.
		mustNil(t, a.WithLock(ctx, "outer", func(ctx context.Context) error {
			return b.WithLock(ctx, "inner", func(context.Context) error { return nil })
		}), "nested locks of different names")
	})
}

// RunSchemaNewerTests checks that a store refuses a database migrated by a
// newer binary instead of running against a schema it does not know (a
// rollback, an old replica left running during an upgrade).
func RunSchemaNewerTests(t *testing.T, newStore func(t *testing.T) (*sql.DB, StepMigrator)) {
	t.Run("SchemaNewerThanBinary", func(t *testing.T) {
		db, s := newStore(t)
		ctx := t.Context()
		mustNil(t, s.Migrate(ctx), "migrate")
		mustNil(t, s.Migrate(ctx), "migrate again")
		if _, err := db.ExecContext(ctx, `INSERT INTO idp_schema_migrations (version, name, applied_at) VALUES (9999, 'from the future', 0)`); err != nil {
			t.Fatal(err)
		}
		err := s.Migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), "newer than this binary") {
			t.Errorf("migrate a database from a newer binary: %v, want a refusal", err)
		}
	})
}
