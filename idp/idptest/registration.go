package idptest

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// RunRegistrationMigrationTests checks that migration 0013 leaves a client
// an operator created before it active, with no registration.
func RunRegistrationMigrationTests(t *testing.T, newStore func(t *testing.T) (*sql.DB, StepMigrator)) {
	t.Run("ClientRegistration", func(t *testing.T) {
		db, s := newStore(t)
		ctx := t.Context()
		mustNil(t, s.MigrateTo(ctx, 10), "migrate to 0010")
		_, err := db.ExecContext(ctx, `INSERT INTO idp_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris,
			grant_types, scopes, auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at, claims, agency, purposes)
			VALUES ('old', 'Old back end', NULL, '[]', '[]', '["client_credentials"]', '["registry.read"]',
			'private_key_jwt', '', 'https://old.example/jwks', false, 'ES256', 1740823200123, '[]', 'HN', '[]')`)
		mustNil(t, err, "seed a client before 0013")
		mustNil(t, s.Migrate(ctx), "migrate")
		c, err := s.GetClient(ctx, "old")
		mustNil(t, err, "get old client")
		if !c.Active() || c.Registered() {
			t.Fatalf("an operator's client after 0013: status %q registered %v, want active and not registered", c.Registration.Status, c.Registered())
		}
		equal(t, c.Registration, idp.ClientRegistration{}, "old client's registration")
	})
}

func initialToken(id string, maxUses int, exp time.Duration) *idp.InitialToken {
	return &idp.InitialToken{ID: id, Hash: []byte("hash-" + id), Agency: "HN-HOANKIEM", MaxUses: maxUses,
		ExpiresAt: at(exp), CreatedBy: "op", CreatedAt: base}
}

func registeredClient(id, tokenID string) *idp.Client {
	return &idp.Client{ID: id, Name: "Registered " + id, AuthMethod: idp.AuthPrivateKeyJWT, JWKSURI: "https://agency.example/jwks",
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"agency"}, IDTokenAlg: "ES256", Agency: "HN-HOANKIEM",
		CreatedAt: base, Registration: idp.ClientRegistration{Status: idp.ClientPending, TokenHash: []byte("reg-" + id), InitialTokenID: tokenID}}
}

func testInitialTokens(t *testing.T, s idp.Store) {
	ctx := t.Context()
	tok := initialToken("t1", 2, time.Hour)
	mustNil(t, s.CreateInitialToken(ctx, tok), "create initial token")
	mustBe(t, s.CreateInitialToken(ctx, initialToken("t1", 1, time.Hour)), idp.ErrConflict, "duplicate id")
	dupHash := initialToken("t2", 1, time.Hour)
	dupHash.Hash = tok.Hash
	mustBe(t, s.CreateInitialToken(ctx, dupHash), idp.ErrConflict, "duplicate hash")
	got, err := s.GetInitialToken(ctx, tok.Hash)
	mustNil(t, err, "get initial token")
	equal(t, got, tok, "initial token")
	_, err = s.GetInitialToken(ctx, []byte("other"))
	mustBe(t, err, idp.ErrNotFound, "get unknown token")

	// Two uses, then used up: the third registration stores no client.
	mustNil(t, s.RegisterClient(ctx, "t1", at(time.Minute), registeredClient("r1", "t1")), "register 1")
	mustBe(t, s.RegisterClient(ctx, "t1", at(time.Minute), registeredClient("r1", "t1")), idp.ErrConflict, "register a duplicate id")
	mustNil(t, s.RegisterClient(ctx, "t1", at(time.Minute), registeredClient("r2", "t1")), "register 2")
	mustBe(t, s.RegisterClient(ctx, "t1", at(time.Minute), registeredClient("r3", "t1")), idp.ErrNotFound, "register with a used-up token")
	_, err = s.GetClient(ctx, "r3")
	mustBe(t, err, idp.ErrNotFound, "client of a refused registration")
	got, err = s.GetInitialToken(ctx, tok.Hash)
	mustNil(t, err, "get used token")
	if got.Uses != 2 || got.Usable(at(time.Minute)) {
		t.Fatalf("used-up token: uses %d usable %v", got.Uses, got.Usable(at(time.Minute)))
	}
	// The failed duplicate consumed no use (its transaction rolled back).
	r1, err := s.GetClient(ctx, "r1")
	mustNil(t, err, "get registered client")
	equal(t, r1, registeredClient("r1", "t1"), "registered client")
	if r1.Active() {
		t.Fatal("a registered client is active before approval")
	}

	// Expired and revoked tokens register nothing.
	mustNil(t, s.CreateInitialToken(ctx, initialToken("t3", 5, time.Hour)), "create t3")
	mustBe(t, s.RegisterClient(ctx, "t3", at(time.Hour), registeredClient("r4", "t3")), idp.ErrNotFound, "register at expiry")
	mustBe(t, s.RevokeInitialToken(ctx, "missing", at(0)), idp.ErrNotFound, "revoke a missing token")
	mustNil(t, s.RevokeInitialToken(ctx, "t3", at(time.Second)), "revoke")
	mustNil(t, s.RevokeInitialToken(ctx, "t3", at(2*time.Second)), "revoke twice")
	mustBe(t, s.RegisterClient(ctx, "t3", at(time.Minute), registeredClient("r4", "t3")), idp.ErrNotFound, "register with a revoked token")
	mustBe(t, s.RegisterClient(ctx, "missing", at(time.Minute), registeredClient("r4", "missing")), idp.ErrNotFound, "register with no token")
	list, err := s.ListInitialTokens(ctx)
	mustNil(t, err, "list tokens")
	if len(list) != 2 {
		t.Fatalf("ListInitialTokens: %d tokens, want 2", len(list))
	}
	for _, l := range list {
		if l.ID == "t3" && (l.RevokedAt == nil || !l.RevokedAt.Equal(at(time.Second))) {
			t.Fatalf("revoked token: revoked_at %v, want the first revocation", l.RevokedAt)
		}
	}
}

