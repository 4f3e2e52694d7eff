package eid

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
)

// Activation codes: 10 characters from an alphabet without 0/O, 1/I, shown
// as XXXXX-XXXXX. 32 symbols give 50 bits; with a handful of attempts per
// code, guessing is hopeless.
const (
	codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	codeLen      = 10
	// MaxDeviceName is the longest device name, in characters.
	MaxDeviceName     = 64
	defaultDeviceName = "eID app"
	// MaxDeviceModel is the longest model an app may declare, in characters.
	MaxDeviceModel = 64
	// MaxPlatform is the longest platform token, in bytes.
	MaxPlatform = 16
	// LastUsedEvery is the resolution of a device's last use: an approval
	// or grant within it of the recorded one writes nothing.
	LastUsedEvery = time.Minute
)

// Activate issues a one-time activation code after identity proofing at the
// given level (substantial or high), replacing any previous one. Only a keyed
// hash of the code is stored. idp.ErrNotFound when no citizen has personalID.
func (s *Service) Activate(ctx context.Context, personalID string, level idp.Level) (code string, expiresAt time.Time, err error) {
	if level != idp.LevelSubstantial && level != idp.LevelHigh {
		return "", time.Time{}, fmt.Errorf("activation level must be substantial or high: %w", idp.ErrInvalid)
	}
	if !idp.ValidPersonalID(personalID) {
		return "", time.Time{}, fmt.Errorf("personal id must be 12 digits: %w", idp.ErrInvalid)
	}
	c, err := s.store.GetCitizenByPersonalID(ctx, personalID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("activate: %w", err)
	}
	raw := make([]byte, codeLen)
	if _, err := io.ReadFull(s.cfg.Rand, raw); err != nil {
		return "", time.Time{}, fmt.Errorf("activation code: %w", err)
	}
	for i, b := range raw {
		raw[i] = codeAlphabet[int(b)%len(codeAlphabet)] // 256 is a multiple of 32: uniform
	}
	now := s.now()
	a := &idp.Activation{
		CitizenID: c.ID,
		CodeHash:  s.codeHash(c.ID, string(raw)),
		Level:     level,
		ExpiresAt: now.Add(s.cfg.ActivationTTL),
		CreatedAt: now,
	}
	if err := s.store.PutActivation(ctx, a); err != nil {
		return "", time.Time{}, fmt.Errorf("activate: %w", err)
	}
	return string(raw[:5]) + "-" + string(raw[5:]), a.ExpiresAt, nil
}

// codeHash binds the code to the citizen, so equal codes of two citizens
// never share a hash.
func (s *Service) codeHash(citizenID, code string) []byte {
	if s.codeHashed != nil {
		s.codeHashed()
	}
	m := hmac.New(sha256.New, s.cfg.CodeKey)
	m.Write([]byte("onedoor eid activation\x00" + citizenID + "\x00" + code))
	return m.Sum(nil)
}

// normalizeCode accepts what a person types: any case, dashes and spaces.
func normalizeCode(code string) string {
	code = strings.ToUpper(code)
	return strings.Map(func(r rune) rune {
		if r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return r
	}, code)
}

// EnrollRequest is what an eID app sends to enroll; the JSON names are the
// wire format of POST /eid/v1/enrollments.
type EnrollRequest struct {
	PersonalID     string          `json:"personal_id"`
	ActivationCode string          `json:"activation_code"`
	PublicKey      json.RawMessage `json:"public_key"` // EC P-256 public JWK
	DeviceName     string          `json:"device_name"`
	// Platform and Model are what the app declares about itself (such as
	// "android" and "Pixel 9"), shown to the citizen beside the name and
	// never trusted for anything else. Both optional.
	Platform string `json:"platform,omitempty"`
	Model    string `json:"model,omitempty"`
}

// noCitizen is the citizen id an enrollment for an unknown personal id works
// against: no citizen, hence no activation, has the empty id.
const noCitizen = ""

// errRefused marks an activation check that failed inside UpdateActivation.
var errRefused = errors.New("activation refused")

