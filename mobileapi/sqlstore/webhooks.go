package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/push/queue"
)

// CreateWebhook stores w for its agency; ID and CreatedAt are set here.
func (s *Store) CreateWebhook(ctx context.Context, w *mobileapi.Webhook) error {
	const op = "create webhook"
	if w.AgencyCode == "" {
		return invalidInput(op, "agency_code is required")
	}
	if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalidInput(op, "url must be an absolute http(s) URL")
	}
	for _, e := range w.Events {
		if !slices.Contains(mobileapi.WebhookEventTypes, e) {
			return invalidInput(op, "events: unknown event type")
		}
	}
	events := w.Events
	if len(events) == 0 {
		events = nil
	}
	list, err := json.Marshal(events)
	if err != nil || events == nil {
		list = []byte("[]")
	}
	v := *w
	v.ID, v.Events, v.CreatedAt = newID("whk"), events, s.clock()
	err = s.inTx(ctx, op, func(q sqldb.Querier) error {
		// The count and the insert are one step for each agency: BEGIN
		// IMMEDIATE orders every writer on SQLite; on PostgreSQL a
		// transaction lock on the agency's code does (webhooks name their
		// agency by code, without a row to lock where a test made none).
		if s.d == sqldb.PostgreSQL {
			if _, err := q.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "api_webhooks:"+v.AgencyCode); err != nil {
				return sqldb.Err(op, err)
			}
		}
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_webhooks WHERE agency_code = $1`, v.AgencyCode).Scan(&n); err != nil {
			return sqldb.Err(op, err)
		}
		if n >= mobileapi.MaxWebhooks {
			return fmt.Errorf("%s: %d webhooks: %w", op, n, mobileapi.ErrQuota)
		}
		_, err := q.ExecContext(ctx, `INSERT INTO api_webhooks (id, agency_code, url, events, description, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, v.ID, v.AgencyCode, v.URL, string(list), v.Description, sqldb.MS(v.CreatedAt))
		return sqldb.Err(op, err)
	})
	if err != nil {
		return err
	}
	*w = v
	return nil
}

