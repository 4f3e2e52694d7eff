package main

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/represent"
)

// Fake people and a fake company of the representation tests: personal ids
// start with 000, names carry "Demo".
var (
	repChild    = citizenRecord{PersonalID: "000000000021", FamilyName: "Nguyễn", GivenName: "Bé Demo", Birthdate: "2020-05-01", Gender: "female", Address: "1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)"}
	repStranger = citizenRecord{PersonalID: "000000000022", FamilyName: "Đỗ", GivenName: "Lạ Demo", Birthdate: "1980-02-02", Gender: "male", Address: "22 Phố Mẫu, Hà Nội (địa chỉ giả)"}
)

const repTaxCode = "0100000021"

// bizService is a service for businesses, as its agency PUTs it: no
// pre-fill, no documents, one handler.
func bizService(name, category, representation string) []byte {
	rep := ""
	if representation != "" {
		rep = `"representation": "` + representation + `",`
	}
	return []byte(`{
  "name": {"vi": "` + name + ` (thử)", "en": "` + name + ` (test)"},
  "description": {"vi": "Dịch vụ thử.", "en": "A test service."},
  "category": "` + category + `",
  "fee": {"amount": 0, "currency": "VND"},
  "processing_time": {"working_days": 1},
  "required_documents": [],
  "handling_agencies": ["T-UBND-HN"],
  ` + rep + `
  "schema": {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
    "properties": {"note": {"type": "string", "title": "Ghi chú", "x-title": {"vi": "Ghi chú", "en": "Note"}, "examples": ["x"]}}}
}`)
}

func citizenID(t *testing.T, m *Main, pid string) string {
	t.Helper()
	c, err := m.Store.GetCitizenByPersonalID(context.Background(), pid)
	if err != nil {
		t.Fatalf("citizen %s: %v", pid, err)
	}
	return c.ID
}

