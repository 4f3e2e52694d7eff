package push

import (
	"context"
	"time"
)

// Broadcast is one notice to many citizens (every citizen, or a
// province's): one row and a cursor over the installations, never one
// outbox row per device. Citizens in quiet hours get an ordinary message,
// which waits for their quiet hours to end.
type Broadcast struct {
	ID string // "brd_…"
	// AgencyCode is the sender ("" for the platform's operators).
	AgencyCode string
	// Province limits the audience to citizens whose registry address is
	// in it ("" for every citizen).
	Province  string
	Title     Text
	Body      string
	ExpiresAt time.Time // zero: none
	State     BroadcastState
	// Cursor is the last installation sent to, in (citizen, installation)
	// order.
	CursorCitizen, CursorInstallation string
	Sent, Failed, Skipped             int
	// LiveSeq is the broadcast's position on the live streams, given by
	// its first claim in commit order (0 before): a stream that missed it
	// replays the broadcasts after the last it saw.
	LiveSeq              int64
	CreatedAt, UpdatedAt time.Time
}

// BroadcastState is where a broadcast stands.
type BroadcastState string

// Broadcast states.
const (
	BroadcastQueued  BroadcastState = "queued"
	BroadcastSending BroadcastState = "sending"
	BroadcastDone    BroadcastState = "done"
	BroadcastExpired BroadcastState = "expired" // stopped at its expiry
)

// BroadcastPage is how many installations one step of a broadcast sends
// to; the cursor is stored after each.
const BroadcastPage = 500

// BroadcastProgress is what one step of a broadcast did.
type BroadcastProgress struct {
	ID, Claim                         string
	CursorCitizen, CursorInstallation string
	Sent, Failed, Skipped             int
	// Deferred are messages for citizens in quiet hours, enqueued as
	// ordinary messages in the same transaction.
	Deferred     []*Message
	Unregistered []string
	// State is the broadcast's next state (sending, done or expired).
	State BroadcastState
}

// BroadcastStore holds broadcasts.
type BroadcastStore interface {
	CreateBroadcast(ctx context.Context, b *Broadcast) error
	GetBroadcast(ctx context.Context, id string) (*Broadcast, error)
	ListBroadcasts(ctx context.Context, limit int) ([]*Broadcast, error)
	// ClaimBroadcast takes the oldest unfinished broadcast no dispatcher
	// holds, for lease; nil when there is none. The first claim gives the
	// broadcast its LiveSeq, one above every other, in commit order.
	ClaimBroadcast(ctx context.Context, lease time.Duration) (b *Broadcast, claim string, err error)
	// BroadcastTargets returns up to n installations after the cursor, in
	// (citizen, installation) order, with their citizens' preferences.
	BroadcastTargets(ctx context.Context, afterCitizen, afterInstallation string, n int) ([]*Installation, map[string]*Preferences, error)
	// AdvanceBroadcast stores a step's progress under its claim (a lapsed
	// claim changes nothing), enqueues its deferred messages and removes
	// its unregistered installations, in one transaction; it releases the
	// claim.
	AdvanceBroadcast(ctx context.Context, p BroadcastProgress) error
	// BroadcastsAfter returns up to limit broadcasts with a LiveSeq above
	// after that have not expired, in LiveSeq order (a live stream's
	// catch-up).
	BroadcastsAfter(ctx context.Context, after int64, limit int) ([]*Broadcast, error)
	// LastBroadcastSeq returns the highest LiveSeq: where a new live
	// stream starts.
	LastBroadcastSeq(ctx context.Context) (int64, error)
}
