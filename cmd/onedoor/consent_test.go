package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

// The purposes the consent tests' agency registers.
var (
	purposeTax     = consent.Purpose{Code: "tax", Text: "Khai thuế thu nhập cá nhân"}
	purposeBenefit = consent.Purpose{Code: "benefit", Text: "Xin trợ cấp xã hội"}
)

// consentClient registers an agency asking for profile and phone claims
// for two purposes, with refresh tokens.
func (e *testEnv) consentClient() (id, secret string) {
	e.t.Helper()
	return e.client(ClientSpec{Name: "Cục Thuế", Scope: "openid profile phone offline_access",
		GrantTypes: []string{"authorization_code", "refresh_token"}, Purposes: []consent.Purpose{purposeTax, purposeBenefit}})
}

// consentPage is what the login page shows about a login.
type consentPage struct {
	payload, statusURL string
	recipient, purpose string
	required, optional []string
}

var (
	claimItemRE = regexp.MustCompile(`<li data-claim="([a-z_]+)">[^<]*(?:<span class="muted">|<strong class="required">)`)
	recipientRE = regexp.MustCompile(`id="client-name">([^<]*)<`)
	purposeRE   = regexp.MustCompile(`id="purpose">([^<]*)<`)
)

// openLogin opens an authorization URL and reads the login page.
func openConsentLogin(t *testing.T, b *browser, authURL string) *consentPage {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	m := qrRE.FindSubmatch(body)
	noteLoginPage(body)
	if m == nil {
		t.Fatalf("no login page: %.300s", body)
	}
	p := &consentPage{payload: html.UnescapeString(string(m[1])), statusURL: html.UnescapeString(string(m[2]))}
	if m := recipientRE.FindSubmatch(body); m != nil {
		p.recipient = html.UnescapeString(string(m[1]))
	}
	if m := purposeRE.FindSubmatch(body); m != nil {
		p.purpose = html.UnescapeString(string(m[1]))
	}
	for _, li := range strings.Split(string(body), "</li>") {
		if m := claimItemRE.FindStringSubmatch(li); m != nil {
			if strings.Contains(li, `class="required"`) {
				p.required = append(p.required, m[1])
			} else {
				p.optional = append(p.optional, m[1])
			}
		}
	}
	return p
}

// approveOn answers the login the page shows in app, sharing share, and
// follows the browser back to the client.
func approveOn(t *testing.T, b *browser, p *consentPage, app *eidapp.App, share []string) *url.URL {
	t.Helper()
	if _, err := app.Approve(context.Background(), p.payload, pick(p.payload), false, share); err != nil {
		t.Fatalf("approve: %v", err)
	}
	st, next := b.status(t, p.statusURL)
	if st != "approved" {
		t.Fatalf("status after approval = %q", st)
	}
	return b.follow(t, next)
}

