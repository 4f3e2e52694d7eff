package eid

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/represent"
)

// ClaimRequest is one claim a relying party asks for, as the release policy
// planned it.
type ClaimRequest = idp.ClaimRequest

// LoginRequest is a login waiting for the citizen's answer in the eID app.
type LoginRequest struct {
	ID         string         `json:"id"`
	ClientID   string         `json:"client_id"`
	ClientName string         `json:"client_name"`
	Claims     []ClaimRequest `json:"claims"`
	// PurposeCode and Purpose are the purpose from the client's catalog the
	// login asks consent for: its code (signed in the approval) and the
	// text shown to the citizen.
	PurposeCode string `json:"purpose_code"`
	Purpose     string `json:"purpose"`
	MatchNumber string `json:"match_number"` // two digits, shown in the browser only
	// MatchChoices are the three numbers the app offers, MatchNumber among
	// them in a random place; drawn once, so every fetch shows the same.
	MatchChoices []string  `json:"match_choices"`
	Level        idp.Level `json:"level"`        // minimum level required
	BrowserKey   []byte    `json:"browser_key"`  // hash of a browser-binding secret; never shown to the app
	Continuation []byte    `json:"continuation"` // opaque to eid: the web layer's resolved authorize request
	CreatedAt    time.Time `json:"created_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Target, when set, is the only citizen whose devices may see and
	// answer the request (a login_hint); see targeted.go.
	Target string `json:"target,omitempty"`
	// BindingMessage marks a CIBA request (an agency's counter or call
	// centre, no browser): the text the agency shows and the app shows
	// beside it. Such a request is approved in ModeCIBA, with no match
	// pick, and the approval signs the message.
	BindingMessage string `json:"binding_message,omitempty"`
	// Representation: the relying party asked the representation scope,
	// so the citizen may choose, in the app, a party to act for (the
	// approval's act_as). Without it an approval naming a party is
	// refused.
	Representation bool `json:"representation,omitempty"`
}

// Decision is the citizen's answer to a login request.
type Decision struct {
	Approved  bool      `json:"approved"`
	CitizenID string    `json:"citizen_id"`
	DeviceID  string    `json:"device_id"`
	Level     idp.Level `json:"level"`  // the device's level
	Claims    []string  `json:"claims"` // what the citizen agreed to share; empty when denied
	DecidedAt time.Time `json:"decided_at"`
	Approval  string    `json:"approval"` // the signed approval JWS, evidence for consent records
	// Reason says why a login was denied by the IdP rather than the
	// citizen: ReasonWrongMatch. Empty otherwise.
	Reason string `json:"reason,omitempty"`
	// Mode is how the app was opened (ModeCrossDevice or ModeSameDevice),
	// as its signed approval says.
	Mode string `json:"mode"`
	// ReturnCodeHash is the SHA-256 of a same-device approval's return
	// code: the browser's continuation must present the code.
	ReturnCodeHash []byte `json:"return_code_hash,omitempty"`
	// ReturnCode is the return code itself, set on the Decision that
	// Decide returns for the app and never stored.
	ReturnCode string `json:"-"`
	// ActAs is the party the citizen chose to act for (the approval's
	// act_as, checked when it was decided); nil: themselves.
	ActAs *represent.Party `json:"act_as,omitempty"`
}

// ActAsFunc resolves an approval's act_as (a tax code or a personal id)
// to a party citizenID may act for now. A party they do not represent, or
// nobody's ref, wraps represent.ErrNotRepresented (or ErrNotFound,
// ErrInvalid); an outage wraps idp.ErrUnavailable.
type ActAsFunc func(ctx context.Context, citizenID, ref string) (*represent.Party, error)

// RepresentationChoice is one party the app offers the citizen to act for
// (AppView.Representations).
type RepresentationChoice struct {
	Type       represent.PartyType `json:"type"` // organisation or person
	Name       string              `json:"name"`
	TaxCode    string              `json:"tax_code,omitempty"`    // an organisation's
	PersonalID string              `json:"personal_id,omitempty"` // a person's
	// Ref is what the approval's act_as names: the tax code or personal id.
	Ref        string          `json:"ref"`
	Basis      represent.Basis `json:"basis"`
	MandateID  string          `json:"mandate_id,omitempty"`
	Services   []string        `json:"services,omitempty"`
	Categories []string        `json:"categories,omitempty"`
	Until      *time.Time      `json:"until,omitempty"`
}

// Choices are the representations as the app shows them.
func Choices(rs []represent.Representation) []RepresentationChoice {
	out := make([]RepresentationChoice, 0, len(rs))
	for _, r := range rs {
		out = append(out, RepresentationChoice{Type: r.Party.Type, Name: r.Party.Name, TaxCode: r.Party.TaxCode,
			PersonalID: r.Party.PersonalID, Ref: r.Party.Ref(), Basis: r.Basis, MandateID: r.MandateID,
			Services: r.Services, Categories: r.Categories, Until: r.Until})
	}
	return out
}

// How the app was opened, signed in the approval (ApprovalClaims.Mode). The
// app knows it from the form of what opened it: the QR payload means
// another device shows the login page, the https app link (or the
// same-device payload) means this phone does.
const (
	// ModeCrossDevice: the citizen picks, among MatchChoices, the number
	// the browser's page shows. An approval without a mode is this one.
	ModeCrossDevice = "cross_device"
	// ModeSameDevice: the approval returns the citizen to the browser with
	// a one-time return code that the continuation requires.
	ModeSameDevice = "same_device"
	// ModeCIBA: a backchannel (CIBA) request, opened from the pending
	// list. There is no browser page and so no number to pick: the
	// citizen compares the binding message the agency's clerk shows or
	// reads out with the one the app shows, and the approval signs it.
	ModeCIBA = "ciba"
)

// ReasonWrongMatch is the Decision.Reason of an approval whose match number
// is not the request's: the login is denied, not left open to another try.
const ReasonWrongMatch = "wrong_match"

// NeedsReturnCode reports whether the browser's continuation must present
// the return code: an approval made on the same device.
func (d *Decision) NeedsReturnCode() bool {
	return d.Approved && d.Mode == ModeSameDevice
}

// ReturnCodeMatches compares code with the one issued for d in constant
// time; false when d issued none.
func (d *Decision) ReturnCodeMatches(code string) bool {
	if len(d.ReturnCodeHash) == 0 || code == "" {
		return false
	}
	h := sha256.Sum256([]byte(code))
	return subtle.ConstantTimeCompare(h[:], d.ReturnCodeHash) == 1
}

// Status is where a login request stands.
type Status string

// Statuses of a login request.
const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusDenied   Status = "denied"
	StatusExpired  Status = "expired"
)

// AppView is what the eID app is shown: the wire format of
// GET /eid/v1/login-requests/{id}. It leaves out the browser key and the
// continuation.
type AppView struct {
	RequestID  string         `json:"request_id"`
	ClientID   string         `json:"client_id"`
	ClientName string         `json:"client_name"`
	Claims     []ClaimRequest `json:"claims"`
	// PurposeCode is what the approval must name as its purpose; Purpose
	// is the text shown.
	PurposeCode string `json:"purpose_code"`
	Purpose     string `json:"purpose"`
	// MatchChoices are three two-digit numbers, one of them the number the
	// browser's page shows; nothing here says which.
	MatchChoices []string  `json:"match_choices"`
	Level        idp.Level `json:"level"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Agreed lists the requested claims this citizen already agreed to share
	// with this client: the app asks only for the approval, not the claims.
	Agreed []string `json:"agreed,omitempty"`
	// BindingMessage is set on a CIBA request: the app shows it, the
	// citizen compares it with the agency's, and the approval (ModeCIBA)
	// signs it. Match choices are empty then.
	BindingMessage string `json:"binding_message,omitempty"`
	// Representation: the relying party asked the representation scope;
	// Representations are the parties this citizen may act for (computed
	// for the device that fetches the view). The approval names the
	// chosen one's Ref in act_as, or nothing to act for themselves.
	Representation  bool                   `json:"representation,omitempty"`
	Representations []RepresentationChoice `json:"representations,omitempty"`
}

