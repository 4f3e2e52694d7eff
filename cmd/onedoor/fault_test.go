package main

// Fault tests (SECURITY.md, Faults): a store that goes away answers 503 with
// Retry-After and never a denial, the service recovers without a restart,
// shutdown drains in-flight requests, and malformed or oversized input is a
// 4xx, never a 500. The fuzz targets check the last property for every
// input.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

// proxyMode is what a tcpProxy does with connections.
type proxyMode int

const (
	// proxyUp forwards every connection to the target.
	proxyUp proxyMode = iota
	// proxyReset accepts new connections and closes them at once: the
	// server is gone, connections fail fast.
	proxyReset
	// proxyBlackhole accepts new connections and never answers: a hung
	// server or a partitioned network, only timeouts end the wait.
	proxyBlackhole
)

// tcpProxy sits between OneDoor and a backing store so a test can take the
// store away and bring it back without restarting either.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  proxyMode
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
	// killOn, when set, closes any connection on which the client sends
	// these bytes (say, a statement's SQL text): an outage that strikes in
	// the middle of a request, after its earlier statements succeeded.
	killOn atomic.Pointer[[]byte]
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

// set switches the mode. Every connection open at the time is closed, as
// when a server dies or fails over.
func (p *tcpProxy) set(m proxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.set(proxyReset)
	p.wg.Wait()
}

// track registers c unless the mode changed from want in the meantime.
func (p *tcpProxy) track(want proxyMode, cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != want {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		m := p.mode
		p.mu.Unlock()
		switch m {
		case proxyReset:
			_ = c.Close()
		case proxyBlackhole:
			if p.track(proxyBlackhole, c) {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					_, _ = io.Copy(io.Discard, c)
					p.untrack(c)
				}()
			}
		case proxyUp:
			p.wg.Add(1)
			go p.forward(c)
		}
	}
}

func (p *tcpProxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(proxyUp, c, up) {
		_ = up.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		p.untrack(c, up) // one side ended: end both
	}
	go func() { // client to server, watched for killOn
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if k := p.killOn.Load(); k != nil && bytes.Contains(buf[:n], *k) {
					break
				}
				if _, werr := up.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		p.untrack(c, up)
	}()
	go pipe(c, up)
	wg.Wait()
}

// loopbackTransport dials from a random address in 127/8. The per-IP rate
// limits live in Redis, which other tests and benchmarks share: from its own
// address this test is never throttled for their logins.
func loopbackTransport() *http.Transport {
	var b [3]byte
	_, _ = rand.Read(b[:])
	ip := net.IPv4(127, b[0], b[1], b[2]%254+1)
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
	return &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 8}
}

// statusLog records every response that passes through it and remembers
// the server errors other than 503.
type statusLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    int
	bad  []string
}

func newStatusLog() *statusLog { return &statusLog{next: loopbackTransport()} }

func (l *statusLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		l.bad = append(l.bad, fmt.Sprintf("%s %s: %d", r.Method, r.URL.Path, resp.StatusCode))
	}
	return resp, nil
}

// check fails t for every 5xx other than 503 seen.
func (l *statusLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.bad {
		t.Errorf("server error: %s", b)
	}
	t.Logf("%d responses, %d server errors other than 503", l.n, len(l.bad))
}

func (l *statusLog) browser() *browser {
	b := newBrowser()
	b.Transport = l
	b.Timeout = 30 * time.Second
	return b
}

// result is one response, read in full.
type result struct {
	status int
	header http.Header
	body   []byte
}

func (r result) String() string {
	return fmt.Sprintf("status %d, Retry-After %q, body %.300s", r.status, r.header.Get("Retry-After"), r.body)
}

// jsonError is the OAuth error code of a JSON error body, or "".
func (r result) jsonError() string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.body, &e)
	return e.Error
}

// send does req and reads the whole response; safe off the test goroutine.
func send(c *http.Client, req *http.Request) (result, error) {
	resp, err := c.Do(req)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return result{}, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Path, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func do(t *testing.T, c *http.Client, req *http.Request) result {
	t.Helper()
	r, err := send(c, req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func getRequest(u string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		panic(err) // the tests build u
	}
	return req
}

func get(t *testing.T, c *http.Client, u string) result {
	t.Helper()
	return do(t, c, getRequest(u))
}

// tokenRequest posts form to the token endpoint, with HTTP Basic client
// authentication when id is set.
func tokenRequest(issuer string, form url.Values, id, secret string) *http.Request {
	req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		panic(err) // the tests build issuer
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return req
}

func postToken(t *testing.T, c *http.Client, issuer string, form url.Values, id, secret string) result {
	t.Helper()
	return do(t, c, tokenRequest(issuer, form, id, secret))
}

// want503 checks the answer to a request that needs a store that is down.
func want503(t *testing.T, what string, r result) {
	t.Helper()
	switch {
	case r.status != http.StatusServiceUnavailable:
		t.Errorf("%s: %v, want 503", what, r)
	case r.header.Get("Retry-After") == "":
		t.Errorf("%s: 503 without Retry-After", what)
	case r.jsonError() != "temporarily_unavailable":
		t.Errorf("%s: %v, want error temporarily_unavailable", what, r)
	}
}

func wantStatus(t *testing.T, what string, r result, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: %v, want %d", what, r, status)
	}
}

// waitReady polls /readyz until it answers 204.
func waitReady(t *testing.T, c *http.Client, issuer string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := get(t, c, issuer+"/readyz")
		if r.status == http.StatusNoContent {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready %v after the store came back: %v", within, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// authRequest is one authorization request with its PKCE verifier.
type authRequest struct {
	url, state, verifier string
}

func newAuthRequest(issuer, clientID, scope string) authRequest {
	a := authRequest{state: randomString(12), verifier: oauth2.GenerateVerifier()}
	a.url = issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {"http://127.0.0.1:9/callback"},
		"scope": {scope}, "state": {a.state}, "nonce": {randomString(12)},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(a.verifier)}, "code_challenge_method": {"S256"},
	}.Encode()
	return a
}

// codeForm is the token request that redeems code minted for a.
func (a authRequest) codeForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {"http://127.0.0.1:9/callback"}, "code_verifier": {a.verifier}}
}

