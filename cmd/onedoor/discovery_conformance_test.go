package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/represent"
)

// Discovery advertises only what works: every member of the discovery
// document of a running server is checked here, and every value of every
// list is exercised against that server (each client authentication method
// at each endpoint that lists it, each signing algorithm, each scope, claim,
// grant type, prompt, level and locale). A member without a check fails the
// test, so a new one cannot be advertised untested.
func TestDiscovery_EveryAdvertisedValueWorks(t *testing.T) {
	e := startMain(t)
	ctx := context.Background()
	var d map[string]any
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	list := func(member string) []string {
		var out []string
		for _, v := range d[member].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	str := func(member string) string { s, _ := d[member].(string); return s }
	checked := map[string]bool{}
	check := func(member string, f func(t *testing.T)) {
		checked[member] = true
		t.Run(member, f)
	}
	noCheck := func(t *testing.T, member, value string) {
		t.Helper()
		t.Errorf("%s advertises %q, which this test does not exercise: add its check", member, value)
	}

	// One citizen login with every scope, the claims parameter, an explicit
	// response_mode and a ui_locale: the evidence several members share.
	// representation is exercised by a login of its own, acting for a
	// company (it never answers by single sign-on, which the checks of
	// this login's browser below rely on).
	allScopes := list("scopes_supported")
	loginScopes := slices.DeleteFunc(slices.Clone(allScopes), func(s string) bool { return s == idp.ScopeRepresentation })
	site, siteSecret := e.client(ClientSpec{Scope: strings.Join(allScopes, " "), GrantTypes: []string{"authorization_code", "refresh_token"}})
	r := e.rp(site, siteSecret, loginScopes...)
	if r.conf.Endpoint.AuthURL != str("authorization_endpoint") || r.conf.Endpoint.TokenURL != str("token_endpoint") {
		t.Fatalf("go-oidc read other endpoints: %+v", r.conf.Endpoint)
	}
	b := newBrowser()
	tok, idt := e.codeFlow(r, b, e.app, oauth2.SetAuthURLParam("response_mode", "query"),
		oauth2.SetAuthURLParam("claims", `{"id_token":{"birthdate":{"essential":true}}}`))
	var idClaims, uiClaims map[string]any
	_ = idt.Claims(&idClaims)
	ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo at %s: %v", str("userinfo_endpoint"), err)
	}
	_ = ui.Claims(&uiClaims)
	appTokens, err := e.app.Login(ctx)
	if err != nil {
		t.Fatalf("jwt-bearer: %v", err)
	}
	appIDClaims := jsonPart(t, appTokens.IDToken, 1)
	// CIBA: one approved backchannel login per delivery mode.
	ciba := cibaBothModes(t, e)
	var repIDClaims, repUIClaims map[string]any
	var repScopes []string
	if slices.Contains(allScopes, idp.ScopeRepresentation) {
		repTok, repIDT := representationLogin(t, e, e.rp(site, siteSecret, allScopes...))
		_ = repIDT.Claims(&repIDClaims)
		repUIClaims = jsonUserinfo(t, e.issuer, repTok.AccessToken)
		repScopes = strings.Fields(repTok.Extra("scope").(string))
	}

	check("issuer", func(t *testing.T) {
		if str("issuer") != e.issuer || idClaims["iss"] != e.issuer {
			t.Errorf("issuer %q, ID token iss %v, want %s", str("issuer"), idClaims["iss"], e.issuer)
		}
	})
	for _, m := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
		"pushed_authorization_request_endpoint", "introspection_endpoint", "revocation_endpoint", "end_session_endpoint"} {
		check(m, func(t *testing.T) {
			if !strings.HasPrefix(str(m), e.issuer+"/") {
				t.Errorf("%s = %q, not under the issuer", m, str(m))
			}
			// Each is exercised below or above; here: it exists.
			resp, err := http.Get(str(m))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode >= 500 {
				t.Errorf("GET %s: %d", str(m), resp.StatusCode)
			}
		})
	}
	check("scopes_supported", func(t *testing.T) {
		granted := append(strings.Fields(tok.Extra("scope").(string)), repScopes...)
		for _, s := range allScopes {
			if !slices.Contains(granted, s) {
				t.Errorf("scope %s requested, registered and not granted (%v)", s, granted)
			}
		}
		if slices.Contains(allScopes, "offline_access") && tok.RefreshToken == "" {
			t.Error("offline_access gave no refresh token")
		}
	})
	check("response_types_supported", func(t *testing.T) {
		for _, rt := range list("response_types_supported") {
			if rt != "code" {
				noCheck(t, "response_types_supported", rt)
			}
		}
		// code: the login above. Anything else is refused, not ignored.
		u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("response_type", "code id_token"))
		if b.showsLoginPage(t, u) {
			t.Error("response_type=code id_token was accepted")
		}
	})
	check("response_modes_supported", func(t *testing.T) {
		for _, m := range list("response_modes_supported") {
			if m != "query" { // query: the login above asked for it
				noCheck(t, "response_modes_supported", m)
			}
		}
		u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("response_mode", "form_post"), oauth2.SetAuthURLParam("prompt", "login"))
		if b.showsLoginPage(t, u) {
			t.Error("response_mode=form_post was accepted, but is not advertised")
		}
	})

	// Client authentication: one client per method (and per algorithm for
	// private_key_jwt), each authenticating at every endpoint that lists it.
	type authClient struct {
		id     string
		auth   func(form url.Values, aud string) (url.Values, string, string) // form, basic id, basic secret
		public bool
	}
	clients := map[string][]authClient{}
	for _, m := range list("token_endpoint_auth_methods_supported") {
		switch m {
		case "client_secret_basic", "client_secret_post":
			id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read", AuthMethod: m})
			if m == "client_secret_basic" {
				clients[m] = []authClient{{id: id, auth: func(f url.Values, _ string) (url.Values, string, string) { return f, id, secret }}}
			} else {
				clients[m] = []authClient{{id: id, auth: func(f url.Values, _ string) (url.Values, string, string) {
					f.Set("client_id", id)
					f.Set("client_secret", secret)
					return f, "", ""
				}}}
			}
		case "private_key_jwt":
			for _, alg := range list("token_endpoint_auth_signing_alg_values_supported") {
				method := jwt.GetSigningMethod(alg)
				var key any = newECKey(t)
				if strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS") {
					key = newRSAKey(t)
				}
				if method == nil {
					t.Errorf("token_endpoint_auth_signing_alg_values_supported: %s is no JWS algorithm", alg)
					continue
				}
				s := signer{"k-" + alg, key}
				id := e.jwtClientWith(publicJWKS(t, s), "")
				clients[m] = append(clients[m], authClient{id: id, auth: func(f url.Values, aud string) (url.Values, string, string) {
					f.Set("client_id", id)
					f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
					f.Set("client_assertion", assertion{method: method, key: s.key, kid: s.kid, clientID: id, aud: aud}.sign(t))
					return f, "", ""
				}})
			}
		case "none":
			id, _ := e.client(ClientSpec{Scope: "openid profile", AuthMethod: idp.AuthNone})
			clients[m] = []authClient{{id: id, public: true, auth: func(f url.Values, _ string) (url.Values, string, string) {
				f.Set("client_id", id)
				return f, "", ""
			}}}
		default:
			noCheck(t, "token_endpoint_auth_methods_supported", m)
		}
	}
	post := func(endpoint string, form url.Values, id, secret string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if id != "" {
			req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	// tokenFor gets an access token for c: client_credentials, or a code
	// flow for a public client.
	tokenFor := func(t *testing.T, c authClient) string {
		t.Helper()
		if c.public {
			a := newAuthRequest(e.issuer, c.id, "openid profile")
			form, id, secret := c.auth(a.codeForm(codeFrom(t, a, e.login(newBrowser(), a.url, e.app, nil))), str("token_endpoint"))
			st, body := post(str("token_endpoint"), form, id, secret)
			if st != http.StatusOK || body["access_token"] == nil {
				t.Fatalf("public client's code exchange: %d %v", st, body)
			}
			return body["access_token"].(string)
		}
		form, id, secret := c.auth(url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}, str("token_endpoint"))
		st, body := post(str("token_endpoint"), form, id, secret)
		if st != http.StatusOK || body["access_token"] == nil {
			t.Fatalf("client_credentials: %d %v", st, body)
		}
		return body["access_token"].(string)
	}
	tokens := map[string]string{}
	check("token_endpoint_auth_methods_supported", func(t *testing.T) {
		for _, cs := range clients {
			for _, c := range cs {
				tokens[c.id] = tokenFor(t, c)
			}
		}
	})
	check("token_endpoint_auth_signing_alg_values_supported", func(t *testing.T) {
		if got := len(clients["private_key_jwt"]); got != len(list("token_endpoint_auth_signing_alg_values_supported")) {
			t.Errorf("%d of the advertised assertion algorithms authenticated", got)
		}
	})
	endpointMethods := func(t *testing.T, member, endpoint string, ok func(st int, body map[string]any) bool) {
		t.Helper()
		for _, m := range list(member) {
			cs, known := clients[m]
			if !known {
				t.Errorf("%s lists %q, which the token endpoint does not", member, m)
				continue
			}
			for _, c := range cs {
				at := tokens[c.id]
				if at == "" {
					at = tokenFor(t, c)
				}
				form, id, secret := c.auth(url.Values{"token": {at}}, e.issuer)
				if st, body := post(endpoint, form, id, secret); !ok(st, body) {
					t.Errorf("%s at %s: %d %v", m, endpoint, st, body)
				}
			}
		}
	}
	check("introspection_endpoint_auth_methods_supported", func(t *testing.T) {
		endpointMethods(t, "introspection_endpoint_auth_methods_supported", str("introspection_endpoint"),
			func(st int, body map[string]any) bool { return st == http.StatusOK && body["active"] == true })
		// A public client is not advertised for introspection, and is refused.
		if c := clients["none"]; len(c) > 0 && !slices.Contains(list("introspection_endpoint_auth_methods_supported"), "none") {
			form, _, _ := c[0].auth(url.Values{"token": {tokenFor(t, c[0])}}, "")
			if st, body := post(str("introspection_endpoint"), form, "", ""); st == http.StatusOK && body["active"] == true {
				t.Error("a public client introspected a token")
			}
		}
	})
	check("introspection_endpoint_auth_signing_alg_values_supported", func(t *testing.T) {
		if !slices.Equal(list("introspection_endpoint_auth_signing_alg_values_supported"), list("token_endpoint_auth_signing_alg_values_supported")) {
			t.Error("introspection's algorithms differ from the token endpoint's, which the test exercises")
		}
	})
	check("revocation_endpoint_auth_methods_supported", func(t *testing.T) {
		endpointMethods(t, "revocation_endpoint_auth_methods_supported", str("revocation_endpoint"),
			func(st int, _ map[string]any) bool { return st == http.StatusOK })
	})
	check("revocation_endpoint_auth_signing_alg_values_supported", func(t *testing.T) {
		if !slices.Equal(list("revocation_endpoint_auth_signing_alg_values_supported"), list("token_endpoint_auth_signing_alg_values_supported")) {
			t.Error("revocation's algorithms differ from the token endpoint's, which the test exercises")
		}
	})

	check("grant_types_supported", func(t *testing.T) {
		for _, g := range list("grant_types_supported") {
			switch g {
			case "authorization_code": // the login above
			case "refresh_token":
				if _, err := refreshErr(r, tok.RefreshToken); err != nil {
					t.Errorf("refresh_token: %v", err)
				}
			case "client_credentials":
				if len(tokens) == 0 {
					t.Error("no client_credentials token")
				}
			case idp.GrantTypeCIBA:
				if ciba[idp.CIBAModePoll]["id_token"] == nil {
					t.Error("the CIBA grant gave no ID token")
				}
			case "urn:ietf:params:oauth:grant-type:jwt-bearer":
				if appTokens.AccessToken == "" {
					t.Error("jwt-bearer gave no access token")
				}
			default:
				noCheck(t, "grant_types_supported", g)
			}
		}
	})
	check("subject_types_supported", func(t *testing.T) {
		if !slices.Equal(list("subject_types_supported"), []string{"public"}) {
			noCheck(t, "subject_types_supported", strings.Join(list("subject_types_supported"), " "))
		}
		// public: the same sub at two clients.
		// The other client asks for openid alone: no personal data at all.
		other, otherSecret := e.client(ClientSpec{Scope: "openid"})
		_, idt2 := e.codeFlow(e.rp(other, otherSecret, "openid"), newBrowser(), e.app)
		if idt2.Subject != idt.Subject {
			t.Errorf("sub %q at one client, %q at another", idt.Subject, idt2.Subject)
		}
	})
	check("id_token_signing_alg_values_supported", func(t *testing.T) {
		for _, alg := range list("id_token_signing_alg_values_supported") {
			id, secret := e.client(ClientSpec{Scope: "openid profile", IDTokenAlg: alg})
			tk, _ := e.codeFlow(e.rp(id, secret, "openid", "profile"), newBrowser(), e.app) // verified against jwks_uri
			if got := headerOf(t, tk.Extra("id_token").(string))["alg"]; got != alg {
				t.Errorf("client registered for %s got an ID token signed %v", alg, got)
			}
		}
	})
	check("code_challenge_methods_supported", func(t *testing.T) {
		for _, m := range list("code_challenge_methods_supported") {
			if m != "S256" { // S256: every login here
				noCheck(t, "code_challenge_methods_supported", m)
			}
		}
		u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("code_challenge_method", "plain"), oauth2.SetAuthURLParam("prompt", "login"))
		if b.showsLoginPage(t, u) {
			t.Error("code_challenge_method=plain was accepted")
		}
	})
	check("claims_supported", func(t *testing.T) {
		for _, c := range list("claims_supported") {
			if idClaims[c] == nil && uiClaims[c] == nil && appIDClaims[c] == nil && repIDClaims[c] == nil && repUIClaims[c] == nil {
				t.Errorf("claim %s is in no ID token or userinfo answer of a login with every scope", c)
			}
		}
	})
	check("claims_parameter_supported", func(t *testing.T) {
		if d["claims_parameter_supported"] == true && idClaims["birthdate"] != demoCitizens[0].Birthdate {
			t.Errorf("claims parameter asked for birthdate in the ID token: %v", idClaims)
		}
	})
	check("require_pushed_authorization_requests", func(t *testing.T) {
		if d["require_pushed_authorization_requests"] != false {
			t.Fatal("PAR required for every client: the logins above did not use it")
		}
		// And PAR works when used.
		a := newAuthRequest(e.issuer, site, "openid")
		q, _ := url.Parse(a.url)
		form := q.Query()
		form.Del("client_id")
		uri := pushRequest(t, e.issuer, site, siteSecret, form)
		if !newBrowser().showsLoginPage(t, str("authorization_endpoint")+"?"+url.Values{"client_id": {site}, "request_uri": {uri}}.Encode()) {
			t.Error("a pushed request does not start a login")
		}
	})
	for _, m := range []string{"request_parameter_supported", "request_uri_parameter_supported"} {
		check(m, func(t *testing.T) {
			if d[m] != false {
				noCheck(t, m, "true")
			}
		})
	}
	check("acr_values_supported", func(t *testing.T) {
		for _, v := range list("acr_values_supported") {
			l, err := idp.ParseLevel(v)
			if err != nil {
				t.Errorf("%s: %v", v, err)
				continue
			}
			u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("acr_values", v), oauth2.SetAuthURLParam("prompt", "login"))
			_, got := e.exchange(r, e.login(newBrowser(), u, e.app, nil), state, nonce, verifier)
			var c struct {
				ACR string `json:"acr"`
			}
			_ = got.Claims(&c)
			if lv, _ := idp.ParseLevel(c.ACR); lv.Rank() < l.Rank() {
				t.Errorf("acr_values=%s gave acr %q", v, c.ACR)
			}
		}
	})
	check("ui_locales_supported", func(t *testing.T) {
		for _, loc := range list("ui_locales_supported") {
			u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("ui_locales", loc), oauth2.SetAuthURLParam("prompt", "login"))
			resp, err := b.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), `<html lang="`+loc+`"`) {
				t.Errorf("ui_locales=%s: the page is not in %s", loc, loc)
			}
		}
	})
	check("authorization_response_iss_parameter_supported", func(t *testing.T) {
		// e.exchange checked iss on every redirect above.
		if d["authorization_response_iss_parameter_supported"] != true {
			t.Error("iss is sent but not advertised")
		}
	})
	check("prompt_values_supported", func(t *testing.T) {
		for _, p := range list("prompt_values_supported") {
			u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("prompt", p))
			resp, err := b.Get(u) // b holds a session from the first login
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			page := resp.StatusCode == http.StatusOK && strings.Contains(string(body), `id="eid-qr"`)
			silent := resp.StatusCode/100 == 3 && loc.Query().Get("code") != ""
			switch p {
			case "none", "select_account":
				if !silent {
					t.Errorf("prompt=%s with a session: %d %s", p, resp.StatusCode, loc)
				}
			case "login", "consent":
				if !page {
					t.Errorf("prompt=%s did not ask the app", p)
				}
			default:
				noCheck(t, "prompt_values_supported", p)
			}
		}
	})

	check("authorization_details_types_supported", func(t *testing.T) {
		for _, typ := range list("authorization_details_types_supported") {
			if typ != idp.AuthorizationDetailsType {
				noCheck(t, "authorization_details_types_supported", typ)
				continue
			}
			details := `[{"type":"` + typ + `","items":["family_name"]}]`
			tk, _ := e.codeFlow(r, newBrowser(), e.app, oauth2.SetAuthURLParam("authorization_details", details), oauth2.SetAuthURLParam("prompt", "login"))
			granted, _ := json.Marshal(tk.Extra("authorization_details"))
			if !strings.Contains(string(granted), `"family_name"`) || !strings.Contains(string(granted), typ) {
				t.Errorf("authorization_details of type %s: granted %s", typ, granted)
			}
		}
	})

	// Back-channel logout, with sid: a registered RP receives a logout
	// token naming the ID token's session (backchannel_test.go).
	var bclSID string
	var bclRcv *bclRP
	check("backchannel_logout_supported", func(t *testing.T) {
		if d["backchannel_logout_supported"] != true {
			t.Fatal("not advertised")
		}
		bclRcv = newBCLRP(t)
		id, secret := e.bclClient(t, bclRcv, ClientSpec{Scope: "openid", GrantTypes: []string{"authorization_code"}})
		bb := newBrowser()
		tk, idt := e.codeFlow(e.rp(id, secret, "openid"), bb, e.app)
		hint, _ := tk.Extra("id_token").(string)
		resp, err := bb.Get(e.issuer + "/logout?" + url.Values{"id_token_hint": {hint}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		bclSID = sidOf(t, idt)
		bclRcv.waitSID(t, bclSID)
	})
	check("backchannel_logout_session_supported", func(t *testing.T) {
		if d["backchannel_logout_session_supported"] != true || bclSID == "" {
			t.Fatal("not advertised, or no logout token was received")
		}
		// waitSID above matched the logout token's sid to the ID token's.
	})

	check("dpop_signing_alg_values_supported", func(t *testing.T) {
		id, secret := e.client(ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
		for _, alg := range list("dpop_signing_alg_values_supported") {
			c := &dpopClient{alg: jose.SignatureAlgorithm(alg)}
			var err error
			switch alg {
			case "ES256":
				c.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			case "PS256":
				c.key, err = rsa.GenerateKey(rand.Reader, 2048)
			default:
				noCheck(t, "dpop_signing_alg_values_supported", alg)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			r := dpopToken(t, e.issuer, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}, c)
			if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, r.str("access_token")) != c.jkt(t) {
				t.Errorf("DPoP proof with %s: %d %v", alg, r.status, r.body)
			}
		}
	})

	check("backchannel_authentication_endpoint", func(t *testing.T) {
		if str("backchannel_authentication_endpoint") != e.issuer+web.PathBCAuthorize || ciba[idp.CIBAModePoll]["access_token"] == nil {
			t.Errorf("backchannel_authentication_endpoint %q, poll-mode tokens %v", str("backchannel_authentication_endpoint"), ciba[idp.CIBAModePoll])
		}
	})
	check("backchannel_token_delivery_modes_supported", func(t *testing.T) {
		for _, m := range list("backchannel_token_delivery_modes_supported") {
			if ciba[m] == nil || ciba[m]["access_token"] == nil {
				noCheck(t, "backchannel_token_delivery_modes_supported", m)
			}
		}
	})
	check("backchannel_user_code_parameter_supported", func(t *testing.T) {
		if d["backchannel_user_code_parameter_supported"] != false {
			t.Errorf("user code advertised: %v", d["backchannel_user_code_parameter_supported"])
		}
		c := e.cibaClient(idp.CIBAModePoll, "")
		if st, out := c.start(demoCitizens[0].PersonalID, "x", "user_code", "1234"); out["error"] != "invalid_request" {
			t.Errorf("user_code accepted: %d %v", st, out)
		}
	})
	check("registration_endpoint", func(t *testing.T) {
		// RFC 7591 with an operator's initial access token; the client
		// registered is pending until approved, then works.
		createAgencies(t, e.m, "DISC-AG")
		reg := register(t, e, issue(t, e, "DISC-AG", 1), map[string]any{"client_name": "Discovered",
			"grant_types": []string{"client_credentials"}, "scope": "registry.read"})
		if reg.uri != str("registration_endpoint")+"/"+reg.id {
			t.Errorf("registration_client_uri %q is not under %q", reg.uri, str("registration_endpoint"))
		}
		if _, err := e.m.ApproveClient(ctx, reg.id, digestOf(t, e, reg.id), nil, nil, "op"); err != nil {
			t.Fatal(err)
		}
		cc := clientcredentials.Config{ClientID: reg.id, ClientSecret: reg.secret, TokenURL: str("token_endpoint"), AuthStyle: oauth2.AuthStyleInHeader}
		if _, err := cc.Token(ctx); err != nil {
			t.Errorf("approved registered client: %v", err)
		}
	})

	check("onedoor_profiles_supported", func(t *testing.T) {
		for _, p := range list("onedoor_profiles_supported") {
			if p != idp.ProfileFAPI2 {
				noCheck(t, "onedoor_profiles_supported", p)
				continue
			}
			// A fapi2 client's whole flow; TestFAPI2_* has the refusals.
			f := newFAPI2Client(t, e, &clock{})
			code, verifier := f.login(t, true)
			if r := f.exchange(t, code, verifier, f.dpop); r.status != http.StatusOK || r.str("token_type") != "DPoP" {
				t.Errorf("fapi2 exchange: %d %v", r.status, r.body)
			}
		}
	})

	for m := range d {
		if !checked[m] {
			t.Errorf("discovery member %q has no check in this test: exercise what it advertises", m)
		}
	}
}

// representationLogin logs demo citizen 1 in to r acting for a (fake)
// company they are the legal representative of.
func representationLogin(t *testing.T, e *testEnv, r *rp) (*oauth2.Token, *gooidc.IDToken) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.m.Represent.Store.PutOrganisations(ctx, []*represent.Organisation{{TaxCode: "0100000081",
		Name: "Công ty TNHH Khám Phá (giả)", NameEn: "Discovery Co. (fake)", LegalRepresentative: demoCitizens[0].PersonalID,
		Status: represent.OrgActive}}); err != nil {
		t.Fatal(err)
	}
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r)
	payload, statusURL := b.loginPage(t, u)
	if _, err := e.app.ApproveAs(ctx, payload, pick(payload), false, nil, "0100000081"); err != nil {
		t.Fatalf("approve as the company: %v", err)
	}
	_, next := b.status(t, statusURL)
	return e.exchange(r, b.follow(t, next), state, nonce, verifier)
}

// jsonUserinfo is the userinfo answer to a bearer token.
func jsonUserinfo(t *testing.T, issuer, tok string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo: %d %v", resp.StatusCode, err)
	}
	return out
}
