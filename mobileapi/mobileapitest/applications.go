// Package mobileapitest holds the conformance suites every implementation
// of the mobile API's stores passes, whatever its engine.
package mobileapitest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// ApplicationStores is what RunApplications tests: the stores of
// applications, the agencies' queue and webhooks, and the inbox, which
// share transactions and so one implementation.
type ApplicationStores interface {
	mobileapi.ApplicationStore
	mobileapi.QueueStore
	mobileapi.WebhookStore
	mobileapi.InboxStore
}

// RunApplications runs the conformance suite of ApplicationStores.
// newStore returns an empty store whose clock is now: the suite moves time
// to expire leases and claims and to order lists.
func RunApplications(t *testing.T, newStore func(t *testing.T, now func() time.Time) ApplicationStores) {
	tests := []struct {
		name string
		fn   func(e *appsEnv)
	}{
		{"Lifecycle", appsLifecycle},
		{"CreateValidation", appsCreateValidation},
		{"Scope", appsScope},
		{"Transitions", appsTransitions},
		{"WithdrawEvent", appsWithdrawEvent},
		{"IfMatch", appsIfMatch},
		{"ConcurrentWriters", appsConcurrentWriters},
		{"EditableOnly", appsEditableOnly},
		{"DeleteDraft", appsDeleteDraft},
		{"Documents", appsDocuments},
		{"TransitionAtomic", appsTransitionAtomic},
		{"ListPagination", appsListPagination},
		{"ListWhileChanging", appsListWhileChanging},
		{"ListFilterAndScope", appsListFilterAndScope},
		{"LeaseOrder", appsLeaseOrder},
		{"LeaseConcurrent", appsLeaseConcurrent},
		{"LeaseExpiry", appsLeaseExpiry},
		{"Webhooks", appsWebhooks},
		{"DeliveryRetry", appsDeliveryRetry},
		{"ClaimConcurrent", appsClaimConcurrent},
		{"ClaimFairness", appsClaimFairness},
		{"WebhookDeleteStopsDeliveries", appsWebhookDelete},
		{"Inbox", appsInbox},
		{"QuotaAttachments", appsQuotaAttachments},
		{"QuotaWebhooks", appsQuotaWebhooks},
		{"GetDocumentAndBlobReferences", appsGetDocumentAndBlobReferences},
		{"Representation", appsRepresentation},
		{"InboxRecipients", appsInboxRecipients},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &appsClock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
			tc.fn(&appsEnv{t: t, ctx: t.Context(), s: newStore(t, c.now), clock: c})
		})
	}
}

// appsClock is the stores' clock, moved by the suite alone.
type appsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *appsClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *appsClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// appsEnv is one test's store, clock and helpers.
type appsEnv struct {
	t     *testing.T
	ctx   context.Context
	s     ApplicationStores
	clock *appsClock
}

// Fake parties: no real person or agency.
const (
	appsCitizenA = "test-citizen-a"
	appsCitizenB = "test-citizen-b"
	appsAgencyX  = "TEST-AGENCY-X"
	appsAgencyY  = "TEST-AGENCY-Y"
)

var appsAllStatuses = []mobileapi.Status{
	mobileapi.StatusDraft, mobileapi.StatusSubmitted, mobileapi.StatusInReview, mobileapi.StatusNeedsInformation,
	mobileapi.StatusApproved, mobileapi.StatusRejected, mobileapi.StatusWithdrawn,
}

var appsIDPattern = regexp.MustCompile(`^[a-z]+_[a-z2-7]{26}$`)

func (e *appsEnv) checkID(what, id, prefix string) {
	e.t.Helper()
	if !appsIDPattern.MatchString(id) || id[:len(prefix)+1] != prefix+"_" {
		e.t.Errorf("%s ID %q: want %s_ and 26 base32 characters", what, id, prefix)
	}
}

func appsWantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

func (e *appsEnv) must(err error, what string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
}

func appsCitizen(id string) mobileapi.Scope  { return mobileapi.Scope{CitizenID: id} }
func appsAgency(code string) mobileapi.Scope { return mobileapi.Scope{AgencyCode: code} }

// create stores a draft of citizen's for agency.
func (e *appsEnv) create(citizenID, agencyCode string) *mobileapi.Application {
	e.t.Helper()
	a := &mobileapi.Application{
		CitizenID: citizenID, ServiceID: "svc_test", ServiceCode: "TEST.001", ServiceVersion: 2, AgencyCode: agencyCode,
		Form: json.RawMessage(`{"full_name":"Nguyễn Văn Thử"}`),
	}
	e.must(e.s.CreateApplication(e.ctx, a), "create application")
	return a
}

// move makes actor move a to status to, in actor's scope.
func (e *appsEnv) move(a *mobileapi.Application, actor mobileapi.Actor, to mobileapi.Status) (*mobileapi.Application, error) {
	t := mobileapi.Transition{ApplicationID: a.ID, Actor: actor, To: to}
	if actor == mobileapi.ActorCitizen {
		t.Scope, t.By = appsCitizen(a.CitizenID), "citizen"
		if a.ForSomeoneElse() { // the applicant still represents the subject
			t.Scope.Represents = []mobileapi.Represented{{PartyID: a.Subject.ID}}
		}
	} else {
		t.Scope, t.By = appsAgency(a.AgencyCode), "agency:"+a.AgencyCode
	}
	return e.s.Transition(e.ctx, t)
}

func (e *appsEnv) mustMove(a *mobileapi.Application, actor mobileapi.Actor, to mobileapi.Status) *mobileapi.Application {
	e.t.Helper()
	b, err := e.move(a, actor, to)
	e.must(err, fmt.Sprintf("move %s to %s", a.Status, to))
	return b
}

// reach creates an application and brings it to status st.
func (e *appsEnv) reach(citizenID, agencyCode string, st mobileapi.Status) *mobileapi.Application {
	e.t.Helper()
	a := e.create(citizenID, agencyCode)
	if st == mobileapi.StatusDraft {
		return a
	}
	a = e.mustMove(a, mobileapi.ActorCitizen, mobileapi.StatusSubmitted)
	switch st {
	case mobileapi.StatusSubmitted:
	case mobileapi.StatusWithdrawn:
		a = e.mustMove(a, mobileapi.ActorCitizen, st)
	default:
		a = e.mustMove(a, mobileapi.ActorAgency, st)
	}
	return a
}

func (e *appsEnv) get(scope mobileapi.Scope, id string) *mobileapi.Application {
	e.t.Helper()
	a, err := e.s.GetApplication(e.ctx, scope, id)
	e.must(err, "get application")
	return a
}

func (e *appsEnv) lease(agencyCode string, n int, d time.Duration) []*mobileapi.Lease {
	e.t.Helper()
	ls, err := e.s.Lease(e.ctx, agencyCode, n, d)
	e.must(err, "lease")
	return ls
}

func (e *appsEnv) claim(n int, d time.Duration) []*mobileapi.Delivery {
	e.t.Helper()
	ds, err := e.s.ClaimDeliveries(e.ctx, n, d)
	e.must(err, "claim deliveries")
	return ds
}

func (e *appsEnv) deliveries(agencyCode, webhookID string) []*mobileapi.Delivery {
	e.t.Helper()
	ds, next, err := e.s.ListDeliveries(e.ctx, agencyCode, webhookID, mobileapi.Page{Limit: mobileapi.MaxLimit})
	e.must(err, "list deliveries")
	if next != "" {
		e.t.Fatalf("list deliveries: more than one page")
	}
	return ds
}

func (e *appsEnv) inbox(citizenID string) []*mobileapi.Message {
	e.t.Helper()
	ms, _, err := e.s.ListInbox(e.ctx, citizenID, mobileapi.Page{Limit: mobileapi.MaxLimit})
	e.must(err, "list inbox")
	return ms
}

func (e *appsEnv) webhook(agencyCode string, events ...mobileapi.EventType) *mobileapi.Webhook {
	e.t.Helper()
	w := &mobileapi.Webhook{AgencyCode: agencyCode, URL: "https://hooks.example.test/" + agencyCode, Events: events, Description: "test hook"}
	e.must(e.s.CreateWebhook(e.ctx, w), "create webhook")
	return w
}