// Limits on a login request.
const (
	maxClaims       = 64
	maxClaimNameLen = 64
	maxPurposeLen   = 512
)

func loginKey(id string) string    { return "eid:login:" + id }
func decisionKey(id string) string { return "eid:decision:" + id }
func takenKey(id string) string    { return "eid:taken:" + id }

// decisionRecord keeps the request beside the decision, so a decision made in
// the request's last second can still be redeemed.
type decisionRecord struct {
	Request  *LoginRequest `json:"request"`
	Decision *Decision     `json:"decision"`
}

// NewLogin validates r, fills its ID, MatchNumber, MatchChoices, CreatedAt and ExpiresAt
// and stores it for Config.LoginTTL. An empty Level means substantial, the
// least an enrolled device proves.
func (s *Service) NewLogin(ctx context.Context, r *LoginRequest) error {
	if r == nil || r.ClientID == "" {
		return fmt.Errorf("login request needs a client: %w", idp.ErrInvalid)
	}
	if r.Level == "" {
		r.Level = idp.LevelSubstantial
	}
	if r.Level.Rank() == 0 {
		return fmt.Errorf("login request level %q unknown: %w", r.Level, idp.ErrInvalid)
	}
	if len(r.Claims) > maxClaims {
		return fmt.Errorf("login request asks for more than %d claims: %w", maxClaims, idp.ErrInvalid)
	}
	seen := make(map[string]bool, len(r.Claims))
	for _, c := range r.Claims {
		if c.Name == "" || len(c.Name) > maxClaimNameLen || seen[c.Name] {
			return fmt.Errorf("login request claim %q empty, too long or repeated: %w", c.Name, idp.ErrInvalid)
		}
		seen[c.Name] = true
	}
	if len(r.Purpose) > maxPurposeLen || len(r.PurposeCode) > maxClaimNameLen {
		return fmt.Errorf("login request purpose longer than %d bytes: %w", maxPurposeLen, idp.ErrInvalid)
	}
	id, err := s.newID()
	if err != nil {
		return err
	}
	match, choices, err := s.matchChoices()
	if err != nil {
		return err
	}
	now := s.now()
	r.ID, r.MatchNumber, r.MatchChoices = id, match, choices
	r.CreatedAt, r.ExpiresAt = now, now.Add(s.cfg.LoginTTL)
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode login request: %w", err)
	}
	if err := s.eph.Create(ctx, loginKey(id), b, s.cfg.LoginTTL); err != nil {
		return fmt.Errorf("store login request: %w", err)
	}
	return nil
}

