package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
)

// regCall sends a registration request (RFC 7591/7592) and returns the
// status and the decoded JSON body (nil for none).
func regCall(t *testing.T, method, u, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: status %d, body is not JSON: %.300s", method, u, resp.StatusCode, raw)
		}
	}
	if resp.StatusCode >= 500 {
		t.Fatalf("%s %s: status %d %v", method, u, resp.StatusCode, out)
	}
	return resp.StatusCode, out
}

func wantRegError(t *testing.T, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	if status != wantStatus || body["error"] != wantCode {
		t.Errorf("%s: %d %v, want %d %s", what, status, body, wantStatus, wantCode)
	}
}

// registered is a client an agency registered, with what it was told.
type registered struct {
	id, secret, token, uri string
	body                   map[string]any
}

func register(t *testing.T, e *testEnv, initial string, md map[string]any) registered {
	t.Helper()
	status, body := regCall(t, http.MethodPost, e.issuer+"/register", initial, md)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, body)
	}
	r := registered{body: body}
	r.id, _ = body["client_id"].(string)
	r.secret, _ = body["client_secret"].(string)
	r.token, _ = body["registration_access_token"].(string)
	r.uri, _ = body["registration_client_uri"].(string)
	if r.id == "" || r.token == "" || r.uri != e.issuer+"/register/"+r.id || body["onedoor_status"] != "pending" {
		t.Fatalf("registration response: %v", body)
	}
	return r
}

// issue makes an initial access token for the agency.
func issue(t *testing.T, e *testEnv, agency string, uses int) string {
	t.Helper()
	_, tok, err := e.m.IssueInitialToken(context.Background(), agency, time.Hour, uses, "test-operator")
	if err != nil {
		t.Fatalf("issue initial token: %v", err)
	}
	return tok
}

func newRegEnv(t *testing.T, opts ...envOption) *testEnv {
	m := newTestMain(t, opts...)
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	createAgencies(t, m, "AG-A", "AG-B")
	return e
}

// manyRegistrations lifts the registration limits for tests that make
// many requests from one address (TestRegistration_RateLimits checks them).
func manyRegistrations(c *Config) { c.Limits.RegisterPerAddr, c.Limits.RegisterPerToken = 10000, 10000 }

func TestRegistration_SQLite(t *testing.T) { runRegistration(t, newRegEnv(t, manyRegistrations)) }

func TestRegistration_PostgresRedis(t *testing.T) {
	runRegistration(t, newRegEnv(t, scaleOption(t), manyRegistrations))
}