func (e *appsEnv) file(name string) *mobileapi.File {
	return &mobileapi.File{Name: name, ContentType: "application/pdf", Size: 1234,
		SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", DocumentCode: "ID_CARD"}
}

func appsIDs[T any](xs []T, id func(T) string) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func appsAppID(a *mobileapi.Application) string   { return a.ID }
func appsDeliveryID(d *mobileapi.Delivery) string { return d.ID }

func appsTimePtr(t time.Time) *time.Time { return &t }

func appsSame(t *testing.T, what string, got, want *mobileapi.Application) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// appsLifecycle follows one application from draft to decision through
// needs_information and resubmission, checking every step's record.
func appsLifecycle(e *appsEnv) {
	t := e.t
	t0 := e.clock.now()
	a := &mobileapi.Application{
		CitizenID: appsCitizenA, ServiceID: "svc_test", ServiceCode: "TEST.001", ServiceVersion: 3, AgencyCode: appsAgencyX,
		Form: json.RawMessage(`{"full_name":"Nguyễn Văn Thử"}`),
		Prefilled: map[string]mobileapi.Provenance{
			"/full_name": {Source: "population", Field: "name", AsOf: t0.Add(-time.Hour)},
		},
	}
	e.must(e.s.CreateApplication(e.ctx, a), "create")
	e.checkID("application", a.ID, "app")
	want := &mobileapi.Application{
		ID: a.ID, CitizenID: appsCitizenA, ServiceID: "svc_test", ServiceCode: "TEST.001", ServiceVersion: 3, AgencyCode: appsAgencyX,
		Status: mobileapi.StatusDraft, Form: json.RawMessage(`{"full_name":"Nguyễn Văn Thử"}`), Prefilled: a.Prefilled,
		Timeline: []mobileapi.TimelineEntry{{At: t0, By: "citizen", To: mobileapi.StatusDraft}},
		Version:  1, CreatedAt: t0, UpdatedAt: t0,
		// Filed for nobody else: the applicant is the subject.
		Subject: mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: appsCitizenA},
	}
	appsSame(t, "created", a, want)
	appsSame(t, "read back", e.get(appsCitizen(appsCitizenA), a.ID), want)
	_, err := e.s.GetApplication(e.ctx, appsAgency(appsAgencyX), a.ID)
	appsWantErr(t, err, idp.ErrNotFound, "agency reads a draft")

	t1 := e.clock.advance(time.Minute)
	b, err := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 1, json.RawMessage(`{"full_name":"Nguyễn Văn Thử","note":"x"}`))
	e.must(err, "update form")
	want.Form, want.Version, want.UpdatedAt = json.RawMessage(`{"full_name":"Nguyễn Văn Thử","note":"x"}`), 2, t1
	appsSame(t, "after form update", b, want)

	att := e.file("id-card.pdf")
	b, err = e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 2, att)
	e.must(err, "add attachment")
	e.checkID("attachment", att.ID, "att")
	if wk := "applications/" + a.ID + "/attachments/" + att.ID; att.BlobKey != wk {
		t.Errorf("attachment blob key = %q, want %q", att.BlobKey, wk)
	}
	if att.CreatedAt != t1 {
		t.Errorf("attachment created at %v, want %v", att.CreatedAt, t1)
	}
	want.Attachments, want.Version = []mobileapi.File{*att}, 3
	appsSame(t, "after attachment", b, want)

	t2 := e.clock.advance(time.Minute)
	b, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsCitizenA), ApplicationID: a.ID, IfVersion: 3,
		Actor: mobileapi.ActorCitizen, By: "citizen", To: mobileapi.StatusSubmitted})
	e.must(err, "submit")
	want.Status, want.Version, want.UpdatedAt, want.SubmittedAt = mobileapi.StatusSubmitted, 4, t2, appsTimePtr(t2)
	want.Timeline = append(want.Timeline, mobileapi.TimelineEntry{At: t2, By: "citizen", From: mobileapi.StatusDraft, To: mobileapi.StatusSubmitted})
	appsSame(t, "submitted", b, want)
	appsSame(t, "the agency's view", e.get(appsAgency(appsAgencyX), a.ID), want)

	ls := e.lease(appsAgencyX, 10, time.Minute)
	if len(ls) != 1 {
		t.Fatalf("leases after submission = %d, want 1", len(ls))
	}
	e.checkID("lease", ls[0].ID, "lse")
	e.checkID("event", ls[0].Event.ID, "evt")
	wantEvent := mobileapi.Event{ID: ls[0].Event.ID, Type: mobileapi.EventSubmitted, AgencyCode: appsAgencyX, ApplicationID: a.ID,
		ServiceID: "svc_test", ServiceCode: "TEST.001", OccurredAt: t2}
	if ls[0].Event != wantEvent || !ls[0].ExpiresAt.Equal(t2.Add(time.Minute)) {
		t.Errorf("lease = %+v, want event %+v expiring at %v", ls[0], wantEvent, t2.Add(time.Minute))
	}
	e.must(e.s.Ack(e.ctx, appsAgencyX, ls[0].ID), "ack")

	t3 := e.clock.advance(time.Minute)
	b, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID, IfVersion: 4,
		Actor: mobileapi.ActorAgency, By: "agency:" + appsAgencyX, To: mobileapi.StatusInReview})
	e.must(err, "review")
	want.Status, want.Version, want.UpdatedAt = mobileapi.StatusInReview, 5, t3
	want.Timeline = append(want.Timeline, mobileapi.TimelineEntry{At: t3, By: "agency:" + appsAgencyX, From: mobileapi.StatusSubmitted, To: mobileapi.StatusInReview})
	appsSame(t, "in review", b, want)

	t4 := e.clock.advance(time.Minute)
	ask := &mobileapi.Message{Title: mobileapi.Text{VI: "Cần bổ sung", EN: "Information needed"}, Body: "Thiếu giấy khai sinh."}
	b, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID, IfVersion: 5,
		Actor: mobileapi.ActorAgency, By: "agency:" + appsAgencyX, To: mobileapi.StatusNeedsInformation,
		Message: "Thiếu giấy khai sinh.", Inbox: ask, Recipients: []string{a.CitizenID}})
	e.must(err, "ask for information")
	want.Status, want.Version, want.UpdatedAt = mobileapi.StatusNeedsInformation, 6, t4
	want.Timeline = append(want.Timeline, mobileapi.TimelineEntry{At: t4, By: "agency:" + appsAgencyX, From: mobileapi.StatusInReview,
		To: mobileapi.StatusNeedsInformation, Message: "Thiếu giấy khai sinh."})
	appsSame(t, "needs information", b, want)
	e.checkID("message", ask.ID, "msg")
	wantAsk := mobileapi.Message{ID: ask.ID, CitizenID: appsCitizenA, ApplicationID: a.ID, Status: mobileapi.StatusNeedsInformation,
		AgencyCode: appsAgencyX, Title: ask.Title, Body: ask.Body, CreatedAt: t4}
	if !reflect.DeepEqual(*ask, wantAsk) {
		t.Errorf("inbox message filled in = %+v, want %+v", *ask, wantAsk)
	}
	if got := e.inbox(appsCitizenA); len(got) != 1 || !reflect.DeepEqual(*got[0], wantAsk) {
		t.Errorf("inbox = %+v, want [%+v]", got, wantAsk)
	}
	if ls := e.lease(appsAgencyX, 10, time.Minute); len(ls) != 0 {
		t.Errorf("an agency's transition queued %d events", len(ls))
	}

	t5 := e.clock.advance(time.Minute)
	b, err = e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 6, json.RawMessage(`{"full_name":"Nguyễn Văn Thử","note":"y"}`))
	e.must(err, "update form in needs_information")
	att2 := e.file("birth-certificate.pdf")
	b, err = e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, b.Version, att2)
	e.must(err, "add attachment in needs_information")
	want.Form, want.Version, want.UpdatedAt = json.RawMessage(`{"full_name":"Nguyễn Văn Thử","note":"y"}`), 8, t5
	want.Attachments = append(want.Attachments, *att2)
	appsSame(t, "completed", b, want)

	t6 := e.clock.advance(time.Minute)
	b, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsCitizenA), ApplicationID: a.ID, IfVersion: 8,
		Actor: mobileapi.ActorCitizen, By: "citizen", To: mobileapi.StatusSubmitted})
	e.must(err, "resubmit")
	want.Status, want.Version, want.UpdatedAt, want.SubmittedAt = mobileapi.StatusSubmitted, 9, t6, appsTimePtr(t6)
	want.Timeline = append(want.Timeline, mobileapi.TimelineEntry{At: t6, By: "citizen", From: mobileapi.StatusNeedsInformation, To: mobileapi.StatusSubmitted})
	appsSame(t, "resubmitted", b, want)
	ls = e.lease(appsAgencyX, 10, time.Minute)
	if len(ls) != 1 || ls[0].Event.Type != mobileapi.EventResubmitted || ls[0].Event.OccurredAt != t6 {
		t.Fatalf("leases after resubmission = %+v, want one resubmitted event", ls)
	}
	e.must(e.s.Ack(e.ctx, appsAgencyX, ls[0].ID), "ack")

	t7 := e.clock.advance(time.Minute)
	doc := &mobileapi.File{Name: "giay-khai-sinh.pdf", ContentType: "application/pdf", Size: 4321,
		SHA256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"}
	e.must(e.s.AddDocument(e.ctx, appsAgencyX, a.ID, doc), "add document")
	e.checkID("document", doc.ID, "doc")
	if wk := "applications/" + a.ID + "/documents/" + doc.ID; doc.BlobKey != wk || doc.CreatedAt != t7 {
		t.Errorf("document = %+v, want blob key %q created at %v", doc, wk, t7)
	}
	appsSame(t, "an unpublished document changes nothing", e.get(appsCitizen(appsCitizenA), a.ID), want)

	t8 := e.clock.advance(time.Minute)
	done := &mobileapi.Message{Title: mobileapi.Text{VI: "Đã duyệt", EN: "Approved"}, Body: "Mời nhận kết quả."}
	b, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID, IfVersion: 9,
		Actor: mobileapi.ActorAgency, By: "agency:" + appsAgencyX, To: mobileapi.StatusApproved, Documents: []string{doc.ID}, Inbox: done, Recipients: []string{a.CitizenID}})
	e.must(err, "approve")
	want.Status, want.Version, want.UpdatedAt, want.DecidedAt = mobileapi.StatusApproved, 10, t8, appsTimePtr(t8)
	want.Results = []mobileapi.File{*doc}
	want.Timeline = append(want.Timeline, mobileapi.TimelineEntry{At: t8, By: "agency:" + appsAgencyX, From: mobileapi.StatusSubmitted, To: mobileapi.StatusApproved})
	appsSame(t, "approved", b, want)
	appsSame(t, "approved, read back", e.get(appsCitizen(appsCitizenA), a.ID), want)
	if !reflect.DeepEqual(done.Results, []mobileapi.File{*doc}) || done.Status != mobileapi.StatusApproved {
		t.Errorf("decision message = %+v, want the document as its result", done)
	}
	if got := e.inbox(appsCitizenA); len(got) != 2 || !reflect.DeepEqual(*got[0], *done) || !reflect.DeepEqual(*got[1], wantAsk) {
		t.Errorf("inbox = %+v, want the decision then the request", got)
	}

	_, err = e.move(b, mobileapi.ActorCitizen, mobileapi.StatusWithdrawn)
	appsWantErr(t, err, idp.ErrConflict, "withdraw after the decision")
	appsSame(t, "after a refused withdrawal", e.get(appsCitizen(appsCitizenA), a.ID), want)
}

