package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// Scope values OneDoor understands.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeAddress = "address"
	ScopePhone   = "phone"
	ScopeEID     = "eid"
	ScopeOffline = "offline_access"
	// ScopeAgency is an agency's own access to the mobile API: granted only
	// to a client bound to an agency (Client.Agency), by client_credentials.
	ScopeAgency = "agency"
	// ScopeRepresentation lets the citizen choose, in the eID app, whom
	// they act for in this login: themselves, an organisation they
	// represent, a ward, a party that mandated them (package represent).
	// Tokens then name the party as sub and the citizen in act (RFC 8693).
	// It stands for no registry claim of the citizen's.
	ScopeRepresentation = "representation"
)

// ClaimPersonalID carries the 12-digit personal identification number; only
// the eid scope or an explicit claims request releases it.
const ClaimPersonalID = "personal_id"

// KnownClaims is every claim the citizen registry can supply, in display
// order. No other claim is ever shown or released.
var KnownClaims = []string{"name", "family_name", "given_name", "birthdate", "gender", "address", "phone_number", ClaimPersonalID}

// scopeClaims maps scopes to the registry claims they stand for (OIDC Core 5.4).
var scopeClaims = map[string][]string{
	ScopeProfile: {"name", "family_name", "given_name", "birthdate", "gender"},
	ScopeAddress: {"address"},
	ScopePhone:   {"phone_number"},
	ScopeEID:     {ClaimPersonalID},
}

// ScopeClaims returns the registry claims a scope stands for.
func ScopeClaims(scope string) []string { return slices.Clone(scopeClaims[scope]) }

// KnownClaim reports whether the registry can supply the claim.
func KnownClaim(name string) bool { return slices.Contains(KnownClaims, name) }

