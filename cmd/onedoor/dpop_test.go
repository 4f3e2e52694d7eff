package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"

	"github.com/onedoor/onedoor/idp/dpop"
)

// The client side of DPoP, written against go-jose alone (not idp/dpop),
// so the server is tested against an independent implementation.

type dpopClient struct {
	key   crypto.Signer // ECDSA P-256 (ES256) unless alg says otherwise
	alg   jose.SignatureAlgorithm
	nonce string           // the last DPoP-Nonce the server sent
	now   func() time.Time // the proofs' iat; nil: the wall clock
}

func newDPoPClient(t testing.TB) *dpopClient {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &dpopClient{key: k}
}

func (c *dpopClient) jkt(t testing.TB) string {
	t.Helper()
	sum, err := (&jose.JSONWebKey{Key: c.key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

func (c *dpopClient) proof(t testing.TB, method, u, accessToken string) string {
	t.Helper()
	p, err := c.sign(method, u, accessToken)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sign is proof for callers without a testing.TB (benchmark workers).
func (c *dpopClient) sign(method, u, accessToken string) (string, error) {
	return c.signNonce(method, u, accessToken, c.nonce)
}

// signNonce is sign with this nonce (none when "") instead of c's.
func (c *dpopClient) signNonce(method, u, accessToken, nonce string) (string, error) {
	alg := c.alg
	if alg == "" {
		alg = jose.ES256
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: c.key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return "", err
	}
	iat := time.Now()
	if c.now != nil {
		iat = c.now()
	}
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": u, "iat": iat.Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return josejwt.Signed(sig).Claims(claims).Serialize()
}

type tokenReply struct {
	status int
	header http.Header
	body   map[string]any
}

func (r tokenReply) str(k string) string { s, _ := r.body[k].(string); return s }

// dpopToken posts form to the token endpoint with Basic authentication (id
// non-empty) and, when c is set, a DPoP proof; a use_dpop_nonce answer is
// retried once with the nonce it carries, as RFC 9449 section 8 has it.
func dpopToken(t testing.TB, issuer, id, secret string, form url.Values, c *dpopClient) tokenReply {
	t.Helper()
	for try := 0; ; try++ {
		req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id != "" && secret != "" {
			req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		}
		if c != nil {
			req.Header.Set("DPoP", c.proof(t, http.MethodPost, issuer+"/token", ""))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := tokenReply{status: resp.StatusCode, header: resp.Header}
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("token answer %d is not JSON: %.300s", resp.StatusCode, b)
		}
		if c != nil && resp.Header.Get("DPoP-Nonce") != "" {
			c.nonce = resp.Header.Get("DPoP-Nonce")
		}
		if r.str("error") == "use_dpop_nonce" && c != nil && try == 0 {
			continue
		}
		return r
	}
}

// userinfoWith calls userinfo with the given Authorization scheme and, when
// c is set, a proof for tok.
func userinfoWith(t testing.TB, issuer, scheme, tok string, c *dpopClient) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, issuer+"/userinfo", nil)
	req.Header.Set("Authorization", scheme+" "+tok)
	if c != nil {
		req.Header.Set("DPoP", c.proof(t, http.MethodGet, issuer+"/userinfo", tok))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, resp.Header, body
}

// dpopLogin logs the citizen in for client id with the given extra
// authorization parameters and returns the code and its PKCE verifier.
func (e *testEnv) dpopLogin(id, secret string, scopes []string, extra ...oauth2.AuthCodeOption) (code, verifier string) {
	e.t.Helper()
	r := e.rp(id, secret, scopes...)
	u, state, _, verifier := authorizeURL(r, extra...)
	loc := e.login(newBrowser(), u, e.app, nil)
	if loc.Query().Get("state") != state || loc.Query().Get("code") == "" {
		e.t.Fatalf("authorization answer %s", loc)
	}
	return loc.Query().Get("code"), verifier
}

func codeForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:9/callback"}, "code_verifier": {verifier}}
}

func wantTokenError(t *testing.T, r tokenReply, code, what string) {
	t.Helper()
	if r.status != http.StatusBadRequest || r.str("error") != code {
		t.Errorf("%s: %d %v, want 400 %s", what, r.status, r.body, code)
	}
}

func cnfOf(t *testing.T, tok string) string {
	t.Helper()
	cnf, _ := claimsOf(t, tok)["cnf"].(map[string]any)
	s, _ := cnf["jkt"].(string)
	return s
}

func TestDPoP_CodeFlow_SQLite(t *testing.T) { runDPoPCodeFlow(t, startMain(t)) }

func TestDPoP_CodeFlow_PostgresRedis(t *testing.T) { runDPoPCodeFlow(t, startMain(t, scaleOption(t))) }

// runDPoPCodeFlow: the whole authorization-code flow through the real
// server with dpop_jkt at /authorize, then userinfo, introspection and
// refresh, each with the attacker's variants.
func runDPoPCodeFlow(t *testing.T, e *testEnv) {
	id, secret := e.client(ClientSpec{Scope: "openid profile offline_access"})
	c := newDPoPClient(t)
	scopes := []string{"openid", "profile", "offline_access"}
	code, verifier := e.dpopLogin(id, secret, scopes, oauth2.SetAuthURLParam("dpop_jkt", c.jkt(t)))

	// The code is bound to the key named at /authorize. A refused exchange
	// spends the code (as a wrong code_verifier does): its thief gets
	// nothing and its client logs in again.
	bad, badVerifier := e.dpopLogin(id, secret, scopes, oauth2.SetAuthURLParam("dpop_jkt", c.jkt(t)))
	r := dpopToken(t, e.issuer, id, secret, codeForm(bad, badVerifier), nil)
	wantTokenError(t, r, "invalid_dpop_proof", "bound code without a proof")
	bad, badVerifier = e.dpopLogin(id, secret, scopes, oauth2.SetAuthURLParam("dpop_jkt", c.jkt(t)))
	r = dpopToken(t, e.issuer, id, secret, codeForm(bad, badVerifier), newDPoPClient(t))
	wantTokenError(t, r, "invalid_dpop_proof", "bound code with another key")

	r = dpopToken(t, e.issuer, id, secret, codeForm(code, verifier), c)
	if r.status != http.StatusOK || r.str("token_type") != "DPoP" {
		t.Fatalf("exchange: %d %v", r.status, r.body)
	}
	at, rt := r.str("access_token"), r.str("refresh_token")
	if cnfOf(t, at) != c.jkt(t) || rt == "" {
		t.Fatalf("cnf.jkt = %q, want %q; refresh token %q", cnfOf(t, at), c.jkt(t), rt)
	}
	if r.header.Get("DPoP-Nonce") == "" {
		t.Error("no DPoP-Nonce with the token response")
	}

	t.Run("userinfo with DPoP", func(t *testing.T) {
		st, _, body := userinfoWith(t, e.issuer, "DPoP", at, c)
		if st != http.StatusOK || body["sub"] == nil {
			t.Errorf("userinfo: %d %v", st, body)
		}
	})
	t.Run("bound token as Bearer is refused", func(t *testing.T) {
		st, h, body := userinfoWith(t, e.issuer, "Bearer", at, nil)
		if st != http.StatusUnauthorized || body["error"] != "invalid_token" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("bearer: %d %v %q", st, body, h.Get("WWW-Authenticate"))
		}
	})
	t.Run("userinfo proof by another key", func(t *testing.T) {
		st, h, body := userinfoWith(t, e.issuer, "DPoP", at, newDPoPClient(t))
		if st != http.StatusUnauthorized || body["error"] != "invalid_dpop_proof" || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
			t.Errorf("another key: %d %v %q", st, body, h.Get("WWW-Authenticate"))
		}
	})
	t.Run("userinfo proof by another key leaves its jti", func(t *testing.T) {
		proof := newDPoPClient(t).proof(t, http.MethodGet, e.issuer+"/userinfo", at)
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "DPoP "+at)
		req.Header.Set("DPoP", proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("another key: %d", resp.StatusCode)
		}
		if _, err := e.m.DPoP.Verify(context.Background(), []string{proof}, dpop.Check{Method: http.MethodGet, URL: e.issuer + "/userinfo", AccessToken: at}); err != nil {
			t.Errorf("the refused proof's jti was spent: %v", err)
		}
	})
	t.Run("userinfo with DPoP scheme but no proof", func(t *testing.T) {
		st, _, body := userinfoWith(t, e.issuer, "DPoP", at, nil)
		if st != http.StatusUnauthorized || body["error"] != "invalid_dpop_proof" {
			t.Errorf("no proof: %d %v", st, body)
		}
	})
	t.Run("userinfo proof for another token (ath)", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "DPoP "+at)
		req.Header.Set("DPoP", c.proof(t, http.MethodGet, e.issuer+"/userinfo", at+"x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong ath: %d", resp.StatusCode)
		}
	})
	t.Run("userinfo proof replayed", func(t *testing.T) {
		p := c.proof(t, http.MethodGet, e.issuer+"/userinfo", at)
		for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
			req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
			req.Header.Set("Authorization", "DPoP "+at)
			req.Header.Set("DPoP", p)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("use %d: %d, want %d", i+1, resp.StatusCode, want)
			}
		}
	})
	t.Run("introspection shows the binding", func(t *testing.T) {
		got := introspect(t, e.issuer, id, secret, at)
		cnf, _ := got["cnf"].(map[string]any)
		if got["active"] != true || got["token_type"] != "DPoP" || cnf["jkt"] != c.jkt(t) {
			t.Errorf("access token introspection = %v", got)
		}
		got = introspect(t, e.issuer, id, secret, rt)
		cnf, _ = got["cnf"].(map[string]any)
		if got["active"] != true || cnf["jkt"] != c.jkt(t) {
			t.Errorf("refresh token introspection = %v", got)
		}
	})
	t.Run("refresh is bound to the key", func(t *testing.T) {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		wantTokenError(t, dpopToken(t, e.issuer, id, secret, form, nil), "invalid_dpop_proof", "refresh without a proof")
		wantTokenError(t, dpopToken(t, e.issuer, id, secret, form, newDPoPClient(t)), "invalid_dpop_proof", "refresh with another key")
		// The refusals did not touch the family: its holder refreshes.
		r := dpopToken(t, e.issuer, id, secret, form, c)
		if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, r.str("access_token")) != c.jkt(t) {
			t.Fatalf("refresh with the key: %d %v", r.status, r.body)
		}
		// The rotated family stays bound.
		form.Set("refresh_token", r.str("refresh_token"))
		wantTokenError(t, dpopToken(t, e.issuer, id, secret, form, newDPoPClient(t)), "invalid_dpop_proof", "rotated refresh with another key")
	})
}

