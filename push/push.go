package push

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"time"
)

// Kind is what a notification is about; preferences are set per kind.
type Kind string

// The kinds of notification.
const (
	KindStatusChange  Kind = "status_change"  // an application moved
	KindResult        Kind = "result"         // an application was decided
	KindLoginApproval Kind = "login_approval" // a login waits for the eID app
	KindNotice        Kind = "notice"         // a broadcast or a message about no application
)

// Kinds lists every kind, in the order preferences show them.
var Kinds = []Kind{KindStatusChange, KindResult, KindLoginApproval, KindNotice}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	for _, v := range Kinds {
		if k == v {
			return true
		}
	}
	return false
}

// MaxInstallations bounds one citizen's installations: a phone, a tablet,
// a few browsers.
const MaxInstallations = 10

// Installation is one app installation or browser of a citizen that pushes
// reach. Token and Subscription are secrets of the citizen's device: the
// API never returns them.
type Installation struct {
	ID           string
	CitizenID    string
	Platform     Platform
	Token        string        // fcm and apns
	Subscription *Subscription // webpush
	Locale       string        // "vi" or "en"
	// DeviceID is the eID device the installation belongs to ("" for a
	// browser): revoking the device removes the installation.
	DeviceID  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Target returns where a provider sends to reach the installation.
func (in *Installation) Target() Target {
	return Target{Platform: in.Platform, Token: in.Token, Subscription: in.Subscription}
}

// Address is the provider address that identifies an installation: the
// token, or the Web Push endpoint. A citizen has one installation per
// address; another citizen may hold one of the same address (see
// InstallationStore.RegisterInstallation).
func (in *Installation) Address() string {
	if in.Subscription != nil {
		return in.Subscription.Endpoint
	}
	return in.Token
}

// State is where a message stands on its way to the citizen's devices.
type State string

// Message states. A message is queued, then sent (claimed by a worker),
// then accepted (every installation's provider took it), failed (an attempt
// failed and another is due), dead (given up), or skipped (nothing to push:
// the citizen's preferences or no installation).
const (
	StateQueued   State = "queued"
	StateSent     State = "sent"
	StateAccepted State = "accepted"
	StateFailed   State = "failed"
	StateDead     State = "dead"
	StateSkipped  State = "skipped"
)

// Final reports whether no further attempt will be made.
func (s State) Final() bool { return s == StateAccepted || s == StateDead || s == StateSkipped }

// MaxAttempts bounds how many times a message is tried before it is dead
// (with the backoff's one-hour cap, more than a day of retries); the
// dispatcher's RetryFor usually ends it first.
const MaxAttempts = 40

// Message is one notification to one citizen, kept in the outbox from the
// transaction that caused it until every installation took it. Title and
// Body are the full text, pushed only to a service the citizen opted into
// full text, and erased once the message is final.
type Message struct {
	ID  string // "ntf_…": what the push carries and the app fetches by
	Seq int64  // position in the citizen's live stream, set by the store
	// CitizenID is whom it is for.
	CitizenID string
	Kind      Kind
	// ServiceCode and AgencyCode name the service it is about and the
	// agency that caused it ("" for the platform's own messages).
	ServiceCode    string
	AgencyCode     string
	ApplicationID  string
	InboxMessageID string
	Title          Text
	Body           string
	Priority       Priority
	CollapseKey    string
	ExpiresAt      time.Time // zero: no expiry

	State         State
	Attempts      int
	NextAttemptAt time.Time
	// Delivered lists the installations whose provider accepted the
	// message, so a retry sends only to the others.
	Delivered []string
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Text is a title in both of the platform's languages.
type Text struct {
	VI string
	EN string
}

// In returns the text in lang ("en" or else Vietnamese), falling back to
// the other language when empty.
func (t Text) In(lang string) string {
	if lang == "en" && t.EN != "" {
		return t.EN
	}
	if t.VI == "" {
		return t.EN
	}
	return t.VI
}

// NewMessageID returns a new opaque message id.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "ntf_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// Job is a claimed message with what sending it needs.
type Job struct {
	// Claim identifies this claim: an outcome recorded under a claim that
	// lapsed (and was claimed again) is ignored.
	Claim         string
	Message       *Message
	Installations []*Installation
	Preferences   *Preferences
}

// Outcome is what became of a claimed message.
type Outcome struct {
	MessageID string
	Claim     string
	State     State // accepted, failed, dead, skipped, or queued (deferred)
	// Delivered is every installation that has taken the message, those
	// of earlier attempts included.
	Delivered []string
	// Unregistered installations are removed: their provider said the
	// token is gone.
	Unregistered []string
	// NextAttemptAt is when a failed or deferred message is due again.
	NextAttemptAt time.Time
	// Deferred marks an outcome that was not an attempt (quiet hours):
	// the attempt the claim counted is given back, and the message is
	// marked held back, so that new preferences make it due again.
	Deferred  bool
	LastError string
	// Lost is set by the store's Record on an outcome whose claim no
	// longer held its message (it lapsed and another worker took it):
	// nothing of it was recorded, so it is neither logged nor counted.
	Lost bool
}

// InstallationStore holds installations.
type InstallationStore interface {
	// RegisterInstallation stores in, or updates the locale and device of
	// the citizen's installation with the same address (created false);
	// MaxInstallations reached is ErrQuota.
	//
	// An address another citizen registered is neither refused nor taken
	// over: the caller gets an installation of their own, as if the address
	// were new. Refusing it (409) told anyone whether a token was
	// registered; handing it over would let whoever learned a token
	// redirect its owner's pushes. Both are wrong for the honest case too:
	// a token is per app installation, not per person, so on a shared
	// phone, or an iOS reinstall that keeps its APNs token, a second
	// citizen signing in legitimately presents the first one's token. Who
	// holds the phone now is not something a registration can prove, so
	// each citizen keeps their own installation: the phone gets both
	// citizens' pushes, which carry only an opaque id the app fetches with
	// its own citizen's token (another's is 404), until the first citizen
	// removes theirs, revokes that eID device, or the provider reports the
	// token gone.
	RegisterInstallation(ctx context.Context, in *Installation) (created bool, err error)
	ListInstallations(ctx context.Context, citizenID string) ([]*Installation, error)
	// DeleteInstallation deletes the citizen's installation; another's is
	// idp.ErrNotFound.
	DeleteInstallation(ctx context.Context, citizenID, id string) error
	// DeleteDeviceInstallations deletes every installation of an eID
	// device, when the device is revoked.
	DeleteDeviceInstallations(ctx context.Context, deviceID string) (int, error)
}

// PreferenceStore holds notification preferences.
type PreferenceStore interface {
	// GetPreferences returns the citizen's preferences, the defaults when
	// none were stored.
	GetPreferences(ctx context.Context, citizenID string) (*Preferences, error)
	// PutPreferences stores p and makes the citizen's messages held back
	// by quiet hours (Outcome.Deferred) due at once, so the new
	// preferences decide when they go: quiet hours removed or moved must
	// not keep a message waiting for the old end.
	PutPreferences(ctx context.Context, p *Preferences) error
}

// OutboxStore holds messages: each is the product's record (the live
// stream's Seq, the text, the sender's receipt) and a job of the durable
// job queue (push/queue, kind push), which schedules, claims, retries and
// dead-letters it as it does webhook deliveries. It is the queue Source
// the Dispatcher's worker loop runs on.
type OutboxStore interface {
	// Enqueue stores messages in their own transaction (producers that
	// change state enqueue in theirs, through the SQL adapter).
	Enqueue(ctx context.Context, msgs ...*Message) error
	// Claim takes up to n due messages, counts an attempt on each and hides
	// them from other claimers for lease (a worker that dies releases them
	// when it passes).
	Claim(ctx context.Context, n int, lease time.Duration) ([]*Job, error)
	// Record stores the outcomes of claimed messages and removes the
	// installations reported unregistered, in one transaction. It marks
	// Lost (in outs) those whose claim no longer held their message.
	Record(ctx context.Context, outs []Outcome) error
	// GetMessage returns a message of the citizen's; another's is
	// idp.ErrNotFound.
	GetMessage(ctx context.Context, citizenID, id string) (*Message, error)
	// GetSentMessage returns a message the agency caused, for its receipt.
	GetSentMessage(ctx context.Context, agencyCode, id string) (*Message, error)
	// ListSentMessages returns the messages the agency caused about one
	// application, oldest first (receipts).
	ListSentMessages(ctx context.Context, agencyCode, applicationID string) ([]*Message, error)
	// MessagesAfter returns up to limit of the citizen's messages with Seq
	// greater than after, in Seq order (a live stream's catch-up).
	MessagesAfter(ctx context.Context, citizenID string, after int64, limit int) ([]*Message, error)
	// LastSeq returns the Seq of the citizen's newest message, 0 when
	// there is none: where a new live stream starts.
	LastSeq(ctx context.Context, citizenID string) (int64, error)
}

// Store is everything push keeps.
type Store interface {
	InstallationStore
	PreferenceStore
	OutboxStore
}
