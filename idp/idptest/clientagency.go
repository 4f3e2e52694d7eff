package idptest

import (
	"database/sql"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

// RunClientAgencyMigrationTests checks that migration 0009 keeps a client
// written under 0008 and binds it to no agency. newStore returns an
// unmigrated store and the *sql.DB it runs on.
func RunClientAgencyMigrationTests(t *testing.T, newStore func(t *testing.T) (*sql.DB, StepMigrator)) {
	t.Run("ClientAgency", func(t *testing.T) {
		db, s := newStore(t)
		ctx := t.Context()
		mustNil(t, s.MigrateTo(ctx, 8), "migrate to 0008")
		_, err := db.ExecContext(ctx, `INSERT INTO idp_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris,
			grant_types, scopes, auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at, claims)
			VALUES ('old', 'Old back end', NULL, '[]', '[]', '["client_credentials"]', '["registry.read"]',
			'private_key_jwt', '', 'https://old.example/jwks', false, 'ES256', 1740823200123, '[]')`)
		mustNil(t, err, "seed a client before 0009")
		mustNil(t, s.Migrate(ctx), "migrate")
		c, err := s.GetClient(ctx, "old")
		mustNil(t, err, "get old client")
		equal(t, c, &idp.Client{ID: "old", Name: "Old back end", RedirectURIs: []string{}, PostLogoutRedirectURIs: []string{},
			GrantTypes: []string{"client_credentials"}, Scopes: []string{"registry.read"}, AuthMethod: idp.AuthPrivateKeyJWT,
			JWKSURI: "https://old.example/jwks", IDTokenAlg: "ES256", CreatedAt: base}, "old client after 0009")
	})
}
