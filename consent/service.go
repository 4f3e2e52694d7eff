package consent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ReceiptType is the JOSE typ of a consent receipt.
const ReceiptType = "consent-receipt+jwt"

// Signer signs a receipt's claims as a compact JWS with the platform's
// current signing key, so anyone can check it against the IdP's JWKS.
type Signer interface {
	SignJWS(ctx context.Context, typ string, claims map[string]any) (string, error)
}

// Registry reads items about a citizen from the register that holds them
// (one copy: the broker never keeps what it reads).
type Registry interface {
	// Read returns the items it holds; an item it does not hold is absent.
	// ErrNotFound when the citizen is unknown.
	Read(ctx context.Context, citizenID string, items []string) (map[string]Value, error)
}

// Value is one item read from a register, with its provenance.
type Value struct {
	Value     any       `json:"value"`
	Source    string    `json:"source"`     // the register
	UpdatedAt time.Time `json:"updated_at"` // when the register last changed it
}

// Service is the one path by which personal data is released: it records
// consent, decides data requests, and logs every release.
type Service struct {
	Store  Store
	Signer Signer
	// Issuer names the platform in receipts (iss).
	Issuer string
	// Deny puts a withdrawn consent's id on the access-token deny list, so
	// tokens derived from it stop working on every replica.
	Deny func(ctx context.Context, consentID string) error
	// Lifetime is how long a consent lasts; 0 means one year.
	Lifetime time.Duration
	Now      func() time.Time
	// Once reports whether key is new within ttl on every replica (the
	// ephemeral store's create-if-absent). It keeps refusals from flooding
	// a citizen's log: one per citizen, actor and purpose per
	// RefusalWindow, for at most RefusalPurposes purposes. Nil logs every
	// refusal.
	Once func(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Logger reports refusals that could not be logged; nil discards.
	Logger *slog.Logger
	// ActorNames returns the recipient's names now (its client's display
	// name, its agency's names), stored in each entry so that a rename
	// later does not change what the citizen's log says. Nil stores none.
	ActorNames func(ctx context.Context, a Actor) (*Names, error)

	refusalsOnce sync.Once
	refusals     chan struct{} // bounds the refusals being logged
	pending      sync.WaitGroup
}

// RefusalWindow is how long one logged refusal stands for every later
// refusal of the same actor, citizen and purpose.
const RefusalWindow = time.Hour

// RefusalPurposes bounds the purposes whose refusals are logged per actor
// and citizen in a RefusalWindow: a purpose is any well-formed code the
// agency sends, so coalescing per purpose alone let an agency that varied
// it flood the citizen's log. Refusals of further purposes are not logged.
const RefusalPurposes = 3

// maxRefusalsInFlight bounds the background appends of refusals; beyond it
// refusals are not logged (they are refusals: nothing was released).
const maxRefusalsInFlight = 256

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) lifetime() time.Duration {
	if s.Lifetime > 0 {
		return s.Lifetime
	}
	return 365 * 24 * time.Hour
}