// codeFrom returns the code of a successful authorization response.
func codeFrom(t *testing.T, a authRequest, loc *url.URL) string {
	t.Helper()
	q := loc.Query()
	if q.Get("error") != "" || q.Get("state") != a.state || q.Get("code") == "" {
		t.Fatalf("authorization response %v, want a code", loc)
	}
	return q.Get("code")
}

// jwtClient registers a private_key_jwt client_credentials client.
func (e *testEnv) jwtClient() (string, *ecdsa.PrivateKey) {
	e.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	f := filepath.Join(e.t.TempDir(), "jwks.json")
	if err := os.WriteFile(f, jwks, 0o600); err != nil {
		e.t.Fatal(err)
	}
	id, _ := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read", AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: f})
	return id, key
}

func assertionForm(clientID, assertion string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}, "client_id": {clientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}
}

// proxied starts a proxy to the host:port of the URL raw and returns it with
// raw pointing at the proxy instead.
func proxied(t *testing.T, raw string) (*tcpProxy, string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Port() == "" {
		t.Fatalf("want a URL with a host:port, got %q", raw)
	}
	p := startProxy(t, u.Host)
	u.Host = p.addr()
	return p, u.String()
}

// TestRedisDown_Returns503AndRecovers is SECURITY 56: with Redis gone, every
// endpoint that needs ephemeral state answers 503 with Retry-After, in
// bounded time, never a denial; once Redis is back the same requests succeed
// without a restart, and what was in flight before the outage (a minted code,
// a pending login, an unused client assertion) was not lost or burnt by it.
func TestRedisDown_Returns503AndRecovers(t *testing.T) {
	var proxy *tcpProxy
	e := startMain(t, scaleOption(t), func(c *Config) { proxy, c.RedisURL = proxied(t, c.RedisURL) })
	log := newStatusLog()
	c := &http.Client{Transport: log, Timeout: 30 * time.Second}
	e.app.HTTP = c
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	jwtID, jwtKey := e.jwtClient()

	// Before the outage: a minted code, a login waiting for the app, an
	// unused client assertion, and a browser with a single sign-on session.
	sso := log.browser()
	a1 := newAuthRequest(e.issuer, id, "openid profile")
	code1 := codeFrom(t, a1, e.login(sso, a1.url, e.app, nil))
	pending := log.browser()
	a2 := newAuthRequest(e.issuer, id, "openid profile")
	payload2, status2 := pending.loginPage(t, a2.url)
	assertion := clientAssertion(t, jwtKey, jwtID, e.issuer+"/token")

	proxy.set(proxyReset)
	start := time.Now()
	want503(t, "readyz", get(t, c, e.issuer+"/readyz"))
	want503(t, "authorize", get(t, log.browser().Client, newAuthRequest(e.issuer, id, "openid profile").url))
	want503(t, "authorize with an SSO session", get(t, sso.Client, newAuthRequest(e.issuer, id, "openid profile").url))
	want503(t, "login status", get(t, pending.Client, status2))
	want503(t, "code exchange", postToken(t, c, e.issuer, a1.codeForm(code1), id, secret))
	want503(t, "private_key_jwt client_credentials", postToken(t, c, e.issuer, assertionForm(jwtID, assertion), "", ""))
	t.Logf("Redis reset: six requests answered in %v", time.Since(start))

	proxy.set(proxyUp)
	waitReady(t, c, e.issuer, 10*time.Second)
	// The code minted before the outage is still good, exactly once.
	r := postToken(t, c, e.issuer, a1.codeForm(code1), id, secret)
	wantStatus(t, "code exchange after recovery", r, http.StatusOK)
	if !strings.Contains(string(r.body), `"id_token"`) {
		t.Errorf("code exchange after recovery: no ID token: %.300s", r.body)
	}
	r = postToken(t, c, e.issuer, a1.codeForm(code1), id, secret)
	if r.status != http.StatusBadRequest || r.jsonError() != "invalid_grant" {
		t.Errorf("second redemption: %v, want 400 invalid_grant", r)
	}
	// The outage did not record the assertion's jti: it works once now.
	wantStatus(t, "private_key_jwt after recovery", postToken(t, c, e.issuer, assertionForm(jwtID, assertion), "", ""), http.StatusOK)
	r = postToken(t, c, e.issuer, assertionForm(jwtID, assertion), "", "")
	if r.status != http.StatusUnauthorized || r.jsonError() != "invalid_client" {
		t.Errorf("replayed assertion after recovery: %v, want 401 invalid_client", r)
	}
	// The login that was pending during the outage completes.
	if st, _ := pending.status(t, status2); st != "pending" {
		t.Fatalf("login status after recovery = %q, want pending", st)
	}
	if _, err := e.app.Approve(context.Background(), payload2, pick(payload2), false, nil); err != nil {
		t.Fatalf("approve after recovery: %v", err)
	}
	st, next := pending.status(t, status2)
	if st != "approved" {
		t.Fatalf("login status after approval = %q", st)
	}
	code2 := codeFrom(t, a2, pending.follow(t, next))
	// A new browser gets a login page again.
	fresh := log.browser()
	a3 := newAuthRequest(e.issuer, id, "openid profile")
	_, status3 := fresh.loginPage(t, a3.url)

	// A hung Redis: connections open, nothing answers. Only OneDoor's own
	// Redis timeouts end each wait; every request still ends, with a 503.
	// The requests run at once, as the waits add up otherwise.
	proxy.set(proxyBlackhole)
	start = time.Now()
	fresh2 := log.browser()
	checks := []struct {
		what string
		c    *http.Client
		req  *http.Request
	}{
		{"readyz", c, getRequest(e.issuer + "/readyz")},
		{"authorize", fresh2.Client, getRequest(newAuthRequest(e.issuer, id, "openid profile").url)},
		{"login status", fresh.Client, getRequest(status3)},
		{"code exchange", c, tokenRequest(e.issuer, a2.codeForm(code2), id, secret)},
		{"private_key_jwt client_credentials", c, tokenRequest(e.issuer, assertionForm(jwtID, clientAssertion(t, jwtKey, jwtID, e.issuer+"/token")), "", "")},
	}
	results := make([]result, len(checks))
	errs := make([]error, len(checks))
	took := make([]time.Duration, len(checks))
	var wg sync.WaitGroup
	for i, ch := range checks {
		wg.Go(func() {
			t0 := time.Now()
			results[i], errs[i] = send(ch.c, ch.req)
			took[i] = time.Since(t0)
		})
	}
	wg.Wait()
	for i, ch := range checks {
		if errs[i] != nil {
			t.Errorf("%s (Redis hung): %v", ch.what, errs[i])
			continue
		}
		want503(t, ch.what+" (Redis hung)", results[i])
		t.Logf("Redis hung: %s answered %d in %v", ch.what, results[i].status, took[i].Round(time.Millisecond))
	}
	t.Logf("Redis hung: all answered in %v", time.Since(start).Round(time.Millisecond))

	proxy.set(proxyUp)
	waitReady(t, c, e.issuer, 10*time.Second)
	wantStatus(t, "code exchange after the hang", postToken(t, c, e.issuer, a2.codeForm(code2), id, secret), http.StatusOK)
	if st, _ := fresh.status(t, status3); st != "pending" {
		t.Errorf("login status after the hang = %q, want pending", st)
	}
	log.check(t)
}

