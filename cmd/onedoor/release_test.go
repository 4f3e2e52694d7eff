package main

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// personal claims: every claim the registry can supply, and its companion.
var personalClaims = append([]string{"phone_number_verified"}, idp.KnownClaims...)

// pageBody GETs an authorization URL in b and returns the login page.
func (b *browser) pageBody(t *testing.T, u string) string {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `id="eid-qr"`) {
		t.Fatalf("authorize: status %d, Location %q, want the login page", resp.StatusCode, resp.Header.Get("Location"))
	}
	return string(body)
}

// personalIn lists the personal claims present in a claim set, sorted.
func personalIn(claims map[string]any) []string {
	var out []string
	for _, n := range personalClaims {
		if _, ok := claims[n]; ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func userinfo(t *testing.T, r *rp, tok *oauth2.Token) map[string]any {
	t.Helper()
	ui, err := r.provider.UserInfo(context.Background(), oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var got map[string]any
	if err := ui.Claims(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

func idTokenClaims(t *testing.T, idt *gooidc.IDToken) map[string]any {
	t.Helper()
	var got map[string]any
	if err := idt.Claims(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// A curious agency registered for `openid profile` tries every request
// parameter to obtain the personal identification number. It is never shown
// to the citizen (login page, the app's view), never approvable, and never
// released (userinfo, ID token). An essential claim outside the allowance is
// dropped, not an error: OIDC Core 5.5.1 forbids an error when a requested
// claim, essential or not, is not returned.
func TestRelease_RequestCannotWidenAllowance(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	// The login page's labels (Vietnamese, the default).
	personalID, phone := "Số định danh cá nhân", "Số điện thoại"

	const wantPersonalID = `{"userinfo":{"personal_id":{"essential":true},"phone_number":{"essential":true}},"id_token":{"personal_id":{"essential":true},"phone_number":null}}`

	for _, tt := range []struct {
		name  string
		extra []oauth2.AuthCodeOption
		par   bool
	}{
		{"claims parameter, userinfo and id_token, essential", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("claims", wantPersonalID)}, false},
		{"acr_values naming claims", []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", "personal_id eid "+string(idp.LevelSubstantial))}, false},
		{"claims pushed with PAR and added again on the query", nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newBrowser()
			u, state, nonce, verifier := authorizeURL(r, tt.extra...)
			if tt.par {
				pu, _ := url.Parse(u)
				form := pu.Query()
				form.Set("claims", wantPersonalID)
				// The query carries its own claims too: a merge must not widen.
				u = e.issuer + "/authorize?" + url.Values{"client_id": {id}, "request_uri": {pushRequest(t, e.issuer, id, secret, form)}, "claims": {wantPersonalID}}.Encode()
			}
			body := b.pageBody(t, u)
			if strings.Contains(body, personalID) || strings.Contains(body, phone) {
				t.Error("the login page shows a claim the client may not receive")
			}
			m := qrRE.FindStringSubmatch(body)
			noteLoginPage([]byte(body))
			payload, statusURL := html.UnescapeString(m[1]), html.UnescapeString(m[2])
			view, err := e.app.Fetch(context.Background(), payload)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range view.Claims {
				if !slices.Contains(idp.ScopeClaims(idp.ScopeProfile), c.Name) {
					t.Errorf("the app is shown %q", c.Name)
				}
			}
			// A modified app cannot slip the claim into its approval.
			if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, []string{"name", "personal_id"}); err == nil {
				t.Fatal("an approval sharing personal_id was accepted")
			}
			if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, nil); err != nil {
				t.Fatal(err)
			}
			_, next := b.status(t, statusURL)
			tok, idt := e.exchange(r, b.follow(t, next), state, nonce, verifier)
			if got := personalIn(idTokenClaims(t, idt)); len(got) != 0 {
				t.Errorf("ID token carries %v", got)
			}
			ui := userinfo(t, r, tok)
			for _, n := range []string{"personal_id", "phone_number"} {
				if ui[n] != nil {
					t.Errorf("userinfo released %s: %v", n, personalIn(ui))
				}
			}
			if ui["name"] == nil {
				t.Errorf("userinfo lacks the allowed, shared name: %v", personalIn(ui))
			}

			// Silent SSO in the same browser with the same trick releases
			// no more.
			u, state, nonce, verifier = authorizeURL(r, oauth2.SetAuthURLParam("claims", wantPersonalID))
			tok, idt = e.exchange(r, b.follow(t, u), state, nonce, verifier)
			if got := personalIn(idTokenClaims(t, idt)); len(got) != 0 {
				t.Errorf("silent SSO: ID token carries %v", got)
			}
			if ui := userinfo(t, r, tok); ui["personal_id"] != nil || ui["phone_number"] != nil {
				t.Errorf("silent SSO: userinfo released %v", personalIn(ui))
			}
		})
	}

	// A scope the client did not register is refused by fosite.
	t.Run("unregistered scope", func(t *testing.T) {
		r2 := e.rp(id, secret, gooidc.ScopeOpenID, "profile", "eid")
		u, _, _, _ := authorizeURL(r2)
		if loc := newBrowser().follow(t, u); loc.Query().Get("error") != "invalid_scope" {
			t.Errorf("scope eid on a profile client: %v", loc)
		}
	})
}

// An operator lets a client receive one claim beyond its scopes with
// `client create --claims`: the claims parameter may then ask for it.
func TestRelease_ExplicitClaims(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid", Claims: []string{"phone_number"}})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"userinfo":{"phone_number":{"essential":true},"name":{"essential":true}}}`))
	payload, _ := b.loginPage(t, u)
	view, err := e.app.Fetch(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(view.Claims) != 1 || view.Claims[0] != (eid.ClaimRequest{Name: "phone_number"}) {
		t.Fatalf("the app is shown %+v, want phone_number, required", view.Claims)
	}
	tok, _ := e.exchange(r, e.login(b, u, e.app, nil), state, nonce, verifier)
	if got := personalIn(userinfo(t, r, tok)); strings.Join(got, " ") != "phone_number phone_number_verified" {
		t.Errorf("userinfo released %v, want the phone number only", got)
	}
}

// Narrowing a client takes effect at once: tokens issued before, and silent
// SSO after, release only what the client may receive now.
func TestRelease_OperatorNarrowsClient(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testOperatorNarrowsClient(t, startMain(t)) })
	t.Run("PostgresRedis", func(t *testing.T) { testOperatorNarrowsClient(t, startMain(t, scaleOption(t))) })
}

func testOperatorNarrowsClient(t *testing.T, e *testEnv) {
	id, secret := e.client(ClientSpec{Scope: "openid profile eid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", "eid")
	b := newBrowser()
	tok, _ := e.codeFlow(r, b, e.app)
	if ui := userinfo(t, r, tok); ui["personal_id"] == nil || ui["name"] == nil {
		t.Fatalf("before narrowing: userinfo %v", personalIn(ui))
	}
	ctx := context.Background()
	if err := e.m.Store.DeleteClient(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, secret, err := e.m.CreateClient(ctx, ClientSpec{ID: id, Name: "Test agency", Scope: "openid profile", RedirectURIs: []string{"http://127.0.0.1:9/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	if ui := userinfo(t, r, tok); ui["personal_id"] != nil || ui["name"] == nil {
		t.Errorf("a token issued before narrowing still releases %v", personalIn(ui))
	}
	r = e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"id_token":{"personal_id":{"essential":true}}}`))
	tok, idt := e.exchange(r, b.follow(t, u), state, nonce, verifier)
	if idTokenClaims(t, idt)["personal_id"] != nil || userinfo(t, r, tok)["personal_id"] != nil {
		t.Error("silent SSO after narrowing released the personal id")
	}
}

// Claims requested under id_token go into the ID token (OIDC Core 5.5),
// bounded by the registration and by what the citizen shared, and nothing
// else personal does.
func TestRelease_IDTokenClaims(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile address"})
	r := e.rp(id, secret, gooidc.ScopeOpenID)
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("claims",
		`{"id_token":{"birthdate":{"essential":true},"address":null,"gender":null,"personal_id":{"essential":true}},"userinfo":{"name":null}}`))
	// The citizen shares the birthdate (required), the address and the
	// name, not the gender.
	tok, idt := e.exchange(r, e.login(b, u, e.app, []string{"birthdate", "address", "name"}), state, nonce, verifier)
	claims := idTokenClaims(t, idt) // verified by go-oidc in exchange
	if got := personalIn(claims); strings.Join(got, " ") != "address birthdate" {
		t.Errorf("ID token personal claims = %v, want address and birthdate", got)
	}
	if claims["birthdate"] != demoCitizens[0].Birthdate {
		t.Errorf("birthdate = %v, want the registry's %s", claims["birthdate"], demoCitizens[0].Birthdate)
	}
	if a, _ := claims["address"].(map[string]any); a["formatted"] != demoCitizens[0].Address {
		t.Errorf("address = %v", claims["address"])
	}
	if got := personalIn(userinfo(t, r, tok)); strings.Join(got, " ") != "address birthdate name" {
		t.Errorf("userinfo = %v", got)
	}
	// Without an id_token member the ID token stays free of personal data.
	u, state, nonce, verifier = authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"userinfo":{"birthdate":null}}`))
	_, idt = e.exchange(r, b.follow(t, u), state, nonce, verifier)
	if got := personalIn(idTokenClaims(t, idt)); len(got) != 0 {
		t.Errorf("ID token without an id_token request carries %v", got)
	}
}

// The approval the app signed is kept with the consent record, and verifies
// with the device key long after the login.
func TestRelease_GrantKeepsEvidence(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testGrantKeepsEvidence(t, startMain(t)) })
	t.Run("PostgresRedis", func(t *testing.T) { testGrantKeepsEvidence(t, startMain(t, scaleOption(t))) })
}

func testGrantKeepsEvidence(t *testing.T, e *testEnv) {
	id, secret := e.client(ClientSpec{Scope: "openid profile eid"})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", "eid")
	u, state, nonce, verifier := authorizeURL(r)
	_, idt := e.exchange(r, e.login(newBrowser(), u, e.app, []string{"personal_id", "birthdate"}), state, nonce, verifier)
	ctx := context.Background()
	g, err := e.m.Consent.Remembered(ctx, idt.Subject, id, "login")
	if err != nil || g == nil {
		t.Fatalf("consent record: %v, %v", g, err)
	}
	if g.Evidence == "" {
		t.Fatal("the consent keeps no evidence")
	}
	dev, err := e.m.Store.GetDevice(ctx, e.app.Enrollment().DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := eid.VerifyEvidence(g.Evidence, e.issuer, dev, g.UpdatedAt)
	if err != nil {
		t.Fatalf("evidence does not verify with the device key: %v", err)
	}
	if c.Decision != eid.DecisionApprove || !slices.Equal(c.Claims, []string{"personal_id", "birthdate"}) {
		t.Errorf("evidence = %+v", c)
	}
	sorted := slices.Clone(c.Claims)
	sort.Strings(sorted)
	got := slices.Clone(g.Items)
	sort.Strings(got)
	if !slices.Equal(sorted, got) {
		t.Errorf("consent items %v differ from the evidence's %v", g.Items, c.Claims)
	}
	if c.ClientID != id || c.Purpose != "login" {
		t.Errorf("evidence names client %q purpose %q, want %q login", c.ClientID, c.Purpose, id)
	}
}

// A refresh re-issues the ID token: the registry claims in it are narrowed
// to what the client may receive now, like userinfo.
func TestRelease_RefreshedIDTokenNarrowed(t *testing.T) {
	e := startMain(t)
	spec := ClientSpec{Scope: "openid profile offline_access", Claims: []string{idp.ClaimPersonalID}, GrantTypes: []string{"authorization_code", "refresh_token"}}
	id, secret := e.client(spec)
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"id_token":{"personal_id":{"essential":true}}}`))
	tok, idt := e.exchange(r, e.login(newBrowser(), u, e.app, nil), state, nonce, verifier)
	if idTokenClaims(t, idt)["personal_id"] == nil || tok.RefreshToken == "" {
		t.Fatalf("before narrowing: ID token %v, refresh token %t", personalIn(idTokenClaims(t, idt)), tok.RefreshToken != "")
	}
	refreshed := func(r *rp, rt string) map[string]any {
		t.Helper()
		next := refresh(t, r, rt)
		raw, _ := next.Extra("id_token").(string)
		idt, err := r.verifier.Verify(context.Background(), raw)
		if err != nil {
			t.Fatalf("refreshed ID token: %v", err)
		}
		tok.RefreshToken = next.RefreshToken
		return idTokenClaims(t, idt)
	}
	if c := refreshed(r, tok.RefreshToken); c["personal_id"] == nil {
		t.Fatalf("refresh before narrowing dropped the personal id: %v", personalIn(c))
	}
	// The operator takes the personal id away from the client (deleting
	// and registering it again would end its refresh families too).
	if _, err := e.m.DB.ExecContext(context.Background(), `UPDATE idp_clients SET claims = '[]' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // the client cache sees the change within ClientMaxStale
	for {
		c := refreshed(r, tok.RefreshToken)
		if c["personal_id"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a refresh after narrowing still puts the personal id in the ID token: %v", personalIn(c))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An ID token's or userinfo's release is rechecked against its consent
// when it is logged, in the append's transaction (AppendRelease), as the
// broker's is: a consent that no longer allows it there (withdrawn between
// the release policy's check and the append, or, as here, no longer the
// consent of this client's agency) sends nothing, and the client gets an
// OAuth error, not a 500: invalid_token at userinfo, invalid_grant at the
// refresh.
func TestRelease_RecheckedWhenLogged(t *testing.T) {
	e := startMain(t)
	spec := ClientSpec{Scope: "openid profile offline_access", Claims: []string{idp.ClaimPersonalID}, GrantTypes: []string{"authorization_code", "refresh_token"}}
	id, secret := e.client(spec)
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"id_token":{"personal_id":{"essential":true}}}`))
	tok, idt := e.exchange(r, e.login(newBrowser(), u, e.app, nil), state, nonce, verifier)
	if ui := userinfo(t, r, tok); ui["name"] == nil {
		t.Fatalf("before: userinfo %v", personalIn(ui))
	}
	ctx := context.Background()
	res, err := e.m.DB.ExecContext(ctx, `UPDATE consent_records SET agency = 'T-ANOTHER' WHERE client_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatal("the login recorded no consent")
	}
	before, _, err := e.m.Consent.Store.ListEntries(ctx, consent.EntryQuery{CitizenID: idt.Subject, Page: consent.Page{Limit: consent.MaxLimit}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("userinfo after the consent no longer allows it: %v, want 401 invalid_token", err)
	}
	_, err = refreshErr(r, tok.RefreshToken)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh after the consent no longer allows it: %v, want invalid_grant", err)
	}
	after, _, err := e.m.Consent.Store.ListEntries(ctx, consent.EntryQuery{CitizenID: idt.Subject, Page: consent.Page{Limit: consent.MaxLimit}})
	if err != nil || len(after) != len(before) {
		t.Errorf("releases logged: %d entries, was %d (%v)", len(after), len(before), err)
	}
}