func appsCreateValidation(e *appsEnv) {
	ok := mobileapi.Application{CitizenID: appsCitizenA, ServiceID: "svc_test", ServiceCode: "TEST.001", ServiceVersion: 1, AgencyCode: appsAgencyX}
	for name, mut := range map[string]func(a *mobileapi.Application){
		"no citizen":      func(a *mobileapi.Application) { a.CitizenID = "" },
		"no service":      func(a *mobileapi.Application) { a.ServiceID = "" },
		"no version":      func(a *mobileapi.Application) { a.ServiceVersion = 0 },
		"no agency":       func(a *mobileapi.Application) { a.AgencyCode = "" },
		"form not object": func(a *mobileapi.Application) { a.Form = json.RawMessage(`[1]`) },
		"form not JSON":   func(a *mobileapi.Application) { a.Form = json.RawMessage(`{`) },
	} {
		a := ok
		mut(&a)
		appsWantErr(e.t, e.s.CreateApplication(e.ctx, &a), idp.ErrInvalid, name)
	}
	a := ok
	a.Status, a.Version = mobileapi.StatusApproved, 7 // ignored: a new application is a draft
	e.must(e.s.CreateApplication(e.ctx, &a), "create")
	if a.Status != mobileapi.StatusDraft || a.Version != 1 || string(a.Form) != "{}" {
		e.t.Errorf("created %+v, want a draft at version 1 with an empty form", a)
	}
	if ls, _, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA)}); err != nil || len(ls) != 1 {
		e.t.Errorf("list after one valid create = %d, %v; want 1", len(ls), err)
	}
}

// appsScope checks that another's application is not found, whatever the
// call, and that a scope must name exactly one party.
func appsScope(e *appsEnv) {
	t := e.t
	draft := e.create(appsCitizenA, appsAgencyX)
	sub := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	needs := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusNeedsInformation)
	before := map[string]*mobileapi.Application{}
	for _, a := range []*mobileapi.Application{draft, sub, needs} {
		before[a.ID] = e.get(appsCitizen(appsCitizenA), a.ID)
	}

	for _, a := range []*mobileapi.Application{draft, sub, needs} {
		_, err := e.s.GetApplication(e.ctx, appsCitizen(appsCitizenB), a.ID)
		appsWantErr(t, err, idp.ErrNotFound, "another citizen gets "+string(a.Status))
		_, err = e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenB), a.ID, 0, json.RawMessage(`{}`))
		appsWantErr(t, err, idp.ErrNotFound, "another citizen updates "+string(a.Status))
		_, err = e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenB), a.ID, 99, json.RawMessage(`{}`))
		appsWantErr(t, err, idp.ErrNotFound, "another citizen updates "+string(a.Status)+" with a stale version")
		_, err = e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenB), a.ID, 0, e.file("x.pdf"))
		appsWantErr(t, err, idp.ErrNotFound, "another citizen attaches to "+string(a.Status))
		_, err = e.s.DeleteDraft(e.ctx, appsCitizen(appsCitizenB), a.ID, 0)
		appsWantErr(t, err, idp.ErrNotFound, "another citizen deletes "+string(a.Status))
		_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsCitizenB), ApplicationID: a.ID,
			Actor: mobileapi.ActorCitizen, By: "citizen", To: mobileapi.StatusWithdrawn})
		appsWantErr(t, err, idp.ErrNotFound, "another citizen withdraws "+string(a.Status))
		_, err = e.s.GetApplication(e.ctx, appsAgency(appsAgencyY), a.ID)
		appsWantErr(t, err, idp.ErrNotFound, "another agency gets "+string(a.Status))
		_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyY), ApplicationID: a.ID,
			Actor: mobileapi.ActorAgency, By: "agency:" + appsAgencyY, To: mobileapi.StatusRejected})
		appsWantErr(t, err, idp.ErrNotFound, "another agency rejects "+string(a.Status))
		appsWantErr(t, e.s.AddDocument(e.ctx, appsAgencyY, a.ID, e.file("y.pdf")), idp.ErrNotFound, "another agency adds a document to "+string(a.Status))
	}
	// The competent agency does not see drafts.
	_, err := e.s.GetApplication(e.ctx, appsAgency(appsAgencyX), draft.ID)
	appsWantErr(t, err, idp.ErrNotFound, "agency gets a draft")
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: draft.ID,
		Actor: mobileapi.ActorAgency, By: "agency:" + appsAgencyX, To: mobileapi.StatusInReview})
	appsWantErr(t, err, idp.ErrNotFound, "agency moves a draft")
	appsWantErr(t, e.s.AddDocument(e.ctx, appsAgencyX, draft.ID, e.file("z.pdf")), idp.ErrNotFound, "agency adds a document to a draft")
	// The agency does not edit the citizen's form or attachments.
	if _, err := e.s.UpdateForm(e.ctx, appsAgency(appsAgencyX), needs.ID, 0, json.RawMessage(`{"x":1}`)); err == nil {
		t.Error("the agency updated the citizen's form")
	}
	if _, err := e.s.AddAttachment(e.ctx, appsAgency(appsAgencyX), needs.ID, 0, e.file("x.pdf")); err == nil {
		t.Error("the agency added a citizen's attachment")
	}
	// Unknown IDs.
	_, err = e.s.GetApplication(e.ctx, appsCitizen(appsCitizenA), "app_unknown")
	appsWantErr(t, err, idp.ErrNotFound, "unknown application")
	appsWantErr(t, e.s.AddDocument(e.ctx, appsAgencyX, "app_unknown", e.file("z.pdf")), idp.ErrNotFound, "document for an unknown application")

	// Malformed scopes and actors.
	for _, sc := range []mobileapi.Scope{{}, {CitizenID: appsCitizenA, AgencyCode: appsAgencyX}} {
		_, err := e.s.GetApplication(e.ctx, sc, sub.ID)
		appsWantErr(t, err, idp.ErrInvalid, fmt.Sprintf("get with scope %+v", sc))
		_, _, err = e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: sc})
		appsWantErr(t, err, idp.ErrInvalid, fmt.Sprintf("list with scope %+v", sc))
		_, err = e.s.UpdateForm(e.ctx, sc, draft.ID, 0, json.RawMessage(`{}`))
		appsWantErr(t, err, idp.ErrInvalid, fmt.Sprintf("update with scope %+v", sc))
		_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: sc, ApplicationID: sub.ID, Actor: mobileapi.ActorCitizen, To: mobileapi.StatusWithdrawn})
		appsWantErr(t, err, idp.ErrInvalid, fmt.Sprintf("transition with scope %+v", sc))
	}
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsCitizenA), ApplicationID: sub.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusInReview})
	appsWantErr(t, err, idp.ErrInvalid, "the citizen acting as the agency")
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: sub.ID,
		Actor: mobileapi.ActorCitizen, To: mobileapi.StatusWithdrawn})
	appsWantErr(t, err, idp.ErrInvalid, "the agency acting as the citizen")
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: sub.ID,
		Actor: mobileapi.ActorAgency, To: "lost"})
	appsWantErr(t, err, idp.ErrInvalid, "an unknown status")

	for _, a := range []*mobileapi.Application{draft, sub, needs} {
		appsSame(t, "after refused calls", e.get(appsCitizen(appsCitizenA), a.ID), before[a.ID])
	}
	if ls := e.lease(appsAgencyY, 10, time.Minute); len(ls) != 0 {
		t.Errorf("another agency's queue holds %d events", len(ls))
	}
}

