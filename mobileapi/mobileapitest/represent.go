package mobileapitest

import (
	"encoding/json"
	"slices"
	"sort"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// Fake parties of representation: a company, a ward, their representatives.
const (
	appsOrg      = "org:test-company"
	appsWard     = "test-ward"
	appsEmployee = "test-employee"
	appsStranger = "test-stranger"
)

// createFor stores a draft citizenID files for subject, for service code
// and category.
func (e *appsEnv) createFor(citizenID string, subject mobileapi.Subject, code, category string) *mobileapi.Application {
	e.t.Helper()
	a := &mobileapi.Application{
		CitizenID: citizenID, ApplicantName: "Người Nộp Thử", Subject: subject,
		ServiceID: "svc_" + code, ServiceCode: code, ServiceCategory: category, ServiceVersion: 1, AgencyCode: appsAgencyX,
		Form: json.RawMessage(`{}`),
	}
	e.must(e.s.CreateApplication(e.ctx, a), "create application for "+subject.ID)
	return a
}

func (e *appsEnv) visibleIDs(scope mobileapi.Scope, subjectID string) []string {
	e.t.Helper()
	apps, next, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: scope, SubjectID: subjectID,
		Page: mobileapi.Page{Limit: mobileapi.MaxLimit}})
	e.must(err, "list applications")
	if next != "" {
		e.t.Fatalf("list: more than one page")
	}
	ids := appsIDs(apps, appsAppID)
	sort.Strings(ids)
	return ids
}

func sortedIDs(as ...*mobileapi.Application) []string {
	ids := appsIDs(as, appsAppID)
	sort.Strings(ids)
	return ids
}

