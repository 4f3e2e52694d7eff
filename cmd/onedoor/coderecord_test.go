package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// TestCodeRecordWrittenOnce: a login stores its authorization code's request
// once, not once each for the code, PKCE and OpenID Connect as fosite's
// handlers ask, and the exchange still checks PKCE and issues the ID token
// from that one record. Counted in Redis, where every key is visible.
func TestCodeRecordWrittenOnce(t *testing.T) {
	m := newTestMain(t, scaleOption(t))
	e := startBenchClient(t)
	e.m, e.issuer = m, m.Issuer
	id, secret := e.client(t, ClientSpec{Scope: "openid profile", RedirectURIs: []string{benchRedirectURI},
		GrantTypes: []string{"authorization_code"}})
	mint := e.codeMinter(t, id) // one login through the app; its code is left unredeemed

	opt, err := goredis.ParseURL(os.Getenv("ONEDOOR_TEST_REDIS_URL"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	count := func() map[string]int {
		t.Helper()
		kinds := map[string]int{}
		iter := rdb.Scan(context.Background(), 0, m.Config.RedisPrefix+"oidc:*", 1000).Iterator()
		for iter.Next(context.Background()) {
			rest := strings.TrimPrefix(iter.Val(), m.Config.RedisPrefix+"oidc:")
			kind, _, _ := strings.Cut(rest, ":")
			kinds[kind]++
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		return kinds
	}
	before := count()
	const n = 5
	codes := mint.mint(t, n)
	after := count()
	if got := after["code"] - before["code"]; got != n {
		t.Errorf("%d code records for %d logins, want %d", got, n, n)
	}
	for kind, c := range after {
		if kind != "code" && c != before[kind] {
			t.Errorf("%d new %q records for %d logins, want none (all in the code's record): %v", c-before[kind], kind, n, after)
		}
	}

	// The exchange reads the challenge and the OpenID Connect parameters
	// from that record: a wrong verifier is refused, the right one gets an
	// ID token with the login's nonce checked by the client (present).
	wrong := url.Values{"grant_type": {"authorization_code"}, "code": {codes[0]}, "redirect_uri": {benchRedirectURI},
		"code_verifier": {strings.Repeat("x", 43)}}.Encode()
	if st, body, err := e.do(e.tokenRequest(wrong, id, secret)); err != nil || st != http.StatusBadRequest || !strings.Contains(string(body), "invalid_grant") {
		t.Fatalf("wrong verifier: %d %s %v, want 400 invalid_grant", st, body, err)
	}
	for _, c := range codes[1:] {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {benchRedirectURI},
			"code_verifier": {mint.verifier}}.Encode()
		resp, err := e.http.Do(e.tokenRequest(form, id, secret))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if st := resp.StatusCode; err != nil || st != http.StatusOK || !strings.Contains(string(body), `"id_token"`) {
			t.Fatalf("exchange: %d %s %v, want 200 with an id_token", st, body, err)
		}
		var tr struct {
			IDToken string `json:"id_token"`
		}
		if err := json.Unmarshal(body, &tr); err != nil {
			t.Fatal(err)
		}
		nonce, _ := jsonPart(t, tr.IDToken, 1)["nonce"].(string)
		if nonce == "" {
			t.Fatalf("ID token without the login's nonce: %s", body)
		}
		// Redeemed twice: refused, the first one's tokens revoked as before.
		if st, _, _ := e.do(e.tokenRequest(form, id, secret)); st != http.StatusBadRequest {
			t.Fatalf("second redemption: %d, want 400", st)
		}
	}
}
