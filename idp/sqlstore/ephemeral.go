package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// Ephemeral entries live in idp_ephemeral with an expiry in unix ms. A row is
// live while expires_at > now; expired rows count as absent everywhere and
// GarbageCollect removes them. "now" is the database's clock, read inside
// each statement: replicas whose clocks disagree still agree on what has
// expired, and a replica whose clock is off neither extends nor shortens an
// entry.

// sqlNow is the database's clock in unix ms, for one statement.
func sqlNow(d Dialect) string {
	if d == PostgreSQL {
		return `(FLOOR(EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::BIGINT)`
	}
	// julianday('now') is fixed for the duration of one statement.
	return `(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER))`
}

// clockQueries are the statements that read the database's clock, built
// once per dialect.
type clockQueries struct {
	set, create, get, take, incr, collect, lock string
}

func newClockQueries(d Dialect) clockQueries {
	now := sqlNow(d)
	next := `CAST(CAST(idp_ephemeral.value AS INTEGER) + 1 AS BLOB)`
	if d == PostgreSQL {
		next = `convert_to((convert_from(idp_ephemeral.value, 'UTF8')::BIGINT + 1)::TEXT, 'UTF8')`
	}
	return clockQueries{
		set: `INSERT INTO idp_ephemeral (key, value, expires_at) VALUES ($1, $2, ` + now + ` + $3)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
		create: `INSERT INTO idp_ephemeral (key, value, expires_at) VALUES ($1, $2, ` + now + ` + $3)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
			WHERE idp_ephemeral.expires_at <= ` + now,
		get:  `SELECT value FROM idp_ephemeral WHERE key = $1 AND expires_at > ` + now,
		take: `DELETE FROM idp_ephemeral WHERE key = $1 AND expires_at > ` + now + ` RETURNING value`,
		incr: `INSERT INTO idp_ephemeral (key, value, expires_at) VALUES ($1, $2, ` + now + ` + $3)
			ON CONFLICT (key) DO UPDATE SET
				value = CASE WHEN idp_ephemeral.expires_at <= ` + now + ` THEN excluded.value ELSE ` + next + ` END,
				expires_at = CASE WHEN idp_ephemeral.expires_at <= ` + now + ` THEN excluded.expires_at ELSE idp_ephemeral.expires_at END
			RETURNING value`,
		collect: `DELETE FROM idp_ephemeral WHERE expires_at <= ` + now,
		lock: `INSERT INTO idp_locks (name, holder, expires_at) VALUES ($1, $2, ` + now + ` + $3)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
			WHERE idp_locks.expires_at <= ` + now,
	}
}

// ttlMS checks ttl and rounds it up to whole milliseconds, as Redis does
// with PX.
func ttlMS(ttl time.Duration) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("ttl %v must be positive: %w", ttl, idp.ErrInvalid)
	}
	return (ttl + time.Millisecond - 1).Milliseconds(), nil
}

// Set stores value under key, replacing any previous value.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	t, err := ttlMS(ttl)
	if err != nil {
		return err
	}
	done, err := s.writeTurn(ctx)
	if err != nil {
		return dbErr("set ephemeral", err)
	}
	defer done()
	_, err = s.db.ExecContext(ctx, s.q.set, key, blob(value), t)
	return dbErr("set ephemeral", err)
}

// Create stores value only when key is absent or expired. The conditional
// upsert is one statement, so of concurrent creators exactly one changes a row.
func (s *Store) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	const op = "create ephemeral"
	t, err := ttlMS(ttl)
	if err != nil {
		return err
	}
	done, err := s.writeTurn(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer done()
	res, err := s.db.ExecContext(ctx, s.q.create, key, blob(value), t)
	if err != nil {
		return dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, idp.ErrConflict)
	}
	return nil
}

// marker is the value CreateMany stores.
var marker = []byte{1}

// CreateMany stores a marker under each key that is absent or expired, with
// one conditional upsert per createChunk keys in one transaction: RETURNING
// names the keys it stored (a live key's row is left as it is). Keys given
// twice are sent once: PostgreSQL refuses one upsert touching a row twice.
func (s *Store) CreateMany(ctx context.Context, keys []string, ttl time.Duration) ([]bool, error) {
	const op = "create ephemeral"
	t, err := ttlMS(ttl)
	if err != nil {
		return nil, err
	}
	first := make(map[string]int, len(keys))
	uniq := make([]string, 0, len(keys))
	for i, k := range keys {
		if _, ok := first[k]; !ok {
			first[k] = i
			uniq = append(uniq, k)
		}
	}
	// In one order everywhere: two batches locking shared keys in opposite
	// orders would deadlock on PostgreSQL.
	slices.Sort(uniq)
	created := make([]bool, len(keys))
	err = s.inTx(ctx, op, func(q querier) error {
		for chunk := range slices.Chunk(uniq, createChunk) {
			args := make([]any, 0, 3*len(chunk))
			var b strings.Builder
			b.WriteString(`INSERT INTO idp_ephemeral (key, value, expires_at) VALUES `)
			for i, k := range chunk {
				if i > 0 {
					b.WriteString(", ")
				}
				n := len(args)
				fmt.Fprintf(&b, "($%d, $%d, %s + $%d)", n+1, n+2, sqlNow(s.d), n+3)
				args = append(args, k, blob(marker), t)
			}
			b.WriteString(` ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
				WHERE idp_ephemeral.expires_at <= ` + sqlNow(s.d) + ` RETURNING key`)
			rows, err := q.QueryContext(ctx, b.String(), args...)
			if err != nil {
				return dbErr(op, err)
			}
			for rows.Next() {
				var k string
				if err := rows.Scan(&k); err != nil {
					rows.Close()
					return dbErr(op, err)
				}
				if i, ok := first[k]; ok {
					created[i] = true
				}
			}
			if err := rows.Close(); err != nil {
				return dbErr(op, err)
			}
			if err := rows.Err(); err != nil {
				return dbErr(op, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return created, nil
}

// createChunk keys of three parameters each stay far below SQLite's 32,766
// parameters per statement.
const createChunk = 1000

// Get returns the live value under key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.db.QueryRowContext(ctx, s.q.get, key).Scan(&v)
	if err != nil {
		return nil, dbErr("get ephemeral", err)
	}
	return v, nil
}

// Take deletes and returns the live value in one statement, so only one of
// concurrent callers sees it.
func (s *Store) Take(ctx context.Context, key string) ([]byte, error) {
	done, err := s.writeTurn(ctx)
	if err != nil {
		return nil, dbErr("take ephemeral", err)
	}
	defer done()
	var v []byte
	if err := s.db.QueryRowContext(ctx, s.q.take, key).Scan(&v); err != nil {
		return nil, dbErr("take ephemeral", err)
	}
	return v, nil
}

// Delete removes key; absent keys are not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	done, err := s.writeTurn(ctx)
	if err != nil {
		return dbErr("delete ephemeral", err)
	}
	defer done()
	_, err = s.db.ExecContext(ctx, `DELETE FROM idp_ephemeral WHERE key = $1`, key)
	return dbErr("delete ephemeral", err)
}

// Incr adds one to the counter under key. The counter is stored as decimal
// text, like Redis does, and an expired one restarts at 1 with a fresh TTL.
func (s *Store) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	const op = "incr ephemeral"
	t, err := ttlMS(ttl)
	if err != nil {
		return 0, err
	}
	done, err := s.writeTurn(ctx)
	if err != nil {
		return 0, dbErr(op, err)
	}
	defer done()
	var v []byte
	err = s.db.QueryRowContext(ctx, s.q.incr,
		key, []byte("1"), t).Scan(&v)
	if err != nil {
		return 0, dbErr(op, err)
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: counter %q: %w", op, v, idp.ErrInvalid)
	}
	return n, nil
}

// GarbageCollect deletes the ephemeral entries expired by the database's
// clock, the refresh-token families that expired before now and the
// revocations that have ended. It returns the number of ephemeral entries
// deleted.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time) (ephemeralDeleted int64, err error) {
	done, err := s.writeTurn(ctx)
	if err != nil {
		return 0, dbErr("garbage collect", err)
	}
	defer done()
	res, err := s.db.ExecContext(ctx, s.q.collect)
	if err != nil {
		return 0, dbErr("garbage collect", err)
	}
	if ephemeralDeleted, err = res.RowsAffected(); err != nil {
		return 0, dbErr("garbage collect", err)
	}
	if _, err := s.DeleteExpiredRefreshTokens(ctx, now); err != nil {
		return ephemeralDeleted, err
	}
	if err := s.deleteExpiredRevocations(ctx, now); err != nil {
		return ephemeralDeleted, err
	}
	if err := s.deleteEndedSessions(ctx, now); err != nil {
		return ephemeralDeleted, err
	}
	return ephemeralDeleted, nil
}

// writeTurn queues a one-statement write behind the process's other SQLite
// writers (sqldb.WriteTurn): logins, sessions and rate limits live here,
// and must not fail with SQLITE_BUSY while transactions keep the database
// busy.
func (s *Store) writeTurn(ctx context.Context) (func(), error) {
	return sqldb.WriteTurn(ctx, s.db, s.d)
}
