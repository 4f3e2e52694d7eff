// Package mobileapi holds the domain of the one door: agencies, the catalog
// of public services, applications (dossiers) from draft to result, the
// agencies' work queue and webhooks, and the citizen's inbox. It imports no
// framework or driver: the HTTP API lives in fiberapi, the stores in sqlstore
// (SQLite and PostgreSQL), files in a blob store beneath.
//
// Errors are idp's sentinel errors (idp.ErrNotFound, ErrConflict, ErrInvalid,
// ErrUnavailable), wrapped, plus ErrPrecondition for a stale If-Match.
package mobileapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"
)

// ErrPrecondition means the caller's expected version is stale (If-Match).
var ErrPrecondition = errors.New("precondition failed")

// ErrNotOwner means another agency owns the service.
var ErrNotOwner = errors.New("owned by another agency")

// Text is a text in Vietnamese and English.
type Text struct {
	VI string `json:"vi"`
	EN string `json:"en"`
}

// In returns the text in lang ("en" or else Vietnamese), falling back to the
// other language when empty.
func (t Text) In(lang string) string {
	if lang == "en" && t.EN != "" {
		return t.EN
	}
	if t.VI == "" {
		return t.EN
	}
	return t.VI
}

// Agency is a ministry, department, province or commune. Agencies form a
// tree through ParentCode.
type Agency struct {
	Code         string
	Name         Text
	ParentCode   string // empty for a root
	ProvinceCode string // the province it serves, empty for a national body
	CreatedAt    time.Time
}

// Fee is a service's fee in the currency's minor unit (VND has none).
type Fee struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// RequiredDocument is a document a service asks the citizen to attach.
type RequiredDocument struct {
	Code     string `json:"code"`
	Name     Text   `json:"name"`
	Required bool   `json:"required"`
}

// Service is a public service of the catalog at one version. ID and Code are
// stable across versions; Version increases with every change, and an
// application keeps following the version it was created with.
type Service struct {
	ID                string
	Code              string
	Version           int
	Name              Text
	Description       Text
	AgencyCode        string // the owner
	Category          string
	Fee               Fee
	ProcessingDays    int
	RequiredDocuments []RequiredDocument
	// HandlingAgencies are the agencies that handle applications (one per
	// province for a national service); empty means the owner alone.
	HandlingAgencies []string
	Schema           json.RawMessage // JSON Schema 2020-12 of the form
	// Representation says whether an application may be filed for someone
	// else (an organisation, a ward, a mandator): RepresentationAllowed
	// (also when empty) or RepresentationRefused.
	Representation string
	UpdatedAt      time.Time
}

// Representation policies of a service.
const (
	RepresentationAllowed = "allowed"
	RepresentationRefused = "refused"
)

// AcceptsRepresentation reports whether applications may be filed for
// someone else.
func (s *Service) AcceptsRepresentation() bool { return s.Representation != RepresentationRefused }

// Handlers returns the agencies that may handle the service's applications.
func (s *Service) Handlers() []string {
	if len(s.HandlingAgencies) == 0 {
		return []string{s.AgencyCode}
	}
	return s.HandlingAgencies
}

// Status is where an application stands.
type Status string

// Application statuses.
const (
	StatusDraft            Status = "draft"
	StatusSubmitted        Status = "submitted"
	StatusInReview         Status = "in_review"
	StatusNeedsInformation Status = "needs_information"
	StatusApproved         Status = "approved"
	StatusRejected         Status = "rejected"
	StatusWithdrawn        Status = "withdrawn"
)

// Valid reports whether s is one of the statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusDraft, StatusSubmitted, StatusInReview, StatusNeedsInformation,
		StatusApproved, StatusRejected, StatusWithdrawn:
		return true
	}
	return false
}

// Editable reports whether the citizen may change the form and attachments.
func (s Status) Editable() bool { return s == StatusDraft || s == StatusNeedsInformation }

// Decided reports whether the application has reached a decision.
func (s Status) Decided() bool { return s == StatusApproved || s == StatusRejected }

// Actor is who makes a transition: the citizen or the competent agency.
type Actor int

// Actors.
const (
	ActorCitizen Actor = iota + 1
	ActorAgency
)

