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
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// Dialect names the SQL engine behind the *sql.DB.
type Dialect = sqldb.Dialect

// Supported dialects.
const (
	SQLite     = sqldb.SQLite
	PostgreSQL = sqldb.PostgreSQL
)

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

type querier = sqldb.Querier

// inTx runs fn in a write transaction (see sqldb.InTx).
func (s *Store) inTx(ctx context.Context, op string, fn func(q querier) error) error {
	return sqldb.InTx(ctx, s.db, s.d, op, fn)
}

func (s *Store) forUpdate() string { return s.d.ForUpdate() }

func dbErr(op string, err error) error { return sqldb.Err(op, err) }

func notFoundIfNone(op string, res sql.Result, err error) error {
	return sqldb.NotFoundIfNone(op, res, err)
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func ms(t time.Time) int64 { return sqldb.MS(t) }

func fromMS(v int64) time.Time { return sqldb.FromMS(v) }

func nullMS(t *time.Time) sql.NullInt64 { return sqldb.NullMS(t) }

func fromNullMS(v sql.NullInt64) *time.Time { return sqldb.FromNullMS(v) }

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
