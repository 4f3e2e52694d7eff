package idp

import (
	"context"
	"time"
)

// OneDoor's IdP has one durable queue for what it owes other servers over
// HTTP and must not lose to a restart: OIDC Back-Channel Logout 1.0 logout
// tokens and CIBA Core 1.0 ping callbacks. Each delivery is a row of one
// kind, retried with backoff under a lease, so that every replica's worker
// shares the queue.

// Delivery kinds.
const (
	// DeliveryBackchannelLogout: a logout token for a session (SID) a
	// client logged in to; queued by EndSessions.
	DeliveryBackchannelLogout = "backchannel_logout"
	// DeliveryCIBAPing: a ping-mode CIBA client is told that its request
	// (Payload, the auth_req_id) was decided, with its bearer
	// client_notification_token (Secret).
	DeliveryCIBAPing = "ciba_ping"
)

// Delivery states.
const (
	// DeliveryHeld: queued but not yet due (a CIBA ping waits for the
	// citizen's answer); ReleaseDelivery makes it pending.
	DeliveryHeld      = "held"
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryDead      = "dead" // every attempt failed, or it expired
)

// Delivery is one message owed to a client.
type Delivery struct {
	ID       string
	Kind     string
	ClientID string
	// SID is the session of a back-channel logout; for a CIBA ping, a key
	// naming the request (CIBAPingKey), so a request is pinged once.
	SID     string
	Subject string
	// Payload is what the message names besides the session: the
	// auth_req_id of a CIBA ping.
	Payload string
	// Secret is the bearer credential the client gave for its callback
	// (the CIBA client_notification_token). It is kept only while the
	// delivery is not final, and never returned by ListDeliveries.
	Secret string
	// ExpiresAt, when set, is when the delivery stops being worth making:
	// no attempt is made or scheduled after it.
	ExpiresAt     *time.Time
	State         string
	Attempts      int // attempts made so far
	NextAttemptAt time.Time
	LastStatus    int
	LastError     string
	CreatedAt     time.Time
	// Filled in by ClaimDeliveries from the client's current registration:
	// the back-channel logout URI, or the CIBA notification endpoint while
	// the client is in ping mode. Empty when the client was deleted or
	// unregistered it.
	URI        string
	IDTokenAlg string
	// LeaseID identifies the claim; RecordDelivery needs it.
	LeaseID string
}

// CIBAPingKey is the SID of the ping of the request whose auth_req_id hashes
// to hash.
func CIBAPingKey(hash string) string { return "ciba:" + hash }

// DeliveryAttempt is the outcome of one delivery attempt.
type DeliveryAttempt struct {
	State      string     // DeliveryPending (retry at Next), DeliveryDelivered or DeliveryDead
	Next       *time.Time // when State is DeliveryPending
	StatusCode int
	Error      string // no token, no URL
	At         time.Time
}

// DeliveryStore is the durable delivery queue.
type DeliveryStore interface {
	// EnqueueDelivery queues d (Kind, ClientID, SID, Subject, Payload,
	// Secret, ExpiresAt, and State DeliveryHeld or DeliveryPending due at
	// NextAttemptAt); it fills in d.ID. ErrConflict when the client already
	// has a delivery for that SID; ErrInvalid for an unknown kind or state.
	// (Back-channel logouts are queued by SessionStore.EndSessions.)
	EnqueueDelivery(ctx context.Context, d *Delivery) error
	// ReleaseDelivery makes the client's held delivery for sid due at at.
	// ErrNotFound when there is none held (never queued, released before,
	// or expired).
	ReleaseDelivery(ctx context.Context, clientID, sid string, at time.Time) error
	// ClaimDeliveries claims up to n due pending deliveries of a kind ("":
	// any kind) for lease: no other claimer sees them until the lease
	// passes or the attempt is recorded.
	ClaimDeliveries(ctx context.Context, kind string, n int, lease time.Duration) ([]*Delivery, error)
	// RecordDelivery records an attempt on a claimed delivery and releases
	// the claim; a final state forgets the Secret. ErrConflict when the
	// lease was lost (it expired and another worker claimed the delivery).
	RecordDelivery(ctx context.Context, id, leaseID string, a DeliveryAttempt) error
	// ListDeliveries returns the deliveries for a SID, without their
	// secrets, for operators and tests.
	ListDeliveries(ctx context.Context, sid string) ([]*Delivery, error)
	// PendingDeliveries counts the deliveries of a kind not yet final
	// (held, due, leased or waiting for a retry): the queue's depth, for
	// monitoring.
	PendingDeliveries(ctx context.Context, kind string) (int, error)
}
