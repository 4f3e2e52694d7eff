package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/web"
)

// Abuse case, found in review: a thief's phone approves a login; the citizen revokes the phone
// before the agency redeems the code. The code still redeems, and the refresh
// family it creates is born active after the device's families were revoked:
// the refresh token keeps working (and outlives the 65-minute did deny list).
func TestDeviceRevocation_CodeApprovedBeforeItYieldsNothing(t *testing.T) {
	ctx := context.Background()
	e := startMain(t)
	second := e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	id, secret := e.client(ClientSpec{Scope: "openid profile eid offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	r := e.rp(id, secret)
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r)
	loc := e.login(b, u, e.app, nil) // approved by the soon-lost phone; code issued
	if err := second.RevokeDevice(ctx, e.app.Enrollment().DeviceID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	q := loc.Query()
	tok, err := r.conf.Exchange(ctx, q.Get("code"), oauthVerifier(verifier))
	_ = state
	_ = nonce
	if err == nil {
		t.Errorf("code approved by a revoked device was redeemed (refresh token %v)", tok.RefreshToken != "")
		if tok.RefreshToken != "" {
			if _, err := refreshErr(r, tok.RefreshToken); err == nil {
				t.Errorf("refresh token of a revoked device's login works after revocation")
			}
			if introspect(t, e.issuer, id, secret, tok.RefreshToken)["active"] == true {
				t.Errorf("introspection says the revoked device's refresh token is active")
			}
		}
	}
}

func oauthVerifier(v string) oauth2.AuthCodeOption { return oauth2.VerifierOption(v) }

// Abuse case, found in review: a par-required agency pushes its request (no purpose, no resource,
// no max_age). Whoever relays or rewrites the front-channel URL (a phishing
// page relaying the login, a script on the agency's page) appends parameters
// the push never contained; fosite's PAR merge keeps query-only parameters,
// so the citizen is shown attacker text as the agency's stated purpose, and
// prompt/max_age/resource/claims are taken from the query too. RFC 9126
// section 4: only the pushed parameters count.
func TestPAR_OnlyPushedParametersCount(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile", PARRequired: true})
	r := e.rp(id, secret, "openid", "profile")
	u, _, _, _ := authorizeURL(r)
	pu, _ := url.Parse(u)
	requestURI := pushRequest(t, e.issuer, id, secret, pu.Query())
	const injected = "ATTACKER PURPOSE refund approve now" // spaces: shown as is, never so in a URL
	au := e.issuer + "/authorize?" + url.Values{"client_id": {id}, "request_uri": {requestURI}, "purpose": {injected}}.Encode()
	body := newBrowser().pageBody(t, au)
	if strings.Contains(body, injected) {
		t.Errorf("a parameter added to the front channel next to request_uri is used (purpose shown to the citizen)")
	}
}

// Abuse case, found in review: an operator deletes an agency's client (compromised, or its
// contract ended). Its refresh tokens stop, introspection by a resource
// server says inactive, but its access tokens keep answering at /userinfo
// (200, the citizen's sub) for their whole lifetime: userinfo never asks
// whether the token's client still exists.
func TestDeletedClient_AccessTokensRefusedAtUserinfo(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, "openid", "profile")
	tok, _ := e.codeFlow(r, newBrowser(), e.app)
	if err := e.m.Store.DeleteClient(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if status, _ := userinfoStatus(t, e.issuer, tok.AccessToken); status == http.StatusOK {
		t.Errorf("userinfo answers 200 for an access token of a deleted client")
	}
}

// Abuse case, found in review: an operator deletes a client (the only remedy the CLI offers for a
// compromised agency: there is no secret rotation) and registers it again
// under the same client_id. Deletion revoked nothing: every refresh-token
// family issued before the deletion comes back to life with the new
// registration.
func TestDeletedClient_RefreshFamiliesDoNotReviveOnRecreate(t *testing.T) {
	ctx := context.Background()
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	r := e.rp(id, secret, "openid", "profile", "offline_access")
	tok, _ := e.codeFlow(r, newBrowser(), e.app)
	if err := e.m.Store.DeleteClient(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, secret2, err := e.m.CreateClient(ctx, ClientSpec{ID: id, Name: "Test agency", Scope: "openid profile offline_access",
		GrantTypes: []string{"authorization_code", "refresh_token"}, RedirectURIs: []string{"http://127.0.0.1:9/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // past the client cache's bound
	r2 := e.rp(id, secret2, "openid", "profile", "offline_access")
	if _, err := refreshErr(r2, tok.RefreshToken); err == nil {
		t.Errorf("a refresh token issued before the client was deleted works after it is registered again")
	}
}

// Abuse case, found in review: a thief holds the citizen's stolen phone (enrolled at substantial)
// before the citizen reports it. From it, he revokes the citizen's other
// phone (enrolled at high): nothing requires re-authentication, an equal or
// higher level, or a delay, so the citizen loses the only device that could
// have revoked the stolen one, and the stolen phone keeps working.
func TestDevices_ALowerLevelDeviceCannotRevokeAHigherOne(t *testing.T) {
	ctx := context.Background()
	e := startMain(t) // e.app: the citizen's own phone, level high
	stolen := e.enroll(demoCitizens[0].PersonalID, idp.LevelSubstantial)
	if err := stolen.RevokeDevice(ctx, e.app.Enrollment().DeviceID); err == nil {
		t.Errorf("a substantial-level device revoked the citizen's high-level device")
	}
	if _, err := stolen.Login(ctx); err != nil {
		t.Fatalf("stolen phone: %v", err)
	}
}

// Abuse case, found in review: OneDoor's discovery says request_parameter_supported=false, yet
// fosite processes a `request` object, and one signed with alg "none" is
// accepted for any client with registered keys (private_key_jwt). Against a
// par-required client, whoever controls the front channel appends
// request=<unsigned JWT> next to request_uri; the login continuation replays
// the stored form without request_uri, so the unsigned object then overrides
// the pushed parameters (here redirect_uri, switched to another registered
// URI; state, scope, claims, code_challenge likewise).
func TestPAR_UnsignedRequestObjectCannotOverrideThePush(t *testing.T) {
	e := startMain(t)
	key := newECKey(t)
	jwksFile := t.TempDir() + "/jwks.json"
	if err := os.WriteFile(jwksFile, publicJWKS(t, signer{kid: "k1", key: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	cb1, cb2 := "http://127.0.0.1:9/callback", "http://127.0.0.1:9/other"
	id, _ := e.client(ClientSpec{Scope: "openid profile", AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: jwksFile,
		PARRequired: true, RedirectURIs: []string{cb1, cb2}})
	verifier := oauth2.GenerateVerifier()
	form := url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {cb1}, "scope": {"openid profile"},
		"state": {randomString(12)}, "nonce": {randomString(12)}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion": {clientAssertion(t, key, id, e.issuer+"/token")}}
	status, body := postForm(t, e.issuer+"/par", form)
	var par struct {
		RequestURI string `json:"request_uri"`
	}
	_ = json.Unmarshal([]byte(body), &par)
	if par.RequestURI == "" {
		t.Fatalf("PAR: %d %s", status, body)
	}
	requestURI := par.RequestURI
	// An unsigned request object: header {"alg":"none"}, empty signature.
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	pl := base64.RawURLEncoding.EncodeToString([]byte(`{"redirect_uri":"` + cb2 + `"}`))
	au := e.issuer + "/authorize?" + url.Values{"client_id": {id}, "request_uri": {requestURI}, "request": {hdr + "." + pl + "."}}.Encode()
	resp, err := newBrowser().Get(au)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(page), `id="eid-qr"`) || !strings.Contains(string(page), "request_not_supported") {
		t.Errorf("a request object next to a pushed request_uri: %d, want a 400 page naming request_not_supported", resp.StatusCode)
	}
}

// Abuse case, found in review: an unauthenticated flooder of the token endpoint. Requests without
// a client credential are limited per address; sending the public client's
// id in Basic auth with an EMPTY password counts as "has a credential" for
// the limiter, while fosite still authenticates the public client by name.
// The flooder then drives JWT-bearer grants (device lookup, ECDSA verify,
// jti write) for the eID app without any limit.
func TestToken_EmptyBasicPasswordCountsAsPublicClient(t *testing.T) {
	e := startMain(t, func(c *Config) { c.Limits = web.Limits{TokenPublicPerAddr: 2} })
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"a.b.c"}}
	limited := 0
	for range 10 {
		resp, body := call(t, http.MethodPost, e.issuer+web.PathToken, "", form, func(r *http.Request) { r.SetBasicAuth(idp.EIDAppClientID, "") })
		// Unlimited, it reaches the grant's first check: the missing
		// DPoP proof (the app's grant needs one), before the assertion.
		if resp.StatusCode != http.StatusTooManyRequests && body["error"] != "invalid_dpop_proof" {
			t.Fatalf("the request was neither limited nor refused by the grant: %d %v", resp.StatusCode, body)
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Errorf("10 public-client token requests (Basic auth, empty password) from one address, none limited (limit 2)")
	}
}

// The login page's language switch shows the same login request again: with
// a pushed request, whose request_uri works once, re-running /authorize
// would fail.
func TestPAR_LanguageSwitchKeepsTheLogin(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile", PARRequired: true})
	r := e.rp(id, secret, "openid", "profile")
	u, _, _, _ := authorizeURL(r)
	pu, _ := url.Parse(u)
	requestURI := pushRequest(t, e.issuer, id, secret, pu.Query())
	b := newBrowser()
	vi := b.pageBody(t, e.issuer+"/authorize?"+url.Values{"client_id": {id}, "request_uri": {requestURI}}.Encode())
	m := regexp.MustCompile(`class="lang" href="([^"]+)"`).FindStringSubmatch(vi)
	if m == nil {
		t.Fatal("no language switch on the login page")
	}
	en := b.pageBody(t, html.UnescapeString(m[1]))
	if !strings.Contains(en, `lang="en"`) || qrRE.FindString(en) != qrRE.FindString(vi) {
		t.Error("the language switch did not show the same login request in English")
	}
}

// TestPAR_RequestURIMisuse: a request_uri (RFC 9126) is single use and
// belongs to the client that pushed it: a replay, or another client naming
// it, gets an error page and no login.
func TestPAR_RequestURIMisuse(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile", PARRequired: true})
	other, _ := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, "openid", "profile")
	push := func() string {
		u, _, _, _ := authorizeURL(r)
		pu, _ := url.Parse(u)
		return pushRequest(t, e.issuer, id, secret, pu.Query())
	}
	refused := func(what, clientID, requestURI string) {
		t.Helper()
		resp, err := newBrowser().Get(e.issuer + "/authorize?" + url.Values{"client_id": {clientID}, "request_uri": {requestURI}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), `id="eid-qr"`) || resp.StatusCode == http.StatusOK {
			t.Errorf("%s: status %d with a login page, want an error", what, resp.StatusCode)
		}
		// An error may go back to the pushing client's registered redirect
		// URI (its own request named it), never a code, never elsewhere.
		if loc := resp.Header.Get("Location"); loc != "" {
			lu, err := url.Parse(loc)
			if err != nil || !strings.HasPrefix(loc, r.conf.RedirectURL+"?") || lu.Query().Get("error") == "" || lu.Query().Has("code") {
				t.Errorf("%s: redirected to %q, want only an error to the pushing client's redirect URI", what, loc)
			}
		}
	}

	used := push()
	newBrowser().pageBody(t, e.issuer+"/authorize?"+url.Values{"client_id": {id}, "request_uri": {used}}.Encode())
	refused("request_uri used twice", id, used)

	theirs := push()
	refused("another client's request_uri", other, theirs)

	refused("a request_uri never issued", id, "urn:ietf:params:oauth:request_uri:"+randomString(32))
}

// TestPAR_RequestURIExpires: a request_uri is usable only for its lifetime
// (expires_in); after it the login is refused.
func TestPAR_RequestURIExpires(t *testing.T) {
	for _, be := range []struct {
		name string
		opt  func(*testing.T) envOption
	}{{"SQLite", func(*testing.T) envOption { return func(*Config) {} }}, {"PostgresRedis", scaleOption}} {
		t.Run(be.name, func(t *testing.T) {
			e := startMain(t, be.opt(t), func(c *Config) { c.PARLifetime = time.Second })
			id, secret := e.client(ClientSpec{Scope: "openid profile", PARRequired: true})
			r := e.rp(id, secret, "openid", "profile")
			u, _, _, _ := authorizeURL(r)
			pu, _ := url.Parse(u)
			status, body := postBasic(t, e.issuer+"/par", id, secret, pu.Query())
			var par struct {
				RequestURI string `json:"request_uri"`
				ExpiresIn  int    `json:"expires_in"`
			}
			if err := json.Unmarshal([]byte(body), &par); err != nil || status != http.StatusCreated || par.ExpiresIn != 1 {
				t.Fatalf("PAR: %d %s, want 201 with expires_in 1", status, body)
			}
			time.Sleep(1500 * time.Millisecond)
			resp, err := newBrowser().Get(e.issuer + "/authorize?" + url.Values{"client_id": {id}, "request_uri": {par.RequestURI}}.Encode())
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || strings.Contains(string(page), `id="eid-qr"`) || resp.Header.Get("Location") != "" {
				t.Errorf("expired request_uri: status %d, Location %q; want an error page and no login", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}