// appsTransitions tries every actor's move between every two statuses:
// what CanTransition allows succeeds, anything else is ErrConflict and
// changes nothing.
func appsTransitions(e *appsEnv) {
	t := e.t
	for _, actor := range []mobileapi.Actor{mobileapi.ActorCitizen, mobileapi.ActorAgency} {
		for _, from := range appsAllStatuses {
			for _, to := range appsAllStatuses {
				a := e.reach(appsCitizenA, appsAgencyX, from)
				b, err := e.move(a, actor, to)
				name := fmt.Sprintf("actor %d from %s to %s", actor, from, to)
				switch {
				case actor == mobileapi.ActorAgency && from == mobileapi.StatusDraft:
					appsWantErr(t, err, idp.ErrNotFound, name+" (drafts are the citizen's alone)")
				case mobileapi.CanTransition(actor, from, to):
					if err != nil {
						t.Errorf("%s: %v", name, err)
					} else if b.Status != to || b.Version != a.Version+1 || len(b.Timeline) != len(a.Timeline)+1 {
						t.Errorf("%s: got status %s version %d with %d timeline entries", name, b.Status, b.Version, len(b.Timeline))
					}
				default:
					appsWantErr(t, err, idp.ErrConflict, name)
					appsSame(t, name+" changed the application", e.get(appsCitizen(appsCitizenA), a.ID), a)
				}
			}
		}
	}
}

// appsWithdrawEvent checks the withdrawn event, queued after the
// submission, and the submission time kept.
func appsWithdrawEvent(e *appsEnv) {
	a := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusInReview)
	tw := e.clock.advance(time.Minute)
	b := e.mustMove(a, mobileapi.ActorCitizen, mobileapi.StatusWithdrawn)
	if b.SubmittedAt == nil || !b.SubmittedAt.Equal(*a.SubmittedAt) || b.DecidedAt != nil {
		e.t.Errorf("withdrawn: submitted %v decided %v; want the submission kept and no decision", b.SubmittedAt, b.DecidedAt)
	}
	ls := e.lease(appsAgencyX, 10, time.Minute)
	got := appsIDs(ls, func(l *mobileapi.Lease) string { return string(l.Event.Type) })
	if !slices.Equal(got, []string{"submitted", "withdrawn"}) || ls[1].Event.OccurredAt != tw {
		e.t.Errorf("events = %v, want submitted then withdrawn at %v", got, tw)
	}
}

func appsIfMatch(e *appsEnv) {
	t := e.t
	a := e.create(appsCitizenA, appsAgencyX)
	_, err := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 2, json.RawMessage(`{"a":1}`))
	appsWantErr(t, err, mobileapi.ErrPrecondition, "update with a future version")
	b, err := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 1, json.RawMessage(`{"a":1}`))
	e.must(err, "update with the current version")
	_, err = e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 1, json.RawMessage(`{"a":2}`))
	appsWantErr(t, err, mobileapi.ErrPrecondition, "update with a stale version")
	_, err = e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 1, e.file("x.pdf"))
	appsWantErr(t, err, mobileapi.ErrPrecondition, "attach with a stale version")
	_, err = e.s.DeleteDraft(e.ctx, appsCitizen(appsCitizenA), a.ID, 1)
	appsWantErr(t, err, mobileapi.ErrPrecondition, "delete with a stale version")
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsCitizenA), ApplicationID: a.ID, IfVersion: 1,
		Actor: mobileapi.ActorCitizen, To: mobileapi.StatusSubmitted})
	appsWantErr(t, err, mobileapi.ErrPrecondition, "submit with a stale version")
	appsSame(t, "after stale writes", e.get(appsCitizen(appsCitizenA), a.ID), b)

	c, err := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, json.RawMessage(`{"a":3}`))
	e.must(err, "update with any version")
	if c.Version != 3 || string(c.Form) != `{"a":3}` {
		t.Errorf("after an unconditional update: version %d form %s", c.Version, c.Form)
	}
	s, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsCitizenA), ApplicationID: a.ID, IfVersion: 3,
		Actor: mobileapi.ActorCitizen, To: mobileapi.StatusSubmitted})
	e.must(err, "submit with the current version")
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID, IfVersion: 3,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusInReview})
	appsWantErr(t, err, mobileapi.ErrPrecondition, "review with a stale version")
	appsSame(t, "after a stale review", e.get(appsAgency(appsAgencyX), a.ID), s)
}

// appsConcurrentWriters races writers holding the same version, and
// citizens submitting the same draft: the version check and the status
// check see each other's commits, so exactly one wins.
func appsConcurrentWriters(e *appsEnv) {
	t := e.t
	const writers = 8
	a := e.create(appsCitizenA, appsAgencyX)
	race := func(fn func(i int) error) (won int) {
		var (
			wg sync.WaitGroup
			mu sync.Mutex
		)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := fn(i)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won++
				case errors.Is(err, mobileapi.ErrPrecondition), errors.Is(err, idp.ErrConflict):
				default:
					t.Errorf("writer %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		return won
	}
	if won := race(func(i int) error {
		_, err := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 1, json.RawMessage(fmt.Sprintf(`{"writer":%d}`, i)))
		return err
	}); won != 1 {
		t.Errorf("%d writers of version 1 succeeded, want 1", won)
	}
	if b := e.get(appsCitizen(appsCitizenA), a.ID); b.Version != 2 {
		t.Errorf("version after the race = %d, want 2", b.Version)
	}
	if won := race(func(int) error {
		_, err := e.move(a, mobileapi.ActorCitizen, mobileapi.StatusSubmitted)
		return err
	}); won != 1 {
		t.Errorf("%d submissions of one draft succeeded, want 1", won)
	}
	b := e.get(appsCitizen(appsCitizenA), a.ID)
	if ls := e.lease(appsAgencyX, 10, time.Minute); len(ls) != 1 || b.Version != 3 || len(b.Timeline) != 2 {
		t.Errorf("after racing submissions: %d events, version %d, %d timeline entries; want 1, 3, 2", len(ls), b.Version, len(b.Timeline))
	}
}

func appsEditableOnly(e *appsEnv) {
	t := e.t
	for _, st := range appsAllStatuses {
		a := e.reach(appsCitizenA, appsAgencyX, st)
		_, errU := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, json.RawMessage(`{"b":1}`))
		_, errA := e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, e.file("x.pdf"))
		if st.Editable() {
			if errU != nil || errA != nil {
				t.Errorf("%s: update %v, attach %v; want both to succeed", st, errU, errA)
			}
			continue
		}
		appsWantErr(t, errU, idp.ErrConflict, "update the form of a "+string(st))
		appsWantErr(t, errA, idp.ErrConflict, "attach to a "+string(st))
		_, err := e.s.DeleteDraft(e.ctx, appsCitizen(appsCitizenA), a.ID, 0)
		appsWantErr(t, err, idp.ErrConflict, "delete a "+string(st))
		appsSame(t, "refused edits of a "+string(st), e.get(appsCitizen(appsCitizenA), a.ID), a)
	}
	a := e.create(appsCitizenA, appsAgencyX)
	_, err := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, json.RawMessage(`"text"`))
	appsWantErr(t, err, idp.ErrInvalid, "a form that is not an object")
	_, err = e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, &mobileapi.File{ContentType: "application/pdf", SHA256: "00"})
	appsWantErr(t, err, idp.ErrInvalid, "an attachment without a name")
}

func appsDeleteDraft(e *appsEnv) {
	t := e.t
	keep := e.create(appsCitizenA, appsAgencyX)
	a := e.create(appsCitizenA, appsAgencyX)
	var want []string
	for _, n := range []string{"a.pdf", "b.pdf"} {
		f := e.file(n)
		_, err := e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, f)
		e.must(err, "attach")
		want = append(want, f.BlobKey)
	}
	keys, err := e.s.DeleteDraft(e.ctx, appsCitizen(appsCitizenA), a.ID, 3)
	e.must(err, "delete draft")
	sort.Strings(keys)
	sort.Strings(want)
	if !slices.Equal(keys, want) {
		t.Errorf("blob keys = %v, want %v", keys, want)
	}
	_, err = e.s.GetApplication(e.ctx, appsCitizen(appsCitizenA), a.ID)
	appsWantErr(t, err, idp.ErrNotFound, "get a deleted draft")
	_, err = e.s.DeleteDraft(e.ctx, appsCitizen(appsCitizenA), a.ID, 0)
	appsWantErr(t, err, idp.ErrNotFound, "delete a deleted draft")
	ls, _, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA)})
	e.must(err, "list")
	if got := appsIDs(ls, appsAppID); !slices.Equal(got, []string{keep.ID}) {
		t.Errorf("list after delete = %v, want [%s]", got, keep.ID)
	}
	keys, err = e.s.DeleteDraft(e.ctx, appsCitizen(appsCitizenA), keep.ID, 0)
	if err != nil || len(keys) != 0 {
		t.Errorf("delete a draft without attachments = %v, %v", keys, err)
	}
}

