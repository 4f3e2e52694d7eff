package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
)

// authRequestForm is a valid code+PKCE authorization request.
func authRequestForm(clientID, redirectURI string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"scope": {"openid profile"}, "state": {randomString(12)}, "nonce": {randomString(12)},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}, "code_challenge_method": {"S256"},
	}
}

// authorizeOutcome opens an authorization URL and tells whether it showed
// the login page, redirected (and where), or rendered an error page.
func authorizeOutcome(t *testing.T, b *browser, u string) (status int, location string, loginPage bool) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), strings.Contains(string(body), `id="eid-qr"`)
}

// pushAuthRequest posts form to /par, with Basic clientID:secret when
// secret is set and with a DPoP proof when one is given.
func pushAuthRequest(t *testing.T, issuer, clientID, secret string, form url.Values, dpopProof ...string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"/par", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(clientID, secret)
	}
	if len(dpopProof) > 0 && dpopProof[0] != "" {
		req.Header.Set("DPoP", dpopProof[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// Redirect URIs are matched exactly (RFC 9700 2.1). fosite lets any client
// use a registered loopback redirect URI on another port (RFC 8252 7.3 is
// meant for native apps) and ignores userinfo there; OneDoor keeps the port
// exception for public clients only and never sends anything to an
// unregistered URI, not even an error.
func TestRedirectURIsMatchExactly(t *testing.T) {
	e := startMain(t)
	ctx := context.Background()
	confID, confSecret := e.client(ClientSpec{Scope: "openid profile"}) // http://127.0.0.1:9/callback
	pubID, _ := e.client(ClientSpec{Scope: "openid profile", AuthMethod: idp.AuthNone,
		GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"http://127.0.0.1/callback"}})
	// A client registered before userinfo was refused at registration.
	legacy := &idp.Client{ID: "legacy-" + randomHex(4), Name: "Legacy", AuthMethod: idp.AuthNone, IDTokenAlg: "ES256",
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile"},
		RedirectURIs: []string{"https://user:pw@agency.example/cb", "http://user:pw@127.0.0.1/cb"}}
	if err := e.m.Store.CreateClient(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.CreateClient(ctx, ClientSpec{Name: "x", Scope: "openid", GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{"https://user:pass@agency.example/cb"}}); err == nil {
		t.Error("a redirect URI with userinfo was registered")
	}

	refused := []struct {
		name, clientID, redirectURI string
		extra                       url.Values
	}{
		{"confidential client, loopback on another port", confID, "http://127.0.0.1:7777/callback", nil},
		{"confidential client, loopback without port", confID, "http://127.0.0.1/callback", nil},
		// fosite fails these after accepting the redirect URI; the error
		// must not go to it either.
		{"confidential client, other port and a bad scope", confID, "http://127.0.0.1:7777/callback", url.Values{"scope": {"openid admin"}}},
		{"confidential client, other port and a bad response type", confID, "http://127.0.0.1:7777/callback", url.Values{"response_type": {"token"}}},
		{"public client, userinfo on loopback", pubID, "http://user:pass@127.0.0.1:54321/callback", nil},
		{"public client, other path", pubID, "http://127.0.0.1:54321/other", nil},
		{"registered userinfo URI", legacy.ID, "https://user:pw@agency.example/cb", nil},
		{"registered userinfo loopback URI, other port", legacy.ID, "http://127.0.0.1:5555/cb", nil},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			form := authRequestForm(tc.clientID, tc.redirectURI)
			for k, v := range tc.extra {
				form[k] = v
			}
			status, loc, login := authorizeOutcome(t, newBrowser(), e.issuer+"/authorize?"+form.Encode())
			if status != http.StatusBadRequest || loc != "" || login {
				t.Errorf("/authorize: status %d, Location %q, login page %v; want a 400 error page", status, loc, login)
			}
			// Repeating a parameter is refused before fosite's checks end.
			form.Add("state", "again-"+randomString(8))
			status, loc, _ = authorizeOutcome(t, newBrowser(), e.issuer+"/authorize?"+form.Encode())
			if status != http.StatusBadRequest || loc != "" {
				t.Errorf("/authorize with a repeated parameter: status %d, Location %q; want a 400 error page", status, loc)
			}
			secret := ""
			if tc.clientID == confID {
				secret = confSecret
			}
			form = authRequestForm(tc.clientID, tc.redirectURI)
			if status, out := pushAuthRequest(t, e.issuer, tc.clientID, secret, form); status != http.StatusBadRequest || out["error"] != "invalid_request" {
				t.Errorf("/par: status %d %v, want 400 invalid_request", status, out)
			}
		})
	}

	t.Run("exact match", func(t *testing.T) {
		if _, loc, login := authorizeOutcome(t, newBrowser(), e.issuer+"/authorize?"+authRequestForm(confID, "http://127.0.0.1:9/callback").Encode()); !login {
			t.Errorf("registered URI refused (Location %q)", loc)
		}
		if status, out := pushAuthRequest(t, e.issuer, confID, confSecret, authRequestForm(confID, "http://127.0.0.1:9/callback")); status != http.StatusCreated {
			t.Errorf("/par with the registered URI: %d %v", status, out)
		}
	})
	t.Run("public native client on any loopback port", func(t *testing.T) {
		const cb = "http://127.0.0.1:54321/callback"
		if status, out := pushAuthRequest(t, e.issuer, pubID, "", authRequestForm(pubID, cb)); status != http.StatusCreated {
			t.Errorf("/par: %d %v", status, out)
		}
		verifier := oauth2.GenerateVerifier()
		form := authRequestForm(pubID, cb)
		form.Set("code_challenge", oauth2.S256ChallengeFromVerifier(verifier))
		loc := e.login(newBrowser(), e.issuer+"/authorize?"+form.Encode(), e.app, nil)
		if loc.Host != "127.0.0.1:54321" || loc.Query().Get("code") == "" {
			t.Fatalf("redirect = %v", loc)
		}
		status, body := postForm(t, e.issuer+"/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {pubID},
			"code": {loc.Query().Get("code")}, "redirect_uri": {cb}, "code_verifier": {verifier}})
		wantToken(t, "code exchange", status, body)
	})
}