// ListWebhooks returns the agency's webhooks, oldest first.
func (s *Store) ListWebhooks(ctx context.Context, agencyCode string, p mobileapi.Page) ([]*mobileapi.Webhook, string, error) {
	const op = "list webhooks"
	limit := pageLimit(p.Limit)
	query := `SELECT id, agency_code, url, events, description, created_at FROM api_webhooks WHERE agency_code = $1`
	args := []any{agencyCode}
	if p.Cursor != "" {
		at, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", invalidInput(op, "cursor is malformed")
		}
		query += ` AND (created_at > $2 OR (created_at = $2 AND id > $3))`
		args = append(args, at, id)
	}
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, query+` ORDER BY created_at, id LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, "", sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*mobileapi.Webhook
	for rows.Next() {
		var (
			w       mobileapi.Webhook
			events  string
			created int64
		)
		if err := rows.Scan(&w.ID, &w.AgencyCode, &w.URL, &events, &w.Description, &created); err != nil {
			return nil, "", sqldb.Err(op, err)
		}
		if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
			return nil, "", fmt.Errorf("%s: webhook %s: events: %w", op, w.ID, err)
		}
		if len(w.Events) == 0 {
			w.Events = nil
		}
		w.CreatedAt = sqldb.FromMS(created)
		out = append(out, &w)
	}
	if err := rows.Err(); err != nil {
		return nil, "", sqldb.Err(op, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(sqldb.MS(out[limit-1].CreatedAt), out[limit-1].ID)
	}
	return out, next, nil
}

// DeleteWebhook deletes the agency's webhook with its deliveries, pending
// ones included, so no worker claims them again. A worker holding a claim
// finds the delivery gone when it records its attempt (ErrNotFound).
func (s *Store) DeleteWebhook(ctx context.Context, agencyCode, id string) error {
	const op = "delete webhook"
	if s.jobs == nil {
		return errNoQueue(op)
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		var found string
		if err := q.QueryRowContext(ctx, `SELECT id FROM api_webhooks WHERE id = $1 AND agency_code = $2`+s.d.ForUpdate(),
			id, agencyCode).Scan(&found); err != nil {
			return sqldb.Err(op, err)
		}
		if _, err := s.jobs.DeleteJobsTx(ctx, q, queue.KindWebhook, id); err != nil {
			return err
		}
		_, err := q.ExecContext(ctx, `DELETE FROM api_webhooks WHERE id = $1`, id)
		return sqldb.Err(op, err)
	})
}

// ListDeliveries returns the deliveries of the agency's webhook, newest
// first, with their attempts; ErrNotFound for another agency's webhook.
func (s *Store) ListDeliveries(ctx context.Context, agencyCode, webhookID string, p mobileapi.Page) ([]*mobileapi.Delivery, string, error) {
	const op = "list deliveries"
	if s.jobs == nil {
		return nil, "", errNoQueue(op)
	}
	limit := pageLimit(p.Limit)
	var after *queue.Cursor
	if p.Cursor != "" {
		at, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", invalidInput(op, "cursor is malformed")
		}
		after = &queue.Cursor{CreatedAt: sqldb.FromMS(at), ID: id}
	}
	var out []*mobileapi.Delivery
	err := s.snapshot(ctx, op, func(q sqldb.Querier) error {
		var url string
		if err := q.QueryRowContext(ctx, `SELECT url FROM api_webhooks WHERE id = $1 AND agency_code = $2`,
			webhookID, agencyCode).Scan(&url); err != nil {
			return sqldb.Err(op, err)
		}
		jobs, err := s.jobs.ListJobsTx(ctx, q, queue.KindWebhook, webhookID, after, limit+1)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			d, err := deliveryOf(j)
			if err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			d.Claim = "" // a worker's, not the agency's
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = encodeCursor(sqldb.MS(out[limit-1].CreatedAt), out[limit-1].ID)
	}
	return out, next, nil
}

// ClaimDeliveries claims up to n (at most MaxLimit) due pending deliveries
// from the job queue, the longest due first, hiding them from other
// claimers until d passes; no agency has more than ClaimsPerAgency in
// flight across every worker and replica, so one agency's slow or hanging
// endpoints cannot hold the slots other agencies' events wait for.
func (s *Store) ClaimDeliveries(ctx context.Context, n int, d time.Duration) ([]*mobileapi.Delivery, error) {
	const op = "claim deliveries"
	switch {
	case n < 1:
		return nil, invalidInput(op, "max must be positive")
	case d < time.Millisecond:
		return nil, invalidInput(op, "duration must be at least a millisecond")
	case s.jobs == nil:
		return nil, errNoQueue(op)
	}
	jobs, err := s.jobs.ClaimJobs(ctx, queue.KindWebhook, min(n, mobileapi.MaxLimit), d, mobileapi.ClaimsPerAgency)
	if err != nil {
		return nil, err
	}
	out := make([]*mobileapi.Delivery, 0, len(jobs))
	for _, j := range jobs {
		dl, err := deliveryOf(j)
		if err != nil {
			// Dead at once, with why, under this claim: one bad payload
			// must not fail the batch at every claim.
			if rerr := s.jobs.RecordJob(ctx, queue.Undecodable(j, err, s.now())); rerr != nil {
				return nil, fmt.Errorf("%s: %w", op, rerr)
			}
			continue
		}
		out = append(out, dl)
	}
	return out, nil
}

// RecordAttempt appends a to a pending delivery and moves it on: pending
// again at next, or succeeded or failed for good. The claim is released.
// A delivery that is no longer pending is ErrConflict; one whose webhook
// was deleted ErrNotFound.
func (s *Store) RecordAttempt(ctx context.Context, deliveryID string, a mobileapi.Attempt, state mobileapi.DeliveryState, next *time.Time) error {
	return s.RecordClaimedAttempt(ctx, deliveryID, "", a, state, next)
}

// RecordClaimedAttempt is RecordAttempt under claim ("": any pending
// delivery): a claim that no longer holds the delivery is ErrConflict
// (queue.ErrLost) and changes nothing.
func (s *Store) RecordClaimedAttempt(ctx context.Context, deliveryID, claim string, a mobileapi.Attempt, state mobileapi.DeliveryState,
	next *time.Time,
) error {
	const op = "record delivery attempt"
	o := queue.Outcome{ID: deliveryID, Claim: claim, Attempt: queue.Attempt(a)}
	switch state {
	case mobileapi.DeliveryPending:
		if next == nil {
			return invalidInput(op, "next_attempt_at is required while pending")
		}
		o.State, o.NextAttemptAt = queue.StatePending, *next
	case mobileapi.DeliverySucceeded, mobileapi.DeliveryFailed:
		if next != nil {
			return invalidInput(op, "next_attempt_at is only for a pending delivery")
		}
		o.State = queue.StateDone
		if state == mobileapi.DeliveryFailed {
			o.State = queue.StateDead
		}
	default:
		return invalidInput(op, "state: unknown value")
	}
	if s.jobs == nil {
		return errNoQueue(op)
	}
	return s.jobs.RecordJob(ctx, o)
}

// deliveryJob is a delivery's payload in the job queue (push_jobs, kind
// webhook; mobileapi migration 0006 wrote the same form). The job's id is
// the delivery's, its group the agency, its ref the webhook. The URL is
// copied, so a claim reads no mobile API table; webhooks are never edited,
// and deleting one deletes its jobs.
type deliveryJob struct {
	WebhookID string     `json:"webhook_id"`
	URL       string     `json:"url"`
	Event     eventOfJob `json:"event"`
}

type eventOfJob struct {
	ID            string                  `json:"id"`
	Type          mobileapi.EventType     `json:"type"`
	ApplicationID string                  `json:"application_id"`
	ServiceID     string                  `json:"service_id"`
	ServiceCode   string                  `json:"service_code"`
	OccurredAt    int64                   `json:"occurred_at"` // unix ms
	Consent       *mobileapi.ConsentEvent `json:"consent"`
}

// newDeliveryJob returns the job that delivers e to the webhook.
func newDeliveryJob(hook subscriber, e *mobileapi.Event) (*queue.Job, error) {
	b, err := json.Marshal(deliveryJob{WebhookID: hook.id, URL: hook.url, Event: eventOfJob{ID: e.ID, Type: e.Type,
		ApplicationID: e.ApplicationID, ServiceID: e.ServiceID, ServiceCode: e.ServiceCode, OccurredAt: sqldb.MS(e.OccurredAt),
		Consent: e.Consent}})
	if err != nil {
		return nil, err
	}
	return &queue.Job{ID: newID("dlv"), Kind: queue.KindWebhook, Group: e.AgencyCode, Ref: hook.id, Payload: b,
		CreatedAt: e.OccurredAt}, nil
}

// deliveryOf reads a webhook job as the delivery the agency sees.
func deliveryOf(j *queue.Job) (*mobileapi.Delivery, error) {
	var p deliveryJob
	if err := json.Unmarshal(j.Payload, &p); err != nil {
		return nil, fmt.Errorf("delivery %s: payload: %w", j.ID, err)
	}
	d := &mobileapi.Delivery{ID: j.ID, WebhookID: p.WebhookID, AgencyCode: j.Group, URL: p.URL, CreatedAt: j.CreatedAt, Claim: j.Claim,
		Event: mobileapi.Event{ID: p.Event.ID, Type: p.Event.Type, AgencyCode: j.Group, ApplicationID: p.Event.ApplicationID,
			ServiceID: p.Event.ServiceID, ServiceCode: p.Event.ServiceCode, OccurredAt: sqldb.FromMS(p.Event.OccurredAt), Consent: p.Event.Consent}}
	for _, a := range j.Attempts {
		d.Attempts = append(d.Attempts, mobileapi.Attempt(a))
	}
	switch j.State {
	case queue.StatePending:
		d.State = mobileapi.DeliveryPending
		next := j.NextAttemptAt
		d.NextAttemptAt = &next
	case queue.StateDone:
		d.State = mobileapi.DeliverySucceeded
	default:
		d.State = mobileapi.DeliveryFailed
	}
	return d, nil
}

func errNoQueue(op string) error {
	return fmt.Errorf("%s: the store has no job queue (WithJobs)", op)
}
