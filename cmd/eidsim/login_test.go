package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	consentsql "github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// startIDP serves the real identity provider (SQLite store, eID service,
// fosite provider, HTTP layer) on a test server with one citizen.
func startIDP(t *testing.T) (issuer string, svc *eid.Service) {
	t.Helper()
	p := startIDPFor(t)
	return p.issuer, p.svc
}

// idpEnv is a running identity provider.
type idpEnv struct {
	issuer   string
	svc      *eid.Service
	store    *sqlstore.Store
	provider *oidc.Provider
	consent  *consent.Service
	grants   atomic.Int64 // token requests served
}

// startIDPFor is startIDP whose access tokens may also be minted for the
// resource servers named.
func startIDPFor(t *testing.T, resources ...string) *idpEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store := sqlite.New(db)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateCitizens(ctx, []*idp.Citizen{{ID: "c-1", PersonalID: "001099012345", FamilyName: "Trần", GivenName: "Thị Bình"}}); err != nil {
		t.Fatal(err)
	}
	sealer, err := keyset.NewSealer(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	keys := keyset.New(store, sealer, keyset.Options{})
	if err := keys.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	e := &idpEnv{store: store}
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			e.grants.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	e.issuer = srv.URL
	e.svc = eid.New(store, store, eid.Config{Issuer: srv.URL, CodeKey: bytes.Repeat([]byte{1}, 32)})
	e.provider = oidc.New(oidc.Config{
		Issuer: srv.URL, GlobalSecret: bytes.Repeat([]byte{2}, 32), SecretKey: bytes.Repeat([]byte{3}, 32),
		Resources: resources, DeviceGrant: e.svc,
	}, store, store, keys)
	cs := consentsql.New(db, sqldb.SQLite)
	if err := cs.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e.consent = &consent.Service{Store: cs, Signer: keyset.JWSSigner{Keys: keys}, Issuer: srv.URL}
	h = web.New(web.Config{Issuer: srv.URL, CookieKey: bytes.Repeat([]byte{4}, 32), Consent: e.consent}, e.provider, store, store, e.svc, keys).Handler()
	return e
}

