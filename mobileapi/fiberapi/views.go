package fiberapi

import (
	"encoding/json"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
	whk "github.com/onedoor/onedoor/mobileapi/webhook" // the delivery log shows each event as delivered
)

// The JSON views of the contract (mobileapi/openapi.json). Domain types
// carry no JSON tags of their own beyond small value types: the wire format
// is decided here.

type serviceSummaryView struct {
	ID             string         `json:"id"`
	Code           string         `json:"code"`
	Name           mobileapi.Text `json:"name"`
	Description    mobileapi.Text `json:"description"`
	AgencyCode     string         `json:"agency_code"`
	Category       string         `json:"category"`
	Fee            mobileapi.Fee  `json:"fee"`
	ProcessingTime processingTime `json:"processing_time"`
	Version        int            `json:"version"`
}

type processingTime struct {
	WorkingDays int `json:"working_days"`
}

type agencyRef struct {
	Code string         `json:"code"`
	Name mobileapi.Text `json:"name"`
}

type serviceView struct {
	serviceSummaryView
	RequiredDocuments []mobileapi.RequiredDocument `json:"required_documents"`
	HandlingAgencies  []agencyRef                  `json:"handling_agencies"`
	Schema            json.RawMessage              `json:"schema"`
	Representation    string                       `json:"representation"`
	UpdatedAt         time.Time                    `json:"updated_at"`
}

func serviceSummary(s *mobileapi.Service) serviceSummaryView {
	return serviceSummaryView{ID: s.ID, Code: s.Code, Name: s.Name, Description: s.Description, AgencyCode: s.AgencyCode,
		Category: s.Category, Fee: s.Fee, ProcessingTime: processingTime{s.ProcessingDays}, Version: s.Version}
}

func serviceFull(s *mobileapi.Service, agencies []agencyRef) serviceView {
	docs := s.RequiredDocuments
	if docs == nil {
		docs = []mobileapi.RequiredDocument{}
	}
	rep := s.Representation
	if rep == "" {
		rep = mobileapi.RepresentationAllowed
	}
	return serviceView{serviceSummaryView: serviceSummary(s), RequiredDocuments: docs, HandlingAgencies: agencies,
		Schema: s.Schema, Representation: rep, UpdatedAt: s.UpdatedAt}
}

type timelineView struct {
	At      time.Time         `json:"at"`
	By      string            `json:"by"`
	From    *mobileapi.Status `json:"from"`
	To      mobileapi.Status  `json:"to"`
	Message *string           `json:"message"`
}

type attachmentView struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	ContentType  string    `json:"content_type"`
	Size         int64     `json:"size"`
	SHA256       string    `json:"sha256"`
	DocumentCode *string   `json:"document_code"`
	CreatedAt    time.Time `json:"created_at"`
}

type resultView struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Href        string `json:"href"`
}

type documentView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	CreatedAt   time.Time `json:"created_at"`
}

// applicantRefView is who filed an application, as citizens see it.
type applicantRefView struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// subjectView is whom an application is for. Agencies know people by
// personal id: their view leaves out a person's subject identifier.
type subjectView struct {
	Type       string `json:"type"`
	ID         string `json:"id,omitempty"`
	Name       string `json:"name"`
	TaxCode    string `json:"tax_code,omitempty"`
	PersonalID string `json:"personal_id,omitempty"`
}

// subjectOfApp is a's subject; an application older than representation
// is its applicant's own.
func subjectOfApp(a *mobileapi.Application, citizen bool) subjectView {
	sub := a.Subject
	if sub.ID == "" {
		sub = mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: a.CitizenID, Name: a.ApplicantName}
	}
	v := subjectView{Type: sub.Type, ID: sub.ID, Name: sub.Name}
	if v.Type == mobileapi.SubjectOrganisation {
		v.TaxCode = sub.Ref
	} else {
		v.PersonalID = sub.Ref
		if !citizen {
			v.ID = ""
		}
	}
	return v
}

type applicationView struct {
	ID             string                          `json:"id"`
	Applicant      applicantRefView                `json:"applicant"`
	Subject        subjectView                     `json:"subject"`
	ServiceID      string                          `json:"service_id"`
	ServiceVersion int                             `json:"service_version"`
	AgencyCode     string                          `json:"agency_code"`
	Status         mobileapi.Status                `json:"status"`
	Form           json.RawMessage                 `json:"form"`
	Prefilled      map[string]mobileapi.Provenance `json:"prefilled"`
	Timeline       []timelineView                  `json:"timeline"`
	Attachments    []attachmentView                `json:"attachments"`
	Results        []resultView                    `json:"results"`
	CreatedAt      time.Time                       `json:"created_at"`
	UpdatedAt      time.Time                       `json:"updated_at"`
}

