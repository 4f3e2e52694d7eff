package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/represent"
)

// Fake demo parties: companies with made-up tax codes, a child born so
// that they come of age tomorrow (Vietnam time).
const (
	repCompanyTax = "0100000091"
	repOtherTax   = "0100000092" // represented by demo citizen 2, who mandates demo citizen 1
	repUnknownTax = "0100000099"
	repWardPID    = "000000000091"
)

// repEnv is a running OneDoor on a settable clock, with demo citizen 1 the
// legal representative of a company, the guardian of a child and the
// holder of a mandate for another company.
type repEnv struct {
	*testEnv
	clk                    *clock
	actor, grantor, ward   string // subjects
	company, other         *represent.Organisation
	mandate                *represent.Mandate
	clientID, secret       string
	plainID, plainSecret   string
	repScopes, plainScopes []string
	majority               time.Time
}

func startRepEnv(t *testing.T, opts ...envOption) *repEnv {
	t.Helper()
	ctx := context.Background()
	clk := &clock{}
	m := NewMain()
	m.Now = clk.Now
	m.Config.IDPAddr, m.Config.APIAddr, m.Config.Issuer, m.Config.DataDir = "127.0.0.1:0", "127.0.0.1:0", "", t.TempDir()
	m.Config.RefreshGrace, m.Config.ShutdownGrace, m.Config.ShutdownDelay = 2*time.Second, 2*time.Second, 0
	m.Config.RedisPrefix = "test-" + randomHex(4) + ":"
	for _, o := range opts {
		o(&m.Config)
	}
	m.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := m.Run(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if m.Represent == nil {
		t.Fatal("Main.Represent is not wired")
	}
	e := &repEnv{testEnv: &testEnv{t: t, m: m, issuer: m.Issuer}, clk: clk}

	// Comes of age at the next midnight in Vietnam.
	tomorrow := clk.Now().In(represent.Zone).AddDate(0, 0, 1)
	birth := tomorrow.AddDate(-18, 0, 0).Format("2006-01-02")
	e.majority = time.Date(tomorrow.Year(), tomorrow.Month(), tomorrow.Day(), 0, 0, 0, 0, represent.Zone)
	ward := citizenRecord{PersonalID: repWardPID, FamilyName: "Nguyễn", GivenName: "Bé Demo", Birthdate: birth, Gender: "female",
		Address: "1 Phố Mẫu, Hà Nội (địa chỉ giả)"}
	if err := m.ImportCitizens(ctx, append(slices.Clone(demoCitizens[:2]), ward)); err != nil && !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("import: %v", err)
	}
	sub := func(pid string) string {
		c, err := m.Store.GetCitizenByPersonalID(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	e.actor, e.grantor, e.ward = sub(demoCitizens[0].PersonalID), sub(demoCitizens[1].PersonalID), sub(repWardPID)
	// A parent recorded in the citizen registry: until the child's majority.
	if err := m.Store.AddGuardianship(ctx, represent.Guardianship{WardID: e.ward, GuardianID: e.actor, Source: represent.GuardianRegistry}); err != nil {
		t.Fatalf("guardianship: %v", err)
	}
	if _, err := m.Represent.Store.PutOrganisations(ctx, []*represent.Organisation{
		{TaxCode: repCompanyTax, Name: "Công ty TNHH Demo Một (giả)", NameEn: "Demo One Co., Ltd (fake)", Address: "Hà Nội (giả)",
			LegalRepresentative: demoCitizens[0].PersonalID, Status: represent.OrgActive},
		{TaxCode: repOtherTax, Name: "Công ty CP Demo Hai (giả)", Address: "Hà Nội (giả)",
			LegalRepresentative: demoCitizens[1].PersonalID, Status: represent.OrgActive},
	}); err != nil {
		t.Fatalf("organisations: %v", err)
	}
	var err error
	if e.company, err = m.Represent.Store.GetOrganisation(ctx, repCompanyTax); err != nil {
		t.Fatal(err)
	}
	if e.other, err = m.Represent.Store.GetOrganisation(ctx, repOtherTax); err != nil {
		t.Fatal(err)
	}
	md, err := m.Represent.Grant(ctx, represent.GrantRequest{GrantorID: e.grantor, Organisation: repOtherTax,
		Grantee: demoCitizens[0].PersonalID, Services: []string{"1.000001"}, ValidUntil: clk.Now().AddDate(0, 1, 0)})
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if e.mandate, err = m.Represent.Accept(ctx, e.actor, md.ID); err != nil {
		t.Fatalf("accept: %v", err)
	}
	e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	e.app.Now = clk.Now

	e.repScopes = []string{gooidc.ScopeOpenID, "profile", idp.ScopeRepresentation, gooidc.ScopeOfflineAccess}
	e.clientID, e.secret = e.client(ClientSpec{Name: "Cổng doanh nghiệp (giả)", Scope: strings.Join(e.repScopes, " "),
		GrantTypes: []string{"authorization_code", "refresh_token"}})
	// An agency that refuses representation: it does not register the scope.
	e.plainScopes = []string{gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess}
	e.plainID, e.plainSecret = e.client(ClientSpec{Name: "Cơ quan khác (giả)", Scope: strings.Join(e.plainScopes, " "),
		GrantTypes: []string{"authorization_code", "refresh_token"}})
	return e
}

// loginAs runs a browser login approved in the app acting for actAs, and
// exchanges the code.
func (e *repEnv) loginAs(r *rp, actAs string) (*oauth2.Token, *gooidc.IDToken, eid.AppView) {
	e.t.Helper()
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r)
	payload, statusURL := b.loginPage(e.t, u)
	v, err := e.app.Fetch(context.Background(), payload)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.app.ApproveAs(context.Background(), payload, pick(payload), false, nil, actAs); err != nil {
		e.t.Fatalf("approve as %q: %v", actAs, err)
	}
	st, next := b.status(e.t, statusURL)
	if st != "approved" || next == "" {
		e.t.Fatalf("status after approval = %q, %q", st, next)
	}
	tok, idt := e.exchange(r, b.follow(e.t, next), state, nonce, verifier)
	return tok, idt, *v
}

// refusedAs asks a login acting for actAs, expects the IdP to refuse the
// approval with the request left pending, then approves it as the citizen.
func (e *repEnv) refusedAs(r *rp, actAs string) *gooidc.IDToken {
	return e.refused(r, actAs, true)
}

// refused is refusedAs; with finish false it stops once the request is
// seen pending (a test whose clock fosite's own checks would not accept).
func (e *repEnv) refused(r *rp, actAs string, finish bool) *gooidc.IDToken {
	e.t.Helper()
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r)
	payload, statusURL := b.loginPage(e.t, u)
	_, err := e.app.ApproveAs(context.Background(), payload, pick(payload), false, nil, actAs)
	var ae *eidapp.Error
	if !errors.As(err, &ae) || ae.Code != "invalid_request" {
		e.t.Fatalf("approve as %q: %v, want invalid_request", actAs, err)
	}
	if st, _ := b.status(e.t, statusURL); st != "pending" {
		e.t.Fatalf("after a refused act_as the request is %q, want pending", st)
	}
	if !finish {
		return nil
	}
	if _, err := e.app.ApproveAs(context.Background(), payload, pick(payload), false, nil, ""); err != nil {
		e.t.Fatalf("approve as themselves: %v", err)
	}
	_, next := b.status(e.t, statusURL)
	_, idt := e.exchange(r, b.follow(e.t, next), state, nonce, verifier)
	return idt
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

func TestRepresentation_Login_SQLite(t *testing.T) {
	t.Parallel()
	testRepresentationLogin(t, startRepEnv(t))
}

func TestRepresentation_Login_PostgresRedis(t *testing.T) {
	t.Parallel()
	testRepresentationLogin(t, startRepEnv(t, scaleOption(t)))
}

func testRepresentationLogin(t *testing.T, e *repEnv) {
	ctx := context.Background()
	r := e.rp(e.clientID, e.secret, e.repScopes...)

	t.Run("legal representative acts for the company", func(t *testing.T) {
		tok, idt, view := e.loginAs(r, repCompanyTax)
		if !view.Representation || len(view.Representations) != 3 {
			t.Fatalf("the app was offered %+v", view.Representations)
		}
		bases := map[string]represent.Basis{}
		for _, c := range view.Representations {
			bases[c.Ref] = c.Basis
		}
		if bases[repCompanyTax] != represent.BasisLegalRepresentative || bases[repWardPID] != represent.BasisGuardian || bases[repOtherTax] != represent.BasisMandate {
			t.Errorf("representations offered: %v", bases)
		}
		if idt.Subject != e.company.ID || !strings.HasPrefix(idt.Subject, represent.OrgSubjectPrefix) {
			t.Errorf("ID token sub %q, want the company's %q", idt.Subject, e.company.ID)
		}
		for name, claims := range map[string]map[string]any{"ID token": idTokenClaims(t, idt), "userinfo": userinfo(t, r, tok), "access token": jsonPart(t, tok.AccessToken, 1)} {
			if claims["sub"] != e.company.ID || mapOf(claims["act"])["sub"] != e.actor {
				t.Errorf("%s: sub %v act %v", name, claims["sub"], claims["act"])
			}
			rep := mapOf(claims["representation"])
			if rep["basis"] != "legal_representative" || rep["type"] != "organisation" || rep["mandate_id"] != nil {
				t.Errorf("%s: representation %v", name, rep)
			}
			// Never the acting citizen's own registry claims under the company's sub.
			for _, c := range []string{"name", "family_name", "birthdate", "gender"} {
				if _, ok := claims[c]; ok {
					t.Errorf("%s releases %s under an organisation's sub", name, c)
				}
			}
			if name != "access token" {
				if org := mapOf(claims["organisation"]); org["tax_code"] != repCompanyTax || org["name"] != e.company.Name || org["name_en"] != e.company.NameEn {
					t.Errorf("%s: organisation %v", name, org)
				}
			}
		}
		at := jsonPart(t, tok.AccessToken, 1)
		if rk, _ := at["rk"].([]any); len(rk) != 1 || rk[0] != represent.LegalRepKey(e.company.ID, e.actor) {
			t.Errorf("rk = %v", at["rk"])
		}
		if dev := e.app.Enrollment().DeviceID; at["did"] != dev {
			t.Errorf("did = %v, want the acting citizen's device %s", at["did"], dev)
		}
		// The refresh keeps the representation.
		tok2 := refresh(t, r, tok.RefreshToken)
		if at2 := jsonPart(t, tok2.AccessToken, 1); at2["sub"] != e.company.ID || mapOf(at2["act"])["sub"] != e.actor {
			t.Errorf("refreshed access token: sub %v act %v", at2["sub"], at2["act"])
		}
		if a := introspect(t, e.issuer, e.clientID, e.secret, tok2.AccessToken); mapOf(a["act"])["sub"] != e.actor || a["sub"] != e.company.ID {
			t.Errorf("introspection: %v", a)
		}
	})

	t.Run("no silent single sign-on for representation", func(t *testing.T) {
		b := newBrowser()
		u, state, nonce, verifier := authorizeURL(r)
		payload, statusURL := b.loginPage(t, u)
		if _, err := e.app.ApproveAs(ctx, payload, pick(payload), false, nil, ""); err != nil {
			t.Fatal(err)
		}
		_, next := b.status(t, statusURL)
		_, idt := e.exchange(r, b.follow(t, next), state, nonce, verifier)
		if idt.Subject != e.actor {
			t.Fatalf("acting for themselves: sub %q", idt.Subject)
		}
		// The same browser, its session live: still the app.
		u, _, _, _ = authorizeURL(r)
		if !b.showsLoginPage(t, u) {
			t.Error("a representation login was answered by single sign-on")
		}
		u, _, _, _ = authorizeURL(r, oauth2.SetAuthURLParam("prompt", "none"))
		if loc := b.follow(t, u); loc.Query().Get("error") != "interaction_required" {
			t.Errorf("prompt=none: %v", loc)
		}
	})

	t.Run("a party not represented is refused, the request stays pending", func(t *testing.T) {
		for _, ref := range []string{repUnknownTax, demoCitizens[1].PersonalID, "not-a-ref"} {
			if idt := e.refusedAs(r, ref); idt.Subject != e.actor {
				t.Errorf("after refusing %s: sub %q", ref, idt.Subject)
			}
		}
	})

	t.Run("act_as without the scope is refused", func(t *testing.T) {
		plain := e.rp(e.plainID, e.plainSecret, e.plainScopes...)
		if idt := e.refusedAs(plain, repCompanyTax); idt.Subject != e.actor {
			t.Errorf("sub %q", idt.Subject)
		}
		// Nor may that client ask the scope.
		u, _, _, _ := authorizeURL(e.rp(e.plainID, e.plainSecret, append(slices.Clone(e.plainScopes), idp.ScopeRepresentation)...))
		if loc := newBrowser().follow(t, u); loc.Query().Get("error") != "invalid_scope" {
			t.Errorf("a client without the scope asking it: %v", loc)
		}
	})

	t.Run("a backchannel (CIBA) request cannot carry representation", func(t *testing.T) {
		id, secret := e.client(ClientSpec{Scope: "openid profile representation", GrantTypes: []string{idp.GrantTypeCIBA},
			RedirectURIs: []string{}, BackchannelTokenDeliveryMode: idp.CIBAModePoll})
		c := &cibaClient{e: e.testEnv, id: id, secret: secret}
		st, out := c.start(demoCitizens[0].PersonalID, "Quầy 1", "scope", "openid representation")
		wantErr(t, "CIBA with representation", st, out, "invalid_scope")
	})

	t.Run("mandate revoked ends its tokens", func(t *testing.T) {
		tok, idt, _ := e.loginAs(r, repOtherTax)
		claims := idTokenClaims(t, idt)
		rep := mapOf(claims["representation"])
		if idt.Subject != e.other.ID || rep["basis"] != "mandate" || rep["mandate_id"] != e.mandate.ID {
			t.Fatalf("sub %q representation %v", idt.Subject, rep)
		}
		if sv, _ := rep["services"].([]any); len(sv) != 1 || sv[0] != "1.000001" {
			t.Errorf("services %v", rep["services"])
		}
		if st, _ := userinfoStatus(t, e.issuer, tok.AccessToken); st != http.StatusOK {
			t.Fatalf("userinfo before revocation: %d", st)
		}
		if _, err := e.m.Represent.Revoke(ctx, e.grantor, e.mandate.ID); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			st, _ := userinfoStatus(t, e.issuer, tok.AccessToken)
			rt := introspect(t, e.issuer, e.clientID, e.secret, tok.RefreshToken)["active"]
			if st == http.StatusUnauthorized && rt == false {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after revocation: userinfo %d, refresh token active %v", st, rt)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, err := refreshErr(r, tok.RefreshToken)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("refresh after revocation: %v, want invalid_grant", err)
		}
		// And no new login under it.
		e.refusedAs(r, repOtherTax)
	})

	t.Run("legal representative replaced ends their tokens for the company", func(t *testing.T) {
		tok, idt, _ := e.loginAs(r, repCompanyTax)
		if idt.Subject != e.company.ID {
			t.Fatalf("sub %q", idt.Subject)
		}
		replaced := *e.company
		replaced.LegalRepresentative = demoCitizens[1].PersonalID
		changes, err := e.m.Represent.Store.PutOrganisations(ctx, []*represent.Organisation{&replaced})
		if err != nil || len(changes) != 1 {
			t.Fatalf("import: %v %v", changes, err)
		}
		if err := e.m.Represent.OrganisationsChanged(ctx, changes); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			if st, _ := userinfoStatus(t, e.issuer, tok.AccessToken); st == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the old representative's access token still works")
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, err = refreshErr(r, tok.RefreshToken)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("refresh after the representative was replaced: %v, want invalid_grant", err)
		}
		e.refusedAs(r, repCompanyTax)
	})

	// Last: it moves the clock past the ward's majority.
	t.Run("guardian acts for the ward until they come of age", func(t *testing.T) {
		tok, idt, _ := e.loginAs(r, repWardPID)
		if idt.Subject != e.ward {
			t.Fatalf("sub %q, want the ward's %q", idt.Subject, e.ward)
		}
		for name, claims := range map[string]map[string]any{"ID token": idTokenClaims(t, idt), "userinfo": userinfo(t, r, tok)} {
			if mapOf(claims["act"])["sub"] != e.actor || mapOf(claims["representation"])["basis"] != "guardian" || mapOf(claims["representation"])["type"] != "person" {
				t.Errorf("%s: act %v representation %v", name, claims["act"], claims["representation"])
			}
			if name == "userinfo" && (claims["given_name"] != "Bé Demo" || claims["birthdate"] == demoCitizens[0].Birthdate) {
				t.Errorf("userinfo releases %v, %v: want the ward's", claims["given_name"], claims["birthdate"])
			}
			if _, ok := claims["organisation"]; ok {
				t.Errorf("%s: organisation claim for a person", name)
			}
		}
		at := jsonPart(t, tok.AccessToken, 1)
		if exp, _ := at["exp"].(float64); time.Unix(int64(exp), 0).After(e.majority) {
			t.Errorf("access token exp %v after the ward's majority %v", time.Unix(int64(exp), 0), e.majority)
		}
		// The consent is the ward's.
		rec, err := e.m.Consent.Remembered(ctx, e.ward, e.clientID, mustPurpose(t, e))
		if err != nil || rec == nil || rec.ID != at["cid"] {
			t.Fatalf("the ward's consent: %+v %v (cid %v)", rec, err, at["cid"])
		}
		// It says the guardian gave it, and the ward's access log says the
		// guardian's login released the ward's data.
		if rec.GivenBy == nil || rec.GivenBy.CitizenID != e.actor || rec.GivenBy.Basis != "guardian" {
			t.Errorf("the ward's consent was given by %+v, want the guardian %s", rec.GivenBy, e.actor)
		}
		entries, _, err := e.m.ConsentStore.ListEntries(ctx, consent.EntryQuery{CitizenID: e.ward})
		if err != nil || len(entries) == 0 {
			t.Fatalf("the ward's access log: %d entries, %v", len(entries), err)
		}
		for _, en := range entries {
			if en.OnBehalf == nil || en.OnBehalf.CitizenID != e.actor || en.OnBehalf.Basis != "guardian" {
				t.Errorf("the ward's log entry %s (%s) names %+v on behalf, want the guardian", en.ID, en.Channel, en.OnBehalf)
			}
		}

		e.clk.advance(e.majority.Sub(e.clk.Now()) + time.Minute)
		_, err = refreshErr(r, tok.RefreshToken)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
			t.Errorf("refresh after the ward came of age: %v, want invalid_grant", err)
		}
		// The app no longer offers the ward, and a login as them is refused.
		e.refused(r, repWardPID, false)
	})
}

