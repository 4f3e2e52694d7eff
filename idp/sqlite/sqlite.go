// Package sqlite opens the embedded-mode database: one SQLite file holding
// both the durable and the ephemeral store.
package sqlite

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onedoor/onedoor/idp/sqlstore"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating if needed) the SQLite database file at path in WAL
// mode with synchronous=NORMAL: a crash of the process loses nothing and
// the file never corrupts, but a power loss may drop the last commits. That
// is the embedded default's trade; deployments that need more use PostgreSQL.
// In-memory databases are not supported: every pooled connection would see
// its own.
func Open(path string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)")
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// WAL lets readers run beside the one writer; writers queue on
	// busy_timeout, so a few connections are enough.
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return db, nil
}

// New returns the store over db. Call Migrate before use.
func New(db *sql.DB, opts ...sqlstore.Option) *sqlstore.Store {
	return sqlstore.New(db, sqlstore.SQLite, opts...)
}
