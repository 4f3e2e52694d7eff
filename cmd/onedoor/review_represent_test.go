package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/represent"
)

// TestReview_RevokedMandateHolderLosesTheApplications: an employee files an
// application for the company under a mandate and submits it; the legal
// representative then revokes the mandate (the employee left). The former
// employee still reads the company's application (GET, the list) because a
// citizen always sees what they filed (citizen_id = me in citizenWhere,
// Scope.Visible), and the agency's decision, made after the revocation, is
// copied to their inbox and pushed to their phone (Transition always
// delivers to the applicant). A representation ended must end access to the
// party's data derived from it (SECURITY.md 65, 66).
func TestReview_RevokedMandateHolderLosesTheApplications(t *testing.T) {
	t.Parallel()
	e := startMain(t)
	ctx := context.Background()
	m := e.m
	if err := m.ImportCitizens(ctx, []citizenRecord{demoCitizens[2], demoCitizens[3]}); err != nil {
		t.Fatalf("import: %v", err)
	}
	employee, legalRep := citizenID(t, m, demoCitizens[2].PersonalID), citizenID(t, m, demoCitizens[3].PersonalID)
	if _, err := m.RepStore.PutOrganisations(ctx, []*represent.Organisation{{TaxCode: repTaxCode, Name: "Công ty TNHH Demo Thử",
		LegalRepresentative: demoCitizens[3].PersonalID, Status: represent.OrgActive}}); err != nil {
		t.Fatalf("organisation: %v", err)
	}
	org, err := m.RepStore.GetOrganisation(ctx, repTaxCode)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mandate := &represent.Mandate{ID: represent.NewMandateID(), GrantorID: legalRep, GranteeID: employee, Party: org.Party(),
		Services: []string{"T-BIZ-A"}, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(30 * 24 * time.Hour), CreatedAt: now}
	if err := m.RepStore.CreateMandate(ctx, mandate); err != nil {
		t.Fatalf("mandate: %v", err)
	}
	if _, err := m.RepStore.AcceptMandate(ctx, mandate.ID, now); err != nil {
		t.Fatalf("accept: %v", err)
	}
	seedAgencies(t, m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	bizA, _ := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-BIZ-A", bizService("Dịch vụ A", "business", "")).json(t)["id"].(string)
	emp := e.citizenAPI(t, e.enroll(demoCitizens[2].PersonalID, idp.LevelHigh))

	a := emp.must(http.StatusCreated, http.MethodPost, "/v1/applications",
		[]byte(`{"service_id":"`+bizA+`","subject":{"organisation":"`+repTaxCode+`"}}`)).json(t)
	id, _ := a["id"].(string)
	emp.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+id, []byte(`{"form":{"note":"bí mật công ty (giả)"}}`),
		"Content-Type", "application/merge-patch+json")
	emp.must(http.StatusOK, http.MethodPost, "/v1/applications/"+id+"/submit", nil)

	if _, err := m.Represent.Revoke(ctx, legalRep, mandate.ID); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+id+"/transitions", []byte(`{"to":"approved","message":"Đã duyệt."}`))

	if got := emp.do(http.MethodGet, "/v1/applications/"+id, nil); got.status != http.StatusNotFound {
		t.Errorf("the former mandate holder reads the company's application after the revocation: %d %s", got.status, got.body)
	}
	if slices.Contains(listIDs(t, emp, "/v1/applications"), id) {
		t.Errorf("the former mandate holder still lists the company's application")
	}
	if ms := inboxFor(t, m, employee, id); len(ms) != 0 {
		t.Errorf("the decision made after the revocation reached the former mandate holder's inbox: %d message(s)", len(ms))
	}
}

