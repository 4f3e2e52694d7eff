package sqlstore_test

import (
	"database/sql"
	"testing"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// backends opens a fresh database on each engine.
var backends = []struct {
	name string
	open func(t testing.TB) (*sql.DB, sqldb.Dialect)
}{
	{"sqlite", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.SQLite(t), sqldb.SQLite }},
	{"postgres", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.Postgres(t), sqldb.PostgreSQL }},
}

func migrated(t testing.TB, db *sql.DB, d sqldb.Dialect) *sqlstore.Store {
	t.Helper()
	s := sqlstore.New(db, d)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t testing.TB, opener func(t testing.TB) (*sql.DB, sqldb.Dialect)) *sqlstore.Store {
	t.Helper()
	db, d := opener(t)
	return migrated(t, db, d)
}

func TestStore_Conformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			consenttest.Run(t, func(t *testing.T) consent.Store { return open(t, b.open) })
		})
	}
}

func TestStore_MigrateTwice(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.open)
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
		})
	}
}

// TestStore_TwoPools appends from two *sql.DB pools on one PostgreSQL
// schema, as two replicas would.
func TestStore_TwoPools(t *testing.T) {
	consenttest.RunTwoPools(t, func(t *testing.T) (consent.Store, consent.Store) {
		dsn := dbtest.SchemaDSN(t)
		var stores []consent.Store
		for range 2 {
			db, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			stores = append(stores, migrated(t, db, sqldb.PostgreSQL))
		}
		return stores[0], stores[1]
	})
}

func TestStore_Audit(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			consenttest.RunAudit(t, func(t *testing.T) consenttest.AuditStores { return open(t, b.open) })
		})
	}
}

// TestStore_AuditTwoPools runs a checkpointer and writers on each of two
// pools on one PostgreSQL schema, as two replicas would.
func TestStore_AuditTwoPools(t *testing.T) {
	consenttest.RunAuditTwoPools(t, func(t *testing.T) (consenttest.AuditStores, consenttest.AuditStores) {
		dsn := dbtest.SchemaDSN(t)
		var stores []*sqlstore.Store
		for range 2 {
			db, err := postgres.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			stores = append(stores, migrated(t, db, sqldb.PostgreSQL))
		}
		return stores[0], stores[1]
	})
}

func TestStore_Service(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			consenttest.RunService(t, func(t *testing.T) consent.Store { return open(t, b.open) })
		})
	}
}