// appsDocuments checks who may add result documents, and that a transition
// publishes only the application's unpublished documents.
func appsDocuments(e *appsEnv) {
	t := e.t
	a := e.create(appsCitizenA, appsAgencyX)
	_, err := e.s.AddAttachment(e.ctx, appsCitizen(appsCitizenA), a.ID, 0, e.file("attachment.pdf"))
	e.must(err, "attach")
	a = e.mustMove(a, mobileapi.ActorCitizen, mobileapi.StatusSubmitted)
	other := e.reach(appsCitizenB, appsAgencyX, mobileapi.StatusSubmitted)
	d1, d2, foreign := e.file("d1.pdf"), e.file("d2.pdf"), e.file("foreign.pdf")
	e.must(e.s.AddDocument(e.ctx, appsAgencyX, a.ID, d1), "add document")
	e.clock.advance(time.Second) // results are listed in upload order
	e.must(e.s.AddDocument(e.ctx, appsAgencyX, a.ID, d2), "add document")
	e.must(e.s.AddDocument(e.ctx, appsAgencyX, other.ID, foreign), "add document")
	appsWantErr(t, e.s.AddDocument(e.ctx, appsAgencyX, a.ID, &mobileapi.File{Name: "x"}), idp.ErrInvalid, "a document without a type")

	b, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusInReview, Documents: []string{d1.ID}})
	e.must(err, "publish with review")
	if !reflect.DeepEqual(b.Results, []mobileapi.File{*d1}) {
		t.Errorf("results = %+v, want [%+v]", b.Results, *d1)
	}
	for name, docs := range map[string][]string{
		"an already published document":     {d1.ID},
		"another application's document":    {foreign.ID},
		"an unknown document":               {"doc_unknown"},
		"a document listed twice":           {d2.ID, d2.ID},
		"an attachment instead of document": {a.Attachments[0].ID},
	} {
		_, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
			Actor: mobileapi.ActorAgency, To: mobileapi.StatusApproved, Documents: docs})
		appsWantErr(t, err, idp.ErrInvalid, "publish "+name)
	}
	appsSame(t, "after refused publications", e.get(appsCitizen(appsCitizenA), a.ID), b)
	c, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusApproved, Documents: []string{d2.ID}})
	e.must(err, "approve with the second document")
	if !reflect.DeepEqual(c.Results, []mobileapi.File{*d1, *d2}) {
		t.Errorf("results = %+v, want both documents", c.Results)
	}
	appsWantErr(t, e.s.AddDocument(e.ctx, appsAgencyX, a.ID, e.file("late.pdf")), idp.ErrConflict, "a document after the decision")
	w := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusWithdrawn)
	appsWantErr(t, e.s.AddDocument(e.ctx, appsAgencyX, w.ID, e.file("late.pdf")), idp.ErrConflict, "a document after withdrawal")
	// The other application's document is still unpublished and usable.
	o, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: other.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusRejected, Documents: []string{foreign.ID}})
	e.must(err, "reject with its document")
	if len(o.Results) != 1 || o.Results[0].ID != foreign.ID || o.DecidedAt == nil {
		t.Errorf("rejected = %+v", o)
	}
}

// appsTransitionAtomic makes transitions fail after their first writes and
// checks that nothing of them remains: no status, timeline entry, event,
// delivery, publication or inbox message.
func appsTransitionAtomic(e *appsEnv) {
	t := e.t
	e.webhook(appsAgencyX)
	a := e.create(appsCitizenA, appsAgencyX)
	msg := &mobileapi.Message{Title: mobileapi.Text{VI: "Đã nộp", EN: "Submitted"}}
	_, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsCitizen(appsCitizenA), ApplicationID: a.ID,
		Actor: mobileapi.ActorCitizen, To: mobileapi.StatusSubmitted, Documents: []string{"doc_unknown"}, Inbox: msg, Recipients: []string{a.CitizenID}})
	appsWantErr(t, err, idp.ErrInvalid, "submit naming a document")
	appsSame(t, "after a failed submission", e.get(appsCitizen(appsCitizenA), a.ID), a)
	if msg.ID != "" {
		t.Errorf("the failed transition filled in its message: %+v", msg)
	}
	if ls := e.lease(appsAgencyX, 10, time.Minute); len(ls) != 0 {
		t.Errorf("a failed submission queued %d events", len(ls))
	}
	if ds := e.claim(10, time.Minute); len(ds) != 0 {
		t.Errorf("a failed submission created %d deliveries", len(ds))
	}
	if ms := e.inbox(appsCitizenA); len(ms) != 0 {
		t.Errorf("a failed submission left %d messages", len(ms))
	}

	a = e.mustMove(a, mobileapi.ActorCitizen, mobileapi.StatusSubmitted)
	a = e.mustMove(a, mobileapi.ActorAgency, mobileapi.StatusInReview)
	good := e.file("result.pdf")
	e.must(e.s.AddDocument(e.ctx, appsAgencyX, a.ID, good), "add document")
	_, err = e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusApproved, Documents: []string{good.ID, "doc_unknown"}, Inbox: msg, Recipients: []string{a.CitizenID}})
	appsWantErr(t, err, idp.ErrInvalid, "approve with an unknown document")
	appsSame(t, "after a failed approval", e.get(appsCitizen(appsCitizenA), a.ID), a)
	if ms := e.inbox(appsCitizenA); len(ms) != 0 || msg.ID != "" {
		t.Errorf("a failed approval left %d messages", len(ms))
	}
	b, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
		Actor: mobileapi.ActorAgency, To: mobileapi.StatusApproved, Documents: []string{good.ID}, Inbox: msg, Recipients: []string{a.CitizenID}})
	e.must(err, "approve with the good document, still unpublished")
	if len(b.Results) != 1 || len(e.inbox(appsCitizenA)) != 1 {
		t.Errorf("approved with %d results and %d messages", len(b.Results), len(e.inbox(appsCitizenA)))
	}
}

// appsListPagination pages through a citizen's applications, many of
// which changed in the same millisecond.
func appsListPagination(e *appsEnv) {
	t := e.t
	var all []*mobileapi.Application
	for i := range 25 {
		if i >= 10 {
			e.clock.advance(time.Second)
		}
		all = append(all, e.create(appsCitizenA, appsAgencyX))
	}
	e.create(appsCitizenB, appsAgencyX)
	sort.Slice(all, func(i, j int) bool {
		if !all[i].UpdatedAt.Equal(all[j].UpdatedAt) {
			return all[i].UpdatedAt.After(all[j].UpdatedAt)
		}
		return all[i].ID > all[j].ID
	})
	want := appsIDs(all, appsAppID)

	var got []string
	cursor, pages := "", 0
	for {
		ls, next, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA), Page: mobileapi.Page{Cursor: cursor, Limit: 10}})
		e.must(err, "list page")
		pages++
		for _, a := range ls {
			if a.Timeline != nil || a.Attachments != nil || a.Results != nil {
				t.Errorf("list item %s is not a summary", a.ID)
			}
			if a.CitizenID != appsCitizenA || a.Version != 1 || a.Status != mobileapi.StatusDraft {
				t.Errorf("list item %+v", a)
			}
		}
		got = append(got, appsIDs(ls, appsAppID)...)
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		cursor = next
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("paged in %d pages:\n got %v\nwant %v", pages, got, want)
	}
	ls, next, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA)})
	e.must(err, "list with the default limit")
	if len(ls) != mobileapi.DefaultLimit || next == "" {
		t.Errorf("default page: %d items, next %q", len(ls), next)
	}
	// The last two hold a NUL and invalid UTF-8 in the id part, which
	// PostgreSQL refuses as text: still ErrInvalid, not a server error.
	for _, c := range []string{"!!!", "bm9wZQ", "MTIz", "eC5hcHBfeA", base64.RawURLEncoding.EncodeToString([]byte("1700000000000.app_\x00")),
		base64.RawURLEncoding.EncodeToString([]byte("1700000000000.app_\xff\xfe"))} {
		_, _, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA), Page: mobileapi.Page{Cursor: c}})
		appsWantErr(t, err, idp.ErrInvalid, "malformed cursor "+c)
	}
}

