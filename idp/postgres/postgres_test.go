package postgres_test

import (
	"database/sql"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/idptest"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/internal/dbtest"
)

// dsn and schemaDSN are the shared test helpers (internal/dbtest): the test
// database, which CI must not skip, and a fresh schema on it.
func dsn(t *testing.T) string { return dbtest.PostgresDSN(t) }

func schemaDSN(t *testing.T) string { return dbtest.SchemaDSN(t) }

// openDB opens a pool on dsn, closed before the schema is dropped.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func open(t *testing.T) *sqlstore.Store {
	t.Helper()
	s := postgres.New(openDB(t, schemaDSN(t)))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	dsn(t)
	idptest.RunStoreTests(t, func(t *testing.T) idp.Store { return open(t) })
}

func TestEphemeral(t *testing.T) {
	dsn(t)
	idptest.RunEphemeralTests(t, func(t *testing.T) idp.Ephemeral { return open(t) })
}

func TestRevocations(t *testing.T) {
	dsn(t)
	idptest.RunRevocationTests(t, func(t *testing.T) idp.RevocationStore { return open(t) })
}

func TestGarbageCollect(t *testing.T) {
	dsn(t)
	idptest.RunGarbageCollectTests(t, func(t *testing.T) idptest.Collector { return open(t) })
}

func TestMigrate(t *testing.T) {
	dsn(t)
	idptest.RunMigrationTests(t, func(t *testing.T) (a, b idptest.Migrator) {
		d := schemaDSN(t)
		return postgres.New(openDB(t, d)), postgres.New(openDB(t, d))
	})
}

func TestUnreachable(t *testing.T) {
	const dead = "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=1"
	if _, err := postgres.Open(t.Context(), dead); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Open: got %v, want %v", err, idp.ErrUnavailable)
	}
	// A pool opened without a ping fails on first use instead.
	db, err := sql.Open("pgx", dead)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := postgres.New(db)
	if _, err := s.GetClient(t.Context(), idp.EIDAppClientID); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("GetClient: got %v, want %v", err, idp.ErrUnavailable)
	}
	if err := s.Set(t.Context(), "k", []byte("v"), 1e9); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Set: got %v, want %v", err, idp.ErrUnavailable)
	}
}

func TestFositeStorage(t *testing.T) {
	dsn(t)
	idptest.RunFositeStorageTests(t, func(t *testing.T) idptest.FositeBackend {
		s := open(t)
		return idptest.FositeBackend{Store: s, Eph: s}
	})
}

func TestMigrateRefreshFamilies(t *testing.T) {
	dsn(t)
	idptest.RunRefreshFamilyMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		db := openDB(t, schemaDSN(t))
		return db, postgres.New(db)
	})
}

func TestMigrateClientAgency(t *testing.T) {
	dsn(t)
	idptest.RunClientAgencyMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		db := openDB(t, schemaDSN(t))
		return db, postgres.New(db)
	})
}

func TestMigrateDevicePlatform(t *testing.T) {
	dsn(t)
	idptest.RunDeviceMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		db := openDB(t, schemaDSN(t))
		return db, postgres.New(db)
	})
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	dsn(t)
	idptest.RunSchemaNewerTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		db := openDB(t, schemaDSN(t))
		return db, postgres.New(db)
	})
}

func TestEphemeralDatabaseClock(t *testing.T) {
	dsn(t)
	idptest.RunEphemeralClockTests(t, func(t *testing.T, skewA, skewB time.Duration) (a, b idp.Ephemeral) {
		d := schemaDSN(t)
		var out []idp.Ephemeral
		for _, skew := range []time.Duration{skewA, skewB} {
			s := postgres.New(openDB(t, d), sqlstore.WithNow(func() time.Time { return time.Now().Add(skew) }))
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out[0], out[1]
	})
}

func TestLock(t *testing.T) {
	dsn(t)
	idptest.RunLockTests(t, func(t *testing.T) (a, b idptest.LockingStore) {
		d := schemaDSN(t)
		var out []idptest.LockingStore
		for range 2 {
			s := postgres.New(openDB(t, d))
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out[0], out[1]
	})
}

func TestClientsVersion(t *testing.T) {
	dsn(t)
	idptest.RunClientVersionTests(t, func(t *testing.T) (a, b idptest.ClientVersioner) {
		d := schemaDSN(t)
		sa, sb := postgres.New(openDB(t, d)), postgres.New(openDB(t, d))
		if err := sa.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return sa, sb
	})
}

// Hand-written SQL counts as a client change too, even from a session whose
// search_path is another schema: the trigger bumps the counter of the
// changed table's schema.
func TestClientsVersion_RawSQLOtherSearchPath(t *testing.T) {
	base := dsn(t)
	d := schemaDSN(t)
	s := postgres.New(openDB(t, d))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(d)
	if err != nil || u.Query().Get("search_path") == "" {
		t.Skip("needs a URL DSN")
	}
	schema := u.Query().Get("search_path")
	other := openDB(t, base)
	v0, err := s.ClientsVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{
		`UPDATE ` + schema + `.idp_clients SET name = 'Renamed' WHERE id = 'onedoor-eid-app'`,
		`TRUNCATE ` + schema + `.idp_clients`,
	} {
		if _, err := other.ExecContext(t.Context(), q); err != nil {
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
	dsn(t)
	idptest.RunPasskeyStoreTests(t, func(t *testing.T) idp.PasskeyStore { return open(t) })
}

func TestSessions(t *testing.T) {
	dsn(t)
	idptest.RunSessionTests(t, func(t *testing.T) (a, b idptest.SessionBackend) {
		d := schemaDSN(t)
		sa, sb := postgres.New(openDB(t, d)), postgres.New(openDB(t, d))
		if err := sa.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return sa, sb
	})
}

func TestMigrateClientRegistration(t *testing.T) {
	dsn(t)
	idptest.RunRegistrationMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		db := openDB(t, schemaDSN(t))
		return db, postgres.New(db)
	})
}

func TestMigrateDeliveries(t *testing.T) {
	dsn(t)
	idptest.RunDeliveryMigrationTests(t, func(t *testing.T) (*sql.DB, idptest.StepMigrator) {
		db := openDB(t, schemaDSN(t))
		return db, postgres.New(db)
	})
}
