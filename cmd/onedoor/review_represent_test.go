package main

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

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