// resultHref is where the citizen downloads a result document.
func resultHref(appID, fileID string) string {
	return "/v1/applications/" + appID + "/results/" + fileID
}

// agencyFileHref is where the agency downloads a file of the application.
func agencyFileHref(appID, fileID string) string {
	return "/agency/v1/applications/" + appID + "/attachments/" + fileID
}

func results(appID string, fs []mobileapi.File, href func(appID, fileID string) string) []resultView {
	out := make([]resultView, 0, len(fs))
	for _, f := range fs {
		out = append(out, resultView{ID: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size, SHA256: f.SHA256, Href: href(appID, f.ID)})
	}
	return out
}

func application(a *mobileapi.Application, href func(appID, fileID string) string) applicationView {
	v := applicationView{ID: a.ID, Applicant: applicantRefView{ID: a.CitizenID, Name: a.ApplicantName}, Subject: subjectOfApp(a, true),
		ServiceID: a.ServiceID, ServiceVersion: a.ServiceVersion, AgencyCode: a.AgencyCode,
		Status: a.Status, Form: a.Form, Prefilled: a.Prefilled, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
		Timeline: make([]timelineView, 0, len(a.Timeline)), Attachments: make([]attachmentView, 0, len(a.Attachments)),
		Results: results(a.ID, a.Results, href)}
	if len(v.Form) == 0 {
		v.Form = json.RawMessage("{}")
	}
	if v.Prefilled == nil {
		v.Prefilled = map[string]mobileapi.Provenance{}
	}
	for _, t := range a.Timeline {
		tv := timelineView{At: t.At, By: t.By, To: t.To, Message: nullable(t.Message)}
		if t.From != "" {
			from := t.From
			tv.From = &from
		}
		v.Timeline = append(v.Timeline, tv)
	}
	for _, f := range a.Attachments {
		v.Attachments = append(v.Attachments, attachmentView{ID: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size,
			SHA256: f.SHA256, DocumentCode: nullable(f.DocumentCode), CreatedAt: f.CreatedAt})
	}
	return v
}

