package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// createAgencies registers agencies in the mobile API's store, where
// `client create --agency` looks for them.
func createAgencies(t *testing.T, m *Main, codes ...string) {
	t.Helper()
	for _, c := range codes {
		a := &mobileapi.Agency{Code: c, Name: mobileapi.Text{VI: "Cơ quan thử " + c, EN: "Test agency " + c}}
		if err := m.APIStore.CreateAgency(context.Background(), a); err != nil && !errors.Is(err, idp.ErrConflict) {
			t.Fatalf("create agency %s: %v", c, err)
		}
	}
}

func TestAgencyTokens_SQLite(t *testing.T) {
	runAgencyTokens(t, startMain(t, withResources(recordsAPI)))
}

func TestAgencyTokens_PostgresRedis(t *testing.T) {
	runAgencyTokens(t, startMain(t, scaleOption(t), withResources(recordsAPI)))
}

// runAgencyTokens: an agency-bound client's own tokens carry its agency and,
// with scope agency, are minted for the mobile API; nobody else gets the
// scope or the claim, and no citizen's token ever carries either.
func runAgencyTokens(t *testing.T, e *testEnv) {
	const code = "HN-HOANKIEM"
	createAgencies(t, e.m, code)
	api := e.m.APIURL
	id, secret := e.client(ClientSpec{Name: "Hoan Kiem back end", Scope: "agency", Agency: code, GrantTypes: []string{"client_credentials"}})
	cc := func(t *testing.T, id, secret string, form url.Values) tokenAnswer {
		t.Helper()
		form.Set("grant_type", "client_credentials")
		return postGrant(t, e.issuer, form, nil, id, secret)
	}
	agencyToken := func(t *testing.T, a tokenAnswer, wantAud ...string) map[string]any {
		t.Helper()
		tok, _ := a.body["access_token"].(string)
		if a.status != http.StatusOK || tok == "" {
			t.Fatalf("token: %d %v", a.status, a.body)
		}
		c := claimsOf(t, tok)
		if aud := audOf(t, tok); strings.Join(aud, " ") != strings.Join(wantAud, " ") {
			t.Errorf("aud %v, want %v", aud, wantAud)
		}
		if c["agency"] != code || c["kind"] != "client" || c["sub"] != id {
			t.Errorf("claims %v, want agency %s, kind client, sub %s", c, code, id)
		}
		return c
	}

	t.Run("scope agency: the mobile API's audience", func(t *testing.T) {
		c := agencyToken(t, cc(t, id, secret, url.Values{"scope": {"agency"}}), api)
		if c["scope"] != "agency" {
			t.Errorf("scope %v", c["scope"])
		}
		agencyToken(t, cc(t, id, secret, url.Values{"scope": {"agency"}, "resource": {api}}), api)
		agencyToken(t, cc(t, id, secret, url.Values{"scope": {"agency"}, "audience": {api}}), api)
		// Another known resource server, when asked for, is the audience.
		agencyToken(t, cc(t, id, secret, url.Values{"scope": {"agency"}, "resource": {recordsAPI}}), recordsAPI)
		if a := cc(t, id, secret, url.Values{"scope": {"agency"}, "resource": {"https://unknown.example/api"}}); a.status != http.StatusBadRequest || a.errorCode() != "invalid_target" {
			t.Errorf("unknown resource: %d %v, want invalid_target", a.status, a.body)
		}
	})

	t.Run("introspection tells the agency", func(t *testing.T) {
		a := cc(t, id, secret, url.Values{"scope": {"agency"}})
		tok, _ := a.body["access_token"].(string)
		status, body := postBasic(t, e.issuer+"/introspect", id, secret, url.Values{"token": {tok}})
		if status != http.StatusOK || !strings.Contains(body, `"agency":"`+code+`"`) || !strings.Contains(body, `"active":true`) {
			t.Errorf("introspect: %d %s", status, body)
		}
	})

	t.Run("a client without an agency gets neither scope nor claim", func(t *testing.T) {
		_, _, err := e.m.CreateClient(context.Background(), ClientSpec{Name: "Unbound", Scope: "agency", GrantTypes: []string{"client_credentials"}})
		if !errors.Is(err, idp.ErrInvalid) || !strings.Contains(err.Error(), "agency scope needs a client bound to an agency") {
			t.Errorf("registering scope agency without an agency: %v", err)
		}
		plain, plainSecret := e.client(ClientSpec{Scope: "registry.read", GrantTypes: []string{"client_credentials"}})
		if a := cc(t, plain, plainSecret, url.Values{"scope": {"agency"}}); a.status != http.StatusBadRequest || a.errorCode() != "invalid_scope" {
			t.Errorf("scope agency for an unbound client: %d %v, want invalid_scope", a.status, a.body)
		}
		a := cc(t, plain, plainSecret, url.Values{"scope": {"registry.read"}, "resource": {api}})
		tok, _ := a.body["access_token"].(string)
		if a.status != http.StatusOK {
			t.Fatalf("token: %d %v", a.status, a.body)
		}
		if c := claimsOf(t, tok); c["agency"] != nil {
			t.Errorf("an unbound client's token has agency %v", c["agency"])
		}

		// A client stored with the scope but no agency (a registration
		// older than the rule) is refused the scope all the same.
		legacy := &idp.Client{ID: "legacy-" + randomHex(4), Name: "Legacy", GrantTypes: []string{"client_credentials", "authorization_code"},
			RedirectURIs: []string{"http://127.0.0.1:9/callback"}, Scopes: []string{"openid", "agency"}, AuthMethod: idp.AuthSecretBasic,
			IDTokenAlg: "ES256"}
		legacySecret := idp.NewClientSecret()
		legacy.SecretHash = idp.HashClientSecret(e.m.ClientSecretKey(), legacySecret)
		if err := e.m.Store.CreateClient(context.Background(), legacy); err != nil {
			t.Fatal(err)
		}
		if a := cc(t, legacy.ID, legacySecret, url.Values{"scope": {"agency"}}); a.status != http.StatusBadRequest || a.errorCode() != "invalid_scope" {
			t.Errorf("scope agency for a legacy client without an agency: %d %v, want invalid_scope", a.status, a.body)
		}
		// Nor may it start a citizen's login with it.
		r := e.rp(legacy.ID, legacySecret, "openid", "agency")
		u, _, _, _ := authorizeURL(r)
		loc := newBrowser().follow(t, u)
		if loc.Query().Get("error") != "invalid_scope" {
			t.Errorf("/authorize with scope agency: redirected to %s, want error=invalid_scope", loc.Redacted())
		}
	})

	t.Run("a citizen's token never names an agency", func(t *testing.T) {
		// A bound client that also logs citizens in: its own tokens name
		// the agency, its citizens' tokens do not.
		both, bothSecret := e.client(ClientSpec{Scope: "openid profile offline_access", Agency: code, RedirectURIs: []string{"http://127.0.0.1:9/callback"},
			GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"}})
		a := cc(t, both, bothSecret, url.Values{"scope": {"profile"}})
		tok, _ := a.body["access_token"].(string)
		if a.status != http.StatusOK || claimsOf(t, tok)["agency"] != code {
			t.Fatalf("the bound client's own token: %d %v", a.status, a.body)
		}
		r := e.rp(both, bothSecret, "openid", "profile", "offline_access")
		citizen, _ := e.codeFlow(r, newBrowser(), e.app, oauth2.SetAuthURLParam("resource", api))
		if c := claimsOf(t, citizen.AccessToken); c["agency"] != nil || c["kind"] != "citizen" {
			t.Errorf("citizen token via an agency-bound client: %v", c)
		}
		if citizen.RefreshToken == "" {
			t.Fatal("no refresh token")
		}
		refreshed, err := r.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: citizen.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if c := claimsOf(t, refreshed.AccessToken); c["agency"] != nil || c["kind"] != "citizen" {
			t.Errorf("refreshed citizen token: %v", c)
		}
		g := postGrant(t, e.issuer, func() url.Values {
			f := grantForm(deviceAssertion(t, e.app, e.issuer+"/token", nil))
			f.Set("resource", api)
			return f
		}(), appKey(t, e.app))
		appTok, _ := g.body["access_token"].(string)
		if g.status != http.StatusOK || claimsOf(t, appTok)["agency"] != nil {
			t.Errorf("the eID app's token: %d %v", g.status, g.body)
		}
	})
}

// CreateClient checks the agency: it must exist among the mobile API's
// agencies, and be a well-formed code.
func TestCreateClient_Agency(t *testing.T) {
	m := newTestMain(t)
	createAgencies(t, m, "BTP")
	ctx := context.Background()
	c, secret, err := m.CreateClient(ctx, ClientSpec{Name: "Bộ Tư pháp back end", Scope: "agency", Agency: "BTP"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Agency != "BTP" || strings.Join(c.GrantTypes, " ") != "client_credentials" || secret == "" {
		t.Errorf("client = %+v: want agency BTP and client_credentials by default", c)
	}
	got, err := m.Store.GetClient(ctx, c.ID)
	if err != nil || got.Agency != "BTP" {
		t.Errorf("stored client: %+v, %v", got, err)
	}
	if cached, err := m.Provider.Clients().GetClient(ctx, c.ID); err != nil || cached.Agency != "BTP" {
		t.Errorf("cached client lookup: %+v, %v", cached, err)
	}
	before, _ := m.Store.ListClients(ctx)
	for name, spec := range map[string]ClientSpec{
		"unknown agency":   {Name: "X", Scope: "agency", Agency: "NO-SUCH"},
		"malformed code":   {Name: "X", Scope: "agency", Agency: "-bad code"},
		"scope with code":  {Name: "X", Scope: "agency openid", Agency: "BTP", GrantTypes: []string{"authorization_code", "client_credentials"}},
		"scope, no agency": {Name: "X", Scope: "agency", GrantTypes: []string{"client_credentials"}},
	} {
		if _, _, err := m.CreateClient(ctx, spec); !errors.Is(err, idp.ErrInvalid) || !strings.Contains(err.Error(), "agency") {
			t.Errorf("%s: CreateClient = %v, want an invalid agency registration", name, err)
		}
	}
	if after, _ := m.Store.ListClients(ctx); len(after) != len(before) {
		t.Errorf("refused registrations stored clients: %d, then %d", len(before), len(after))
	}
}

// `client create --agency` binds the client; show and list print it.
func TestCLI_ClientAgency(t *testing.T) {
	dir := t.TempDir()
	m := NewMain()
	m.Config.DataDir = dir
	if err := m.OpenStorage(context.Background()); err != nil {
		t.Fatal(err)
	}
	createAgencies(t, m, "HN-HOANKIEM")
	_ = m.Close()

	code, out, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Hoàn Kiếm", "--scope", "agency", "--agency", "HN-HOANKIEM")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	var created map[string]any
	decode(t, out, &created)
	id, _ := created["client_id"].(string)
	if created["agency"] != "HN-HOANKIEM" || fmt.Sprint(created["grant_types"]) != "[client_credentials]" || created["scope"] != "agency" {
		t.Errorf("create output = %v", created)
	}
	if code, out, _ = cli(t, nil, "client", "show", id, "--data-dir", dir); code != 0 || !strings.Contains(out, `"agency": "HN-HOANKIEM"`) {
		t.Errorf("show: exit %d: %s", code, out)
	}
	code, out, _ = cli(t, nil, "client", "list", "--data-dir", dir)
	var list []map[string]any
	decodeList(t, out, "clients", &list)
	for _, c := range list {
		want := ""
		if c["client_id"] == id {
			want = "HN-HOANKIEM"
		}
		if v, ok := c["agency"]; code != 0 || !ok || v != want {
			t.Errorf("list: %s has agency %v (present %v), want %q", c["client_id"], v, ok, want)
		}
	}
	code, _, errs = cli(t, nil, "client", "create", "--data-dir", dir, "--name", "X", "--scope", "agency", "--agency", "NO-SUCH")
	if code != 1 || !strings.Contains(errs, `no agency has the code "NO-SUCH"`) {
		t.Errorf("unknown agency: exit %d: %s", code, errs)
	}
}