func sortedKeys(m map[string]any) []string {
	out := personalIn(m)
	sort.Strings(out)
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// entries lists a citizen's access log, newest first.
func entries(t *testing.T, m *Main, citizen string) []*consent.Entry {
	t.Helper()
	es, _, err := m.ConsentStore.ListEntries(context.Background(), consent.EntryQuery{CitizenID: citizen, Page: consent.Page{Limit: consent.MaxLimit}})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// verifyReceipt checks a consent receipt against the issuer's JWKS and
// returns its claims.
func verifyReceipt(t *testing.T, issuer, receipt string) map[string]any {
	t.Helper()
	sig, err := jose.ParseSignedCompact(receipt, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("receipt: %v", err)
	}
	if typ := sig.Signatures[0].Header.ExtraHeaders["typ"]; typ != consent.ReceiptType {
		t.Errorf("receipt typ %v", typ)
	}
	resp, err := http.Get(issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	keys := set.Key(sig.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("receipt kid not in the JWKS")
	}
	payload, err := sig.Verify(keys[0].Public())
	if err != nil {
		t.Fatalf("receipt does not verify with the JWKS: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConsent_LoginSharesASubset: an agency asks for claims; the citizen
// shares a subset in the app (eidapp) after seeing the purpose, the
// recipient and which claims are required; the ID token and userinfo hold
// exactly that subset; the consent record keeps the signed approval, the
// relying party receives the signed receipt, and every release is in the
// access log. A second login for the same purpose and claims is silent; a
// new claim asks again.
func TestConsent_LoginSharesASubset(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testConsentLogin(t, startMain(t)) })
	t.Run("PostgresRedis", func(t *testing.T) { testConsentLogin(t, startMain(t, scaleOption(t))) })
}

func testConsentLogin(t *testing.T, e *testEnv) {
	ctx := context.Background()
	id, secret := e.consentClient()
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", "phone", gooidc.ScopeOfflineAccess)
	b := newBrowser()
	claimsParam := oauth2.SetAuthURLParam("claims", `{"id_token":{"name":null,"birthdate":null,"gender":null},"userinfo":{"birthdate":{"essential":true}}}`)
	u, state, nonce, verifier := authorizeURL(r, claimsParam)
	p := openConsentLogin(t, b, u)
	if p.recipient != "Cục Thuế" || p.purpose != purposeTax.Text {
		t.Errorf("login page shows recipient %q purpose %q", p.recipient, p.purpose)
	}
	if !slices.Equal(p.required, []string{"birthdate"}) || !slices.Contains(p.optional, "name") || !slices.Contains(p.optional, "phone_number") {
		t.Errorf("login page: required %v, optional %v", p.required, p.optional)
	}
	// The app shows the same list, purpose and recipient.
	v, err := e.app.Fetch(ctx, p.payload)
	if err != nil {
		t.Fatal(err)
	}
	var appRequired, appOptional []string
	for _, c := range v.Claims {
		if c.Optional {
			appOptional = append(appOptional, c.Name)
		} else {
			appRequired = append(appRequired, c.Name)
		}
	}
	if v.ClientName != p.recipient || v.Purpose != p.purpose || v.PurposeCode != purposeTax.Code ||
		!slices.Equal(appRequired, p.required) || !slices.Equal(appOptional, p.optional) {
		t.Errorf("the app shows %+v; the page %+v", v, p)
	}
	// The citizen shares name and birthdate, declines the rest.
	shared := []string{"name", "birthdate"}
	tok, idt := e.exchange(r, approveOn(t, b, p, e.app, shared), state, nonce, verifier)
	if got := sortedKeys(idTokenClaims(t, idt)); !slices.Equal(got, []string{"birthdate", "name"}) {
		t.Errorf("ID token carries %v, want birthdate and name", got)
	}
	if got := sortedKeys(userinfo(t, r, tok)); !slices.Equal(got, []string{"birthdate", "name"}) {
		t.Errorf("userinfo answers %v, want birthdate and name", got)
	}

	// The consent record, with the signed approval as evidence.
	rec, err := e.m.Consent.Remembered(ctx, idt.Subject, id, purposeTax.Code)
	if err != nil || rec == nil {
		t.Fatalf("consent record: %v, %v", rec, err)
	}
	if !slices.Equal(rec.Items, shared) || !slices.Contains(rec.Declined, "phone_number") || rec.Method != consent.MethodEIDApp ||
		rec.Recipient != "Cục Thuế" || rec.Purpose != purposeTax {
		t.Errorf("consent record %+v", rec)
	}
	dev, err := e.m.Store.GetDevice(ctx, e.app.Enrollment().DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := eid.VerifyEvidence(rec.Evidence, e.issuer, dev, rec.UpdatedAt)
	if err != nil || ev.ClientID != id || ev.Purpose != purposeTax.Code || !slices.Equal(ev.Claims, shared) {
		t.Errorf("evidence: %+v, %v", ev, err)
	}
	// The relying party received the signed receipt of this consent.
	receipt, _ := tok.Extra("consent_receipt").(string)
	if receipt == "" {
		t.Fatal("token response without consent_receipt")
	}
	rc := verifyReceipt(t, e.issuer, receipt)
	if c, _ := rc["consent"].(map[string]any); c["id"] != rec.ID || rc["sub"] != idt.Subject || rc["event"] != "granted" {
		t.Errorf("receipt claims %v", rc)
	}

	// Every release is in the citizen's log, before it left: the ID token
	// and the userinfo answer.
	log := entries(t, e.m, idt.Subject)
	if len(log) != 2 || log[0].Channel != consent.ChannelUserInfo || log[1].Channel != consent.ChannelIDToken {
		t.Fatalf("access log %v", channels(log))
	}
	for _, en := range log {
		if en.ConsentID != rec.ID || en.Purpose != purposeTax.Code || en.Actor.ClientID != id || en.Outcome != consent.OutcomeReleased ||
			!slices.Equal(sortedCopy(en.Items), []string{"birthdate", "name"}) {
			t.Errorf("log entry %+v", en)
		}
	}
	// A refresh re-issues the ID token: logged too.
	next := refresh(t, r, tok.RefreshToken)
	if raw, _ := next.Extra("id_token").(string); raw == "" {
		t.Fatal("refresh without an ID token")
	}
	if log := entries(t, e.m, idt.Subject); len(log) != 3 || log[0].Channel != consent.ChannelIDToken {
		t.Errorf("after a refresh the log is %v", channels(log))
	}
	// The eID app's own tokens are the citizen's own data for the citizen:
	// no third party, no entry.
	if _, err := e.app.Login(ctx); err != nil {
		t.Fatal(err)
	}
	if log := entries(t, e.m, idt.Subject); len(log) != 3 {
		t.Errorf("the eID app's own login was logged: %v", channels(log))
	}

	// The same purpose and claims again: silent, same subset.
	u, state, nonce, verifier = authorizeURL(r, claimsParam)
	loc := b.follow(t, u)
	if loc.Query().Get("code") == "" {
		t.Fatalf("a second login for the same purpose and claims was not silent: %v", loc)
	}
	_, idt2 := e.exchange(r, loc, state, nonce, verifier)
	if got := sortedKeys(idTokenClaims(t, idt2)); !slices.Equal(got, []string{"birthdate", "name"}) {
		t.Errorf("silent login ID token carries %v", got)
	}
	// A claim the citizen was never asked about asks again.
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"userinfo":{"birthdate":{"essential":true},"given_name":{"essential":true}}}`))
	if !b.showsLoginPage(t, u) {
		t.Error("a new claim did not ask the citizen again")
	}
	// Another purpose asks again too.
	u, _, _, _ = authorizeURL(r, claimsParam, oauth2.SetAuthURLParam("authorization_details", `[{"type":"onedoor_personal_data","purpose":"benefit","items":["name"]}]`))
	if !b.showsLoginPage(t, u) {
		t.Error("another purpose did not ask the citizen again")
	}
}

func channels(es []*consent.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s%v", e.Channel, e.Items))
	}
	return out
}

// TestConsent_AuthorizationDetails: RFC 9396 authorization_details narrow
// a login to what one transaction needs, for a registered purpose; they
// never widen what the client may receive, at /authorize or /par.
func TestConsent_AuthorizationDetails(t *testing.T) {
	e := startMain(t)
	id, secret := e.consentClient()
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", "phone")
	b := newBrowser()
	ad := func(s string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("authorization_details", s) }

	u, state, nonce, verifier := authorizeURL(r, ad(`[{"type":"onedoor_personal_data","purpose":"benefit","items":["family_name"]}]`))
	p := openConsentLogin(t, b, u)
	if p.purpose != purposeBenefit.Text || !slices.Equal(p.required, []string{"family_name"}) || len(p.optional) != 0 {
		t.Errorf("narrowed login page: purpose %q, required %v, optional %v", p.purpose, p.required, p.optional)
	}
	tok, idt := e.exchange(r, approveOn(t, b, p, e.app, nil), state, nonce, verifier)
	if got := sortedKeys(userinfo(t, r, tok)); !slices.Equal(got, []string{"family_name"}) {
		t.Errorf("userinfo after a narrowed login: %v", got)
	}
	// RFC 9396 section 7: the token response returns what was granted.
	granted, _ := json.Marshal(tok.Extra("authorization_details"))
	if string(granted) != `[{"items":["family_name"],"purpose":"benefit","type":"onedoor_personal_data"}]` {
		t.Errorf("token response authorization_details = %s", granted)
	}
	if rec, _ := e.m.Consent.Remembered(context.Background(), idt.Subject, id, purposeBenefit.Code); rec == nil || !slices.Equal(rec.Items, []string{"family_name"}) {
		t.Errorf("consent for the benefit purpose: %+v", rec)
	}

	for _, tt := range []struct{ name, details string }{
		{"an item the client may not receive", `[{"type":"onedoor_personal_data","items":["personal_id"]}]`},
		{"a purpose the client did not register", `[{"type":"onedoor_personal_data","purpose":"marketing","items":["name"]}]`},
		{"an unknown type", `[{"type":"account_information","items":["name"]}]`},
		{"not JSON", `[{`},
	} {
		u, _, _, _ := authorizeURL(r, ad(tt.details))
		if loc := newBrowser().follow(t, u); loc.Query().Get("error") != "invalid_authorization_details" {
			t.Errorf("%s at /authorize: %v", tt.name, loc)
		}
		pu, _ := url.Parse(u)
		status, body := postBasic(t, e.issuer+"/par", id, secret, pu.Query())
		if status != http.StatusBadRequest || !strings.Contains(body, "invalid_authorization_details") {
			t.Errorf("%s at /par: %d %s", tt.name, status, body)
		}
	}
	// Pushed, it counts as pushed: a front-channel copy next to the
	// request_uri cannot widen or replace it.
	u, _, _, _ = authorizeURL(r, ad(`[{"type":"onedoor_personal_data","purpose":"tax","items":["gender"]}]`))
	pu, _ := url.Parse(u)
	requestURI := pushRequest(t, e.issuer, id, secret, pu.Query())
	front := e.issuer + "/authorize?" + url.Values{"client_id": {id}, "request_uri": {requestURI},
		"authorization_details": {`[{"type":"onedoor_personal_data","purpose":"benefit","items":["name","phone_number"]}]`}}.Encode()
	p = openConsentLogin(t, newBrowser(), front)
	if p.purpose != purposeTax.Text || !slices.Equal(p.required, []string{"gender"}) || len(p.optional) != 0 {
		t.Errorf("pushed details: purpose %q, required %v, optional %v", p.purpose, p.required, p.optional)
	}
}

// TestConsent_TamperedApproval: the eID app's signed approval must name the
// recipient, the purpose and only claims the login shows; an approval built
// for another client's login, or with a claim added, is refused and no
// consent is recorded.
func TestConsent_TamperedApproval(t *testing.T) {
	e := startMain(t)
	id, secret := e.consentClient()
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	u, _, _, _ := authorizeURL(r)
	p := openConsentLogin(t, newBrowser(), u)
	// An item the page did not show (a list widened between display and
	// approval) is refused by the IdP.
	if _, err := e.app.Approve(context.Background(), p.payload, pick(p.payload), false, []string{"name", "personal_id"}); err == nil {
		t.Error("an approval sharing a claim the login did not ask was accepted")
	}
	// Leaving out a required item is refused too.
	u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"userinfo":{"gender":{"essential":true}}}`))
	p = openConsentLogin(t, newBrowser(), u)
	if _, err := e.app.Approve(context.Background(), p.payload, pick(p.payload), false, []string{"name"}); err == nil {
		t.Error("an approval leaving out a required claim was accepted")
	}
	cit, err := e.m.Store.GetCitizenByPersonalID(context.Background(), demoCitizens[0].PersonalID)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.m.Consent.Remembered(context.Background(), cit.ID, id, purposeTax.Code)
	if err != nil || rec != nil {
		t.Errorf("a refused approval left a consent: %+v %v", rec, err)
	}
}

// TestConsent_WithdrawalEndsTokens: withdrawing the consent (the citizen,
// through consent.Service) kills the refresh token (invalid_grant), the
// access token at userinfo (401) and both at introspection (inactive)
// within a second.
func TestConsent_WithdrawalEndsTokens(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		e := startMain(t)
		testWithdrawal(t, e, e.m, e.m)
	})
	t.Run("PostgresRedis", func(t *testing.T) {
		e := startMain(t, scaleOption(t))
		testWithdrawal(t, e, e.m, e.m)
	})
}

// TestConsent_WithdrawalOnSecondReplica: the consent is withdrawn on one
// replica; the tokens die on the other within a second (PostgreSQL and
// Redis shared, as at scale).
func TestConsent_WithdrawalOnSecondReplica(t *testing.T) {
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
	e := &testEnv{t: t, m: a, issuer: issuer}
	if err := a.ImportCitizens(context.Background(), demoCitizens[:2]); err != nil {
		t.Fatal(err)
	}
	e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	testWithdrawal(t, e, b, a)
}

// testWithdrawal logs in through e (its Main serves the login), withdraws
// the consent through the withdrawing Main and checks the tokens on the
// checking Main.
func testWithdrawal(t *testing.T, e *testEnv, withdrawing, checking *Main) {
	ctx := context.Background()
	id, secret := e.consentClient()
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	tok, idt := e.codeFlow(r, newBrowser(), e.app)
	at := jsonPart(t, tok.AccessToken, 1)
	rec, err := withdrawing.Consent.Remembered(ctx, idt.Subject, id, purposeTax.Code)
	if err != nil || rec == nil || at["cid"] != rec.ID {
		t.Fatalf("access token cid %v, consent %+v %v", at["cid"], rec, err)
	}
	// Served by the checking replica: the IdP's own URL there.
	base := "http://" + checking.IDPAddr
	rb := *r
	conf := *r.conf
	conf.Endpoint.TokenURL = base + "/token"
	rb.conf = &conf
	if st, _ := userinfoStatus(t, base, tok.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo before withdrawal: %d", st)
	}
	if a := introspect(t, base, id, secret, tok.AccessToken); a["active"] != true {
		t.Fatalf("introspection before withdrawal: %v", a)
	}
	// Rotate once so the checking replica has the current refresh token.
	tok = refresh(t, &rb, tok.RefreshToken)

	if _, _, err := withdrawing.Consent.Withdraw(ctx, idt.Subject, rec.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for {
		st, _ := userinfoStatus(t, base, tok.AccessToken)
		atActive := introspect(t, base, id, secret, tok.AccessToken)["active"]
		rtActive := introspect(t, base, id, secret, tok.RefreshToken)["active"]
		if st == http.StatusUnauthorized && atActive == false && rtActive == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a second after withdrawal: userinfo %d, access token active %v, refresh token active %v", st, atActive, rtActive)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err = refreshErr(&rb, tok.RefreshToken)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Errorf("refresh after withdrawal: %v, want invalid_grant", err)
	}
	// The receipt of the withdrawal is kept.
	rs, err := withdrawing.ConsentStore.Receipts(ctx, idt.Subject, rec.ID)
	if err != nil || len(rs) != 2 || rs[1].Kind != consent.ReceiptWithdrawn {
		t.Errorf("receipts after withdrawal: %+v %v", rs, err)
	}
	// A new login asks the citizen again.
	u, _, _, _ := authorizeURL(r)
	if !newBrowser().showsLoginPage(t, u) {
		t.Error("after withdrawal a login did not ask again")
	}
}

// TestConsent_FailedAppendFailsRelease: when the access log cannot take
// the entry, the ID token and the userinfo answer do not leave; once it
// can again, a retry of the same code succeeds (what the failed exchange
// consumed was put back).
func TestConsent_FailedAppendFailsRelease(t *testing.T) {
	e := startMain(t)
	ctx := context.Background()
	id, secret := e.consentClient()
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile")
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("claims", `{"id_token":{"name":null}}`))
	loc := e.login(newBrowser(), u, e.app, nil)
	breakLog := func() {
		if _, err := e.m.DB.ExecContext(ctx, `CREATE TRIGGER consent_log_broken BEFORE INSERT ON consent_log BEGIN SELECT RAISE(ABORT, 'log broken'); END`); err != nil {
			t.Fatal(err)
		}
	}
	mendLog := func() {
		if _, err := e.m.DB.ExecContext(ctx, `DROP TRIGGER consent_log_broken`); err != nil {
			t.Fatal(err)
		}
	}
	breakLog()
	code := loc.Query().Get("code")
	_, err := r.conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode < 500 {
		t.Fatalf("exchange with a broken log: %v, want a 5xx", err)
	}
	if strings.Contains(string(re.Body), "id_token") {
		t.Error("the failed exchange carried the ID token")
	}
	mendLog()
	tok, _ := e.exchange(r, loc, state, nonce, verifier)

	breakLog()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 500 || strings.Contains(string(body), "family_name") {
		t.Errorf("userinfo with a broken log: %d %s", resp.StatusCode, body)
	}
	mendLog()
	if got := userinfo(t, r, tok); got["name"] == nil {
		t.Errorf("userinfo once the log works: %v", got)
	}
}