// TestPostgresDown_Returns503: with the durable store gone a client is not
// told its credentials are wrong (401 invalid_client) nor its refresh token
// (400 invalid_grant): it gets 503 and retries. The database/sql pool
// reconnects by itself once PostgreSQL is back.
func TestPostgresDown_Returns503(t *testing.T) {
	var proxy *tcpProxy
	e := startMain(t, scaleOption(t), func(c *Config) { proxy, c.PostgresDSN = proxied(t, c.PostgresDSN) })
	log := newStatusLog()
	c := &http.Client{Transport: log, Timeout: 30 * time.Second}
	e.app.HTTP = c
	ccID, ccSecret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
	siteID, siteSecret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	ccForm := url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}

	a := newAuthRequest(e.issuer, siteID, "openid profile offline_access")
	r := postToken(t, c, e.issuer, a.codeForm(codeFrom(t, a, e.login(log.browser(), a.url, e.app, nil))), siteID, siteSecret)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil || r.status != http.StatusOK || tok.RefreshToken == "" {
		t.Fatalf("code exchange: %v", r)
	}
	refreshForm := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
	introspectReq := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/introspect", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(siteID), url.QueryEscape(siteSecret))
		return req
	}

	proxy.set(proxyReset)
	// Clients are served from memory while the last confirmed poll of the
	// client version is recent (oidc.ClientMaxStale): client_credentials,
	// which needs no other durable read, may still succeed for up to that
	// long, then the outage shows. Wait for it; nothing but 200 and 503 is
	// allowed.
	deadline := time.Now().Add(15 * time.Second)
	// The start of a login (a fresh browser at /authorize) needs only the
	// client and the ephemeral store, so it is what shows the staleness.
	for {
		r := get(t, log.browser().Client, newAuthRequest(e.issuer, siteID, "openid profile").url)
		if r.status == http.StatusServiceUnavailable {
			break
		}
		if r.status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("authorize while PostgreSQL is down: %v, want 200 from memory and soon 503", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want503(t, "client_credentials", postToken(t, c, e.issuer, ccForm, ccID, ccSecret))
	want503(t, "client_credentials with a wrong secret", postToken(t, c, e.issuer, ccForm, ccID, "wrong"))
	want503(t, "refresh", postToken(t, c, e.issuer, refreshForm, siteID, siteSecret))
	want503(t, "readyz", get(t, c, e.issuer+"/readyz"))
	want503(t, "authorize", get(t, log.browser().Client, newAuthRequest(e.issuer, siteID, "openid profile").url))
	want503(t, "introspect", do(t, c, introspectReq()))
	ui, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	ui.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	want503(t, "userinfo", do(t, c, ui))

	proxy.set(proxyUp)
	waitReady(t, c, e.issuer, 10*time.Second)
	wantStatus(t, "client_credentials after recovery", postToken(t, c, e.issuer, ccForm, ccID, ccSecret), http.StatusOK)
	// The outage neither rotated nor revoked the refresh token.
	r = postToken(t, c, e.issuer, refreshForm, siteID, siteSecret)
	wantStatus(t, "refresh after recovery", r, http.StatusOK)
	r = do(t, c, introspectReq())
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"active":true`) {
		t.Errorf("introspect after recovery: %v", r)
	}
	log.check(t)
}

// TestPostgresHung_Returns503: a PostgreSQL that accepts connections and
// never answers (a partition, a stuck server) must not hold requests for as
// long as the client waits: the per-request deadline turns it into a 503.
func TestPostgresHung_Returns503(t *testing.T) {
	var proxy *tcpProxy
	e := startMain(t, scaleOption(t), func(c *Config) {
		proxy, c.PostgresDSN = proxied(t, c.PostgresDSN)
		c.RequestTimeout = 2 * time.Second
	})
	log := newStatusLog()
	c := &http.Client{Transport: log, Timeout: 20 * time.Second}
	id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}
	proxy.set(proxyBlackhole)
	// The first request after the switch may fail fast on a pooled
	// connection the proxy closed; the later ones need new connections.
	for i := range 3 {
		want503(t, fmt.Sprintf("client_credentials #%d (PostgreSQL hung)", i+1), postToken(t, c, e.issuer, form, id, secret))
	}
	proxy.set(proxyUp)
	waitReady(t, c, e.issuer, 10*time.Second)
	log.check(t)
}

// TestShutdown_DrainsInFlight is SECURITY 60: Close drops readiness first and
// stops accepting, lets a request already in a handler finish, and returns
// within ShutdownGrace even if a request never does.
func TestShutdown_DrainsInFlight(t *testing.T) {
	// inFlight opens a token request whose handler is running: the server
	// has asked for the body (100 Continue) and is waiting for it.
	inFlight := func(t *testing.T, e *testEnv, id, secret string) (net.Conn, *bufio.Reader, string) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", e.m.IDPAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		body := url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}.Encode()
		auth := base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
		fmt.Fprintf(conn, "POST /token HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n",
			e.m.IDPAddr, auth, len(body))
		br := bufio.NewReader(conn)
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
			t.Fatalf("want 100 Continue, got %q, %v", line, err)
		}
		if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
			t.Fatalf("after 100 Continue: %q, %v", blank, err)
		}
		return conn, br, body
	}
	closeAsync := func(m *Main) (<-chan error, time.Time) {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- m.Close() }()
		return done, start
	}
	// stopsAccepting waits until a new connection is refused.
	stopsAccepting := func(t *testing.T, addr string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return
			}
			_ = c.Close()
			if time.Now().After(deadline) {
				t.Fatal("the listener still accepts 5 s after Close began")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	notReady := func(t *testing.T, m *Main) {
		t.Helper()
		rec := httptest.NewRecorder()
		m.Web.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("readyz during shutdown: %d %s, want 503", rec.Code, rec.Body)
		}
	}

	t.Run("in-flight request finishes", func(t *testing.T) {
		e := startMain(t)
		id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
		conn, br, body := inFlight(t, e, id, secret)
		done, start := closeAsync(e.m)
		stopsAccepting(t, e.m.IDPAddr)
		notReady(t, e.m)
		select {
		case err := <-done:
			t.Fatalf("Close returned (%v) while a request was in flight", err)
		default:
		}
		if _, err := io.WriteString(conn, body); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("in-flight response: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "access_token") {
			t.Errorf("in-flight request: %d %.300s, want a token", resp.StatusCode, b)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
			if d := time.Since(start); d > e.m.Config.ShutdownGrace {
				t.Errorf("Close took %v, grace is %v", d, e.m.Config.ShutdownGrace)
			}
		case <-time.After(e.m.Config.ShutdownGrace + 5*time.Second):
			t.Fatal("Close did not return after the in-flight request finished")
		}
	})

	t.Run("stuck request is cut at the grace period", func(t *testing.T) {
		e := startMain(t)
		id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
		conn, _, _ := inFlight(t, e, id, secret)
		done, start := closeAsync(e.m)
		stopsAccepting(t, e.m.IDPAddr)
		notReady(t, e.m)
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Close with a stuck request: %v, want the grace deadline", err)
			}
			grace := e.m.Config.ShutdownGrace
			if d := time.Since(start); d < grace || d > grace+time.Second {
				t.Errorf("Close took %v, want about the grace period %v", d, grace)
			}
		case <-time.After(e.m.Config.ShutdownGrace + 5*time.Second):
			t.Fatal("Close did not return within the grace period")
		}
		_ = conn.Close()
	})
}

// TestLimits: oversized and malformed input is refused with the right 4xx and
// a JSON body, and bad token requests get RFC 6749 errors.
func TestLimits(t *testing.T) {
	e := startMain(t)
	log := newStatusLog()
	c := &http.Client{Transport: log, Timeout: 30 * time.Second}
	e.app.HTTP = c

	raw := func(t *testing.T, method, path, contentType string, body io.Reader, chunked bool) result {
		t.Helper()
		req, err := http.NewRequest(method, e.issuer+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if chunked {
			req.ContentLength = -1
			req.TransferEncoding = []string{"chunked"}
		}
		return do(t, c, req)
	}
	const form = "application/x-www-form-urlencoded"
	big := "grant_type=client_credentials&pad=" + strings.Repeat("a", 1<<20)
	for _, tc := range []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		chunked     bool
		status      int
		error       string
	}{
		{"URL over 16 KB", http.MethodGet, "/authorize?x=" + strings.Repeat("a", 16<<10), "", "", false, http.StatusRequestURITooLong, "invalid_request"},
		{"URL over 16 KB on an unknown path", http.MethodGet, "/" + strings.Repeat("a", 17<<10), "", "", false, http.StatusRequestURITooLong, "invalid_request"},
		{"form over 1 MB", http.MethodPost, "/token", form, big, false, http.StatusRequestEntityTooLarge, "invalid_request"},
		{"chunked form over 1 MB", http.MethodPost, "/token", form, big, true, http.StatusRequestEntityTooLarge, "invalid_request"},
		{"chunked body over 1 MB, not a form", http.MethodPost, "/token", "application/json", big, true, http.StatusBadRequest, "invalid_request"},
		{"multipart body over 1 MB", http.MethodPost, "/token", "multipart/form-data; boundary=XX",
			"--XX\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\n" + big + "\r\n--XX--\r\n", true, http.StatusBadRequest, "invalid_request"},
		{"bad escape in form", http.MethodPost, "/token", form, "grant_type=client_credentials&x=%zz", false, http.StatusBadRequest, "invalid_request"},
		{"semicolon in form", http.MethodPost, "/token", form, "grant_type=client_credentials;x=1", false, http.StatusBadRequest, "invalid_request"},
		{"bad escape in query", http.MethodGet, "/authorize?client_id=%zz", "", "", false, http.StatusBadRequest, ""}, // an HTML page: no trusted redirect URI
		{"unknown path", http.MethodGet, "/no/such/endpoint", "", "", false, http.StatusNotFound, "not_found"},
		{"wrong method", http.MethodGet, "/token", "", "", false, http.StatusMethodNotAllowed, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := raw(t, tc.method, tc.path, tc.contentType, strings.NewReader(tc.body), tc.chunked)
			if r.status != tc.status {
				t.Fatalf("got %v, want %d", r, tc.status)
			}
			if tc.error != "" && r.jsonError() != tc.error {
				t.Errorf("got %v, want JSON error %q", r, tc.error)
			}
		})
	}

	// Bad token requests. Each gets a fresh code: a wrong code_verifier
	// spends the code's PKCE record, so the code is dead after it.
	id, secret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	otherID, otherSecret := e.client(ClientSpec{Scope: "openid profile"})
	b := log.browser()
	first := newAuthRequest(e.issuer, id, "openid profile")
	_ = codeFrom(t, first, e.login(b, first.url, e.app, nil))
	// mint returns the token request for a fresh code, from the browser's
	// single sign-on session, changed by kv (an empty value deletes).
	mint := func(t *testing.T, kv ...string) url.Values {
		t.Helper()
		a := newAuthRequest(e.issuer, id, "openid profile")
		f := a.codeForm(codeFrom(t, a, b.follow(t, a.url)))
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				f.Del(kv[i])
			} else {
				f.Set(kv[i], kv[i+1])
			}
		}
		return f
	}
	dup := func(t *testing.T, k, v string) url.Values {
		f := mint(t)
		f[k] = append(f[k], v)
		return f
	}
	for _, tc := range []struct {
		name       string
		form       func(t *testing.T) url.Values
		id, secret string
		status     int
		error      string
		// fosite answers some requests with an error other than the one the
		// RFC names (reported); either is accepted, the RFC's is preferred.
		fositeStatus int
		fositeError  string
	}{
		{name: "missing grant_type", form: func(t *testing.T) url.Values { return mint(t, "grant_type", "") }, id: id, secret: secret,
			status: 400, error: "invalid_request"},
		// RFC 6749 5.2.
		{name: "unsupported grant_type", form: func(t *testing.T) url.Values { return mint(t, "grant_type", "password") }, id: id, secret: secret,
			status: 400, error: "unsupported_grant_type", fositeStatus: 400, fositeError: "invalid_request"},
		{name: "unknown client", form: func(t *testing.T) url.Values { return mint(t) }, id: "no-such-client", secret: "x",
			status: 401, error: "invalid_client"},
		{name: "wrong client secret", form: func(t *testing.T) url.Values { return mint(t) }, id: id, secret: "wrong",
			status: 401, error: "invalid_client"},
		// RFC 6749 5.2: "no client authentication included" is invalid_client.
		{name: "no client authentication", form: func(t *testing.T) url.Values { return mint(t) },
			status: 401, error: "invalid_client", fositeStatus: 400, fositeError: "invalid_request"},
		{name: "code for another client", form: func(t *testing.T) url.Values { return mint(t) }, id: otherID, secret: otherSecret,
			status: 400, error: "invalid_grant"},
		{name: "wrong code_verifier", form: func(t *testing.T) url.Values { return mint(t, "code_verifier", oauth2.GenerateVerifier()) }, id: id, secret: secret,
			status: 400, error: "invalid_grant"},
		{name: "missing code_verifier", form: func(t *testing.T) url.Values { return mint(t, "code_verifier", "") }, id: id, secret: secret,
			status: 400, error: "invalid_grant"},
		{name: "other redirect_uri", form: func(t *testing.T) url.Values { return mint(t, "redirect_uri", "http://127.0.0.1:9/elsewhere") }, id: id, secret: secret,
			status: 400, error: "invalid_grant"},
		{name: "unknown code", form: func(t *testing.T) url.Values { return mint(t, "code", "not-a-code") }, id: id, secret: secret,
			status: 400, error: "invalid_grant"},
		{name: "unknown refresh token", form: func(*testing.T) url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x.y"}}
		}, id: id, secret: secret, status: 400, error: "invalid_grant"},
		{name: "refresh_token not registered", form: func(*testing.T) url.Values {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x.y"}}
		}, id: otherID, secret: otherSecret, status: 400, error: "unauthorized_client"},
		{name: "client_credentials not registered", form: func(*testing.T) url.Values {
			return url.Values{"grant_type": {"client_credentials"}}
		}, id: id, secret: secret, status: 400, error: "unauthorized_client"},
		// RFC 6749 3.2: parameters MUST NOT be included more than once;
		// fosite reads the first value (reported).
		{name: "duplicate grant_type", form: func(t *testing.T) url.Values { return dup(t, "grant_type", "authorization_code") }, id: id, secret: secret,
			status: 400, error: "invalid_request", fositeStatus: 200},
		{name: "duplicate code", form: func(t *testing.T) url.Values { return dup(t, "code", "other") }, id: id, secret: secret,
			status: 400, error: "invalid_request", fositeStatus: 200},
		{name: "duplicate code_verifier", form: func(t *testing.T) url.Values { return dup(t, "code_verifier", oauth2.GenerateVerifier()) }, id: id, secret: secret,
			status: 400, error: "invalid_request", fositeStatus: 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := postToken(t, c, e.issuer, tc.form(t), tc.id, tc.secret)
			switch {
			case r.status == tc.status && r.jsonError() == tc.error:
			default:
				t.Errorf("got %v, want %d %s", r, tc.status, tc.error)
			}
			if !json.Valid(r.body) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("not JSON: %q %.200s", r.header.Get("Content-Type"), r.body)
			}
		})
	}
	// Failures before the PKCE check leave the code redeemable.
	for _, bad := range []struct{ id, secret string }{{otherID, otherSecret}, {id, "wrong"}, {"", ""}} {
		f := mint(t)
		_ = postToken(t, c, e.issuer, f, bad.id, bad.secret)
		if r := postToken(t, c, e.issuer, f, id, secret); r.status != http.StatusOK {
			t.Errorf("code after a request from client %q: %v, want 200", bad.id, r)
		}
	}
	log.check(t)
}

// fuzzEnv is one OneDoor shared by every input of a fuzz target: starting it
// per input would be far too slow. It runs on the embedded default (SQLite),
// so no 503 is expected either.
type fuzzEnv struct {
	m          *Main
	h          http.Handler
	replace    *strings.Replacer
	jwtKey     *ecdsa.PrivateKey
	siteSecret string
	session    *http.Cookie // a demo citizen's single sign-on session
	n          atomic.Uint64
}

// Registered values the seeds name by placeholder: the client's secret is
// random per process, and fuzz workers are separate processes.
const (
	fuzzVerifier = "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv" // PKCE, 43 characters
	fuzzSite     = "fuzz-site"
	fuzzService  = "fuzz-service"
	fuzzJWT      = "fuzz-jwt"
	fuzzRedirect = "https://rp.example.test/callback"
)

func startFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	ctx := context.Background()
	m := NewMain()
	m.Config.IDPAddr = "127.0.0.1:0"
	m.Config.APIAddr = "127.0.0.1:0"
	m.Config.Issuer = ""
	m.Config.DataDir = fuzzDataDir(f)
	m.Config.ShutdownGrace = time.Second
	m.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := m.Run(ctx); err != nil {
		f.Fatalf("run: %v", err)
	}
	f.Cleanup(func() { _ = m.Close() })
	_, siteSecret, err := m.CreateClient(ctx, ClientSpec{ID: fuzzSite, Name: "Fuzz site", Scope: "openid profile eid offline_access",
		RedirectURIs: []string{fuzzRedirect}, GrantTypes: []string{"authorization_code", "refresh_token"}})
	if err != nil {
		f.Fatal(err)
	}
	_, serviceSecret, err := m.CreateClient(ctx, ClientSpec{ID: fuzzService, Name: "Fuzz service", Scope: "registry.read",
		GrantTypes: []string{"client_credentials"}})
	if err != nil {
		f.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	jf := filepath.Join(f.TempDir(), "jwks.json")
	if err := os.WriteFile(jf, jwks, 0o600); err != nil {
		f.Fatal(err)
	}
	if _, _, err := m.CreateClient(ctx, ClientSpec{ID: fuzzJWT, Name: "Fuzz JWT", Scope: "registry.read",
		GrantTypes: []string{"client_credentials"}, AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: jf}); err != nil {
		f.Fatal(err)
	}
	fe := &fuzzEnv{m: m, h: m.Web.Handler(), jwtKey: key, siteSecret: siteSecret, replace: strings.NewReplacer(
		"$SITE_SECRET", siteSecret, "$SERVICE_SECRET", serviceSecret, "$ISSUER", m.Issuer, "$VERIFIER", fuzzVerifier)}
	fe.session = fe.login(f)
	return fe
}

// login runs one real login for a demo citizen, through the listener and an
// enrolled eID app, and returns the single sign-on session cookie.
func (fe *fuzzEnv) login(f *testing.F) *http.Cookie {
	f.Helper()
	ctx := context.Background()
	fail := func(step string, err error) {
		f.Helper()
		f.Fatalf("fuzz setup: %s: %v", step, err)
	}
	if err := fe.m.ImportCitizens(ctx, demoCitizens[:1]); err != nil {
		fail("import", err)
	}
	code, _, err := fe.m.EID.Activate(ctx, demoCitizens[0].PersonalID, idp.LevelHigh)
	if err != nil {
		fail("activate", err)
	}
	app, err := eidapp.Open(f.TempDir())
	if err != nil {
		fail("app", err)
	}
	if _, err := app.Enroll(ctx, fe.m.Issuer, demoCitizens[0].PersonalID, code, "fuzz phone"); err != nil {
		fail("enroll", err)
	}
	b := newBrowser()
	a := url.Values{"response_type": {"code"}, "client_id": {fuzzSite}, "redirect_uri": {fuzzRedirect},
		"scope": {"openid profile"}, "state": {"state-0123456789"}, "nonce": {"nonce-0123456789"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(fuzzVerifier)}, "code_challenge_method": {"S256"}}
	resp, err := b.Get(fe.m.Issuer + "/authorize?" + a.Encode())
	if err != nil {
		fail("authorize", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := qrRE.FindSubmatch(page)
	noteLoginPage(page)
	if m == nil {
		fail("login page", fmt.Errorf("status %d, no QR code", resp.StatusCode))
	}
	payload, statusURL := html.UnescapeString(string(m[1])), html.UnescapeString(string(m[2]))
	if _, err := app.Approve(ctx, payload, pick(payload), false, nil); err != nil {
		fail("approve", err)
	}
	resp, err = b.Get(statusURL)
	if err != nil {
		fail("status", err)
	}
	var st struct {
		RedirectTo string `json:"redirect_to"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.RedirectTo == "" {
		fail("status", fmt.Errorf("no redirect_to: %v", err))
	}
	resp, err = b.Get(st.RedirectTo)
	if err != nil {
		fail("continue", err)
	}
	resp.Body.Close()
	u, _ := url.Parse(fe.m.Issuer)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == "onedoor-session" {
			return c
		}
	}
	fail("continue", fmt.Errorf("status %d, no session cookie", resp.StatusCode))
	return nil
}

