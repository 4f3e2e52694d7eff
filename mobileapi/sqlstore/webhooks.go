package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
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
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		var found string
		if err := q.QueryRowContext(ctx, `SELECT id FROM api_webhooks WHERE id = $1 AND agency_code = $2`+s.d.ForUpdate(),
			id, agencyCode).Scan(&found); err != nil {
			return sqldb.Err(op, err)
		}
		if _, err := q.ExecContext(ctx, `DELETE FROM api_webhook_deliveries WHERE webhook_id = $1`, id); err != nil {
			return sqldb.Err(op, err)
		}
		_, err := q.ExecContext(ctx, `DELETE FROM api_webhooks WHERE id = $1`, id)
		return sqldb.Err(op, err)
	})
}

const deliveryColumns = `d.id, d.webhook_id, d.agency_code, (SELECT w.url FROM api_webhooks w WHERE w.id = d.webhook_id),
	d.event_id, d.event_type, d.application_id, d.service_id, d.service_code, d.occurred_at,
	d.state, d.attempts, d.next_attempt_at, d.created_at, d.consent`

// ListDeliveries returns the deliveries of the agency's webhook, newest
// first, with their attempts; ErrNotFound for another agency's webhook.
func (s *Store) ListDeliveries(ctx context.Context, agencyCode, webhookID string, p mobileapi.Page) ([]*mobileapi.Delivery, string, error) {
	const op = "list deliveries"
	limit := pageLimit(p.Limit)
	query := `SELECT ` + deliveryColumns + ` FROM api_webhook_deliveries d WHERE d.webhook_id = $1`
	args := []any{webhookID}
	if p.Cursor != "" {
		at, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", invalidInput(op, "cursor is malformed")
		}
		query += ` AND (d.created_at < $2 OR (d.created_at = $2 AND d.id < $3))`
		args = append(args, at, id)
	}
	args = append(args, limit+1)
	var out []*mobileapi.Delivery
	err := s.snapshot(ctx, op, func(q sqldb.Querier) error {
		var found string
		if err := q.QueryRowContext(ctx, `SELECT id FROM api_webhooks WHERE id = $1 AND agency_code = $2`,
			webhookID, agencyCode).Scan(&found); err != nil {
			return sqldb.Err(op, err)
		}
		var err error
		out, err = queryDeliveries(ctx, q, op, query+` ORDER BY d.created_at DESC, d.id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
		return err
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

// ClaimDeliveries claims up to n (at most MaxLimit) due pending deliveries,
// the longest due first, hiding them from other claimers until d passes.
func (s *Store) ClaimDeliveries(ctx context.Context, n int, d time.Duration) ([]*mobileapi.Delivery, error) {
	const op = "claim deliveries"
	switch {
	case n < 1:
		return nil, invalidInput(op, "max must be positive")
	case d < time.Millisecond:
		return nil, invalidInput(op, "duration must be at least a millisecond")
	}
	n = min(n, mobileapi.MaxLimit)
	var out []*mobileapi.Delivery
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := sqldb.MS(s.clock())
		var err error
		// Each agency gets at most ClaimsPerAgency deliveries in flight across
		// every worker and replica, so one agency's slow or hanging
		// endpoints cannot hold the slots other agencies' events wait for.
		busy := map[string]int{}
		rows, err := q.QueryContext(ctx, `SELECT agency_code, COUNT(*) FROM api_webhook_deliveries
			WHERE state = 'pending' AND claimed_until > $1 GROUP BY agency_code`, now)
		if err != nil {
			return sqldb.Err(op, err)
		}
		for rows.Next() {
			var a string
			var c int
			if err := rows.Scan(&a, &c); err != nil {
				rows.Close()
				return sqldb.Err(op, err)
			}
			busy[a] = c
		}
		if err := rows.Close(); err != nil {
			return sqldb.Err(op, err)
		}
		// state is a literal so that SQLite uses the partial index.
		candidates, err := queryDeliveries(ctx, q, op, `SELECT `+deliveryColumns+` FROM api_webhook_deliveries d
			WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.claimed_until <= $1
			ORDER BY d.next_attempt_at, d.id LIMIT $2`+s.skipLocked(), now, 4*n)
		if err != nil {
			return err
		}
		for _, dl := range candidates {
			if len(out) == n {
				break
			}
			if busy[dl.AgencyCode] < mobileapi.ClaimsPerAgency {
				busy[dl.AgencyCode]++
				out = append(out, dl)
			}
		}
		until := now + d.Milliseconds()
		for _, dl := range out {
			if _, err := q.ExecContext(ctx, `UPDATE api_webhook_deliveries SET claimed_until = $1 WHERE id = $2`, until, dl.ID); err != nil {
				return sqldb.Err(op, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// storedAttempt is an Attempt in api_webhook_deliveries.attempts.
type storedAttempt struct {
	At         int64  `json:"at"`
	StatusCode int    `json:"status_code,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// RecordAttempt appends a to a pending delivery and moves it on: pending
// again at next, or succeeded or failed for good. The claim is released.
// A delivery that is no longer pending is ErrConflict; one whose webhook
// was deleted ErrNotFound.
func (s *Store) RecordAttempt(ctx context.Context, deliveryID string, a mobileapi.Attempt, state mobileapi.DeliveryState, next *time.Time) error {
	const op = "record delivery attempt"
	switch state {
	case mobileapi.DeliveryPending:
		if next == nil {
			return invalidInput(op, "next_attempt_at is required while pending")
		}
	case mobileapi.DeliverySucceeded, mobileapi.DeliveryFailed:
		if next != nil {
			return invalidInput(op, "next_attempt_at is only for a pending delivery")
		}
	default:
		return invalidInput(op, "state: unknown value")
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		var cur, attempts string
		if err := q.QueryRowContext(ctx, `SELECT state, attempts FROM api_webhook_deliveries WHERE id = $1`+s.d.ForUpdate(),
			deliveryID).Scan(&cur, &attempts); err != nil {
			return sqldb.Err(op, err)
		}
		if cur != string(mobileapi.DeliveryPending) {
			return fmt.Errorf("%s: the delivery is %s: %w", op, cur, idp.ErrConflict)
		}
		var list []storedAttempt
		if err := json.Unmarshal([]byte(attempts), &list); err != nil {
			return fmt.Errorf("%s: delivery %s: attempts: %w", op, deliveryID, err)
		}
		list = append(list, storedAttempt{At: sqldb.MS(a.At), StatusCode: a.StatusCode, Error: a.Error, DurationMS: a.Duration.Milliseconds()})
		b, err := json.Marshal(list)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		_, err = q.ExecContext(ctx, `UPDATE api_webhook_deliveries SET state = $1, attempts = $2, next_attempt_at = $3, claimed_until = 0
			WHERE id = $4`, string(state), string(b), sqldb.NullMS(next), deliveryID)
		return sqldb.Err(op, err)
	})
}

func queryDeliveries(ctx context.Context, q sqldb.Querier, op, query string, args ...any) ([]*mobileapi.Delivery, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*mobileapi.Delivery
	for rows.Next() {
		var (
			d                mobileapi.Delivery
			hookURL          sql.NullString
			typ, state, list string
			cns              string
			occurred, create int64
			next             sql.NullInt64
			attempts         []storedAttempt
		)
		if err := rows.Scan(&d.ID, &d.WebhookID, &d.AgencyCode, &hookURL, &d.Event.ID, &typ, &d.Event.ApplicationID,
			&d.Event.ServiceID, &d.Event.ServiceCode, &occurred, &state, &list, &next, &create, &cns); err != nil {
			return nil, sqldb.Err(op, err)
		}
		if err := json.Unmarshal([]byte(list), &attempts); err != nil {
			return nil, fmt.Errorf("%s: delivery %s: attempts: %w", op, d.ID, err)
		}
		for _, a := range attempts {
			d.Attempts = append(d.Attempts, mobileapi.Attempt{At: sqldb.FromMS(a.At), StatusCode: a.StatusCode,
				Error: a.Error, Duration: time.Duration(a.DurationMS) * time.Millisecond})
		}
		if cns != "" {
			d.Event.Consent = new(mobileapi.ConsentEvent)
			if err := json.Unmarshal([]byte(cns), d.Event.Consent); err != nil {
				return nil, fmt.Errorf("%s: delivery %s: consent: %w", op, d.ID, err)
			}
		}
		d.URL = hookURL.String
		d.Event.Type, d.Event.AgencyCode, d.Event.OccurredAt = mobileapi.EventType(typ), d.AgencyCode, sqldb.FromMS(occurred)
		d.State, d.NextAttemptAt, d.CreatedAt = mobileapi.DeliveryState(state), sqldb.FromNullMS(next), sqldb.FromMS(create)
		out = append(out, &d)
	}
	return out, sqldb.Err(op, rows.Err())
}
