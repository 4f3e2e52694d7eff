package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestCodeExchange_RetryAfterOutage: PostgreSQL fails in the middle of a
// code exchange, after the code was taken from Redis, while the refresh
// token is written. The client gets 503 and retries as told: the retry is
// not code reuse (which would revoke the grant); it gets tokens, and the
// refresh token works.
func TestCodeExchange_RetryAfterOutage(t *testing.T) {
	var proxy *tcpProxy
	e := startMain(t, scaleOption(t), func(c *Config) { proxy, c.PostgresDSN = proxied(t, c.PostgresDSN) })
	log := newStatusLog()
	c := &http.Client{Transport: log, Timeout: 30 * time.Second}
	e.app.HTTP = c
	siteID, siteSecret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	a := newAuthRequest(e.issuer, siteID, "openid profile offline_access")
	form := a.codeForm(codeFrom(t, a, e.login(log.browser(), a.url, e.app, nil)))

	stmt := []byte("INSERT INTO idp_refresh_families")
	proxy.killOn.Store(&stmt)
	want503(t, "code exchange while the refresh token cannot be written", postToken(t, c, e.issuer, form, siteID, siteSecret))
	proxy.killOn.Store(nil)

	r := postToken(t, c, e.issuer, form, siteID, siteSecret)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil || r.status != http.StatusOK || tok.RefreshToken == "" || tok.IDToken == "" {
		t.Fatalf("retried code exchange: %v", r)
	}
	refresh := postToken(t, c, e.issuer, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}, siteID, siteSecret)
	wantStatus(t, "refresh after the retried exchange (was the grant revoked as code reuse?)", refresh, http.StatusOK)
	// The code is spent now.
	r = postToken(t, c, e.issuer, form, siteID, siteSecret)
	if r.status != http.StatusBadRequest || r.jsonError() != "invalid_grant" {
		t.Errorf("third use of the code: %v, want 400 invalid_grant", r)
	}
	log.check(t)
}

// TestPermanentStoreError_ServerError: a permanent database error (here a
// table that is gone) is not an outage. The answer is 500 server_error in
// OAuth JSON without Retry-After, so clients do not retry it forever, and
// the cause is logged; an outage stays 503.
func TestPermanentStoreError_ServerError(t *testing.T) {
	var proxy *tcpProxy
	e := startMain(t, scaleOption(t), func(c *Config) { proxy, c.PostgresDSN = proxied(t, c.PostgresDSN) })
	c := &http.Client{Transport: loopbackTransport(), Timeout: 30 * time.Second}
	e.app.HTTP = c
	siteID, siteSecret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	a := newAuthRequest(e.issuer, siteID, "openid profile offline_access")
	b := newBrowser()
	b.Transport, b.Timeout = loopbackTransport(), 30*time.Second
	r := postToken(t, c, e.issuer, a.codeForm(codeFrom(t, a, e.login(b, a.url, e.app, nil))), siteID, siteSecret)
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(r.body, &tok); err != nil || r.status != http.StatusOK || tok.RefreshToken == "" {
		t.Fatalf("code exchange: %v", r)
	}
	refreshForm := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}

	proxy.set(proxyReset)
	want503(t, "refresh while PostgreSQL is down", postToken(t, c, e.issuer, refreshForm, siteID, siteSecret))
	proxy.set(proxyUp)
	waitReady(t, c, e.issuer, 10*time.Second)

	if _, err := e.m.DB.ExecContext(t.Context(), "DROP TABLE idp_refresh_families"); err != nil {
		t.Fatal(err)
	}
	r = postToken(t, c, e.issuer, refreshForm, siteID, siteSecret)
	switch {
	case r.status != http.StatusInternalServerError:
		t.Errorf("refresh with its table gone: %v, want 500", r)
	case r.header.Get("Retry-After") != "":
		t.Errorf("refresh with its table gone: Retry-After %q on a permanent error", r.header.Get("Retry-After"))
	case r.jsonError() != "server_error":
		t.Errorf("refresh with its table gone: %v, want error server_error", r)
	}
}
