package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/postgres"
)

// testEnv is one running OneDoor with an enrolled eID app.
type testEnv struct {
	t      testing.TB
	m      *Main
	app    *eidapp.App
	issuer string
}

type envOption func(c *Config)

// newTestMain runs OneDoor on :0 with a temp SQLite file (or the backends
// the options choose) and stops it when the test ends.
func newTestMain(tb testing.TB, opts ...envOption) *Main {
	tb.Helper()
	return newTestMainLogging(tb, testWriter{tb}, slog.LevelWarn, opts...)
}

// newTestMainLogging is newTestMain with the server's log going to w.
func newTestMainLogging(tb testing.TB, w io.Writer, level slog.Level, opts ...envOption) *Main {
	tb.Helper()
	m := NewMain()
	m.Config.IDPAddr = "127.0.0.1:0"
	m.Config.APIAddr = "127.0.0.1:0"
	m.Config.Issuer = ""
	m.Config.DataDir = tb.TempDir()
	m.Config.RefreshGrace = 2 * time.Second
	m.Config.ShutdownGrace = 2 * time.Second
	m.Config.ShutdownDelay = 0
	// Tests share one Redis: a prefix per server keeps their state apart.
	m.Config.RedisPrefix = "test-" + randomHex(4) + ":"
	for _, o := range opts {
		o(&m.Config)
	}
	m.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	if err := m.Run(context.Background()); err != nil {
		tb.Fatalf("run: %v", err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	return m
}

// startMain runs OneDoor and enrolls one demo citizen's app.
func startMain(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	m := newTestMain(t, opts...)
	env := &testEnv{t: t, m: m, issuer: m.Issuer}
	if err := m.ImportCitizens(context.Background(), demoCitizens[:2]); err != nil && !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("import: %v", err)
	}
	env.app = env.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	return env
}

func (e *testEnv) enroll(pid string, level idp.Level) *eidapp.App {
	e.t.Helper()
	ctx := context.Background()
	code, _, err := e.m.EID.Activate(ctx, pid, level)
	if err != nil {
		e.t.Fatalf("activate: %v", err)
	}
	app, err := eidapp.Open(e.t.TempDir())
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := app.Enroll(ctx, e.issuer, pid, code, "test phone"); err != nil {
		e.t.Fatalf("enroll: %v", err)
	}
	return app
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client registers a confidential agency client.
func (e *testEnv) client(spec ClientSpec) (id, secret string) {
	e.t.Helper()
	if spec.Name == "" {
		spec.Name = "Test agency"
	}
	if spec.RedirectURIs == nil && !contains(spec.GrantTypes, "client_credentials") {
		spec.RedirectURIs = []string{"http://127.0.0.1:9/callback"}
	}
	c, s, err := e.m.CreateClient(context.Background(), spec)
	if err != nil {
		e.t.Fatalf("create client: %v", err)
	}
	return c.ID, s
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// browser is a cookie-keeping user agent that stops at the client's redirect.
type browser struct {
	*http.Client
}

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{&http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: citizenEyes{http.DefaultTransport}, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var (
	qrRE    = regexp.MustCompile(`id="eid-qr" data-payload="([^"]+)" data-status-url="([^"]+)"`)
	matchRE = regexp.MustCompile(`id="match-number">([0-9]{2})<`)
)

// shownMatch holds, by login request id, the match number a login page
// showed in a browser: what the citizen reads there and picks in the app.
var shownMatch sync.Map

// citizenEyes reads every login page its browser receives as the citizen
// would, noting the match number it shows for pick.
type citizenEyes struct{ next http.RoundTripper }

func (c citizenEyes) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	noteLoginPage(body)
	return resp, nil
}

// noteLoginPage records the match number a login page shows.
func noteLoginPage(body []byte) {
	q, m := qrRE.FindSubmatch(body), matchRE.FindSubmatch(body)
	if q == nil || m == nil {
		return
	}
	if _, id, err := eid.ParsePayload(html.UnescapeString(string(q[1]))); err == nil {
		shownMatch.Store(id, string(m[1]))
	}
}

// pick is the number the citizen picks in the app opened by payload: the
// one the login page showed in a browser for a QR payload, none for an app
// link (the same-device approval returns a code instead).
func pick(payload string) string {
	_, id, err := eid.ParsePayload(payload)
	if err != nil || eid.PayloadMode(payload) == eid.ModeSameDevice {
		return ""
	}
	n, _ := shownMatch.Load(id)
	s, _ := n.(string)
	return s
}

// loginPage opens an authorization URL and returns the QR payload and status
// URL from the login page.
func (b *browser) loginPage(t testing.TB, authURL string) (payload, statusURL string) {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: status %d, Location %q, body %.300s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	m := qrRE.FindSubmatch(body)
	noteLoginPage(body)
	if m == nil {
		t.Fatalf("no eid-qr element in the login page: %.500s", body)
	}
	return html.UnescapeString(string(m[1])), html.UnescapeString(string(m[2]))
}

// status polls the status URL once.
func (b *browser) status(t testing.TB, statusURL string) (string, string) {
	t.Helper()
	resp, err := b.Get(statusURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Status     string `json:"status"`
		RedirectTo string `json:"redirect_to"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("status body: %v", err)
	}
	return s.Status, s.RedirectTo
}

// follow GETs u and returns the redirect target it answers with.
func (b *browser) follow(t testing.TB, u string) *url.URL {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: status %d, want a redirect; body %.300s", u, resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// login runs a whole browser login, approved in the app, and returns the
// redirect to the client.
func (e *testEnv) login(b *browser, authURL string, app *eidapp.App, share []string) *url.URL {
	e.t.Helper()
	payload, statusURL := b.loginPage(e.t, authURL)
	if st, _ := b.status(e.t, statusURL); st != "pending" {
		e.t.Fatalf("status before approval = %q, want pending", st)
	}
	if _, err := app.Approve(context.Background(), payload, pick(payload), false, share); err != nil {
		e.t.Fatalf("approve: %v", err)
	}
	st, next := b.status(e.t, statusURL)
	if st != "approved" || next == "" {
		e.t.Fatalf("status after approval = %q, %q", st, next)
	}
	return b.follow(e.t, next)
}

// rp is a relying party built from the real client libraries.
type rp struct {
	conf     *oauth2.Config
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
}

func (e *testEnv) rp(clientID, secret string, scopes ...string) *rp {
	e.t.Helper()
	p, err := gooidc.NewProvider(context.Background(), e.issuer)
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	if len(scopes) == 0 {
		scopes = []string{gooidc.ScopeOpenID, "profile", "eid", gooidc.ScopeOfflineAccess}
	}
	ep := p.Endpoint()
	// Fixed, so x/oauth2 does not retry a real failure with client_secret_post.
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &rp{
		conf: &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: ep,
			RedirectURL: "http://127.0.0.1:9/callback", Scopes: scopes},
		provider: p,
		verifier: p.Verifier(&gooidc.Config{ClientID: clientID, SupportedSigningAlgs: []string{"ES256", "RS256"}}),
	}
}

// codeFlow logs the citizen in and exchanges the code; it returns the tokens
// and the verified ID token.
func (e *testEnv) codeFlow(r *rp, b *browser, app *eidapp.App, extra ...oauth2.AuthCodeOption) (*oauth2.Token, *gooidc.IDToken) {
	e.t.Helper()
	state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}, extra...)
	loc := e.login(b, r.conf.AuthCodeURL(state, opts...), app, nil)
	return e.exchange(r, loc, state, nonce, verifier)
}

func (e *testEnv) exchange(r *rp, loc *url.URL, state, nonce, verifier string) (*oauth2.Token, *gooidc.IDToken) {
	e.t.Helper()
	ctx := context.Background()
	q := loc.Query()
	if q.Get("error") != "" {
		e.t.Fatalf("authorization error: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state {
		e.t.Fatalf("state = %q, want %q", q.Get("state"), state)
	}
	if q.Get("iss") != e.issuer {
		e.t.Fatalf("iss = %q, want %q (RFC 9207)", q.Get("iss"), e.issuer)
	}
	tok, err := r.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := r.verifier.Verify(ctx, raw)
	if err != nil {
		e.t.Fatalf("verify ID token: %v", err)
	}
	if idt.Nonce != nonce {
		e.t.Fatalf("nonce = %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		e.t.Fatalf("at_hash: %v", err)
	}
	return tok, idt
}

func TestEndToEnd_SQLite(t *testing.T) {
	runEndToEnd(t, startMain(t))
}

func TestEndToEnd_PostgresRedis(t *testing.T) {
	runEndToEnd(t, startMain(t, scaleOption(t)))
}

// scaleOption runs Main as replicas run at scale: a fresh PostgreSQL schema,
// Redis, and a master key file (which PostgreSQL deployments must provide).
func scaleOption(t *testing.T) envOption {
	dsn, redisURL := scaleBackends(t)
	key := sharedMasterKey(t)
	return func(c *Config) {
		c.PostgresDSN, c.RedisURL, c.MasterKeyFile = dsn, redisURL, key
	}
}

// scaleBackends returns a fresh PostgreSQL schema and the Redis URL, or
// skips (fails when CI=true) if they are not configured.
func scaleBackends(t *testing.T) (dsn, redisURL string) {
	t.Helper()
	base, redisURL := os.Getenv("ONEDOOR_TEST_POSTGRES_DSN"), os.Getenv("ONEDOOR_TEST_REDIS_URL")
	if base == "" || redisURL == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but ONEDOOR_TEST_POSTGRES_DSN or ONEDOOR_TEST_REDIS_URL is not set")
		}
		t.Skip("ONEDOOR_TEST_POSTGRES_DSN and ONEDOOR_TEST_REDIS_URL not set")
	}
	return freshSchema(t, base), redisURL
}

// freshSchema creates a PostgreSQL schema dropped when the test ends and
// returns a DSN whose connections use it.
func freshSchema(tb testing.TB, base string) string {
	tb.Helper()
	ctx := context.Background()
	db, err := postgres.Open(ctx, base)
	if err != nil {
		tb.Fatal(err)
	}
	schema := "e2e_" + strings.ToLower(randomHex(6))
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_, _ = db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = db.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// sharedMasterKey gives both nodes of a cluster test the same master key.
func sharedMasterKey(tb testing.TB) string {
	p := filepath.Join(tb.TempDir(), "master.key")
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	if err := os.WriteFile(p, []byte(b64(k)), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

func runEndToEnd(t *testing.T, e *testEnv) {
	ctx := context.Background()
	siteID, siteSecret := e.client(ClientSpec{Scope: "openid profile eid phone address offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	site := e.rp(siteID, siteSecret, gooidc.ScopeOpenID, "profile", "eid", "phone", gooidc.ScopeOfflineAccess)
	b := newBrowser()

	var tok *oauth2.Token
	t.Run("discovery", func(t *testing.T) {
		var d map[string]any
		if err := site.provider.Claims(&d); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"pushed_authorization_request_endpoint", "introspection_endpoint", "revocation_endpoint", "end_session_endpoint"} {
			if d[k] == nil {
				t.Errorf("discovery lacks %s", k)
			}
		}
		if d["authorization_response_iss_parameter_supported"] != true {
			t.Error("discovery does not announce RFC 9207 iss")
		}
	})

	t.Run("code flow with PKCE, ID token and userinfo", func(t *testing.T) {
		var idt *gooidc.IDToken
		tok, idt = e.codeFlow(site, b, e.app)
		var claims struct {
			ACR string   `json:"acr"`
			AMR []string `json:"amr"`
			SID string   `json:"sid"`
			AZP string   `json:"azp"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.ACR != string(idp.LevelHigh) || claims.SID == "" || claims.AZP != siteID {
			t.Errorf("ID token claims = %+v", claims)
		}
		ui, err := site.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		var u map[string]any
		_ = ui.Claims(&u)
		if u["sub"] != idt.Subject || u["name"] != "Nguyễn Văn Demo" || u["personal_id"] != demoCitizens[0].PersonalID {
			t.Errorf("userinfo = %v", u)
		}
		if idt.Subject == demoCitizens[0].PersonalID {
			t.Error("sub must not be the personal id")
		}
		if _, ok := u["phone_number"]; !ok {
			t.Error("phone_number was requested and shared but not released")
		}
	})

	t.Run("introspection", func(t *testing.T) {
		got := introspect(t, e.issuer, siteID, siteSecret, tok.AccessToken)
		if got["active"] != true || got["client_id"] != siteID || !strings.Contains(fmt.Sprint(got["scope"]), "openid") {
			t.Errorf("introspection = %v", got)
		}
		if got := introspect(t, e.issuer, siteID, siteSecret, "not-a-token"); got["active"] != false {
			t.Errorf("garbage introspected as %v", got)
		}
	})

	t.Run("refresh rotation, grace window and reuse detection", func(t *testing.T) {
		rt1 := tok.RefreshToken
		if rt1 == "" {
			t.Fatal("no refresh token for offline_access")
		}
		t2 := refresh(t, site, rt1)
		if t2.RefreshToken == "" || t2.RefreshToken == rt1 {
			t.Fatal("refresh token not rotated")
		}
		// Within the grace window a client that lost the response may retry.
		t3 := refresh(t, site, rt1)
		time.Sleep(e.m.Config.RefreshGrace + 500*time.Millisecond)
		if _, err := refreshErr(site, rt1); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("reuse after grace: err = %v, want invalid_grant", err)
		}
		// Reuse revokes the whole family and its access tokens.
		if _, err := refreshErr(site, t3.RefreshToken); err == nil {
			t.Error("a token of the revoked family still refreshes")
		}
		if got := introspect(t, e.issuer, siteID, siteSecret, t3.AccessToken); got["active"] != false {
			t.Errorf("access token of a revoked family is still active: %v", got)
		}
	})

	t.Run("single sign-on and revocation", func(t *testing.T) {
		// The browser still has its session: a second login needs no approval.
		r := e.rp(siteID, siteSecret)
		state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
		loc := b.follow(t, r.conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
		tok, _ := e.exchange(r, loc, state, nonce, verifier)
		if err := revoke(e.issuer, siteID, siteSecret, tok.AccessToken); err != nil {
			t.Fatal(err)
		}
		if got := introspect(t, e.issuer, siteID, siteSecret, tok.AccessToken); got["active"] != false {
			t.Errorf("revoked access token introspects as %v", got)
		}
		if _, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok)); err == nil {
			t.Error("userinfo accepted a revoked access token")
		}
		if err := revoke(e.issuer, siteID, siteSecret, tok.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if _, err := refreshErr(r, tok.RefreshToken); err == nil {
			t.Error("a revoked refresh token still refreshes")
		}
	})

	t.Run("code is single use", func(t *testing.T) {
		r := e.rp(siteID, siteSecret)
		state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
		loc := b.follow(t, r.conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
		code := loc.Query().Get("code")
		const n = 8
		var wg sync.WaitGroup
		var mu sync.Mutex
		var wins []*oauth2.Token
		var errs []error
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				wins = append(wins, tok)
			}()
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("%d of %d concurrent redemptions won, want exactly 1 (errors: %v)", len(wins), n, errs)
		}
		for _, err := range errs {
			if !strings.Contains(err.Error(), "invalid_grant") {
				t.Errorf("losing redemption: %v, want invalid_grant", err)
			}
		}
		// A later replay revokes what the code issued.
		if _, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier)); err == nil {
			t.Error("replayed code accepted")
		}
		if got := introspect(t, e.issuer, siteID, siteSecret, wins[0].AccessToken); got["active"] != false {
			t.Errorf("tokens of a replayed code are still active: %v", got)
		}
	})

	t.Run("client_credentials with client_secret_basic", func(t *testing.T) {
		id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
		cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/token", Scopes: []string{"registry.read"}, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := introspect(t, e.issuer, id, secret, tok.AccessToken)
		if got["active"] != true || got["scope"] != "registry.read" {
			t.Errorf("introspection = %v", got)
		}
		bad := cc
		bad.ClientSecret = "wrong"
		if _, err := bad.Token(ctx); err == nil || !strings.Contains(err.Error(), "invalid_client") {
			t.Errorf("wrong secret: %v, want invalid_client", err)
		}
	})

	t.Run("client_credentials with private_key_jwt", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
		f := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(f, jwks, 0o600); err != nil {
			t.Fatal(err)
		}
		id, _ := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read", AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: f})
		for _, aud := range []string{e.issuer + "/token", e.issuer} {
			assertion := clientAssertion(t, key, id, aud)
			status, body := postForm(t, e.issuer+"/token", url.Values{
				"grant_type": {"client_credentials"}, "scope": {"registry.read"}, "client_id": {id},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
			})
			if status != http.StatusOK {
				t.Fatalf("aud %s: status %d: %s", aud, status, body)
			}
			// The same assertion again is a replay.
			status, body = postForm(t, e.issuer+"/token", url.Values{
				"grant_type": {"client_credentials"}, "client_id": {id},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion},
			})
			if status != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") {
				t.Errorf("replayed assertion: %d %s, want 401 invalid_client", status, body)
			}
		}
		// Garbage assertions are invalid_client, never a 500.
		expired := func() string {
			now := time.Now()
			tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
				Issuer: id, Subject: id, Audience: jwt.ClaimStrings{e.issuer + "/token"}, ID: randomString(16),
				IssuedAt: jwt.NewNumericDate(now.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(now.Add(-50 * time.Minute)),
			})
			tok.Header["kid"] = "k1"
			s, _ := tok.SignedString(key)
			return s
		}()
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for _, a := range []string{"x", "a.b.c", clientAssertion(t, key, id, "https://elsewhere.example"), expired, clientAssertion(t, other, id, e.issuer)} {
			status, body := postForm(t, e.issuer+"/token", url.Values{
				"grant_type": {"client_credentials"}, "client_id": {id},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a},
			})
			if status != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") {
				t.Errorf("assertion %.20q: status %d %s, want 401 invalid_client", a, status, body)
			}
		}
	})

	t.Run("pushed authorization request", func(t *testing.T) {
		id, secret := e.client(ClientSpec{Scope: "openid profile", PARRequired: true})
		r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
		state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
		// Without PAR the request is refused before any login page.
		loc := b.follow(t, r.conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
		if loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("authorize without PAR: %v", loc)
		}
		form := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {r.conf.RedirectURL},
			"scope": {"openid profile"}, "state": {state}, "nonce": {nonce},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/par", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var par struct {
			RequestURI string `json:"request_uri"`
			ExpiresIn  int    `json:"expires_in"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&par)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || par.RequestURI == "" {
			t.Fatalf("PAR: status %d, %+v", resp.StatusCode, par)
		}
		authURL := e.issuer + "/authorize?" + url.Values{"client_id": {id}, "request_uri": {par.RequestURI}}.Encode()
		// A fresh browser, so the login goes through the app.
		loc = e.login(newBrowser(), authURL, e.app, nil)
		if _, idt := e.exchange(r, loc, state, nonce, verifier); idt.Subject == "" {
			t.Fatal("no subject")
		}
	})

	t.Run("eID app logs in to itself", func(t *testing.T) {
		toks, err := e.app.Login(ctx)
		if err != nil {
			t.Fatalf("eidsim login: %v", err)
		}
		if toks.AccessToken == "" || toks.IDToken == "" || toks.Subject == "" {
			t.Errorf("app tokens incomplete: %+v", toks)
		}
	})
}

func refresh(t *testing.T, r *rp, rt string) *oauth2.Token {
	t.Helper()
	tok, err := refreshErr(r, rt)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return tok
}

func refreshErr(r *rp, rt string) (*oauth2.Token, error) {
	return r.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}).Token()
}

func postForm(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func introspect(t *testing.T, issuer, id, secret, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("introspect: status %d, %v", resp.StatusCode, err)
	}
	return out
}

func revoke(issuer, id, secret, token string) error {
	req, _ := http.NewRequest(http.MethodPost, issuer+"/revoke", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("revoke: %d %s", resp.StatusCode, b)
	}
	return nil
}

func clientAssertion(t *testing.T, key *ecdsa.PrivateKey, clientID, aud string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer: clientID, Subject: clientID, Audience: jwt.ClaimStrings{aud}, ID: randomString(16),
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
