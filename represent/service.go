package represent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults of the Service's limits.
const (
	// DefaultMajorityAge is the age of majority in Vietnam (Civil Code,
	// article 20).
	DefaultMajorityAge = 18
	// DefaultMaxGranted bounds the active mandates one citizen grants.
	DefaultMaxGranted = 200
	// DefaultMaxDepth bounds sub-delegation: a mandate, its sub-mandate,
	// and so on.
	DefaultMaxDepth = 5
	// MaxMandateYears bounds a mandate's validity.
	MaxMandateYears = 10
	// maxTerms bounds the services and categories of one mandate.
	maxTerms = 50
)

// Zone is where registry dates (birthdates, court dates) are days: a minor
// comes of age at midnight in Vietnam.
var Zone = time.FixedZone("ICT", 7*60*60)

// Service derives representations and keeps mandates.
type Service struct {
	Store    Store
	Registry Registry
	// Deny denies every access token carrying one of the keys (the
	// identity provider's deny list), on every replica within a second.
	// Nil denies nothing (admin tools that only read).
	Deny func(ctx context.Context, keys ...string) error
	Now  func() time.Time
	// MajorityAge, MaxGranted and MaxDepth default to the constants above.
	MajorityAge int
	MaxGranted  int
	MaxDepth    int
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func orDefault(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

// Majority is when a person born on birthdate (YYYY-MM-DD) comes of age.
func (s *Service) Majority(birthdate string) (time.Time, error) {
	b, err := time.ParseInLocation("2006-01-02", birthdate, Zone)
	if err != nil {
		return time.Time{}, fmt.Errorf("birthdate %q: %w", birthdate, ErrInvalid)
	}
	return b.AddDate(orDefault(s.MajorityAge, DefaultMajorityAge), 0, 0), nil
}

// Representations returns every party the citizen may act for now, at most
// one per party: the broadest basis wins (legal representative or guardian
// over a mandate).
func (s *Service) Representations(ctx context.Context, citizenID string) ([]Representation, error) {
	now := s.now()
	me, err := s.Registry.Person(ctx, citizenID)
	if err != nil {
		return nil, fmt.Errorf("representations: %w", err)
	}
	// One entry per party for a legal representative or a guardian (the
	// broadest); a citizen holding several mandates from one party keeps
	// each, since each covers other services.
	var out []Representation
	add := func(r Representation) {
		for i := range out {
			if out[i].Party.ID != r.Party.ID {
				continue
			}
			switch {
			case out[i].Unbounded():
				return
			case r.Unbounded():
				out = slices.DeleteFunc(out, func(o Representation) bool { return o.Party.ID == r.Party.ID })
				out = append(out, r)
				return
			}
		}
		out = append(out, r)
	}
	orgs, err := s.Store.OrganisationsRepresentedBy(ctx, me.PersonalID)
	if err != nil {
		return nil, fmt.Errorf("representations: %w", err)
	}
	for _, o := range orgs {
		if o.Status == OrgActive {
			add(legalRep(o, citizenID))
		}
	}
	wards, err := s.wards(ctx, citizenID, "", now)
	if err != nil {
		return nil, err
	}
	for _, r := range wards {
		add(r)
	}
	ms, err := s.Store.MandatesReceived(ctx, citizenID, now)
	if err != nil {
		return nil, fmt.Errorf("representations: %w", err)
	}
	for _, m := range ms {
		r, err := s.mandateRep(ctx, m, now, 0)
		switch {
		case errors.Is(err, ErrNotRepresented):
			continue // its chain broke: a parent revoked, a grantor replaced
		case err != nil:
			return nil, err
		}
		add(*r)
	}
	return out, nil
}

func legalRep(o *Organisation, citizenID string) Representation {
	return Representation{Party: o.Party(), Basis: BasisLegalRepresentative, MayDelegate: true,
		Chain: []string{LegalRepKey(o.ID, citizenID)}}
}

// wards returns the guardian's representations of their wards (of one ward
// when wardID is set), valid at now: a registry guardian's until the ward's
// majority, a court's until its end date.
func (s *Service) wards(ctx context.Context, guardianID, wardID string, now time.Time) ([]Representation, error) {
	gs, err := s.Registry.Guardianships(ctx, guardianID)
	if err != nil {
		return nil, fmt.Errorf("guardianships: %w", err)
	}
	var out []Representation
	idx := map[string]int{}
	for _, g := range gs {
		if g.GuardianID != guardianID || (wardID != "" && g.WardID != wardID) {
			continue
		}
		ward, err := s.Registry.Person(ctx, g.WardID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ward: %w", err)
		}
		until, err := s.guardianUntil(g, ward)
		if err != nil {
			continue // a registry entry without a usable birthdate represents nobody
		}
		if until != nil && !now.Before(*until) {
			continue
		}
		r := Representation{Party: ward.Party(), Basis: BasisGuardian, Until: until, MayDelegate: true,
			Chain: []string{GuardianKey(ward.ID, guardianID)}}
		if i, ok := idx[ward.ID]; ok { // a parent later appointed by a court too: the longer one
			if out[i].Until != nil && (until == nil || until.After(*out[i].Until)) {
				out[i] = r
			}
			continue
		}
		idx[ward.ID] = len(out)
		out = append(out, r)
	}
	return out, nil
}

func (s *Service) guardianUntil(g Guardianship, ward *Person) (*time.Time, error) {
	if g.Source == GuardianCourt {
		return g.Until, nil
	}
	m, err := s.Majority(ward.Birthdate)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// direct returns the citizen's own (unmandated) representation of the
// party: legal representative or guardian. ErrNotRepresented otherwise.
func (s *Service) direct(ctx context.Context, citizenID string, p Party, now time.Time) (*Representation, error) {
	switch p.Type {
	case TypeOrganisation:
		o, err := s.Store.GetOrganisationByID(ctx, p.ID)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrNotRepresented
		}
		if err != nil {
			return nil, fmt.Errorf("organisation: %w", err)
		}
		me, err := s.Registry.Person(ctx, citizenID)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrNotRepresented
		}
		if err != nil {
			return nil, fmt.Errorf("representative: %w", err)
		}
		if o.Status != OrgActive || o.LegalRepresentative != me.PersonalID {
			return nil, ErrNotRepresented
		}
		r := legalRep(o, citizenID)
		return &r, nil
	case TypePerson:
		rs, err := s.wards(ctx, citizenID, p.ID, now)
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 {
			return nil, ErrNotRepresented
		}
		return &rs[0], nil
	}
	return nil, ErrNotRepresented
}

// mandateRep is the representation a mandate gives now, checked up its
// chain: each grantor must still represent the party (directly, or by the
// parent mandate, itself valid, which allows delegation). ErrNotRepresented
// when anything along the chain ended.
func (s *Service) mandateRep(ctx context.Context, m *Mandate, now time.Time, depth int) (*Representation, error) {
	if depth >= orDefault(s.MaxDepth, DefaultMaxDepth) || m.State(now) != MandateActive {
		return nil, ErrNotRepresented
	}
	var base *Representation
	if m.ParentID == "" {
		r, err := s.direct(ctx, m.GrantorID, m.Party, now)
		if err != nil {
			return nil, err
		}
		base = r
	} else {
		parent, err := s.Store.GetMandate(ctx, m.ParentID)
		if errors.Is(err, ErrNotFound) {
			return nil, ErrNotRepresented
		}
		if err != nil {
			return nil, fmt.Errorf("parent mandate: %w", err)
		}
		if parent.GranteeID != m.GrantorID || parent.Party.ID != m.Party.ID || !parent.MayDelegate {
			return nil, ErrNotRepresented
		}
		r, err := s.mandateRep(ctx, parent, now, depth+1)
		if err != nil {
			return nil, err
		}
		base = r
	}
	until := m.ValidUntil
	if base.Until != nil && base.Until.Before(until) {
		until = *base.Until
	}
	return &Representation{Party: m.Party, Basis: BasisMandate, MandateID: m.ID,
		Services: slices.Clone(m.Services), Categories: slices.Clone(m.Categories),
		Until: &until, MayDelegate: m.MayDelegate, GrantorID: m.GrantorID,
		Chain: append([]string{MandateKey(m.ID)}, base.Chain...)}, nil
}

// Check returns the citizen's representation of the party (by subject
// identifier) that covers the service; an empty service code and category
// asks about the party alone (a login). ErrNotRepresented when there is none.
func (s *Service) Check(ctx context.Context, citizenID, partyID, serviceCode, category string) (*Representation, error) {
	rs, err := s.Representations(ctx, citizenID)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		if rs[i].Party.ID == partyID && rs[i].Covers(serviceCode, category) {
			return &rs[i], nil
		}
	}
	return nil, ErrNotRepresented
}