type applicationSummaryView struct {
	ID          string           `json:"id"`
	ServiceID   string           `json:"service_id"`
	ServiceName mobileapi.Text   `json:"service_name"`
	AgencyCode  string           `json:"agency_code"`
	Status      mobileapi.Status `json:"status"`
	Subject     subjectView      `json:"subject"`
	CreatedAt   time.Time        `json:"created_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
}

type applicantView struct {
	PersonalID string `json:"personal_id"`
	Name       string `json:"name"`
	Birthdate  string `json:"birthdate"`
	Address    string `json:"address"`
}

func applicant(c *idp.Citizen) applicantView {
	if c == nil {
		return applicantView{}
	}
	return applicantView{PersonalID: c.PersonalID, Name: c.Name(), Birthdate: c.Birthdate, Address: c.Address}
}

// agencyApplicationView shadows the citizen view's applicant and subject
// with the agency's: the applicant from the register, the subject without
// a person's subject identifier.
type agencyApplicationView struct {
	applicationView
	Applicant applicantView `json:"applicant"`
	Subject   subjectView   `json:"subject"`
}

type agencyApplicationSummaryView struct {
	ID          string           `json:"id"`
	ServiceID   string           `json:"service_id"`
	ServiceCode string           `json:"service_code"`
	AgencyCode  string           `json:"agency_code"`
	Status      mobileapi.Status `json:"status"`
	Applicant   applicantView    `json:"applicant"`
	Subject     subjectView      `json:"subject"`
	SubmittedAt *time.Time       `json:"submitted_at"`
	UpdatedAt   time.Time        `json:"updated_at"`
}

type meView struct {
	ID          string  `json:"id"`
	PersonalID  string  `json:"personal_id"`
	Name        string  `json:"name"`
	FamilyName  string  `json:"family_name"`
	GivenName   string  `json:"given_name"`
	Birthdate   string  `json:"birthdate"`
	Gender      string  `json:"gender"`
	Address     string  `json:"address"`
	PhoneNumber *string `json:"phone_number"`
}

func meOf(c *idp.Citizen) meView {
	return meView{ID: c.ID, PersonalID: c.PersonalID, Name: c.Name(), FamilyName: c.FamilyName, GivenName: c.GivenName,
		Birthdate: c.Birthdate, Gender: c.Gender, Address: c.Address, PhoneNumber: nullable(c.PhoneNumber)}
}

type messageView struct {
	ID            string            `json:"id"`
	ApplicationID *string           `json:"application_id"`
	Status        *mobileapi.Status `json:"status"`
	AgencyCode    string            `json:"agency_code"`
	Title         mobileapi.Text    `json:"title"`
	Body          *string           `json:"body"`
	Results       []resultView      `json:"results"`
	Read          bool              `json:"read"`
	CreatedAt     time.Time         `json:"created_at"`
	ReadAt        *time.Time        `json:"read_at"`
}

func message(m *mobileapi.Message) messageView {
	v := messageView{ID: m.ID, ApplicationID: nullable(m.ApplicationID), AgencyCode: m.AgencyCode, Title: m.Title,
		Body: nullable(m.Body), Results: results(m.ApplicationID, m.Results, resultHref), Read: m.ReadAt != nil,
		CreatedAt: m.CreatedAt, ReadAt: m.ReadAt}
	if m.Status != "" {
		st := m.Status
		v.Status = &st
	}
	return v
}

type recentResultView struct {
	ApplicationID string         `json:"application_id"`
	ServiceName   mobileapi.Text `json:"service_name"`
	DecidedAt     time.Time      `json:"decided_at"`
	Result        resultView     `json:"result"`
}

// representedHomeView is one party the citizen acts for on the home
// screen, with its applications waiting for action.
type representedHomeView struct {
	Party        subjectView              `json:"party"`
	Basis        string                   `json:"basis"`
	ActionNeeded []applicationSummaryView `json:"action_needed"`
}

type homeView struct {
	Me                meView                   `json:"me"`
	ActionNeeded      []applicationSummaryView `json:"action_needed"`
	Represented       []representedHomeView    `json:"represented"`
	UnreadCount       int                      `json:"unread_count"`
	RecentResults     []recentResultView       `json:"recent_results"`
	SuggestedServices []serviceSummaryView     `json:"suggested_services"`
}

type webhookView struct {
	ID          string                `json:"id"`
	URL         string                `json:"url"`
	Events      []mobileapi.EventType `json:"events"`
	Description *string               `json:"description"`
	CreatedAt   time.Time             `json:"created_at"`
}

func webhook(w *mobileapi.Webhook) webhookView {
	ev := w.Events
	if len(ev) == 0 {
		ev = mobileapi.ApplicationEvents
	}
	return webhookView{ID: w.ID, URL: w.URL, Events: ev, Description: nullable(w.Description), CreatedAt: w.CreatedAt}
}

type attemptView struct {
	At         time.Time `json:"at"`
	StatusCode *int      `json:"status_code"`
	Error      *string   `json:"error"`
	DurationMS int64     `json:"duration_ms"`
}

type deliveryView struct {
	ID            string                  `json:"id"`
	WebhookID     string                  `json:"webhook_id"`
	Event         whk.Event               `json:"event"`
	State         mobileapi.DeliveryState `json:"state"`
	Attempts      []attemptView           `json:"attempts"`
	NextAttemptAt *time.Time              `json:"next_attempt_at"`
	CreatedAt     time.Time               `json:"created_at"`
}

func delivery(d *mobileapi.Delivery) deliveryView {
	v := deliveryView{ID: d.ID, WebhookID: d.WebhookID, Event: whk.NewEvent(d.Event), State: d.State,
		Attempts: make([]attemptView, 0, len(d.Attempts)), NextAttemptAt: d.NextAttemptAt, CreatedAt: d.CreatedAt}
	if d.State != mobileapi.DeliveryPending {
		v.NextAttemptAt = nil
	}
	for _, a := range d.Attempts {
		av := attemptView{At: a.At, Error: nullable(a.Error), DurationMS: a.Duration.Milliseconds()}
		if a.StatusCode != 0 {
			sc := a.StatusCode
			av.StatusCode = &sc
		}
		v.Attempts = append(v.Attempts, av)
	}
	return v
}

// list is a page of items.
type list[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func newList[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items, NextCursor: nullable(next)}
}
