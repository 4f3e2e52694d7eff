package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
)

// The FAPI 2.0 Security Profile per client (idp.ProfileFAPI2), driven as a
// FAPI 2.0 client would: PAR with private_key_jwt and dpop_jkt, the eID
// app's approval, the code exchanged with a DPoP proof, the ID token checked
// by coreos/go-oidc, userinfo and refresh with DPoP. golang.org/x/oauth2
// speaks neither PAR nor DPoP, so those requests are built here with
// go-jose (dpopClient) and golang-jwt (assertion).

const fapi2Redirect = "https://rp.fapi.example/cb"

// startFAPI2Env is startMain with the server on clk.
func startFAPI2Env(t *testing.T, clk *clock, opts ...envOption) *testEnv {
	t.Helper()
	m := NewMain()
	m.Now = clk.Now
	m.Config.IDPAddr, m.Config.APIAddr, m.Config.Issuer, m.Config.DataDir = "127.0.0.1:0", "127.0.0.1:0", "", t.TempDir()
	m.Config.ShutdownGrace, m.Config.ShutdownDelay = 2*time.Second, 0
	m.Config.RedisPrefix = "test-" + randomHex(4) + ":"
	for _, o := range opts {
		o(&m.Config)
	}
	m.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	if err := m.ImportCitizens(context.Background(), demoCitizens[:2]); err != nil && !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("import: %v", err)
	}
	e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	return e
}

// fapiClient is a FAPI 2.0 relying party: its assertion key, its DPoP key
// and the server's clock (its requests must not look stale when the test
// moves that clock).
type fapiClient struct {
	e      *testEnv
	id     string
	key    any
	kid    string
	method jwt.SigningMethod
	dpop   *dpopClient
	now    func() time.Time
}

