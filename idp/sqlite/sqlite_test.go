package sqlite_test

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/idptest"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

// open returns a migrated store on a fresh file.
func open(t *testing.T) *sqlstore.Store {
	t.Helper()
	_, s := openAt(t, filepath.Join(t.TempDir(), "sub", "idp.db"), true)
	return s
}

// openAt opens the database at path (several stores may share one file, as
// processes do), migrated or not.
func openAt(t *testing.T, path string, migrate bool, opts ...sqlstore.Option) (*sql.DB, *sqlstore.Store) {
	t.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlite.New(db, opts...)
	if migrate {
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return db, s
}

func TestStore(t *testing.T) {
	idptest.RunStoreTests(t, func(t *testing.T) idp.Store { return open(t) })
}

func TestEphemeral(t *testing.T) {
	idptest.RunEphemeralTests(t, func(t *testing.T) idp.Ephemeral { return open(t) })
}

func TestRevocations(t *testing.T) {
	idptest.RunRevocationTests(t, func(t *testing.T) idp.RevocationStore { return open(t) })
}

func TestGarbageCollect(t *testing.T) {
	idptest.RunGarbageCollectTests(t, func(t *testing.T) idptest.Collector { return open(t) })
}

func TestMigrate(t *testing.T) {
	idptest.RunMigrationTests(t, func(t *testing.T) (a, b idptest.Migrator) {
		path := filepath.Join(t.TempDir(), "idp.db")
		for _, s := range []*idptest.Migrator{&a, &b} {
			db, err := sqlite.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			*s = sqlite.New(db)
		}
		return a, b
	})
}

func TestStore_ClosedDBUnavailable(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := sqlite.New(db)
	db.Close()
	if err := s.Ping(t.Context()); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Ping on a closed db: got %v, want %v", err, idp.ErrUnavailable)
	}
	if _, err := s.GetCitizen(t.Context(), "x"); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("GetCitizen on a closed db: got %v, want %v", err, idp.ErrUnavailable)
	}
}

func TestFositeStorage(t *testing.T) {
	idptest.RunFositeStorageTests(t, func(t *testing.T) idptest.FositeBackend {
		s := open(t)
		return idptest.FositeBackend{Store: s, Eph: s}
	})
}

func TestMigrateRefreshFamilies(t *testing.T) {
	idptest.RunRefreshFamilyMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		return openAt(t, filepath.Join(t.TempDir(), "idp.db"), false)
	})
}

func TestMigrateClientAgency(t *testing.T) {
	idptest.RunClientAgencyMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		return openAt(t, filepath.Join(t.TempDir(), "idp.db"), false)
	})
}

func TestMigrateDevicePlatform(t *testing.T) {
	idptest.RunDeviceMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		return openAt(t, filepath.Join(t.TempDir(), "idp.db"), false)
	})
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	idptest.RunSchemaNewerTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		return openAt(t, filepath.Join(t.TempDir(), "idp.db"), false)
	})
}

func TestEphemeralDatabaseClock(t *testing.T) {
	idptest.RunEphemeralClockTests(t, func(t *testing.T, skewA, skewB time.Duration) (a, b idp.Ephemeral) {
		path := filepath.Join(t.TempDir(), "idp.db")
		var out []idp.Ephemeral
		for _, skew := range []time.Duration{skewA, skewB} {
			_, s := openAt(t, path, true, sqlstore.WithNow(func() time.Time { return time.Now().Add(skew) }))
			out = append(out, s)
		}
		return out[0], out[1]
	})
}

func TestLock(t *testing.T) {
	idptest.RunLockTests(t, func(t *testing.T) (a, b idptest.LockingStore) {
		path := filepath.Join(t.TempDir(), "idp.db")
		var out []idptest.LockingStore
		for range 2 {
			_, s := openAt(t, path, true)
			out = append(out, s)
		}
		return out[0], out[1]
	})
}

func TestClientsVersion(t *testing.T) {
	idptest.RunClientVersionTests(t, func(t *testing.T) (a, b idptest.ClientVersioner) {
		path := filepath.Join(t.TempDir(), "idp.db")
		for _, s := range []*idptest.ClientVersioner{&a, &b} {
			_, *s = openAt(t, path, true)
		}
		return a, b
	})
}

// An operator's hand-written SQL counts as a client change too: the trigger,
// not the store's methods, bumps the version.
func TestClientsVersion_RawSQL(t *testing.T) {
	db, s := openAt(t, filepath.Join(t.TempDir(), "idp.db"), true)
	v0, err := s.ClientsVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{
		`UPDATE idp_clients SET name = 'Renamed' WHERE id = 'onedoor-eid-app'`,
		`DELETE FROM idp_clients`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
		v, err := s.ClientsVersion(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if v == v0 {
			t.Errorf("statement %d (%s) did not change the clients version", i, q)
		}
		v0 = v
	}
}

func TestPasskeys(t *testing.T) {
	idptest.RunPasskeyStoreTests(t, func(t *testing.T) idp.PasskeyStore { return open(t) })
}

func TestSessions(t *testing.T) {
	idptest.RunSessionTests(t, func(t *testing.T) (a, b idptest.SessionBackend) {
		path := filepath.Join(t.TempDir(), "idp.db")
		_, a = openAt(t, path, true)
		_, b = openAt(t, path, false)
		return a, b
	})
}

func TestMigrateClientRegistration(t *testing.T) {
	idptest.RunRegistrationMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		return openAt(t, filepath.Join(t.TempDir(), "idp.db"), false)
	})
}

func TestMigrateDeliveries(t *testing.T) {
	idptest.RunDeliveryMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		return openAt(t, filepath.Join(t.TempDir(), "idp.db"), false)
	})
}