// fuzzDataDir is a directory on tmpfs when there is one: SQLite syncs every
// commit, and on a busy disk a single fsync can stall a worker for seconds,
// so the fuzzer would measure the disk instead of the handlers.
func fuzzDataDir(f *testing.F) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "onedoor-fuzz-"); err == nil {
			f.Cleanup(func() { _ = os.RemoveAll(d) })
			return d
		}
	}
	return f.TempDir()
}

// serve runs r through the handler from an address of its own, so the
// per-IP login limit does not turn every later input into a 429.
func (fe *fuzzEnv) serve(r *http.Request) *httptest.ResponseRecorder {
	n := fe.n.Add(1)
	r.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4242", (n>>16)%256, (n>>8)%256, n%256)
	rec := httptest.NewRecorder()
	fe.h.ServeHTTP(rec, r)
	return rec
}

// mintCode gets a fresh code for fuzz-site from the session, by silent
// single sign-on; "" if that fails.
func (fe *fuzzEnv) mintCode(scope string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {fuzzSite}, "redirect_uri": {fuzzRedirect},
		"scope": {scope}, "state": {"state-0123456789"}, "nonce": {"nonce-0123456789"},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(fuzzVerifier)}, "code_challenge_method": {"S256"}}
	req := httptest.NewRequest(http.MethodGet, "/authorize?"+q.Encode(), nil)
	req.AddCookie(fe.session)
	loc, err := url.Parse(fe.serve(req).Header().Get("Location"))
	if err != nil {
		return ""
	}
	return loc.Query().Get("code")
}

