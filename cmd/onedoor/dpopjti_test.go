package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp/dpop"
)

// proofToken posts form to the token endpoint with Basic id:secret and the
// given DPoP proof, as it is: no nonce retry.
func proofToken(t *testing.T, issuer, id, secret string, form url.Values, proof string) tokenReply {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	req.Header.Set("DPoP", proof)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := tokenReply{status: resp.StatusCode, header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&r.body); err != nil {
		t.Fatalf("token answer %d is not JSON: %v", resp.StatusCode, err)
	}
	return r
}

// tokenNonce fetches a DPoP nonce from the token endpoint, which sends one
// with every answer (here a refusal of an empty form).
func tokenNonce(t *testing.T, issuer string) string {
	t.Helper()
	r := proofToken(t, issuer, "x", "x", url.Values{}, "")
	return r.header.Get("DPoP-Nonce")
}

func TestDPoP_JTISpentAfterClientAuth_SQLite(t *testing.T) {
	runDPoPJTISpentAfterClientAuth(t, startMain(t))
}

func TestDPoP_JTISpentAfterClientAuth_PostgresRedis(t *testing.T) {
	runDPoPJTISpentAfterClientAuth(t, startMain(t, scaleOption(t)))
}

// runDPoPJTISpentAfterClientAuth: a token request carrying a client secret
// spends its proof's jti only once the client has authenticated, so a
// stranger with a wrong secret cannot fill the replay store with proofs of
// his own keys; and a replayed proof of an authenticated client is refused
// before any token is minted or its grant changes.
func runDPoPJTISpentAfterClientAuth(t *testing.T, e *testEnv) {
	id, secret := e.client(ClientSpec{Scope: "openid profile offline_access"})
	c := newDPoPClient(t)
	c.nonce = tokenNonce(t, e.issuer)
	scopes := []string{"openid", "profile", "offline_access"}
	code, verifier := e.dpopLogin(id, secret, scopes)
	tokenURL := e.issuer + "/token"

	// A wrong secret with a fresh, valid proof: invalid_client, and the
	// proof stays unspent (the real client's request with it succeeds).
	p := c.proof(t, http.MethodPost, tokenURL, "")
	for _, wrong := range []string{secret + "x", "not-the-secret"} {
		r := proofToken(t, e.issuer, id, wrong, codeForm(code, verifier), p)
		if r.status != http.StatusUnauthorized || r.str("error") != "invalid_client" {
			t.Fatalf("wrong secret: %d %v, want 401 invalid_client", r.status, r.body)
		}
	}
	// A stranger naming no registered client at all, likewise.
	if r := proofToken(t, e.issuer, "no-such-client", "secret", codeForm(code, verifier), p); r.str("error") != "invalid_client" {
		t.Fatalf("unknown client: %d %v, want invalid_client", r.status, r.body)
	}
	r := proofToken(t, e.issuer, id, secret, codeForm(code, verifier), p)
	if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, r.str("access_token")) != c.jkt(t) {
		t.Fatalf("the real client with the proof the stranger sent: %d %v", r.status, r.body)
	}
	rt := r.str("refresh_token")
	if rt == "" {
		t.Fatal("no refresh token")
	}

	// The same proof again, by the authenticated client: refused as a
	// replay with no token, and the grant is not touched. The refresh token
	// is not rotated (nor its family revoked), and a fresh code is not
	// consumed: each works with a fresh proof afterwards. (A code or refresh
	// token already used is fosite's reuse, found in NewAccessRequest
	// before the proof is spent: invalid_grant, its family revoked.)
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	code, verifier = e.dpopLogin(id, secret, scopes)
	for _, form := range []url.Values{refresh, codeForm(code, verifier)} {
		r = proofToken(t, e.issuer, id, secret, form, p)
		wantTokenError(t, r, "invalid_dpop_proof", "replayed proof, "+form.Get("grant_type"))
		if r.str("access_token") != "" || r.str("refresh_token") != "" {
			t.Errorf("a replayed proof got tokens: %v", r.body)
		}
		r = proofToken(t, e.issuer, id, secret, form, c.proof(t, http.MethodPost, tokenURL, ""))
		if r.status != http.StatusOK || cnfOf(t, r.str("access_token")) != c.jkt(t) {
			t.Fatalf("%s with a fresh proof after the replay: %d %v", form.Get("grant_type"), r.status, r.body)
		}
	}
	refresh.Set("refresh_token", r.str("refresh_token"))

	// A proof refused for its nonce is still refused before the client is
	// looked at (use_dpop_nonce, with a nonce to retry with).
	r = proofToken(t, e.issuer, id, secret+"x", refresh, c.signNonceT(t, tokenURL, "stale"))
	if r.str("error") != "use_dpop_nonce" || r.header.Get("DPoP-Nonce") == "" {
		t.Errorf("stale nonce with a wrong secret: %d %v", r.status, r.body)
	}
	// A bad proof is refused before the client is authenticated too.
	r = proofToken(t, e.issuer, id, secret+"x", refresh, c.proof(t, http.MethodGet, tokenURL, ""))
	wantTokenError(t, r, "invalid_dpop_proof", "proof for GET with a wrong secret")
}

func (c *dpopClient) signNonceT(t *testing.T, u, nonce string) string {
	t.Helper()
	p, err := c.signNonce(http.MethodPost, u, "", nonce)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDPoP_PARJTISpentAfterClientAuth: at PAR too, a wrong secret leaves
// the proof unspent, and a replayed one is refused.
func TestDPoP_PARJTISpentAfterClientAuth(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	c := newDPoPClient(t)
	par := func(secret, proof string) (int, map[string]any) {
		return pushAuthRequest(t, e.issuer, id, secret, authRequestForm(id, "http://127.0.0.1:9/callback"), proof)
	}
	p := c.proof(t, http.MethodPost, e.issuer+"/par", "")
	if st, out := par(secret+"x", p); st != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("PAR with a wrong secret: %d %v", st, out)
	}
	if st, out := par(secret, p); st != http.StatusCreated {
		t.Fatalf("PAR with the proof the wrong secret sent: %d %v", st, out)
	}
	if st, out := par(secret, p); st != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
		t.Fatalf("PAR with a replayed proof: %d %v", st, out)
	}
}

// At the mobile API and at userinfo a proof by another key than the
// token's is refused before its jti is spent: the holder of a token (even a
// stolen one, useless without its key) cannot fill the replay store with
// proofs of keys it made up.
func TestDPoP_OtherKeysProofLeavesItsJTI(t *testing.T) {
	e := startMain(t)
	cit := e.citizenAPI(t, e.app)
	other := newDPoPClient(t)
	u := e.m.APIURL + "/v1/me"
	proof := other.proof(t, http.MethodGet, u, cit.token)
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.m.APIAddr+"/v1/me", nil)
	req.Header.Set("Authorization", "DPoP "+cit.token)
	req.Header.Set("DPoP", proof)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_dpop_proof") {
		t.Fatalf("a proof by another key: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Unspent: the verifier still takes it once, then never again.
	check := dpop.Check{Method: http.MethodGet, URL: u, AccessToken: cit.token}
	if _, err := e.m.DPoP.Verify(context.Background(), []string{proof}, check); err != nil {
		t.Errorf("the refused proof's jti was spent: %v", err)
	}
	if _, err := e.m.DPoP.Verify(context.Background(), []string{proof}, check); !errors.Is(err, dpop.ErrInvalidProof) {
		t.Errorf("a replay: %v", err)
	}
}
