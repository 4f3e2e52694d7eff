// Package queue is OneDoor's durable job queue: the one machinery push
// messages (kind push: push's Dispatcher) and the mobile API's webhook
// deliveries (kind webhook) ride on, in one table (push_jobs) on the
// embedded SQLite and on PostgreSQL alike.
//
// A job is enqueued in the transaction of the state change that causes it
// (push/sqlstore's EnqueueJobsTx; a push message's EnqueueTx writes the
// message and its job), so both commit or neither. A worker claims due
// jobs of its kind under a lease (a worker that dies releases them when
// the lease passes: at least once), makes an attempt and records its
// outcome under its claim (an outcome recorded after the claim lapsed and
// was taken again changes nothing). A failed attempt is retried after
// exponential backoff with full jitter, or later when the receiver asked
// (Retry-After); after MaxAttempts attempts the job is dead and stays, with
// its attempts, for whoever reads its log. Receivers de-duplicate by the
// job's id (or an id in its payload: a push message's id, a webhook
// event's). Worker is the worker loop (claim a batch, handle it, record
// the outcomes in one transaction); a kind's Source adds what its handler
// needs to the claim (push: the message, installations and preferences)
// and to the record (push: the message's receipt, which stays in
// push_messages with the live stream's seq). push's Dispatcher runs on it;
// the webhook worker still runs its own loop of per-delivery slots (a slow
// endpoint holds one slot, not a batch), claiming and recording under its
// claim through the same queue code.
//
// The identity provider's own deliveries (back-channel logouts, CIBA
// pings: idp_deliveries) keep their queue in idp: idp is the base every
// other area imports and cannot import push. They share this design, not
// this code.
package queue

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/internal/backoff"
)

// Kind names what a job does; each kind has its own worker.
type Kind string

// The kinds of job.
const (
	KindWebhook Kind = "webhook" // an agency event to one webhook endpoint (mobileapi/webhook)
	// KindPush is a push message to a citizen's installations (push's
	// Dispatcher): the job's id is the message's (push_messages keeps the
	// text, the live stream's seq and the sender's receipt) and its ref is
	// the citizen.
	KindPush Kind = "push"
)

// State is where a job stands.
type State string

// Job states. A pending job is due at NextAttemptAt (unless claimed); done
// and dead are final.
const (
	StatePending State = "pending"
	StateDone    State = "done"
	StateDead    State = "dead" // given up: MaxAttempts failed attempts, or a permanent failure
)

// Final reports whether no further attempt will be made.
func (s State) Final() bool { return s == StateDone || s == StateDead }

// Valid reports whether s is a known state.
func (s State) Valid() bool { return s == StatePending || s.Final() }

