package main

// Two OneDoor processes behind one issuer, sharing PostgreSQL, Redis and the
// master key (SECURITY 59): whatever one node starts the other can finish,
// and killing a node loses nothing.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/keyset"
)

// buildOneDoor compiles this command once per test into a temp dir.
func buildOneDoor(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "onedoor")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort asks the kernel for a port that is free now.
func freePort(t *testing.T) int {
	t.Helper()
	// A port from below Linux's ephemeral range (32768-60999): a child
	// process binds it some time after this check, and a port the kernel
	// hands out for :0 can meanwhile become the local end of any outgoing
	// connection on the machine (seen: "address already in use" when a node
	// restarted on its port). Ports below the range are only ever taken by
	// an explicit bind.
	for range 100 {
		p := 20000 + mathrand.IntN(12000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			_ = ln.Close()
			return p
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a child's output; exec copies into it from its own
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is one running `onedoor serve`.
type node struct {
	name string
	url  string // where this node listens
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
}

// childEnv is the environment of every onedoor process in the cluster: no
// ONEDOOR_* setting leaks in from the test's environment, and all share the
// master key.
func childEnv(masterKey string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ONEDOOR_") {
			env = append(env, kv)
		}
	}
	return append(env, keyset.MasterKeyEnv+"="+masterKey)
}

func startNode(t *testing.T, bin, name string, env []string, port int, issuer string, storage ...string) *node {
	t.Helper()
	n := &node{name: name, url: "http://127.0.0.1:" + strconv.Itoa(port), out: &syncBuffer{}, done: make(chan struct{})}
	args := append([]string{"serve",
		"--idp-addr", "127.0.0.1:" + strconv.Itoa(port), "--api-addr", "127.0.0.1:0",
		"--api-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"--issuer", issuer,
		"--data-dir", t.TempDir(),
		"--log-level", "warn",
		"--shutdown-grace", "2s",
	}, storage...)
	n.cmd = exec.Command(bin, args...)
	n.cmd.Env = env
	n.cmd.Dir = t.TempDir()
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", name, err)
	}
	go func() {
		_ = n.cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("node %s output:\n%s", name, n.out)
		}
	})
	return n
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
}

// waitReady polls the node's /readyz until it answers 204.
func (n *node) waitReady(t *testing.T, c *http.Client) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-n.done:
			t.Fatalf("node %s exited before it was ready: %v\n%s", n.name, n.cmd.ProcessState, n.out)
		default:
		}
		resp, err := c.Get(n.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not ready after 30 s (last: %v)\n%s", n.name, err, n.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// admin runs an admin command of the same binary against the cluster's
// storage and decodes its JSON output into out.
func admin(t *testing.T, bin string, env []string, out any, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("onedoor %s: %v\n%s", strings.Join(args[:2], " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("onedoor %s: output is not JSON: %v\n%s", strings.Join(args[:2], " "), err, stdout.String())
	}
}

// onNode rewrites a URL of the shared issuer to address node n directly.
func onNode(t *testing.T, raw string, n *node) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	nu, _ := url.Parse(n.url)
	u.Host = nu.Host
	return u.String()
}

// cluster is two nodes sharing storage, master key and issuer (node A's
// address).
type cluster struct {
	bin, dsn string
	env      []string
	issuer   string
	a, b     *node
	log      *statusLog
	c        *http.Client
}

// startCluster builds the binary and starts nodes A and B on a fresh schema,
// B after A is ready unless concurrently.
func startCluster(t *testing.T, concurrently bool) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary and runs two processes")
	}
	dsn, redisURL := scaleBackends(t)
	cl := &cluster{bin: buildOneDoor(t), dsn: dsn, log: newStatusLog()}
	cl.c = &http.Client{Transport: cl.log, Timeout: 30 * time.Second}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	cl.env = childEnv(b64(k))
	portA, portB := freePort(t), freePort(t)
	cl.issuer = "http://127.0.0.1:" + strconv.Itoa(portA)
	storage := []string{"--postgres-dsn", dsn, "--redis-url", redisURL, "--blob-dir", t.TempDir()}
	cl.a = startNode(t, cl.bin, "A", cl.env, portA, cl.issuer, storage...)
	if !concurrently {
		cl.a.waitReady(t, cl.c)
	}
	cl.b = startNode(t, cl.bin, "B", cl.env, portB, cl.issuer, storage...)
	cl.a.waitReady(t, cl.c)
	cl.b.waitReady(t, cl.c)
	return cl
}

// checkKeys lists the signing keys with the admin command: there must be
// one active and one next key per algorithm.
func (cl *cluster) checkKeys(t *testing.T) {
	t.Helper()
	var list struct {
		Keys []keyset.KeyInfo `json:"keys"`
	}
	admin(t, cl.bin, cl.env, &list, "keys", "list", "--postgres-dsn", cl.dsn)
	states := map[string]int{}
	for _, k := range list.Keys {
		states[k.Alg+" "+k.State]++
	}
	for _, alg := range []string{"ES256", "RS256"} {
		if states[alg+" active"] != 1 || states[alg+" next"] != 1 {
			t.Errorf("signing keys: %v, want one active and one next per algorithm", states)
			return
		}
	}
}

// TestTwoNodes_ConcurrentFirstStart: two nodes that start at once on an
// empty schema, as in a rollout of a new deployment, must agree on the
// signing keys (keyset serialises key creation with a database lock).
func TestTwoNodes_ConcurrentFirstStart(t *testing.T) {
	cl := startCluster(t, true)
	cl.checkKeys(t)
}