// CanTransition reports whether actor may move an application from one
// status to another. The citizen submits, resubmits after
// needs_information and withdraws before a decision; the agency reviews,
// asks for information and decides.
func CanTransition(actor Actor, from, to Status) bool {
	switch actor {
	case ActorCitizen:
		switch to {
		case StatusSubmitted:
			return from == StatusDraft || from == StatusNeedsInformation
		case StatusWithdrawn:
			return from == StatusSubmitted || from == StatusInReview || from == StatusNeedsInformation
		}
	case ActorAgency:
		switch to {
		case StatusInReview:
			return from == StatusSubmitted
		case StatusNeedsInformation, StatusApproved, StatusRejected:
			return from == StatusSubmitted || from == StatusInReview
		}
	}
	return false
}

// EventType is what an agency is told about.
type EventType string

// Agency events.
const (
	EventSubmitted   EventType = "submitted"
	EventResubmitted EventType = "resubmitted"
	EventWithdrawn   EventType = "withdrawn"
	// EventConsentWithdrawn tells the recipient's agency that a citizen (or
	// an operator) withdrew a consent. It goes to webhooks only, never to
	// the lease queue (which is about applications), and only to webhooks
	// that name it: a webhook registered for "all" events (an empty list)
	// keeps receiving the application events alone, so receivers written
	// for application events never meet a body without an application.
	EventConsentWithdrawn EventType = "consent.withdrawn"
)

// ApplicationEvents are the event types an empty subscription means.
var ApplicationEvents = []EventType{EventSubmitted, EventResubmitted, EventWithdrawn}

// WebhookEventTypes are the event types a webhook may subscribe to.
var WebhookEventTypes = []EventType{EventSubmitted, EventResubmitted, EventWithdrawn, EventConsentWithdrawn}

// EventFor returns the agency event a citizen's transition raises, if any.
func EventFor(from, to Status) (EventType, bool) {
	switch {
	case to == StatusSubmitted && from == StatusDraft:
		return EventSubmitted, true
	case to == StatusSubmitted && from == StatusNeedsInformation:
		return EventResubmitted, true
	case to == StatusWithdrawn:
		return EventWithdrawn, true
	}
	return "", false
}

// TimelineEntry is one transition. By is "citizen", "agency:<code>" or
// "system"; From is empty for the creation of the draft.
type TimelineEntry struct {
	At      time.Time
	By      string
	From    Status
	To      Status
	Message string
}

// Provenance says where a pre-filled value came from.
type Provenance struct {
	Source string    `json:"source"`
	Field  string    `json:"field"`
	AsOf   time.Time `json:"as_of"`
}

// File is an attachment (the citizen's) or a result document (the
// agency's). Its bytes live in the blob store under BlobKey.
type File struct {
	ID           string
	Name         string
	ContentType  string
	Size         int64
	SHA256       string // hex
	DocumentCode string // for attachments: the required document it stands for
	BlobKey      string
	CreatedAt    time.Time
}

// Subject types: whom an application is for.
const (
	SubjectPerson       = "person"
	SubjectOrganisation = "organisation"
)

// Subject is whom an application is for: the applicant themself, a person
// they represent (a ward, a mandator) or an organisation. Name and Ref (the
// personal id or tax code) are as they were when the application was filed.
type Subject struct {
	Type string // SubjectPerson or SubjectOrganisation
	ID   string // the party's subject identifier (a citizen's sub, or "org:…")
	Name string
	Ref  string
}

// Application is a citizen's application for a service.
type Application struct {
	ID string
	// CitizenID is the applicant: the citizen who filed it and alone changes
	// it (for themself or for Subject).
	CitizenID string
	// ApplicantName is the applicant's name when they filed ("" on
	// applications older than representation).
	ApplicantName string
	// Subject is whom it is for; an empty ID means the applicant
	// (CreateApplication fills it in).
	Subject        Subject
	ServiceID      string
	ServiceVersion int
	ServiceCode    string // the service's stable code, copied into the agency's events
	// ServiceCategory is the service version's category: mandates may be
	// bounded by category.
	ServiceCategory string
	AgencyCode      string // the competent agency
	Status          Status
	Form            json.RawMessage
	Prefilled       map[string]Provenance // keyed by JSON Pointer into Form
	Timeline        []TimelineEntry
	Attachments     []File
	Results         []File
	// Version increases with every change; it is the ETag that If-Match
	// compares.
	Version     int64
	CreatedAt   time.Time
	UpdatedAt   time.Time
	SubmittedAt *time.Time // the last submission
	DecidedAt   *time.Time
}

// ForSomeoneElse reports whether the applicant filed it for another party.
func (a *Application) ForSomeoneElse() bool { return a.Subject.ID != "" && a.Subject.ID != a.CitizenID }

