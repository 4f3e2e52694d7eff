package sqlstore_test

import (
	"database/sql"
	"testing"

	idpsqlstore "github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi/sqlstore"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// backends opens a migrated store on each engine. The identity provider's
// and push's schemas are migrated too: the API shares its database, and
// its webhook deliveries ride on push's job queue.
var backends = []struct {
	name string
	open func(t testing.TB) (*sql.DB, sqldb.Dialect)
}{
	{"sqlite", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.SQLite(t), sqldb.SQLite }},
	{"postgres", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.Postgres(t), sqldb.PostgreSQL }},
}

func open(t testing.TB, opener func(t testing.TB) (*sql.DB, sqldb.Dialect), opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	db, d := opener(t)
	if err := idpsqlstore.New(db, d).Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	jobs := pushsql.New(db, d, pushsql.WithNow(sqlstore.New(db, d, opts...).Clock()))
	if err := jobs.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := sqlstore.New(db, d, append(opts, sqlstore.WithJobs(jobs))...)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMigrateTwice(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.open)
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
		})
	}
}