// TestDPoP_UnboundCode: a code not bound at /authorize is bound by the proof
// at the token endpoint; without a proof a confidential client gets Bearer
// tokens, which userinfo refuses under the DPoP scheme.
func TestDPoP_UnboundCode(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	code, verifier := e.dpopLogin(id, secret, []string{"openid", "profile"})
	r := dpopToken(t, e.issuer, id, secret, codeForm(code, verifier), nil)
	if r.status != http.StatusOK || !strings.EqualFold(r.str("token_type"), "bearer") || cnfOf(t, r.str("access_token")) != "" {
		t.Fatalf("plain exchange: %d %v", r.status, r.body)
	}
	if st, _, body := userinfoWith(t, e.issuer, "DPoP", r.str("access_token"), newDPoPClient(t)); st != http.StatusUnauthorized || body["error"] != "invalid_token" {
		t.Errorf("unbound token under DPoP: %d %v", st, body)
	}
	if st, _, _ := userinfoWith(t, e.issuer, "Bearer", r.str("access_token"), nil); st != http.StatusOK {
		t.Errorf("unbound token as Bearer: %d", st)
	}

	c := newDPoPClient(t)
	code, verifier = e.dpopLogin(id, secret, []string{"openid", "profile"})
	r = dpopToken(t, e.issuer, id, secret, codeForm(code, verifier), c)
	if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, r.str("access_token")) != c.jkt(t) {
		t.Fatalf("DPoP exchange: %d %v", r.status, r.body)
	}
}

