// Package dbtest opens isolated test databases for the stores' conformance
// suites: a SQLite file in the test's temporary directory, or a fresh
// PostgreSQL schema on ONEDOOR_TEST_POSTGRES_DSN, dropped when the test ends.
// CI sets CI=true, and then a missing DSN fails instead of skipping.
package dbtest

import (
	"crypto/rand"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/sqlite"
)

// PostgresDSN returns the test database, skipping the test outside CI when
// none is configured.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	d := os.Getenv("ONEDOOR_TEST_POSTGRES_DSN")
	if d == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ONEDOOR_TEST_POSTGRES_DSN is not set; CI must run the PostgreSQL suites")
		}
		t.Skip("ONEDOOR_TEST_POSTGRES_DSN is not set")
	}
	return d
}

// SchemaDSN creates a fresh schema and returns a DSN whose connections use
// it; the schema is dropped when the test ends.
func SchemaDSN(t testing.TB) string {
	t.Helper()
	base := PostgresDSN(t)
	admin, err := postgres.Open(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	schema := "t_" + strings.ToLower(rand.Text())
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	if u, err := url.Parse(base); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return base + " search_path=" + schema // key=value form
}

// Postgres opens a pool on a fresh schema, closed before the schema is
// dropped.
func Postgres(t testing.TB) *sql.DB {
	t.Helper()
	dsn := SchemaDSN(t)
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// SQLite opens a new database file in the test's temporary directory.
func SQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "onedoor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