// TestTwoNodes_LoginStartedOnOneCompletesOnOther is SECURITY 59. The login
// starts on node A and the app approves it there; then A is killed with
// SIGKILL and node B finishes the flow: the login status, the continuation,
// the code exchange, ID token verification against B's JWKS, and a refresh.
func TestTwoNodes_LoginStartedOnOneCompletesOnOther(t *testing.T) {
	cl := startCluster(t, false)
	issuer, a, b, c := cl.issuer, cl.a, cl.b, cl.c
	cl.checkKeys(t)

	// Seed with the admin commands, against the storage the nodes serve.
	pid := demoCitizens[0].PersonalID
	citizens := filepath.Join(t.TempDir(), "citizens.json")
	raw, _ := json.Marshal(demoCitizens[:1])
	if err := os.WriteFile(citizens, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var imported struct {
		Imported int `json:"imported"`
	}
	admin(t, cl.bin, cl.env, &imported, "citizen", "import", citizens, "--postgres-dsn", cl.dsn)
	if imported.Imported != 1 {
		t.Fatalf("imported %d citizens, want 1", imported.Imported)
	}
	var act struct {
		Code string `json:"activation_code"`
	}
	admin(t, cl.bin, cl.env, &act, "citizen", "activate", "--id", pid, "--level", "high", "--postgres-dsn", cl.dsn)
	var client struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	const redirect = "http://127.0.0.1:9/callback"
	admin(t, cl.bin, cl.env, &client, "client", "create", "--name", "Cluster test agency", "--redirect-uri", redirect,
		"--scope", "openid profile offline_access", "--grant-type", "authorization_code", "--grant-type", "refresh_token",
		"--postgres-dsn", cl.dsn)
	if act.Code == "" || client.ID == "" || client.Secret == "" {
		t.Fatalf("admin output: activation %+v, client %+v", act, client)
	}

	// The app knows only the issuer, which is node A.
	ctx := context.Background()
	app, err := eidapp.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	app.HTTP = c
	if _, err := app.Enroll(ctx, issuer, pid, act.Code, "phone"); err != nil {
		t.Fatalf("enroll at A: %v", err)
	}

	// Node B announces the shared issuer, not its own address.
	provider, err := gooidc.NewProvider(gooidc.InsecureIssuerURLContext(gooidc.ClientContext(ctx, c), issuer), b.url)
	if err != nil {
		t.Fatalf("discovery at B: %v", err)
	}
	if provider.Endpoint().TokenURL != issuer+"/token" {
		t.Errorf("B's token endpoint %q, want the issuer's", provider.Endpoint().TokenURL)
	}

	// Start at A and approve there.
	br := cl.log.browser()
	state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
	conf := &oauth2.Config{ClientID: client.ID, ClientSecret: client.Secret, RedirectURL: redirect,
		Scopes:   []string{gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess},
		Endpoint: oauth2.Endpoint{AuthURL: a.url + "/authorize", TokenURL: b.url + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
	payload, statusURL := br.loginPage(t, conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)))
	if _, err := app.Approve(ctx, payload, pick(payload), false, nil); err != nil {
		t.Fatalf("approve at A: %v", err)
	}

	// Node A dies mid-flow; nothing it held in memory is needed.
	a.kill()
	if _, err := c.Get(a.url + "/readyz"); err == nil {
		t.Fatal("node A still answers after SIGKILL")
	}

	// B finishes: status, continuation (the browser's binding cookie
	// carries over, cookie jars ignore ports), code exchange.
	st, next := br.status(t, onNode(t, statusURL, b))
	if st != "approved" || next == "" {
		t.Fatalf("status at B = %q, %q; want approved", st, next)
	}
	loc := br.follow(t, onNode(t, next, b))
	q := loc.Query()
	if q.Get("error") != "" || q.Get("state") != state || q.Get("iss") != issuer || q.Get("code") == "" {
		t.Fatalf("authorization response from B: %v", loc)
	}
	octx := context.WithValue(ctx, oauth2.HTTPClient, c)
	tok, err := conf.Exchange(octx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange at B: %v", err)
	}

	// The ID token verifies against the keys B publishes.
	jwks := gooidc.NewRemoteKeySet(gooidc.ClientContext(ctx, c), b.url+"/.well-known/jwks.json")
	verifier2 := gooidc.NewVerifier(issuer, jwks, &gooidc.Config{ClientID: client.ID, SupportedSigningAlgs: []string{"ES256", "RS256"}})
	verify := func(what string, tok *oauth2.Token) *gooidc.IDToken {
		t.Helper()
		raw, _ := tok.Extra("id_token").(string)
		idt, err := verifier2.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("%s: verify ID token with B's JWKS: %v", what, err)
		}
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Errorf("%s: at_hash: %v", what, err)
		}
		return idt
	}
	idt := verify("code exchange", tok)
	if idt.Nonce != nonce {
		t.Errorf("nonce = %q, want %q", idt.Nonce, nonce)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for offline_access")
	}

	// With A gone, B refreshes and serves the tokens it issues.
	tok2, err := conf.TokenSource(octx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatalf("refresh at B: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken {
		t.Error("refresh token not rotated")
	}
	if _, ok := tok2.Extra("id_token").(string); ok {
		if idt2 := verify("refresh", tok2); idt2.Subject != idt.Subject {
			t.Errorf("refreshed ID token subject %q, want %q", idt2.Subject, idt.Subject)
		}
	}
	if got := introspect(t, b.url, client.ID, client.Secret, tok2.AccessToken); got["active"] != true || got["sub"] != idt.Subject {
		t.Errorf("introspection at B = %v", got)
	}
	req, _ := http.NewRequest(http.MethodGet, b.url+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok2.AccessToken)
	r := do(t, c, req)
	var claims map[string]any
	if r.status != http.StatusOK || json.Unmarshal(r.body, &claims) != nil || claims["sub"] != idt.Subject {
		t.Errorf("userinfo at B: %v", r)
	}
	cl.log.check(t)
}
