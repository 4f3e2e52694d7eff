// Package eid is the identity provider's side of the national eID app:
// activation codes from identity proofing, device enrollment, device-signed
// tokens and QR-code logins approved on the citizen's phone. It speaks no
// HTTP; idp/web maps its errors and types onto the wire.
package eid

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// Errors callers tell apart with errors.Is. All wrap idp.ErrInvalid.
var (
	// ErrEnrollmentFailed is the one answer to every refused enrollment, so a
	// caller learns nothing about whether a personal ID exists.
	ErrEnrollmentFailed = fmt.Errorf("enrollment failed: %w", idp.ErrInvalid)
	// ErrDeviceAuth means a device token or the device itself was refused.
	ErrDeviceAuth = fmt.Errorf("device authentication failed: %w", idp.ErrInvalid)
	// ErrLevelTooLow means the device's level of assurance is below the one the
	// login request requires.
	ErrLevelTooLow = fmt.Errorf("device level of assurance too low: %w", idp.ErrInvalid)
)

// Store is the part of the durable store eid uses.
type Store interface {
	GetCitizenByPersonalID(ctx context.Context, personalID string) (*idp.Citizen, error)
	PutActivation(ctx context.Context, a *idp.Activation) error
	UpdateActivation(ctx context.Context, citizenID string, fn func(a *idp.Activation) error) error
	CreateDevice(ctx context.Context, d *idp.Device) error
	GetDevice(ctx context.Context, id string) (*idp.Device, error)
	ListDevices(ctx context.Context, citizenID string) ([]*idp.Device, error)
	RevokeDevice(ctx context.Context, id string, at time.Time) error
	TouchDevice(ctx context.Context, id string, at time.Time, every time.Duration) (bool, error)
	// What a device approved or holds, revoked with it.
	RevokeDeviceRefreshTokens(ctx context.Context, deviceID string) error
	idp.RevocationStore
}

var _ Store = idp.Store(nil)

// Config configures a Service. Zero values take the documented defaults.
type Config struct {
	Issuer                string           // IdP issuer URL; audience of device tokens and approvals
	CodeKey               []byte           // HMAC key for activation codes, at least 32 bytes
	Now                   func() time.Time // default time.Now
	Rand                  io.Reader        // default crypto/rand.Reader
	ActivationTTL         time.Duration    // default 15m
	MaxActivationAttempts int              // default 5
	LoginTTL              time.Duration    // default 2m, at most 2m
	Skew                  time.Duration    // default 30s clock skew allowed for device JWTs
	// OnRevoke, when set, revokes what other areas derived from a device
	// (its push installations). It runs last in every revocation and must
	// be idempotent: a revocation that failed is retried whole.
	OnRevoke func(ctx context.Context, deviceID string) error
	// Wakeups tells the login page's waiters, on every replica, that a
	// login was decided; default an in-process idp.LocalWakeups.
	Wakeups idp.Wakeups
}

// Limits of the configuration.
const (
	MaxLoginTTL   = 2 * time.Minute
	maxSkew       = 5 * time.Minute
	minCodeKeyLen = 32
)

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.ActivationTTL == 0 {
		c.ActivationTTL = 15 * time.Minute
	}
	if c.MaxActivationAttempts == 0 {
		c.MaxActivationAttempts = 5
	}
	if c.LoginTTL == 0 {
		c.LoginTTL = MaxLoginTTL
	}
	if c.Skew == 0 {
		c.Skew = 30 * time.Second
	}
	if c.Wakeups == nil {
		c.Wakeups = &idp.LocalWakeups{}
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	return c
}

// Validate reports every problem with the configuration at once. Zero values
// are valid: they take the defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var probs []string
	if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		probs = append(probs, "issuer must be an absolute http(s) URL")
	}
	if len(c.CodeKey) < minCodeKeyLen {
		probs = append(probs, fmt.Sprintf("code key must be at least %d bytes", minCodeKeyLen))
	}
	if c.ActivationTTL < 0 {
		probs = append(probs, "activation TTL must be positive")
	}
	if c.MaxActivationAttempts < 0 {
		probs = append(probs, "max activation attempts must be positive")
	}
	if c.LoginTTL < 0 || c.LoginTTL > MaxLoginTTL {
		probs = append(probs, fmt.Sprintf("login TTL must be positive and at most %s", MaxLoginTTL))
	}
	if c.Skew < 0 || c.Skew > maxSkew {
		probs = append(probs, fmt.Sprintf("skew must be positive and at most %s", maxSkew))
	}
	if len(probs) > 0 {
		return fmt.Errorf("eid config: %s: %w", strings.Join(probs, "; "), idp.ErrInvalid)
	}
	return nil
}

// Service runs activations, enrollments, device authentication and eID
// logins. It is safe for concurrent use; all state lives in the stores.
type Service struct {
	store    Store
	eph      idp.Ephemeral
	cfg      Config
	verifier Verifier
	// codeHashed, when set (by tests), is called on every activation-code
	// hash, so a test can count them.
	codeHashed func()
}

// New returns a Service. It panics when cfg is invalid: call cfg.Validate at
// startup to report the problems instead.
func New(store Store, eph idp.Ephemeral, cfg Config) *Service {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	return &Service{
		store:    store,
		eph:      eph,
		cfg:      cfg,
		verifier: Verifier{Now: cfg.Now, Skew: cfg.Skew},
	}
}

// Verifier returns the verifier the service uses for device-signed tokens.
func (s *Service) Verifier() Verifier { return s.verifier }

func (s *Service) now() time.Time { return s.cfg.Now() }

// newID returns 128 random bits, base64url without padding (22 characters).
func (s *Service) newID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// validID reports whether s looks like an ID from newID, so malformed input
// never reaches a store key or a log line.
func validID(s string) bool {
	if len(s) != 22 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isB64URL(s[i]) {
			return false
		}
	}
	return true
}

func isB64URL(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// mapNotFound maps a store's ErrNotFound onto outcome, leaving every other error
// (ErrUnavailable above all) as it is.
func mapNotFound(err, outcome error) error {
	if errors.Is(err, idp.ErrNotFound) {
		return outcome
	}
	return err
}
