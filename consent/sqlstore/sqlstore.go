// Package sqlstore implements consent.Store and consent.AuditStore over
// database/sql, in the same database as the identity provider and the
// mobile API (SQLite by default, PostgreSQL at scale). It imports no
// driver: the caller opens the *sql.DB and names the dialect. Tables carry
// a consent_ prefix and the migrations are recorded in
// consent_schema_migrations. Times are unix milliseconds.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// Store is consent's durable store.
type Store struct {
	db  *sql.DB
	d   sqldb.Dialect
	now func() time.Time
	// withdrawHook and withdrawn: see WithWithdrawHook.
	withdrawHook WithdrawHook
	withdrawn    func()
}

var (
	_ consent.Store      = (*Store)(nil)
	_ consent.AuditStore = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithNow sets the clock that stamps what the caller leaves unset.
func WithNow(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// WithdrawHook runs inside WithdrawRecord's transaction, after the record
// is marked withdrawn and its receipt kept, with that transaction's q: what
// it writes commits with the withdrawal or not at all, and its error rolls
// the withdrawal back. rec and rc are the withdrawn record and its receipt;
// it must not keep them.
type WithdrawHook func(ctx context.Context, q sqldb.Querier, rec *consent.Record, rc *consent.Receipt) error

// WithWithdrawHook sets the hook every withdrawal runs in its transaction
// (cmd/onedoor queues the recipient agency's consent.withdrawn webhook
// deliveries there), and committed, if not nil, to run after a withdrawal
// commits (to wake the webhook worker).
func WithWithdrawHook(hook WithdrawHook, committed func()) Option {
	return func(s *Store) { s.withdrawHook, s.withdrawn = hook, committed }
}

// New returns a Store over db. Call Migrate before use.
func New(db *sql.DB, d sqldb.Dialect, opts ...Option) *Store {
	s := &Store{db: db, d: d, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Migrate applies the migrations not yet applied.
func (s *Store) Migrate(ctx context.Context) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return fmt.Errorf("migrate consent store: %w", err)
	}
	m := sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "consent_schema_migrations", Now: s.now}
	if err := m.Migrate(ctx, migs, 0); err != nil {
		return dbErr("migrate consent store", err)
	}
	if err := s.adoptBases(ctx); err != nil {
		return err
	}
	return s.adoptRecords(ctx)
}

// CheckSchema reports whether the database holds exactly this binary's
// migrations, changing nothing (sqldb.Migrator.Check).
func (s *Store) CheckSchema(ctx context.Context) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return fmt.Errorf("consent store: %w", err)
	}
	return sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "consent_schema_migrations"}.Check(ctx, migs)
}

// clock returns the store's time, in UTC, rounded down to what is stored.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// inTx runs fn in a write transaction; every error comes out as consent's.
func (s *Store) inTx(ctx context.Context, op string, fn func(q sqldb.Querier) error) error {
	return dbErr(op, sqldb.InTx(ctx, s.db, s.d, op, fn))
}

// consentErrs are consent's sentinels, for dbErr.
var consentErrs = sqldb.Sentinels{NotFound: consent.ErrNotFound, Conflict: consent.ErrConflict,
	Invalid: consent.ErrInvalid, Unavailable: consent.ErrUnavailable, Pass: []error{consent.ErrWithdrawn}}

// dbErr translates a database error into consent's sentinels
// (sqldb.Sentinels.Err). A caller's own error (a signer's) passes through
// unchanged.
func dbErr(op string, err error) error {
	var own *callerError
	if errors.As(err, &own) {
		return own.err
	}
	return consentErrs.Err(op, err)
}

// callerError carries an error from a caller's callback (the receipt
// signer) out of a transaction untranslated.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

func invalid(op, msg string) error { return fmt.Errorf("%s: %s: %w", op, msg, consent.ErrInvalid) }

// maxText bounds free text (notes, laws, reasons, evidence is larger).
const (
	maxID       = 200
	maxText     = 4000
	maxEvidence = 64 << 10
	maxItems    = 200
)

// checkText refuses what PostgreSQL cannot store in TEXT (invalid UTF-8,
// NUL), so both engines accept and refuse the same input.
func checkText(op, field, v string, limit int) error {
	if p := sqldb.TextProblem(v, limit); p != "" {
		return invalid(op, field+" "+p)
	}
	return nil
}

// checkID checks a required identifier or code.
func checkID(op, field, v string) error {
	if v == "" {
		return invalid(op, field+" is required")
	}
	return checkText(op, field, v, maxID)
}

// checkItems checks a list of data items: each a non-empty name.
func checkItems(op, field string, items []string, required bool) error {
	if required && len(items) == 0 {
		return invalid(op, field+" are required")
	}
	if len(items) > maxItems {
		return invalid(op, "too many "+field)
	}
	for _, it := range items {
		if err := checkID(op, field, it); err != nil {
			return err
		}
	}
	return nil
}

// encodeOnBehalf stores a representative as JSON, or "" for none.
func encodeOnBehalf(o *consent.OnBehalf) string {
	if o == nil {
		return ""
	}
	b, _ := json.Marshal(o) // strings only: cannot fail
	return string(b)
}

func decodeOnBehalf(op, s string) (*consent.OnBehalf, error) {
	if s == "" {
		return nil, nil
	}
	var o consent.OnBehalf
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return nil, fmt.Errorf("%s: decode representative column: %w", op, err)
	}
	return &o, nil
}

// checkOnBehalf checks a representative: absent, or naming a citizen and
// a basis.
func checkOnBehalf(op, field string, o *consent.OnBehalf) error {
	if o == nil {
		return nil
	}
	if err := checkID(op, field+" citizen", o.CitizenID); err != nil {
		return err
	}
	if err := checkID(op, field+" basis", o.Basis); err != nil {
		return err
	}
	return checkText(op, field+" mandate", o.MandateID, maxID)
}

// pageLimit applies consent.Page's clamp.
func pageLimit(p consent.Page) int { return p.Clamp() }

// encodeCursor makes an opaque cursor of parts (numbers and ids).
func encodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "\x1f")))
}

// decodeCursor reads a cursor of n parts; the first is a number, the
// others ids (UTF-8 without control characters, since a NUL or invalid
// UTF-8 would reach PostgreSQL as a parameter it refuses).
func decodeCursor(c string, n int) (int64, []string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, nil, err
	}
	parts := strings.Split(string(b), "\x1f")
	if len(parts) != n {
		return 0, nil, errors.New("wrong number of parts")
	}
	v, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return 0, nil, err
	}
	for _, p := range parts[1:] {
		if p == "" || len(p) > maxID || !utf8.ValidString(p) || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 }) {
			return 0, nil, errors.New("malformed id")
		}
	}
	return v, parts[1:], nil
}

func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
