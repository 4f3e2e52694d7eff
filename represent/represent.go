// Package represent says who may act for whom: the legal representative of
// an organisation, the guardian of a minor or of a ward a court placed in
// their care, and a citizen holding a mandate from either. The identity
// provider asks it whom a citizen may act for at login and puts the answer in
// the tokens (RFC 8693 act); the mobile API asks it before an application is
// filed for someone else.
//
// A representation is never stored as such: it is derived, every time, from
// the registries (organisations here, guardianships in the citizen registry)
// and the mandates, so a mandate revoked, a legal representative replaced or
// a ward come of age ends it at once. Tokens issued under a representation
// carry its RevocationKey, which the Service denies when the basis ends
// before its time.
//
// The package imports no other OneDoor area; they import it.
package represent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"regexp"
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
	// ErrNotRepresented: the citizen may not act for that party (for that
	// service), or no longer may.
	ErrNotRepresented = errors.New("not a representative of this party")
	// ErrForbidden: the caller may not do this to the mandate (only its
	// grantor, its grantee or an operator may revoke it; only its grantee
	// may accept it).
	ErrForbidden = errors.New("not allowed")
)

// PartyType is what kind of party is represented.
type PartyType string

// Party types.
const (
	TypeOrganisation PartyType = "organisation"
	TypePerson       PartyType = "person"
)

// Party is someone a citizen may act for: an organisation or a person.
type Party struct {
	Type PartyType `json:"type"`
	// ID is the party's subject identifier, as tokens carry it in sub: a
	// citizen's subject for a person, OrgSubjectPrefix and random for an
	// organisation, so the two never collide.
	ID string `json:"id"`
	// TaxCode (organisations) or PersonalID (persons) is how people name
	// the party: `eidsim approve --as`, the mandate routes.
	TaxCode    string `json:"tax_code,omitempty"`
	PersonalID string `json:"personal_id,omitempty"`
	Name       string `json:"name"`
}

// Ref is how the party is named by people: its tax code or personal id.
func (p Party) Ref() string {
	if p.Type == TypeOrganisation {
		return p.TaxCode
	}
	return p.PersonalID
}

// OrgSubjectPrefix begins every organisation's subject identifier. A
// citizen's subject is base64url, which has no colon.
const OrgSubjectPrefix = "org:"

// NewOrgSubject returns a fresh, opaque organisation subject identifier.
func NewOrgSubject() string { return OrgSubjectPrefix + randomString(16) }

// IsOrgSubject reports whether sub names an organisation.
func IsOrgSubject(sub string) bool { return strings.HasPrefix(sub, OrgSubjectPrefix) }

// Organisation statuses. Only an active organisation is represented.
const (
	OrgActive    = "active"
	OrgSuspended = "suspended"
	OrgDissolved = "dissolved"
)