// appsRepresentation: an application filed for someone else is seen by a
// person it is about and by whoever the scope says represents its subject
// for its service (a mandate bounded by service code or category sees only
// those), its applicant among them: an applicant who no longer represents
// the subject for its service (a mandate revoked, a ward come of age) no
// longer sees it. Only the applicant changes it; the subject defaults to
// the applicant, who always sees their own; lists and reads agree.
func appsRepresentation(e *appsEnv) {
	t := e.t
	org := mobileapi.Subject{Type: mobileapi.SubjectOrganisation, ID: appsOrg, Name: "Công ty Thử (demo)", Ref: "0101234567"}
	ward := mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: appsWard, Name: "Cháu Thử", Ref: "001226000001"}

	own := e.create(appsCitizenA, appsAgencyX)
	if own.Subject.ID != appsCitizenA || own.Subject.Type != mobileapi.SubjectPerson || own.ForSomeoneElse() {
		t.Errorf("own application's subject = %+v, want the applicant", own.Subject)
	}
	forOrgA := e.createFor(appsEmployee, org, "SVC.A", "business")
	e.clock.advance(1)
	forOrgB := e.createFor(appsCitizenA, org, "SVC.B", "transport")
	e.clock.advance(1)
	forWard := e.createFor(appsCitizenA, ward, "SVC.C", "civil_status")
	employee := mobileapi.Scope{CitizenID: appsEmployee, Represents: []mobileapi.Represented{{PartyID: appsOrg, Services: []string{"SVC.A"}}}}
	applicant := mobileapi.Scope{CitizenID: appsCitizenA, Represents: []mobileapi.Represented{
		{PartyID: appsOrg, Services: []string{"SVC.B"}}, {PartyID: appsWard}}}
	if got := e.get(employee, forOrgA.ID); !reflectSubject(got.Subject, org) || got.ApplicantName != "Người Nộp Thử" || got.ServiceCategory != "business" {
		t.Errorf("stored subject %+v, applicant name %q, category %q", got.Subject, got.ApplicantName, got.ServiceCategory)
	}

	legalRep := mobileapi.Scope{CitizenID: appsCitizenB, Represents: []mobileapi.Represented{{PartyID: appsOrg}}}
	byCode := mobileapi.Scope{CitizenID: appsStranger, Represents: []mobileapi.Represented{{PartyID: appsOrg, Services: []string{"SVC.B"}}}}
	byCategory := mobileapi.Scope{CitizenID: appsStranger, Represents: []mobileapi.Represented{{PartyID: appsOrg, Categories: []string{"business"}}}}
	guardian := mobileapi.Scope{CitizenID: appsCitizenB, Represents: []mobileapi.Represented{{PartyID: appsWard}}}
	for _, c := range []struct {
		what  string
		scope mobileapi.Scope
		want  []string
	}{
		{"the applicant, representing both parties", applicant, sortedIDs(own, forOrgB, forWard)},
		{"the applicant, representing nobody now", appsCitizen(appsCitizenA), sortedIDs(own)},
		{"the applicant, now the company's for another category", mobileapi.Scope{CitizenID: appsCitizenA,
			Represents: []mobileapi.Represented{{PartyID: appsOrg, Categories: []string{"business"}}}}, sortedIDs(own, forOrgA)},
		{"the employee under their mandate", employee, sortedIDs(forOrgA)},
		{"the employee, mandate revoked", appsCitizen(appsEmployee), nil},
		{"the ward themself", appsCitizen(appsWard), sortedIDs(forWard)},
		{"the legal representative", legalRep, sortedIDs(forOrgA, forOrgB)},
		{"a mandate for SVC.B", byCode, sortedIDs(forOrgB)},
		{"a mandate for category business", byCategory, sortedIDs(forOrgA)},
		{"the other guardian", guardian, sortedIDs(forWard)},
		{"a stranger", appsCitizen(appsStranger), nil},
		{"the agency (drafts)", appsAgency(appsAgencyX), nil},
	} {
		got := e.visibleIDs(c.scope, "")
		if !slices.Equal(got, c.want) {
			t.Errorf("%s lists %v, want %v", c.what, got, c.want)
		}
		for _, a := range []*mobileapi.Application{own, forOrgA, forOrgB, forWard} {
			_, err := e.s.GetApplication(e.ctx, c.scope, a.ID)
			if slices.Contains(c.want, a.ID) != (err == nil) {
				t.Errorf("%s reads %s: err %v, listed %v", c.what, a.Subject.ID, err, slices.Contains(c.want, a.ID))
			}
			if err != nil {
				appsWantErr(t, err, idp.ErrNotFound, c.what+" reads another's")
			}
		}
	}
	if got := e.visibleIDs(legalRep, appsOrg); !slices.Equal(got, sortedIDs(forOrgA, forOrgB)) {
		t.Errorf("the legal representative's list of the company's = %v", got)
	}
	if got := e.visibleIDs(applicant, appsOrg); !slices.Equal(got, sortedIDs(forOrgB)) {
		t.Errorf("the applicant's list of the company's = %v, want only what they filed", got)
	}

	// Only the applicant changes it, whoever else sees it; nothing moves.
	_, err := e.s.UpdateForm(e.ctx, legalRep, forOrgA.ID, 0, json.RawMessage(`{"x":1}`))
	appsWantErr(t, err, mobileapi.ErrNotApplicant, "the legal representative edits the employee's draft")
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsWard), ApplicationID: forWard.ID,
		Actor: mobileapi.ActorCitizen, To: mobileapi.StatusSubmitted})
	appsWantErr(t, err, mobileapi.ErrNotApplicant, "the ward submits their guardian's application")
	_, err = e.s.DeleteDraft(e.ctx, appsCitizen(appsStranger), forOrgA.ID, 0)
	appsWantErr(t, err, idp.ErrNotFound, "a stranger deletes it")
	_, err = e.s.UpdateForm(e.ctx, appsCitizen(appsEmployee), forOrgA.ID, 0, json.RawMessage(`{"x":1}`))
	appsWantErr(t, err, idp.ErrNotFound, "the employee edits their draft after the revocation")
	_, err = e.s.DeleteDraft(e.ctx, appsCitizen(appsEmployee), forOrgA.ID, 0)
	appsWantErr(t, err, idp.ErrNotFound, "the employee deletes their draft after the revocation")
	if got := e.get(employee, forOrgA.ID); got.Version != forOrgA.Version || got.Status != mobileapi.StatusDraft {
		t.Errorf("after refused writes: version %d status %s", got.Version, got.Status)
	}
	upd, err := e.s.UpdateForm(e.ctx, employee, forOrgA.ID, forOrgA.Version, json.RawMessage(`{"x":2}`))
	e.must(err, "the applicant edits their draft for the company")
	if !reflectSubject(upd.Subject, org) {
		t.Errorf("subject after an edit: %+v", upd.Subject)
	}
}

func reflectSubject(a, b mobileapi.Subject) bool { return a == b }