// ResolveParty finds a party by how people name it: a tax code is an
// organisation, a 12-digit personal id a person. ErrNotFound when nobody
// has it, ErrInvalid when it is neither.
func (s *Service) ResolveParty(ctx context.Context, ref string) (Party, error) {
	switch {
	case ValidTaxCode(ref):
		o, err := s.Store.GetOrganisation(ctx, ref)
		if err != nil {
			return Party{}, fmt.Errorf("organisation %s: %w", ref, err)
		}
		return o.Party(), nil
	case personalIDRE.MatchString(ref):
		p, err := s.Registry.PersonByPersonalID(ctx, ref)
		if err != nil {
			return Party{}, fmt.Errorf("person: %w", err)
		}
		return p.Party(), nil
	}
	return Party{}, fmt.Errorf("%q is neither a tax code nor a personal id: %w", ref, ErrInvalid)
}

var (
	personalIDRE = regexp.MustCompile(`^[0-9]{12}$`)
	termRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
)

// FieldError is one bad field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// InvalidError lists every bad field of a request; it is ErrInvalid.
type InvalidError []FieldError

func (e InvalidError) Error() string {
	parts := make([]string, len(e))
	for i, f := range e {
		parts[i] = f.Field + ": " + f.Detail
	}
	return strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e InvalidError) Is(target error) bool { return target == ErrInvalid }

