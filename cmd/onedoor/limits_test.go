package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/web"
)

// call sends one request from the test's loopback address, optionally saying
// (through X-Forwarded-For) that it forwards for client.
func call(t *testing.T, method, u, client string, body url.Values, mod func(*http.Request)) (*http.Response, map[string]any) {
	t.Helper()
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequest(method, u, strings.NewReader(body.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequest(method, u, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	if mod != nil {
		mod(req)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

// loginStatus is the status of opening a fresh authorization URL.
func loginStatus(t *testing.T, r *rp, client string) int {
	t.Helper()
	u, _, _, _ := authorizeURL(r)
	resp, _ := call(t, http.MethodGet, u, client, nil, nil)
	return resp.StatusCode
}

func TestTrustedProxies_LimitTheForwardedClient(t *testing.T) {
	e := startMain(t, func(c *Config) { c.LoginRateLimit = 2; c.TrustedProxies = "127.0.0.0/8" })
	id, secret := e.client(ClientSpec{Scope: "openid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	for i := range 2 {
		if st := loginStatus(t, r, "198.51.100.1"); st != http.StatusOK {
			t.Fatalf("login %d of client A: status %d", i+1, st)
		}
	}
	if st := loginStatus(t, r, "198.51.100.1"); st != http.StatusTooManyRequests {
		t.Fatalf("client A over its limit: status %d, want 429", st)
	}
	// Another citizen behind the same proxy is not punished for A.
	if st := loginStatus(t, r, "198.51.100.2"); st != http.StatusOK {
		t.Fatalf("client B behind the same proxy: status %d, want 200", st)
	}
	// A client cannot escape by prepending addresses: the proxy's entry is
	// the rightmost untrusted one.
	if st := loginStatus(t, r, "203.0.113.77, 198.51.100.1"); st != http.StatusTooManyRequests {
		t.Fatalf("client A with a spoofed X-Forwarded-For entry: status %d, want 429", st)
	}
}

func TestTrustedProxies_IPv6ClientsCountPerSlash64(t *testing.T) {
	e := startMain(t, func(c *Config) { c.LoginRateLimit = 2; c.TrustedProxies = "127.0.0.1/32" })
	id, secret := e.client(ClientSpec{Scope: "openid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	// One subscriber rotating addresses inside its /64 is one client.
	for i, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"} {
		want := http.StatusOK
		if i == 2 {
			want = http.StatusTooManyRequests
		}
		if st := loginStatus(t, r, a); st != want {
			t.Fatalf("login %d from %s: status %d, want %d", i+1, a, st, want)
		}
	}
	if st := loginStatus(t, r, "2001:db8:1:3::1"); st != http.StatusOK {
		t.Fatalf("another /64: status %d, want 200", st)
	}
}

// Without --trusted-proxies the peer address counts: a client cannot reset
// its limit by inventing X-Forwarded-For or Forwarded headers.
func TestTrustedProxies_WithoutThemHeadersAreIgnored(t *testing.T) {
	e := startMain(t, func(c *Config) { c.LoginRateLimit = 2 })
	id, secret := e.client(ClientSpec{Scope: "openid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	for i := range 2 {
		if st := loginStatus(t, r, "198.51.100."+strconv.Itoa(i+1)); st != http.StatusOK {
			t.Fatalf("login %d: status %d", i+1, st)
		}
	}
	u, _, _, _ := authorizeURL(r)
	resp, _ := call(t, http.MethodGet, u, "198.51.100.3", nil, func(r *http.Request) { r.Header.Set("Forwarded", "for=198.51.100.4") })
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third login with invented headers: status %d, want 429", resp.StatusCode)
	}
}

func TestConfig_TrustedProxiesValidated(t *testing.T) {
	c := DefaultConfig()
	c.TrustedProxies = "10.0.0.0/8, 10.0.0.1/8, proxy.local"
	c.LoginRateLimit = 0
	err := c.Validate(true)
	if err == nil {
		t.Fatal("bad --trusted-proxies accepted")
	}
	for _, want := range []string{"--trusted-proxies", "10.0.0.1/8", "proxy.local", "--login-rate-limit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q (every problem is reported at once)", err, want)
		}
	}
	code, _, stderr := cli(t, map[string]string{"ONEDOOR_TRUSTED_PROXIES": "nonsense"}, "serve", "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "trusted-proxies") {
		t.Fatalf("serve with ONEDOOR_TRUSTED_PROXIES=nonsense: exit %d, stderr %q", code, stderr)
	}
}

// par pushes an authorization request for client id with its secret.
func par(t *testing.T, e *testEnv, id, secret, client string, extra url.Values) (*http.Response, map[string]any) {
	t.Helper()
	form := url.Values{
		"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:9/callback"},
		"scope": {"openid"}, "state": {randomString(12)}, "nonce": {randomString(12)},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		form[k] = v
	}
	return call(t, http.MethodPost, e.issuer+web.PathPAR, client, form, func(r *http.Request) { r.SetBasicAuth(id, secret) })
}

func TestPAR_LimitedPerAddress(t *testing.T) {
	e := startMain(t, func(c *Config) { c.TrustedProxies = "127.0.0.1/32"; c.Limits = web.Limits{PARPerAddr: 2} })
	id, secret := e.client(ClientSpec{Scope: "openid"})
	for i := range 2 {
		if resp, body := par(t, e, id, secret, "198.51.100.1", nil); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PAR %d: status %d %v", i+1, resp.StatusCode, body)
		}
	}
	resp, body := par(t, e, id, secret, "198.51.100.1", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || body["error"] == nil {
		t.Fatalf("PAR over the per-address limit: status %d, Retry-After %q, body %v", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := par(t, e, id, secret, "198.51.100.2", nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PAR from another address: status %d %v", resp.StatusCode, body)
	}
}

func TestPAR_LimitedPerAuthenticatedClient(t *testing.T) {
	e := startMain(t, func(c *Config) { c.TrustedProxies = "127.0.0.1/32"; c.Limits = web.Limits{PARPerClient: 2} })
	id, secret := e.client(ClientSpec{Scope: "openid"})
	other, otherSecret := e.client(ClientSpec{Scope: "openid"})
	// Strangers naming the client with a wrong secret do not spend its
	// allowance.
	for i := range 3 {
		if resp, _ := par(t, e, id, "wrong", "203.0.113."+strconv.Itoa(i+1), nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("PAR with a wrong secret: status %d, want 401", resp.StatusCode)
		}
	}
	for i := range 2 {
		if resp, body := par(t, e, id, secret, "198.51.100."+strconv.Itoa(i+1), nil); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PAR %d: status %d %v", i+1, resp.StatusCode, body)
		}
	}
	if resp, _ := par(t, e, id, secret, "198.51.100.9", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("PAR over the per-client limit from a fresh address: status %d, want 429", resp.StatusCode)
	}
	if resp, body := par(t, e, other, otherSecret, "198.51.100.9", nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another client: status %d %v", resp.StatusCode, body)
	}
}

// TestToken_LimitedPerAuthenticatedClient: a confidential client's token
// requests are bounded per minute wherever they come from; strangers with a
// wrong secret do not spend them, and other clients are unaffected.
func TestToken_LimitedPerAuthenticatedClient(t *testing.T) {
	e := startMain(t, func(c *Config) { c.Limits = web.Limits{TokenPerClient: 2} })
	id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
	other, otherSecret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
	token := func(id, secret string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return resp.StatusCode, body.Error
	}
	for range 3 {
		if st, _ := token(id, "wrong"); st != http.StatusUnauthorized {
			t.Fatalf("wrong secret: status %d, want 401", st)
		}
	}
	for i := range 2 {
		if st, code := token(id, secret); st != http.StatusOK {
			t.Fatalf("token %d: status %d %s", i+1, st, code)
		}
	}
	if st, code := token(id, secret); st != http.StatusTooManyRequests || code != "slow_down" {
		t.Fatalf("over the per-client limit: %d %s, want 429 slow_down", st, code)
	}
	if st, code := token(other, otherSecret); st != http.StatusOK {
		t.Fatalf("another client: %d %s", st, code)
	}
}

func TestPAR_SizeIsBounded(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid"})
	resp, body := par(t, e, id, secret, "", url.Values{"purpose": {strings.Repeat("a", 9<<10)}})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || body["error"] != "invalid_request" {
		t.Fatalf("9 KB pushed request: status %d, body %v; want 413 invalid_request", resp.StatusCode, body)
	}
	many := url.Values{}
	for i := range 40 {
		many.Set("x"+strconv.Itoa(i), "1")
	}
	resp, body = par(t, e, id, secret, "", many)
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Fatalf("pushed request with 48 parameters: status %d, body %v; want 400 invalid_request", resp.StatusCode, body)
	}
	if resp, body := par(t, e, id, secret, "", nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("ordinary pushed request: status %d %v", resp.StatusCode, body)
	}
}

func TestToken_PublicClientsLimitedPerAddress(t *testing.T) {
	e := startMain(t, func(c *Config) { c.Limits = web.Limits{TokenPublicPerAddr: 2} })
	id, secret := e.client(ClientSpec{Scope: "openid"})
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {"http://127.0.0.1:9/callback"},
		"code_verifier": {oauth2.GenerateVerifier()}, "client_id": {"some-public-app"}}
	for i := range 2 {
		if resp, body := call(t, http.MethodPost, e.issuer+web.PathToken, "", form, nil); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("public request %d limited: %v", i+1, body)
		}
	}
	resp, body := call(t, http.MethodPost, e.issuer+web.PathToken, "", form, nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("public request over the limit: status %d %v", resp.StatusCode, body)
	}
	// Authenticated clients are not slowed by the public limit.
	delete(form, "client_id")
	resp, body = call(t, http.MethodPost, e.issuer+web.PathToken, "", form, func(r *http.Request) { r.SetBasicAuth(id, secret) })
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("confidential client: status %d %v, want 400 invalid_grant", resp.StatusCode, body)
	}
}

// enrollAttempt posts a wrong activation code for pid.
func enrollAttempt(t *testing.T, e *testEnv, pid, client string) (*http.Response, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"personal_id": pid, "activation_code": "AAAAA-AAAAA",
		"public_key": map[string]string{"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}})
	req, _ := http.NewRequest(http.MethodPost, e.issuer+web.PathEnrollments, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

// Activation-code guesses are limited per personal id, across addresses, and
// the same way whether or not a citizen has the personal id.
func TestEnroll_LimitedPerPersonalID(t *testing.T) {
	e := startMain(t, func(c *Config) { c.TrustedProxies = "127.0.0.1/32"; c.Limits = web.Limits{EnrollPerPersonalID: 2} })
	for _, pid := range []string{demoCitizens[1].PersonalID, "009999999999"} {
		var got []int
		for i := range 3 {
			resp, _ := enrollAttempt(t, e, pid, "198.51.100."+strconv.Itoa(i+1))
			got = append(got, resp.StatusCode)
		}
		if got[0] != http.StatusBadRequest || got[1] != http.StatusBadRequest || got[2] != http.StatusTooManyRequests {
			t.Errorf("personal id %s…: statuses %v, want [400 400 429]", pid[:3], got)
		}
	}
	// Another personal id from the same addresses is unaffected.
	if resp, _ := enrollAttempt(t, e, "001234567890", "198.51.100.1"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("another personal id: status %d, want 400", resp.StatusCode)
	}
}

func TestDevice_RequestsLimitedPerDevice(t *testing.T) {
	e := startMain(t, func(c *Config) { c.Limits = web.Limits{PerDevice: 2} })
	ctx := context.Background()
	for i := range 2 {
		if _, err := e.app.Devices(ctx); err != nil {
			t.Fatalf("request %d of the device: %v", i+1, err)
		}
	}
	if _, err := e.app.Devices(ctx); err == nil || !strings.Contains(err.Error(), "429") && !strings.Contains(err.Error(), "slow_down") {
		t.Fatalf("device over its limit: err = %v, want a 429", err)
	}
	// Another device of the same citizen keeps working.
	second := e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	if _, err := second.Devices(ctx); err != nil {
		t.Fatalf("another device: %v", err)
	}
}

func TestRouting_WrongMethodIs405(t *testing.T) {
	e := startMain(t)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        []string
	}{
		{http.MethodGet, web.PathToken, http.StatusMethodNotAllowed, []string{"POST"}},
		{http.MethodDelete, web.PathAuthorize, http.StatusMethodNotAllowed, []string{"GET", "POST"}},
		{http.MethodPost, web.PathDiscovery, http.StatusMethodNotAllowed, []string{"GET"}},
		{http.MethodPut, web.PathEnrollments, http.StatusMethodNotAllowed, []string{"POST"}},
		{http.MethodGet, "/no-such-endpoint", http.StatusNotFound, nil},
		{http.MethodPost, "/no-such-endpoint", http.StatusNotFound, nil},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := call(t, tc.method, e.issuer+tc.path, "", nil, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || body["error"] == nil {
				t.Fatalf("body %v (%s): want an OAuth JSON error", body, resp.Header.Get("Content-Type"))
			}
			allow := resp.Header.Get("Allow")
			for _, m := range tc.allow {
				if !strings.Contains(allow, m) {
					t.Errorf("Allow %q lacks %s", allow, m)
				}
			}
			if tc.allow == nil && allow != "" {
				t.Errorf("Allow %q on an unknown route", allow)
			}
		})
	}
}

// An issuer with a path works: discovery at ISSUER/.well-known/..., every
// route under the path, cookies scoped to it, a whole login with real
// client libraries.
func TestIssuerWithPath(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	e := startMain(t, func(c *Config) { c.IDPAddr = addr; c.Issuer = "http://" + addr + "/idp" })
	if want := "http://" + addr + "/idp"; e.issuer != want {
		t.Fatalf("issuer %q, want %q", e.issuer, want)
	}
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	if got := r.provider.Endpoint().TokenURL; got != e.issuer+web.PathToken {
		t.Fatalf("token endpoint %q", got)
	}

	b := newBrowser()
	u, _, _, _ := authorizeURL(r)
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize under the path: status %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Path != "/idp/" {
			t.Errorf("cookie %s has Path %q, want /idp/", c.Name, c.Path)
		}
	}
	tok, idt := e.codeFlow(r, b, e.app)
	if idt.Issuer != e.issuer || tok.AccessToken == "" {
		t.Fatalf("ID token issuer %q", idt.Issuer)
	}
	if _, err := r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok)); err != nil {
		t.Fatalf("userinfo under the path: %v", err)
	}
	// Nothing answers outside the path but the probes.
	for _, p := range []string{web.PathDiscovery, web.PathToken, web.PathAuthorize} {
		if resp, _ := call(t, http.MethodGet, "http://"+addr+p, "", nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s outside the issuer path: status %d, want 404", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/idp/healthz"} {
		if resp, _ := call(t, http.MethodGet, "http://"+addr+p, "", nil, nil); resp.StatusCode != http.StatusNoContent {
			t.Errorf("GET %s: status %d, want 204", p, resp.StatusCode)
		}
	}
}

