package sqlstore_test

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/represent"
	"github.com/onedoor/onedoor/represent/representtest"
	"github.com/onedoor/onedoor/represent/sqlstore"
)

var backends = []struct {
	name string
	open func(t testing.TB) (*sql.DB, sqldb.Dialect)
}{
	{"sqlite", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.SQLite(t), sqldb.SQLite }},
	{"postgres", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.Postgres(t), sqldb.PostgreSQL }},
}

func open(t testing.TB, db *sql.DB, d sqldb.Dialect, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s := sqlstore.New(db, d, opts...)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			representtest.Run(t, func(t *testing.T) represent.Store {
				db, d := b.open(t)
				return open(t, db, d)
			})
		})
	}
}

func TestMigrateTwiceAndCheck(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, d := b.open(t)
			s := open(t, db, d)
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			if err := s.CheckSchema(t.Context()); err != nil {
				t.Fatalf("CheckSchema: %v", err)
			}
		})
	}
}

// TestOutage: a closed database is ErrUnavailable, never a driver error.
func TestOutage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, d := b.open(t)
			s := open(t, db, d)
			db.Close()
			if _, err := s.GetOrganisation(t.Context(), "0100000001"); !isUnavailable(err) {
				t.Errorf("GetOrganisation on a closed pool: %v", err)
			}
			if _, err := s.RevokeMandate(t.Context(), "mdt_1", "sub-a", representtestNow()); !isUnavailable(err) {
				t.Errorf("RevokeMandate on a closed pool: %v", err)
			}
		})
	}
}

func isUnavailable(err error) bool { return errors.Is(err, represent.ErrUnavailable) }

func representtestNow() time.Time { return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) }
