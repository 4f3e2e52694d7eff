package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Refresh grace without forks, end to end: a parent redeemed twice within
// the grace window leaves one live child (the first child's later use is
// reuse and revokes the family), and a token older than the family's
// previous one revokes the family too.
func TestRefresh_NoForkAndOlderTokenReuse_SQLite(t *testing.T) {
	testRefreshNoFork(t, startMain(t))
}

func TestRefresh_NoForkAndOlderTokenReuse_PostgresRedis(t *testing.T) {
	testRefreshNoFork(t, startMain(t, scaleOption(t)))
}

func testRefreshNoFork(t *testing.T, e *testEnv) {
	log := newStatusLog()
	c := &http.Client{Transport: log, Timeout: 30 * time.Second}
	e.app.HTTP = c
	id, secret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	type tokens struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	parse := func(what string, r result) tokens {
		t.Helper()
		var tok tokens
		if err := json.Unmarshal(r.body, &tok); err != nil || r.status != http.StatusOK || tok.RefreshToken == "" {
			t.Fatalf("%s: %v", what, r)
		}
		return tok
	}
	login := func() tokens {
		a := newAuthRequest(e.issuer, id, "openid profile offline_access")
		return parse("code exchange", postToken(t, c, e.issuer, a.codeForm(codeFrom(t, a, e.login(log.browser(), a.url, e.app, nil))), id, secret))
	}
	refresh := func(rt string) result {
		return postToken(t, c, e.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, id, secret)
	}
	wantInvalidGrant := func(what string, r result) {
		t.Helper()
		if r.status != http.StatusBadRequest || r.jsonError() != "invalid_grant" {
			t.Errorf("%s: %v, want 400 invalid_grant", what, r)
		}
	}

	// A client that lost the response retries with the parent.
	p := login()
	c1 := parse("first redemption", refresh(p.RefreshToken))
	c2 := parse("second redemption within grace", refresh(p.RefreshToken))
	// The first child died: whoever presents it holds a response the client
	// never got, so the family goes.
	wantInvalidGrant("the first child after the parent was redeemed again", refresh(c1.RefreshToken))
	wantInvalidGrant("the second child after the first one was reused", refresh(c2.RefreshToken))

	// A token two rotations old revokes the family, within the grace window
	// or not.
	a := login()
	b := parse("redeem a", refresh(a.RefreshToken))
	cc := parse("redeem b", refresh(b.RefreshToken))
	wantInvalidGrant("a token two rotations old", refresh(a.RefreshToken))
	wantInvalidGrant("the current token after an older one was reused", refresh(cc.RefreshToken))
	log.check(t)
}