// TestRun_Login: eidsim enroll then eidsim login against the real IdP; the
// login is the JWT-bearer grant signed by the device key.
func TestRun_Login(t *testing.T) {
	ctx := context.Background()
	issuer, svc := startIDP(t)
	code, _, err := svc.Activate(ctx, "001099012345", idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	var out, errOut bytes.Buffer
	if c := run(ctx, []string{"enroll", "--home", home, "--idp", issuer, "--personal-id", "001099012345", "--activation-code", code}, &out, &errOut); c != 0 {
		t.Fatalf("enroll: exit %d: %s", c, errOut.String())
	}
	out.Reset()
	if c := run(ctx, []string{"login", "--home", home}, &out, &errOut); c != 0 {
		t.Fatalf("login: exit %d: %s", c, errOut.String())
	}
	if !strings.Contains(out.String(), "logged in to "+issuer+" as c-1\n") {
		t.Errorf("login output %q", out.String())
	}
	b, err := os.ReadFile(filepath.Join(home, "tokens.json")) //nolint:gosec // the test's own temporary directory
	if err != nil {
		t.Fatal(err)
	}
	var toks map[string]any
	if err := json.Unmarshal(b, &toks); err != nil {
		t.Fatal(err)
	}
	if toks["access_token"] == "" || toks["id_token"] == "" || toks["subject"] != "c-1" {
		t.Errorf("tokens.json = %s", b)
	}
	if _, ok := toks["refresh_token"]; ok {
		t.Errorf("tokens.json holds a refresh token")
	}

	// After the citizen revokes the device, login fails with invalid_grant.
	var dev struct {
		DeviceID string `json:"device_id"`
	}
	raw, _ := os.ReadFile(filepath.Join(home, "device.json")) //nolint:gosec // the test's own temporary directory
	_ = json.Unmarshal(raw, &dev)
	if err := svc.RevokeDevice(ctx, "c-1", dev.DeviceID); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if c := run(ctx, []string{"login", "--home", home}, &out, &errOut); c != 1 || !strings.Contains(errOut.String(), "invalid_grant") {
		t.Errorf("login with a revoked device: exit %d, stderr %q", c, errOut.String())
	}
}

// TestRun_ApproveAppLink: eidsim approve takes the https app link of the
// same-device button as well as the QR payload, against the real IdP, and
// refuses a link to another IdP.
func TestRun_ApproveAppLink(t *testing.T) {
	ctx := context.Background()
	p := startIDPFor(t)
	issuer, svc := p.issuer, p.svc
	if err := p.store.CreateClient(ctx, &idp.Client{ID: "dvc", Name: "Cổng DVC", RedirectURIs: []string{"https://dvc.example/cb"},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile"}, AuthMethod: idp.AuthNone, IDTokenAlg: "ES256"}); err != nil {
		t.Fatal(err)
	}
	code, _, err := svc.Activate(ctx, "001099012345", idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	var out, errOut bytes.Buffer
	if c := run(ctx, []string{"enroll", "--home", home, "--idp", issuer, "--personal-id", "001099012345", "--activation-code", code}, &out, &errOut); c != 0 {
		t.Fatalf("enroll: exit %d: %s", c, errOut.String())
	}
	lr := &eid.LoginRequest{ClientID: "dvc", ClientName: "Cổng DVC", Claims: []eid.ClaimRequest{{Name: "name"}},
		PurposeCode: "login", Purpose: "Đăng nhập", Level: idp.LevelSubstantial, BrowserKey: []byte("browser-key-hash")}
	if err := svc.NewLogin(ctx, lr); err != nil {
		t.Fatal(err)
	}
	link := eid.AppLink(issuer, lr.ID)
	other := eid.AppLink("https://evil.example", lr.ID)
	out.Reset()
	errOut.Reset()
	if c := run(ctx, []string{"approve", "--home", home, other}, &out, &errOut); c != 1 || !strings.Contains(errOut.String(), "https://evil.example") {
		t.Errorf("approve a link to another IdP: exit %d: %s", c, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if c := run(ctx, []string{"approve", "--home", home, "--json", link}, &out, &errOut); c != 0 {
		t.Fatalf("approve %s: exit %d: %s", link, c, errOut.String())
	}
	var got map[string]any
	// An app link is the same device: no pick, a return URL with the code
	// for the browser that started the login.
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got["decision"] != "approve" || got["mode"] != eid.ModeSameDevice ||
		got["match_number"] != nil || !strings.HasPrefix(fmt.Sprint(got["return_url"]), issuer+"/login/continue?id="+lr.ID+"&code=") {
		t.Errorf("approve output = %s (%v)", out.String(), err)
	}
	if _, st, err := svc.Lookup(ctx, lr.ID); err != nil || st != eid.StatusApproved {
		t.Errorf("request after approve: %s, %v", st, err)
	}
}

// TestRun_PendingApprove: eidsim pending lists a login sent to the
// citizen's devices (login_hint), and eidsim approve takes its id.
func TestRun_PendingApprove(t *testing.T) {
	ctx := context.Background()
	p := startIDPFor(t)
	issuer, svc := p.issuer, p.svc
	if err := p.store.CreateClient(ctx, &idp.Client{ID: "dvc", Name: "Cổng DVC", RedirectURIs: []string{"https://dvc.example/cb"},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile"}, AuthMethod: idp.AuthNone, IDTokenAlg: "ES256"}); err != nil {
		t.Fatal(err)
	}
	code, _, err := svc.Activate(ctx, "001099012345", idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	var out, errOut bytes.Buffer
	if c := run(ctx, []string{"enroll", "--home", home, "--idp", issuer, "--personal-id", "001099012345", "--activation-code", code}, &out, &errOut); c != 0 {
		t.Fatalf("enroll: exit %d: %s", c, errOut.String())
	}
	pending := func() []eid.AppView {
		t.Helper()
		out.Reset()
		errOut.Reset()
		if c := run(ctx, []string{"pending", "--home", home}, &out, &errOut); c != 0 {
			t.Fatalf("pending: exit %d: %s", c, errOut.String())
		}
		var vs []eid.AppView
		if err := json.Unmarshal(out.Bytes(), &vs); err != nil {
			t.Fatalf("pending output %q: %v", out.String(), err)
		}
		return vs
	}
	if vs := pending(); len(vs) != 0 {
		t.Fatalf("pending before any login: %v", vs)
	}
	// What the web layer does for login_hint=001099012345 (10-minute window).
	prompt, ok, err := svc.ReservePrompt(ctx, "test-key", 5, 10*time.Minute)
	if err != nil || !ok {
		t.Fatalf("ReservePrompt: %v %v", ok, err)
	}
	lr := &eid.LoginRequest{ClientID: "dvc", ClientName: "Cổng DVC", Claims: []eid.ClaimRequest{{Name: "name"}},
		PurposeCode: "login", Purpose: "Đăng nhập", Level: idp.LevelSubstantial, BrowserKey: []byte("k"), Target: "c-1"}
	if err := svc.NewLogin(ctx, lr); err != nil {
		t.Fatal(err)
	}
	if err := svc.Index(ctx, lr, prompt); err != nil {
		t.Fatal(err)
	}
	if vs := pending(); len(vs) != 1 || vs[0].RequestID != lr.ID || !slices.Contains(vs[0].MatchChoices, lr.MatchNumber) {
		t.Fatalf("pending = %+v, want %s", vs, lr.ID)
	}
	out.Reset()
	errOut.Reset()
	if c := run(ctx, []string{"approve", "--home", home, "--match", lr.MatchNumber, lr.ID}, &out, &errOut); c != 0 {
		t.Fatalf("approve %s: exit %d: %s", lr.ID, c, errOut.String())
	}
	if _, st, err := svc.Lookup(ctx, lr.ID); err != nil || st != eid.StatusApproved {
		t.Errorf("request after approve: %s, %v", st, err)
	}
	if vs := pending(); len(vs) != 0 {
		t.Errorf("pending after approval: %v", vs)
	}
}