// Enroll binds a device key to the citizen whose activation code it presents.
// Every refusal is ErrEnrollmentFailed: malformed keys and names are
// described (they are checked before any lookup, so they reveal nothing),
// while unknown, wrong, used, expired and locked codes all get the bare
// sentinel. Store failures (idp.ErrUnavailable) are returned as they are.
func (s *Service) Enroll(ctx context.Context, r EnrollRequest) (*idp.Device, error) {
	pub, err := parseDeviceKey(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public key: %v: %w", err, ErrEnrollmentFailed)
	}
	name, err := deviceName(r.DeviceName)
	if err != nil {
		return nil, fmt.Errorf("device name: %v: %w", err, ErrEnrollmentFailed)
	}
	if !ValidPlatform(r.Platform) {
		return nil, fmt.Errorf("platform: at most %d lower-case letters and digits, starting with a letter: %w", MaxPlatform, ErrEnrollmentFailed)
	}
	model, err := displayText(r.Model, MaxDeviceModel)
	if err != nil {
		return nil, fmt.Errorf("model: %v: %w", err, ErrEnrollmentFailed)
	}
	code := normalizeCode(r.ActivationCode)
	if !idp.ValidPersonalID(r.PersonalID) {
		return nil, ErrEnrollmentFailed
	}
	// A personal id that no citizen has costs what a wrong code costs: the
	// same store calls and the same hash, against a citizen id no record
	// has, so neither the answer nor the time says whether it exists.
	c, err := s.store.GetCitizenByPersonalID(ctx, r.PersonalID)
	citizenID := noCitizen
	switch {
	case err == nil:
		citizenID = c.ID
	case !errors.Is(err, idp.ErrNotFound):
		return nil, err
	}
	hash := s.codeHash(citizenID, code)
	now := s.now()
	var level idp.Level
	err = s.store.UpdateActivation(ctx, citizenID, func(a *idp.Activation) error {
		if c == nil || a.UsedAt != nil || !now.Before(a.ExpiresAt) || a.Attempts >= s.cfg.MaxActivationAttempts {
			return errRefused
		}
		a.Attempts++ // stored even when the code is wrong
		if !hmac.Equal(hash, a.CodeHash) {
			return errRefused
		}
		a.UsedAt = &now
		level = a.Level
		return nil
	})
	if errors.Is(err, errRefused) {
		return nil, ErrEnrollmentFailed
	}
	if err != nil {
		return nil, mapNotFound(err, ErrEnrollmentFailed)
	}
	if c == nil { // unreachable: no activation has the empty citizen id
		return nil, ErrEnrollmentFailed
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	key, err := canonicalKey(pub, id)
	if err != nil {
		return nil, err
	}
	d := &idp.Device{ID: id, CitizenID: c.ID, Name: name, Platform: r.Platform, Model: model, PublicKey: key, Level: level, CreatedAt: now}
	// The code is spent already: a failure here needs a new code from the desk,
	// but a code can never enroll two devices.
	if err := s.store.CreateDevice(ctx, d); err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	return d, nil
}

func deviceName(n string) (string, error) {
	n, err := displayText(n, MaxDeviceName)
	if n == "" && err == nil {
		return defaultDeviceName, nil
	}
	return n, err
}

// displayText checks text an app declares for display: trimmed, at most
// limit characters of UTF-8, no control or format characters.
func displayText(n string, limit int) (string, error) {
	n = strings.TrimSpace(n)
	if !utf8.ValidString(n) || utf8.RuneCountInString(n) > limit {
		return "", fmt.Errorf("at most %d characters of UTF-8", limit)
	}
	for _, r := range n {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) { // Cf: bidi overrides and other invisible format marks
			return "", errors.New("no control or format characters")
		}
	}
	return n, nil
}