// TestReview_GuardianConsentBindsTheAdultWard: a guardian logs in to a
// client acting for their ward and shares the ward's profile; the consent
// record is the ward's (given_by the guardian). The guardianship ends (a
// court's decision; the ward coming of age is the same), and the ward signs
// in elsewhere in the same browser; the client then gets the ward's
// registry data by single sign-on (prompt=none), on the strength of the
// consent their former guardian gave, without the ward ever being asked. A representation ended must not keep releasing data on its
// consent (SECURITY.md 65, 66; docs/representation.md: it ends "at once").
func TestReview_GuardianConsentBindsTheAdultWard(t *testing.T) {
	t.Parallel()
	e := startRepEnv(t)
	r := e.rp(e.clientID, e.secret, e.repScopes...)
	if _, idt, _ := e.loginAs(r, repWardPID); idt.Subject != e.ward {
		t.Fatalf("the guardian's login: sub %q", idt.Subject)
	}
	// A court withdraws the guardian's parental rights (onedoor citizen
	// guardian --end): the representation ends. (Coming of age is the same
	// case; the test's clock cannot move past fosite's own checks.)
	ctx := context.Background()
	if err := e.m.Store.EndGuardianship(ctx, e.ward, e.actor, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Represent.GuardianshipEnded(ctx, e.ward, e.actor); err != nil {
		t.Fatal(err)
	}

	// The ward gets their own eID and signs in to another client in this
	// browser.
	wardApp := e.enroll(repWardPID, idp.LevelHigh)
	wardApp.Now = e.clk.Now
	plain := e.rp(e.plainID, e.plainSecret, e.plainScopes...)
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(plain)
	if _, idt := e.exchange(plain, e.login(b, u, wardApp, nil), state, nonce, verifier); idt.Subject != e.ward {
		t.Fatalf("the ward's own login: sub %q", idt.Subject)
	}
	// The representation client, asked silently for the ward's profile.
	own := e.rp(e.clientID, e.secret, "openid", "profile")
	u, state, nonce, verifier = authorizeURL(own, oauth2.SetAuthURLParam("prompt", "none"))
	loc := b.follow(t, u)
	if loc.Query().Get("code") != "" {
		tok, _ := e.exchange(own, loc, state, nonce, verifier)
		t.Errorf("single sign-on released the ward's profile (userinfo given_name %v) to the client on the consent their former guardian gave",
			userinfo(t, own, tok)["given_name"])
	}
}

// TestReview_MandateForOneServiceReleasesTheWardsDataToAnyClient: a guardian
// mandates another citizen for one service (1.000001) for their ward. The
// holder logs in to a client that has nothing to do with that service,
// acting for the ward, and shares the ward's profile: the IdP checks the
// representation with no service at all (Check(..., "", "")), records the
// ward's consent given by the mandate holder, and releases the ward's
// registry data. What the mandate bounds ("services": [...]) is left to the
// recipient to check after it has received the data (SECURITY.md 66).
//
// The rule (docs/eid-app-protocol.md, Representation): the IdP does not know
// which service a login is for, so a representation bounded to services
// releases no registry data of a person at login: the tokens name the ward
// (sub), the holder (act) and the mandate's services, nothing else, no
// consent is recorded, and no consent the guardian gave this client earlier
// is fallen back on, at userinfo or at a refresh.
func TestReview_MandateForOneServiceReleasesTheWardsDataToAnyClient(t *testing.T) {
	t.Parallel()
	e := startRepEnv(t)
	ctx := context.Background()
	r := e.rp(e.clientID, e.secret, e.repScopes...)
	// The guardian shared the ward's profile with this client before: a
	// consent of the ward's, given by the guardian, is remembered.
	if _, idt, _ := e.loginAs(r, repWardPID); idt.Subject != e.ward {
		t.Fatalf("the guardian's login: sub %q", idt.Subject)
	}
	before, err := e.m.Consent.Remembered(ctx, e.ward, e.clientID, consent.LoginPurpose.Code)
	if err != nil || before == nil || before.GivenBy == nil || before.GivenBy.CitizenID != e.actor {
		t.Fatalf("the guardian's consent for the ward: %+v, %v", before, err)
	}

	md, err := e.m.Represent.Grant(ctx, represent.GrantRequest{GrantorID: e.actor, Person: repWardPID,
		Grantee: demoCitizens[1].PersonalID, Services: []string{"1.000001"}, ValidUntil: e.clk.Now().AddDate(0, 1, 0)})
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if _, err := e.m.Represent.Accept(ctx, e.grantor, md.ID); err != nil {
		t.Fatalf("accept: %v", err)
	}
	holder := e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh)
	holder.Now = e.clk.Now
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(r)
	payload, statusURL := b.loginPage(t, u)
	if _, err := holder.ApproveAs(ctx, payload, pick(payload), false, nil, repWardPID); err != nil {
		t.Logf("the app refused to act for the ward on an unrelated client (as it should): %v", err)
		return
	}
	_, next := b.status(t, statusURL)
	tok, idt := e.exchange(r, b.follow(t, next), state, nonce, verifier)
	ref := refresh(t, r, tok.RefreshToken)
	for name, claims := range map[string]map[string]any{"ID token": idTokenClaims(t, idt), "userinfo": userinfo(t, r, tok),
		"userinfo after refresh": userinfo(t, r, ref), "access token": jsonPart(t, tok.AccessToken, 1)} {
		if claims["sub"] != e.ward || mapOf(claims["act"])["sub"] != e.grantor {
			t.Errorf("%s: sub %v act %v, want the ward acted for by the holder", name, claims["sub"], claims["act"])
		}
		rep := mapOf(claims["representation"])
		if svc, _ := rep["services"].([]any); rep["basis"] != "mandate" || rep["mandate_id"] != md.ID || len(svc) != 1 || svc[0] != "1.000001" {
			t.Errorf("%s: representation %v", name, rep)
		}
		for _, c := range idp.KnownClaims {
			if v, ok := claims[c]; ok {
				t.Errorf("a mandate for service 1.000001 released the ward's %s (%v) in the %s to a client of no stated service", c, v, name)
			}
		}
	}
	if at := jsonPart(t, tok.AccessToken, 1); at["cid"] != nil {
		t.Errorf("the holder's access token rests on a consent: %v", at)
	}
	// No consent recorded in the ward's name by the holder: the guardian's
	// stands as it was.
	after, err := e.m.Consent.Remembered(ctx, e.ward, e.clientID, consent.LoginPurpose.Code)
	if err != nil || after == nil || after.Version != before.Version || after.GivenBy == nil || after.GivenBy.CitizenID != e.actor {
		t.Errorf("the ward's consent after the holder's login: %+v, %v; want the guardian's, unchanged", after, err)
	}
}

