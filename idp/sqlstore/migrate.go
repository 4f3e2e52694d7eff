package sqlstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the dialect's migrations in version order. Files are
// named NNNN_description.sql.
func (d Dialect) migrations() ([]migration, error) {
	dir := "migrations/" + d.String()
	files, err := fs.Glob(migrationFS, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, f := range files {
		name := path.Base(f)
		num, _, _ := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number", name)
		}
		b, err := migrationFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no migrations for dialect %s", d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// Migrate applies the migrations not yet recorded in idp_schema_migrations,
// each in its own transaction. Concurrent callers serialise on an advisory
// lock (PostgreSQL) or the database write lock (SQLite), so each migration
// runs once. Tables carry an idp_ prefix because other areas share the
// database.
func (s *Store) Migrate(ctx context.Context) error {
	return s.MigrateTo(ctx, 0)
}

// MigrateTo applies the migrations up to and including version (all when
// version is 0). Tests use it to seed rows in an old schema.
func (s *Store) MigrateTo(ctx context.Context, version int) error {
	migs, err := s.d.migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range migs {
		if version > 0 && m.version > version {
			break
		}
		op := "migrate " + m.name
		err := s.inTx(ctx, op, func(q querier) error {
			if s.d == PostgreSQL {
				// Keyed by schema so stores in different schemas don't wait on each other.
				if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('onedoor-idp-migrate:' || current_schema()))`); err != nil {
					return dbErr(op, err)
				}
			}
			if _, err := q.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS idp_schema_migrations (
				version INTEGER PRIMARY KEY,
				name TEXT NOT NULL,
				applied_at BIGINT NOT NULL
			)`); err != nil {
				return dbErr(op, err)
			}
			var n int
			if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM idp_schema_migrations WHERE version = $1`, m.version).Scan(&n); err != nil {
				return dbErr(op, err)
			}
			if n > 0 {
				return nil
			}
			if _, err := q.ExecContext(ctx, m.sql); err != nil {
				return dbErr(op, err)
			}
			_, err := q.ExecContext(ctx, `INSERT INTO idp_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
				m.version, m.name, ms(s.now()))
			return dbErr(op, err)
		})
		if err != nil {
			return err
		}
	}
	if version > 0 || len(migs) == 0 {
		return nil
	}
	// A database migrated by a newer binary (a rollback, or an old replica
	// left running during an upgrade) would fail in ways that look like
	// outages: refuse to start instead, and say why.
	var newest int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM idp_schema_migrations`).Scan(&newest); err != nil {
		return dbErr("read schema version", err)
	}
	if known := migs[len(migs)-1].version; newest > known {
		return fmt.Errorf("the database schema is at version %d, newer than this binary's %d: run the newer onedoor (or restore the backup taken before the upgrade): %w", newest, known, ErrSchemaNewer)
	}
	return nil
}

// ErrSchemaNewer means the database was migrated by a newer binary.
var ErrSchemaNewer = errors.New("database schema newer than this binary")
