package idp

import (
	"context"
	"time"

	"github.com/onedoor/onedoor/represent"
)

// Durable stores live in SQLite (embedded default) or PostgreSQL. Adapters
// translate "no rows" into ErrNotFound, unique violations into ErrConflict and
// any failure to reach the database into an error wrapping ErrUnavailable.

// ClientStore keeps the OIDC relying parties.
type ClientStore interface {
	CreateClient(ctx context.Context, c *Client) error // ErrConflict on duplicate ID
	GetClient(ctx context.Context, id string) (*Client, error)
	ListClients(ctx context.Context) ([]*Client, error)
	// DeleteClient removes the client and its refresh-token families;
	// ErrNotFound when absent.
	DeleteClient(ctx context.Context, id string) error
}

// RegistrationStore keeps what agency self-registration (RFC 7591/7592)
// adds to the clients: the operators' initial access tokens and the
// changes to a registered client.
type RegistrationStore interface {
	// CreateInitialToken stores t; ErrConflict on a duplicate ID or hash.
	CreateInitialToken(ctx context.Context, t *InitialToken) error
	// GetInitialToken returns the token with the keyed hash, whatever its
	// state (the caller checks Usable); ErrNotFound when none has it.
	GetInitialToken(ctx context.Context, hash []byte) (*InitialToken, error)
	// ListInitialTokens returns every token, newest first.
	ListInitialTokens(ctx context.Context) ([]*InitialToken, error)
	// RevokeInitialToken sets RevokedAt (the first time wins); ErrNotFound
	// when absent.
	RevokeInitialToken(ctx context.Context, id string, at time.Time) error
	// RegisterClient consumes one use of the initial token tokenID and
	// inserts c in one transaction: ErrNotFound (and no client) when the
	// token is absent, revoked, expired at now or used up, so concurrent
	// registrations never exceed its uses; ErrConflict on a duplicate
	// client ID.
	RegisterClient(ctx context.Context, tokenID string, now time.Time, c *Client) error
	// UpdateClient runs fn on the stored client inside a transaction and
	// saves every field fn leaves (but ID and CreatedAt) when it returns
	// nil; ErrNotFound when absent.
	UpdateClient(ctx context.Context, id string, fn func(c *Client) error) error
}

// CitizenStore is the citizen registry: the single source of identity data.
type CitizenStore interface {
	// CreateCitizens inserts all citizens or none; ErrConflict when an ID or a
	// personal ID is already present (in the store or twice in the batch).
	// Each citizen's Guardians (personal ids, in the batch or stored) become
	// registry guardianships in the same transaction; ErrInvalid when one
	// is nobody or the citizen themselves.
	CreateCitizens(ctx context.Context, cs []*Citizen) error
	GetCitizen(ctx context.Context, id string) (*Citizen, error)
	GetCitizenByPersonalID(ctx context.Context, personalID string) (*Citizen, error)
	ListCitizens(ctx context.Context, f CitizenFilter) ([]*Citizen, error)
	// AddGuardianship records a guardianship (a court's, from `onedoor
	// citizen guardian`) between two stored citizens: ErrNotFound when
	// either is not, ErrInvalid when they are one, ErrConflict when the
	// same guardianship is already in force. One ended before is
	// recorded anew.
	AddGuardianship(ctx context.Context, g represent.Guardianship) error
	// EndGuardianship ends, at at, every guardianship in force of the
	// guardian over the ward (whatever its source); ErrNotFound when none
	// is.
	EndGuardianship(ctx context.Context, wardID, guardianID string, at time.Time) error
	// Guardianships returns the guardianships not ended that the citizen
	// is the ward or the guardian of, oldest first. A court's past its
	// Until, and a registry one past the ward's majority, are still
	// returned: representation decides with its clock.
	Guardianships(ctx context.Context, citizenID string) ([]represent.Guardianship, error)
}

// CitizenFilter narrows ListCitizens. Zero values mean "no limit".
type CitizenFilter struct {
	Offset int
	Limit  int
}

// ActivationStore keeps the one-time activation codes issued after identity
// proofing. A citizen has at most one activation; creating a new one replaces
// the previous.
type ActivationStore interface {
	PutActivation(ctx context.Context, a *Activation) error
	GetActivation(ctx context.Context, citizenID string) (*Activation, error)
	// UpdateActivation runs fn on the current record inside a transaction and
	// stores what fn leaves in it, even when fn returns an error (so a failed
	// attempt is counted); the error from fn is returned as is.
	UpdateActivation(ctx context.Context, citizenID string, fn func(a *Activation) error) error
}