// matchChoices draws the match number and two other numbers, all
// uniform among "00".."99", and shuffles the three: neither the decoys'
// values nor the order tell which one the browser shows.
func (s *Service) matchChoices() (string, []string, error) {
	choices := make([]string, 0, 3)
	for len(choices) < 3 {
		n, err := s.uniform(100)
		if err != nil {
			return "", nil, fmt.Errorf("match number: %w", err)
		}
		if c := fmt.Sprintf("%02d", n); !slices.Contains(choices, c) {
			choices = append(choices, c)
		}
	}
	match := choices[0]
	for i := len(choices) - 1; i > 0; i-- { // Fisher–Yates
		j, err := s.uniform(i + 1)
		if err != nil {
			return "", nil, fmt.Errorf("match number: %w", err)
		}
		choices[i], choices[j] = choices[j], choices[i]
	}
	return match, choices, nil
}

// uniform draws 0..n-1 (n ≤ 256) uniformly from the configured randomness:
// bytes at or above the largest multiple of n are redrawn.
func (s *Service) uniform(n int) (int, error) {
	limit := 256 - 256%n
	var b [1]byte
	for {
		if _, err := io.ReadFull(s.cfg.Rand, b[:]); err != nil {
			return 0, err
		}
		if int(b[0]) < limit {
			return int(b[0]) % n, nil
		}
	}
}