// TestDPoP_PublicClientRefreshRequiresProof: a public client gets a refresh
// token only bound to a key.
func TestDPoP_PublicClientRefreshRequiresProof(t *testing.T) {
	e := startMain(t)
	id, _ := e.client(ClientSpec{Scope: "openid profile offline_access", AuthMethod: idp.AuthNone})
	scopes := []string{"openid", "profile", "offline_access"}
	code, verifier := e.dpopLogin(id, "", scopes)
	form := codeForm(code, verifier)
	form.Set("client_id", id)
	wantTokenError(t, dpopToken(t, e.issuer, "", "", form, nil), "invalid_dpop_proof", "public client, offline_access, no proof")

	c := newDPoPClient(t)
	code, verifier = e.dpopLogin(id, "", scopes)
	form = codeForm(code, verifier)
	form.Set("client_id", id)
	r := dpopToken(t, e.issuer, "", "", form, c)
	if r.status != http.StatusOK || r.str("refresh_token") == "" || r.str("token_type") != "DPoP" {
		t.Fatalf("public client with a proof: %d %v", r.status, r.body)
	}
	ref := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}, "client_id": {id}}
	wantTokenError(t, dpopToken(t, e.issuer, "", "", ref, nil), "invalid_dpop_proof", "stolen public refresh token without the key")
	wantTokenError(t, dpopToken(t, e.issuer, "", "", ref, newDPoPClient(t)), "invalid_dpop_proof", "stolen public refresh token, attacker's key")
	if r := dpopToken(t, e.issuer, "", "", ref, c); r.status != http.StatusOK {
		t.Errorf("refresh with the key: %d %v", r.status, r.body)
	}
}

