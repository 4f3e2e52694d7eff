package sqlstore

import (
	"context"
	"embed"
	"fmt"

	"github.com/onedoor/onedoor/internal/sqldb"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migrations returns the dialect's migrations in version order.
func migrations(d Dialect) ([]sqldb.Migration, error) {
	return sqldb.LoadMigrations(migrationFS, "migrations/"+d.String())
}

// Migrate applies the migrations not yet recorded in idp_schema_migrations
// (see sqldb.Migrator). Tables carry an idp_ prefix because other areas
// share the database.
func (s *Store) Migrate(ctx context.Context) error {
	return s.MigrateTo(ctx, 0)
}

// MigrateTo applies the migrations up to and including version (all when
// version is 0). Tests use it to seed rows in an old schema.
func (s *Store) MigrateTo(ctx context.Context, version int) error {
	migs, err := migrations(s.d)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	m := sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "idp_schema_migrations", LockKey: "onedoor-idp-migrate:", Now: s.now}
	return m.Migrate(ctx, migs, version)
}

// CheckSchema reports whether the database holds exactly this binary's
// migrations, changing nothing (sqldb.Migrator.Check).
func (s *Store) CheckSchema(ctx context.Context) error {
	migs, err := migrations(s.d)
	if err != nil {
		return err
	}
	return sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "idp_schema_migrations"}.Check(ctx, migs)
}

// ErrSchemaNewer means the database was migrated by a newer binary.
var ErrSchemaNewer = sqldb.ErrSchemaNewer
