package sqlite_test

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sqlite"
)

// TestMigrate_0004EIDAppGrant runs migration 0004 over a database in the
// state before it (the eID app's client with the browser flow, as an
// operator may have renamed it, and an agency client): the app's client is
// moved to the JWT-bearer grant alone, keeps what 0004 does not concern, and
// no other client changes.
func TestMigrate_0004EIDAppGrant(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlite.New(db)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	created := time.UnixMilli(1700000000000).UTC()
	before := &idp.Client{
		ID: idp.EIDAppClientID, Name: "Ứng dụng eID", AuthMethod: idp.AuthNone, IDTokenAlg: "ES256", CreatedAt: created,
		// As migration 0001 seeded it: a redirect URI, no post-logout URI.
		RedirectURIs: []string{"vn.onedoor.eid:/callback"}, PostLogoutRedirectURIs: []string{},
		GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes:     []string{"openid", "profile", "eid", "offline_access", "phone", "address"},
	}
	agency := &idp.Client{
		ID: "agency", Name: "Agency", AuthMethod: idp.AuthNone, IDTokenAlg: "ES256", CreatedAt: created,
		RedirectURIs: []string{"https://agency.example/cb"}, PostLogoutRedirectURIs: []string{},
		GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "offline_access"},
	}
	if err := s.DeleteClient(ctx, idp.EIDAppClientID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*idp.Client{before, agency} {
		if err := s.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM idp_schema_migrations WHERE version = 4`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	got, err := s.GetClient(ctx, idp.EIDAppClientID)
	if err != nil {
		t.Fatal(err)
	}
	want := *before
	want.GrantTypes = []string{idp.GrantTypeJWTBearer}
	want.RedirectURIs = []string{}
	want.Scopes = []string{"openid", "profile", "eid", "phone", "address"}
	if !reflect.DeepEqual(got, &want) {
		t.Errorf("eID app client after 0004:\n got %+v\nwant %+v", got, &want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the migrated client does not validate: %v", err)
	}
	if g, err := s.GetClient(ctx, "agency"); err != nil || !reflect.DeepEqual(g, agency) {
		t.Errorf("agency client after 0004 = %+v, %v; want it unchanged", g, err)
	}
}