// Login returns a pending login request; idp.ErrNotFound when it is absent
// or expired.
func (s *Service) Login(ctx context.Context, id string) (*LoginRequest, error) {
	if !validID(id) {
		return nil, fmt.Errorf("login request: %w", idp.ErrNotFound)
	}
	b, err := s.eph.Get(ctx, loginKey(id))
	if err != nil {
		return nil, fmt.Errorf("login request: %w", err)
	}
	var r LoginRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode login request: %w", err)
	}
	if !s.now().Before(r.ExpiresAt) {
		return nil, fmt.Errorf("login request expired: %w", idp.ErrNotFound)
	}
	return &r, nil
}

// Status says where a login request stands; the decision comes with
// approved and denied. A request that is gone without a decision, or was
// never there, is expired.
func (s *Service) Status(ctx context.Context, id string) (Status, *Decision, error) {
	if !validID(id) {
		return StatusExpired, nil, nil
	}
	b, err := s.eph.Get(ctx, decisionKey(id))
	switch {
	case err == nil:
		var rec decisionRecord
		if err := json.Unmarshal(b, &rec); err != nil || rec.Decision == nil {
			return "", nil, fmt.Errorf("decode login decision: %w", errors.Join(err, idp.ErrInvalid))
		}
		if rec.Decision.Approved {
			return StatusApproved, rec.Decision, nil
		}
		return StatusDenied, rec.Decision, nil
	case !errors.Is(err, idp.ErrNotFound):
		return "", nil, fmt.Errorf("login decision: %w", err)
	}
	if _, err := s.Login(ctx, id); err != nil {
		if errors.Is(err, idp.ErrNotFound) {
			return StatusExpired, nil, nil
		}
		return "", nil, err
	}
	return StatusPending, nil, nil
}

// Lookup returns a login request with its status. Once decided, the request
// comes from the decision record, so a login approved in the request's last
// second still reaches the browser that started it. An expired request
// returns a nil request and StatusExpired.
func (s *Service) Lookup(ctx context.Context, id string) (*LoginRequest, Status, error) {
	if !validID(id) {
		return nil, StatusExpired, nil
	}
	b, err := s.eph.Get(ctx, decisionKey(id))
	switch {
	case err == nil:
		var rec decisionRecord
		if err := json.Unmarshal(b, &rec); err != nil || rec.Decision == nil || rec.Request == nil {
			return nil, "", fmt.Errorf("decode login decision: %w", errors.Join(err, idp.ErrInvalid))
		}
		if rec.Decision.Approved {
			return rec.Request, StatusApproved, nil
		}
		return rec.Request, StatusDenied, nil
	case !errors.Is(err, idp.ErrNotFound):
		return nil, "", fmt.Errorf("login decision: %w", err)
	}
	r, err := s.Login(ctx, id)
	if errors.Is(err, idp.ErrNotFound) {
		return nil, StatusExpired, nil
	}
	if err != nil {
		return nil, "", err
	}
	return r, StatusPending, nil
}

// AppView is the part of r the eID app shows the citizen.
func (s *Service) AppView(r *LoginRequest) AppView {
	claims := make([]ClaimRequest, len(r.Claims))
	copy(claims, r.Claims)
	v := AppView{
		RequestID:   r.ID,
		ClientID:    r.ClientID,
		ClientName:  r.ClientName,
		Claims:      claims,
		PurposeCode: r.PurposeCode,
		Purpose:     r.Purpose,
		// A copy: the view goes out, the request's order stays as drawn.
		MatchChoices: slices.Clone(r.MatchChoices),
		Level:        r.Level,
		ExpiresAt:    r.ExpiresAt.UTC().Truncate(time.Second),
	}
	if r.BindingMessage != "" {
		v.MatchChoices, v.BindingMessage = []string{}, r.BindingMessage
	}
	v.Representation = r.Representation
	return v
}