// mustPurpose is the default purpose code of the representation client.
func mustPurpose(t *testing.T, e *repEnv) string {
	t.Helper()
	c, err := e.m.Store.GetClient(context.Background(), e.clientID)
	if err != nil {
		t.Fatal(err)
	}
	return c.DefaultPurpose().Code
}

// The view of a representation login, with the parties offered, matches
// docs/eid-api.openapi.json, and so does the refusal of an act_as for a
// party the citizen does not represent.
func TestRepresentation_Contract(t *testing.T) {
	t.Parallel()
	v := eidContract(t)
	e := startRepEnv(t)
	d := enrollRaw(t, e.testEnv, v, demoCitizens[0].PersonalID, idp.LevelHigh)
	b := newBrowser()
	u, _, _, _ := authorizeURL(e.rp(e.clientID, e.secret, e.repScopes...))
	payload, statusURL := b.loginPage(t, u)
	_, id, err := eid.ParsePayload(payload)
	if err != nil {
		t.Fatal(err)
	}
	view := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+id, d.auth(), nil).body
	reps, _ := view["representations"].([]any)
	if view["representation"] != true || len(reps) != 3 {
		t.Fatalf("view: %v", view)
	}
	claims := eid.ApprovalClaims{RegisteredClaims: d.registered(time.Minute), RequestID: id, MatchNumber: pick(payload),
		Decision: eid.DecisionApprove, ClientID: e.clientID, Purpose: view["purpose_code"].(string), Claims: []string{}, ActAs: repUnknownTax}
	for _, c := range view["claims"].([]any) {
		if cm := c.(map[string]any); cm["optional"] == false {
			claims.Claims = append(claims.Claims, cm["name"].(string))
		}
	}
	r := d.must(http.StatusBadRequest, http.MethodPost, "/eid/v1/login-requests/"+id+"/decision", d.auth(),
		map[string]string{"approval": d.sign(eid.TypeApproval, claims)})
	if r.err() != "invalid_request" {
		t.Errorf("act_as for a stranger: %v", r.body)
	}
	if st, _ := b.status(t, statusURL); st != "pending" {
		t.Errorf("after the refusal: %s", st)
	}
	claims.ActAs = repCompanyTax
	claims.RegisteredClaims = d.registered(time.Minute)
	if r := d.must(http.StatusOK, http.MethodPost, "/eid/v1/login-requests/"+id+"/decision", d.auth(),
		map[string]string{"approval": d.sign(eid.TypeApproval, claims)}); r.body["status"] != "approved" {
		t.Errorf("act_as the company: %v", r.body)
	}
}
