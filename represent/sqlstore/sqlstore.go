// Package sqlstore implements represent.Store over database/sql, in the
// same database as the rest of OneDoor (SQLite by default, PostgreSQL at
// scale). It imports no driver: the caller opens the *sql.DB and names the
// dialect. Tables carry a rep_ prefix and the migrations are recorded in
// rep_schema_migrations. Times are unix milliseconds.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/represent"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Store is representation's durable store.
type Store struct {
	db  *sql.DB
	d   sqldb.Dialect
	now func() time.Time
}

var _ represent.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithNow sets the clock that stamps organisations' creation and updates.
func WithNow(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns a Store over db. Call Migrate before use.
func New(db *sql.DB, d sqldb.Dialect, opts ...Option) *Store {
	s := &Store{db: db, d: d, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

const migrationTable = "rep_schema_migrations"

// Migrate applies the migrations not yet applied.
func (s *Store) Migrate(ctx context.Context) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return fmt.Errorf("migrate representation store: %w", err)
	}
	m := sqldb.Migrator{DB: s.db, Dialect: s.d, Table: migrationTable, Now: s.now}
	if err := m.Migrate(ctx, migs, 0); err != nil {
		return dbErr("migrate representation store", err)
	}
	return nil
}

// CheckSchema reports whether the database holds exactly this binary's
// migrations, changing nothing (sqldb.Migrator.Check).
func (s *Store) CheckSchema(ctx context.Context) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return fmt.Errorf("representation store: %w", err)
	}
	return sqldb.Migrator{DB: s.db, Dialect: s.d, Table: migrationTable}.Check(ctx, migs)
}

func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// inTx runs fn in a write transaction; every error comes out as
// represent's.
func (s *Store) inTx(ctx context.Context, op string, fn func(q sqldb.Querier) error) error {
	return dbErr(op, sqldb.InTx(ctx, s.db, s.d, op, fn))
}

// repErrs are represent's sentinels, for dbErr.
var repErrs = sqldb.Sentinels{NotFound: represent.ErrNotFound, Conflict: represent.ErrConflict,
	Invalid: represent.ErrInvalid, Unavailable: represent.ErrUnavailable}

// dbErr translates a database error into represent's sentinels
// (sqldb.Sentinels.Err).
func dbErr(op string, err error) error { return repErrs.Err(op, err) }

func invalid(op, msg string) error { return fmt.Errorf("%s: %s: %w", op, msg, represent.ErrInvalid) }

const (
	maxID       = 200
	maxText     = 1000
	maxEvidence = 64 << 10
	maxTerms    = 50
)

// checkText refuses what PostgreSQL cannot store in TEXT (invalid UTF-8,
// NUL), so both engines accept and refuse the same input.
func checkText(op, field, v string, limit int) error {
	if p := sqldb.TextProblem(v, limit); p != "" {
		return invalid(op, field+" "+p)
	}
	return nil
}

func checkID(op, field, v string) error {
	if v == "" {
		return invalid(op, field+" is required")
	}
	return checkText(op, field, v, maxID)
}

// decodeList reads a list stored by sqldb.EncodeList; none is nil.
func decodeList(op, s string) ([]string, error) {
	out, err := sqldb.DecodeList(op, s)
	if len(out) == 0 {
		return nil, err
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