// TestReview_GuardianConsentReplacesTheWardsOwn: the ward signed in to a
// client themselves and shared their profile; their guardian then logs in to
// the same client acting for them. There is one consent record per citizen,
// client and purpose, so the guardian's grant re-grants the ward's own
// record, given by the guardian: the ward's own tokens resting on it release
// nothing any more (userinfo invalid_token, refresh invalid_grant,
// introspection of the refresh token inactive), and a silent login of the
// ward's asks again.
func TestReview_GuardianConsentReplacesTheWardsOwn(t *testing.T) {
	t.Parallel()
	e := startRepEnv(t)
	ctx := context.Background()
	wardApp := e.enroll(repWardPID, idp.LevelHigh)
	wardApp.Now = e.clk.Now
	own := e.rp(e.clientID, e.secret, "openid", "profile", "offline_access")
	b := newBrowser()
	u, state, nonce, verifier := authorizeURL(own)
	tok, idt := e.exchange(own, e.login(b, u, wardApp, nil), state, nonce, verifier)
	if idt.Subject != e.ward || userinfo(t, own, tok)["given_name"] == nil {
		t.Fatalf("the ward's own login: sub %q", idt.Subject)
	}
	before, err := e.m.Consent.Remembered(ctx, e.ward, e.clientID, consent.LoginPurpose.Code)
	if err != nil || before == nil || before.GivenBy != nil {
		t.Fatalf("the ward's own consent: %+v, %v", before, err)
	}

	if _, idt, _ := e.loginAs(e.rp(e.clientID, e.secret, e.repScopes...), repWardPID); idt.Subject != e.ward {
		t.Fatalf("the guardian's login: sub %q", idt.Subject)
	}
	after, err := e.m.Consent.Remembered(ctx, e.ward, e.clientID, consent.LoginPurpose.Code)
	if err != nil || after == nil || after.ID != before.ID || after.GivenBy == nil || after.GivenBy.CitizenID != e.actor {
		t.Fatalf("the record after the guardian's login: %+v, %v; want the ward's record, given by the guardian", after, err)
	}

	if st, body := userinfoStatus(t, e.issuer, tok.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("the ward's own access token on the guardian's re-grant: userinfo %d %s, want 401", st, body)
	}
	if a := introspect(t, e.issuer, e.clientID, e.secret, tok.RefreshToken); a["active"] != false {
		t.Errorf("the ward's own refresh token on the guardian's re-grant: introspection %v, want inactive", a)
	}
	if _, err := refreshErr(own, tok.RefreshToken); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("the ward's own refresh on the guardian's re-grant: %v, want invalid_grant", err)
	}
	u, _, _, _ = authorizeURL(own, oauth2.SetAuthURLParam("prompt", "none"))
	if loc := b.follow(t, u); loc.Query().Get("error") != "consent_required" {
		t.Errorf("the ward's silent login on the guardian's consent: %v, want consent_required", loc)
	}
}
