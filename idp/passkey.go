package idp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// PasskeyAuthenticator is how a passkey is named where an eID device id
// would be: in a session, an access token's did, a refresh family. What a
// passkey login yields is then revoked with the passkey, by the same deny
// list and family revocation as a device's.
func PasskeyAuthenticator(passkeyID string) string { return passkeyAuthPrefix + passkeyID }

// PasskeyOfAuthenticator returns the passkey id an authenticator id names,
// and whether it names one.
func PasskeyOfAuthenticator(id string) (string, bool) {
	return strings.CutPrefix(id, passkeyAuthPrefix)
}

const passkeyAuthPrefix = "passkey:"

// Passkey is a WebAuthn discoverable credential a citizen registered from
// the account page after an eID-app login. A passkey login reaches at most
// LevelSubstantial, and never more than the session it was added from.
type Passkey struct {
	ID           string // opaque record id (pk_...), used in account page URLs
	CitizenID    string
	CredentialID []byte // the authenticator's credential id; unique
	PublicKey    []byte // COSE public key
	SignCount    uint32
	AAGUID       []byte
	// BackupEligible is the BE flag seen at registration: an assertion that
	// changes it is refused (WebAuthn section 6.1.3).
	BackupEligible bool
	Transports     []string
	Level          Level
	Name           string
	CreatedAt      time.Time
	LastUsedAt     *time.Time
}

// MaxPasskeyName bounds a passkey's name in bytes.
const MaxPasskeyName = 64

// CleanPasskeyName trims a name the citizen typed and checks it is short
// printable text; it ends up in pages and is escaped there.
func CleanPasskeyName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxPasskeyName || !utf8.ValidString(s) || !cleanText(s) {
		return "", fmt.Errorf("passkey name must be 1 to %d bytes of text: %w", MaxPasskeyName, ErrInvalid)
	}
	return s, nil
}

// PasskeyLevel is the level a passkey added from a session at level l
// reaches: that level, capped at substantial.
func PasskeyLevel(l Level) Level {
	if l.Rank() > LevelSubstantial.Rank() {
		return LevelSubstantial
	}
	return l
}

// PasskeyStore keeps the citizens' passkeys and their WebAuthn user handles.
type PasskeyStore interface {
	// PasskeyUserHandle returns the citizen's WebAuthn user handle, storing
	// handle as it when the citizen has none yet. The handle is random and
	// opaque: never the personal ID.
	PasskeyUserHandle(ctx context.Context, citizenID string, handle []byte) ([]byte, error)
	// CitizenByUserHandle returns the citizen id the handle belongs to;
	// ErrNotFound when none.
	CitizenByUserHandle(ctx context.Context, handle []byte) (string, error)
	// CreatePasskey inserts p; ErrConflict when its ID or credential id exists.
	CreatePasskey(ctx context.Context, p *Passkey) error
	// GetPasskey returns a passkey by record id; ErrNotFound when absent.
	GetPasskey(ctx context.Context, id string) (*Passkey, error)
	// GetPasskeyByCredentialID returns a passkey by credential id.
	GetPasskeyByCredentialID(ctx context.Context, credentialID []byte) (*Passkey, error)
	// ListPasskeys returns the citizen's passkeys, oldest first.
	ListPasskeys(ctx context.Context, citizenID string) ([]*Passkey, error)
	// RenamePasskey renames one of the citizen's passkeys; ErrNotFound when
	// it is absent or another citizen's.
	RenamePasskey(ctx context.Context, citizenID, id, name string) error
	// DeletePasskey removes one of the citizen's passkeys; ErrNotFound when
	// it is absent or another citizen's.
	DeletePasskey(ctx context.Context, citizenID, id string) error
	// UsePasskey records a login: the new signature counter and the time.
	// It is one conditional write: the counter must go up, or stay zero
	// when the authenticator keeps none; otherwise nothing changes and the
	// error wraps ErrConflict (a cloned authenticator, or a replay that
	// raced another login). ErrNotFound when the passkey is gone.
	UsePasskey(ctx context.Context, id string, signCount uint32, at time.Time) error
}

// DeleteCitizenPasskeys removes every passkey of the citizen (a lock of
// the account) and returns their ids, for revoking what each yielded; one
// already removed meanwhile is no error.
func DeleteCitizenPasskeys(ctx context.Context, ps PasskeyStore, citizenID string) ([]string, error) {
	list, err := ps.ListPasskeys(ctx, citizenID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(list))
	for _, p := range list {
		if err := ps.DeletePasskey(ctx, citizenID, p.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return ids, err
		}
		ids = append(ids, p.ID)
	}
	return ids, nil
}
