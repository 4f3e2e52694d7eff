package main

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestServe_EmbeddedDPoPAcrossRestart: the embedded default keeps the DPoP
// proofs it spent in memory. A request the API accepted, replayed byte for
// byte after a restart on the same data (the set is gone), is refused with
// use_dpop_nonce and a DPoP-Nonce, never served; a client that retries
// with the nonce is served, and so is the eID app. While a server runs, a
// second one on the same data directory refuses to start.
func TestServe_EmbeddedDPoPAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	idpPort, apiPort := freePort(t), freePort(t)
	same := func(c *Config) {
		c.DataDir = dir
		c.IDPAddr, c.APIAddr = "127.0.0.1:"+strconv.Itoa(idpPort), "127.0.0.1:"+strconv.Itoa(apiPort)
	}
	e := startMain(t, same)
	cit := e.citizenAPI(t, e.app)

	// The request as the app sent it: its token and proof.
	htu := e.m.APIURL + "/v1/me"
	captured, err := http.NewRequest(http.MethodGet, "http://"+e.m.APIAddr+"/v1/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	captured.Header.Set("Authorization", "DPoP "+cit.token)
	captured.Header.Set("DPoP", cit.pop.proof(t, http.MethodGet, htu, cit.token))
	send := func(what string, want int) *http.Response {
		t.Helper()
		resp, err := http.DefaultClient.Do(captured.Clone(context.Background()))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d %s, want %d", what, resp.StatusCode, body, want)
		}
		return resp
	}
	send("the app's request", http.StatusOK)
	send("the same request replayed", http.StatusUnauthorized)

	second := NewMain()
	second.Config.DataDir = dir
	second.Config.IDPAddr, second.Config.APIAddr, second.Config.Issuer = "127.0.0.1:0", "127.0.0.1:0", ""
	err = second.Run(context.Background())
	_ = second.Close()
	if err == nil || !strings.Contains(err.Error(), "another onedoor serve is using the data directory") {
		t.Fatalf("a second server on the same data directory: %v, want a refusal naming it", err)
	}

	// A crash or a stop: the next process has forgotten the set.
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	next := startMain(t, same)
	resp := send("the same request after the restart", http.StatusUnauthorized)
	if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="use_dpop_nonce"`) || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("replay after the restart: WWW-Authenticate %q, DPoP-Nonce %q; want use_dpop_nonce with a nonce", ch, resp.Header.Get("DPoP-Nonce"))
	}
	// The same token from the same app, with a fresh proof: one retry.
	cit.base = "http://" + next.m.APIAddr
	cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil)
	// The eID app's own client does the same.
	req, err := http.NewRequest(http.MethodGet, next.m.APIURL+"/v1/home", nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.app.DoAPI(t.Context(), next.m.APIURL, req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("the eID app after the restart: %d", r.StatusCode)
	}
}

// TestServe_UseDPoPNonceCarriesANonceAfterRestart: right after a restart of
// the embedded default every DPoP proof needs the new process's nonce, so
// PAR and the token endpoint under --dpop-nonce=false answer
// use_dpop_nonce with a DPoP-Nonce to retry with, like the rest.
func TestServe_UseDPoPNonceCarriesANonceAfterRestart(t *testing.T) {
	dir := t.TempDir()
	idpPort, apiPort := freePort(t), freePort(t)
	same := func(c *Config) {
		c.DataDir = dir
		c.DPoPNonce = false
		c.IDPAddr, c.APIAddr = "127.0.0.1:"+strconv.Itoa(idpPort), "127.0.0.1:"+strconv.Itoa(apiPort)
	}
	e := startMain(t, same)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	next := startMain(t, same)
	pop := newDPoPClient(t)
	forms := map[string]string{
		"/par":   url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:9/callback"}, "scope": {"openid profile"}, "state": {randomString(12)}, "nonce": {randomString(12)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"}}.Encode(),
		"/token": url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}.Encode(),
	}
	for path, form := range forms {
		req, err := http.NewRequest(http.MethodPost, next.issuer+path, strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		req.Header.Set("DPoP", pop.proof(t, http.MethodPost, next.issuer+path, ""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%s: %d %s DPoP-Nonce=%q", path, resp.StatusCode, body, resp.Header.Get("DPoP-Nonce"))
		if strings.Contains(string(body), "use_dpop_nonce") && resp.Header.Get("DPoP-Nonce") == "" {
			t.Errorf("%s after a restart: use_dpop_nonce with no DPoP-Nonce to retry with", path)
		}
	}
}

// TestServe_RedisServerTakesTheServeLock: a second server on the same
// SQLite data directory, but with --redis-url (an operator moving to
// Redis, blue/green on one host), takes the serve lock too: it does not
// start beside the in-process one, which would keep its own replay set.
func TestServe_RedisServerTakesTheServeLock(t *testing.T) {
	redisURL := os.Getenv("ONEDOOR_TEST_REDIS_URL")
	if redisURL == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ONEDOOR_TEST_REDIS_URL is not set; CI must run the Redis cases")
		}
		t.Skip("ONEDOOR_TEST_REDIS_URL not set")
	}
	dir := t.TempDir()
	e := startMain(t, func(c *Config) { c.DataDir = dir })
	cit := e.citizenAPI(t, e.app)
	htu := e.m.APIURL + "/v1/me"
	proof := cit.pop.proof(t, http.MethodGet, htu, cit.token)
	send := func(addr string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/me", nil)
		req.Header.Set("Authorization", "DPoP "+cit.token)
		req.Header.Set("DPoP", proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%s: %d %s %s", addr, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), b)
		return resp.StatusCode
	}
	if st := send(e.m.APIAddr); st != http.StatusOK {
		t.Fatalf("the app's request: %d", st)
	}
	second := NewMain()
	second.Config.DataDir = dir
	second.Config.RedisURL = redisURL
	second.Config.RedisPrefix = "test-" + randomHex(4) + ":"
	second.Config.IDPAddr, second.Config.APIAddr = "127.0.0.1:0", "127.0.0.1:0"
	second.Config.Issuer, second.Config.APIURL = e.m.Config.Issuer, e.m.Config.APIURL
	second.Logger = e.m.Logger
	err := second.Run(context.Background())
	t.Cleanup(func() { _ = second.Close() })
	if err == nil {
		t.Errorf("a Redis-backed server started on the data directory an in-process server holds: the two keep separate replay sets")
		t.Logf("the captured request replayed at the second server: %d", send(second.APIAddr))
	}
}