// Organisation is an entry of the business registry.
type Organisation struct {
	ID      string // subject identifier (NewOrgSubject), stable across imports
	TaxCode string // 10 digits, or 10 digits, a dash and 3 digits (a branch)
	Name    string
	NameEn  string
	Address string
	// LegalRepresentative is the personal id of the citizen who always
	// represents the organisation.
	LegalRepresentative string
	Status              string // OrgActive, OrgSuspended or OrgDissolved
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

var taxCodeRE = regexp.MustCompile(`^[0-9]{10}(-[0-9]{3})?$`)

// ValidTaxCode reports whether s is a Vietnamese enterprise tax code.
func ValidTaxCode(s string) bool { return taxCodeRE.MatchString(s) }

// Party returns the organisation as a party.
func (o *Organisation) Party() Party {
	return Party{Type: TypeOrganisation, ID: o.ID, TaxCode: o.TaxCode, Name: o.Name}
}

// Guardianship sources.
const (
	// GuardianRegistry: a parent or guardian recorded in the citizen
	// registry (citizen import's guardians); it ends when the ward comes
	// of age.
	GuardianRegistry = "registry"
	// GuardianCourt: a guardianship a court appointed, recorded by an
	// operator; it ends at Until, or never, whatever the ward's age.
	GuardianCourt = "court"
)

// Guardianship is a guardian's right to act for a ward. The citizen
// registry keeps them, beside the birthdates that end them.
type Guardianship struct {
	WardID     string // citizen subject identifiers
	GuardianID string
	Source     string     // GuardianRegistry or GuardianCourt
	Until      *time.Time // GuardianCourt only; nil means open-ended
	CreatedAt  time.Time
}

// Person is what representation needs of a citizen.
type Person struct {
	ID         string // subject identifier
	PersonalID string
	Name       string
	Birthdate  string // YYYY-MM-DD
}

// Party returns the person as a party.
func (p *Person) Party() Party {
	return Party{Type: TypePerson, ID: p.ID, PersonalID: p.PersonalID, Name: p.Name}
}

// Registry is the citizen registry as representation reads it; the
// identity provider's citizen store, adapted where the binary wires the
// areas together.
type Registry interface {
	// Person returns a citizen by subject identifier; ErrNotFound.
	Person(ctx context.Context, id string) (*Person, error)
	// PersonByPersonalID returns a citizen by personal id; ErrNotFound.
	PersonByPersonalID(ctx context.Context, personalID string) (*Person, error)
	// Guardianships returns every guardianship the citizen is the guardian
	// or the ward of that an operator has not ended (Guardianship has no
	// end: an ended one must not be returned). One past its Until, or past
	// the ward's majority, may still be: the Service decides with its clock.
	Guardianships(ctx context.Context, citizenID string) ([]Guardianship, error)
}

// Basis is why a citizen may act for a party.
type Basis string

// Bases, as the representation claim of a token names them.
const (
	BasisLegalRepresentative Basis = "legal_representative"
	BasisGuardian            Basis = "guardian"
	BasisMandate             Basis = "mandate"
)

// Mandate is a representative's grant to another citizen of the right to
// act for a party, for some services, for a time.
type Mandate struct {
	ID        string // "mdt_…"
	GrantorID string // the granting citizen (subject), who represents Party
	GranteeID string // the citizen who may act under the mandate
	Party     Party
	// Services are service codes; Categories are catalog categories. At
	// least one of the two is set: a mandate never covers everything.
	Services   []string
	Categories []string
	ValidFrom  time.Time
	ValidUntil time.Time
	// MayDelegate lets the grantee grant sub-mandates of no more than this
	// one covers.
	MayDelegate bool
	// ParentID is the mandate the grantor acted under when this one is a
	// sub-delegation; "" when the grantor represents Party directly.
	ParentID string
	// Evidence is the compact JWS the grantor's eID device key signed over
	// the terms (MandateTerms), and EvidenceDevice that device.
	Evidence       string
	EvidenceDevice string
	CreatedAt      time.Time
	AcceptedAt     *time.Time
	RevokedAt      *time.Time
	// RevokedBy is the subject of the citizen who revoked it, OperatorActor,
	// or ParentActor when it fell with the mandate it was derived from.
	RevokedBy string
}

// Who revokes, besides the grantor and the grantee.
const (
	OperatorActor = "operator"
	ParentActor   = "parent"
)

// Mandate states, as the API shows them.
const (
	MandatePending  = "pending"  // not accepted yet
	MandateActive   = "active"   // accepted and within its validity
	MandateExpired  = "expired"  // past ValidUntil
	MandateRevoked  = "revoked"  // revoked by either side, an operator or its parent
	MandateUpcoming = "upcoming" // accepted, ValidFrom still ahead
)

// State says where the mandate stands at now.
func (m *Mandate) State(now time.Time) string {
	switch {
	case m.RevokedAt != nil:
		return MandateRevoked
	case !now.Before(m.ValidUntil):
		return MandateExpired
	case m.AcceptedAt == nil:
		return MandatePending
	case now.Before(m.ValidFrom):
		return MandateUpcoming
	}
	return MandateActive
}

// Covers reports whether the mandate's terms include the service (by code
// or by its category).
func (m *Mandate) Covers(serviceCode, category string) bool {
	return covers(m.Services, m.Categories, serviceCode, category)
}

func covers(services, categories []string, serviceCode, category string) bool {
	return (serviceCode != "" && slices.Contains(services, serviceCode)) ||
		(category != "" && slices.Contains(categories, category))
}

// NewMandateID returns a fresh mandate identifier.
func NewMandateID() string { return "mdt_" + strings.ToLower(rand.Text()) }

// Representation is one party a citizen may act for now, and why.
type Representation struct {
	Party Party `json:"party"`
	Basis Basis `json:"basis"`
	// MandateID is the mandate it rests on (BasisMandate).
	MandateID string `json:"mandate_id,omitempty"`
	// Services and Categories bound a mandate; both empty means every
	// service (a legal representative, a guardian).
	Services   []string `json:"services,omitempty"`
	Categories []string `json:"categories,omitempty"`
	// Until is when it ends by itself: the ward's majority, a court's end
	// date, a mandate's (and its parents') end. Nil: not by itself.
	Until       *time.Time `json:"until,omitempty"`
	MayDelegate bool       `json:"may_delegate"`
	// GrantorID is who granted the mandate (BasisMandate).
	GrantorID string `json:"grantor_id,omitempty"`
	// Chain are the revocation keys of everything it rests on, its own
	// first: a mandate's parents, up to the grantor's own basis.
	Chain []string `json:"-"`
}

// Unbounded reports whether it covers every service.
func (r *Representation) Unbounded() bool { return len(r.Services) == 0 && len(r.Categories) == 0 }

// Covers reports whether the representation extends to the service. An
// empty serviceCode and category (a login, not a service) is covered by
// every representation.
func (r *Representation) Covers(serviceCode, category string) bool {
	if r.Unbounded() || (serviceCode == "" && category == "") {
		return true
	}
	return covers(r.Services, r.Categories, serviceCode, category)
}

// RevocationKeys are the deny-list keys a token issued under the
// representation carries: its own basis first, then everything it rests
// on. Ending any of them before its time denies the token.
func (r *Representation) RevocationKeys() []string { return slices.Clone(r.Chain) }

// MandateKey is the deny-list key of a mandate.
func MandateKey(id string) string { return "rep:mandate:" + id }

// GuardianKey is the deny-list key of a guardian's representation of a
// ward: it names both, since a ward may have two guardians.
func GuardianKey(wardID, guardianID string) string {
	return "rep:guardian:" + wardID + ":" + guardianID
}

// LegalRepKey is the deny-list key of a legal representative's
// representation of an organisation.
func LegalRepKey(orgID, citizenID string) string {
	return "rep:legalrep:" + orgID + ":" + citizenID
}

// OrgChange is a legal representative replaced (or an organisation no
// longer active) by an import: the old representative's tokens for it are
// denied.
type OrgChange struct {
	Org *Organisation
	// OldRepresentative is the personal id whose representation ended:
	// the one replaced, or the last one of an organisation no longer
	// active.
	OldRepresentative string
	// Ended is set when the organisation is no longer active.
	Ended bool
}

// Store holds the business registry and the mandates.
type Store interface {
	// PutOrganisations creates or updates (by tax code) every organisation
	// or none. New ones get their ID; existing ones keep it and CreatedAt.
	// It reports the legal representatives replaced and organisations
	// that stopped being active.
	PutOrganisations(ctx context.Context, orgs []*Organisation) ([]OrgChange, error)
	GetOrganisation(ctx context.Context, taxCode string) (*Organisation, error)
	GetOrganisationByID(ctx context.Context, id string) (*Organisation, error)
	// ListOrganisations returns organisations by tax code, after the tax
	// code `after` ("" for the first page), at most limit.
	ListOrganisations(ctx context.Context, after string, limit int) ([]*Organisation, error)
	// OrganisationsRepresentedBy returns the organisations whose legal
	// representative has this personal id, whatever their status.
	OrganisationsRepresentedBy(ctx context.Context, personalID string) ([]*Organisation, error)

	// CreateMandate stores a new mandate; ErrConflict when the ID exists,
	// ErrQuota-like limits are the service's.
	CreateMandate(ctx context.Context, m *Mandate) error
	GetMandate(ctx context.Context, id string) (*Mandate, error)
	// ListMandates returns the mandates the citizen granted or received,
	// newest first, every state.
	ListMandates(ctx context.Context, citizenID string) ([]*Mandate, error)
	// MandatesReceived returns the accepted, unrevoked mandates granted to
	// the citizen whose validity includes now.
	MandatesReceived(ctx context.Context, granteeID string, now time.Time) ([]*Mandate, error)
	// MandatesOf returns every unrevoked mandate for the party, any grantor.
	MandatesOf(ctx context.Context, partyID string) ([]*Mandate, error)
	// AcceptMandate records the grantee's acceptance of a pending mandate
	// (ErrConflict when accepted or revoked already).
	AcceptMandate(ctx context.Context, id string, at time.Time) (*Mandate, error)
	// RevokeMandate revokes the mandate and, in the same transaction,
	// every unrevoked mandate derived from it (RevokedBy ParentActor). It
	// returns the IDs revoked, the mandate's own first; ErrConflict when it
	// was revoked already.
	RevokeMandate(ctx context.Context, id, by string, at time.Time) ([]string, error)
	// CountActiveGranted counts the unrevoked, unexpired mandates the
	// citizen granted, for the service's quota.
	CountActiveGranted(ctx context.Context, grantorID string, now time.Time) (int, error)
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}
