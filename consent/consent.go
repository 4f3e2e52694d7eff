// Package consent owns every release of a citizen's personal data: what the
// citizen agreed to share with whom and why (consent records, ISO/IEC TS
// 27560), the legal bases under which an agency may receive data without
// asking, the signed receipts of each grant and withdrawal, and the
// tamper-evident log of every release that the citizen reads.
//
// The identity provider (ID tokens, userinfo), the mobile API's data broker
// and form pre-fill all ask this package before they release anything, and
// append a log entry before the data leaves: there is no other path. The
// package imports no other OneDoor area; they import it.
package consent

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"time"
)

// Errors the stores and the service return. Stores map their own failures
// to these (an outage wraps ErrUnavailable), so callers never see a driver
// error.
var (
	ErrNotFound    = errors.New("not found")
	ErrConflict    = errors.New("conflict")
	ErrInvalid     = errors.New("invalid")
	ErrUnavailable = errors.New("store unavailable")
	// ErrWithdrawn: the consent was withdrawn (or expired); nothing derived
	// from it may be released.
	ErrWithdrawn = errors.New("consent withdrawn or expired")
)

// Basis is the lawful basis of a release.
type Basis string

// Bases. A record or legal basis names one of them.
const (
	// BasisConsent: the citizen agreed, with evidence.
	BasisConsent Basis = "consent"
	// BasisLegalObligation and BasisPublicTask: an operator registered a
	// law that lets an agency receive these items for this purpose.
	BasisLegalObligation Basis = "legal_obligation"
	BasisPublicTask      Basis = "public_task"
	// BasisCitizenRequest: the citizen's own request in the app, such as a
	// form pre-filled for an application they are writing.
	BasisCitizenRequest Basis = "citizen_request"
)

// Valid reports whether b is a known basis.
func (b Basis) Valid() bool {
	switch b {
	case BasisConsent, BasisLegalObligation, BasisPublicTask, BasisCitizenRequest:
		return true
	}
	return false
}

// Legal reports whether b is a basis an operator registers with a law.
func (b Basis) Legal() bool { return b == BasisLegalObligation || b == BasisPublicTask }

// Purpose is one entry of a client's catalog of purposes: why it asks for
// data. Each client registers its own (`onedoor client create --purpose
// CODE:TEXT`); a login that names none uses the client's first.
type Purpose struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// LoginPurpose is the purpose of a login by a client that registered none.
var LoginPurpose = Purpose{Code: "login", Text: "Đăng nhập và sử dụng dịch vụ / Sign in and use the service"}

// Method says how the citizen expressed consent.
type Method string

// Methods.
const (
	MethodEIDApp  Method = "eid_app"  // Evidence is the approval JWS the device signed
	MethodWebForm Method = "web_form" // Evidence is the form submission
)

// Record is one consent: what a citizen (the PII principal) agreed to let
// a recipient (a client and its agency) have, for one purpose. There is at
// most one live record per citizen, client and purpose: a later grant for
// the same three replaces its items and evidence (Version grows), and a
// withdrawn record is final (a new grant starts a new record). Field names
// follow ISO/IEC TS 27560 where it has one.
type Record struct {
	ID        string // "cns_…", opaque and stable
	CitizenID string // the PII principal (the IdP's subject)
	ClientID  string // the recipient
	Agency    string // the recipient's agency code; empty for a client bound to none
	Recipient string // the recipient's name as shown when consent was given
	Purpose   Purpose
	Items     []string // the data items agreed, in display order
	Declined  []string // optional items asked for and declined
	Basis     Basis    // BasisConsent for records; legal bases live in LegalBasis
	Notice    string   // version of the notice shown
	Method    Method
	Evidence  string // the device-signed approval JWS, or the form submission
	// GivenBy is the representative who gave the consent for the citizen
	// (a guardian for a ward), whose device signed the Evidence; nil when
	// the citizen gave it.
	GivenBy   *OnBehalf
	Version   int64 // 1 for a new record, +1 on each re-grant
	GrantedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
	// WithdrawnAt is set once, by the citizen or an operator; nothing
	// derived from the record is released after it.
	WithdrawnAt *time.Time
}

// Active reports whether the record may still be relied on at now.
func (r *Record) Active(now time.Time) bool {
	return r.WithdrawnAt == nil && now.Before(r.ExpiresAt)
}

// Covers reports whether the record's items include every one of items.
func (r *Record) Covers(items []string) bool {
	for _, it := range items {
		if !slices.Contains(r.Items, it) {
			return false
		}
	}
	return true
}

// LegalBasis lets an agency receive items about any citizen for a purpose
// without asking, because a law says so. Only an operator registers,
// amends or revokes one (`onedoor agency grant-basis`, `amend-basis`,
// `revoke-basis`), and each change appends a BasisEvent to the trail.
type LegalBasis struct {
	ID        string // "lb_…"
	Agency    string
	Purpose   string // purpose code
	Items     []string
	Basis     Basis // BasisLegalObligation or BasisPublicTask
	Law       string
	Version   int64 // 1 when granted, +1 on each amendment
	CreatedAt time.Time
	UpdatedAt time.Time
	RevokedAt *time.Time
}