// TestDPoP_TokenEndpointNonce: without a server nonce the token endpoint
// answers use_dpop_nonce with a DPoP-Nonce; a replayed proof is refused.
func TestDPoP_TokenEndpointNonce(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
	c := newDPoPClient(t)
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}
	post := func(proof string) tokenReply { return proofToken(t, e.issuer, id, secret, form, proof) }
	r := post(c.proof(t, http.MethodPost, e.issuer+"/token", ""))
	wantTokenError(t, r, "use_dpop_nonce", "proof without a nonce")
	if r.header.Get("DPoP-Nonce") == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	c.nonce = r.header.Get("DPoP-Nonce")
	p := c.proof(t, http.MethodPost, e.issuer+"/token", "")
	r = post(p)
	if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, r.str("access_token")) != c.jkt(t) {
		t.Fatalf("client_credentials with DPoP: %d %v", r.status, r.body)
	}
	wantTokenError(t, post(p), "invalid_dpop_proof", "replayed proof")
	wantTokenError(t, post(c.proof(t, http.MethodPost, e.issuer+"/userinfo", "")), "invalid_dpop_proof", "proof for another URL")
	wantTokenError(t, post(c.proof(t, http.MethodGet, e.issuer+"/token", "")), "invalid_dpop_proof", "proof for GET")
}