// appsListWhileChanging changes applications between pages: an
// application that changed moves to the front, and no unchanged one is
// skipped or seen twice.
func appsListWhileChanging(e *appsEnv) {
	t := e.t
	var all []*mobileapi.Application
	for range 12 {
		e.clock.advance(time.Second)
		all = append(all, e.create(appsCitizenA, appsAgencyX))
	}
	slices.Reverse(all) // newest first
	page := func(cursor string) ([]string, string) {
		ls, next, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA), Page: mobileapi.Page{Cursor: cursor, Limit: 4}})
		e.must(err, "list page")
		return appsIDs(ls, appsAppID), next
	}
	p1, next := page("")
	e.clock.advance(time.Second)
	changed := map[string]bool{all[1].ID: true, all[6].ID: true} // one seen, one not yet
	for id := range changed {
		_, err := e.s.UpdateForm(e.ctx, appsCitizen(appsCitizenA), id, 0, json.RawMessage(`{"changed":true}`))
		e.must(err, "update")
	}
	got := slices.Clone(p1)
	for next != "" {
		var p []string
		p, next = page(next)
		got = append(got, p...)
	}
	var want []string
	for i, a := range all {
		if i < 4 || !changed[a.ID] {
			want = append(want, a.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged while changing:\n got %v\nwant %v", got, want)
	}
	first, _ := page("")
	if !changed[first[0]] || !changed[first[1]] {
		t.Errorf("a fresh first page %v does not start with the changed applications", first)
	}
}

func appsListFilterAndScope(e *appsEnv) {
	t := e.t
	draft := e.create(appsCitizenA, appsAgencyX)
	e.clock.advance(time.Second)
	sub := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	e.clock.advance(time.Second)
	rev := e.reach(appsCitizenB, appsAgencyX, mobileapi.StatusInReview)
	e.clock.advance(time.Second)
	other := e.reach(appsCitizenA, appsAgencyY, mobileapi.StatusSubmitted)
	list := func(q mobileapi.ApplicationQuery) []string {
		t.Helper()
		ls, _, err := e.s.ListApplications(e.ctx, q)
		e.must(err, "list")
		return appsIDs(ls, appsAppID)
	}
	for name, tc := range map[string]struct {
		q    mobileapi.ApplicationQuery
		want []string
	}{
		"citizen A":                  {mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA)}, []string{other.ID, sub.ID, draft.ID}},
		"citizen A's submitted":      {mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA), Statuses: []mobileapi.Status{mobileapi.StatusSubmitted}}, []string{other.ID, sub.ID}},
		"citizen A's drafts":         {mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA), Statuses: []mobileapi.Status{mobileapi.StatusDraft, mobileapi.StatusApproved}}, []string{draft.ID}},
		"agency X":                   {mobileapi.ApplicationQuery{Scope: appsAgency(appsAgencyX)}, []string{rev.ID, sub.ID}},
		"agency X's in review":       {mobileapi.ApplicationQuery{Scope: appsAgency(appsAgencyX), Statuses: []mobileapi.Status{mobileapi.StatusInReview}}, []string{rev.ID}},
		"agency X asking for drafts": {mobileapi.ApplicationQuery{Scope: appsAgency(appsAgencyX), Statuses: []mobileapi.Status{mobileapi.StatusDraft}}, nil},
		"agency Y":                   {mobileapi.ApplicationQuery{Scope: appsAgency(appsAgencyY)}, []string{other.ID}},
		"an unknown citizen":         {mobileapi.ApplicationQuery{Scope: appsCitizen("test-citizen-none")}, nil},
	} {
		if got := list(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", name, got, tc.want)
		}
	}
	_, _, err := e.s.ListApplications(e.ctx, mobileapi.ApplicationQuery{Scope: appsCitizen(appsCitizenA), Statuses: []mobileapi.Status{"lost"}})
	appsWantErr(t, err, idp.ErrInvalid, "an unknown status filter")
}

func appsLeaseOrder(e *appsEnv) {
	t := e.t
	var want []string // applications, in the order of their events
	for range 3 {
		e.clock.advance(time.Second)
		want = append(want, e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted).ID)
	}
	e.reach(appsCitizenA, appsAgencyY, mobileapi.StatusSubmitted)
	now := e.clock.advance(time.Second)
	l1 := e.lease(appsAgencyX, 2, 5*time.Minute)
	l2 := e.lease(appsAgencyX, 2, 5*time.Minute)
	l3 := e.lease(appsAgencyX, 2, 5*time.Minute)
	appOf := func(l *mobileapi.Lease) string { return l.Event.ApplicationID }
	if got := append(appsIDs(l1, appOf), appsIDs(l2, appOf)...); !slices.Equal(got, want) || len(l1) != 2 || len(l3) != 0 {
		t.Errorf("leased %v then %v then %d, want %v oldest first, two at most", appsIDs(l1, appOf), appsIDs(l2, appOf), len(l3), want)
	}
	for _, l := range append(l1, l2...) {
		if l.Event.AgencyCode != appsAgencyX || !l.ExpiresAt.Equal(now.Add(5*time.Minute)) {
			t.Errorf("lease %+v", l)
		}
	}
	for _, bad := range []struct {
		n int
		d time.Duration
	}{{0, time.Minute}, {-1, time.Minute}, {1, 0}} {
		_, err := e.s.Lease(e.ctx, appsAgencyX, bad.n, bad.d)
		appsWantErr(t, err, idp.ErrInvalid, fmt.Sprintf("lease %d for %v", bad.n, bad.d))
	}
}