// Scope is whose applications a caller may see: exactly one of a citizen
// or an agency (those routed to it). A citizen sees the applications about
// them (those they filed for themself among them) and those about a party
// in Represents (within its bounds). One they filed for someone else is
// theirs only while they represent that party for its service: a mandate
// revoked, a legal representative replaced or a ward come of age ends it,
// as for every other representative. Only the applicant changes an
// application. Another's application is not found.
type Scope struct {
	CitizenID  string
	AgencyCode string
	// Represents are the parties the citizen may act for now (the
	// representation service's answer, never the client's).
	Represents []Represented
}

// MaxRepresented bounds the parties one scope names.
const MaxRepresented = 200

// Represented is a party a citizen represents, as a Scope names it.
// Services and Categories bound a mandate's representation; both empty
// means every service.
type Represented struct {
	PartyID    string
	Services   []string
	Categories []string
}

// Covers reports whether the representation extends to the service.
func (r Represented) Covers(serviceCode, category string) bool {
	if len(r.Services) == 0 && len(r.Categories) == 0 {
		return true
	}
	for _, s := range r.Services {
		if s == serviceCode {
			return true
		}
	}
	for _, c := range r.Categories {
		if c == category {
			return true
		}
	}
	return false
}

// Visible reports whether the scope sees a: the agency those routed to it
// once submitted; the citizen those they filed for themself, those about
// them, and those about a party they represent for that service (the ones
// they filed for that party among them). The stores' queries say the same.
func (s Scope) Visible(a *Application) bool {
	if s.CitizenID == "" {
		return s.AgencyCode != "" && a.AgencyCode == s.AgencyCode && a.Status != StatusDraft
	}
	if a.Subject.ID == s.CitizenID || (a.CitizenID == s.CitizenID && !a.ForSomeoneElse()) {
		return true
	}
	for _, r := range s.Represents {
		if r.PartyID == a.Subject.ID && r.Covers(a.ServiceCode, a.ServiceCategory) {
			return true
		}
	}
	return false
}

// ErrNotApplicant means a citizen who may see an application, but did not
// file it, tried to change it.
var ErrNotApplicant = errors.New("only the applicant changes an application")

// Page asks for one page of a list. Cursor is the previous page's opaque
// NextCursor; a malformed cursor is idp.ErrInvalid.
type Page struct {
	Cursor string
	Limit  int // clamped to [1, MaxLimit]; 0 means DefaultLimit
}

// Page sizes.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// ApplicationQuery filters a list of applications, newest change first.
type ApplicationQuery struct {
	Scope    Scope
	Statuses []Status // empty: all
	// SubjectID, when set, keeps the applications about that party.
	SubjectID string
	Page
}

// Event is something an agency is told about through its queue and its
// webhooks.
type Event struct {
	ID            string
	Type          EventType
	AgencyCode    string
	ApplicationID string
	ServiceID     string
	ServiceCode   string
	OccurredAt    time.Time
	// Consent is set for EventConsentWithdrawn alone, whose application
	// fields are empty.
	Consent *ConsentEvent
}

// ConsentEvent is the consent an EventConsentWithdrawn is about.
type ConsentEvent struct {
	ID       string `json:"id"`        // the consent record, "cns_…"
	ClientID string `json:"client_id"` // the recipient client
	Purpose  string `json:"purpose"`   // the purpose code
	Receipt  string `json:"receipt"`   // the signed withdrawal receipt (JWS)
}

// Message is a message in a citizen's inbox.
type Message struct {
	ID            string
	CitizenID     string
	ApplicationID string // empty when about no application
	Status        Status // the status it announces, if any
	AgencyCode    string
	Title         Text
	Body          string
	Results       []File
	CreatedAt     time.Time
	ReadAt        *time.Time
	// NotificationID is the push the message raised ("" when push is
	// off); set by Transition, not stored with the message.
	NotificationID string
}

// Transition asks to move an application to another status.
type Transition struct {
	Scope         Scope
	ApplicationID string
	IfVersion     int64 // 0: any version
	Actor         Actor
	By            string // as in TimelineEntry
	To            Status
	Message       string
	// Documents are result documents uploaded by the agency (AddDocument)
	// to publish with this transition.
	Documents []string
	// Inbox, when set, is put in the inbox of each of Recipients in the
	// same transaction, each copy with its push; the first copy's ID,
	// CitizenID, ApplicationID, Status, Results, CreatedAt and
	// NotificationID are filled in.
	Inbox *Message
	// Recipients are every citizen who gets a copy of Inbox, and no one
	// else: the caller decides, the store adds nobody (not even the
	// applicant). The applicant belongs here when the application is
	// their own, or while they still represent its subject for its
	// service; then the subject when a person, and whoever represents the
	// subject for the service now. Empty names and duplicates are skipped;
	// at most MaxRecipients. Inbox with no recipient is ErrInvalid (drop
	// Inbox when nobody is to be told).
	Recipients []string
}

