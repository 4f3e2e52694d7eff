package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migration is one schema change, in a file named NNNN_description.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads dir's *.sql files in version order.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, f := range files {
		name := path.Base(f)
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number", name)
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no migrations in %s", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// ErrSchemaNewer means the database was migrated by a newer binary.
var ErrSchemaNewer = errors.New("database schema newer than this binary")

// Migrator applies one area's migrations, recorded in its own table so
// areas sharing a database migrate independently.
type Migrator struct {
	DB      *sql.DB
	Dialect Dialect
	Table   string // e.g. idp_schema_migrations
	// LockKey names the PostgreSQL advisory lock; default
	// "onedoor-migrate:<Table>:".
	LockKey string
	Now     func() time.Time
}

// Migrate applies the migrations not yet recorded, up to and including
// upTo (all when 0), each in its own transaction. Concurrent callers
// serialise on an advisory lock (PostgreSQL) or the database write lock
// (SQLite), so each migration runs once. After a full run it refuses a
// database a newer binary migrated (ErrSchemaNewer).
func (m Migrator) Migrate(ctx context.Context, migs []Migration, upTo int) error {
	now := m.Now
	if now == nil {
		now = time.Now
	}
	lockKey := m.LockKey
	if lockKey == "" {
		lockKey = "onedoor-migrate:" + m.Table + ":"
	}
	for _, mig := range migs {
		if upTo > 0 && mig.Version > upTo {
			break
		}
		op := "migrate " + mig.Name
		err := InTx(ctx, m.DB, m.Dialect, op, func(q Querier) error {
			if m.Dialect == PostgreSQL {
				// Keyed by table and schema so areas and stores in
				// different schemas don't wait on each other.
				if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1 || current_schema()))`, lockKey); err != nil {
					return Err(op, err)
				}
			}
			if _, err := q.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+m.Table+` (
				version INTEGER PRIMARY KEY,
				name TEXT NOT NULL,
				applied_at BIGINT NOT NULL
			)`); err != nil {
				return Err(op, err)
			}
			var n int
			if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+m.Table+` WHERE version = $1`, mig.Version).Scan(&n); err != nil {
				return Err(op, err)
			}
			if n > 0 {
				return nil
			}
			if _, err := q.ExecContext(ctx, mig.SQL); err != nil {
				return Err(op, err)
			}
			_, err := q.ExecContext(ctx, `INSERT INTO `+m.Table+` (version, name, applied_at) VALUES ($1, $2, $3)`,
				mig.Version, mig.Name, MS(now()))
			return Err(op, err)
		})
		if err != nil {
			return err
		}
	}
	if upTo > 0 || len(migs) == 0 {
		return nil
	}
	// A database migrated by a newer binary (a rollback, or an old replica
	// left running during an upgrade) would fail in ways that look like
	// outages: refuse to start instead, and say why.
	var newest int
	if err := m.DB.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM `+m.Table).Scan(&newest); err != nil {
		return Err("read schema version", err)
	}
	if known := migs[len(migs)-1].Version; newest > known {
		return fmt.Errorf("the database schema is at version %d, newer than this binary's %d: run the newer onedoor (or restore the backup taken before the upgrade): %w", newest, known, ErrSchemaNewer)
	}
	return nil
}

// ErrSchemaBehind means the database lacks migrations this binary has.
var ErrSchemaBehind = errors.New("database schema older than this binary")

// Check reports, without changing anything, whether the database holds
// exactly migs: ErrSchemaBehind when some are missing, ErrSchemaNewer when
// a newer binary migrated it. Admin commands check instead of migrating, so
// a newer binary on an operator's machine never upgrades a database under
// running replicas.
func (m Migrator) Check(ctx context.Context, migs []Migration) error {
	if len(migs) == 0 {
		return nil
	}
	var newest, count int
	err := m.DB.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0), COUNT(*) FROM `+m.Table).Scan(&newest, &count)
	if err != nil {
		if IsOutage(err) {
			return Err("read schema version", err)
		}
		newest, count = 0, 0 // no table yet: nothing applied
	}
	known := migs[len(migs)-1].Version
	switch {
	case newest > known:
		return fmt.Errorf("%s: the database schema is at version %d, newer than this binary's %d: use the newer onedoor: %w", m.Table, newest, known, ErrSchemaNewer)
	case count < len(migs):
		return fmt.Errorf("%s: the database schema lacks %d migration(s) of this binary (at version %d of %d): run `onedoor migrate` with this binary, knowing that older replicas will then refuse to start: %w",
			m.Table, len(migs)-count, newest, known, ErrSchemaBehind)
	}
	return nil
}
