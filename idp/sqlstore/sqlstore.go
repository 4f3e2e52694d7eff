// Package sqlstore implements idp.Store and idp.Ephemeral over database/sql.
// It imports no driver: idp/sqlite and idp/postgres open the *sql.DB and pick
// the Dialect. Placeholders are $1, $2, ... which both modernc.org/sqlite and
// pgx accept. Times are stored as unix milliseconds, so they come back in UTC
// rounded down to the millisecond on both engines. Create and Put methods set
// a zero CreatedAt (UpdatedAt for grants) on the passed record to the clock.
package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// Dialect names the SQL engine behind the *sql.DB.
type Dialect int

// Supported dialects.
const (
	SQLite Dialect = iota + 1
	PostgreSQL
)

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case PostgreSQL:
		return "postgres"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// Store is the durable and ephemeral store of the identity provider.
type Store struct {
	db  *sql.DB
	d   Dialect
	now func() time.Time
	q   clockQueries
	// clientWrites counts this process's client writes (see ClientWrites).
	clientWrites atomic.Uint64
}

var (
	_ idp.Store     = (*Store)(nil)
	_ idp.Ephemeral = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// WithNow sets the clock used for a durable record's default CreatedAt.
// Ephemeral expiry always uses the database's clock.
func WithNow(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// New returns a Store over db. Call Migrate before use.
func New(db *sql.DB, d Dialect, opts ...Option) *Store {
	s := &Store{db: db, d: d, now: time.Now, q: newClockQueries(d)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return dbErr("ping", s.db.PingContext(ctx))
}

// Close does nothing: the *sql.DB belongs to the caller, who may share it
// with other areas' stores and closes it once.
func (s *Store) Close() error { return nil }

// querier is what *sql.DB, *sql.Tx and *sql.Conn have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// inTx runs fn in a write transaction; fn returns translated errors, inTx
// translates only its own. On SQLite a deferred transaction that reads first
// fails with SQLITE_BUSY when it later upgrades under contention, so take the
// write lock up front with BEGIN IMMEDIATE on a dedicated connection.
func (s *Store) inTx(ctx context.Context, op string, fn func(q querier) error) error {
	if s.d != SQLite {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return dbErr(op, err)
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return dbErr(op, tx.Commit())
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return dbErr(op, err)
	}
	if err := fn(conn); err != nil {
		rollback(conn)
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		rollback(conn)
		return dbErr(op, err)
	}
	return nil
}

// rollback ends a manual transaction. A connection that may still be inside
// one must not go back to the pool, so it is discarded when ROLLBACK fails.
func rollback(c *sql.Conn) {
	if _, err := c.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// forUpdate locks the selected row on PostgreSQL; SQLite already holds the
// database write lock inside inTx.
func (s *Store) forUpdate() string {
	if s.d == PostgreSQL {
		return " FOR UPDATE"
	}
	return ""
}

// dbErr translates a database error into the idp sentinels. Only an outage
// (the database cannot be reached, went away, is shutting down, timed out,
// or is momentarily busy) wraps ErrUnavailable, which transports answer with
// 503 and Retry-After. Any other failure (a constraint nobody expected, a
// syntax error, a missing table, a corrupt row, a permission denied) is
// permanent: it is wrapped as is, so the caller logs it and answers a plain
// server error that clients do not retry forever.
func dbErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, idp.ErrNotFound)
	case isUniqueViolation(err):
		return fmt.Errorf("%s: %v: %w", op, err, idp.ErrConflict)
	case isOutage(err):
		return fmt.Errorf("%s: %w: %w", op, idp.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isOutage reports whether err means the database could not answer now but
// may later. Drivers are recognised without importing them.
func isOutage(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ETIMEDOUT) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true // dial, read and write failures on the connection
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		code := pg.SQLState()
		switch {
		case strings.HasPrefix(code, "08"), // connection exception
			strings.HasPrefix(code, "53"),    // insufficient resources (too many connections, disk full)
			strings.HasPrefix(code, "57P"),   // admin/crash shutdown, cannot connect now
			code == "57014",                  // query canceled (statement timeout)
			code == "40001", code == "40P01", // serialization failure, deadlock: retry
			code == "55P03", // lock not available
			code == "25006": // read-only transaction: a standby during failover
			return true
		}
		return false
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		switch lite.Code() & 0xff { // primary result code
		case 5, 6, 10, 13, 14: // BUSY, LOCKED, IOERR, FULL, CANTOPEN
			return true
		}
		return false
	}
	msg := err.Error()
	for _, s := range []string{"database is closed", "connection refused", "connection reset", "broken pipe",
		"conn closed", "closed network connection", "timeout", "no such host", "server closed the connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// isUniqueViolation recognises both drivers' errors without importing them:
// pgconn.PgError has SQLState, modernc's sqlite.Error has Code.
func isUniqueViolation(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	var lite interface{ Code() int }
	if errors.As(err, &lite) {
		// SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
		if c := lite.Code(); c == 2067 || c == 1555 {
			return true
		}
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// notFoundIfNone turns "no row changed" into ErrNotFound.
func notFoundIfNone(op string, res sql.Result, err error) error {
	if err != nil {
		return dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, idp.ErrNotFound)
	}
	return nil
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullMS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// blob keeps a nil slice out of NOT NULL columns: pgx sends nil as NULL.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// orNil makes empty blobs read back the same on both engines.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func jsonList(v []string) string {
	b, _ := json.Marshal(v) // a []string always marshals
	return string(b)
}

func parseList(s string, dst *[]string) error {
	if err := json.Unmarshal([]byte(s), dst); err != nil {
		return fmt.Errorf("decode list column: %w", err)
	}
	return nil
}

// createdAt defaults a zero creation time to the store's clock, like
// benbjohnson/wtf's sqlite stores do.
func (s *Store) createdAt(t *time.Time) {
	if t.IsZero() {
		*t = s.now().UTC().Truncate(time.Millisecond)
	}
}

// WithLock runs fn while holding a lock named name across every process that
// shares the database. On PostgreSQL it is a transaction-level advisory
// lock, released when fn returns. On SQLite, where an admin command and the
// server may share the file, it is a row in idp_locks taken with one
// conditional upsert and deleted when fn returns; a row left by a process
// that died is taken over once its lease ends. Holding the SQLite write lock
// instead would block fn's own writes on other pooled connections.
func (s *Store) WithLock(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	if s.d != PostgreSQL {
		return s.withLockRow(ctx, name, fn)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return dbErr("lock "+name, err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "onedoor-lock:"+name); err != nil {
		return dbErr("lock "+name, err)
	}
	if err := fn(ctx); err != nil {
		return err
	}
	return dbErr("unlock "+name, tx.Commit())
}

// lockLease bounds how long a lock row outlives a process that died holding
// it. Holders do short work (a key rotation), well within it.
const lockLease = time.Minute

func (s *Store) withLockRow(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	op := "lock " + name
	holder := rand.Text()
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		res, err := s.db.ExecContext(ctx, s.q.lock, name, holder, lockLease.Milliseconds())
		if err != nil {
			return dbErr(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return dbErr(op, err)
		}
		if n == 1 {
			break
		}
		t := time.NewTimer(wait/2 + time.Duration(mrand.Int64N(int64(wait)))) //nolint:gosec // jitter, not a secret
		select {
		case <-ctx.Done():
			t.Stop()
			return dbErr(op, ctx.Err())
		case <-t.C:
		}
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = s.db.ExecContext(ctx, `DELETE FROM idp_locks WHERE name = $1 AND holder = $2`, name, holder)
	}()
	return fn(ctx)
}