func TestConfig_IssuerPathValidated(t *testing.T) {
	for _, iss := range []string{"https://id.example.gov.vn/{x}", "https://id.example.gov.vn/a b", "https://id.example.gov.vn/a//b"} {
		c := DefaultConfig()
		c.Issuer = iss
		if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "--issuer") {
			t.Errorf("issuer %q: err = %v, want an --issuer problem", iss, err)
		}
	}
	c := DefaultConfig()
	c.Issuer = "https://id.example.gov.vn/idp"
	if err := c.Validate(true); err != nil {
		t.Errorf("issuer with a plain path refused: %v", err)
	}
}

// --demo with PostgreSQL refuses to start without a shared master key and
// never writes one to the local disk.
func TestDemoWithPostgresNeverCreatesMasterKey(t *testing.T) {
	t.Setenv("ONEDOOR_MASTER_KEY", "")
	m := NewMain()
	m.Config.DataDir = t.TempDir()
	m.Config.Demo = true
	// Never dialled: the key is checked before any connection.
	m.Config.PostgresDSN = "postgres://onedoor@127.0.0.1:1/onedoor?sslmode=disable&connect_timeout=1"
	err := m.OpenStorage(context.Background())
	if m.DB != nil {
		_ = m.DB.Close()
	}
	if err == nil {
		t.Fatal("--demo with PostgreSQL started without a master key")
	}
	for _, want := range []string{"ONEDOOR_MASTER_KEY", "--master-key-file"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not tell the operator about %s", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(m.Config.DataDir, "master.key")); !os.IsNotExist(err) {
		t.Errorf("a local master key was created: %v", err)
	}
}