func testRegisterConcurrent(t *testing.T, s idp.Store) {
	ctx := t.Context()
	mustNil(t, s.CreateInitialToken(ctx, initialToken("tc", 3, time.Hour)), "create token")
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			err := s.RegisterClient(ctx, "tc", at(time.Minute), registeredClient(fmt.Sprintf("c%d", i), "tc"))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, idp.ErrNotFound):
				refused.Add(1)
			default:
				t.Errorf("register %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 3 || refused.Load() != 5 {
		t.Fatalf("8 concurrent registrations with a 3-use token: %d ok, %d refused", ok.Load(), refused.Load())
	}
}

func testUpdateClient(t *testing.T, s idp.Store) {
	ctx := t.Context()
	mustNil(t, s.CreateInitialToken(ctx, initialToken("tu", 1, time.Hour)), "create token")
	mustNil(t, s.RegisterClient(ctx, "tu", at(time.Minute), registeredClient("u1", "tu")), "register")
	mustBe(t, s.UpdateClient(ctx, "missing", func(*idp.Client) error { return nil }), idp.ErrNotFound, "update a missing client")
	boom := errors.New("boom")
	err := s.UpdateClient(ctx, "u1", func(c *idp.Client) error { c.Name = "changed"; return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("update whose fn fails: %v", err)
	}
	want := registeredClient("u1", "tu")
	got, err := s.GetClient(ctx, "u1")
	mustNil(t, err, "get")
	equal(t, got, want, "client after a failed update")
	approved := at(2 * time.Minute)
	mustNil(t, s.UpdateClient(ctx, "u1", func(c *idp.Client) error {
		c.ID, c.CreatedAt = "ignored", at(time.Hour) // neither changes
		c.Registration.Status, c.Registration.ApprovedBy, c.Registration.ApprovedAt = idp.ClientActive, "op", &approved
		c.Scopes = []string{"agency"}
		c.Registration.TokenHash = []byte("rotated")
		c.SecretHash = []byte{1, 2}
		return nil
	}), "approve")
	want.Registration = idp.ClientRegistration{Status: idp.ClientActive, TokenHash: []byte("rotated"), InitialTokenID: "tu", ApprovedBy: "op", ApprovedAt: &approved}
	want.SecretHash = []byte{1, 2}
	got, err = s.GetClient(ctx, "u1")
	mustNil(t, err, "get approved")
	equal(t, got, want, "approved client")
	if !got.Active() {
		t.Fatal("approved client is not active")
	}
}
