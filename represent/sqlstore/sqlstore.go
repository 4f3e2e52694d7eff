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
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

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

var repErrs = []error{represent.ErrNotFound, represent.ErrConflict, represent.ErrInvalid, represent.ErrUnavailable}

// dbErr translates a database error into represent's sentinels. sqldb's
// helpers speak idp's sentinels, so their errors are recognised by the
// driver error they wrap, never by idp's. One already carrying a
// represent sentinel passes through.
func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	for _, e := range repErrs {
		if errors.Is(err, e) {
			return err
		}
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, represent.ErrNotFound)
	case sqldb.IsUniqueViolation(err):
		return fmt.Errorf("%s: %v: %w", op, err, represent.ErrConflict)
	case sqldb.IsOutage(err):
		return fmt.Errorf("%s: %w: %w", op, represent.ErrUnavailable, err)
	case isBadText(err):
		return fmt.Errorf("%s: %v: %w", op, err, represent.ErrInvalid)
	}
	if strings.HasPrefix(err.Error(), op+":") {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isBadText(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		switch pg.SQLState() {
		case "22021", "22P05", "22P02":
			return true
		}
	}
	return false
}

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
	if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
		return invalid(op, field+" must be UTF-8 text without NUL")
	}
	if len(v) > limit {
		return invalid(op, field+" is too long")
	}
	return nil
}

func checkID(op, field, v string) error {
	if v == "" {
		return invalid(op, field+" is required")
	}
	return checkText(op, field, v, maxID)
}

func encodeList(items []string) string {
	if items == nil {
		items = []string{}
	}
	b, _ := json.Marshal(items) // strings only: cannot fail
	return string(b)
}

func decodeList(op, s string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("%s: decode list column: %w", op, err)
	}
	if len(out) == 0 {
		return nil, nil
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