// MaxRecipients bounds the copies of one inbox message.
const MaxRecipients = 50

// Lease is an event leased to one worker of an agency until it is
// acknowledged or ExpiresAt passes.
type Lease struct {
	ID        string
	ExpiresAt time.Time
	Event     Event
}

// Webhook is an agency's endpoint for events.
type Webhook struct {
	ID          string
	AgencyCode  string
	URL         string
	Events      []EventType
	Description string
	CreatedAt   time.Time
}

// DeliveryState is where a webhook delivery stands.
type DeliveryState string

// Delivery states.
const (
	DeliveryPending   DeliveryState = "pending"
	DeliverySucceeded DeliveryState = "succeeded"
	DeliveryFailed    DeliveryState = "failed" // gave up after the last attempt
)

// Attempt is one try at delivering an event.
type Attempt struct {
	At         time.Time
	StatusCode int // 0 when no response arrived
	Error      string
	Duration   time.Duration
}

// Delivery is one event on its way to one webhook.
type Delivery struct {
	ID            string
	WebhookID     string
	AgencyCode    string
	URL           string
	Event         Event
	State         DeliveryState
	Attempts      []Attempt
	NextAttemptAt *time.Time
	CreatedAt     time.Time
	// Claim is the claim ClaimDeliveries returned the delivery under
	// ("" when listed: ListDeliveries clears it).
	Claim string
}

// AgencyStore holds the agencies.
type AgencyStore interface {
	// CreateAgency stores a new agency; ErrConflict when the code exists,
	// ErrNotFound when the parent does not.
	CreateAgency(ctx context.Context, a *Agency) error
	GetAgency(ctx context.Context, code string) (*Agency, error)
	ListAgencies(ctx context.Context) ([]*Agency, error)
}

// CatalogStore holds the services, every version of them.
type CatalogStore interface {
	// PutService creates the service named by s.Code, or stores a new
	// version of it when anything changed (ID and CreatedAt are kept, Version
	// increases). ifVersion > 0 requires the current version to be that
	// one (ErrPrecondition otherwise). A service another agency owns is
	// ErrNotOwner. It reports whether it created the
	// service; s is filled in with what was stored. Creating a service
	// when the agency owns MaxServicesPerAgency already is ErrQuota.
	PutService(ctx context.Context, s *Service, ifVersion int) (created bool, err error)
	// GetService returns the latest version.
	GetService(ctx context.Context, id string) (*Service, error)
	GetServiceByCode(ctx context.Context, code string) (*Service, error)
	// GetServiceVersion returns one version, as applications following it
	// need.
	GetServiceVersion(ctx context.Context, id string, version int) (*Service, error)
	// ListServices returns the latest version of every service (the search
	// index is built from it).
	ListServices(ctx context.Context) ([]*Service, error)
	// CatalogVersion changes whenever the catalog does, on every replica,
	// so caches know when to reload.
	CatalogVersion(ctx context.Context) (int64, error)
}

// ApplicationStore holds applications and carries out their transitions.
// Every method takes the caller's Scope: another's application is
// idp.ErrNotFound.
type ApplicationStore interface {
	// CreateApplication stores a new draft with its first timeline entry.
	CreateApplication(ctx context.Context, a *Application) error
	GetApplication(ctx context.Context, scope Scope, id string) (*Application, error)
	// ListApplications returns summaries (without timeline, attachments and
	// results) and the next page's cursor ("" on the last page).
	ListApplications(ctx context.Context, q ApplicationQuery) ([]*Application, string, error)
	// UpdateForm replaces the form of an editable application (ErrConflict
	// otherwise).
	UpdateForm(ctx context.Context, scope Scope, id string, ifVersion int64, form json.RawMessage) (*Application, error)
	// DeleteDraft deletes a draft (ErrConflict for any other status) and
	// returns the blob keys of its attachments for the caller to delete.
	DeleteDraft(ctx context.Context, scope Scope, id string, ifVersion int64) ([]string, error)
	// AddAttachment adds a file to an editable application; ErrQuota when
	// it holds MaxAttachments already.
	AddAttachment(ctx context.Context, scope Scope, id string, ifVersion int64, f *File) (*Application, error)
	// AddDocument stores a result document the competent agency uploaded;
	// it is published by a later transition naming it.
	AddDocument(ctx context.Context, agencyCode, applicationID string, f *File) error
	// GetDocument returns a result document agencyCode uploaded to the
	// application, published or not (an Idempotency-Key replay re-reads
	// it); ErrNotFound otherwise.
	GetDocument(ctx context.Context, agencyCode, applicationID, id string) (*File, error)
	// Transition moves an application, atomically with its timeline entry,
	// the agency event it raises (queue and webhook deliveries), its
	// published documents and its inbox message. An illegal transition
	// (CanTransition) is ErrConflict; an unknown document ErrInvalid.
	Transition(ctx context.Context, t Transition) (*Application, error)
}

