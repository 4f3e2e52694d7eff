// Package passkey wraps go-webauthn for OneDoor's passkeys: registration from
// the account page and discoverable login with user verification required.
// The relying party comes from the issuer URL (RP ID = its host, origin = its
// scheme and host). Ceremony state lives in idp.Ephemeral for at most two
// minutes under a key derived from a handle the caller keeps in the browser
// (a cookie), and is taken atomically: a challenge answers once.
package passkey

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/onedoor/onedoor/idp"
)

// CeremonyTTL is how long a challenge may be answered.
const CeremonyTTL = 2 * time.Minute

// MaxResponse bounds a ceremony response (the JSON the page posts).
const MaxResponse = 64 << 10

// Errors of the ceremonies. Each wraps an idp sentinel.
var (
	// ErrNoCeremony: the ceremony is unknown, used or expired.
	ErrNoCeremony = fmt.Errorf("passkey ceremony unknown, used or expired: %w", idp.ErrNotFound)
	// ErrRefused: the response failed verification (origin, RP ID, flags,
	// signature, format) or names no registered passkey.
	ErrRefused = fmt.Errorf("passkey response refused: %w", idp.ErrInvalid)
	// ErrCloned: the signature counter did not advance (a cloned
	// authenticator, or the same assertion twice).
	ErrCloned = fmt.Errorf("passkey signature counter did not advance: %w", idp.ErrConflict)
	// ErrDuplicate: the credential is already registered.
	ErrDuplicate = fmt.Errorf("passkey already registered: %w", idp.ErrConflict)
)

// Config configures the relying party.
type Config struct {
	Issuer      string
	DisplayName string
	Store       idp.PasskeyStore
	Ephemeral   idp.Ephemeral
	Now         func() time.Time
}

// RP runs the ceremonies.
type RP struct {
	wa    *webauthn.WebAuthn
	store idp.PasskeyStore
	eph   idp.Ephemeral
	now   func() time.Time
}

// New derives the relying party from the issuer.
func New(cfg Config) (*RP, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Hostname() == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("passkey: issuer %q is not an http(s) URL: %w", cfg.Issuer, idp.ErrInvalid)
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = "OneDoor"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  u.Hostname(),
		RPDisplayName:         cfg.DisplayName,
		RPOrigins:             []string{u.Scheme + "://" + u.Host},
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationRequired,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return &RP{wa: wa, store: cfg.Store, eph: cfg.Ephemeral, now: cfg.Now}, nil
}

// RPID is the relying party id (the issuer's host).
func (rp *RP) RPID() string { return rp.wa.Config.RPID }

// state is what a ceremony keeps between begin and finish.
type state struct {
	Session   webauthn.SessionData `json:"s"`
	CitizenID string               `json:"c,omitempty"`
	Level     idp.Level            `json:"l,omitempty"`
	Bind      []byte               `json:"b,omitempty"`
}

func ceremonyKey(kind, handle string) string {
	h := sha256.Sum256([]byte(handle))
	return "passkey:" + kind + ":" + base64.RawURLEncoding.EncodeToString(h[:])
}

func (rp *RP) save(ctx context.Context, kind, handle string, st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := rp.eph.Create(ctx, ceremonyKey(kind, handle), b, CeremonyTTL); err != nil {
		return fmt.Errorf("save passkey ceremony: %w", err)
	}
	return nil
}

// take removes and returns the ceremony: of concurrent finishes one only
// gets it.
func (rp *RP) take(ctx context.Context, kind, handle string) (*state, error) {
	if handle == "" {
		return nil, ErrNoCeremony
	}
	b, err := rp.eph.Take(ctx, ceremonyKey(kind, handle))
	if errors.Is(err, idp.ErrNotFound) {
		return nil, ErrNoCeremony
	}
	if err != nil {
		return nil, fmt.Errorf("take passkey ceremony: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, ErrNoCeremony
	}
	return &st, nil
}

// user adapts a citizen to webauthn.User.
type user struct {
	handle []byte
	name   string
	creds  []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.handle }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

func credential(p *idp.Passkey) webauthn.Credential {
	c := webauthn.Credential{ID: p.CredentialID, PublicKey: p.PublicKey, AttestationType: "none", AttestationFormat: "none",
		Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: true, BackupEligible: p.BackupEligible},
		Authenticator: webauthn.Authenticator{AAGUID: p.AAGUID, SignCount: p.SignCount}}
	for _, t := range p.Transports {
		c.Transport = append(c.Transport, protocol.AuthenticatorTransport(t))
	}
	return c
}

// BeginRegistration starts adding a passkey for the citizen, whose session
// is at level; name is what the authenticator shows (never the personal
// ID). It returns the options for navigator.credentials.create.
func (rp *RP) BeginRegistration(ctx context.Context, handle, citizenID, name string, level idp.Level) ([]byte, error) {
	uh := make([]byte, 32)
	_, _ = rand.Read(uh)
	uh, err := rp.store.PasskeyUserHandle(ctx, citizenID, uh)
	if err != nil {
		return nil, fmt.Errorf("passkey user handle: %w", err)
	}
	existing, err := rp.store.ListPasskeys(ctx, citizenID)
	if err != nil {
		return nil, fmt.Errorf("list passkeys: %w", err)
	}
	u := &user{handle: uh, name: name}
	var exclude []protocol.CredentialDescriptor
	for _, p := range existing {
		c := credential(p)
		exclude = append(exclude, c.Descriptor())
	}
	opts, sess, err := rp.wa.BeginRegistration(u, webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirementRequired))
	if err != nil {
		return nil, fmt.Errorf("begin registration: %w", err)
	}
	if err := rp.save(ctx, "reg", handle, &state{Session: *sess, CitizenID: citizenID, Level: idp.PasskeyLevel(level)}); err != nil {
		return nil, err
	}
	return json.Marshal(opts)
}

