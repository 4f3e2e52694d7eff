package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
)

var (
	_ idp.SessionStore          = (*Store)(nil)
	_ idp.DeliveryStore         = (*Store)(nil)
	_ idp.SubjectRefreshRevoker = (*Store)(nil)
)

// CreateSession records a new single sign-on session.
func (s *Store) CreateSession(ctx context.Context, ss *idp.Session) error {
	return s.inTx(ctx, "create session", func(q querier) error {
		_, err := q.ExecContext(ctx, `INSERT INTO idp_sso_sessions (sid, citizen_id, device_id, level, session_key, auth_time, expires_at, ephemeral)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			ss.SID, ss.CitizenID, ss.DeviceID, string(ss.Level), ss.Key, ms(ss.AuthTime), ms(ss.ExpiresAt), ss.Ephemeral)
		if err != nil {
			return dbErr("create session", err)
		}
		for _, c := range ss.Clients {
			if _, err := q.ExecContext(ctx, `INSERT INTO idp_sso_session_clients (sid, client_id, first_at) VALUES ($1, $2, $3)
				ON CONFLICT (sid, client_id) DO NOTHING`, ss.SID, c, ms(ss.AuthTime)); err != nil {
				return dbErr("create session", err)
			}
		}
		return nil
	})
}

// TouchSession records a client the session logged in to. The session row
// is locked for share first (PostgreSQL; SQLite's write transaction
// excludes everyone): a concurrent EndSessions either ends the session
// before (and the touch fails) or sees the client and queues its logout.
func (s *Store) TouchSession(ctx context.Context, sid, clientID string, at time.Time) error {
	const op = "touch session"
	return s.inTx(ctx, op, func(q querier) error {
		var ended sql.NullInt64
		var expires int64
		err := q.QueryRowContext(ctx, `SELECT ended_at, expires_at FROM idp_sso_sessions WHERE sid = $1`+s.forShare(), sid).Scan(&ended, &expires)
		if err != nil {
			return dbErr(op, err)
		}
		if ended.Valid || expires <= ms(at) {
			return fmt.Errorf("%s: the session has ended: %w", op, idp.ErrExpired)
		}
		_, err = q.ExecContext(ctx, `INSERT INTO idp_sso_session_clients (sid, client_id, first_at) VALUES ($1, $2, $3)
			ON CONFLICT (sid, client_id) DO NOTHING`, sid, clientID, ms(at))
		return dbErr(op, err)
	})
}

const sessionColumns = `sid, citizen_id, device_id, level, session_key, auth_time, expires_at, ended_at, ephemeral`

func scanSession(r scanner) (*idp.Session, error) {
	var (
		ss            idp.Session
		level         string
		auth, expires int64
		ended         sql.NullInt64
	)
	if err := r.Scan(&ss.SID, &ss.CitizenID, &ss.DeviceID, &level, &ss.Key, &auth, &expires, &ended, &ss.Ephemeral); err != nil {
		return nil, err
	}
	ss.Level, ss.AuthTime, ss.ExpiresAt, ss.EndedAt = idp.Level(level), fromMS(auth), fromMS(expires), fromNullMS(ended)
	return &ss, nil
}

// sessionClients fills in the clients of each session.
func sessionClients(ctx context.Context, q querier, op string, ss []*idp.Session) error {
	for _, x := range ss {
		rows, err := q.QueryContext(ctx, `SELECT client_id FROM idp_sso_session_clients WHERE sid = $1 ORDER BY first_at, client_id`, x.SID)
		if err != nil {
			return dbErr(op, err)
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return dbErr(op, err)
			}
			x.Clients = append(x.Clients, c)
		}
		if err := rows.Close(); err != nil {
			return dbErr(op, err)
		}
	}
	return nil
}

// ListSessions returns the citizen's live sessions, newest first.
func (s *Store) ListSessions(ctx context.Context, citizenID string, now time.Time) ([]*idp.Session, error) {
	const op = "list sessions"
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionColumns+` FROM idp_sso_sessions
		WHERE citizen_id = $1 AND ended_at IS NULL AND expires_at > $2 ORDER BY auth_time DESC, sid`, citizenID, ms(now))
	if err != nil {
		return nil, dbErr(op, err)
	}
	var out []*idp.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			rows.Close()
			return nil, dbErr(op, err)
		}
		out = append(out, ss)
	}
	if err := rows.Close(); err != nil {
		return nil, dbErr(op, err)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(op, err)
	}
	return out, sessionClients(ctx, s.db, op, out)
}

// EndSessions ends the selected live sessions and queues their
// back-channel logouts in one transaction. The conditional UPDATE decides
// who ends a session: of two concurrent calls only one sees ended_at NULL.
func (s *Store) EndSessions(ctx context.Context, f idp.SessionFilter, at time.Time) ([]*idp.Session, error) {
	const op = "end sessions"
	if f.Empty() {
		return nil, fmt.Errorf("%s: no filter: %w", op, idp.ErrInvalid)
	}
	where := []string{"ended_at IS NULL", "expires_at > $1"}
	args := []any{ms(at)}
	for _, c := range []struct{ col, v string }{{"sid", f.SID}, {"citizen_id", f.CitizenID}, {"device_id", f.DeviceID}} {
		if c.v != "" {
			args = append(args, c.v)
			where = append(where, c.col+" = $"+strconv.Itoa(len(args)))
		}
	}
	var out []*idp.Session
	err := s.inTx(ctx, op, func(q querier) error {
		out = nil
		rows, err := q.QueryContext(ctx, `UPDATE idp_sso_sessions SET ended_at = $1 WHERE `+strings.Join(where, " AND ")+
			` RETURNING `+sessionColumns, args...)
		if err != nil {
			return dbErr(op, err)
		}
		for rows.Next() {
			ss, err := scanSession(rows)
			if err != nil {
				rows.Close()
				return dbErr(op, err)
			}
			out = append(out, ss)
		}
		if err := rows.Close(); err != nil {
			return dbErr(op, err)
		}
		if err := sessionClients(ctx, q, op, out); err != nil {
			return err
		}
		for _, ss := range out {
			if _, err := q.ExecContext(ctx, `INSERT INTO idp_deliveries (id, client_id, sid, subject, state, next_attempt_at, created_at, updated_at)
				SELECT CAST($1 AS TEXT) || c.id, c.id, $2, $3, 'pending', $4, $4, $4 FROM idp_sso_session_clients sc
				JOIN idp_clients c ON c.id = sc.client_id
				WHERE sc.sid = $2 AND c.backchannel_logout_uri <> ''
				ON CONFLICT (client_id, sid) DO NOTHING`, newLogoutID()+":", ss.SID, ss.CitizenID, ms(at)); err != nil {
				return dbErr(op, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// newLogoutID prefixes the delivery ids of one ended session (the client id
// follows).
func newLogoutID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return fmt.Sprintf("bcl_%x", b)
}

// deliveryColumns: the URI is the client's current registration, by kind
// (a ping's only while the client is in ping mode and active: a registered
// client's new endpoint is unreviewed while it is pending, and must not
// receive the bearer token).
const deliveryColumns = `d.id, d.kind, d.client_id, d.sid, d.subject, d.payload, d.secret, d.expires_at, d.state, d.attempts,
	d.next_attempt_at, d.last_status, d.last_error, d.created_at,
	COALESCE((SELECT CASE WHEN d.kind = 'ciba_ping' THEN
		CASE WHEN c.backchannel_token_delivery_mode = 'ping' AND c.status = 'active' THEN c.backchannel_client_notification_endpoint ELSE '' END
		ELSE c.backchannel_logout_uri END FROM idp_clients c WHERE c.id = d.client_id), ''),
	COALESCE((SELECT c.id_token_alg FROM idp_clients c WHERE c.id = d.client_id), ''), d.lease_id`

func queryDeliveries(ctx context.Context, q querier, op, query string, args ...any) ([]*idp.Delivery, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*idp.Delivery
	for rows.Next() {
		var (
			d                      idp.Delivery
			expires, next, created int64
		)
		if err := rows.Scan(&d.ID, &d.Kind, &d.ClientID, &d.SID, &d.Subject, &d.Payload, &d.Secret, &expires, &d.State, &d.Attempts,
			&next, &d.LastStatus, &d.LastError, &created, &d.URI, &d.IDTokenAlg, &d.LeaseID); err != nil {
			return nil, dbErr(op, err)
		}
		d.NextAttemptAt, d.CreatedAt = fromMS(next), fromMS(created)
		if expires > 0 {
			t := fromMS(expires)
			d.ExpiresAt = &t
		}
		out = append(out, &d)
	}
	return out, dbErr(op, rows.Err())
}

// EnqueueDelivery queues a delivery, held or pending.
func (s *Store) EnqueueDelivery(ctx context.Context, d *idp.Delivery) error {
	const op = "enqueue delivery"
	if d.Kind != idp.DeliveryCIBAPing && d.Kind != idp.DeliveryBackchannelLogout {
		return fmt.Errorf("%s: unknown kind %q: %w", op, d.Kind, idp.ErrInvalid)
	}
	if d.State != idp.DeliveryHeld && d.State != idp.DeliveryPending {
		return fmt.Errorf("%s: a new delivery is held or pending: %w", op, idp.ErrInvalid)
	}
	if d.ClientID == "" || d.SID == "" {
		return fmt.Errorf("%s: client and sid are required: %w", op, idp.ErrInvalid)
	}
	expires := int64(0)
	if d.ExpiresAt != nil {
		expires = ms(*d.ExpiresAt)
	}
	d.ID = newLogoutID()
	now := ms(s.now())
	done, err := s.writeTurn(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer done()
	_, err = s.db.ExecContext(ctx, `INSERT INTO idp_deliveries (id, kind, client_id, sid, subject, payload, secret, expires_at, state,
		next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
		d.ID, d.Kind, d.ClientID, d.SID, d.Subject, d.Payload, d.Secret, expires, d.State, ms(d.NextAttemptAt), now)
	return dbErr(op, err)
}

// ReleaseDelivery makes a held delivery due.
func (s *Store) ReleaseDelivery(ctx context.Context, clientID, sid string, at time.Time) error {
	const op = "release delivery"
	done, err := s.writeTurn(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer done()
	res, err := s.db.ExecContext(ctx, `UPDATE idp_deliveries SET state = 'pending', next_attempt_at = $1, updated_at = $1
		WHERE client_id = $2 AND sid = $3 AND state = 'held' AND (expires_at = 0 OR expires_at > $1)`, ms(at), clientID, sid)
	if err != nil {
		return dbErr(op, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("%s: no held delivery: %w", op, idp.ErrNotFound)
	}
	return nil
}

// ClaimDeliveries claims up to n due pending deliveries of a kind ("": any),
// oldest due first.
// On PostgreSQL the candidates are locked and rows other claimers hold are
// skipped, so replicas split the work; SQLite's write transaction excludes
// other claimers.
func (s *Store) ClaimDeliveries(ctx context.Context, kind string, n int, lease time.Duration) ([]*idp.Delivery, error) {
	const op = "claim deliveries"
	if n < 1 || lease < time.Millisecond {
		return nil, fmt.Errorf("%s: n and lease must be positive: %w", op, idp.ErrInvalid)
	}
	var out []*idp.Delivery
	err := s.inTx(ctx, op, func(q querier) error {
		now := ms(s.now())
		var err error
		out, err = queryDeliveries(ctx, q, op, `SELECT `+deliveryColumns+` FROM idp_deliveries d
			WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND d.lease_until <= $1 AND ($3 = '' OR d.kind = $3)
			ORDER BY d.next_attempt_at, d.id LIMIT $2`+s.skipLocked(), now, n, kind)
		if err != nil {
			return err
		}
		for _, d := range out {
			d.LeaseID = newLogoutID()
			if _, err := q.ExecContext(ctx, `UPDATE idp_deliveries SET lease_until = $1, lease_id = $2 WHERE id = $3`,
				now+lease.Milliseconds(), d.LeaseID, d.ID); err != nil {
				return dbErr(op, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RecordDelivery records an attempt made under the lease and releases it; a
// final state blanks the secret.
func (s *Store) RecordDelivery(ctx context.Context, id, leaseID string, a idp.DeliveryAttempt) error {
	const op = "record delivery"
	switch a.State {
	case idp.DeliveryPending:
		if a.Next == nil {
			return fmt.Errorf("%s: a pending delivery needs its next attempt time: %w", op, idp.ErrInvalid)
		}
	case idp.DeliveryDelivered, idp.DeliveryDead:
	default:
		return fmt.Errorf("%s: unknown state: %w", op, idp.ErrInvalid)
	}
	next := int64(0)
	if a.Next != nil {
		next = ms(*a.Next)
	}
	errText := a.Error
	if len(errText) > 200 {
		errText = errText[:200]
	}
	done, err := s.writeTurn(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer done()
	res, err := s.db.ExecContext(ctx, `UPDATE idp_deliveries SET state = $1, attempts = attempts + 1, next_attempt_at = $2,
		lease_until = 0, lease_id = '', last_status = $3, last_error = $4, updated_at = $5,
		secret = CASE WHEN $1 = 'pending' THEN secret ELSE '' END
		WHERE id = $6 AND lease_id = $7 AND state = 'pending'`,
		a.State, next, a.StatusCode, strings.ToValidUTF8(errText, ""), ms(a.At), id, leaseID)
	if err != nil {
		return dbErr(op, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("%s: the lease on %s was lost: %w", op, id, idp.ErrConflict)
	}
	return nil
}

// ListDeliveries returns the deliveries for a SID, without secrets.
func (s *Store) ListDeliveries(ctx context.Context, sid string) ([]*idp.Delivery, error) {
	out, err := queryDeliveries(ctx, s.db, "list deliveries", `SELECT `+deliveryColumns+` FROM idp_deliveries d WHERE d.sid = $1 ORDER BY d.client_id`, sid)
	for _, d := range out {
		d.LeaseID, d.Secret = "", ""
	}
	return out, err
}

// PendingDeliveries counts a kind's deliveries not yet final.
func (s *Store) PendingDeliveries(ctx context.Context, kind string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM idp_deliveries WHERE state IN ('held', 'pending') AND kind = $1`, kind).Scan(&n)
	return n, dbErr("count pending deliveries", err)
}

// RevokeSubjectRefreshTokens deactivates the subject's families and returns
// the request IDs of all its unexpired ones, revoked now or before, so that
// a caller retrying after a failure denies their access tokens again.
func (s *Store) RevokeSubjectRefreshTokens(ctx context.Context, subject string) ([]string, error) {
	const op = "revoke subject refresh tokens"
	var ids []string
	err := s.inTx(ctx, op, func(q querier) error {
		ids = nil
		rows, err := q.QueryContext(ctx, `SELECT request_id FROM idp_refresh_families WHERE subject = $1 AND expires_at > $2 ORDER BY request_id`,
			subject, ms(s.now()))
		if err != nil {
			return dbErr(op, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return dbErr(op, err)
			}
			ids = append(ids, id)
		}
		if err := rows.Close(); err != nil {
			return dbErr(op, err)
		}
		_, err = q.ExecContext(ctx, `UPDATE idp_refresh_families SET active = $2 WHERE subject = $1 AND active = $3`, subject, false, true)
		return dbErr(op, err)
	})
	return ids, err
}

// deleteEndedSessions removes sessions expired before now with their
// clients, and finished deliveries older than a month. GarbageCollect holds
// the write turn: plain statements, no transaction.
func (s *Store) deleteEndedSessions(ctx context.Context, now time.Time) error {
	const op = "garbage collect sessions"
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idp_sso_session_clients WHERE sid IN
		(SELECT sid FROM idp_sso_sessions WHERE expires_at < $1)`, ms(now)); err != nil {
		return dbErr(op, err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM idp_sso_sessions WHERE expires_at < $1`, ms(now)); err != nil {
		return dbErr(op, err)
	}
	// A delivery past its expiry is given up with its secret, whether its
	// worker saw it or (a held ping never answered) not; a leased one is
	// left to its worker.
	if _, err := s.db.ExecContext(ctx, `UPDATE idp_deliveries SET state = 'dead', secret = '', last_error = 'expired', updated_at = $1
		WHERE state IN ('held', 'pending') AND expires_at > 0 AND expires_at <= $1 AND lease_until <= $1`, ms(now)); err != nil {
		return dbErr(op, err)
	}
	_, err := s.db.ExecContext(ctx, `DELETE FROM idp_deliveries WHERE state NOT IN ('held', 'pending') AND updated_at < $1`,
		ms(now.Add(-30*24*time.Hour)))
	return dbErr(op, err)
}

func (s *Store) skipLocked() string {
	if s.d == PostgreSQL {
		return " FOR UPDATE OF d SKIP LOCKED"
	}
	return ""
}

func (s *Store) forShare() string {
	if s.d == PostgreSQL {
		return " FOR SHARE"
	}
	return ""
}