// TestDPoP_PAR: a proof at PAR binds the code (RFC 9449 section 10.1), and
// dpop_jkt naming another key than the proof is refused.
func TestDPoP_PAR(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	c := newDPoPClient(t)
	verifier := oauth2.GenerateVerifier()
	par := func(extra url.Values, proof string) (int, map[string]any) {
		form := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {"http://127.0.0.1:9/callback"},
			"scope": {"openid profile"}, "state": {randomString(12)}, "nonce": {randomString(12)},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
		for k, v := range extra {
			form[k] = v
		}
		return pushAuthRequest(t, e.issuer, id, secret, form, proof)
	}
	if st, out := par(url.Values{"dpop_jkt": {newDPoPClient(t).jkt(t)}}, c.proof(t, http.MethodPost, e.issuer+"/par", "")); st != http.StatusBadRequest || out["error"] != "invalid_dpop_proof" {
		t.Errorf("dpop_jkt of another key than the proof: %d %v", st, out)
	}
	if st, out := par(url.Values{"dpop_jkt": {"not-a-thumbprint"}}, ""); st != http.StatusBadRequest || out["error"] != "invalid_request" {
		t.Errorf("malformed dpop_jkt: %d %v", st, out)
	}
	st, out := par(nil, c.proof(t, http.MethodPost, e.issuer+"/par", ""))
	uri, _ := out["request_uri"].(string)
	if st != http.StatusCreated || uri == "" {
		t.Fatalf("PAR with a proof: %d %v", st, out)
	}
	login := func(uri string) string {
		authURL := e.issuer + "/authorize?" + url.Values{"client_id": {id}, "request_uri": {uri}}.Encode()
		loc := e.login(newBrowser(), authURL, e.app, nil)
		code := loc.Query().Get("code")
		if code == "" {
			t.Fatalf("authorization answer %s", loc)
		}
		return code
	}
	code := login(uri)
	if r := dpopToken(t, e.issuer, id, secret, codeForm(code, verifier), c); r.status != http.StatusOK || cnfOf(t, r.str("access_token")) != c.jkt(t) {
		t.Errorf("PAR-bound code with its key: %d %v", r.status, r.body)
	}
	_, out = par(nil, c.proof(t, http.MethodPost, e.issuer+"/par", ""))
	uri, _ = out["request_uri"].(string)
	code = login(uri)
	wantTokenError(t, dpopToken(t, e.issuer, id, secret, codeForm(code, verifier), newDPoPClient(t)), "invalid_dpop_proof", "PAR-bound code, another key")
}

