// Package sqldb holds what every area's database/sql store shares: the
// dialects, write transactions that behave the same on SQLite and
// PostgreSQL, the translation of driver errors into idp's sentinel errors,
// and a migration runner. It imports no driver.
package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
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

// ForUpdate locks the selected rows on PostgreSQL; SQLite already holds the
// database write lock inside InTx.
func (d Dialect) ForUpdate() string {
	if d == PostgreSQL {
		return " FOR UPDATE"
	}
	return ""
}

// Querier is what *sql.DB, *sql.Tx and *sql.Conn have in common.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// InTx runs fn in a write transaction; fn returns translated errors, InTx
// translates only its own. On SQLite a deferred transaction that reads first
// fails with SQLITE_BUSY when it later upgrades under contention, so take the
// write lock up front with BEGIN IMMEDIATE on a dedicated connection; and the
// process's writers queue for it in Go first (writeTurn), in order, instead
// of in SQLite's busy handler, which sleeps between polls (up to 100 ms), lets
// a later writer overtake an earlier one, and so fails an unlucky one with
// SQLITE_BUSY once busy_timeout has passed under steady contention.
func InTx(ctx context.Context, db *sql.DB, d Dialect, op string, fn func(q Querier) error) error {
	if d != SQLite {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return Err(op, err)
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback()
			return err
		}
		return Err(op, tx.Commit())
	}
	done, err := writeTurn(ctx, db)
	if err != nil {
		return Err(op, err)
	}
	defer done()
	conn, err := db.Conn(ctx)
	if err != nil {
		return Err(op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return Err(op, err)
	}
	// Whatever way fn leaves (an error, a panic the servers recover from),
	// the transaction ends before the connection goes back to the pool:
	// one left open would hold SQLite's write lock for good.
	ended := false
	defer func() {
		if !ended {
			rollback(conn)
		}
	}()
	if err := fn(conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return Err(op, err)
	}
	ended = true
	return nil
}

// WriteTurn is for a write outside InTx (one statement on the pool): on
// SQLite it waits for the process's write turn as InTx does, so that such
// writes queue in order beside the transactions instead of failing with
// SQLITE_BUSY under their contention. Call the returned function when the
// statement is done; on PostgreSQL it does nothing.
func WriteTurn(ctx context.Context, db *sql.DB, d Dialect) (func(), error) {
	if d != SQLite {
		return func() {}, nil
	}
	return writeTurn(ctx, db)
}

// writers holds one turn (a channel of capacity one) per SQLite database
// handle: the process opens one handle per file, so it orders all of the
// process's writers; other processes (admin commands) still meet them in
// SQLite's busy handler. A waiter holds no pooled connection, so readers
// are not starved of connections by queued writers.
var writers sync.Map // *sql.DB -> chan struct{}

// writeTurn waits, first come first served, until no other write
// transaction of the process runs on db, or until ctx ends, and returns
// the function that gives the turn back.
func writeTurn(ctx context.Context, db *sql.DB) (func(), error) {
	v, ok := writers.Load(db)
	if !ok {
		v, _ = writers.LoadOrStore(db, make(chan struct{}, 1))
	}
	turn := v.(chan struct{})
	select {
	case turn <- struct{}{}:
		return func() { <-turn }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// rollback ends a manual transaction. A connection that may still be inside
// one must not go back to the pool, so it is discarded when ROLLBACK fails.
func rollback(c *sql.Conn) {
	if _, err := c.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// Err translates a database error into the idp sentinels. Only an outage
// (the database cannot be reached, went away, is shutting down, timed out,
// or is momentarily busy) wraps ErrUnavailable, which transports answer with
// 503 and Retry-After. Any other failure (a constraint nobody expected, a
// syntax error, a missing table, a corrupt row, a permission denied) is
// permanent: it is wrapped as is, so the caller logs it and answers a plain
// server error that clients do not retry forever.
func Err(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, idp.ErrNotFound)
	case IsUniqueViolation(err):
		return fmt.Errorf("%s: %v: %w", op, err, idp.ErrConflict)
	case IsOutage(err):
		return fmt.Errorf("%s: %w: %w", op, idp.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// IsOutage reports whether err means the database could not answer now but
// may later. Drivers are recognised without importing them.
func IsOutage(err error) bool {
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

// IsUniqueViolation recognises both drivers' errors without importing them:
// pgconn.PgError has SQLState, modernc's sqlite.Error has Code.
func IsUniqueViolation(err error) bool {
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

// NotFoundIfNone turns "no row changed" into ErrNotFound.
func NotFoundIfNone(op string, res sql.Result, err error) error {
	if err != nil {
		return Err(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Err(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, idp.ErrNotFound)
	}
	return nil
}

// Scanner is *sql.Row or *sql.Rows.
type Scanner interface{ Scan(dest ...any) error }

// MS stores a time as unix milliseconds, so it reads back in UTC rounded
// down to the millisecond on both engines.
func MS(t time.Time) int64 { return t.UnixMilli() }

// FromMS reads a time stored by MS.
func FromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// NullMS stores an optional time.
func NullMS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// FromNullMS reads a time stored by NullMS.
func FromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := FromMS(v.Int64)
	return &t
}
