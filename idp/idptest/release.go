package idptest

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

// RunReleasePolicyTests checks a release policy against the abuse cases of
// issue #3: nothing a client may not receive is shown, released silently or
// released later, whatever the request or the stored grant says, and what
// the citizen agreed is recorded with its evidence. newPolicy returns a
// policy over store, a fresh migrated durable store.
func RunReleasePolicyTests(t *testing.T, newStore func(t *testing.T) idp.Store, newPolicy func(s idp.Store) idp.ReleasePolicy) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, s idp.Store, p idp.ReleasePolicy)
	}{
		{"PlanShowsOnlyAllowedClaims", testPlanAllowed},
		{"SilentNeedsAgreementAndAllowance", testSilent},
		{"ReleasedFollowsTheRegistrationNow", testReleasedNow},
		{"RecordKeepsEvidenceWithinAllowance", testRecord},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			withTimeout(subtestTimeout, func() { tt.run(t, s, newPolicy(s)) })
		})
	}
}

func policyClient(t *testing.T, s idp.Store, id string, scopes, claims []string) *idp.Client {
	t.Helper()
	c := &idp.Client{ID: id, Name: id, AuthMethod: idp.AuthNone, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{"https://agency.example/cb"}, Scopes: scopes, Claims: claims, IDTokenAlg: "ES256", CreatedAt: base}
	if err := s.DeleteClient(t.Context(), id); err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	mustNil(t, s.CreateClient(t.Context(), c), "create client "+id)
	return c
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, idp.ErrNotFound) }

func names(cs []idp.ClaimRequest) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func testPlanAllowed(t *testing.T, s idp.Store, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "profile-only", []string{"openid", "profile"}, nil)
	// A client registered for openid profile asks for the personal id as
	// essential, in userinfo and in the ID token, and for scopes it did not
	// register (fosite refuses those first; the policy does not rely on it).
	req, err := idp.ParseClaimsRequest([]string{"openid", "profile", "eid", "phone"},
		`{"userinfo":{"personal_id":{"essential":true},"name":{"essential":true}},"id_token":{"personal_id":{"essential":true},"address":null,"birthdate":null}}`)
	mustNil(t, err, "parse claims request")
	plan, err := p.Plan(ctx, c, req)
	mustNil(t, err, "plan")
	for _, cr := range plan.Claims {
		if !slices.Contains(c.AllowedClaims(), cr.Name) {
			t.Errorf("plan shows %q, which the client may not receive", cr.Name)
		}
		if cr.Name == "name" && cr.Optional {
			t.Error("an essential, allowed claim is optional")
		}
	}
	if !slices.Contains(names(plan.Claims), "name") {
		t.Errorf("plan %v lacks the allowed, requested name", names(plan.Claims))
	}
	equal(t, plan.IDToken, []string{"birthdate"}, "ID token claims")

	// An explicit allowance lets the claims parameter ask; it asks nothing itself.
	x := policyClient(t, s, "explicit", []string{"openid"}, []string{"personal_id"})
	plan, err = p.Plan(ctx, x, idp.ClaimsRequest{Scopes: []string{"openid"}})
	mustNil(t, err, "plan without claims")
	equal(t, names(plan.Claims), []string{}, "claims asked without a request")
	plan, err = p.Plan(ctx, x, idp.ClaimsRequest{Scopes: []string{"openid"}, UserInfo: map[string]bool{"personal_id": true, "name": false}})
	mustNil(t, err, "plan with claims")
	equal(t, plan.Claims, []idp.ClaimRequest{{Name: "personal_id"}}, "claims asked with a request")
}