// appsInboxRecipients: a decision's message reaches exactly the citizens
// the caller names (Transition.Recipients), each once, in the same
// transaction; the store adds nobody, not even the applicant (one who no
// longer represents the subject is left out by the caller); the first
// copy is the one returned. An inbox message with no recipient is refused
// and changes nothing.
func appsInboxRecipients(e *appsEnv) {
	t := e.t
	ward := mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: appsWard, Name: "Cháu Thử", Ref: "001226000001"}
	a := e.createFor(appsCitizenA, ward, "SVC.C", "civil_status")
	a = e.mustMove(a, mobileapi.ActorCitizen, mobileapi.StatusSubmitted)

	none := &mobileapi.Message{Title: mobileapi.Text{VI: "Đã duyệt", EN: "Approved"}}
	_, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusInReview, Inbox: none, Recipients: []string{"", ""}})
	appsWantErr(t, err, idp.ErrInvalid, "an inbox message for nobody")
	if got := e.get(appsAgency(appsAgencyX), a.ID); got.Status != mobileapi.StatusSubmitted || got.Version != a.Version || none.ID != "" {
		t.Errorf("after a refused transition: status %s version %d, message %+v", got.Status, got.Version, none)
	}

	// The applicant no longer represents the ward: the caller leaves them out.
	m := &mobileapi.Message{Title: mobileapi.Text{VI: "Đang xử lý", EN: "In review"}, Body: "Thử."}
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusInReview, Inbox: m,
		Recipients: []string{appsWard, appsCitizenB, appsWard, ""}})
	e.must(err, "review with recipients")
	if m.CitizenID != appsWard || m.ID == "" {
		t.Errorf("returned message is %s's (id %q), want the first recipient's", m.CitizenID, m.ID)
	}
	if ms := e.inbox(appsCitizenA); len(ms) != 0 {
		t.Errorf("the applicant, not named, got %+v", ms)
	}
	for _, who := range []string{appsWard, appsCitizenB} {
		if ms := e.inbox(who); len(ms) != 1 || ms[0].Status != mobileapi.StatusInReview {
			t.Errorf("%s's inbox = %+v, want one copy of the review", who, ms)
		}
	}

	// Named, the applicant gets their copy like the others.
	d := &mobileapi.Message{Title: mobileapi.Text{VI: "Đã duyệt", EN: "Approved"}, Body: "Thử."}
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusApproved, Inbox: d,
		Recipients: []string{appsCitizenA, appsWard, appsCitizenB, appsCitizenA, appsWard, ""}})
	e.must(err, "decide with recipients")
	if d.CitizenID != appsCitizenA {
		t.Errorf("returned message is %s's, want the first recipient's (the applicant)", d.CitizenID)
	}
	for _, who := range []string{appsCitizenA, appsWard, appsCitizenB} {
		var got []*mobileapi.Message
		for _, x := range e.inbox(who) {
			if x.Status == mobileapi.StatusApproved {
				got = append(got, x)
			}
		}
		if len(got) != 1 || got[0].ApplicationID != a.ID || got[0].Title != d.Title {
			t.Errorf("%s's inbox = %+v, want one copy of the decision", who, got)
		}
	}
	if ms := e.inbox(appsStranger); len(ms) != 0 {
		t.Errorf("a stranger's inbox = %+v", ms)
	}
	for _, x := range e.inbox(appsWard) {
		if x.ID == d.ID {
			t.Errorf("copies share the applicant's message id")
		}
	}
}

// catServiceRepresentation: a service's representation policy is stored
// with its version; changing it is a new version; an unknown policy is
// refused.
func catServiceRepresentation(t *testing.T, s AgencyCatalog) {
	catSeed(t, s)
	svc := catService("1.010081")
	catPut(t, s, svc, 0)
	if !svc.AcceptsRepresentation() {
		t.Errorf("a service accepts representation by default")
	}
	refused := catCopy(svc)
	refused.Representation = mobileapi.RepresentationRefused
	catPut(t, s, refused, 0)
	if refused.Version != svc.Version+1 || refused.AcceptsRepresentation() {
		t.Errorf("refusing representation: version %d, accepts %v", refused.Version, refused.AcceptsRepresentation())
	}
	catCheckStored(t, s, refused)
	old, err := s.GetServiceVersion(t.Context(), svc.ID, svc.Version)
	if err != nil || !old.AcceptsRepresentation() {
		t.Errorf("the earlier version: %+v, %v", old, err)
	}
	bad := catCopy(refused)
	bad.Representation = "sometimes"
	_, err = s.PutService(t.Context(), bad, 0)
	catWantErr(t, "an unknown policy", err, idp.ErrInvalid)
}