// QueueStore is each agency's lease-and-acknowledge queue of events.
type QueueStore interface {
	// Lease leases up to n events of the agency that are not leased (or
	// whose lease expired), oldest first, for d. Concurrent callers never
	// get the same event.
	Lease(ctx context.Context, agencyCode string, n int, d time.Duration) ([]*Lease, error)
	// Ack removes a leased event; ErrNotFound for an unknown lease (or
	// another agency's), ErrConflict for an expired one.
	Ack(ctx context.Context, agencyCode, leaseID string) error
}

// ClaimsPerAgency bounds one agency's webhook deliveries in flight, so its
// slow endpoints cannot starve other agencies' deliveries.
const ClaimsPerAgency = 2

// WebhookStore holds webhooks and their durable deliveries.
type WebhookStore interface {
	// CreateWebhook stores a new webhook; ErrQuota when the agency has
	// MaxWebhooks already.
	CreateWebhook(ctx context.Context, w *Webhook) error
	ListWebhooks(ctx context.Context, agencyCode string, p Page) ([]*Webhook, string, error)
	// DeleteWebhook deletes the webhook; its pending deliveries stop.
	DeleteWebhook(ctx context.Context, agencyCode, id string) error
	ListDeliveries(ctx context.Context, agencyCode, webhookID string, p Page) ([]*Delivery, string, error)
	// ClaimDeliveries takes up to n pending deliveries that are due and
	// hides them from other claimers for d (a worker that dies releases
	// them when d passes). No agency has more than ClaimsPerAgency
	// deliveries claimed at once, across every claimer.
	ClaimDeliveries(ctx context.Context, n int, d time.Duration) ([]*Delivery, error)
	// RecordAttempt appends an attempt and sets the next state: pending
	// with next set, succeeded or failed (next nil).
	RecordAttempt(ctx context.Context, deliveryID string, a Attempt, state DeliveryState, next *time.Time) error
	// RecordClaimedAttempt is RecordAttempt under the claim the delivery
	// was claimed under: once that claim lapsed (and the delivery was
	// claimed again or finished) it changes nothing and is ErrConflict,
	// so a slow worker's late outcome cannot overwrite the next one's.
	RecordClaimedAttempt(ctx context.Context, deliveryID, claim string, a Attempt, state DeliveryState, next *time.Time) error
}

// InboxStore holds the citizens' inbox messages.
type InboxStore interface {
	ListInbox(ctx context.Context, citizenID string, p Page) ([]*Message, string, error)
	UnreadCount(ctx context.Context, citizenID string) (int, error)
	// MarkRead marks the citizen's message read (first read time kept).
	MarkRead(ctx context.Context, citizenID, id string) (*Message, error)
}

// Store is everything the mobile API keeps.
type Store interface {
	AgencyStore
	CatalogStore
	ApplicationStore
	QueueStore
	WebhookStore
	InboxStore
}

// BlobInfo describes stored bytes.
type BlobInfo struct {
	Size   int64
	SHA256 string // hex
}

// Blobs stores files by key. The interface fits an S3-compatible store:
// whole objects written once, streamed, never modified.
type Blobs interface {
	// Put stores r under key, failing with idp.ErrInvalid (nothing kept)
	// when r holds more than maxSize bytes.
	Put(ctx context.Context, key string, r io.Reader, maxSize int64) (BlobInfo, error)
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes key; absent keys are not an error.
	Delete(ctx context.Context, key string) error
}

// NewID returns a new opaque identifier: prefix, underscore and 26
// lowercase base32 characters (130 random bits).
func NewID(prefix string) string { return prefix + "_" + strings.ToLower(rand.Text()) }