func testSilent(t *testing.T, s idp.Store, p idp.ReleasePolicy) {
	ctx := t.Context()
	policyClient(t, s, "site", []string{"openid", "profile", "eid"}, nil)
	asked := []idp.ClaimRequest{{Name: "name", Optional: true}, {Name: "birthdate", Optional: true}, {Name: "personal_id"}}

	agreed, covered, err := p.Silent(ctx, "sub-1", "site", asked)
	mustNil(t, err, "silent without a grant")
	if len(agreed) != 0 || covered {
		t.Errorf("without a grant: agreed %v, covered %v; want nothing, not covered", agreed, covered)
	}
	mustNil(t, s.PutGrant(ctx, &idp.Grant{CitizenID: "sub-1", ClientID: "site", Claims: []string{"name", "personal_id", "phone_number"}, UpdatedAt: base}), "put grant")
	agreed, covered, err = p.Silent(ctx, "sub-1", "site", asked)
	mustNil(t, err, "silent")
	equal(t, agreed, []string{"name", "personal_id"}, "agreed")
	if !covered {
		t.Error("an agreed essential claim is not covered")
	}
	// Another citizen or another client gets nothing from this grant.
	if agreed, covered, _ := p.Silent(ctx, "sub-2", "site", asked); len(agreed) != 0 || covered {
		t.Errorf("another citizen: %v, %v", agreed, covered)
	}
	// The operator narrows the client: a stored grant cannot carry on.
	policyClient(t, s, "site", []string{"openid", "profile"}, nil)
	agreed, covered, err = p.Silent(ctx, "sub-1", "site", asked)
	mustNil(t, err, "silent after narrowing")
	equal(t, agreed, []string{"name"}, "agreed after narrowing")
	if covered {
		t.Error("an essential claim the client may no longer receive is covered")
	}
}

func testReleasedNow(t *testing.T, s idp.Store, p idp.ReleasePolicy) {
	ctx := t.Context()
	policyClient(t, s, "site", []string{"openid", "profile"}, []string{"personal_id"})
	agreed := []string{"personal_id", "name", "phone_number", "salary"}
	got, err := p.Released(ctx, "site", agreed)
	mustNil(t, err, "released")
	equal(t, got, []string{"personal_id", "name"}, "released")
	policyClient(t, s, "site", []string{"openid"}, nil)
	got, err = p.Released(ctx, "site", agreed)
	mustNil(t, err, "released after narrowing")
	if len(got) != 0 {
		t.Errorf("after narrowing: released %v, want nothing", got)
	}
	mustNil(t, s.DeleteClient(ctx, "site"), "delete client")
	// A deleted client receives nothing, and the caller learns it is gone
	// (userinfo then refuses the token).
	got, err = p.Released(ctx, "site", agreed)
	mustBe(t, err, idp.ErrNotFound, "released to a deleted client")
	if len(got) != 0 {
		t.Errorf("deleted client: released %v, want nothing", got)
	}
}

func testRecord(t *testing.T, s idp.Store, p idp.ReleasePolicy) {
	ctx := t.Context()
	policyClient(t, s, "site", []string{"openid", "profile"}, nil)
	g := &idp.Grant{CitizenID: "sub-1", ClientID: "site", Claims: []string{"name", "personal_id"}, Evidence: "aGVh.cGF5.c2ln", UpdatedAt: base}
	mustNil(t, p.Record(ctx, g), "record")
	got, err := s.GetGrant(ctx, "sub-1", "site")
	mustNil(t, err, "get recorded grant")
	equal(t, got, &idp.Grant{CitizenID: "sub-1", ClientID: "site", Claims: []string{"name"}, Evidence: g.Evidence, UpdatedAt: base}, "recorded grant")
}

// RunMigration0005Tests checks that migration 0005 keeps the clients and
// grants written under 0001: clients gain no claims, grants no evidence.
// db is a fresh, empty database; init is 0001's SQL for its dialect; store
// returns a store over db.
func RunMigration0005Tests(t *testing.T, db *sql.DB, init string, store func() Migrator) {
	ctx := context.Background()
	for _, q := range []string{init,
		`CREATE TABLE IF NOT EXISTS idp_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
		`INSERT INTO idp_schema_migrations (version, name, applied_at) VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO idp_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes,
			auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at)
			VALUES ('old', 'Old agency', NULL, '["https://old.example/cb"]', '[]', '["authorization_code"]', '["openid","profile"]',
			'none', '', '', false, 'ES256', 1740823200123)`,
		`INSERT INTO idp_grants (citizen_id, client_id, claims, updated_at) VALUES ('sub-1', 'old', '["name"]', 1740823200123)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("seed before 0005: %v", err)
		}
	}
	s := store()
	mustNil(t, s.Migrate(ctx), "migrate")
	c, err := s.GetClient(ctx, "old")
	mustNil(t, err, "get old client")
	if c.Name != "Old agency" || c.Claims != nil || !slices.Equal(c.AllowedClaims(), idp.ScopeClaims(idp.ScopeProfile)) {
		t.Errorf("old client after 0005: %+v", c)
	}
	g, err := s.GetGrant(ctx, "sub-1", "old")
	mustNil(t, err, "get old grant")
	equal(t, g, &idp.Grant{CitizenID: "sub-1", ClientID: "old", Claims: []string{"name"}, UpdatedAt: base}, "old grant after 0005")
}