// appsLeaseConcurrent has workers lease the same queue at once: every event
// is leased exactly once.
func appsLeaseConcurrent(e *appsEnv) {
	t := e.t
	const events, workers = 40, 8
	for range events {
		e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	}
	e.reach(appsCitizenA, appsAgencyY, mobileapi.StatusSubmitted)
	var (
		mu     sync.Mutex
		seen   = map[string]int{}
		leases = map[string]bool{}
		wg     sync.WaitGroup
		errs   = make(chan error, workers)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ls, err := e.s.Lease(e.ctx, appsAgencyX, 3, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(ls) == 0 {
					return
				}
				mu.Lock()
				for _, l := range ls {
					seen[l.Event.ID]++
					leases[l.ID] = true
					if l.Event.AgencyCode != appsAgencyX {
						t.Errorf("leased agency %s's event", l.Event.AgencyCode)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != events || len(leases) != events {
		t.Errorf("leased %d events under %d leases, want %d", len(seen), len(leases), events)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s leased %d times", id, n)
		}
	}
}

func appsLeaseExpiry(e *appsEnv) {
	t := e.t
	e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	l1 := e.lease(appsAgencyX, 5, time.Minute)
	if len(l1) != 1 {
		t.Fatalf("leased %d, want 1", len(l1))
	}
	if ls := e.lease(appsAgencyX, 5, time.Minute); len(ls) != 0 {
		t.Errorf("a leased event was leased again")
	}
	e.clock.advance(59 * time.Second)
	if ls := e.lease(appsAgencyX, 5, time.Minute); len(ls) != 0 {
		t.Errorf("an event was leased again before its lease expired")
	}
	e.clock.advance(time.Second)
	l2 := e.lease(appsAgencyX, 5, time.Minute)
	if len(l2) != 1 || l2[0].Event != l1[0].Event || l2[0].ID == l1[0].ID {
		t.Fatalf("after expiry leased %+v, want the same event under a new lease", l2)
	}
	appsWantErr(t, e.s.Ack(e.ctx, appsAgencyX, l1[0].ID), idp.ErrConflict, "ack an expired lease whose event was leased again")
	appsWantErr(t, e.s.Ack(e.ctx, appsAgencyY, l2[0].ID), idp.ErrNotFound, "ack another agency's lease")
	appsWantErr(t, e.s.Ack(e.ctx, appsAgencyX, "lse_unknown"), idp.ErrNotFound, "ack an unknown lease")
	e.must(e.s.Ack(e.ctx, appsAgencyX, l2[0].ID), "ack the current lease")
	appsWantErr(t, e.s.Ack(e.ctx, appsAgencyX, l2[0].ID), idp.ErrNotFound, "ack twice")
	e.clock.advance(time.Hour)
	if ls := e.lease(appsAgencyX, 5, time.Minute); len(ls) != 0 {
		t.Errorf("an acknowledged event came back: %+v", ls)
	}

	e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	l3 := e.lease(appsAgencyX, 5, time.Minute)
	e.clock.advance(2 * time.Minute)
	appsWantErr(t, e.s.Ack(e.ctx, appsAgencyX, l3[0].ID), idp.ErrConflict, "ack an expired lease")
	if ls := e.lease(appsAgencyX, 5, time.Minute); len(ls) != 1 || ls[0].Event != l3[0].Event {
		t.Errorf("the event of a refused ack is not back in the queue: %+v", ls)
	}
}

func appsWebhooks(e *appsEnv) {
	t := e.t
	all := e.webhook(appsAgencyX)
	e.checkID("webhook", all.ID, "whk")
	e.clock.advance(time.Second)
	sub := e.webhook(appsAgencyX, mobileapi.EventSubmitted)
	e.clock.advance(time.Second)
	y := e.webhook(appsAgencyY)
	for name, w := range map[string]*mobileapi.Webhook{
		"no agency":     {URL: "https://hooks.example.test/", AgencyCode: ""},
		"relative URL":  {URL: "/hook", AgencyCode: appsAgencyX},
		"no URL":        {AgencyCode: appsAgencyX},
		"unknown event": {URL: "https://hooks.example.test/", AgencyCode: appsAgencyX, Events: []mobileapi.EventType{"decided"}},
	} {
		appsWantErr(t, e.s.CreateWebhook(e.ctx, w), idp.ErrInvalid, "webhook with "+name)
	}

	var got []*mobileapi.Webhook
	cursor := ""
	for range 3 {
		ws, next, err := e.s.ListWebhooks(e.ctx, appsAgencyX, mobileapi.Page{Cursor: cursor, Limit: 1})
		e.must(err, "list webhooks")
		got = append(got, ws...)
		if cursor = next; cursor == "" {
			break
		}
	}
	if !reflect.DeepEqual(got, []*mobileapi.Webhook{all, sub}) || cursor != "" {
		t.Errorf("webhooks = %+v, want %+v and %+v", got, all, sub)
	}
	_, _, err := e.s.ListWebhooks(e.ctx, appsAgencyX, mobileapi.Page{Cursor: "!!"})
	appsWantErr(t, err, idp.ErrInvalid, "malformed cursor")

	ts := e.clock.advance(time.Second)
	a := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	e.clock.advance(time.Second)
	e.reach(appsCitizenB, appsAgencyY, mobileapi.StatusSubmitted)
	e.clock.advance(time.Second)
	tw := e.clock.advance(time.Second)
	e.mustMove(a, mobileapi.ActorCitizen, mobileapi.StatusWithdrawn)

	ds := e.deliveries(appsAgencyX, all.ID)
	if got := appsIDs(ds, func(d *mobileapi.Delivery) string { return string(d.Event.Type) }); !slices.Equal(got, []string{"withdrawn", "submitted"}) {
		t.Fatalf("deliveries to the hook for all events = %v, want withdrawn then submitted", got)
	}
	d := ds[1]
	e.checkID("delivery", d.ID, "dlv")
	wantEvent := mobileapi.Event{ID: d.Event.ID, Type: mobileapi.EventSubmitted, AgencyCode: appsAgencyX, ApplicationID: a.ID,
		ServiceID: "svc_test", ServiceCode: "TEST.001", OccurredAt: ts}
	if d.Event != wantEvent || d.WebhookID != all.ID || d.AgencyCode != appsAgencyX || d.URL != all.URL ||
		d.State != mobileapi.DeliveryPending || len(d.Attempts) != 0 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(ts) || !d.CreatedAt.Equal(ts) {
		t.Errorf("delivery = %+v, want event %+v pending now", d, wantEvent)
	}
	if ds[0].Event.OccurredAt != tw {
		t.Errorf("withdrawal delivered as of %v, want %v", ds[0].Event.OccurredAt, tw)
	}
	if ds := e.deliveries(appsAgencyX, sub.ID); len(ds) != 1 || ds[0].Event.Type != mobileapi.EventSubmitted {
		t.Errorf("deliveries to the hook for submissions = %+v, want the submission alone", ds)
	}
	if ds := e.deliveries(appsAgencyY, y.ID); len(ds) != 1 || ds[0].Event.AgencyCode != appsAgencyY {
		t.Errorf("deliveries to agency Y = %+v, want its own submission alone", ds)
	}
	p1, next, err := e.s.ListDeliveries(e.ctx, appsAgencyX, all.ID, mobileapi.Page{Limit: 1})
	e.must(err, "list deliveries")
	p2, last, err := e.s.ListDeliveries(e.ctx, appsAgencyX, all.ID, mobileapi.Page{Cursor: next, Limit: 1})
	e.must(err, "list deliveries")
	if len(p1) != 1 || len(p2) != 1 || p1[0].ID != ds[0].ID || p2[0].ID != ds[1].ID || last != "" {
		t.Errorf("delivery pages %v %v (last cursor %q), want %v", appsIDs(p1, appsDeliveryID), appsIDs(p2, appsDeliveryID), last, appsIDs(ds, appsDeliveryID))
	}
	_, _, err = e.s.ListDeliveries(e.ctx, appsAgencyY, all.ID, mobileapi.Page{})
	appsWantErr(t, err, idp.ErrNotFound, "another agency's deliveries")
	appsWantErr(t, e.s.DeleteWebhook(e.ctx, appsAgencyY, all.ID), idp.ErrNotFound, "delete another agency's webhook")
	if ds := e.deliveries(appsAgencyX, all.ID); len(ds) != 2 {
		t.Errorf("a refused delete changed the deliveries: %d", len(ds))
	}
}

func appsDeliveryRetry(e *appsEnv) {
	t := e.t
	w := e.webhook(appsAgencyX)
	e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	ds := e.claim(10, time.Minute)
	if len(ds) != 1 || ds[0].URL != w.URL || ds[0].WebhookID != w.ID || ds[0].Event.Type != mobileapi.EventSubmitted ||
		ds[0].Event.AgencyCode != appsAgencyX {
		t.Fatalf("claimed %+v, want the submission for %s", ds, w.URL)
	}
	d := ds[0]
	if again := e.claim(10, time.Minute); len(again) != 0 {
		t.Errorf("a claimed delivery was claimed again")
	}
	e.clock.advance(time.Minute) // the worker died: its claim lapses
	if again := e.claim(10, time.Minute); len(again) != 1 || again[0].ID != d.ID {
		t.Fatalf("after the claim lapsed claimed %+v", again)
	}
	at := e.clock.advance(time.Second)
	next := at.Add(10 * time.Minute)
	e.must(e.s.RecordAttempt(e.ctx, d.ID, mobileapi.Attempt{At: at, StatusCode: 503, Duration: 212 * time.Millisecond},
		mobileapi.DeliveryPending, &next), "record a failed attempt")
	if again := e.claim(10, time.Minute); len(again) != 0 {
		t.Errorf("a delivery was claimed before its next attempt")
	}
	e.clock.advance(10*time.Minute - time.Millisecond)
	if again := e.claim(10, time.Minute); len(again) != 0 {
		t.Errorf("a delivery was claimed a millisecond before its next attempt")
	}
	at2 := e.clock.advance(time.Millisecond)
	again := e.claim(10, time.Minute)
	if len(again) != 1 || len(again[0].Attempts) != 1 {
		t.Fatalf("claimed when due: %+v, want the delivery with its attempt", again)
	}
	e.must(e.s.RecordAttempt(e.ctx, d.ID, mobileapi.Attempt{At: at2, Error: "connection refused", Duration: time.Second},
		mobileapi.DeliveryPending, &at2), "record an attempt without response")
	e.claim(10, time.Minute)
	e.must(e.s.RecordAttempt(e.ctx, d.ID, mobileapi.Attempt{At: at2, StatusCode: 204, Duration: 48 * time.Millisecond},
		mobileapi.DeliverySucceeded, nil), "record success")
	e.clock.advance(time.Hour)
	if again := e.claim(10, time.Minute); len(again) != 0 {
		t.Errorf("a delivered event was claimed: %+v", again)
	}
	got := e.deliveries(appsAgencyX, w.ID)
	wantAttempts := []mobileapi.Attempt{
		{At: at, StatusCode: 503, Duration: 212 * time.Millisecond},
		{At: at2, Error: "connection refused", Duration: time.Second},
		{At: at2, StatusCode: 204, Duration: 48 * time.Millisecond},
	}
	if len(got) != 1 || got[0].State != mobileapi.DeliverySucceeded || got[0].NextAttemptAt != nil || !reflect.DeepEqual(got[0].Attempts, wantAttempts) {
		t.Errorf("delivery = %+v, want succeeded with attempts %+v", got, wantAttempts)
	}
	appsWantErr(t, e.s.RecordAttempt(e.ctx, d.ID, mobileapi.Attempt{At: at2}, mobileapi.DeliveryFailed, nil), idp.ErrConflict, "record on a finished delivery")
	appsWantErr(t, e.s.RecordAttempt(e.ctx, "dlv_unknown", mobileapi.Attempt{At: at2}, mobileapi.DeliveryFailed, nil), idp.ErrNotFound, "record on an unknown delivery")

	e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	f := e.claim(10, time.Minute)
	if len(f) != 1 {
		t.Fatalf("claimed %d, want the new delivery", len(f))
	}
	appsWantErr(t, e.s.RecordAttempt(e.ctx, f[0].ID, mobileapi.Attempt{At: at2}, mobileapi.DeliveryPending, nil), idp.ErrInvalid, "pending without a next attempt")
	appsWantErr(t, e.s.RecordAttempt(e.ctx, f[0].ID, mobileapi.Attempt{At: at2}, "lost", nil), idp.ErrInvalid, "an unknown state")
	e.must(e.s.RecordAttempt(e.ctx, f[0].ID, mobileapi.Attempt{At: at2, StatusCode: 410}, mobileapi.DeliveryFailed, nil), "give up")
	e.clock.advance(time.Hour)
	if again := e.claim(10, time.Minute); len(again) != 0 {
		t.Errorf("a failed delivery was claimed: %+v", again)
	}
}

// appsClaimConcurrent has workers claim deliveries at once: every delivery
// is claimed exactly once.
func appsClaimConcurrent(e *appsEnv) {
	t := e.t
	e.webhook(appsAgencyX)
	e.webhook(appsAgencyY, mobileapi.EventSubmitted)
	for range 15 {
		e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
		e.reach(appsCitizenB, appsAgencyY, mobileapi.StatusSubmitted)
	}
	const workers = 8
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ds, err := e.s.ClaimDeliveries(e.ctx, 4, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					seen[d.ID]++
				}
				mu.Unlock()
				for _, d := range ds { // delivered, so the agency's claims free up
					if err := e.s.RecordAttempt(e.ctx, d.ID, mobileapi.Attempt{At: e.clock.now(), StatusCode: 204}, mobileapi.DeliverySucceeded, nil); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != 30 {
		t.Errorf("claimed %d deliveries, want 30", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("delivery %s claimed %d times", id, n)
		}
	}
}

// appsClaimFairness: one agency's deliveries in flight are capped, so
// another agency's due delivery is claimed even while the first has a
// backlog of hanging ones; the cap frees as attempts are recorded or claims
// lapse.
func appsClaimFairness(e *appsEnv) {
	t := e.t
	e.webhook(appsAgencyX)
	e.webhook(appsAgencyY)
	for range 6 {
		e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	}
	first := e.claim(10, time.Minute)
	if len(first) != mobileapi.ClaimsPerAgency {
		t.Fatalf("claimed %d of one agency's deliveries, want the cap %d", len(first), mobileapi.ClaimsPerAgency)
	}
	if more := e.claim(10, time.Minute); len(more) != 0 {
		t.Errorf("claimed %d more while the agency is at its cap", len(more))
	}
	e.reach(appsCitizenB, appsAgencyY, mobileapi.StatusSubmitted)
	other := e.claim(10, time.Minute)
	if len(other) != 1 || other[0].AgencyCode != appsAgencyY {
		t.Errorf("another agency's delivery: claimed %+v", other)
	}
	e.must(e.s.RecordAttempt(e.ctx, first[0].ID, mobileapi.Attempt{At: e.clock.now(), StatusCode: 204}, mobileapi.DeliverySucceeded, nil), "record")
	if next := e.claim(10, time.Minute); len(next) != 1 || next[0].AgencyCode != appsAgencyX {
		t.Errorf("after one attempt was recorded: claimed %d", len(next))
	}
	e.clock.advance(2 * time.Minute) // the claims lapse (a worker died)
	per := map[string]int{}
	for _, d := range e.claim(10, time.Minute) {
		per[d.AgencyCode]++
	}
	if per[appsAgencyX] != mobileapi.ClaimsPerAgency || per[appsAgencyY] != 1 {
		t.Errorf("after the claims lapsed: claimed %v, want %d of the first agency and the other's one", per, mobileapi.ClaimsPerAgency)
	}
}

func appsWebhookDelete(e *appsEnv) {
	t := e.t
	gone := e.webhook(appsAgencyX)
	kept := e.webhook(appsAgencyX)
	e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	claimed := e.claim(1, time.Minute) // a worker holds one delivery
	if len(claimed) != 1 {
		t.Fatalf("claimed %d, want 1", len(claimed))
	}
	e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
	e.must(e.s.DeleteWebhook(e.ctx, appsAgencyX, gone.ID), "delete webhook")
	appsWantErr(t, e.s.DeleteWebhook(e.ctx, appsAgencyX, gone.ID), idp.ErrNotFound, "delete twice")
	e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)

	e.clock.advance(time.Hour)
	var got []*mobileapi.Delivery
	for {
		ds := e.claim(10, time.Hour)
		if len(ds) == 0 {
			break
		}
		got = append(got, ds...)
		for _, d := range ds { // delivered: the agency's claims are freed
			e.must(e.s.RecordAttempt(e.ctx, d.ID, mobileapi.Attempt{At: e.clock.now(), StatusCode: 204}, mobileapi.DeliverySucceeded, nil), "record")
		}
	}
	for _, d := range got {
		if d.WebhookID != kept.ID {
			t.Errorf("claimed %+v for the deleted webhook", d)
		}
	}
	if len(got) != 3 {
		t.Errorf("claimed %d deliveries for the kept webhook, want 3", len(got))
	}
	if claimed[0].WebhookID == gone.ID {
		appsWantErr(t, e.s.RecordAttempt(e.ctx, claimed[0].ID, mobileapi.Attempt{At: e.clock.now(), StatusCode: 200},
			mobileapi.DeliverySucceeded, nil), idp.ErrNotFound, "record on a deleted webhook's delivery")
	}
	ws, _, err := e.s.ListWebhooks(e.ctx, appsAgencyX, mobileapi.Page{})
	e.must(err, "list webhooks")
	if len(ws) != 1 || ws[0].ID != kept.ID {
		t.Errorf("webhooks after delete = %+v", ws)
	}
	_, _, err = e.s.ListDeliveries(e.ctx, appsAgencyX, gone.ID, mobileapi.Page{})
	appsWantErr(t, err, idp.ErrNotFound, "deliveries of a deleted webhook")
}

func appsInbox(e *appsEnv) {
	t := e.t
	var sent []*mobileapi.Message
	for i := range 3 {
		e.clock.advance(time.Second)
		a := e.reach(appsCitizenA, appsAgencyX, mobileapi.StatusSubmitted)
		m := &mobileapi.Message{Title: mobileapi.Text{VI: fmt.Sprintf("Tin %d", i), EN: fmt.Sprintf("Message %d", i)}, Body: "Nội dung thử."}
		_, err := e.s.Transition(e.ctx, mobileapi.Transition{Scope: appsAgency(appsAgencyX), ApplicationID: a.ID,
			Actor: mobileapi.ActorAgency, To: mobileapi.StatusInReview, Inbox: m, Recipients: []string{a.CitizenID}})
		e.must(err, "review with a message")
		sent = append(sent, m)
	}
	slices.Reverse(sent) // newest first
	var got []*mobileapi.Message
	cursor := ""
	for range 3 {
		ms, next, err := e.s.ListInbox(e.ctx, appsCitizenA, mobileapi.Page{Cursor: cursor, Limit: 2})
		e.must(err, "list inbox")
		got = append(got, ms...)
		if cursor = next; cursor == "" {
			break
		}
	}
	if !reflect.DeepEqual(got, sent) || cursor != "" {
		t.Errorf("inbox:\n got %+v\nwant %+v", got, sent)
	}
	_, _, err := e.s.ListInbox(e.ctx, appsCitizenA, mobileapi.Page{Cursor: "%%"})
	appsWantErr(t, err, idp.ErrInvalid, "malformed cursor")
	if n, err := e.s.UnreadCount(e.ctx, appsCitizenA); err != nil || n != 3 {
		t.Errorf("unread = %d, %v; want 3", n, err)
	}

	readAt := e.clock.advance(time.Minute)
	m, err := e.s.MarkRead(e.ctx, appsCitizenA, sent[1].ID)
	e.must(err, "mark read")
	want := *sent[1]
	want.ReadAt = &readAt
	if !reflect.DeepEqual(*m, want) {
		t.Errorf("read message = %+v, want %+v", *m, want)
	}
	e.clock.advance(time.Minute)
	m, err = e.s.MarkRead(e.ctx, appsCitizenA, sent[1].ID)
	e.must(err, "mark read again")
	if m.ReadAt == nil || !m.ReadAt.Equal(readAt) {
		t.Errorf("read again at %v, want the first read time %v kept", m.ReadAt, readAt)
	}
	if n, err := e.s.UnreadCount(e.ctx, appsCitizenA); err != nil || n != 2 {
		t.Errorf("unread = %d, %v; want 2", n, err)
	}
	_, err = e.s.MarkRead(e.ctx, appsCitizenB, sent[0].ID)
	appsWantErr(t, err, idp.ErrNotFound, "mark another citizen's message read")
	_, err = e.s.MarkRead(e.ctx, appsCitizenA, "msg_unknown")
	appsWantErr(t, err, idp.ErrNotFound, "mark an unknown message read")
	if ms := e.inbox(appsCitizenB); len(ms) != 0 {
		t.Errorf("citizen B's inbox = %+v, want empty", ms)
	}
	if n, err := e.s.UnreadCount(e.ctx, appsCitizenB); err != nil || n != 0 {
		t.Errorf("citizen B's unread = %d, %v", n, err)
	}
	if ms := e.inbox(appsCitizenA); ms[1].ReadAt == nil || ms[0].ReadAt != nil || ms[2].ReadAt != nil {
		t.Errorf("read times in the inbox: %v %v %v", ms[0].ReadAt, ms[1].ReadAt, ms[2].ReadAt)
	}
}
