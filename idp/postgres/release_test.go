package postgres_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/onedoor/onedoor/consent"
	consentsql "github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/idptest"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// consentBeside opens the consent store in db, as cmd/onedoor does.
func consentBeside(t *testing.T, db *sql.DB, s idp.Store) *consent.Service {
	t.Helper()
	cs := consentsql.New(db, sqldb.PostgreSQL)
	if err := cs.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return idptest.ConsentService(t, s, cs)
}

func TestReleasePolicy(t *testing.T) {
	dsn(t)
	idptest.RunReleasePolicyTests(t, func(t *testing.T) (idp.Store, *consent.Service) {
		db := openDB(t, schemaDSN(t))
		s := postgres.New(db)
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		return s, consentBeside(t, db, s)
	})
}

func TestMoveGrants(t *testing.T) {
	dsn(t)
	db := openDB(t, schemaDSN(t))
	idptest.RunMoveGrantsTests(t, db, func() idptest.Migrator { return postgres.New(db) },
		func(t *testing.T, s idp.Store) *consent.Service { return consentBeside(t, db, s) })
}

func TestMigration0005(t *testing.T) {
	init, err := os.ReadFile(filepath.Join("..", "sqlstore", "migrations", "postgres", "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, schemaDSN(t))
	idptest.RunMigration0005Tests(t, db, string(init), func() idptest.Migrator { return postgres.New(db) })
}