// ReceiptKind says what a receipt attests.
type ReceiptKind string

// Receipt kinds.
const (
	ReceiptGranted   ReceiptKind = "granted"
	ReceiptWithdrawn ReceiptKind = "withdrawn"
)

// Receipt is the platform's signed statement of one grant or withdrawal:
// a JWS (compact) verifiable against the IdP's JWKS, kept so the citizen
// can download it later and the recipient can fetch it.
type Receipt struct {
	ID        string // "rcpt_…"
	ConsentID string
	CitizenID string
	Kind      ReceiptKind
	Version   int64 // the record version it attests
	JWS       string
	CreatedAt time.Time
}

// RecordQuery selects a citizen's records.
type RecordQuery struct {
	CitizenID string
	// Active keeps only records neither withdrawn nor expired at Now.
	Active bool
	Now    time.Time
	Page   Page
}

// Page is a cursor page: Cursor is opaque, from the previous page.
type Page struct {
	Cursor string
	Limit  int // clamped to [1, MaxLimit]; 0 means DefaultLimit
}

// Page sizes.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Clamp returns the limit to use.
func (p Page) Clamp() int {
	switch {
	case p.Limit <= 0:
		return DefaultLimit
	case p.Limit > MaxLimit:
		return MaxLimit
	}
	return p.Limit
}

// RecordStore keeps consent records, legal bases and receipts.
type RecordStore interface {
	// PutRecord creates r, or, when a live record exists for r's citizen,
	// client and purpose, replaces its items, declined items, recipient,
	// notice, method, evidence, UpdatedAt and ExpiresAt and increments its
	// Version; r is updated to what was stored (ID, Version, GrantedAt).
	// sign is called inside the same transaction with the stored record and
	// returns the receipt to keep with it: a failure stores nothing. The
	// grant's event (RecordGranted or RecordRegranted) is appended to the
	// consent trail in that transaction.
	PutRecord(ctx context.Context, r *Record, sign func(*Record) (*Receipt, error)) error
	// LiveRecord returns the record for citizen, client and purpose that is
	// not withdrawn (it may have expired); ErrNotFound when there is none.
	LiveRecord(ctx context.Context, citizenID, clientID, purpose string) (*Record, error)
	// GetRecord returns the citizen's record; another citizen's is
	// ErrNotFound. An empty citizenID (operators, token checks) matches any.
	GetRecord(ctx context.Context, citizenID, id string) (*Record, error)
	// ListRecords pages a citizen's records, newest grant first.
	ListRecords(ctx context.Context, q RecordQuery) ([]*Record, string, error)
	// WithdrawRecord sets WithdrawnAt, keeps the receipt sign returns and
	// appends the RecordWithdrawn event to the consent trail, in one
	// transaction. ErrNotFound for another citizen's record; ErrWithdrawn
	// when it was already withdrawn (the first time is kept).
	WithdrawRecord(ctx context.Context, citizenID, id string, at time.Time, sign func(*Record) (*Receipt, error)) (*Record, error)
	// Receipts lists a record's receipts, oldest first.
	Receipts(ctx context.Context, citizenID, consentID string) ([]*Receipt, error)
	// GetReceipt returns one receipt of the citizen's (ErrNotFound for
	// another's; an empty citizenID matches any).
	GetReceipt(ctx context.Context, citizenID, id string) (*Receipt, error)

	// PutLegalBasis registers a basis at version 1 and appends its
	// "granted" event to the trail, in one transaction; ErrConflict when the
	// agency already has a live basis for the purpose (amend or revoke it).
	// c.Operator and c.Reason are required.
	PutLegalBasis(ctx context.Context, b *LegalBasis, c BasisChange) error
	// AmendLegalBasis replaces a live basis's items and law, increments its
	// Version and appends the "amended" event, in one transaction, and
	// returns the basis as stored; ErrNotFound when unknown or revoked.
	AmendLegalBasis(ctx context.Context, id string, items []string, law string, c BasisChange) (*LegalBasis, error)
	// LegalBases lists an agency's live bases for a purpose ("" = every
	// purpose).
	LegalBases(ctx context.Context, agency, purpose string) ([]*LegalBasis, error)
	// RevokeLegalBasis ends a basis and appends the "revoked" event, in one
	// transaction; ErrNotFound when unknown or revoked.
	RevokeLegalBasis(ctx context.Context, id string, c BasisChange) error
}

// Store is everything the durable backend provides for consent.
type Store interface {
	RecordStore
	LogStore
}

// NewID returns a fresh opaque identifier with the prefix ("cns", "log",
// "rcpt", "lb").
func NewID(prefix string) string { return prefix + "_" + strings.ToLower(rand.Text()) }