// Decide records the citizen's answer: approval is a JWS (typ
// eid-approval+jwt) signed by dev over the request ID, the decision, how the
// app was opened (its mode), the match number the citizen picked and, to
// approve, the recipient's client ID, the purpose's code and the shared
// claims, which must be those of the request. A login is decided once: a
// second answer is idp.ErrConflict.
//
// An approval whose pick is not the request's match number (required across
// devices, checked on the same device when sent) is recorded as a denial
// with Reason ReasonWrongMatch: the returned Decision is not approved and
// the request cannot be tried again. A same-device approval's Decision
// carries the one-time ReturnCode the browser's continuation requires.
//
// Refusals, which leave the request pending, wrap idp.ErrInvalid
// (ErrDeviceAuth for a revoked device, ErrLevelTooLow for an approval from a
// device below the requested level); an absent or expired request is
// idp.ErrNotFound. The pick is compared last, after every refusal, so a
// refused approval never tells whether its number was right.
func (s *Service) Decide(ctx context.Context, id string, dev *idp.Device, approval string) (*Decision, error) {
	return s.DecideAs(ctx, id, dev, approval, nil)
}

// DecideAs is Decide where the approval may name, in act_as, a party the
// citizen acts for: actAs resolves it for the device's citizen. An act_as
// for a request that did not ask representation, or that actAs (nil:
// none) refuses, is refused (idp.ErrInvalid) and the request stays
// pending.
func (s *Service) DecideAs(ctx context.Context, id string, dev *idp.Device, approval string, actAs ActAsFunc) (*Decision, error) {
	if dev == nil || dev.RevokedAt != nil {
		return nil, rekind(refuse("device missing or revoked"), ErrDeviceAuth)
	}
	c, err := s.verifier.ParseApproval(approval, s.cfg.Issuer, dev)
	if err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	r, err := s.Login(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.RequestID != r.ID {
		return nil, fmt.Errorf("approval is for another login request: %w", idp.ErrInvalid)
	}
	if !r.For(dev) {
		return nil, fmt.Errorf("login request: %w", idp.ErrNotFound)
	}
	mode := c.Mode
	if mode == "" {
		mode = ModeCrossDevice
	}
	ciba := r.BindingMessage != ""
	switch {
	case ciba && mode != ModeCIBA:
		// No browser shows a number or takes a return code: a CIBA
		// request is approved only as one, over its binding message.
		return nil, fmt.Errorf("a backchannel login request is approved in mode %q: %w", ModeCIBA, idp.ErrInvalid)
	case !ciba && mode != ModeCrossDevice && mode != ModeSameDevice:
		return nil, fmt.Errorf("approval mode must be %q or %q: %w", ModeCrossDevice, ModeSameDevice, idp.ErrInvalid)
	}
	d := &Decision{CitizenID: dev.CitizenID, DeviceID: dev.ID, Level: dev.Level, DecidedAt: s.now(), Approval: approval, Mode: mode}
	switch c.Decision {
	case DecisionApprove:
		// A deny is accepted from any device; only approvals need the level.
		if dev.Level.Rank() < r.Level.Rank() {
			return nil, fmt.Errorf("device has %s, request needs %s: %w", dev.Level, r.Level, ErrLevelTooLow)
		}
		// The evidence must say what was agreed, to whom and why: a list,
		// recipient or purpose changed between display and approval is
		// refused.
		if c.ClientID != r.ClientID {
			return nil, fmt.Errorf("approval names another recipient than the login request: %w", idp.ErrInvalid)
		}
		if c.Purpose != r.PurposeCode {
			return nil, fmt.Errorf("approval names another purpose than the login request: %w", idp.ErrInvalid)
		}
		if err := checkShared(r.Claims, c.Claims); err != nil {
			return nil, err
		}
		if ciba && subtle.ConstantTimeCompare([]byte(c.BindingMessage), []byte(r.BindingMessage)) != 1 {
			// The app must have shown the message the agency shows.
			return nil, fmt.Errorf("approval names another binding message than the login request: %w", idp.ErrInvalid)
		}
		if c.ActAs != "" {
			p, err := checkActAs(ctx, r, dev, c.ActAs, actAs)
			if err != nil {
				return nil, err
			}
			d.ActAs = p
		}
		// The app was shown three numbers, not which one is right: a
		// citizen who cannot see the browser's page (a relayed link or
		// QR code) picks wrong two times in three, and that ends the
		// login rather than leaving it open to another guess.
		if !ciba && (mode == ModeCrossDevice || c.MatchNumber != "") {
			if subtle.ConstantTimeCompare([]byte(c.MatchNumber), []byte(r.MatchNumber)) != 1 {
				d.Reason = ReasonWrongMatch
				return s.recordUse(ctx, r, d, dev)
			}
		}
		d.Approved = true
		d.Claims = c.Claims
		if mode == ModeSameDevice {
			code, err := s.newID()
			if err != nil {
				return nil, fmt.Errorf("return code: %w", err)
			}
			h := sha256.Sum256([]byte(code))
			d.ReturnCode, d.ReturnCodeHash = code, h[:]
		}
	case DecisionDeny:
	default:
		return nil, fmt.Errorf("approval decision must be %q or %q: %w", DecisionApprove, DecisionDeny, idp.ErrInvalid)
	}
	return s.recordUse(ctx, r, d, dev)
}

// recordUse records d and, once it is stored, the device's use.
func (s *Service) recordUse(ctx context.Context, r *LoginRequest, d *Decision, dev *idp.Device) (*Decision, error) {
	d, err := s.record(ctx, r, d)
	if err == nil {
		s.used(ctx, dev)
	}
	return d, err
}

// checkActAs resolves an approval's act_as for the device's citizen.
func checkActAs(ctx context.Context, r *LoginRequest, dev *idp.Device, ref string, actAs ActAsFunc) (*represent.Party, error) {
	if !r.Representation || actAs == nil {
		// The relying party did not ask (or cannot receive) a
		// representation: an agency refuses it by not registering the scope.
		return nil, fmt.Errorf("approval names act_as but the login request did not ask representation: %w", idp.ErrInvalid)
	}
	if len(ref) > 64 {
		return nil, fmt.Errorf("act_as too long: %w", idp.ErrInvalid)
	}
	p, err := actAs(ctx, dev.CitizenID, ref)
	switch {
	case errors.Is(err, idp.ErrUnavailable) || errors.Is(err, represent.ErrUnavailable):
		return nil, fmt.Errorf("act_as: %w", errors.Join(err, idp.ErrUnavailable))
	case err != nil || p == nil:
		// One answer whether the party exists or not: the app learns only
		// that this citizen does not represent it.
		return nil, fmt.Errorf("act_as names a party this citizen does not represent: %w", idp.ErrInvalid)
	case p.ID == dev.CitizenID:
		return nil, fmt.Errorf("act_as names the citizen themselves: leave it out: %w", idp.ErrInvalid)
	}
	return p, nil
}

// record stores d as the one decision on r.
func (s *Service) record(ctx context.Context, r *LoginRequest, d *Decision) (*Decision, error) {
	b, err := json.Marshal(decisionRecord{Request: r, Decision: d})
	if err != nil {
		return nil, fmt.Errorf("encode login decision: %w", err)
	}
	if err := s.eph.Create(ctx, decisionKey(r.ID), b, s.cfg.LoginTTL); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return nil, fmt.Errorf("login request already decided: %w", idp.ErrConflict)
		}
		return nil, fmt.Errorf("store login decision: %w", err)
	}
	s.wake(ctx, r.ID)
	return d, nil
}

