package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/redis"
)

// recordsAPI is a resource server other than the IdP: an agency API whose
// client_id is its resource URI, so it may introspect tokens minted for it.
const recordsAPI = "https://records.agency.test/api"

func withResources(rs ...string) envOption {
	return func(c *Config) { c.Resources = rs }
}

func TestTokenBoundaries_SQLite(t *testing.T) {
	runTokenBoundaries(t, startMain(t, withResources(recordsAPI)))
}

func TestTokenBoundaries_PostgresRedis(t *testing.T) {
	runTokenBoundaries(t, startMain(t, scaleOption(t), withResources(recordsAPI)))
}

// claimsOf decodes an access token's payload (the signature is checked by
// the IdP whenever the token is used).
func claimsOf(t *testing.T, tok string) map[string]any { return jsonPart(t, tok, 1) }

func audOf(t *testing.T, tok string) []string {
	t.Helper()
	var out []string
	switch a := claimsOf(t, tok)["aud"].(type) {
	case string:
		out = []string{a}
	case []any:
		for _, v := range a {
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}

// userinfoStatus calls userinfo with a bearer token.
func userinfoStatus(t *testing.T, issuer, tok string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

func mustUserinfo(t *testing.T, issuer, tok string, ok bool, what string) {
	t.Helper()
	status, code := userinfoStatus(t, issuer, tok)
	if ok && status != http.StatusOK {
		t.Errorf("%s: userinfo %d %s, want 200", what, status, code)
	}
	if !ok && (status != http.StatusUnauthorized || code != "invalid_token") {
		t.Errorf("%s: userinfo %d %s, want 401 invalid_token", what, status, code)
	}
}

// tokenBasic posts a token request with client_secret_basic.
func tokenBasic(t testing.TB, issuer, id, secret string, form url.Values) (int, string) {
	t.Helper()
	return postBasic(t, issuer+"/token", id, secret, form)
}

// introspectForm posts an introspection request with the given client
// authentication in the form (client_secret_post, private_key_jwt).
func introspectForm(t *testing.T, issuer string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(issuer+"/introspect", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// inactiveOnly checks an introspection answer says only {"active": false}.
func inactiveOnly(t *testing.T, got map[string]any, what string) {
	t.Helper()
	if got["active"] != false || len(got) != 1 {
		t.Errorf("%s: introspection = %v, want only {\"active\": false}", what, got)
	}
}

// codeFlowWith logs in from a fresh browser (so the app approves each time)
// and returns the tokens.
func (e *testEnv) codeFlowWith(r *rp, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	e.t.Helper()
	tok, _ := e.codeFlow(r, newBrowser(), e.app, opts...)
	return tok
}

func runTokenBoundaries(t *testing.T, e *testEnv) {
	ctx := context.Background()
	siteID, siteSecret := e.client(ClientSpec{Scope: "openid profile eid offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	site := e.rp(siteID, siteSecret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	curiousID, curiousSecret := e.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
	rsID, rsSecret := e.client(ClientSpec{ID: recordsAPI, GrantTypes: []string{"client_credentials"}, Scope: "records.read"})
	userinfoURL := e.issuer + "/userinfo"

	citizen := e.codeFlowWith(site)

	t.Run("citizen token carries aud, kind and did", func(t *testing.T) {
		c := claimsOf(t, citizen.AccessToken)
		if got := audOf(t, citizen.AccessToken); !slices.Equal(got, []string{userinfoURL}) {
			t.Errorf("aud = %v, want the userinfo URL", got)
		}
		if c["kind"] != "citizen" || c["did"] == nil || c["did"] == "" || c["client_id"] != siteID {
			t.Errorf("claims = %v, want kind citizen, a device id and client_id %s", c, siteID)
		}
		mustUserinfo(t, e.issuer, citizen.AccessToken, true, "citizen token for userinfo")
	})

	t.Run("client_credentials token is a client token and refused at userinfo", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: rsID, ClientSecret: rsSecret, TokenURL: e.issuer + "/token", Scopes: []string{"records.read"}, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := claimsOf(t, tok.AccessToken)
		if c["kind"] != "client" || c["sub"] != rsID || !slices.Equal(audOf(t, tok.AccessToken), []string{userinfoURL}) {
			t.Errorf("claims = %v, want kind client, sub = client_id, default aud", c)
		}
		mustUserinfo(t, e.issuer, tok.AccessToken, false, "client token")
		// A resource picks another audience.
		cc.EndpointParams = url.Values{"resource": {recordsAPI}}
		tok, err = cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := audOf(t, tok.AccessToken); !slices.Equal(got, []string{recordsAPI}) {
			t.Errorf("aud with resource = %v, want [%s]", got, recordsAPI)
		}
	})

	t.Run("unknown or malformed resource is invalid_target", func(t *testing.T) {
		for _, res := range []string{"https://evil.example/api", recordsAPI + "#frag", "records", recordsAPI + "/"} {
			status, body := tokenBasic(t, e.issuer, rsID, rsSecret, url.Values{"grant_type": {"client_credentials"}, "resource": {res}})
			if status != http.StatusBadRequest || !strings.Contains(body, `"invalid_target"`) {
				t.Errorf("token with resource %q: %d %s, want 400 invalid_target", res, status, body)
			}
		}
		// At /authorize, before any login page.
		state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
		loc := newBrowser().follow(t, site.conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("resource", "https://evil.example/api")))
		if loc.Query().Get("error") != "invalid_target" || loc.Query().Get("state") != state {
			t.Errorf("authorize with an unknown resource: %v, want error=invalid_target", loc)
		}
		// And in a pushed request (RFC 9126).
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/par", strings.NewReader(url.Values{"response_type": {"code"}, "client_id": {siteID},
			"redirect_uri": {site.conf.RedirectURL}, "scope": {"openid"}, "state": {state}, "nonce": {nonce},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
			"resource": {"https://evil.example/api"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(siteID, siteSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_target"`) {
			t.Errorf("PAR with an unknown resource: %d %s, want 400 invalid_target", resp.StatusCode, body)
		}
	})

	t.Run("token for another resource server refused at userinfo, told to that server", func(t *testing.T) {
		tok := e.codeFlowWith(site, oauth2.SetAuthURLParam("resource", recordsAPI))
		if got := audOf(t, tok.AccessToken); !slices.Equal(got, []string{recordsAPI}) {
			t.Fatalf("aud = %v, want [%s]", got, recordsAPI)
		}
		mustUserinfo(t, e.issuer, tok.AccessToken, false, "token for the records API")
		got := introspect(t, e.issuer, rsID, rsSecret, tok.AccessToken)
		if got["active"] != true || got["client_id"] != siteID || got["sub"] != claimsOf(t, citizen.AccessToken)["sub"] || got["kind"] != "citizen" {
			t.Errorf("resource server in aud introspects %v, want the token's state", got)
		}
		// A deleted client's tokens are inactive for the resource server too.
		otherID, otherSecret := e.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
		other := e.codeFlowWith(e.rp(otherID, otherSecret, gooidc.ScopeOpenID, "profile"), oauth2.SetAuthURLParam("resource", recordsAPI))
		if got := introspect(t, e.issuer, rsID, rsSecret, other.AccessToken); got["active"] != true {
			t.Fatalf("resource server introspects %v", got)
		}
		if err := e.m.Store.DeleteClient(ctx, otherID); err != nil {
			t.Fatal(err)
		}
		inactiveOnly(t, introspect(t, e.issuer, rsID, rsSecret, other.AccessToken), "token of a deleted client")
		// A refresh keeps the grant's audience.
		next := refresh(t, site, tok.RefreshToken)
		if got := audOf(t, next.AccessToken); !slices.Equal(got, []string{recordsAPI}) {
			t.Errorf("refreshed aud = %v, want [%s]", got, recordsAPI)
		}
	})

	t.Run("repeated resources, narrowed at the token endpoint", func(t *testing.T) {
		state, nonce, verifier := randomString(12), randomString(12), oauth2.GenerateVerifier()
		authURL := site.conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)) +
			"&" + url.Values{"resource": {recordsAPI, userinfoURL}}.Encode()
		loc := e.login(newBrowser(), authURL, e.app, nil)
		status, body := tokenBasic(t, e.issuer, siteID, siteSecret, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
			"redirect_uri": {site.conf.RedirectURL}, "code_verifier": {verifier}, "resource": {recordsAPI}})
		if status != http.StatusOK {
			t.Fatalf("code exchange: %d %s", status, body)
		}
		var tok struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		_ = json.Unmarshal([]byte(body), &tok)
		if got := audOf(t, tok.AccessToken); !slices.Equal(got, []string{recordsAPI}) {
			t.Errorf("narrowed aud = %v, want [%s]", got, recordsAPI)
		}
		mustUserinfo(t, e.issuer, tok.AccessToken, false, "token narrowed to the records API")
		// The refresh token keeps the whole grant: without a resource both
		// audiences, with one just that one.
		next := refresh(t, site, tok.RefreshToken)
		if got := audOf(t, next.AccessToken); !slices.Equal(got, []string{recordsAPI, userinfoURL}) {
			t.Errorf("refreshed aud = %v, want both resources", got)
		}
		mustUserinfo(t, e.issuer, next.AccessToken, true, "token for both resources")
		status, body = tokenBasic(t, e.issuer, siteID, siteSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next.RefreshToken}, "resource": {userinfoURL}})
		if status != http.StatusOK {
			t.Fatalf("refresh for userinfo: %d %s", status, body)
		}
		_ = json.Unmarshal([]byte(body), &tok)
		if got := audOf(t, tok.AccessToken); !slices.Equal(got, []string{userinfoURL}) {
			t.Errorf("aud of a refresh for userinfo = %v", got)
		}
	})

	t.Run("a refresh cannot widen the audience", func(t *testing.T) {
		tok := e.codeFlowWith(site)
		status, body := tokenBasic(t, e.issuer, siteID, siteSecret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "resource": {recordsAPI}})
		if status != http.StatusBadRequest || !strings.Contains(body, "invalid_target") {
			t.Errorf("refresh for a resource outside the grant: %d %s, want 400 invalid_target", status, body)
		}
	})

	t.Run("introspection with client_secret_post", func(t *testing.T) {
		id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read", AuthMethod: idp.AuthSecretPost})
		cc := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: e.issuer + "/token", Scopes: []string{"registry.read"}, AuthStyle: oauth2.AuthStyleInParams}
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		status, got := introspectForm(t, e.issuer, url.Values{"token": {tok.AccessToken}, "client_id": {id}, "client_secret": {secret}})
		if status != http.StatusOK || got["active"] != true || got["client_id"] != id || got["sub"] != id || got["kind"] != "client" ||
			got["token_type"] != "access_token" || got["iss"] != e.issuer || got["jti"] == nil || got["exp"] == nil || got["iat"] == nil || got["scope"] != "registry.read" {
			t.Errorf("introspection = %d %v", status, got)
		}
		status, got = introspectForm(t, e.issuer, url.Values{"token": {tok.AccessToken}, "client_id": {id}, "client_secret": {"wrong"}})
		if status != http.StatusUnauthorized || got["error"] != "invalid_client" {
			t.Errorf("wrong secret: %d %v, want 401 invalid_client", status, got)
		}
	})

	t.Run("introspection with private_key_jwt", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
		f := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(f, jwks, 0o600); err != nil {
			t.Fatal(err)
		}
		id, _ := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read", AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: f})
		auth := func() url.Values {
			return url.Values{"client_id": {id}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion": {clientAssertion(t, key, id, e.issuer+"/token")}}
		}
		form := auth()
		form.Set("grant_type", "client_credentials")
		status, body := postForm(t, e.issuer+"/token", form)
		if status != http.StatusOK {
			t.Fatalf("token: %d %s", status, body)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.Unmarshal([]byte(body), &tok)
		form = auth()
		form.Set("token", tok.AccessToken)
		status, got := introspectForm(t, e.issuer, form)
		if status != http.StatusOK || got["active"] != true || got["client_id"] != id {
			t.Errorf("introspection = %d %v", status, got)
		}
		// The assertion was single use.
		status, got = introspectForm(t, e.issuer, form)
		if status != http.StatusUnauthorized || got["error"] != "invalid_client" {
			t.Errorf("replayed assertion: %d %v, want 401 invalid_client", status, got)
		}
	})

	t.Run("a curious agency learns nothing about another client's tokens", func(t *testing.T) {
		inactiveOnly(t, introspect(t, e.issuer, curiousID, curiousSecret, citizen.AccessToken), "another client's access token")
		inactiveOnly(t, introspect(t, e.issuer, curiousID, curiousSecret, citizen.RefreshToken), "another client's refresh token")
		// The token's own client does learn it.
		if got := introspect(t, e.issuer, siteID, siteSecret, citizen.AccessToken); got["active"] != true || got["token_type"] != "access_token" {
			t.Errorf("own access token: %v", got)
		}
		if got := introspect(t, e.issuer, siteID, siteSecret, citizen.RefreshToken); got["active"] != true || got["token_type"] != "refresh_token" || got["client_id"] != siteID {
			t.Errorf("own refresh token: %v", got)
		}
		inactiveOnly(t, introspect(t, e.issuer, siteID, siteSecret, "garbage"), "garbage")
	})

	t.Run("public clients cannot introspect", func(t *testing.T) {
		status, got := introspectForm(t, e.issuer, url.Values{"token": {citizen.AccessToken}, "client_id": {idp.EIDAppClientID}})
		if status != http.StatusUnauthorized || got["error"] != "invalid_client" {
			t.Errorf("public client: %d %v, want 401 invalid_client", status, got)
		}
		status, got = introspectForm(t, e.issuer, url.Values{"token": {citizen.AccessToken}})
		if status != http.StatusUnauthorized || got["error"] != "invalid_client" {
			t.Errorf("no client authentication: %d %v, want 401 invalid_client", status, got)
		}
	})

	t.Run("only the token's own client may revoke it", func(t *testing.T) {
		tok := e.codeFlowWith(site)
		for _, v := range []string{tok.AccessToken, tok.RefreshToken} {
			if err := revoke(e.issuer, curiousID, curiousSecret, v); err != nil {
				t.Errorf("another client's revocation: %v, want 200", err)
			}
		}
		mustUserinfo(t, e.issuer, tok.AccessToken, true, "access token another client tried to revoke")
		if _, err := refreshErr(site, tok.RefreshToken); err != nil {
			t.Errorf("refresh token another client tried to revoke: %v", err)
		}
	})

	t.Run("revoking an access token keeps the refresh token and later access tokens", func(t *testing.T) {
		tok := e.codeFlowWith(site)
		if err := revoke(e.issuer, siteID, siteSecret, tok.AccessToken); err != nil {
			t.Fatal(err)
		}
		mustUserinfo(t, e.issuer, tok.AccessToken, false, "revoked access token")
		inactiveOnly(t, introspect(t, e.issuer, siteID, siteSecret, tok.AccessToken), "revoked access token")
		next := refresh(t, site, tok.RefreshToken)
		mustUserinfo(t, e.issuer, next.AccessToken, true, "access token refreshed after the revocation")
		if got := introspect(t, e.issuer, siteID, siteSecret, next.AccessToken); got["active"] != true {
			t.Errorf("later access token introspects as %v", got)
		}

		t.Run("revoking a refresh token kills the family", func(t *testing.T) {
			if err := revoke(e.issuer, siteID, siteSecret, next.RefreshToken); err != nil {
				t.Fatal(err)
			}
			if _, err := refreshErr(site, next.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
				t.Errorf("refresh after revocation: %v, want invalid_grant", err)
			}
			mustUserinfo(t, e.issuer, next.AccessToken, false, "access token of a revoked family")
			inactiveOnly(t, introspect(t, e.issuer, siteID, siteSecret, next.AccessToken), "access token of a revoked family")
			inactiveOnly(t, introspect(t, e.issuer, siteID, siteSecret, next.RefreshToken), "revoked refresh token")
		})
	})

	t.Run("bad introspection and revocation requests get standard errors", func(t *testing.T) {
		postID, postSecret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read", AuthMethod: idp.AuthSecretPost})
		for _, tt := range []struct {
			name, endpoint string
			form           url.Values
			status         int
			code           string
		}{
			{"introspect without token", "/introspect", url.Values{"client_id": {postID}, "client_secret": {postSecret}}, 400, "invalid_request"},
			{"revoke without token", "/revoke", url.Values{"client_id": {postID}, "client_secret": {postSecret}}, 400, "invalid_request"},
			{"secret in the body for a Basic-only client", "/introspect", url.Values{"token": {citizen.AccessToken}, "client_id": {siteID}, "client_secret": {siteSecret}}, 401, "invalid_client"},
			{"introspect with a garbage assertion", "/introspect", url.Values{"token": {citizen.AccessToken}, "client_id": {siteID},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"a.b.c"}}, 401, "invalid_client"},
			{"revoke with a wrong secret", "/revoke", url.Values{"token": {citizen.AccessToken}, "client_id": {siteID}, "client_secret": {"nope"}}, 401, "invalid_client"},
			{"revoke by an unknown client", "/revoke", url.Values{"token": {citizen.AccessToken}, "client_id": {"nobody"}, "client_secret": {"x"}}, 401, "invalid_client"},
			{"introspect with a repeated token", "/introspect", url.Values{"token": {"a", "b"}, "client_id": {postID}, "client_secret": {postSecret}}, 400, "invalid_request"},
		} {
			status, body := postForm(t, e.issuer+tt.endpoint, tt.form)
			if status != tt.status || !strings.Contains(body, `"`+tt.code+`"`) {
				t.Errorf("%s: %d %s, want %d %s", tt.name, status, body, tt.status, tt.code)
			}
		}
		// The site's client authenticates with Basic only: its token is untouched.
		mustUserinfo(t, e.issuer, citizen.AccessToken, true, "after refused revocations")
	})

	t.Run("discovery lists exactly the methods each endpoint accepts", func(t *testing.T) {
		var d map[string]any
		if err := site.provider.Claims(&d); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"token_endpoint_auth_methods_supported":                    "client_secret_basic client_secret_post private_key_jwt none",
			"introspection_endpoint_auth_methods_supported":            "client_secret_basic client_secret_post private_key_jwt",
			"revocation_endpoint_auth_methods_supported":               "client_secret_basic client_secret_post private_key_jwt none",
			"token_endpoint_auth_signing_alg_values_supported":         "ES256 RS256 PS256",
			"introspection_endpoint_auth_signing_alg_values_supported": "ES256 RS256 PS256",
			"revocation_endpoint_auth_signing_alg_values_supported":    "ES256 RS256 PS256",
		}
		for k, v := range want {
			var got []string
			list, _ := d[k].([]any)
			for _, x := range list {
				got = append(got, fmt.Sprint(x))
			}
			if strings.Join(got, " ") != v {
				t.Errorf("%s = %v, want %s", k, got, v)
			}
		}
	})
}