func inboxFor(t *testing.T, m *Main, citizenID, appID string) []*mobileapi.Message {
	t.Helper()
	ms, _, err := m.APIStore.ListInbox(context.Background(), citizenID, mobileapi.Page{Limit: mobileapi.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	var out []*mobileapi.Message
	for _, msg := range ms {
		if msg.ApplicationID == appID {
			out = append(out, msg)
		}
	}
	return out
}

func listIDs(t *testing.T, c *apiClient, path string) []string {
	t.Helper()
	items, _ := c.must(http.StatusOK, http.MethodGet, path, nil).json(t)["items"].([]any)
	var ids []string
	for _, it := range items {
		ids = append(ids, it.(map[string]any)["id"].(string))
	}
	return ids
}

// Applications filed for someone else, through the API with real stores:
// a parent files for their child, an employee for their company under a
// mandate; who sees what, who may change it, whom the decision reaches,
// and what a revoked mandate or a service refusing representation stops.
// Every response is checked against the contract.
func TestRepresentation_Applications_SQLite(t *testing.T) {
	t.Parallel()
	runRepresentationApps(t, startMain(t))
}

func TestRepresentation_Applications_PostgresRedis(t *testing.T) {
	t.Parallel()
	runRepresentationApps(t, startMain(t, scaleOption(t)))
}

func runRepresentationApps(t *testing.T, e *testEnv) {
	ctx := context.Background()
	m := e.m
	if err := m.ImportCitizens(ctx, []citizenRecord{demoCitizens[2], demoCitizens[3], repChild, repStranger}); err != nil {
		t.Fatalf("import: %v", err)
	}
	parent1, parent2 := citizenID(t, m, demoCitizens[0].PersonalID), citizenID(t, m, demoCitizens[1].PersonalID)
	employee, legalRep := citizenID(t, m, demoCitizens[2].PersonalID), citizenID(t, m, demoCitizens[3].PersonalID)
	child := citizenID(t, m, repChild.PersonalID)
	for _, g := range []string{parent1, parent2} {
		if err := m.Store.AddGuardianship(ctx, represent.Guardianship{WardID: child, GuardianID: g, Source: represent.GuardianRegistry}); err != nil {
			t.Fatalf("guardianship: %v", err)
		}
	}
	if _, err := m.RepStore.PutOrganisations(ctx, []*represent.Organisation{{TaxCode: repTaxCode, Name: "Công ty TNHH Demo Thử",
		Address: "5 Phố Mẫu, Hà Nội (địa chỉ giả)", LegalRepresentative: demoCitizens[3].PersonalID, Status: represent.OrgActive}}); err != nil {
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
	svcID := func(code string, body []byte) string {
		id, _ := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/"+code, body).json(t)["id"].(string)
		return id
	}
	birth := svcID("T-1.001193", []byte(birthService))
	bizA := svcID("T-BIZ-A", bizService("Dịch vụ A", "business", ""))
	bizB := svcID("T-BIZ-B", bizService("Dịch vụ B", "business", ""))
	inPerson := svcID("T-ID-1", bizService("Cấp thẻ", "identity", "refused"))
	if got, _ := e.citizenAPI(t, e.app).must(http.StatusOK, http.MethodGet, "/v1/services/"+inPerson, nil).json(t)["representation"].(string); got != "refused" {
		t.Errorf("the in-person service's representation = %q", got)
	}

	p1 := e.citizenAPI(t, e.app)
	p2 := e.citizenAPI(t, e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh))
	emp := e.citizenAPI(t, e.enroll(demoCitizens[2].PersonalID, idp.LevelHigh))
	rep := e.citizenAPI(t, e.enroll(demoCitizens[3].PersonalID, idp.LevelHigh))
	stranger := e.citizenAPI(t, e.enroll(repStranger.PersonalID, idp.LevelHigh))

	t.Run("parent files for their child", func(t *testing.T) {
		a := p1.must(http.StatusCreated, http.MethodPost, "/v1/applications",
			[]byte(`{"service_id":"`+birth+`","agency_code":"T-UBND-HN","subject":{"person":"`+repChild.PersonalID+`"}}`)).json(t)
		id, _ := a["id"].(string)
		sub, _ := a["subject"].(map[string]any)
		appl, _ := a["applicant"].(map[string]any)
		if sub["type"] != "person" || sub["id"] != child || sub["personal_id"] != repChild.PersonalID || appl["id"] != parent1 {
			t.Errorf("applicant %v, subject %v", appl, sub)
		}
		// Pre-filled from the child's register entry, never the parent's.
		if form, _ := a["form"].(map[string]any); form["applicant_personal_id"] != repChild.PersonalID {
			t.Errorf("pre-filled form %v, want the child's data", form)
		}
		// The other guardian sees it, and its home shows the child; a
		// stranger does not see it; only the applicant changes it.
		p2.must(http.StatusOK, http.MethodGet, "/v1/applications/"+id, nil)
		if !slices.Contains(listIDs(t, p2, "/v1/applications"), id) {
			t.Errorf("the other parent's list lacks it")
		}
		home := p2.must(http.StatusOK, http.MethodGet, "/v1/home", nil).json(t)
		if !homeHas(home, child, id) {
			t.Errorf("the other parent's home: %v", home["represented"])
		}
		stranger.must(http.StatusNotFound, http.MethodGet, "/v1/applications/"+id, nil)
		if slices.Contains(listIDs(t, stranger, "/v1/applications"), id) {
			t.Errorf("a stranger lists it")
		}
		p2.must(http.StatusForbidden, http.MethodPatch, "/v1/applications/"+id, []byte(`{"form":{"child_name":"X"}}`),
			"Content-Type", "application/merge-patch+json")
		stranger.must(http.StatusNotFound, http.MethodPatch, "/v1/applications/"+id, []byte(`{"form":{"child_name":"X"}}`),
			"Content-Type", "application/merge-patch+json")

		p1.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+id, []byte(`{"form":{"child_name":"Nguyễn Bé Demo","child_birthdate":"2020-05-01"}}`),
			"Content-Type", "application/merge-patch+json")
		body, ct := multipartFile(t, "giay-chung-sinh.pdf", []byte("%PDF-1.4\n% test birth certificate\n"), "document_code", "birth_certificate")
		p1.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+id+"/attachments", body, "Content-Type", ct)
		p1.must(http.StatusOK, http.MethodPost, "/v1/applications/"+id+"/submit", nil)

		// The agency sees both: the applicant from the register, the
		// subject by personal id.
		ag := hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/applications/"+id, nil).json(t)
		agAppl, _ := ag["applicant"].(map[string]any)
		agSub, _ := ag["subject"].(map[string]any)
		if agAppl["personal_id"] != demoCitizens[0].PersonalID || agSub["personal_id"] != repChild.PersonalID || agSub["id"] != nil {
			t.Errorf("agency view: applicant %v subject %v", agAppl, agSub)
		}
		hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+id+"/transitions", []byte(`{"to":"approved","message":"Đã duyệt."}`))
		// The decision reaches both parents (and the child's own inbox),
		// once each.
		for who, cid := range map[string]string{"parent 1": parent1, "parent 2": parent2, "the child": child} {
			if ms := inboxFor(t, m, cid, id); len(ms) != 1 || ms[0].Status != mobileapi.StatusApproved {
				t.Errorf("%s's inbox: %+v", who, ms)
			}
		}
		if !strings.Contains(string(p2.must(http.StatusOK, http.MethodGet, "/v1/inbox", nil).body), id) {
			t.Errorf("the other parent's inbox route lacks the decision")
		}
	})

	t.Run("employee files for the company", func(t *testing.T) {
		subject := `"subject":{"organisation":"` + repTaxCode + `"}`
		a := emp.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+bizA+`",`+subject+`}`)).json(t)
		id, _ := a["id"].(string)
		if sub, _ := a["subject"].(map[string]any); sub["type"] != "organisation" || sub["tax_code"] != repTaxCode || sub["id"] != org.ID {
			t.Errorf("subject %v", sub)
		}
		if form, _ := a["form"].(map[string]any); len(form) != 0 {
			t.Errorf("a company's draft is pre-filled with %v", form)
		}
		// The mandate covers A, not B.
		emp.must(http.StatusForbidden, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+bizB+`",`+subject+`}`))
		// The legal representative sees it, in the list and on the home.
		rep.must(http.StatusOK, http.MethodGet, "/v1/applications/"+id, nil)
		if !slices.Contains(listIDs(t, rep, "/v1/applications"), id) {
			t.Errorf("the legal representative's list lacks it")
		}
		if home := rep.must(http.StatusOK, http.MethodGet, "/v1/home", nil).json(t); !homeHas(home, org.ID, id) {
			t.Errorf("the legal representative's home: %v", home["represented"])
		}
		stranger.must(http.StatusNotFound, http.MethodGet, "/v1/applications/"+id, nil)
		emp.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+id, []byte(`{"form":{"note":"trước khi thu hồi"}}`),
			"Content-Type", "application/merge-patch+json")
		before := rep.must(http.StatusOK, http.MethodGet, "/v1/applications/"+id, nil).json(t)

		// The mandate revoked: the next application is refused; the draft
		// is no longer the former employee's to see, so neither to submit,
		// edit or delete (not found), and it stays as it was.
		if _, err := m.Represent.Revoke(ctx, legalRep, mandate.ID); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		emp.must(http.StatusForbidden, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+bizA+`",`+subject+`}`))
		emp.must(http.StatusNotFound, http.MethodGet, "/v1/applications/"+id, nil)
		emp.must(http.StatusNotFound, http.MethodPost, "/v1/applications/"+id+"/submit", nil)
		emp.must(http.StatusNotFound, http.MethodPatch, "/v1/applications/"+id, []byte(`{"form":{"note":"sau"}}`),
			"Content-Type", "application/merge-patch+json")
		emp.must(http.StatusNotFound, http.MethodDelete, "/v1/applications/"+id, nil)
		after := rep.must(http.StatusOK, http.MethodGet, "/v1/applications/"+id, nil).json(t)
		if after["status"] != "draft" || !jsonEqual(after["form"], before["form"]) || after["updated_at"] != before["updated_at"] {
			t.Errorf("after the refused writes: %v, want %v", after, before)
		}

		// A service that refuses representation refuses even the legal
		// representative; an unknown tax code is a 400, a malformed one a
		// 422.
		rep.must(http.StatusForbidden, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+inPerson+`",`+subject+`}`))
		rep.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+bizB+`",`+subject+`}`))
		rep.must(http.StatusBadRequest, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+bizA+`","subject":{"organisation":"0199999999"}}`))
		rep.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+bizA+`","subject":{"organisation":"12"}}`))
		rep.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/applications",
			[]byte(`{"service_id":"`+bizA+`","subject":{"organisation":"`+repTaxCode+`","person":"`+repChild.PersonalID+`"}}`))
		// Naming oneself is applying for oneself.
		own := rep.must(http.StatusCreated, http.MethodPost, "/v1/applications",
			[]byte(`{"service_id":"`+bizA+`","subject":{"person":"`+demoCitizens[3].PersonalID+`"}}`)).json(t)
		if sub, _ := own["subject"].(map[string]any); sub["id"] != legalRep {
			t.Errorf("oneself named: subject %v", sub)
		}
		// A stranger cannot act for the company.
		stranger.must(http.StatusForbidden, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+bizA+`",`+subject+`}`))
	})
}

// homeHas reports whether the home's represented section for party lists
// the application.
func homeHas(home map[string]any, party, appID string) bool {
	secs, _ := home["represented"].([]any)
	for _, s := range secs {
		sec, _ := s.(map[string]any)
		if p, _ := sec["party"].(map[string]any); p["id"] != party {
			continue
		}
		items, _ := sec["action_needed"].([]any)
		for _, it := range items {
			if it.(map[string]any)["id"] == appID {
				return true
			}
		}
	}
	return false
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