// GrantRequest asks to grant a mandate.
type GrantRequest struct {
	GrantorID string
	// Organisation (a tax code) or Person (a personal id): whom the
	// mandate lets the grantee act for. Exactly one is set.
	Organisation string
	Person       string
	// Grantee is the personal id of the citizen who receives it.
	Grantee    string
	Services   []string
	Categories []string
	ValidFrom  time.Time // zero: now
	ValidUntil time.Time
	// MayDelegate lets the grantee pass on no more than the mandate covers.
	MayDelegate    bool
	Evidence       string
	EvidenceDevice string
}

// Grant checks and stores a mandate, pending until the grantee accepts it.
// Bad terms are an InvalidError listing each; a grantor who does not
// represent the party (or whose own mandate may not be delegated, or covers
// less) is ErrNotRepresented.
func (s *Service) Grant(ctx context.Context, req GrantRequest) (*Mandate, error) {
	now := s.now()
	var bad InvalidError
	from := req.ValidFrom
	if from.IsZero() {
		from = now
	}
	switch {
	case req.Organisation != "" && req.Person != "":
		bad = append(bad, FieldError{"organisation", "give organisation or person, not both"})
	case req.Organisation == "" && req.Person == "":
		bad = append(bad, FieldError{"organisation", "give the organisation (tax code) or the person (personal id) the mandate is for"})
	case req.Organisation != "" && !ValidTaxCode(req.Organisation):
		bad = append(bad, FieldError{"organisation", "must be a tax code: 10 digits, or 10 digits, a dash and 3 digits"})
	case req.Person != "" && !personalIDRE.MatchString(req.Person):
		bad = append(bad, FieldError{"person", "must be a 12-digit personal id"})
	}
	if !personalIDRE.MatchString(req.Grantee) {
		bad = append(bad, FieldError{"grantee", "must be a 12-digit personal id"})
	}
	bad = append(bad, checkTerms("services", req.Services)...)
	bad = append(bad, checkTerms("categories", req.Categories)...)
	if len(req.Services) == 0 && len(req.Categories) == 0 {
		bad = append(bad, FieldError{"services", "name at least one service or category: a mandate never covers everything"})
	}
	switch {
	case req.ValidUntil.IsZero():
		bad = append(bad, FieldError{"valid_until", "is required"})
	case !req.ValidUntil.After(now):
		bad = append(bad, FieldError{"valid_until", "is in the past: the mandate would be expired"})
	case !req.ValidUntil.After(from):
		bad = append(bad, FieldError{"valid_until", "must be after valid_from"})
	case req.ValidUntil.After(now.AddDate(MaxMandateYears, 0, 0)):
		bad = append(bad, FieldError{"valid_until", fmt.Sprintf("at most %d years ahead", MaxMandateYears)})
	}
	if from.Before(now.Add(-time.Minute)) {
		bad = append(bad, FieldError{"valid_from", "may not be in the past"})
	}
	if len(bad) > 0 {
		return nil, bad
	}
	ref := req.Organisation
	field := "organisation"
	if ref == "" {
		ref, field = req.Person, "person"
	}
	party, err := s.ResolveParty(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		bad = append(bad, FieldError{field, "nobody is registered under " + ref})
	} else if err != nil {
		return nil, err
	}
	grantee, err := s.Registry.PersonByPersonalID(ctx, req.Grantee)
	switch {
	case errors.Is(err, ErrNotFound):
		bad = append(bad, FieldError{"grantee", "no citizen has this personal id"})
	case err != nil:
		return nil, fmt.Errorf("grantee: %w", err)
	case grantee.ID == req.GrantorID:
		bad = append(bad, FieldError{"grantee", "a mandate to oneself grants nothing"})
	case grantee.ID == party.ID:
		bad = append(bad, FieldError{"grantee", "a person cannot hold a mandate to act for themselves"})
	}
	if len(bad) > 0 {
		return nil, bad
	}
	m := &Mandate{ID: NewMandateID(), GrantorID: req.GrantorID, GranteeID: grantee.ID, Party: party,
		Services: slices.Clone(req.Services), Categories: slices.Clone(req.Categories),
		ValidFrom: from.UTC(), ValidUntil: req.ValidUntil.UTC(), MayDelegate: req.MayDelegate,
		Evidence: req.Evidence, EvidenceDevice: req.EvidenceDevice, CreatedAt: now.UTC()}
	// The grantor's own right: direct, or a delegable mandate covering at
	// least as much for at least as long.
	base, err := s.direct(ctx, req.GrantorID, party, now)
	if errors.Is(err, ErrNotRepresented) {
		base, err = s.delegable(ctx, m, now)
	}
	if err != nil {
		return nil, err
	}
	// No circles: the grantee must not be anyone the grantor's right
	// comes from, nor represent the party directly already.
	if _, err := s.direct(ctx, grantee.ID, party, now); err == nil {
		return nil, InvalidError{{"grantee", "already represents this party in their own right; a mandate to them would be circular"}}
	} else if !errors.Is(err, ErrNotRepresented) {
		return nil, err
	}
	if base.Basis == BasisMandate {
		m.ParentID = base.MandateID
		for id := base.MandateID; id != ""; {
			p, err := s.Store.GetMandate(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("mandate chain: %w", err)
			}
			if p.GrantorID == grantee.ID || p.GranteeID == grantee.ID {
				return nil, InvalidError{{"grantee", "is already in this mandate's chain of delegation; the mandate would be circular"}}
			}
			id = p.ParentID
		}
	}
	if n, err := s.Store.CountActiveGranted(ctx, req.GrantorID, now); err != nil {
		return nil, err
	} else if n >= orDefault(s.MaxGranted, DefaultMaxGranted) {
		return nil, fmt.Errorf("%d active mandates granted already: %w", n, ErrConflict)
	}
	if err := s.Store.CreateMandate(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// delegable finds a mandate of the grantor's that allows m as a
// sub-delegation: same party, may delegate, covers every service and
// category of m, and lasts at least as long.
func (s *Service) delegable(ctx context.Context, m *Mandate, now time.Time) (*Representation, error) {
	held, err := s.Store.MandatesReceived(ctx, m.GrantorID, now)
	if err != nil {
		return nil, err
	}
	reason := ErrNotRepresented
	for _, h := range held {
		if h.Party.ID != m.Party.ID {
			continue
		}
		r, err := s.mandateRep(ctx, h, now, 0)
		if errors.Is(err, ErrNotRepresented) {
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case !r.MayDelegate:
			reason = fmt.Errorf("the grantor's own mandate %s may not be delegated: %w", h.ID, ErrNotRepresented)
		case !coversAll(r, m):
			reason = fmt.Errorf("the grantor's own mandate %s does not cover every service asked for: %w", h.ID, ErrNotRepresented)
		case r.Until != nil && m.ValidUntil.After(*r.Until):
			reason = fmt.Errorf("the grantor's own mandate %s ends before valid_until: %w", h.ID, ErrNotRepresented)
		default:
			return r, nil
		}
	}
	return nil, reason
}

func coversAll(r *Representation, m *Mandate) bool {
	if r.Unbounded() {
		return true
	}
	for _, sv := range m.Services {
		if !slices.Contains(r.Services, sv) {
			return false
		}
	}
	for _, c := range m.Categories {
		if !slices.Contains(r.Categories, c) {
			return false
		}
	}
	return true
}

func checkTerms(field string, terms []string) InvalidError {
	var bad InvalidError
	if len(terms) > maxTerms {
		bad = append(bad, FieldError{field, fmt.Sprintf("at most %d", maxTerms)})
	}
	seen := map[string]bool{}
	for i, t := range terms {
		if !termRE.MatchString(t) {
			bad = append(bad, FieldError{fmt.Sprintf("%s/%d", field, i), "must be a code of letters, digits, '.', '_', ':' or '-' (at most 64)"})
		}
		if seen[t] {
			bad = append(bad, FieldError{fmt.Sprintf("%s/%d", field, i), "repeats " + t})
		}
		seen[t] = true
	}
	return bad
}

// Accept records the grantee's acceptance. Another citizen's mandate is
// ErrNotFound; one no longer pending (accepted, revoked, expired) is
// ErrConflict.
func (s *Service) Accept(ctx context.Context, citizenID, id string) (*Mandate, error) {
	m, err := s.Store.GetMandate(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.GranteeID != citizenID {
		if m.GrantorID == citizenID {
			return nil, fmt.Errorf("only the grantee accepts a mandate: %w", ErrForbidden)
		}
		return nil, fmt.Errorf("mandate: %w", ErrNotFound)
	}
	if st := m.State(s.now()); st != MandatePending {
		return nil, fmt.Errorf("mandate is %s: %w", st, ErrConflict)
	}
	return s.Store.AcceptMandate(ctx, id, s.now().UTC())
}

// Revoke revokes a mandate and everything delegated from it, and denies
// the tokens issued under any of them. by is the grantor's or grantee's
// subject, or OperatorActor; anyone else is told the mandate does not
// exist.
//
// The tokens are denied first: when the deny list is down nothing is
// revoked and the caller's retry does it all, rather than finding the
// mandate revoked and its tokens still valid. A revocation that fails
// after the denial leaves the mandate's tokens refused until it is retried.
func (s *Service) Revoke(ctx context.Context, by, id string) (*Mandate, error) {
	m, err := s.Store.GetMandate(ctx, id)
	if err != nil {
		return nil, err
	}
	if by != OperatorActor && by != m.GrantorID && by != m.GranteeID {
		return nil, fmt.Errorf("mandate: %w", ErrNotFound)
	}
	if m.RevokedAt != nil {
		return nil, fmt.Errorf("mandate revoked already: %w", ErrConflict)
	}
	ids, err := s.derived(ctx, m)
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = MandateKey(id)
	}
	if err := s.deny(ctx, keys...); err != nil {
		return nil, err
	}
	revoked, err := s.Store.RevokeMandate(ctx, id, by, s.now().UTC())
	if err != nil {
		return nil, err
	}
	// A sub-mandate granted in between fell with it too: deny it as well.
	var late []string
	for _, r := range revoked {
		if !slices.Contains(ids, r) {
			late = append(late, MandateKey(r))
		}
	}
	if err := s.deny(ctx, late...); err != nil {
		return nil, err
	}
	return s.Store.GetMandate(ctx, id)
}

// derived returns m's ID and those of every unrevoked mandate delegated
// from it, at any depth: what its revocation takes with it.
func (s *Service) derived(ctx context.Context, m *Mandate) ([]string, error) {
	all, err := s.Store.MandatesOf(ctx, m.Party.ID)
	if err != nil {
		return nil, err
	}
	ids := []string{m.ID}
	in := map[string]bool{m.ID: true}
	for grew := true; grew; { // chains are short (MaxDepth); a cycle cannot grow the set forever
		grew = false
		for _, c := range all {
			if !in[c.ID] && in[c.ParentID] {
				in[c.ID] = true
				ids = append(ids, c.ID)
				grew = true
			}
		}
	}
	return ids, nil
}

// Mandates lists the mandates the citizen granted or received.
func (s *Service) Mandates(ctx context.Context, citizenID string) ([]*Mandate, error) {
	return s.Store.ListMandates(ctx, citizenID)
}

// Mandate returns one of the citizen's mandates (granted or received);
// another's is ErrNotFound.
func (s *Service) Mandate(ctx context.Context, citizenID, id string) (*Mandate, error) {
	m, err := s.Store.GetMandate(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.GrantorID != citizenID && m.GranteeID != citizenID {
		return nil, fmt.Errorf("mandate: %w", ErrNotFound)
	}
	return m, nil
}

// Representatives returns the citizens who may act for the party now in
// their own right: an organisation's legal representative, a ward's
// guardians (the inbox copies a decision to them).
func (s *Service) Representatives(ctx context.Context, p Party) ([]string, error) {
	switch p.Type {
	case TypeOrganisation:
		o, err := s.Store.GetOrganisationByID(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		if o.Status != OrgActive {
			return nil, nil
		}
		rep, err := s.Registry.PersonByPersonalID(ctx, o.LegalRepresentative)
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []string{rep.ID}, nil
	case TypePerson:
		gs, err := s.Registry.Guardianships(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, g := range gs {
			if g.WardID != p.ID || slices.Contains(out, g.GuardianID) {
				continue
			}
			if _, err := s.direct(ctx, g.GuardianID, p, s.now()); err == nil {
				out = append(out, g.GuardianID)
			}
		}
		return out, nil
	}
	return nil, nil
}

// RepresentativesFor returns every citizen who may act for the party on
// the service now: its representatives in their own right, then the
// holders of mandates that cover the service and whose chain still holds.
// A decision on an application is copied to each of them.
func (s *Service) RepresentativesFor(ctx context.Context, p Party, serviceCode, category string) ([]string, error) {
	out, err := s.Representatives(ctx, p)
	if err != nil {
		return nil, err
	}
	ms, err := s.Store.MandatesOf(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	for _, m := range ms {
		if slices.Contains(out, m.GranteeID) || m.State(now) != MandateActive || !m.Covers(serviceCode, category) {
			continue
		}
		switch _, err := s.mandateRep(ctx, m, now, 0); {
		case errors.Is(err, ErrNotRepresented):
		case err != nil:
			return nil, err
		default:
			out = append(out, m.GranteeID)
		}
	}
	return out, nil
}

// OrganisationsChanged denies the tokens of legal representatives an
// import replaced (or of organisations no longer active), and so of every
// mandate resting on them: their tokens carry the legal representative's
// key in their chain.
func (s *Service) OrganisationsChanged(ctx context.Context, changes []OrgChange) error {
	var keys []string
	for _, c := range changes {
		if c.OldRepresentative == "" {
			continue
		}
		old, err := s.Registry.PersonByPersonalID(ctx, c.OldRepresentative)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		keys = append(keys, LegalRepKey(c.Org.ID, old.ID))
	}
	return s.deny(ctx, keys...)
}

// ImportOrganisations stores orgs all or none (Store.PutOrganisations)
// after denying the tokens of every legal representative the import will
// replace, or whose organisation it makes inactive. Denying first makes a
// retry safe: when the deny list is down nothing is written, and running
// the import again finds the same changes and denies them.
func (s *Service) ImportOrganisations(ctx context.Context, orgs []*Organisation) ([]OrgChange, error) {
	var pending []OrgChange
	for _, o := range orgs {
		cur, err := s.Store.GetOrganisation(ctx, o.TaxCode)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		status := o.Status
		if status == "" {
			status = OrgActive
		}
		if cur.Status == OrgActive && (cur.LegalRepresentative != o.LegalRepresentative || status != OrgActive) {
			pending = append(pending, OrgChange{Org: cur, OldRepresentative: cur.LegalRepresentative, Ended: status != OrgActive})
		}
	}
	if err := s.OrganisationsChanged(ctx, pending); err != nil {
		return nil, fmt.Errorf("nothing imported: %w", err)
	}
	return s.Store.PutOrganisations(ctx, orgs)
}

// GuardianshipEnded denies the tokens a guardian holds for a ward (and of
// mandates resting on it) when an operator ends the guardianship early.
func (s *Service) GuardianshipEnded(ctx context.Context, wardID, guardianID string) error {
	return s.deny(ctx, GuardianKey(wardID, guardianID))
}

// EndGuardianship denies the tokens a guardian holds for a ward, then ends
// the guardianship with end (the citizen registry's). Denying first makes
// a retry safe: when the deny list is down the guardianship stays, and the
// operator's retry denies and ends it.
func (s *Service) EndGuardianship(ctx context.Context, wardID, guardianID string, end func(context.Context) error) error {
	if err := s.GuardianshipEnded(ctx, wardID, guardianID); err != nil {
		return err
	}
	return end(ctx)
}

func (s *Service) deny(ctx context.Context, keys ...string) error {
	if s.Deny == nil || len(keys) == 0 {
		return nil
	}
	if err := s.Deny(ctx, keys...); err != nil {
		return fmt.Errorf("deny tokens: %w", err)
	}
	return nil
}
