package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/push/queue"
)

// Lease leases up to n (at most MaxLimit) of the agency's events, oldest first, each under a
// new lease ID. PostgreSQL workers skip the rows another Lease holds locked
// instead of waiting for them; SQLite runs one writer at a time.
func (s *Store) Lease(ctx context.Context, agencyCode string, n int, d time.Duration) ([]*mobileapi.Lease, error) {
	const op = "lease events"
	switch {
	case agencyCode == "":
		return nil, invalidInput(op, "agency_code is required")
	case n < 1:
		return nil, invalidInput(op, "max must be positive")
	case d < time.Millisecond:
		return nil, invalidInput(op, "duration must be at least a millisecond")
	}
	n = min(n, mobileapi.MaxLimit)
	var out []*mobileapi.Lease
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := s.clock()
		rows, err := q.QueryContext(ctx, `SELECT id, type, agency_code, application_id, service_id, service_code, occurred_at
			FROM api_agency_events WHERE agency_code = $1 AND leased_until <= $2
			ORDER BY occurred_at, id LIMIT $3`+s.skipLocked(), agencyCode, sqldb.MS(now), n)
		if err != nil {
			return sqldb.Err(op, err)
		}
		defer rows.Close()
		expires := now.Add(d).Truncate(time.Millisecond)
		for rows.Next() {
			e, err := scanEvent(rows)
			if err != nil {
				return sqldb.Err(op, err)
			}
			out = append(out, &mobileapi.Lease{ID: newID("lse"), ExpiresAt: expires, Event: *e})
		}
		if err := rows.Err(); err != nil {
			return sqldb.Err(op, err)
		}
		rows.Close()
		for _, l := range out {
			if _, err := q.ExecContext(ctx, `UPDATE api_agency_events SET lease_id = $1, leased_until = $2 WHERE id = $3`,
				l.ID, sqldb.MS(expires), l.Event.ID); err != nil {
				return sqldb.Err(op, err)
			}
			if _, err := q.ExecContext(ctx, `INSERT INTO api_agency_leases (id, event_id, agency_code, expires_at) VALUES ($1, $2, $3, $4)`,
				l.ID, l.Event.ID, agencyCode, sqldb.MS(expires)); err != nil {
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

// Ack removes the event the lease holds. A lease that expired is
// ErrConflict even when the event was leased again meanwhile: its worker
// must not assume its work was the one that counted.
func (s *Store) Ack(ctx context.Context, agencyCode, leaseID string) error {
	const op = "ack lease"
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		var (
			eventID string
			expires int64
		)
		err := q.QueryRowContext(ctx, `SELECT event_id, expires_at FROM api_agency_leases WHERE id = $1 AND agency_code = $2`+s.d.ForUpdate(),
			leaseID, agencyCode).Scan(&eventID, &expires)
		if err != nil {
			return sqldb.Err(op, err)
		}
		if expires <= sqldb.MS(s.clock()) {
			return fmt.Errorf("%s: the lease expired: %w", op, idp.ErrConflict)
		}
		res, err := q.ExecContext(ctx, `DELETE FROM api_agency_events WHERE id = $1 AND lease_id = $2`, eventID, leaseID)
		if err != nil {
			return sqldb.Err(op, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return sqldb.Err(op, err)
		} else if n == 0 {
			return fmt.Errorf("%s: the event is leased to another: %w", op, idp.ErrConflict)
		}
		_, err = q.ExecContext(ctx, `DELETE FROM api_agency_leases WHERE event_id = $1`, eventID)
		return sqldb.Err(op, err)
	})
}

// enqueueEvent puts e in its agency's queue and creates one pending
// delivery, due now, for each of the agency's webhooks subscribed to it.
// The webhooks are share-locked on PostgreSQL so that a concurrent
// DeleteWebhook waits and then deletes the new deliveries too.
func (s *Store) enqueueEvent(ctx context.Context, q sqldb.Querier, op string, e *mobileapi.Event) error {
	_, err := q.ExecContext(ctx, `INSERT INTO api_agency_events
		(id, type, agency_code, application_id, service_id, service_code, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.ID, string(e.Type), e.AgencyCode, e.ApplicationID, e.ServiceID, e.ServiceCode, sqldb.MS(e.OccurredAt))
	if err != nil {
		return sqldb.Err(op, err)
	}
	hooks, err := s.subscribed(ctx, q, op, e.AgencyCode, e.Type)
	if err != nil {
		return err
	}
	return s.enqueueDeliveries(ctx, q, op, hooks, e)
}

// enqueueDeliveries puts one delivery of e for each hook on the job queue,
// inside q.
func (s *Store) enqueueDeliveries(ctx context.Context, q sqldb.Querier, op string, hooks []subscriber, e *mobileapi.Event) error {
	if len(hooks) == 0 {
		return nil
	}
	if s.jobs == nil {
		return errNoQueue(op)
	}
	jobs := make([]*queue.Job, 0, len(hooks))
	for _, h := range hooks {
		j, err := newDeliveryJob(h, e)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		jobs = append(jobs, j)
	}
	return s.jobs.EnqueueJobsTx(ctx, q, jobs...)
}

func scanEvent(r sqldb.Scanner) (*mobileapi.Event, error) {
	var (
		e   mobileapi.Event
		typ string
		at  int64
	)
	if err := r.Scan(&e.ID, &typ, &e.AgencyCode, &e.ApplicationID, &e.ServiceID, &e.ServiceCode, &at); err != nil {
		return nil, err
	}
	e.Type, e.OccurredAt = mobileapi.EventType(typ), sqldb.FromMS(at)
	return &e, nil
}

// skipLocked ends a SELECT that claims rows for work: on PostgreSQL it
// locks them and skips those another transaction holds, so concurrent
// claimers split the rows instead of queueing on them. SQLite's write
// transaction already excludes other claimers.
func (s *Store) skipLocked() string {
	if s.d == sqldb.PostgreSQL {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// forShare locks the selected rows against change and deletion on
// PostgreSQL while letting other readers lock them too.
func (s *Store) forShare() string {
	if s.d == sqldb.PostgreSQL {
		return " FOR SHARE"
	}
	return ""
}

// subscriber is a webhook an event goes to.
type subscriber struct{ id, url string }

// subscribed returns the agency's webhooks that receive events of type t:
// those naming it, and, for an application event, those naming none. The
// webhooks are share-locked on PostgreSQL so that a concurrent
// DeleteWebhook waits and then deletes the new deliveries too: no job
// outlives its webhook (push_jobs has no foreign key into api_ tables).
func (s *Store) subscribed(ctx context.Context, q sqldb.Querier, op, agencyCode string, t mobileapi.EventType) ([]subscriber, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, url, events FROM api_webhooks WHERE agency_code = $1 ORDER BY created_at, id`+s.forShare(), agencyCode)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var hooks []subscriber
	for rows.Next() {
		var (
			id, url, events string
			types           []mobileapi.EventType
		)
		if err := rows.Scan(&id, &url, &events); err != nil {
			return nil, sqldb.Err(op, err)
		}
		if err := json.Unmarshal([]byte(events), &types); err != nil {
			return nil, fmt.Errorf("%s: webhook %s: events: %w", op, id, err)
		}
		if len(types) == 0 {
			types = mobileapi.ApplicationEvents
		}
		if slices.Contains(types, t) {
			hooks = append(hooks, subscriber{id: id, url: url})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, sqldb.Err(op, err)
	}
	return hooks, nil
}

// EnqueueConsentWithdrawn creates, inside q (the caller's transaction: the
// consent store's withdrawal), one pending delivery due now of a
// consent.withdrawn event for each of the agency's webhooks subscribed to
// it, and returns how many. The event does not enter the agency's lease
// queue. An empty agency (a client bound to none) gets nothing.
func (s *Store) EnqueueConsentWithdrawn(ctx context.Context, q sqldb.Querier, agencyCode string, c mobileapi.ConsentEvent, at time.Time) (int, error) {
	const op = "enqueue consent event"
	if agencyCode == "" {
		return 0, nil
	}
	if c.ID == "" || c.Receipt == "" {
		return 0, invalidInput(op, "the consent id and receipt are required")
	}
	if at.IsZero() {
		at = s.clock()
	}
	at = at.UTC().Truncate(time.Millisecond)
	hooks, err := s.subscribed(ctx, q, op, agencyCode, mobileapi.EventConsentWithdrawn)
	if err != nil || len(hooks) == 0 {
		return 0, err
	}
	e := &mobileapi.Event{ID: newID("evt"), Type: mobileapi.EventConsentWithdrawn, AgencyCode: agencyCode, OccurredAt: at, Consent: &c}
	if err := s.enqueueDeliveries(ctx, q, op, hooks, e); err != nil {
		return 0, err
	}
	return len(hooks), nil
}
