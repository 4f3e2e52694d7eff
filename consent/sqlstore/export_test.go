package sqlstore

import (
	"context"

	"github.com/onedoor/onedoor/internal/sqldb"
)

// MigrateTo applies the migrations up to version only, so a test can
// store rows as an older binary did and then migrate on.
func (s *Store) MigrateTo(ctx context.Context, version int) error {
	migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+s.d.String())
	if err != nil {
		return err
	}
	return sqldb.Migrator{DB: s.db, Dialect: s.d, Table: "consent_schema_migrations", Now: s.now}.Migrate(ctx, migs, version)
}
