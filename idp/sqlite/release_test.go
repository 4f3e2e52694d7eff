package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/idptest"
	"github.com/onedoor/onedoor/idp/sqlite"
)

func TestReleasePolicy(t *testing.T) {
	idptest.RunReleasePolicyTests(t, func(t *testing.T) idp.Store { return open(t) },
		func(s idp.Store) idp.ReleasePolicy { return &idp.GrantPolicy{Clients: s, Grants: s} })
}

func TestMigration0005(t *testing.T) {
	init, err := os.ReadFile(filepath.Join("..", "sqlstore", "migrations", "sqlite", "0001_init.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	idptest.RunMigration0005Tests(t, db, string(init), func() idptest.Migrator { return sqlite.New(db) })
}