// Grant records what the citizen agreed to, with its evidence, and returns
// the stored record and its receipt. r.CitizenID, ClientID, Purpose, Items,
// Method and Evidence are required.
func (s *Service) Grant(ctx context.Context, r *Record) (*Record, *Receipt, error) {
	if r.CitizenID == "" || r.ClientID == "" || r.Purpose.Code == "" || r.Method == "" {
		return nil, nil, fmt.Errorf("consent grant: citizen, client, purpose and method are required: %w", ErrInvalid)
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	rec := *r
	rec.Items, rec.Declined = slices.Clone(r.Items), slices.Clone(r.Declined)
	rec.Basis = BasisConsent
	rec.GrantedAt, rec.UpdatedAt, rec.ExpiresAt = now, now, now.Add(s.lifetime())
	if rec.ID == "" {
		rec.ID = NewID("cns")
	}
	var receipt *Receipt
	err := s.Store.PutRecord(ctx, &rec, func(stored *Record) (*Receipt, error) {
		var err error
		receipt, err = s.receipt(ctx, stored, ReceiptGranted, now)
		return receipt, err
	})
	if err != nil {
		return nil, nil, err
	}
	return &rec, receipt, nil
}

// Remembered returns the citizen's active record for the client and
// purpose, or nil when there is none. The caller asks again for any item
// the record does not cover (Record.Covers).
func (s *Service) Remembered(ctx context.Context, citizenID, clientID, purpose string) (*Record, error) {
	r, err := s.Store.LiveRecord(ctx, citizenID, clientID, purpose)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !r.Active(s.now()) {
		return nil, nil
	}
	return r, nil
}

// Active returns the record a token or grant was derived from while it may
// still be relied on; ErrWithdrawn once it is withdrawn or expired, and
// ErrNotFound when it never existed.
func (s *Service) Active(ctx context.Context, consentID string) (*Record, error) {
	r, err := s.Store.GetRecord(ctx, "", consentID)
	if err != nil {
		return nil, err
	}
	if !r.Active(s.now()) {
		return r, ErrWithdrawn
	}
	return r, nil
}

// Withdraw ends the citizen's consent: tokens derived from it are denied
// first (so a failure after the denial errs on the side of the citizen),
// then the record is marked and its receipt kept. Withdrawing twice is
// ErrWithdrawn; another citizen's record is ErrNotFound.
func (s *Service) Withdraw(ctx context.Context, citizenID, id string) (*Record, *Receipt, error) {
	if citizenID == "" {
		return nil, nil, fmt.Errorf("consent withdraw: citizen required: %w", ErrInvalid)
	}
	cur, err := s.Store.GetRecord(ctx, citizenID, id)
	if err != nil {
		return nil, nil, err
	}
	if cur.WithdrawnAt != nil {
		return cur, nil, ErrWithdrawn
	}
	if s.Deny != nil {
		if err := s.Deny(ctx, id); err != nil {
			return nil, nil, fmt.Errorf("consent withdraw: deny its tokens: %w", err)
		}
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	var receipt *Receipt
	rec, err := s.Store.WithdrawRecord(ctx, citizenID, id, now, func(stored *Record) (*Receipt, error) {
		var err error
		receipt, err = s.receipt(ctx, stored, ReceiptWithdrawn, now)
		return receipt, err
	})
	if err != nil {
		return nil, nil, err
	}
	return rec, receipt, nil
}

// receipt signs the statement of one grant or withdrawal. The evidence
// itself is not copied into it, only its SHA-256, so a receipt can be
// handed to the recipient without the device's signature.
func (s *Service) receipt(ctx context.Context, r *Record, kind ReceiptKind, at time.Time) (*Receipt, error) {
	if s.Signer == nil {
		return nil, errors.New("consent: no receipt signer configured")
	}
	id := NewID("rcpt")
	sum := sha256.Sum256([]byte(r.Evidence))
	c := map[string]any{
		"iss":   s.Issuer,
		"sub":   r.CitizenID,
		"jti":   id,
		"iat":   at.Unix(),
		"event": string(kind),
		"consent": map[string]any{
			"id":            r.ID,
			"version":       r.Version,
			"recipient":     map[string]any{"client_id": r.ClientID, "agency": r.Agency, "name": r.Recipient},
			"purpose":       r.Purpose,
			"items":         nonNil(r.Items),
			"declined":      nonNil(r.Declined),
			"basis":         r.Basis,
			"notice":        r.Notice,
			"method":        r.Method,
			"evidence_hash": base64.RawURLEncoding.EncodeToString(sum[:]),
			"granted_at":    r.GrantedAt.Unix(),
			"expires_at":    r.ExpiresAt.Unix(),
		},
	}
	if r.WithdrawnAt != nil {
		c["consent"].(map[string]any)["withdrawn_at"] = r.WithdrawnAt.Unix()
	}
	if r.GivenBy != nil {
		// RFC 8693's act: who gave the consent for the citizen.
		c["consent"].(map[string]any)["given_by"] = r.GivenBy
	}
	jws, err := s.Signer.SignJWS(ctx, ReceiptType, c)
	if err != nil {
		return nil, fmt.Errorf("consent: sign receipt: %w", err)
	}
	return &Receipt{ID: id, ConsentID: r.ID, CitizenID: r.CitizenID, Kind: kind, Version: r.Version, JWS: jws, CreatedAt: at}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Request asks for items about a citizen, for a purpose.
type Request struct {
	CitizenID string
	Actor     Actor
	Channel   Channel
	Purpose   string
	Items     []string
	// ConsentID is the record a token was derived from (ID tokens,
	// userinfo); it must be active and cover the items.
	ConsentID string
	// OwnRequest: the citizen is asking for their own data to be used, in
	// the app (form pre-fill); the basis is BasisCitizenRequest.
	OwnRequest bool
	// OnBehalf is the representative who acts for the citizen, when one
	// does (a guardian pre-filling a child's form, a login as a ward): the
	// log entry records them.
	OnBehalf *OnBehalf
}

// Decision is the basis a request was decided on.
type Decision struct {
	Basis     Basis
	ConsentID string
	Law       string
	// BasisID and BasisVersion name the legal basis relied on.
	BasisID      string
	BasisVersion int64
	// Missing names, for a refusal, each item without a basis and why.
	Missing map[string]string
}

// Allowed reports whether every item has a basis.
func (d *Decision) Allowed() bool { return len(d.Missing) == 0 }

// RefusedError is a refused request: which item lacked which basis.
type RefusedError struct{ Missing map[string]string }

func (e *RefusedError) Error() string {
	var parts []string
	for _, it := range slices.Sorted(maps.Keys(e.Missing)) {
		parts = append(parts, it+": "+e.Missing[it])
	}
	return "consent: refused: " + strings.Join(parts, "; ")
}

// Decide finds the basis for a request: the named consent (for tokens), the
// citizen's own request, an active consent of the actor's client for the
// purpose covering every item, or a legal basis registered for the actor's
// agency and purpose covering every item. Nothing is released here.
func (s *Service) Decide(ctx context.Context, req Request) (*Decision, error) {
	if req.CitizenID == "" || len(req.Items) == 0 {
		return nil, fmt.Errorf("consent decide: citizen and items are required: %w", ErrInvalid)
	}
	if req.OwnRequest {
		return &Decision{Basis: BasisCitizenRequest}, nil
	}
	if req.ConsentID != "" {
		r, err := s.Active(ctx, req.ConsentID)
		if errors.Is(err, ErrWithdrawn) || errors.Is(err, ErrNotFound) || (err == nil && r.CitizenID != req.CitizenID) {
			return refuseAll(req.Items, "the consent was withdrawn or has expired"), nil
		}
		if err != nil {
			return nil, err
		}
		return decideOnRecord(r, req.Items), nil
	}
	missing := map[string]string{}
	var rec *Record
	if req.Actor.ClientID != "" {
		r, err := s.Remembered(ctx, req.CitizenID, req.Actor.ClientID, req.Purpose)
		if err != nil {
			return nil, err
		}
		rec = r
	}
	// A consent was given to a client acting for one agency: a client later
	// bound to another agency does not carry it along.
	if rec != nil && rec.Agency != req.Actor.Agency {
		rec = nil
	}
	if rec != nil && rec.Covers(req.Items) {
		return &Decision{Basis: BasisConsent, ConsentID: rec.ID}, nil
	}
	if req.Actor.Agency != "" {
		bases, err := s.Store.LegalBases(ctx, req.Actor.Agency, req.Purpose)
		if err != nil {
			return nil, err
		}
		for _, b := range bases {
			if b.RevokedAt == nil && b.Purpose == req.Purpose && covers(b.Items, req.Items) {
				return &Decision{Basis: b.Basis, Law: b.Law, BasisID: b.ID, BasisVersion: b.Version}, nil
			}
		}
	}
	for _, it := range req.Items {
		if rec != nil && slices.Contains(rec.Items, it) {
			missing[it] = "the citizen's consent covers it, but not every item asked for; no legal basis covers them together"
			continue
		}
		missing[it] = "no consent of the citizen and no legal basis registered for this agency and purpose"
	}
	return &Decision{Missing: missing}, nil
}

func decideOnRecord(r *Record, items []string) *Decision {
	d := &Decision{Basis: BasisConsent, ConsentID: r.ID}
	for _, it := range items {
		if !slices.Contains(r.Items, it) {
			if d.Missing == nil {
				d.Missing = map[string]string{}
			}
			d.Missing[it] = "the citizen did not agree to share it"
		}
	}
	return d
}

func refuseAll(items []string, why string) *Decision {
	d := &Decision{Missing: map[string]string{}}
	for _, it := range items {
		d.Missing[it] = why
	}
	return d
}

func covers(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// Log appends the entry for a release that is about to happen. The caller
// releases nothing when it fails: no release without its entry. A release
// under a consent fails with *RefusedError when the consent no longer
// allows it (LogStore.AppendRelease).
func (s *Service) Log(ctx context.Context, req Request, d *Decision, outcome Outcome) (*Entry, error) {
	e, err := s.entry(ctx, req, d, outcome)
	if err != nil {
		return nil, err
	}
	// A release under a consent is appended with AppendRelease, as the
	// broker's: the consent is rechecked under a row lock in the append's
	// transaction, so a withdrawal committed since the caller's check
	// refuses it (*RefusedError) rather than the data leaving after it.
	appendEntry := s.Store.Append
	if outcome == OutcomeReleased && e.Basis == BasisConsent && e.ConsentID != "" {
		appendEntry = s.Store.AppendRelease
	}
	if err := appendEntry(ctx, e); err != nil {
		return nil, err
	}
	return e, nil
}

// entry builds the log entry of a decided request.
func (s *Service) entry(ctx context.Context, req Request, d *Decision, outcome Outcome) (*Entry, error) {
	e := &Entry{ID: NewID("log"), CitizenID: req.CitizenID, At: s.now().UTC(), Actor: req.Actor, Channel: req.Channel,
		Items: slices.Clone(req.Items), Purpose: req.Purpose, Outcome: outcome, OnBehalf: req.OnBehalf}
	if d != nil {
		e.Basis, e.ConsentID, e.Law, e.BasisID, e.BasisVersion = d.Basis, d.ConsentID, d.Law, d.BasisID, d.BasisVersion
		if !d.Allowed() {
			e.Reason = (&RefusedError{Missing: d.Missing}).Error()
		}
	}
	if s.ActorNames != nil && (req.Actor.Agency != "" || req.Actor.ClientID != "") {
		n, err := s.ActorNames(ctx, req.Actor)
		if err != nil {
			return nil, fmt.Errorf("consent log: name the recipient: %w", err)
		}
		if n != nil && *n != (Names{}) {
			e.Names = n
		}
	}
	return e, nil
}

// Fetch is the data broker: it decides the request, reads the allowed
// items from the register, appends the log entry and only then returns the
// data. A refusal is returned as *RefusedError at once and logged in the
// background (logRefusal). The entry is appended with AppendRelease: a
// basis revoked or amended, or a consent withdrawn, while the register
// was being read refuses the request then, and what was read is dropped.
func (s *Service) Fetch(ctx context.Context, reg Registry, req Request) (map[string]Value, *Entry, error) {
	d, err := s.Decide(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	if !d.Allowed() {
		s.logRefusal(ctx, req, d)
		return nil, nil, &RefusedError{Missing: d.Missing}
	}
	vals, err := reg.Read(ctx, req.CitizenID, req.Items)
	if err != nil {
		return nil, nil, err
	}
	e, err := s.entry(ctx, req, d, OutcomeReleased)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Store.AppendRelease(ctx, e); err != nil {
		var refused *RefusedError
		if errors.As(err, &refused) {
			s.logRefusal(ctx, req, &Decision{Missing: refused.Missing})
		}
		return nil, nil, err
	}
	return vals, e, nil
}

// logRefusal appends a refused request to the citizen's log after the
// answer has gone, and at most once per RefusalWindow for the same actor,
// citizen and purpose, for RefusalPurposes purposes at most. Off the request path, a refusal about a registered
// citizen costs what one about an unknown personal id costs, so the
// answer's timing does not tell an agency who is registered; and an agency
// cannot flood a citizen's log with refusals.
func (s *Service) logRefusal(ctx context.Context, req Request, d *Decision) {
	s.refusalsOnce.Do(func() { s.refusals = make(chan struct{}, maxRefusalsInFlight) })
	select {
	case s.refusals <- struct{}{}:
	default:
		s.warn("refusal not logged: too many in flight")
		return
	}
	s.pending.Add(1)
	go func() {
		defer func() { <-s.refusals; s.pending.Done() }()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if s.Once != nil {
			first, err := s.firstRefusal(ctx, req)
			if err != nil {
				s.warn("refusal not logged", "err", err)
				return
			}
			if !first {
				return
			}
		}
		if _, err := s.Log(ctx, req, d, OutcomeRefused); err != nil {
			s.warn("refusal not logged", "err", err)
		}
	}()
}

// firstRefusal reports whether a refusal is the first of its actor,
// citizen and purpose in the window and takes one of the actor and
// citizen's RefusalPurposes slots for it.
func (s *Service) firstRefusal(ctx context.Context, req Request) (bool, error) {
	key := func(parts ...string) string {
		sum := sha256.Sum256([]byte(strings.Join(append([]string{req.CitizenID, req.Actor.Agency, req.Actor.ClientID}, parts...), "\x00")))
		return "consent:refused:" + base64.RawURLEncoding.EncodeToString(sum[:16])
	}
	first, err := s.Once(ctx, key(req.Purpose), RefusalWindow)
	if err != nil || !first {
		return false, err
	}
	for i := range RefusalPurposes {
		// "\x01" keeps a slot's key apart from any purpose's.
		if first, err := s.Once(ctx, key("\x01slot", strconv.Itoa(i)), RefusalWindow); err != nil || first {
			return first, err
		}
	}
	return false, nil
}

// Drain waits for the refusals being logged; a server calls it on the way
// out, tests before they read the log.
func (s *Service) Drain() { s.pending.Wait() }

func (s *Service) warn(msg string, args ...any) {
	if s.Logger != nil {
		s.Logger.Warn("consent: "+msg, args...)
	}
}