// mintRefresh gets a fresh refresh token for fuzz-site; "" if that fails.
func (fe *fuzzEnv) mintRefresh() string {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {fe.mintCode("openid profile offline_access")},
		"redirect_uri": {fuzzRedirect}, "code_verifier": {fuzzVerifier}}
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(fuzzSite, fe.siteSecret)
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	_ = json.Unmarshal(fe.serve(req).Body.Bytes(), &tok)
	return tok.RefreshToken
}

// expand fills in the placeholders. $ASSERTION, $CODE and $REFRESH become
// fresh values at each occurrence: all three are single use.
func (fe *fuzzEnv) expand(s string) string {
	s = fe.replace.Replace(s)
	for strings.Contains(s, "$CODE") {
		s = strings.Replace(s, "$CODE", fe.mintCode("openid profile"), 1)
	}
	for strings.Contains(s, "$REFRESH") {
		s = strings.Replace(s, "$REFRESH", fe.mintRefresh(), 1)
	}
	for strings.Contains(s, "$ASSERTION") {
		now := time.Now()
		claims := map[string]any{"iss": fuzzJWT, "sub": fuzzJWT, "aud": fe.m.Issuer + "/token",
			"jti": randomString(16), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		s = strings.Replace(s, "$ASSERTION", signES256(fe.jwtKey, "k1", claims), 1)
	}
	return s
}

func signES256(key *ecdsa.PrivateKey, kid string, claims map[string]any) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		panic(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := sig.Sign(payload)
	if err != nil {
		panic(err)
	}
	s, _ := obj.CompactSerialize()
	return s
}

// FuzzTokenEndpoint: whatever the body and client authentication, the token
// endpoint answers without a server error and with a JSON body.
func FuzzTokenEndpoint(f *testing.F) {
	fe := startFuzzEnv(f)
	const basic = true
	for _, s := range []struct {
		body       string
		user, pass string
		basic      bool
	}{
		{"grant_type=client_credentials&scope=registry.read", fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=client_credentials&scope=registry.read+openid", fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=client_credentials&scope=registry.read&audience=x&audience=y", fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=client_credentials&client_id=" + fuzzService + "&client_secret=$SERVICE_SECRET", "", "", false},
		{"grant_type=client_credentials&client_id=" + fuzzService, fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=authorization_code&code=abc.def&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&code_verifier=" + strings.Repeat("v", 43), fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=authorization_code&code=&redirect_uri=", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=authorization_code&code=$CODE&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&code_verifier=$VERIFIER", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=authorization_code&code=$CODE&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&code_verifier=$VERIFIER&scope=openid+profile+eid", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=authorization_code&code=$CODE&code_verifier=$VERIFIER", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=authorization_code&code=$CODE&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&code_verifier=$VERIFIER&client_id=" + fuzzSite + "&client_secret=$SITE_SECRET", "", "", false},
		{"grant_type=authorization_code&code=$CODE&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&code_verifier=$VERIFIER", fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=refresh_token&refresh_token=$REFRESH", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=refresh_token&refresh_token=$REFRESH&scope=openid+offline_access", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=refresh_token&refresh_token=$REFRESH&scope=openid+profile+eid+registry.read", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=refresh_token&refresh_token=abc.def&scope=openid", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=refresh_token&refresh_token=", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=password&username=a&password=b", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c", fuzzSite, "$SITE_SECRET", basic},
		{"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c&client_id=" + idp.EIDAppClientID, "", "", false},
		{"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=eyJhbGciOiJub25lIn0.e30.&client_id=" + idp.EIDAppClientID + "&scope=openid", "", "", false},
		{"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&client_id=" + idp.EIDAppClientID + "&scope=offline_access", "", "", false},
		{"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c", idp.EIDAppClientID, "", basic},
		{"grant_type=refresh_token&refresh_token=abc&client_id=" + idp.EIDAppClientID, "", "", false},
		{"grant_type=client_credentials&client_id=" + fuzzJWT + "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=$ASSERTION", "", "", false},
		{"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=$ASSERTION&scope=registry.read", "", "", false},
		{"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJub25lIn0.e30.", "", "", false},
		{"grant_type=client_credentials&client_assertion_type=x&client_assertion=a.b.c", "", "", false},
		{"grant_type=client_credentials", fuzzService, "wrong", basic},
		{"grant_type=client_credentials", "", "", basic},
		{"grant_type=client_credentials", "%zz", "%", basic},
		{"grant_type=client_credentials", idp.EIDAppClientID, "", basic},
		{"grant_type=authorization_code&client_id=" + idp.EIDAppClientID + "&code=x&code_verifier=y", "", "", false},
		{"", "", "", false},
		{"grant_type", "", "", false},
		{"grant_type=%zz", "", "", false},
		{"a=1;b=2", "", "", false},
		{"grant_type=client_credentials&grant_type=refresh_token", fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=client_credentials+refresh_token", fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=+&scope=++", fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=client_credentials&scope=" + strings.Repeat("a+", 200), fuzzService, "$SERVICE_SECRET", basic},
		{"grant_type=client_credentials&scope=%00%ff%fe", fuzzService, "$SERVICE_SECRET", basic},
	} {
		f.Add(s.body, s.user, s.pass, s.basic)
	}
	f.Fuzz(func(t *testing.T, body, user, pass string, basic bool) {
		body, user, pass = fe.expand(body), fe.expand(user), fe.expand(pass)
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(user, pass)
		}
		rec := fe.serve(req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("status %d, body is not JSON: %q", rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("status %d, Content-Type %q", rec.Code, ct)
		}
		if rec.Code == http.StatusOK && !strings.Contains(rec.Body.String(), `"access_token"`) {
			t.Fatalf("200 without an access token: %s", rec.Body)
		}
	})
}

// FuzzAuthorizeEndpoint: whatever the query (or form), with or without a
// single sign-on session, /authorize answers without a server error; a
// redirect goes only to a redirect URI the named client registered, carries
// iss, and carries a code only with a session (and then the request's
// state); anything else is a page or a JSON error.
func FuzzAuthorizeEndpoint(f *testing.F) {
	fe := startFuzzEnv(f)
	pkce := "&code_challenge=" + oauth2.S256ChallengeFromVerifier(fuzzVerifier) + "&code_challenge_method=S256"
	base := "response_type=code&client_id=" + fuzzSite + "&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&state=state-0123456789&nonce=nonce-0123456789"
	for _, s := range []struct {
		query string
		post  bool
	}{
		{base + "&scope=openid+profile" + pkce, false},
		{base + "&scope=openid+profile" + pkce, true},
		{base + "&scope=openid+profile+offline_access&prompt=consent" + pkce, false},
		{base + "&scope=openid&prompt=none" + pkce, false},
		{base + "&scope=openid&prompt=login+none" + pkce, false},
		{base + "&scope=openid&prompt=bogus" + pkce, false},
		{base + "&scope=openid&max_age=-1" + pkce, false},
		{base + "&scope=openid&max_age=99999999999999999999" + pkce, false},
		{base + "&scope=openid&max_age=0" + pkce, false},
		{base + "&scope=openid+profile&max_age=3600&prompt=none" + pkce, false},
		{base + "&scope=openid&acr_values=high&prompt=none" + pkce, false},
		{base + "&scope=openid+phone&claims=%7B%22userinfo%22%3A%7B%22phone_number%22%3A%7B%22essential%22%3Atrue%7D%7D%7D&prompt=none" + pkce, false},
		{base + "&scope=openid&acr_values=high+substantial" + pkce, false},
		{base + "&scope=openid&claims=%7B%22id_token%22%3A%7B%22phone_number%22%3A%7B%22essential%22%3Atrue%7D%7D%7D" + pkce, false},
		{base + "&scope=openid&claims=%7B" + pkce, false},
		{base + "&scope=openid&claims=null" + pkce, false},
		{base + "&scope=openid&purpose=" + strings.Repeat("p", 301) + pkce, false},
		{base + "&scope=openid&response_mode=fragment" + pkce, false},
		{base + "&scope=openid&ui_locales=en&lang=en" + pkce, false},
		{base + "&scope=openid", false},
		{base + "&scope=openid&code_challenge=abc&code_challenge_method=plain", false},
		{base + "&scope=openid&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Anope" + pkce, false},
		{base + "&scope=openid&request=eyJhbGciOiJub25lIn0.e30." + pkce, false},
		{base + "&scope=unknown" + pkce, false},
		{"response_type=token&client_id=" + fuzzSite + "&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&scope=openid&state=state-0123456789" + pkce, false},
		{"response_type=code+id_token&client_id=" + fuzzSite + "&scope=openid&state=state-0123456789&nonce=nonce-0123456789" + pkce, false},
		{"response_type=code&client_id=" + fuzzSite + "&redirect_uri=https%3A%2F%2Fevil.example%2Fcallback&scope=openid&state=state-0123456789" + pkce, false},
		{"response_type=code&client_id=" + fuzzSite + "&redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback%2F..%2Fx&scope=openid" + pkce, false},
		{"response_type=code&client_id=" + fuzzSite + "&redirect_uri=https%3A%2F%2Frp.example.test%2Fcallback%3Fx%3D1&scope=openid" + pkce, false},
		{"response_type=code&client_id=" + fuzzSite + "&scope=openid" + pkce, false},
		{"response_type=code&client_id=" + fuzzService + "&scope=registry.read" + pkce, false},
		{"response_type=code&client_id=" + idp.EIDAppClientID + "&scope=openid" + pkce, false},
		{"response_type=code&client_id=nope&scope=openid", false},
		{"client_id=" + fuzzSite, false},
		{"", false},
		{"%zz", false},
		{"a=1;b=2", true},
		{base + "&state=" + strings.Repeat("s", 2000) + "&scope=openid" + pkce, false},
		{base + "&scope=openid&scope=profile" + pkce, false},
		{base + "&client_id=other&scope=openid" + pkce, false},
	} {
		f.Add(s.query, s.post, false)
		f.Add(s.query, s.post, true)
	}
	// The redirect URIs each client the seeds name registered.
	registered := map[string][]*url.URL{}
	for _, id := range []string{fuzzSite, fuzzService, idp.EIDAppClientID} {
		c, err := fe.m.Store.GetClient(context.Background(), id)
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range c.RedirectURIs {
			u, err := url.Parse(r)
			if err != nil {
				f.Fatal(err)
			}
			registered[id] = append(registered[id], u)
		}
	}
	f.Fuzz(func(t *testing.T, query string, post, withSession bool) {
		query = fe.expand(query)
		var req *http.Request
		if post {
			req = httptest.NewRequest(http.MethodPost, "/authorize", strings.NewReader(query))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			// Raw, unescaped: the handler must cope with whatever a
			// proxy in front of it lets through.
			req = httptest.NewRequest(http.MethodGet, "/authorize", nil)
			req.URL.RawQuery = query
			req.RequestURI = "/authorize?" + query
		}
		if withSession {
			req.AddCookie(fe.session)
		}
		rec := fe.serve(req)
		ct := rec.Header().Get("Content-Type")
		switch {
		case rec.Code >= 500:
			t.Fatalf("status %d for %q: %.500s", rec.Code, query, rec.Body)
		case rec.Code >= 300 && rec.Code < 400:
			loc, err := url.Parse(rec.Header().Get("Location"))
			if err != nil {
				t.Fatalf("redirect to an unparsable Location %q", rec.Header().Get("Location"))
			}
			// fosite reads the first client_id, as ParseQuery finds it.
			form, _ := url.ParseQuery(query)
			client := form.Get("client_id")
			ok := false
			for _, r := range registered[client] {
				ok = ok || (loc.Scheme == r.Scheme && loc.Host == r.Host && loc.Path == r.Path && loc.Opaque == r.Opaque)
			}
			if !ok || loc.User != nil || loc.Fragment != "" {
				t.Fatalf("redirect to %q, not a redirect URI %q registered, for %q", loc, client, query)
			}
			q := loc.Query()
			if (q.Get("code") == "") == (q.Get("error") == "") {
				t.Fatalf("redirect with neither or both of code and error: %q for %q", loc, query)
			}
			if q.Get("code") != "" && !withSession {
				t.Fatalf("code without a login: %q for %q", loc, query)
			}
			if q.Get("code") != "" && q.Get("state") != form.Get("state") {
				t.Fatalf("code with state %q, request had %q", q.Get("state"), form.Get("state"))
			}
			if q.Get("iss") != fe.m.Issuer {
				t.Fatalf("redirect without iss (RFC 9207): %q", loc)
			}
		case strings.HasPrefix(ct, "text/html"):
		case strings.HasPrefix(ct, "application/json") && rec.Code >= 400 && json.Valid(rec.Body.Bytes()):
		default:
			t.Fatalf("status %d with Content-Type %q for %q: %.300s", rec.Code, ct, query, rec.Body)
		}
	})
}
