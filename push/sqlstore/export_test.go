package sqlstore

import (
	"context"

	"github.com/onedoor/onedoor/internal/sqldb"
)

// MigrateTo applies the migrations up to and including version upTo.
func (s *Store) MigrateTo(ctx context.Context, upTo int) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return err
	}
	return sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "push_schema_migrations", Now: s.now}.Migrate(ctx, migs, upTo)
}