// newFAPI2Client registers a fapi2 client with an ES256 key through
// `client create`'s code path.
func newFAPI2Client(t *testing.T, e *testEnv, clk *clock) *fapiClient {
	t.Helper()
	key := newECKey(t)
	f := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(f, publicJWKS(t, signer{kid: "fapi-1", key: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	id, secret := e.client(ClientSpec{Profile: idp.ProfileFAPI2, AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: f,
		RedirectURIs: []string{fapi2Redirect}, Scope: "openid profile offline_access"})
	if secret != "" {
		t.Fatal("a fapi2 client got a secret")
	}
	d := newDPoPClient(t)
	d.now = clk.Now
	return &fapiClient{e: e, id: id, key: key, kid: "fapi-1", method: jwt.SigningMethodES256, dpop: d, now: clk.Now}
}

// auth adds a fresh client assertion to form; FAPI 2.0 clients send the
// issuer as its audience.
func (f *fapiClient) auth(t *testing.T, form url.Values) url.Values {
	t.Helper()
	out := url.Values{}
	for k, v := range form {
		out[k] = v
	}
	out.Set("client_id", f.id)
	out.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
	out.Set("client_assertion", assertion{method: f.method, key: f.key, kid: f.kid, clientID: f.id, aud: f.e.issuer, exp: f.now().Add(time.Minute)}.sign(t))
	return out
}

// par pushes an authorization request; bind adds dpop_jkt and a proof.
func (f *fapiClient) par(t *testing.T, verifier string, bind bool) (int, map[string]any) {
	t.Helper()
	form := url.Values{"response_type": {"code"}, "redirect_uri": {fapi2Redirect}, "scope": {"openid profile offline_access"},
		"state": {randomString(12)}, "nonce": {randomString(12)},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	if bind {
		form.Set("dpop_jkt", f.dpop.jkt(t))
	}
	req, _ := http.NewRequest(http.MethodPost, f.e.issuer+"/par", strings.NewReader(f.auth(t, form).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bind {
		req.Header.Set("DPoP", f.dpop.proof(t, http.MethodPost, f.e.issuer+"/par", ""))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// login pushes a request, has the citizen approve it in the eID app and
// returns the code with its verifier.
func (f *fapiClient) login(t *testing.T, bind bool) (code, verifier string) {
	t.Helper()
	verifier = oauth2.GenerateVerifier()
	st, out := f.par(t, verifier, bind)
	uri, _ := out["request_uri"].(string)
	if st != http.StatusCreated || uri == "" {
		t.Fatalf("PAR: %d %v", st, out)
	}
	loc := f.e.login(newBrowser(), f.e.issuer+"/authorize?"+url.Values{"client_id": {f.id}, "request_uri": {uri}}.Encode(), f.e.app, nil)
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), fapi2Redirect+"?") || q.Get("code") == "" || q.Get("iss") != f.e.issuer {
		t.Fatalf("authorization response %s: want the code and iss (RFC 9207) at the registered URI", loc)
	}
	return q.Get("code"), verifier
}

func (f *fapiClient) exchange(t *testing.T, code, verifier string, d *dpopClient) tokenReply {
	t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {fapi2Redirect}, "code_verifier": {verifier}}
	return dpopToken(t, f.e.issuer, "", "", f.auth(t, form), d)
}

func TestFAPI2_SQLite(t *testing.T) {
	clk := &clock{}
	runFAPI2(t, startFAPI2Env(t, clk), clk)
}

func TestFAPI2_PostgresRedis(t *testing.T) {
	clk := &clock{}
	runFAPI2(t, startFAPI2Env(t, clk, scaleOption(t)), clk)
}

func runFAPI2(t *testing.T, e *testEnv, clk *clock) {
	ctx := context.Background()
	f := newFAPI2Client(t, e, clk)

	t.Run("end to end", func(t *testing.T) {
		code, verifier := f.login(t, true)
		r := f.exchange(t, code, verifier, f.dpop)
		at, rt, raw := r.str("access_token"), r.str("refresh_token"), r.str("id_token")
		if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, at) != f.dpop.jkt(t) || rt == "" || raw == "" {
			t.Fatalf("exchange: %d %v", r.status, r.body)
		}
		p, err := gooidc.NewProvider(ctx, e.issuer)
		if err != nil {
			t.Fatal(err)
		}
		idt, err := p.Verifier(&gooidc.Config{ClientID: f.id, SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("go-oidc verifies the ID token: %v", err)
		}
		if idt.Subject == "" || headerOf(t, raw)["alg"] != "ES256" {
			t.Errorf("ID token sub %q alg %v", idt.Subject, headerOf(t, raw)["alg"])
		}
		if st, _, body := userinfoWith(t, e.issuer, "DPoP", at, f.dpop); st != http.StatusOK || body["sub"] != idt.Subject {
			t.Errorf("userinfo with DPoP: %d %v", st, body)
		}
		if st, _, _ := userinfoWith(t, e.issuer, "Bearer", at, nil); st != http.StatusUnauthorized {
			t.Errorf("the access token as a bearer token: %d", st)
		}
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		wantTokenError(t, dpopToken(t, e.issuer, "", "", f.auth(t, form), nil), "invalid_dpop_proof", "refresh without DPoP")
		r = dpopToken(t, e.issuer, "", "", f.auth(t, form), f.dpop)
		if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, r.str("access_token")) != f.dpop.jkt(t) {
			t.Fatalf("refresh with DPoP: %d %v", r.status, r.body)
		}
	})

	t.Run("authorize without PAR is refused", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		u := e.issuer + "/authorize?" + url.Values{"response_type": {"code"}, "client_id": {f.id}, "redirect_uri": {fapi2Redirect},
			"scope": {"openid"}, "state": {randomString(12)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
			"code_challenge_method": {"S256"}}.Encode()
		resp, err := newBrowser().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode == http.StatusOK || loc == nil || loc.Query().Get("error") != "invalid_request" ||
			!strings.Contains(loc.Query().Get("error_description"), "pushed authorization request") {
			t.Errorf("authorize without PAR: %d %s, want the error invalid_request at the client", resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	t.Run("exchange without DPoP is refused and leaves the code", func(t *testing.T) {
		// Not bound at PAR: only the profile asks for the proof here.
		code, verifier := f.login(t, false)
		r := f.exchange(t, code, verifier, nil)
		wantTokenError(t, r, "invalid_dpop_proof", "a fapi2 exchange without DPoP")
		if !strings.Contains(r.str("error_description"), "FAPI 2.0") {
			t.Errorf("the error does not say why: %v", r.body)
		}
		if r := f.exchange(t, code, verifier, f.dpop); r.status != http.StatusOK || r.str("token_type") != "DPoP" {
			t.Errorf("the code after the refusal, with DPoP: %d %v", r.status, r.body)
		}
	})

	t.Run("client secret authentication is refused", func(t *testing.T) {
		_, _, err := e.m.CreateClient(ctx, ClientSpec{Name: "Bank", Profile: idp.ProfileFAPI2, AuthMethod: idp.AuthSecretBasic,
			RedirectURIs: []string{fapi2Redirect}})
		if !errors.Is(err, idp.ErrInvalid) || !strings.Contains(err.Error(), "private_key_jwt") {
			t.Errorf("create a fapi2 secret client: %v", err)
		}
		// A guessed secret for the fapi2 client is no credential.
		code, verifier := f.login(t, true)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {fapi2Redirect}, "code_verifier": {verifier}}
		if r := dpopToken(t, e.issuer, f.id, "guessed", form, f.dpop); r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
			t.Errorf("client_secret_basic for a fapi2 client: %d %v", r.status, r.body)
		}
	})

	t.Run("RS256 assertion is refused, PS256 accepted", func(t *testing.T) {
		// Registration refuses an RSA key that does not declare PS256; a
		// client stored before the rule (written to the store directly)
		// still gets no RS256 assertion through.
		key := newRSAKey(t)
		legacy := &idp.Client{ID: "fapi2-legacy-rsa", Name: "Legacy bank", Profile: idp.ProfileFAPI2, AuthMethod: idp.AuthPrivateKeyJWT,
			JWKS: string(publicJWKS(t, signer{kid: "rsa-1", key: key})), RedirectURIs: []string{fapi2Redirect},
			GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: []string{"openid", "profile", "offline_access"}, PARRequired: true, IDTokenAlg: "ES256", CreatedAt: clk.Now()}
		if err := legacy.Validate(); err == nil || !strings.Contains(err.Error(), `key "rsa-1"`) {
			t.Errorf("validation of an RSA key without alg PS256: %v", err)
		}
		if err := e.m.Store.CreateClient(ctx, legacy); err != nil {
			t.Fatal(err)
		}
		lc := &fapiClient{e: e, id: legacy.ID, key: key, kid: "rsa-1", method: jwt.SigningMethodRS256, dpop: f.dpop, now: clk.Now}
		st, out := lc.par(t, oauth2.GenerateVerifier(), false)
		if desc, _ := out["error_description"].(string); st != http.StatusUnauthorized || out["error"] != "invalid_client" || !strings.Contains(desc, "ES256 or PS256") {
			t.Errorf("RS256 assertion of a fapi2 client: %d %v", st, out)
		}
		lc.method = jwt.SigningMethodPS256
		if st, out := lc.par(t, oauth2.GenerateVerifier(), false); st != http.StatusCreated {
			t.Errorf("PS256 assertion of a fapi2 client: %d %v", st, out)
		}
	})

	t.Run("redirect URIs must be https and not loopback", func(t *testing.T) {
		for _, u := range []string{"http://127.0.0.1:9/callback", "http://localhost/cb", "https://127.0.0.1/cb", "vn.bank.app:/cb"} {
			_, _, err := e.m.CreateClient(ctx, ClientSpec{Name: "Bank", Profile: idp.ProfileFAPI2, AuthMethod: idp.AuthPrivateKeyJWT,
				JWKSURI: "https://bank.example/jwks", RedirectURIs: []string{u}})
			if !errors.Is(err, idp.ErrInvalid) || !strings.Contains(err.Error(), "profile fapi2") {
				t.Errorf("create with redirect URI %s: %v", u, err)
			}
		}
		_, _, err := e.m.CreateClient(ctx, ClientSpec{Name: "Bank", Profile: idp.ProfileFAPI2, AuthMethod: idp.AuthPrivateKeyJWT,
			JWKSURI: "https://bank.example/jwks", RedirectURIs: []string{fapi2Redirect}, IDTokenAlg: "RS256"})
		if err == nil || !strings.Contains(err.Error(), "ID token algorithm must be ES256") {
			t.Errorf("create with RS256 ID tokens: %v", err)
		}
	})

	t.Run("profile via registration", func(t *testing.T) {
		createAgencies(t, e.m, "AG-FAPI")
		md := func(auth string, redirect string) map[string]any {
			m := map[string]any{"client_name": "Bank", "redirect_uris": []string{redirect}, "token_endpoint_auth_method": auth,
				"scope": "openid", "onedoor_profile": "fapi2"}
			if auth == idp.AuthPrivateKeyJWT {
				m["jwks"] = json.RawMessage(publicJWKS(t, signer{kid: "k1", key: newECKey(t)}))
			}
			return m
		}
		r := register(t, e, issue(t, e, "AG-FAPI", 5), md(idp.AuthPrivateKeyJWT, fapi2Redirect))
		if r.body["onedoor_profile"] != "fapi2" || r.body["require_pushed_authorization_requests"] != true || r.secret != "" {
			t.Errorf("registered fapi2 client: %v", r.body)
		}
		c, err := e.m.Store.GetClient(ctx, r.id)
		if err != nil || !c.IsFAPI2() || !c.PARRequired {
			t.Errorf("stored: %+v %v", c, err)
		}
		initial := issue(t, e, "AG-FAPI", 5)
		st, body := regCall(t, http.MethodPost, e.issuer+"/register", initial, md(idp.AuthSecretBasic, fapi2Redirect))
		wantRegError(t, "fapi2 with client_secret_basic", st, body, http.StatusBadRequest, "invalid_client_metadata")
		st, body = regCall(t, http.MethodPost, e.issuer+"/register", initial, md(idp.AuthPrivateKeyJWT, "http://127.0.0.1:9/cb"))
		wantRegError(t, "fapi2 with a loopback http redirect URI", st, body, http.StatusBadRequest, "invalid_client_metadata")
		bad := md(idp.AuthPrivateKeyJWT, fapi2Redirect)
		bad["onedoor_profile"] = "fapi1"
		st, body = regCall(t, http.MethodPost, e.issuer+"/register", initial, bad)
		wantRegError(t, "unknown profile", st, body, http.StatusBadRequest, "invalid_client_metadata")
	})

	// Last: it moves the server's clock.
	t.Run("code older than 60 seconds", func(t *testing.T) {
		young, youngVerifier := f.login(t, true)
		code, verifier := f.login(t, true)
		clk.advance(50 * time.Second)
		defer clk.advance(-61 * time.Second)
		if r := f.exchange(t, young, youngVerifier, f.dpop); r.status != http.StatusOK {
			t.Errorf("a 50-second-old code: %d %v", r.status, r.body)
		}
		clk.advance(11 * time.Second)
		r := f.exchange(t, code, verifier, f.dpop)
		wantTokenError(t, r, "invalid_grant", "a 61-second-old fapi2 code")
		if !strings.Contains(r.str("error_description"), "within 60 seconds") {
			t.Errorf("the error does not say why: %v", r.body)
		}
	})
}

// TestCLI_ClientCreateFAPI2: `client create --profile fapi2` registers the
// profile and refuses what it forbids.
func TestCLI_ClientCreateFAPI2(t *testing.T) {
	dir := migratedDir(t)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	key := newECKey(t)
	if err := os.WriteFile(jwks, publicJWKS(t, signer{kid: "k", key: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	// --auth-method may be left out: the profile has one.
	code, out, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Bank", "--profile", "fapi2",
		"--jwks", jwks, "--redirect-uri", fapi2Redirect, "--scope", "openid offline_access")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	var created map[string]any
	decode(t, out, &created)
	if created["profile"] != "fapi2" || created["require_pushed_authorization_requests"] != true || created["client_secret"] != nil {
		t.Errorf("created: %v", created)
	}
	code, _, errs = cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Bank", "--profile", "fapi2",
		"--auth-method", "client_secret_post", "--redirect-uri", "http://127.0.0.1:9/cb", "--grant-type", "client_credentials", "--id-token-alg", "RS256")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{`must authenticate with private_key_jwt (not "client_secret_post")`, "https URL", `grant type "client_credentials" is not allowed`, "ID token algorithm must be ES256"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

// The guide's fapi2 `client create` runs as written (its key file made).
func TestGuide_FAPI2ClientCreate(t *testing.T) {
	blocks := fencedBlocks(readDoc(t, "agency-integration.md"), "sh", "--profile fapi2")
	if len(blocks) != 1 {
		t.Fatal("the guide has no fapi2 client create command")
	}
	args := shellWords(t, blocks[0])
	jwks := filepath.Join(t.TempDir(), "bank-jwks.json")
	if err := os.WriteFile(jwks, publicJWKS(t, signer{kid: "k", key: newECKey(t)}), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, a := range args {
		if a == "bank-jwks.json" {
			args[i] = jwks
		}
	}
	code, out, errs := cli(t, nil, append(args[1:], "--data-dir", migratedDir(t))...)
	if code != 0 {
		t.Fatalf("the guide's command fails: %d %s", code, errs)
	}
	var got map[string]any
	decode(t, out, &got)
	if got["profile"] != "fapi2" || got["token_endpoint_auth_method"] != "private_key_jwt" {
		t.Errorf("created: %v", got)
	}
}