// runRegistration: the attacker's cases of agency self-registration first,
// through the real server.
func runRegistration(t *testing.T, e *testEnv) {
	ctx := context.Background()
	key := newECKey(t)
	jwks := json.RawMessage(publicJWKS(t, signer{kid: "k1", key: key}))
	backend := func(scope string) map[string]any {
		return map[string]any{"client_name": "Agency back end", "grant_types": []string{"client_credentials"},
			"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "scope": scope}
	}
	assertFor := func(t *testing.T, id string) string {
		return assertion{method: jwt.SigningMethodES256, key: key, kid: "k1", clientID: id, aud: e.issuer + "/token"}.sign(t)
	}
	ccAssert := func(t *testing.T, id, scope string) (int, string) {
		return postForm(t, e.issuer+"/token", url.Values{
			"grant_type": {"client_credentials"}, "scope": {scope}, "client_id": {id},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertFor(t, id)},
		})
	}

	t.Run("discovery names the registration endpoint", func(t *testing.T) {
		d := getJSON(t, e.issuer+"/.well-known/openid-configuration")
		if d["registration_endpoint"] != e.issuer+"/register" {
			t.Errorf("registration_endpoint = %v", d["registration_endpoint"])
		}
	})

	t.Run("no, unknown, expired, revoked or used-up initial token is 401 invalid_token", func(t *testing.T) {
		md := backend("agency")
		status, body := regCall(t, http.MethodPost, e.issuer+"/register", "", md)
		wantRegError(t, "no token", status, body, http.StatusUnauthorized, "invalid_token")
		status, body = regCall(t, http.MethodPost, e.issuer+"/register", "made-up", md)
		wantRegError(t, "unknown token", status, body, http.StatusUnauthorized, "invalid_token")

		expired := "expired-initial-token"
		now := time.Now().UTC()
		if err := e.m.Store.CreateInitialToken(ctx, &idp.InitialToken{ID: "iat_expired", Hash: idp.HashRegistrationToken(e.m.ClientSecretKey(), idp.TokenInitial, expired),
			Agency: "AG-A", MaxUses: 5, ExpiresAt: now.Add(-time.Second), CreatedBy: "op", CreatedAt: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		status, body = regCall(t, http.MethodPost, e.issuer+"/register", expired, md)
		wantRegError(t, "expired token", status, body, http.StatusUnauthorized, "invalid_token")

		revoked, err := e.m.Store.ListInitialTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := len(revoked)
		rtok := issue(t, e, "AG-A", 5)
		list, _ := e.m.Store.ListInitialTokens(ctx)
		if len(list) != n+1 {
			t.Fatalf("tokens: %d, want %d", len(list), n+1)
		}
		if err := e.m.Store.RevokeInitialToken(ctx, list[0].ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		status, body = regCall(t, http.MethodPost, e.issuer+"/register", rtok, md)
		wantRegError(t, "revoked token", status, body, http.StatusUnauthorized, "invalid_token")

		once := issue(t, e, "AG-A", 1)
		r := register(t, e, once, md)
		status, body = regCall(t, http.MethodPost, e.issuer+"/register", once, md)
		wantRegError(t, "used-up token", status, body, http.StatusUnauthorized, "invalid_token")
		// Tokens of one kind are never the other.
		status, body = regCall(t, http.MethodPost, e.issuer+"/register", r.token, md)
		wantRegError(t, "registration access token as initial token", status, body, http.StatusUnauthorized, "invalid_token")
		status, body = regCall(t, http.MethodGet, r.uri, once, nil)
		wantRegError(t, "initial token at the client's URI", status, body, http.StatusUnauthorized, "invalid_token")
	})

	t.Run("a pending client gets no token, code, pushed request or introspection", func(t *testing.T) {
		tok := issue(t, e, "AG-A", 5)
		jwtc := register(t, e, tok, backend("agency"))
		status, body := ccAssert(t, jwtc.id, "agency")
		wantInvalidClient(t, "pending private_key_jwt client_credentials", status, body)

		sec := register(t, e, tok, map[string]any{"client_name": "Secret back end", "grant_types": []string{"client_credentials"},
			"token_endpoint_auth_method": "client_secret_basic", "scope": "registry.read"})
		if sec.secret == "" || sec.body["client_secret_expires_at"] != float64(0) {
			t.Fatalf("secret client: %v", sec.body)
		}
		cc := clientcredentials.Config{ClientID: sec.id, ClientSecret: sec.secret, TokenURL: e.issuer + "/token", Scopes: []string{"registry.read"}, AuthStyle: oauth2.AuthStyleInHeader}
		_, err := cc.Token(ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
			t.Errorf("pending secret client_credentials: %v, want invalid_client", err)
		}
		status, got := introspectForm(t, e.issuer, url.Values{"token": {"x"}, "client_id": {sec.id}, "client_secret": {sec.secret}})
		if status != http.StatusUnauthorized || got["error"] != "invalid_client" {
			t.Errorf("pending client introspects: %d %v", status, got)
		}

		web := register(t, e, tok, map[string]any{"client_name": "Agency site", "redirect_uris": []string{"https://site.agency.test/cb"},
			"post_logout_redirect_uris": []string{"https://evil.example/after"}, "scope": "openid profile"})
		if web.secret == "" || !slices.Equal(toStrings(web.body["response_types"]), []string{"code"}) {
			t.Fatalf("code client: %v", web.body)
		}
		authz := e.issuer + "/authorize?" + url.Values{"client_id": {web.id}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {"https://site.agency.test/cb"}, "state": {"s-123456789"}, "nonce": {"n-123456789"},
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode()
		resp, err := newBrowser().Get(authz)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode/100 == 3 || !strings.Contains(string(b), "invalid_client") {
			t.Errorf("pending client at /authorize: %d %q %.200s, want invalid_client and no redirect", resp.StatusCode, resp.Header.Get("Location"), b)
		}
		status, pbody := postBasic(t, e.issuer+"/par", web.id, web.secret, url.Values{"response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {"https://site.agency.test/cb"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}})
		wantInvalidClient(t, "pending client's PAR", status, pbody)
		// Its unreviewed post-logout URI is no redirect target.
		resp, err = newBrowser().Get(e.issuer + "/logout?" + url.Values{"client_id": {web.id}, "post_logout_redirect_uri": {"https://evil.example/after"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "https://evil.example") {
			t.Errorf("logout redirected to a pending client's URI %q", loc)
		}

		// Rejected: still nothing.
		if _, err := e.m.RejectClient(ctx, sec.id, "op"); err != nil {
			t.Fatal(err)
		}
		if _, err := cc.Token(ctx); err == nil {
			t.Error("rejected client got a token")
		}
		status, body2 := regCall(t, http.MethodGet, sec.uri, sec.token, nil)
		if status != http.StatusOK || body2["onedoor_status"] != "rejected" {
			t.Errorf("agency reads its rejected client: %d %v", status, body2)
		}
		if _, err := e.m.ApproveClient(ctx, sec.id, digestOf(t, e, sec.id), nil, nil, "op"); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("approve a rejected client: %v", err)
		}
	})

	t.Run("approval narrows: a scope removed at approval is refused later", func(t *testing.T) {
		r := register(t, e, issue(t, e, "AG-A", 1), backend("agency registry.read"))
		if _, err := e.m.ApproveClient(ctx, r.id, digestOf(t, e, r.id), []string{"registry.write"}, nil, "op"); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("approval widening to an unrequested scope: %v", err)
		}
		c, err := e.m.ApproveClient(ctx, r.id, digestOf(t, e, r.id), []string{"agency"}, nil, "op")
		if err != nil {
			t.Fatal(err)
		}
		if c.Registration.ApprovedBy != "op" || c.Registration.ApprovedAt == nil || !c.Active() {
			t.Errorf("approval not recorded: %+v", c.Registration)
		}
		status, body := ccAssert(t, r.id, "agency")
		wantToken(t, "approved client", status, body)
		if claims := claimsOf(t, tokenOf(t, body)); claims["agency"] != "AG-A" {
			t.Errorf("token of a client registered with agency AG-A's token: agency %v", claims["agency"])
		}
		status, body = ccAssert(t, r.id, "registry.read")
		if status != http.StatusBadRequest || !strings.Contains(body, "invalid_scope") {
			t.Errorf("scope removed at approval: %d %s, want invalid_scope", status, body)
		}
		if _, err := e.m.ApproveClient(ctx, r.id, digestOf(t, e, r.id), nil, nil, "op"); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("approve twice: %v", err)
		}
	})

	t.Run("one agency's tokens never reach another's clients", func(t *testing.T) {
		a := register(t, e, issue(t, e, "AG-A", 1), backend("agency"))
		tokB := issue(t, e, "AG-B", 1)
		b := register(t, e, tokB, backend("agency"))
		if a.body["onedoor_agency"] != "AG-A" || b.body["onedoor_agency"] != "AG-B" {
			t.Fatalf("agencies: %v %v", a.body["onedoor_agency"], b.body["onedoor_agency"])
		}
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			status, body := regCall(t, m, b.uri, a.token, nil)
			wantRegError(t, m+" B's client with A's registration token", status, body, http.StatusUnauthorized, "invalid_token")
		}
		put := backend("agency")
		put["client_id"] = b.id
		status, body := regCall(t, http.MethodPut, b.uri, a.token, put)
		wantRegError(t, "PUT B's client with A's registration token", status, body, http.StatusUnauthorized, "invalid_token")
		status, body = regCall(t, http.MethodGet, e.issuer+"/register/no-such-client", a.token, nil)
		wantRegError(t, "unknown client", status, body, http.StatusUnauthorized, "invalid_token")
		// An operator's client has no registration token at all.
		opID, _ := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
		status, body = regCall(t, http.MethodGet, e.issuer+"/register/"+opID, a.token, nil)
		wantRegError(t, "an operator's client", status, body, http.StatusUnauthorized, "invalid_token")
		status, body = regCall(t, http.MethodGet, a.uri, a.token, nil)
		if status != http.StatusOK || body["client_id"] != a.id || body["registration_access_token"] != nil {
			t.Errorf("GET own client: %d %v", status, body)
		}
		// Metadata cannot move a client to another agency.
		move := backend("agency")
		move["client_id"], move["onedoor_agency"] = a.id, "AG-B"
		status, body = regCall(t, http.MethodPut, a.uri, a.token, move)
		if status != http.StatusOK || body["onedoor_agency"] != "AG-A" || !slices.Contains(toStrings(body["onedoor_ignored_members"]), "onedoor_agency") {
			t.Errorf("PUT naming another agency: %d %v", status, body)
		}
		if c, err := e.m.Store.GetClient(ctx, a.id); err != nil || c.Agency != "AG-A" {
			t.Errorf("client's agency after the PUT: %v %v", c, err)
		}
	})

	t.Run("PUT rotates the token; widening an approved client returns it to review", func(t *testing.T) {
		r := register(t, e, issue(t, e, "AG-A", 1), backend("agency"))
		if _, err := e.m.ApproveClient(ctx, r.id, digestOf(t, e, r.id), nil, nil, "op"); err != nil {
			t.Fatal(err)
		}
		// A key rotation is no widening.
		key2 := newECKey(t)
		md := backend("agency")
		md["jwks"] = json.RawMessage(publicJWKS(t, signer{kid: "k1", key: key}, signer{kid: "k2", key: key2}))
		md["client_id"] = r.id
		md["software_version"] = "2.0"
		status, body := regCall(t, http.MethodPut, r.uri, r.token, md)
		if status != http.StatusOK || body["onedoor_status"] != "active" || body["registration_access_token"] == nil ||
			!slices.Equal(toStrings(body["onedoor_ignored_members"]), []string{"software_version"}) {
			t.Fatalf("key rotation PUT: %d %v", status, body)
		}
		status, _ = regCall(t, http.MethodGet, r.uri, r.token, nil)
		if status != http.StatusUnauthorized {
			t.Errorf("the rotated registration token still works: %d", status)
		}
		tok := body["registration_access_token"].(string)
		status, cbody := ccAssert(t, r.id, "agency")
		wantToken(t, "after key rotation", status, cbody)

		md["client_id"] = "someone-else"
		status, body = regCall(t, http.MethodPut, r.uri, tok, md)
		wantRegError(t, "PUT naming another client", status, body, http.StatusBadRequest, "invalid_client_metadata")

		md["client_id"] = r.id
		md["scope"] = "agency registry.read"
		status, body = regCall(t, http.MethodPut, r.uri, tok, md)
		if status != http.StatusOK || body["onedoor_status"] != "pending" || !slices.Contains(toStrings(body["onedoor_review"]), "scope registry.read") {
			t.Fatalf("widening PUT: %d %v", status, body)
		}
		status, cbody = ccAssert(t, r.id, "agency")
		wantInvalidClient(t, "client back in review", status, cbody)
		if _, err := e.m.ApproveClient(ctx, r.id, digestOf(t, e, r.id), []string{"agency"}, nil, "op"); err != nil {
			t.Fatal(err)
		}
		status, cbody = ccAssert(t, r.id, "agency")
		wantToken(t, "re-approved", status, cbody)

		// DELETE removes it: no more tokens, no more management.
		tok = body["registration_access_token"].(string)
		status, _ = regCall(t, http.MethodDelete, r.uri, tok, nil)
		if status != http.StatusNoContent {
			t.Fatalf("DELETE: %d", status)
		}
		if _, err := e.m.Store.GetClient(ctx, r.id); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("deleted client: %v", err)
		}
		status, _ = regCall(t, http.MethodGet, r.uri, tok, nil)
		if status != http.StatusUnauthorized {
			t.Errorf("GET after DELETE: %d", status)
		}
		status, cbody = ccAssert(t, r.id, "agency")
		wantInvalidClient(t, "deleted client", status, cbody)
	})

	t.Run("metadata rules are client create's", func(t *testing.T) {
		tok := issue(t, e, "AG-A", 50)
		priv, _ := json.Marshal(map[string]any{"keys": []any{privateJWK(t, key)}})
		code := func(extra map[string]any) map[string]any {
			md := map[string]any{"client_name": "Site", "redirect_uris": []string{"https://site.agency.test/cb"}}
			for k, v := range extra {
				md[k] = v
			}
			return md
		}
		for _, tc := range []struct {
			name   string
			md     any
			spec   *ClientSpec // the same registration through client create, which must refuse it too
			status int
			code   string
		}{
			{"http redirect off loopback", code(map[string]any{"redirect_uris": []string{"http://site.agency.test/cb"}}),
				&ClientSpec{Name: "x", RedirectURIs: []string{"http://site.agency.test/cb"}}, 400, "invalid_redirect_uri"},
			{"fragment", code(map[string]any{"redirect_uris": []string{"https://site.agency.test/cb#f"}}),
				&ClientSpec{Name: "x", RedirectURIs: []string{"https://site.agency.test/cb#f"}}, 400, "invalid_redirect_uri"},
			{"wildcard post-logout", code(map[string]any{"post_logout_redirect_uris": []string{"https://*.agency.test/"}}),
				&ClientSpec{Name: "x", RedirectURIs: []string{"https://site.agency.test/cb"}, PostLogoutRedirectURIs: []string{"https://*.agency.test/"}}, 400, "invalid_redirect_uri"},
			{"code grant without redirect", map[string]any{"client_name": "Site"},
				&ClientSpec{Name: "x"}, 400, "invalid_client_metadata"},
			{"unknown scope", code(map[string]any{"scope": "openid email"}),
				&ClientSpec{Name: "x", RedirectURIs: []string{"https://a.test/cb"}, Scope: "openid email"}, 400, "invalid_client_metadata"},
			{"unknown claim", code(map[string]any{"onedoor_claims": []string{"salary"}}),
				&ClientSpec{Name: "x", RedirectURIs: []string{"https://a.test/cb"}, Claims: []string{"salary"}}, 400, "invalid_client_metadata"},
			{"agency scope with the code grant", code(map[string]any{"scope": "agency"}),
				&ClientSpec{Name: "x", RedirectURIs: []string{"https://a.test/cb"}, Scope: "agency", Agency: "AG-A"}, 400, "invalid_client_metadata"},
			{"eID app's JWT-bearer grant", map[string]any{"client_name": "x", "grant_types": []string{idp.GrantTypeJWTBearer}, "token_endpoint_auth_method": "none"},
				&ClientSpec{Name: "x", GrantTypes: []string{idp.GrantTypeJWTBearer}, AuthMethod: idp.AuthNone}, 400, "invalid_client_metadata"},
			{"private_key_jwt without keys", map[string]any{"client_name": "x", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt"},
				&ClientSpec{Name: "x", GrantTypes: []string{"client_credentials"}, AuthMethod: idp.AuthPrivateKeyJWT}, 400, "invalid_client_metadata"},
			{"http jwks_uri", map[string]any{"client_name": "x", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://keys.agency.test/jwks"},
				&ClientSpec{Name: "x", GrantTypes: []string{"client_credentials"}, AuthMethod: idp.AuthPrivateKeyJWT, JWKSURI: "http://keys.agency.test/jwks"}, 400, "invalid_client_metadata"},
			{"jwks with a private key", map[string]any{"client_name": "x", "grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(priv)},
				nil, 400, "invalid_client_metadata"},
			{"bad purpose", code(map[string]any{"onedoor_purposes": []map[string]string{{"code": "Bad Code", "text": "x"}}}),
				&ClientSpec{Name: "x", RedirectURIs: []string{"https://a.test/cb"}, Purposes: []consent.Purpose{{Code: "Bad Code", Text: "x"}}}, 400, "invalid_client_metadata"},
			{"response type token", code(map[string]any{"response_types": []string{"token"}}), nil, 400, "invalid_client_metadata"},
			{"string for an array", `{"client_name":"x","redirect_uris":"https://site.agency.test/cb"}`, nil, 400, "invalid_client_metadata"},
			{"number for a string", `{"client_name":7,"redirect_uris":["https://site.agency.test/cb"]}`, nil, 400, "invalid_client_metadata"},
			{"array body", `[{"client_name":"x"}]`, nil, 400, "invalid_client_metadata"},
			{"two objects", `{"client_name":"x"}{}`, nil, 400, "invalid_client_metadata"},
			{"jwks as a string", map[string]any{"client_name": "x", "jwks": "{}"}, nil, 400, "invalid_client_metadata"},
			{"purpose with an unknown member", code(map[string]any{"onedoor_purposes": []map[string]string{{"code": "a", "text": "b", "x": "y"}}}), nil, 400, "invalid_client_metadata"},
			{"oversized", `{"client_name":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, "invalid_client_metadata"},
		} {
			status, body := regCall(t, http.MethodPost, e.issuer+"/register", tok, tc.md)
			wantRegError(t, tc.name, status, body, tc.status, tc.code)
			if tc.spec != nil {
				if _, _, err := e.m.CreateClient(ctx, *tc.spec); !errors.Is(err, idp.ErrInvalid) {
					t.Errorf("%s: client create accepts what registration refuses: %v", tc.name, err)
				}
			}
		}
		// Not JSON at all.
		req, _ := http.NewRequest(http.MethodPost, e.issuer+"/register", strings.NewReader("client_name=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("form body: %d", resp.StatusCode)
		}
		// A native app on loopback, with purposes and claims, registers.
		r := register(t, e, tok, map[string]any{"client_name": "Native", "redirect_uris": []string{"http://127.0.0.1/cb"},
			"token_endpoint_auth_method": "none", "scope": "openid profile phone", "onedoor_claims": []string{"name"},
			"onedoor_purposes": []map[string]string{{"code": "benefit", "text": "Xét duyệt trợ cấp"}}, "logo_uri": "https://x.test/l.png"})
		if r.secret != "" || !slices.Equal(toStrings(r.body["onedoor_claims"]), []string{"name"}) ||
			!slices.Equal(toStrings(r.body["onedoor_ignored_members"]), []string{"logo_uri"}) {
			t.Errorf("native registration: %v", r.body)
		}
	})
}

// privateJWK is key with its private part, as a careless agency might
// publish it.
func privateJWK(t *testing.T, key any) jose.JSONWebKey {
	t.Helper()
	return jose.JSONWebKey{Key: key, KeyID: "k1"}
}

// digestOf is the review digest `client show` prints for the client now.
func digestOf(t *testing.T, e *testEnv, id string) string {
	t.Helper()
	c, err := e.m.Store.GetClient(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return idp.ReviewDigest(c)
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func tokenOf(t *testing.T, body string) string {
	t.Helper()
	var b struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.AccessToken == "" {
		t.Fatalf("no access token in %s", body)
	}
	return b.AccessToken
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The registration endpoint is rate-limited per address and per initial
// token, known or not.
func TestRegistration_RateLimits(t *testing.T) {
	e := newRegEnv(t, func(c *Config) { c.Limits.RegisterPerToken = 2; c.Limits.RegisterPerAddr = 5 })
	md := map[string]any{"client_name": "x"}
	var last int
	for i := range 3 {
		last, _ = regCall(t, http.MethodPost, e.issuer+"/register", "guess", md)
		if i < 2 && last != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, last)
		}
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("third try of one token: %d, want 429", last)
	}
	for range 3 {
		last, _ = regCall(t, http.MethodPost, e.issuer+"/register", "other-"+randomHex(4), md)
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("sixth request from one address: %d, want 429", last)
	}
}

// The operator's side: `agency token`, `client list --pending`, `client
// approve` narrowing and `client reject`, against a running server.
func TestCLI_AgencyOnboarding(t *testing.T) {
	e := newRegEnv(t)
	dir := e.m.Config.DataDir
	run := func(args ...string) string {
		t.Helper()
		code, out, errs := cli(t, nil, append(args, "--data-dir", dir)...)
		if code != 0 {
			t.Fatalf("%v: %d %s", args, code, errs)
		}
		return out
	}
	if code, _, errs := cli(t, nil, "agency", "token", "--agency", "NO-SUCH", "--data-dir", dir); code == 0 || !strings.Contains(errs, "NO-SUCH") {
		t.Errorf("token for an unknown agency: %d %s", code, errs)
	}
	var issued struct {
		Token struct {
			ID     string `json:"id"`
			Value  string `json:"initial_access_token"`
			Agency string `json:"agency"`
			Max    int    `json:"max_uses"`
		} `json:"token"`
	}
	decode(t, run("agency", "token", "--agency", "AG-A", "--max-uses", "2", "--ttl", "2h"), &issued)
	if issued.Token.Value == "" || issued.Token.Agency != "AG-A" || issued.Token.Max != 2 {
		t.Fatalf("issued: %+v", issued)
	}
	if out := run("agency", "token", "list"); strings.Contains(out, issued.Token.Value) || !strings.Contains(out, issued.Token.ID) {
		t.Errorf("token list shows the value or lacks the token: %s", out)
	}
	db, err := os.ReadFile(filepath.Join(dir, "onedoor.db")) // #nosec G304 -- the test's own data directory
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(db, []byte(issued.Token.Value)) {
		t.Error("the initial access token is stored in clear")
	}
	secretMD := map[string]any{"client_name": "Back end", "grant_types": []string{"client_credentials"}, "scope": "agency registry.read"}
	a := register(t, e, issued.Token.Value, secretMD)
	b := register(t, e, issued.Token.Value, secretMD)
	var pending []clientView
	decodeList(t, run("client", "list", "--pending"), "clients", &pending)
	if len(pending) != 2 || pending[0].Status != "pending" || pending[0].Agency != "AG-A" || !pending[0].SelfRegistered {
		t.Fatalf("pending list: %+v", pending)
	}
	if code, _, errs := cli(t, nil, "client", "approve", "--id", a.id, "--data-dir", dir); code == 0 || !strings.Contains(errs, "--digest") {
		t.Errorf("approve without a digest: %d %s", code, errs)
	}
	var shown clientView
	decode(t, run("client", "show", a.id), &shown)
	if shown.ReviewDigest == "" || shown.Scope != "agency registry.read" {
		t.Fatalf("client show of a pending client: %+v", shown)
	}
	// The agency changes its client after the operator looked: the
	// digest no longer matches and nothing unseen is approved.
	md := maps.Clone(secretMD)
	md["client_id"], md["scope"] = a.id, "agency registry.read registry.write"
	status, body := regCall(t, http.MethodPut, a.uri, a.token, md)
	if status != http.StatusOK {
		t.Fatalf("PUT while pending: %d %v", status, body)
	}
	if code, _, errs := cli(t, nil, "client", "approve", "--id", a.id, "--digest", shown.ReviewDigest, "--data-dir", dir); code == 0 || !strings.Contains(errs, "changed since") {
		t.Errorf("approve with a stale digest: %d %s", code, errs)
	}
	decode(t, run("client", "show", a.id), &shown)
	var approved clientView
	decode(t, run("client", "approve", "--id", a.id, "--digest", shown.ReviewDigest, "--scopes", "agency"), &approved)
	if approved.Status != "active" || approved.Scope != "agency" || approved.DecidedBy == "" || approved.DecidedAt == nil {
		t.Errorf("approved: %+v", approved)
	}
	run("client", "reject", b.id)
	run("agency", "token", "revoke", "--id", issued.Token.ID)
	decodeList(t, run("client", "list", "--pending"), "clients", &pending)
	if len(pending) != 0 {
		t.Errorf("still pending: %+v", pending)
	}
	// The running server sees the approval within its client poll.
	cc := clientcredentials.Config{ClientID: a.id, ClientSecret: a.secret, TokenURL: e.issuer + "/token", Scopes: []string{"agency"}, AuthStyle: oauth2.AuthStyleInHeader}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := cc.Token(context.Background()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("approved client refused: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cc.Scopes = []string{"registry.read"}
	if _, err := cc.Token(context.Background()); err == nil {
		t.Error("a scope removed at approval was granted")
	}
	cb := clientcredentials.Config{ClientID: b.id, ClientSecret: b.secret, TokenURL: e.issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cb.Token(context.Background()); err == nil {
		t.Error("a rejected client got a token")
	}
	if code, _, _ := cli(t, nil, "client", "approve", "--id", b.id, "--data-dir", dir); code == 0 {
		t.Error("a rejected client was approved")
	}
}
