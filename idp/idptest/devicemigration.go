package idptest

import (
	"database/sql"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// RunDeviceMigrationTests seeds a device and a live session in the schema
// before migration 0018 and checks that they survive it: the device has no
// platform, model or last use and can record one; the session still lists,
// ends and names no ephemeral store (a lock ends it in whichever it has).
// newStore returns an unmigrated store and the *sql.DB it runs on.
func RunDeviceMigrationTests(t *testing.T, newStore func(t *testing.T) (*sql.DB, StepMigrator)) {
	t.Run("DevicePlatformLastUsed", func(t *testing.T) {
		db, s := newStore(t)
		ctx := t.Context()
		mustNil(t, s.MigrateTo(ctx, 16), "migrate to 0016")
		now := time.Now().UTC().Truncate(time.Millisecond)
		_, err := db.ExecContext(ctx, `INSERT INTO idp_devices (id, citizen_id, name, public_key, level, created_at)
			VALUES ('dev-1', 'sub-1', 'Pixel', '{}', $1, $2)`, string(idp.LevelHigh), now.UnixMilli())
		mustNil(t, err, "seed device")
		_, err = db.ExecContext(ctx, `INSERT INTO idp_sso_sessions (sid, citizen_id, device_id, level, session_key, auth_time, expires_at)
			VALUES ('sid-1', 'sub-1', 'dev-1', $1, 'web:session:k', $2, $3)`, string(idp.LevelHigh), now.UnixMilli(), now.Add(time.Hour).UnixMilli())
		mustNil(t, err, "seed session")
		mustNil(t, s.Migrate(ctx), "migrate")

		st, ok := s.(interface {
			idp.Store
			idp.SessionStore
		})
		if !ok {
			t.Fatal("the store keeps no sessions")
		}
		got, err := st.GetDevice(ctx, "dev-1")
		mustNil(t, err, "device after migration")
		equal(t, got, &idp.Device{ID: "dev-1", CitizenID: "sub-1", Name: "Pixel", PublicKey: "{}", Level: idp.LevelHigh, CreatedAt: now},
			"device after migration")
		wrote, err := st.TouchDevice(ctx, "dev-1", now.Add(time.Minute), time.Minute)
		mustNil(t, err, "touch migrated device")
		if !wrote {
			t.Error("a migrated device never used records no use")
		}
		ss, err := st.ListSessions(ctx, "sub-1", now)
		mustNil(t, err, "sessions after migration")
		if len(ss) != 1 || ss[0].Key != "web:session:k" || ss[0].Ephemeral != "" {
			t.Fatalf("sessions after migration: %+v", ss)
		}
		ended, err := st.EndSessions(ctx, idp.SessionFilter{CitizenID: "sub-1"}, now)
		mustNil(t, err, "end migrated session")
		if len(ended) != 1 {
			t.Errorf("ended %d migrated sessions, want 1", len(ended))
		}
	})
}
