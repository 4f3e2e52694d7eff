package sqlstore_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push/pushtest"
	"github.com/onedoor/onedoor/push/sqlstore"
)

var backends = []struct {
	name string
	open func(t testing.TB) (*sql.DB, sqldb.Dialect)
}{
	{"sqlite", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.SQLite(t), sqldb.SQLite }},
	{"postgres", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.Postgres(t), sqldb.PostgreSQL }},
}

func open(t testing.TB, b func(t testing.TB) (*sql.DB, sqldb.Dialect), opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	db, d := b(t)
	s := sqlstore.New(db, d, opts...)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			pushtest.Run(t, func(t *testing.T, now func() time.Time) pushtest.Store {
				return open(t, b.open, sqlstore.WithNow(now))
			})
		})
	}
}

func TestMigrateTwiceAndCheck(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.open)
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			if err := s.CheckSchema(t.Context()); err != nil {
				t.Fatalf("CheckSchema: %v", err)
			}
		})
	}
}