// ValidPlatform reports whether p may be stored as a device's platform:
// empty (not declared) or a token of lower-case ASCII letters and digits
// starting with a letter, at most MaxPlatform bytes ("android", "ios",
// "web", "linux").
func ValidPlatform(p string) bool {
	if len(p) > MaxPlatform {
		return false
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !('a' <= c && c <= 'z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// used records that dev approved or signed something now, at most once per
// LastUsedEvery: a device read within it writes nothing. Best effort: what
// the device did stands even when the store cannot record it, and its next
// use records it.
func (s *Service) used(ctx context.Context, dev *idp.Device) {
	now := s.now()
	if dev.LastUsedAt != nil && now.Sub(*dev.LastUsedAt) < LastUsedEvery {
		return
	}
	if ok, err := s.store.TouchDevice(ctx, dev.ID, now, LastUsedEvery); err == nil && ok {
		dev.LastUsedAt = &now
	}
}

// AuthenticateDevice verifies a device token (typ eid-device+jwt, ES256,
// kid = iss = device ID, aud = audience, lifetime ≤ 2 minutes) and spends
// its jti, so a token works once. Refusals wrap ErrDeviceAuth; store
// failures are returned as they are.
func (s *Service) AuthenticateDevice(ctx context.Context, token string, audience string) (*idp.Device, error) {
	var c DeviceClaims
	dev, err := s.verifier.Verify(token, TypeDeviceToken, audience, func(kid string) (*idp.Device, error) {
		return s.store.GetDevice(ctx, kid)
	}, &c)
	if err != nil {
		return nil, rekind(err, ErrDeviceAuth)
	}
	if c.ID == "" || len(c.ID) > maxJTILen {
		return nil, rekind(refuse("jti required, at most %d bytes", maxJTILen), ErrDeviceAuth)
	}
	// Keep the jti as long as the token could still pass the exp check.
	ttl := c.ExpiresAt.Add(s.cfg.Skew).Sub(s.now())
	ttl = max(ttl, time.Second)
	if err := s.eph.Create(ctx, "eid:jti:"+dev.ID+":"+c.ID, []byte{1}, ttl); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return nil, rekind(refuse("token replayed"), ErrDeviceAuth)
		}
		return nil, fmt.Errorf("device token replay check: %w", err)
	}
	return dev, nil
}

// Devices lists a citizen's devices, revoked ones included.
func (s *Service) Devices(ctx context.Context, citizenID string) ([]*idp.Device, error) {
	ds, err := s.store.ListDevices(ctx, citizenID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return ds, nil
}

// RevokeDevice revokes one of the citizen's devices. A device of another
// citizen is idp.ErrNotFound, like an absent one.
func (s *Service) RevokeDevice(ctx context.Context, citizenID, deviceID string) error {
	if !validID(deviceID) {
		return fmt.Errorf("device: %w", idp.ErrNotFound)
	}
	d, err := s.store.GetDevice(ctx, deviceID)
	if err != nil {
		return fmt.Errorf("revoke device: %w", err)
	}
	if d.CitizenID != citizenID {
		return fmt.Errorf("device: %w", idp.ErrNotFound)
	}
	return s.revokeDerived(ctx, deviceID)
}

// RevokeDeviceFrom is RevokeDevice asked by one of the citizen's own devices
// (a lost phone revoked from another). A device may revoke itself or a device
// enrolled at its level or below, never a higher one: a stolen
// lower-assurance phone cannot shut the citizen's better-proven phone out
// before it is reported (that takes an operator).
func (s *Service) RevokeDeviceFrom(ctx context.Context, by *idp.Device, deviceID string) error {
	if by == nil {
		return fmt.Errorf("device: %w", idp.ErrNotFound)
	}
	if deviceID != by.ID && validID(deviceID) {
		d, err := s.store.GetDevice(ctx, deviceID)
		if err != nil {
			return fmt.Errorf("revoke device: %w", err)
		}
		if d.CitizenID == by.CitizenID && d.Level.Rank() > by.Level.Rank() {
			return fmt.Errorf("revoke a device enrolled at %s from one at %s: %w", d.Level, by.Level, ErrLevelTooLow)
		}
	}
	return s.RevokeDevice(ctx, by.CitizenID, deviceID)
}

// revokeDerived revokes a device and everything derived from it: the device
// row first, so it can mint and approve nothing more; then the refresh-token
// families it approved or holds; then its access tokens (the did deny list);
// then what other areas derived (OnRevoke: push installations).
// Every step is idempotent, so a caller that got an outage retries the whole
// revocation and completes it.
func (s *Service) revokeDerived(ctx context.Context, deviceID string) error {
	if err := s.store.RevokeDevice(ctx, deviceID, s.now()); err != nil {
		return fmt.Errorf("revoke device: %w", err)
	}
	if err := s.store.RevokeDeviceRefreshTokens(ctx, deviceID); err != nil {
		return fmt.Errorf("revoke the device's refresh tokens: %w", err)
	}
	if err := accesstoken.DenyDevice(ctx, s.store, deviceID, s.now()); err != nil {
		return fmt.Errorf("deny the device's access tokens: %w", err)
	}
	if s.cfg.OnRevoke != nil {
		if err := s.cfg.OnRevoke(ctx, deviceID); err != nil {
			return fmt.Errorf("revoke what derives from the device: %w", err)
		}
	}
	return nil
}

// ActiveDevice returns the device when it exists and is not revoked;
// otherwise an error wrapping idp.ErrNotFound. Sessions and pending logins
// that a device approved end with the device.
func (s *Service) ActiveDevice(ctx context.Context, deviceID string) (*idp.Device, error) {
	d, err := s.store.GetDevice(ctx, deviceID)
	if err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	if d.RevokedAt != nil {
		return nil, fmt.Errorf("device revoked: %w", idp.ErrNotFound)
	}
	return d, nil
}