func TestDPoP_Discovery(t *testing.T) {
	e := startMain(t)
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Algs []string `json:"dpop_signing_alg_values_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&d)
	if strings.Join(d.Algs, " ") != "ES256 PS256" {
		t.Errorf("dpop_signing_alg_values_supported = %v", d.Algs)
	}
}

// BenchmarkUserinfo_DPoP compares userinfo with a DPoP-bound token (proof
// signature, jti written to the ephemeral store) against a bearer token.
// Proofs are signed before the timer starts: only the server's work and
// the round trip are measured.
func BenchmarkUserinfo_DPoP(b *testing.B) {
	e := startBenchAPI(b)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	code, verifier := e.dpopLogin(id, secret, []string{"openid", "profile"})
	bearer := dpopToken(b, e.issuer, id, secret, codeForm(code, verifier), nil).str("access_token")
	c := newDPoPClient(b)
	code, verifier = e.dpopLogin(id, secret, []string{"openid", "profile"})
	bound := dpopToken(b, e.issuer, id, secret, codeForm(code, verifier), c).str("access_token")
	if bearer == "" || bound == "" {
		b.Fatal("no tokens")
	}
	hc := benchClient(1)
	call := func(b *testing.B, scheme, tok, proof string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, e.issuer+"/userinfo", nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("userinfo %d", resp.StatusCode)
		}
	}
	// Warm both paths up (connections, caches, the SQLite file) so the
	// sub-benchmark that runs first is not charged for it.
	for range 300 {
		call(b, "Bearer", bearer, "")
		call(b, "DPoP", bound, c.proof(b, http.MethodGet, e.issuer+"/userinfo", bound))
	}
	b.Run("bearer", func(b *testing.B) {
		for b.Loop() {
			call(b, "Bearer", bearer, "")
		}
	})
	b.Run("dpop", func(b *testing.B) {
		b.StopTimer()
		proofs := make([]string, b.N)
		for i := range proofs {
			proofs[i] = c.proof(b, http.MethodGet, e.issuer+"/userinfo", bound)
		}
		b.StartTimer()
		for i := range b.N {
			call(b, "DPoP", bound, proofs[i])
		}
	})
}

// TestDPoP_MobileAPI: the eID app's device-bound token works at the
// citizen routes only with a proof by the device key, for this request
// (method, the API's public URL and path) and this token, used once; an
// agency token bound at the token endpoint works only with its proof.
// Every refusal is a 401 with the DPoP challenge and a problem (checked
// against the contract by apiClient) carrying nothing of the route.
func TestDPoP_MobileAPI(t *testing.T) {
	e := startMain(t)             // the default configuration: no flag turns this on
	cit := e.citizenAPI(t, e.app) // signs proofs with the device key
	cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil)

	wantRefused := func(r apiResp, code, what string) {
		t.Helper()
		// A refusal carries a problem and nothing of the route's answer.
		if r.status != http.StatusUnauthorized || strings.Contains(string(r.body), "personal_id") || strings.Contains(string(r.body), `"items"`) ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") ||
			!strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DPoP ") ||
			!strings.Contains(r.header.Get("WWW-Authenticate"), `error="`+code+`"`) {
			t.Errorf("%s: %d %q %s, want 401 %s", what, r.status, r.header.Get("WWW-Authenticate"), r.body, code)
		}
	}
	bearer := &apiClient{t: t, base: cit.base, token: cit.token, v: cit.v}
	for _, path := range []string{"/v1/me", "/v1/home", "/v1/applications", "/v1/inbox", "/v1/consents", "/v1/devices", "/v1/events"} {
		wantRefused(bearer.do(http.MethodGet, path, nil), "invalid_token", "the app's token as Bearer on "+path)
	}
	// A Bearer request carrying a valid proof is no better: the scheme is
	// what RFC 9449 section 7.1 looks at.
	wantRefused(bearer.do(http.MethodGet, "/v1/me", nil, "DPoP", cit.pop.proof(t, http.MethodGet, cit.apiURL+"/v1/me", cit.token)),
		"invalid_token", "Bearer with a proof")
	thief := &apiClient{t: t, base: cit.base, token: cit.token, v: cit.v, pop: newDPoPClient(t), apiURL: cit.apiURL}
	wantRefused(thief.do(http.MethodGet, "/v1/me", nil), "invalid_dpop_proof", "proof by another key than cnf.jkt")
	// htu is the configured --api-url, not what the Host header says.
	spoofed := &apiClient{t: t, base: cit.base, token: cit.token, v: cit.v, pop: cit.pop, apiURL: "http://evil.example"}
	wantRefused(spoofed.do(http.MethodGet, "/v1/me", nil), "invalid_dpop_proof", "proof for another host")
	wantRefused(cit.do(http.MethodGet, "/v1/me", nil, "DPoP", cit.pop.proof(t, http.MethodPost, cit.apiURL+"/v1/me", cit.token)), "invalid_dpop_proof", "proof for POST")
	wantRefused(cit.do(http.MethodGet, "/v1/me", nil, "DPoP", cit.pop.proof(t, http.MethodGet, cit.apiURL+"/v1/home", cit.token)), "invalid_dpop_proof", "proof for another path")
	wantRefused(cit.do(http.MethodGet, "/v1/me", nil, "DPoP", cit.pop.proof(t, http.MethodGet, cit.apiURL+"/v1/me", "another token")), "invalid_dpop_proof", "proof for another token (ath)")
	wantRefused(cit.do(http.MethodGet, "/v1/me", nil, "DPoP", cit.pop.proof(t, http.MethodGet, cit.apiURL+"/v1/me", "")), "invalid_dpop_proof", "proof without ath")
	noProof := &apiClient{t: t, base: cit.base, token: cit.token, v: cit.v}
	wantRefused(noProof.do(http.MethodGet, "/v1/me", nil, "Authorization", "DPoP "+cit.token), "invalid_dpop_proof", "DPoP scheme without a proof")

	t.Run("replayed proof", func(t *testing.T) {
		p := cit.pop.proof(t, http.MethodGet, cit.apiURL+"/v1/me", cit.token)
		cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil, "DPoP", p)
		wantRefused(cit.do(http.MethodGet, "/v1/me", nil, "DPoP", p), "invalid_dpop_proof", "replayed proof")
	})

	t.Run("live stream: a proof per connection", func(t *testing.T) {
		for range 2 { // a reconnection signs a new proof
			s := openEvents(t, cit, "")
			s.close()
		}
		p := cit.pop.proof(t, http.MethodGet, cit.apiURL+"/v1/events", cit.token)
		req, _ := http.NewRequest(http.MethodGet, cit.base+"/v1/events", nil)
		req.Header.Set("Authorization", "DPoP "+cit.token)
		req.Header.Set("DPoP", p)
		req.Header.Set("Accept", "text/event-stream")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("events with a fresh proof: %d", resp.StatusCode)
		}
		wantRefused(cit.do(http.MethodGet, "/v1/events", nil, "DPoP", p, "Accept", "text/event-stream"), "invalid_dpop_proof", "events with a spent proof")
	})

	t.Run("agency token bound by DPoP", func(t *testing.T) {
		seedAgencies(t, e.m)
		id, secret := e.client(ClientSpec{Name: "Back office", Scope: "agency", Agency: "T-BTP", GrantTypes: []string{"client_credentials"}})
		key := newDPoPClient(t)
		r := dpopToken(t, e.issuer, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"agency"}}, key)
		if r.status != http.StatusOK || cnfOf(t, r.str("access_token")) != key.jkt(t) {
			t.Fatalf("agency token with DPoP: %d %v", r.status, r.body)
		}
		key.nonce = "" // the API asks for none
		ag := &apiClient{t: t, base: cit.base, token: r.str("access_token"), v: cit.v, pop: key, apiURL: e.m.APIURL}
		ag.must(http.StatusOK, http.MethodGet, "/agency/v1/applications", nil)
		plain := &apiClient{t: t, base: cit.base, token: r.str("access_token"), v: cit.v}
		wantRefused(plain.do(http.MethodGet, "/agency/v1/applications", nil), "invalid_token", "bound agency token as Bearer")
	})
}

// TestDPoP_SecondReplica: two replicas behind one issuer, sharing
// PostgreSQL and Redis. A nonce one hands out is good at the other
// (stateless, keyed from the shared master key), and a proof spent at one
// is a replay at the other (the jti is in Redis).
func TestDPoP_SecondReplica(t *testing.T) {
	dsn, redisURL := scaleBackends(t)
	key := sharedMasterKey(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	issuer := "http://" + addr
	prefix := "test-" + randomHex(4) + ":"
	shared := func(listen string) envOption {
		return func(c *Config) {
			c.PostgresDSN, c.RedisURL, c.MasterKeyFile, c.RedisPrefix = dsn, redisURL, key, prefix
			c.Issuer, c.IDPAddr = issuer, listen
		}
	}
	a := newTestMain(t, shared(addr))
	b := newTestMain(t, shared("127.0.0.1:0"))
	id, secret, err := a.CreateClient(context.Background(), ClientSpec{Name: "Replicated", GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}.Encode()
	// post sends a proof to one replica; htu is the issuer's token URL,
	// whichever replica the load balancer picks.
	post := func(m *Main, proof string) tokenReply {
		req, _ := http.NewRequest(http.MethodPost, "http://"+m.IDPAddr+"/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id.ID, secret)
		req.Header.Set("DPoP", proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		r := tokenReply{status: resp.StatusCode, header: resp.Header}
		_ = json.NewDecoder(resp.Body).Decode(&r.body)
		return r
	}
	c := newDPoPClient(t)
	r := post(a, c.proof(t, http.MethodPost, issuer+"/token", ""))
	wantTokenError(t, r, "use_dpop_nonce", "no nonce at replica A")
	c.nonce = r.header.Get("DPoP-Nonce")
	p := c.proof(t, http.MethodPost, issuer+"/token", "")
	if r := post(b, p); r.status != http.StatusOK || cnfOf(t, r.str("access_token")) != c.jkt(t) {
		t.Fatalf("replica B with replica A's nonce: %d %v", r.status, r.body)
	}
	wantTokenError(t, post(a, p), "invalid_dpop_proof", "proof spent at B replayed at A")
}