// checkShared enforces shared ⊆ requested, without repeats, and every
// non-optional claim shared.
func checkShared(requested []ClaimRequest, shared []string) error {
	want := make(map[string]bool, len(requested)) // name -> optional
	for _, c := range requested {
		want[c.Name] = c.Optional
	}
	got := make(map[string]bool, len(shared))
	for _, n := range shared {
		if _, ok := want[n]; !ok {
			return fmt.Errorf("approval shares claim %q that was not requested: %w", n, idp.ErrInvalid)
		}
		if got[n] {
			return fmt.Errorf("approval shares claim %q twice: %w", n, idp.ErrInvalid)
		}
		got[n] = true
	}
	for _, c := range requested {
		if !c.Optional && !got[c.Name] {
			return fmt.Errorf("approval leaves out required claim %q: %w", c.Name, idp.ErrInvalid)
		}
	}
	return nil
}

// TakeDecision ends a decided login: it returns the decision and the
// request it answers to one caller only, and deletes the request.
// idp.ErrNotFound while pending, after expiry and on every later call.
func (s *Service) TakeDecision(ctx context.Context, id string) (*LoginRequest, *Decision, error) {
	if !validID(id) {
		return nil, nil, fmt.Errorf("login decision: %w", idp.ErrNotFound)
	}
	b, err := s.eph.Get(ctx, decisionKey(id))
	if err != nil {
		return nil, nil, fmt.Errorf("login decision: %w", err)
	}
	var rec decisionRecord
	if err := json.Unmarshal(b, &rec); err != nil || rec.Request == nil || rec.Decision == nil {
		return nil, nil, fmt.Errorf("decode login decision: %w", errors.Join(err, idp.ErrInvalid))
	}
	// The decision itself stays until it expires, so Decide keeps answering
	// ErrConflict: taking it must not open the request to a second answer.
	if err := s.eph.Create(ctx, takenKey(id), []byte{1}, s.cfg.LoginTTL); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return nil, nil, fmt.Errorf("login decision already taken: %w", idp.ErrNotFound)
		}
		return nil, nil, fmt.Errorf("take login decision: %w", err)
	}
	// Cleanup only: the request expires within LoginTTL anyway.
	_ = s.eph.Delete(ctx, loginKey(id))
	return rec.Request, rec.Decision, nil
}