// Job is one unit of durable work.
type Job struct {
	ID   string // the store sets one ("job_…") when empty
	Kind Kind
	// Group is whose job it is for fairness: a claim takes at most
	// a per-group number of a group's jobs in flight (an agency's webhook
	// deliveries), so one slow receiver cannot hold every worker.
	Group string
	// Ref is what owns the job (a webhook's id): jobs are listed and
	// cancelled by it.
	Ref     string
	Payload []byte // the kind's own JSON
	State   State
	// Claims counts how often the job was claimed, counted by the claim
	// itself, so a worker can tell a job that keeps killing it (claimed
	// far more often than attempts were recorded).
	Claims        int
	Attempts      []Attempt // recorded attempts, oldest first
	NextAttemptAt time.Time // zero once final
	Claim         string    // the claim ClaimJobs returned it under
	// CreatedAt is set by the store, or by the producer to the time of
	// the event that caused the job (it is then due from that time).
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Attempt is one try at a job.
type Attempt struct {
	At         time.Time
	StatusCode int    // the receiver's, when it answered
	Error      string // why no usable answer came; never a secret
	Duration   time.Duration
}

// Outcome is what became of a claimed job's attempt.
type Outcome struct {
	ID, Claim string
	// Attempt is appended to the job's attempts; one whose At is zero
	// appends none (push messages keep their receipt in push_messages).
	Attempt Attempt
	State   State
	// NextAttemptAt is when a pending job is due again.
	NextAttemptAt time.Time
	// Hold marks a pending outcome that was no attempt: the worker held
	// the job back until NextAttemptAt (a push message in the citizen's
	// quiet hours). The claim is given back (Claims does not count it)
	// and the job is marked held, so that its owner's change makes it due
	// at once (ReleaseHeld in the SQL adapter).
	Hold bool
}

// Validate checks an outcome's shape.
func (o Outcome) Validate() error {
	switch {
	case !o.State.Valid():
		return errors.New("state: unknown value")
	case o.State == StatePending && o.NextAttemptAt.IsZero():
		return errors.New("next_attempt_at is required while pending")
	case o.State != StatePending && !o.NextAttemptAt.IsZero():
		return errors.New("next_attempt_at is only for a pending job")
	case o.Hold && o.State != StatePending:
		return errors.New("only a pending job is held")
	}
	return nil
}

// Cursor is a position in a ref's jobs, newest first.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// Store is the durable queue. Producers enqueue through the SQL adapter's
// EnqueueJobsTx inside their own transaction.
type Store interface {
	// EnqueueJobs stores jobs, due now, in a transaction of their own.
	EnqueueJobs(ctx context.Context, jobs ...*Job) error
	// ClaimJobs takes up to n due jobs of kind, the longest due first,
	// counts a claim on each and hides them from other claimers for
	// lease; perGroup > 0 caps each group's jobs in flight across every
	// claimer.
	ClaimJobs(ctx context.Context, kind Kind, n int, lease time.Duration, perGroup int) ([]*Job, error)
	// RecordJob appends the outcome's attempt and moves the job on, in one
	// transaction. A job no longer held by the claim is ErrLost; one that
	// is gone (cancelled) is idp.ErrNotFound.
	RecordJob(ctx context.Context, o Outcome) error
	// RecordJobs records a batch of outcomes in one transaction (one
	// statement per few hundred): those whose claim no longer holds the
	// job change nothing and their ids are returned as lost.
	RecordJobs(ctx context.Context, outs []Outcome) (lost []string, err error)
	// GetJob returns a job.
	GetJob(ctx context.Context, id string) (*Job, error)
}

// ErrLost means the claim an outcome names no longer holds the job: it
// lapsed and another worker took it, or the job is final.
var ErrLost = errors.New("queue: the claim no longer holds the job")

// Policy decides what follows a failed attempt.
type Policy struct {
	// MaxAttempts failed attempts make a job dead.
	MaxAttempts int
	// RetryFor, when set, makes a job dead once it has been retried this
	// long since it was created.
	RetryFor time.Duration
	// Backoff returns the delay before retry n (n ≥ 1, after n failed
	// attempts); FullJitter is the shared schedule.
	Backoff func(n int) time.Duration
	// Cap bounds what a Retry-After may ask for.
	Cap time.Duration
}

// Retry returns when the job is next due after its n-th failed attempt
// (n ≥ 1) at now, or dead: the backoff's delay, or the receiver's
// Retry-After (at most Cap) when longer.
func (p Policy) Retry(n int, created, now time.Time, retryAfter time.Duration) (next time.Time, dead bool) {
	if n >= p.MaxAttempts || (p.RetryFor > 0 && now.Sub(created) >= p.RetryFor) {
		return time.Time{}, true
	}
	return now.Add(max(p.Backoff(n), min(max(retryAfter, 0), p.Cap))), false
}

// FullJitter is the shared retry schedule (internal/backoff).
var FullJitter = backoff.FullJitter

// ParseRetryAfter reads a Retry-After value (delay seconds or an HTTP date)
// as a delay from now, at most limit; 0 when absent or malformed.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		if secs > int64(limit/time.Second) {
			return limit
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), limit)
}