// TestRevocationSurvivesRedisRestart: the deny list is durable. Revocations
// made before every Redis key of the deployment is lost still hold.
func TestRevocationSurvivesRedisRestart(t *testing.T) {
	e := startMain(t, scaleOption(t))
	ctx := context.Background()
	siteID, siteSecret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	site := e.rp(siteID, siteSecret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	one := e.codeFlowWith(site)
	family := e.codeFlowWith(site)
	if err := revoke(e.issuer, siteID, siteSecret, one.AccessToken); err != nil {
		t.Fatal(err)
	}
	if err := revoke(e.issuer, siteID, siteSecret, family.RefreshToken); err != nil {
		t.Fatal(err)
	}

	// "Restart" Redis: every key of this deployment disappears.
	rdb, err := redis.Dial(ctx, e.m.Config.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	n := 0
	iter := rdb.Scan(ctx, 0, e.m.Config.RedisPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no Redis keys under the test prefix: is the ephemeral store Redis?")
	}

	for _, tt := range []struct{ name, tok string }{{"revoked access token", one.AccessToken}, {"access token of a revoked grant", family.AccessToken}} {
		mustUserinfo(t, e.issuer, tt.tok, false, tt.name+" after a Redis restart")
		inactiveOnly(t, introspect(t, e.issuer, siteID, siteSecret, tt.tok), tt.name+" after a Redis restart")
	}
	if _, err := refreshErr(site, family.RefreshToken); err == nil {
		t.Error("a revoked refresh token refreshes after a Redis restart")
	}
	// What was not revoked still works.
	next := refresh(t, site, one.RefreshToken)
	mustUserinfo(t, e.issuer, next.AccessToken, true, "unrevoked family after a Redis restart")
}