// Payload is the QR-code content for a login request:
// onedoor-eid://login?request=<id>&issuer=<issuer>.
func Payload(issuer, requestID string) string {
	return "onedoor-eid://login?request=" + url.QueryEscape(requestID) + "&issuer=" + url.QueryEscape(issuer)
}

// SameDevicePayload is Payload marked as opened on the phone that shows the
// login page (the fallback page's button for an app that did not claim the
// https app link): the app approves it in ModeSameDevice.
func SameDevicePayload(issuer, requestID string) string {
	return Payload(issuer, requestID) + "&mode=" + ModeSameDevice
}

// PayloadMode is the mode an app opened by p approves in: ModeSameDevice
// for the https app link and SameDevicePayload, ModeCrossDevice for the QR
// code's Payload. p must have passed ParsePayload. Whoever forwards a link
// can choose either form, and each has its own proof: a pick of the number
// the browser shows, or a return code that reaches only this phone.
func PayloadMode(p string) string {
	u, err := url.Parse(p)
	if err != nil {
		return ModeCrossDevice
	}
	if u.Scheme == "https" || u.Scheme == "http" || u.Query().Get("mode") == ModeSameDevice {
		return ModeSameDevice
	}
	return ModeCrossDevice
}

// AppLinkPath is where, under the issuer, the https app link lives.
const AppLinkPath = "/app/login"

// AppLink is the https form of Payload, for the same-device button:
// {issuer}/app/login?request=<id>. It carries what the QR code carries, the
// request's public id, and names the issuer by its own URL. A phone with the
// app installed opens it in the app (a universal link, an Android App Link);
// anywhere else the IdP answers it with a page leading to the app.
func AppLink(issuer, requestID string) string {
	return strings.TrimRight(issuer, "/") + AppLinkPath + "?request=" + url.QueryEscape(requestID)
}