// AllowedClaims is everything the client may ever receive: the claims its
// registered scopes stand for plus the claims the operator listed for it, in
// display order. No request parameter can widen it.
func (c *Client) AllowedClaims() []string {
	var out []string
	for _, name := range KnownClaims {
		if slices.Contains(c.Claims, name) {
			out = append(out, name)
			continue
		}
		for _, sc := range c.Scopes {
			if slices.Contains(scopeClaims[sc], name) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// ClaimRequest is one claim a login asks the citizen to share.
type ClaimRequest struct {
	Name     string `json:"name"`
	Optional bool   `json:"optional"`
}

// ClaimsRequest is what an authorization request asks for: its scopes, its
// claims parameter (OIDC Core 5.5), claim name to whether it is essential,
// and its OneDoor authorization_details object (RFC 9396), if any.
type ClaimsRequest struct {
	Scopes   []string
	UserInfo map[string]bool
	IDToken  map[string]bool
	Details  *AuthorizationDetail
}

// ParseClaimsRequest reads the scopes and the claims request parameter of an
// authorization request. A malformed parameter wraps ErrInvalid; members other
// than userinfo and id_token and claims the registry cannot supply are kept
// here and dropped by the policy.
func ParseClaimsRequest(scopes []string, raw string) (ClaimsRequest, error) {
	cr := ClaimsRequest{Scopes: scopes, UserInfo: map[string]bool{}, IDToken: map[string]bool{}}
	if raw == "" {
		return cr, nil
	}
	var doc map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return cr, fmt.Errorf("claims parameter is not a JSON object of objects: %w", ErrInvalid)
	}
	for member, dst := range map[string]map[string]bool{"userinfo": cr.UserInfo, "id_token": cr.IDToken} {
		for name, spec := range doc[member] {
			var s *struct {
				Essential bool `json:"essential"`
			}
			// A spec that is not an object (or null) asks for the claim
			// voluntarily; an essential of another type is not essential.
			_ = json.Unmarshal(spec, &s)
			dst[name] = dst[name] || (s != nil && s.Essential)
		}
	}
	return cr, nil
}

// ReleasePlan is what a login for one client asks for, after the policy.
type ReleasePlan struct {
	// Purpose is why the client asks (from its catalog) and Recipient its
	// name: both are shown to the citizen with the claims, and the consent
	// is recorded for this purpose.
	Purpose   consent.Purpose
	Recipient string
	// Claims is the list shown to the citizen (login page and eID app):
	// only claims the client may receive, in display order, essential ones
	// not optional.
	Claims []ClaimRequest
	// IDToken names the claims to put in the ID token (claims parameter,
	// id_token member), once the citizen agreed to them.
	IDToken []string
}

// Agreement is what a login may release and the consent it rests on.
type Agreement struct {
	// Agreed are the asked claims the citizen agreed to share.
	Agreed []string
	// ConsentID is the consent record; empty when nothing was agreed and
	// no record exists (a login asking for no claims).
	ConsentID string
	// Covered: every asked claim has the citizen's answer (agreed, or an
	// optional one declined), so the login needs no question in the app.
	Covered bool
}

// Approval is the citizen's answer in the eID app to one login's plan.
type Approval struct {
	CitizenID string
	Client    *Client
	Plan      *ReleasePlan
	// Shared are the claims the citizen agreed to share; Evidence the
	// device-signed approval JWS that says so.
	Shared   []string
	Evidence string
	// OnBehalf is the representative who approved for the citizen (a
	// guardian for a ward); the consent record says they gave it.
	OnBehalf *consent.OnBehalf
	// Bounded: OnBehalf acts under a representation bounded to services
	// or categories (a mandate). See RepresentationReleases.
	Bounded bool
}

// RepresentationReleases is the one rule on what a login made for someone
// else releases of that person's registry data. A representative bounded to
// services or categories (a mandate) releases nothing at login: the IdP
// does not know which public service a relying party's login is for, so it
// cannot tell whether the mandate covers it (an agency needing a ward's data
// under a mandate uses the data broker or the application, which are bound
// to a service). Only an unbounded representative (a guardian, a legal
// representative) releases the ward's data, under the consent rules. The
// citizen's own login (onBehalf nil) is not concerned.
func RepresentationReleases(onBehalf *consent.OnBehalf, bounded bool) bool {
	return onBehalf == nil || !bounded
}

// SameGiver reports whether a consent record (its GivenBy) was given by
// the party a login or token acts as (onBehalf, nil for the citizen): the
// citizen themselves (both nil), or the same representative under the same
// mandate (none for a guardian). A consent given by someone else never
// stands for the citizen's own login, and a citizen's own never for a
// representative's.
func SameGiver(givenBy, onBehalf *consent.OnBehalf) bool {
	if givenBy == nil || onBehalf == nil {
		return givenBy == nil && onBehalf == nil
	}
	return givenBy.CitizenID == onBehalf.CitizenID && givenBy.MandateID == onBehalf.MandateID
}

// TokenRelease is what a token carries about its release: the claims agreed
// at login and the consent they rest on.
type TokenRelease struct {
	ClientID  string
	CitizenID string
	ConsentID string
	Agreed    []string
	// OnBehalf is the representative the token acts for CitizenID as (its
	// act); nil for the citizen's own token. Bounded: that representation
	// is bounded to services or categories (RepresentationReleases).
	OnBehalf *consent.OnBehalf
	Bounded  bool
}

// Release is what a token may release now, and why.
type Release struct {
	// Claims are the registry claims to release.
	Claims []string
	// ConsentID and Purpose (its code) name the consent the release rests
	// on; empty for the eID app's own tokens and when nothing rests on
	// one.
	ConsentID string
	Purpose   string
}

// ErrConsentWithdrawn means the consent a token or grant rests on was withdrawn,
// has expired, or is not the citizen's consent for this client. Nothing
// derived from it may be released.
var ErrConsentWithdrawn = fmt.Errorf("consent withdrawn or not valid for this client: %w", consent.ErrWithdrawn)

// ReleasePolicy decides which claims a client is shown, may release without
// asking, and receives. The login page, silent single sign-on, the eID app's
// view of a login, the ID token and userinfo all ask it.
type ReleasePolicy interface {
	// Plan works out what a login for client c asks the citizen, given the
	// request. Claims the client may not receive are dropped without error
	// (OIDC Core 5.5.1: an unavailable claim, essential or not, is no error).
	Plan(ctx context.Context, c *Client, req ClaimsRequest) (*ReleasePlan, error)
	// Silent says what the citizen's own login (no representation: those
	// are always asked in the app) may release without asking: the
	// remembered consent for the same client and purpose, if the citizen
	// gave it themselves, the asked claims it covers, and whether every
	// asked claim has the citizen's answer.
	Silent(ctx context.Context, citizenID string, c *Client, plan *ReleasePlan) (*Agreement, error)
	// Released is what userinfo or an ID token may release now: the agreed
	// claims narrowed to what the client may receive and to the consent's
	// current items. ErrConsentWithdrawn when the consent no longer holds;
	// ErrNotFound (wrapped) when the client no longer exists.
	Released(ctx context.Context, t TokenRelease) (*Release, error)
	// Record keeps what the citizen agreed to share, with the evidence, and
	// returns the consent.
	Record(ctx context.Context, a *Approval) (*Agreement, error)
}

// ClientLookup finds a registered client; ClientStore is one, and so is any
// cache in front of it.
type ClientLookup interface {
	GetClient(ctx context.Context, id string) (*Client, error)
}

// ConsentNotice is the version of the notice a login shows (the login page
// and the eID app's list): kept in each consent record.
const ConsentNotice = "onedoor-login-1"

// ConsentPolicy is the ReleasePolicy over the client registry and the
// citizens' consent records (package consent): the IdP keeps no grants of
// its own.
type ConsentPolicy struct {
	Clients ClientLookup
	Consent *consent.Service
}

var _ ReleasePolicy = (*ConsentPolicy)(nil)

// Plan implements ReleasePolicy. Claims implied by scopes are voluntary (OIDC
// Core 5.4), except the personal id that the eid scope exists to obtain; the
// claims parameter can ask for any claim the client may receive and mark it
// essential. An authorization_details object narrows the request to its
// items, all required (what one transaction needs), and names the purpose.
func (p *ConsentPolicy) Plan(_ context.Context, c *Client, req ClaimsRequest) (*ReleasePlan, error) {
	allowed := c.AllowedClaims()
	want := map[string]bool{} // name -> optional
	for _, sc := range req.Scopes {
		for _, name := range scopeClaims[sc] {
			want[name] = name != ClaimPersonalID
		}
	}
	for _, member := range []map[string]bool{req.UserInfo, req.IDToken} {
		for name, essential := range member {
			opt, seen := want[name]
			switch {
			case essential:
				want[name] = false
			case !seen:
				want[name] = true
			default:
				want[name] = opt
			}
		}
	}
	plan := &ReleasePlan{Purpose: c.DefaultPurpose(), Recipient: c.Name}
	if plan.Recipient == "" {
		plan.Recipient = c.ID
	}
	if d := req.Details; d != nil {
		if err := d.check(c); err != nil {
			return nil, err
		}
		plan.Purpose, _ = c.Purpose(d.Purpose)
		want = map[string]bool{}
		for _, it := range d.Items {
			want[it] = false
		}
	}
	for _, name := range allowed {
		opt, ok := want[name]
		if ok {
			plan.Claims = append(plan.Claims, ClaimRequest{Name: name, Optional: opt})
		}
		if _, asked := req.IDToken[name]; asked && ok {
			plan.IDToken = append(plan.IDToken, name)
		}
	}
	return plan, nil
}

// Silent implements ReleasePolicy: a remembered consent counts only for the
// same client and purpose, only when the citizen gave it themselves (one a
// guardian gave for them binds them no longer than the guardianship, and
// they were never asked), and only when it answers every asked claim (each
// agreed, or optional and declined before); a claim the citizen was never
// asked about needs the app.
func (p *ConsentPolicy) Silent(ctx context.Context, citizenID string, c *Client, plan *ReleasePlan) (*Agreement, error) {
	rec, err := p.Consent.Remembered(ctx, citizenID, c.ID, plan.Purpose.Code)
	if err != nil {
		return nil, consentErr(err)
	}
	if rec != nil && !SameGiver(rec.GivenBy, nil) {
		rec = nil
	}
	if rec == nil {
		return &Agreement{Covered: len(plan.Claims) == 0}, nil
	}
	allowed := c.AllowedClaims()
	a := &Agreement{ConsentID: rec.ID, Covered: true}
	for _, cr := range plan.Claims {
		switch {
		case slices.Contains(rec.Items, cr.Name) && slices.Contains(allowed, cr.Name):
			a.Agreed = append(a.Agreed, cr.Name)
		case cr.Optional && slices.Contains(rec.Declined, cr.Name):
		default:
			a.Covered = false
		}
	}
	return a, nil
}

// Released implements ReleasePolicy. The eID app's own tokens release the
// citizen's data to the citizen and rest on no consent; every other token
// rests on its consent (a token minted before consent records existed, on
// the client's remembered consent for its default purpose; never a
// representative's token). A consent counts only for the party the token
// acts as: a record given by a guardian does not release on the citizen's
// own token (the guardian's grant replaced theirs), nor one the citizen gave
// on a representative's; either is ErrConsentWithdrawn. A representative
// bounded to services releases nothing (RepresentationReleases).
func (p *ConsentPolicy) Released(ctx context.Context, t TokenRelease) (*Release, error) {
	c, err := p.Clients.GetClient(ctx, t.ClientID)
	if err != nil {
		return nil, fmt.Errorf("release to client: %w", err)
	}
	out := keep(t.Agreed, c.AllowedClaims())
	if t.ClientID == EIDAppClientID {
		return &Release{Claims: out}, nil
	}
	if !RepresentationReleases(t.OnBehalf, t.Bounded) || (t.OnBehalf != nil && t.ConsentID == "") {
		// Nothing of the party's registry data, and no fallback to a
		// consent remembered for the party: a representative's release
		// rests only on the consent recorded at their own login.
		return &Release{}, nil
	}
	var rec *consent.Record
	if t.ConsentID != "" {
		rec, err = p.Consent.Active(ctx, t.ConsentID)
		if errors.Is(err, consent.ErrWithdrawn) || errors.Is(err, consent.ErrNotFound) {
			return nil, ErrConsentWithdrawn
		}
		if err != nil {
			return nil, consentErr(err)
		}
		// A consent given to client A is worth nothing to client B, and
		// one citizen's to another.
		if rec.ClientID != t.ClientID || rec.CitizenID != t.CitizenID {
			return nil, ErrConsentWithdrawn
		}
		// Re-granted since by someone else (same record, next version):
		// what the token rested on is gone.
		if !SameGiver(rec.GivenBy, t.OnBehalf) {
			return nil, ErrConsentWithdrawn
		}
	} else if len(out) > 0 {
		if rec, err = p.Consent.Remembered(ctx, t.CitizenID, t.ClientID, c.DefaultPurpose().Code); err != nil {
			return nil, consentErr(err)
		}
		if rec != nil && !SameGiver(rec.GivenBy, nil) {
			rec = nil
		}
	}
	if rec == nil {
		return &Release{}, nil
	}
	return &Release{Claims: keep(out, rec.Items), ConsentID: rec.ID, Purpose: rec.Purpose.Code}, nil
}

// Record implements ReleasePolicy: a consent.Service grant with the approval
// as evidence. Only claims that were asked and the client may receive are
// recorded; optional asked claims not shared are recorded as declined. A
// representative bounded to services records nothing: nothing is released
// (RepresentationReleases).
func (p *ConsentPolicy) Record(ctx context.Context, a *Approval) (*Agreement, error) {
	if !RepresentationReleases(a.OnBehalf, a.Bounded) {
		return &Agreement{Covered: true}, nil
	}
	if len(a.Plan.Claims) == 0 {
		// A login that asks for no personal data (openid alone) releases
		// only the subject: there is nothing to consent to.
		return &Agreement{Covered: true}, nil
	}
	allowed := a.Client.AllowedClaims()
	r := &consent.Record{
		CitizenID: a.CitizenID,
		ClientID:  a.Client.ID,
		Agency:    a.Client.Agency,
		Recipient: a.Plan.Recipient,
		Purpose:   a.Plan.Purpose,
		Notice:    ConsentNotice,
		Method:    consent.MethodEIDApp,
		Evidence:  a.Evidence,
		GivenBy:   a.OnBehalf,
		Items:     []string{},
	}
	for _, cr := range a.Plan.Claims {
		switch {
		case slices.Contains(a.Shared, cr.Name) && slices.Contains(allowed, cr.Name):
			r.Items = append(r.Items, cr.Name)
		case cr.Optional:
			r.Declined = append(r.Declined, cr.Name)
		}
	}
	rec, _, err := p.Consent.Grant(ctx, r)
	if err != nil {
		return nil, consentErr(err)
	}
	return &Agreement{Agreed: rec.Items, ConsentID: rec.ID, Covered: true}, nil
}

// consentErr maps a consent store outage onto the IdP's, so the web layer
// answers 503 and never a denial.
func consentErr(err error) error {
	if errors.Is(err, consent.ErrUnavailable) && !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// keep returns the names in list that are also in allowed, in list's order,
// once each.
func keep(list, allowed []string) []string {
	var out []string
	for _, n := range list {
		if slices.Contains(allowed, n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// AuthorizationDetailsType is OneDoor's RFC 9396 authorization details
// type: a relying party asks for exactly the items one transaction needs,
// for one of its registered purposes.
const AuthorizationDetailsType = "onedoor_personal_data"

// AuthorizationDetail is one object of that type.
type AuthorizationDetail struct {
	Type    string   `json:"type"`
	Purpose string   `json:"purpose,omitempty"`
	Items   []string `json:"items"`
}

// ErrInvalidAuthorizationDetails is the RFC 9396 error: the parameter is
// malformed, names an unknown type or a purpose the client did not
// register, or asks for an item the client may not receive.
var ErrInvalidAuthorizationDetails = fmt.Errorf("invalid authorization_details: %w", ErrInvalid)

// maxAuthorizationDetails bounds the parameter's size.
const maxAuthorizationDetails = 4 << 10

// ParseAuthorizationDetails reads the authorization_details parameter for
// client c: a JSON array holding one object of AuthorizationDetailsType
// whose items are claims c may receive, without repeats, and whose purpose,
// when given, is one c registered (else c's first). It can only narrow
// what c may receive. An empty parameter is nil.
func ParseAuthorizationDetails(raw string, c *Client) (*AuthorizationDetail, error) {
	if raw == "" {
		return nil, nil
	}
	bad := func(why string) error { return fmt.Errorf("%s: %w", why, ErrInvalidAuthorizationDetails) }
	if len(raw) > maxAuthorizationDetails {
		return nil, bad("longer than 4 KiB")
	}
	var objs []json.RawMessage
	if err := json.Unmarshal([]byte(raw), &objs); err != nil {
		return nil, bad("not a JSON array of objects")
	}
	var found *AuthorizationDetail
	for _, o := range objs {
		var head struct {
			Type *string `json:"type"`
		}
		if err := json.Unmarshal(o, &head); err != nil || head.Type == nil {
			return nil, bad("every object needs a type")
		}
		if *head.Type != AuthorizationDetailsType {
			return nil, bad("unknown type (supported: " + AuthorizationDetailsType + ")")
		}
		if found != nil {
			return nil, bad("one " + AuthorizationDetailsType + " object per request")
		}
		var d AuthorizationDetail
		dec := json.NewDecoder(bytes.NewReader(o))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			return nil, bad("an " + AuthorizationDetailsType + " object has type, purpose and items only")
		}
		found = &d
	}
	if found == nil {
		return nil, bad("no " + AuthorizationDetailsType + " object")
	}
	if found.Purpose == "" {
		found.Purpose = c.DefaultPurpose().Code
	}
	if err := found.check(c); err != nil {
		return nil, err
	}
	return found, nil
}

// check enforces what ParseAuthorizationDetails promises, against c as it
// is registered now.
func (d *AuthorizationDetail) check(c *Client) error {
	bad := func(why string) error { return fmt.Errorf("%s: %w", why, ErrInvalidAuthorizationDetails) }
	if _, ok := c.Purpose(d.Purpose); !ok {
		return bad("the purpose is not one the client registered")
	}
	if len(d.Items) == 0 {
		return bad("items must name at least one claim")
	}
	allowed := c.AllowedClaims()
	for i, it := range d.Items {
		if !slices.Contains(allowed, it) {
			return bad("an item is not a claim the client may receive")
		}
		if slices.Contains(d.Items[:i], it) {
			return bad("an item is listed twice")
		}
	}
	return nil
}

// LegacyGrant is a row of the IdP's former grant store (idp_grants): the
// claims a citizen agreed to share with a client before consent records.
type LegacyGrant struct {
	CitizenID string
	ClientID  string
	Claims    []string
	Evidence  string // the approval JWS; empty for grants older than 0005
	UpdatedAt time.Time
}

// LegacyGrantStore reads and removes the former grants, for MoveGrants.
type LegacyGrantStore interface {
	// LegacyGrants returns up to limit rows, in no particular order.
	LegacyGrants(ctx context.Context, limit int) ([]*LegacyGrant, error)
	// DeleteLegacyGrant removes one row; absent rows are not an error.
	DeleteLegacyGrant(ctx context.Context, citizenID, clientID string) error
}

// MoveGrants turns the former grants into consent records, once: each row
// becomes a consent for the client's default purpose (its first, or
// "login") with the claims the client may still receive and the kept
// evidence, and is then deleted. It is idempotent: a row for which a live
// consent exists (its own, recorded before a crash, or a newer one) is only
// deleted, and a second run finds nothing left to move. A grant of a client
// that no longer exists is dropped. It returns how many consents it
// recorded.
func MoveGrants(ctx context.Context, src LegacyGrantStore, clients ClientLookup, cs *consent.Service) (int, error) {
	moved := 0
	for {
		gs, err := src.LegacyGrants(ctx, 100)
		if err != nil {
			return moved, fmt.Errorf("move grants: %w", err)
		}
		if len(gs) == 0 {
			return moved, nil
		}
		for _, g := range gs {
			n, err := moveGrant(ctx, g, clients, cs)
			if err != nil {
				return moved, fmt.Errorf("move grant of client %s: %w", g.ClientID, err)
			}
			moved += n
			if err := src.DeleteLegacyGrant(ctx, g.CitizenID, g.ClientID); err != nil {
				return moved, fmt.Errorf("move grants: %w", err)
			}
		}
	}
}

func moveGrant(ctx context.Context, g *LegacyGrant, clients ClientLookup, cs *consent.Service) (int, error) {
	c, err := clients.GetClient(ctx, g.ClientID)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	items := keep(g.Claims, c.AllowedClaims())
	if items == nil {
		items = []string{}
	}
	purpose := c.DefaultPurpose()
	// A live consent for the same client and purpose is either this row's,
	// recorded by an earlier run interrupted before the delete, or one the
	// citizen gave since (another replica already serving): both win.
	_, err = cs.Store.LiveRecord(ctx, g.CitizenID, g.ClientID, purpose.Code)
	switch {
	case err == nil:
		return 0, nil
	case !errors.Is(err, consent.ErrNotFound):
		return 0, consentErr(err)
	}
	method := consent.MethodEIDApp
	name := c.Name
	if name == "" {
		name = c.ID
	}
	if _, _, err := cs.Grant(ctx, &consent.Record{
		CitizenID: g.CitizenID, ClientID: g.ClientID, Agency: c.Agency, Recipient: name, Purpose: purpose,
		Items: items, Notice: "onedoor-grant-0005", Method: method, Evidence: g.Evidence,
	}); err != nil {
		return 0, consentErr(err)
	}
	return 1, nil
}