// New login requests are state kept for 2 minutes; a flood from many /64s
// passes every per-address limit, so a deployment-wide limit keeps that
// state bounded (SECURITY 63).
func TestLoginRequests_BoundedAcrossAddresses(t *testing.T) {
	e := startMain(t, func(c *Config) {
		c.LoginRateLimit = 2
		c.TrustedProxies = "127.0.0.0/8"
		c.Limits = web.Limits{LoginTotal: 5}
	})
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, "openid", "profile")
	created, limited := 0, 0
	for i := range 12 {
		u, _, _, _ := authorizeURL(r)
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("2001:db8:0:%x::1", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
			created++
		case http.StatusTooManyRequests:
			limited++
			if resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		default:
			t.Fatalf("authorize: %d", resp.StatusCode)
		}
	}
	if created != 5 || limited != 7 {
		t.Errorf("12 login requests from 12 /64s: %d created, %d limited; want 5 and 7", created, limited)
	}
}

// TestAudit_PublicRoutesUnderBasePathAndLimited: the access log's public
// routes live under the issuer's path, with the IdP's middleware and a
// per-address limit (they are unauthenticated and read the database).
func TestAudit_PublicRoutesUnderBasePathAndLimited(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startMain(t, func(c *Config) {
		c.Issuer, c.IDPAddr = "http://"+addr+"/gov/idp", addr
		c.TrustedProxies = "127.0.0.1/32"
		c.Limits = web.Limits{AuditPerAddr: 2}
	})
	get := func(path, from string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		req.Header.Set("X-Forwarded-For", from)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get("/audit/v1/keys", "198.51.100.7"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/audit/v1/keys outside the issuer's path: %d, want 404", resp.StatusCode)
	}
	for i := range 2 {
		if resp := get("/gov/idp/audit/v1/keys", "198.51.100.1"); resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") == "" {
			t.Fatalf("keys %d under the base path: %d %v", i+1, resp.StatusCode, resp.Header)
		}
	}
	resp := get("/gov/idp/audit/v1/checkpoint", "198.51.100.1")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third request from one address: %d, Retry-After %q; want 429", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := get("/gov/idp/audit/v1/keys", "198.51.100.2"); resp.StatusCode != http.StatusOK {
		t.Errorf("another address: %d", resp.StatusCode)
	}
}