// ValidRequestID reports whether s has the form of a login request's id.
func ValidRequestID(s string) bool { return validID(s) }

// ParsePayload reads a QR-code payload made by Payload, or an https app
// link made by AppLink (whose issuer is the link without its path suffix).
func ParsePayload(p string) (issuer, requestID string, err error) {
	if len(p) > 2048 {
		return "", "", fmt.Errorf("eid payload too long: %w", idp.ErrInvalid)
	}
	u, err := url.Parse(p)
	if err == nil && (u.Scheme == "https" || u.Scheme == "http") {
		return parseAppLink(u)
	}
	if err != nil || u.Scheme != "onedoor-eid" || u.Host != "login" || (u.Path != "" && u.Path != "/") || u.User != nil || u.Fragment != "" {
		return "", "", fmt.Errorf("not an onedoor-eid://login payload: %w", idp.ErrInvalid)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil || len(q["request"]) != 1 || len(q["issuer"]) != 1 {
		return "", "", fmt.Errorf("eid payload needs one request and one issuer: %w", idp.ErrInvalid)
	}
	if m, ok := q["mode"]; ok && (len(m) != 1 || m[0] != ModeSameDevice) {
		return "", "", fmt.Errorf("eid payload mode must be %s when present: %w", ModeSameDevice, idp.ErrInvalid)
	}
	requestID, issuer = q.Get("request"), q.Get("issuer")
	return checkPayload(issuer, requestID)
}

// parseAppLink reads {issuer}/app/login?request=<id>.
func parseAppLink(u *url.URL) (issuer, requestID string, err error) {
	base, ok := strings.CutSuffix(u.EscapedPath(), AppLinkPath)
	if !ok || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return "", "", fmt.Errorf("not an %s app link: %w", AppLinkPath, idp.ErrInvalid)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil || len(q["request"]) != 1 || len(q) != 1 {
		return "", "", fmt.Errorf("app link needs exactly one request parameter: %w", idp.ErrInvalid)
	}
	return checkPayload(u.Scheme+"://"+u.Host+base, q.Get("request"))
}

func checkPayload(issuer, requestID string) (string, string, error) {
	if !validID(requestID) {
		return "", "", fmt.Errorf("eid payload request id malformed: %w", idp.ErrInvalid)
	}
	iu, err := url.Parse(issuer)
	if err != nil || (iu.Scheme != "https" && iu.Scheme != "http") || iu.Host == "" || iu.User != nil || iu.RawQuery != "" || iu.Fragment != "" || strings.ContainsAny(issuer, " \t\r\n") {
		return "", "", fmt.Errorf("eid payload issuer must be an absolute http(s) URL: %w", idp.ErrInvalid)
	}
	return issuer, requestID, nil
}

// VerifyEvidence checks an approval kept as evidence of what a citizen
// agreed to (idp.Grant.Evidence): a JWS of type eid-approval+jwt for issuer,
// signed by dev's key, issued no later than at (when the grant was
// recorded). Its short validity is checked as of its own issue time, and a
// device revoked after at still vouches for what it signed before.
func VerifyEvidence(evidence, issuer string, dev *idp.Device, at time.Time) (*ApprovalClaims, error) {
	if dev == nil {
		return nil, refuse("no device")
	}
	var unverified ApprovalClaims
	if _, _, err := jwt.NewParser().ParseUnverified(evidence, &unverified); err != nil || unverified.IssuedAt == nil {
		return nil, refuse("evidence is not an approval with iat")
	}
	issued := unverified.IssuedAt.Time
	if issued.After(at) {
		return nil, refuse("evidence issued after it was recorded")
	}
	d := *dev
	if d.RevokedAt != nil && d.RevokedAt.After(at) {
		d.RevokedAt = nil
	}
	return Verifier{Now: func() time.Time { return issued }}.ParseApproval(evidence, issuer, &d)
}