// ParseRegistration parses a registration response as posted by the page.
func ParseRegistration(body []byte) (*protocol.ParsedCredentialCreationData, error) {
	if len(body) == 0 || len(body) > MaxResponse {
		return nil, ErrRefused
	}
	p, err := protocol.ParseCredentialCreationResponseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrRefused, reason(err))
	}
	return p, nil
}

// ParseAssertion parses an assertion response as posted by the page.
func ParseAssertion(body []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if len(body) == 0 || len(body) > MaxResponse {
		return nil, ErrRefused
	}
	p, err := protocol.ParseCredentialRequestResponseBytes(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrRefused, reason(err))
	}
	return p, nil
}

// reason is a loggable cause: go-webauthn's details, never the input.
func reason(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Type + ": " + pe.Details
	}
	return "invalid"
}

// FinishRegistration verifies the response to the citizen's registration
// ceremony and stores the passkey under name. The ceremony is taken first,
// so whatever the outcome its challenge is spent.
func (rp *RP) FinishRegistration(ctx context.Context, handle, citizenID string, body []byte, name string) (*idp.Passkey, error) {
	st, err := rp.take(ctx, "reg", handle)
	if err != nil {
		return nil, err
	}
	if st.CitizenID != citizenID {
		return nil, ErrNoCeremony
	}
	parsed, err := ParseRegistration(body)
	if err != nil {
		return nil, err
	}
	uh, err := rp.store.PasskeyUserHandle(ctx, citizenID, st.Session.UserID)
	if err != nil {
		return nil, fmt.Errorf("passkey user handle: %w", err)
	}
	cred, err := rp.wa.CreateCredential(&user{handle: uh}, st.Session, parsed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrRefused, reason(err))
	}
	p := &idp.Passkey{ID: "pk_" + randomID(), CitizenID: citizenID, CredentialID: cred.ID, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID, BackupEligible: cred.Flags.BackupEligible,
		Level: st.Level, Name: name, CreatedAt: rp.now().UTC().Truncate(time.Millisecond)}
	for _, t := range cred.Transport {
		p.Transports = append(p.Transports, string(t))
	}
	if err := rp.store.CreatePasskey(ctx, p); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return nil, ErrDuplicate
		}
		return nil, fmt.Errorf("store passkey: %w", err)
	}
	return p, nil
}

// BeginLogin starts a discoverable login (no user named, so the options
// reveal nothing about who has passkeys). bind is kept with the ceremony
// and returned by FinishLogin: the caller's login request.
func (rp *RP) BeginLogin(ctx context.Context, handle string, bind []byte) ([]byte, error) {
	opts, sess, err := rp.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("begin login: %w", err)
	}
	if err := rp.save(ctx, "login", handle, &state{Session: *sess, Bind: bind}); err != nil {
		return nil, err
	}
	return json.Marshal(opts)
}

// FinishLogin verifies an assertion for the ceremony behind handle and
// records the use. It returns the passkey and the ceremony's bind; with
// ErrCloned, the passkey whose counter did not advance. The ceremony's
// expiry is the ephemeral entry's TTL and go-webauthn's own check.
func (rp *RP) FinishLogin(ctx context.Context, handle string, body []byte) (*idp.Passkey, []byte, error) {
	st, err := rp.take(ctx, "login", handle)
	if err != nil {
		return nil, nil, err
	}
	parsed, err := ParseAssertion(body)
	if err != nil {
		return nil, nil, err
	}
	p, err := rp.Verify(ctx, &st.Session, parsed)
	if err != nil {
		return p, nil, err // p is set with ErrCloned, for the log
	}
	return p, st.Bind, nil
}

// Verify checks a parsed assertion against a login session and advances
// the passkey's counter.
func (rp *RP) Verify(ctx context.Context, sess *webauthn.SessionData, parsed *protocol.ParsedCredentialAssertionData) (*idp.Passkey, error) {
	var (
		found  *idp.Passkey
		lookup error
	)
	handler := func(rawID, userHandle []byte) (webauthn.User, error) {
		p, err := rp.store.GetPasskeyByCredentialID(ctx, rawID)
		if err != nil {
			lookup = err
			return nil, err
		}
		citizen, err := rp.store.CitizenByUserHandle(ctx, userHandle)
		if err != nil {
			lookup = err
			return nil, err
		}
		if citizen != p.CitizenID {
			return nil, errors.New("user handle of another citizen")
		}
		found = p
		return &user{handle: bytes.Clone(userHandle), creds: []webauthn.Credential{credential(p)}}, nil
	}
	_, _, err := rp.wa.ValidatePasskeyLogin(handler, *sess, parsed)
	if lookup != nil && !errors.Is(lookup, idp.ErrNotFound) {
		return nil, fmt.Errorf("passkey lookup: %w", lookup) // an outage, not a refusal
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrRefused, reason(err))
	}
	count := parsed.Response.AuthenticatorData.Counter
	if err := rp.store.UsePasskey(ctx, found.ID, count, rp.now()); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return found, ErrCloned
		}
		if errors.Is(err, idp.ErrNotFound) {
			return nil, ErrRefused
		}
		return nil, fmt.Errorf("record passkey use: %w", err)
	}
	found.SignCount = count
	return found, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