// DeviceStore keeps the citizens' enrolled eID app installations.
type DeviceStore interface {
	CreateDevice(ctx context.Context, d *Device) error
	GetDevice(ctx context.Context, id string) (*Device, error)
	ListDevices(ctx context.Context, citizenID string) ([]*Device, error)
	// RevokeDevice sets RevokedAt; ErrNotFound when absent. Revoking twice keeps
	// the first time.
	RevokeDevice(ctx context.Context, id string, at time.Time) error
	// TouchDevice sets LastUsedAt to at when the device is not revoked and
	// was last used before at minus every (or never), and reports whether
	// it wrote: concurrent approvals write once per interval. ErrNotFound
	// when absent.
	TouchDevice(ctx context.Context, id string, at time.Time, every time.Duration) (bool, error)
}

// KeyStore keeps the token signing keys, private parts encrypted at rest.
type KeyStore interface {
	CreateKey(ctx context.Context, k *SigningKey) error
	ListKeys(ctx context.Context) ([]*SigningKey, error)
	// UpdateKey runs fn on the stored key inside a transaction and saves it
	// when fn returns nil.
	UpdateKey(ctx context.Context, kid string, fn func(k *SigningKey) error) error
}

// RefreshTokenStore keeps refresh-token families, the only tokens that must
// survive a restart of every node: one row per family (grant), so a rotation
// is one row write. Request is an opaque serialisation owned by idp/oidc.
type RefreshTokenStore interface {
	// CreateRefreshToken starts a family; ErrConflict when its request ID or
	// signature exists.
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	// GetRefreshToken returns the family whose current or previous token has
	// the signature, revoked families included.
	GetRefreshToken(ctx context.Context, signature string) (*RefreshToken, error)
	// GetRefreshTokenFamily returns a family by request ID, revoked ones
	// included.
	GetRefreshTokenFamily(ctx context.Context, requestID string) (*RefreshToken, error)
	// RotateRefreshToken applies r atomically: of concurrent rotations of one
	// family each either applies or fails, so at most one child is live.
	// ErrNotFound when the family is absent or revoked, or r.Redeemed is
	// neither its current token nor its previous one within the grace window.
	RotateRefreshToken(ctx context.Context, r *RefreshRotation) error
	// RevokeRefreshTokens deactivates a family by request ID. Absent families
	// are not an error.
	RevokeRefreshTokens(ctx context.Context, requestID string) error
	// RevokeDeviceRefreshTokens deactivates every family approved by or held
	// by the device.
	RevokeDeviceRefreshTokens(ctx context.Context, deviceID string) error
	// DeleteRefreshToken removes a family by request ID; ErrNotFound when
	// absent.
	DeleteRefreshToken(ctx context.Context, requestID string) error
	// DeleteExpiredRefreshTokens removes families that expired before now.
	DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) (int64, error)
}

// RevocationStore is the durable deny list of access tokens: a key (built by
// idp/accesstoken: a grant, a token or a device) stays revoked until its
// time has passed, on every replica and across restarts of the ephemeral
// store.
type RevocationStore interface {
	// Revoke denies key until the given time. It is idempotent; of two
	// revocations of one key the later until wins.
	Revoke(ctx context.Context, key string, until time.Time) error
	// AnyRevoked reports whether any of the keys is revoked now.
	AnyRevoked(ctx context.Context, keys ...string) (bool, error)
}

// Store is everything the durable backend provides.
type Store interface {
	ClientStore
	CitizenStore
	ActivationStore
	DeviceStore
	KeyStore
	LegacyGrantStore
	RefreshTokenStore
	RevocationStore
	RegistrationStore
	Ping(ctx context.Context) error
	Close() error
}

// Ephemeral holds short-lived state: authorization codes, PKCE and PAR
// sessions, login requests, browser sessions, replay caches and rate-limit
// counters. Every entry has a TTL. Embedded mode keeps it in SQLite, scale
// mode in Redis. Keys are opaque strings chosen by the caller, who prefixes
// them by purpose.
type Ephemeral interface {
	// Set stores value under key, replacing any previous value.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Create stores value only when key is absent or expired; otherwise it
	// returns ErrConflict. It is the primitive for single-use entries.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// CreateMany stores a single-use marker under each key that is absent
	// or expired, in one round trip: created[i] reports whether this call
	// stored keys[i]. A key given twice is stored once, for its first place.
	// It serves writers that batch single-use entries (DPoP jtis) instead of
	// paying a transaction each. A marker has no value to read back. A
	// store whose client resends a call after a lost reply (a Redis
	// pipeline after a read timeout) must report the keys the first send
	// stored as created, so a slow store is never taken for a replay.
	CreateMany(ctx context.Context, keys []string, ttl time.Duration) (created []bool, err error)
	// Get returns the value; ErrNotFound when absent or expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Take returns the value and deletes it atomically: of concurrent callers
	// exactly one gets the value, the others ErrNotFound.
	Take(ctx context.Context, key string) ([]byte, error)
	// Delete removes key; absent keys are not an error.
	Delete(ctx context.Context, key string) error
	// Incr atomically adds one to a counter and returns the new value. The TTL
	// starts when the counter is created and is not extended by later calls.
	Incr(ctx context.Context, key string, ttl time.Duration) (int64, error)
	Ping(ctx context.Context) error
	Close() error
}
