package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
)

var _ push.BroadcastStore = (*Store)(nil)

const broadcastColumns = `id, agency_code, province, title_vi, title_en, body, expires_at, state, cursor_citizen,
	cursor_installation, sent, failed, skipped, live_seq, created_at, updated_at`

func scanBroadcast(r sqldb.Scanner) (*push.Broadcast, error) {
	var (
		b                     push.Broadcast
		state                 string
		expires, created, upd int64
	)
	if err := r.Scan(&b.ID, &b.AgencyCode, &b.Province, &b.Title.VI, &b.Title.EN, &b.Body, &expires, &state, &b.CursorCitizen,
		&b.CursorInstallation, &b.Sent, &b.Failed, &b.Skipped, &b.LiveSeq, &created, &upd); err != nil {
		return nil, err
	}
	b.State, b.CreatedAt, b.UpdatedAt = push.BroadcastState(state), sqldb.FromMS(created), sqldb.FromMS(upd)
	if expires != 0 {
		b.ExpiresAt = sqldb.FromMS(expires)
	}
	return &b, nil
}

// CreateBroadcast implements push.BroadcastStore.
func (s *Store) CreateBroadcast(ctx context.Context, b *push.Broadcast) error {
	const op = "create broadcast"
	if b.Title.VI == "" && b.Title.EN == "" {
		return invalidInput(op, "a title is required")
	}
	now := s.clock()
	b.ID, b.State, b.CreatedAt, b.UpdatedAt = newID("brd_"), push.BroadcastQueued, now, now
	b.CursorCitizen, b.CursorInstallation, b.Sent, b.Failed, b.Skipped = "", "", 0, 0, 0
	var expires int64
	if !b.ExpiresAt.IsZero() {
		expires = sqldb.MS(b.ExpiresAt)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO push_broadcasts (id, agency_code, province, title_vi, title_en, body, expires_at,
		state, cursor_citizen, cursor_installation, sent, failed, skipped, claim_id, claimed_until, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', '', 0, 0, 0, '', 0, $9, $9)`,
		b.ID, b.AgencyCode, b.Province, b.Title.VI, b.Title.EN, b.Body, expires, string(b.State), sqldb.MS(now))
	return sqldb.Err(op, err)
}

// GetBroadcast implements push.BroadcastStore.
func (s *Store) GetBroadcast(ctx context.Context, id string) (*push.Broadcast, error) {
	b, err := scanBroadcast(s.db.QueryRowContext(ctx, `SELECT `+broadcastColumns+` FROM push_broadcasts WHERE id = $1`, id))
	if err != nil {
		return nil, sqldb.Err("get broadcast", err)
	}
	return b, nil
}

// ListBroadcasts implements push.BroadcastStore: newest first.
func (s *Store) ListBroadcasts(ctx context.Context, limit int) ([]*push.Broadcast, error) {
	return s.queryBroadcasts(ctx, "list broadcasts", `SELECT `+broadcastColumns+` FROM push_broadcasts ORDER BY created_at DESC, id LIMIT $1`,
		min(max(limit, 1), 1000))
}

// queryBroadcasts runs a query selecting broadcastColumns and scans every row.
func (s *Store) queryBroadcasts(ctx context.Context, op, query string, args ...any) ([]*push.Broadcast, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*push.Broadcast
	for rows.Next() {
		b, err := scanBroadcast(rows)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		out = append(out, b)
	}
	return out, sqldb.Err(op, rows.Err())
}

// ClaimBroadcast implements push.BroadcastStore.
func (s *Store) ClaimBroadcast(ctx context.Context, lease time.Duration) (*push.Broadcast, string, error) {
	const op = "claim broadcast"
	var (
		b     *push.Broadcast
		claim = newID("clm_")
	)
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := s.clock()
		inner := `SELECT id FROM push_broadcasts WHERE state IN ('queued', 'sending') AND claimed_until <= $1 ORDER BY created_at, id LIMIT 1`
		if s.d == sqldb.PostgreSQL {
			inner += ` FOR UPDATE SKIP LOCKED`
		}
		var err error
		// live_seq: one above the highest committed. A concurrent first
		// claim that read the same highest fails on the unique index (on
		// PostgreSQL it waits for the other to commit) and is retried by
		// the dispatcher's next step.
		b, err = scanBroadcast(q.QueryRowContext(ctx, `UPDATE push_broadcasts SET state = 'sending', claim_id = $2, claimed_until = $3, updated_at = $1,
			live_seq = CASE WHEN live_seq = 0 THEN (SELECT COALESCE(MAX(live_seq), 0) + 1 FROM push_broadcasts) ELSE live_seq END
			WHERE id IN (`+inner+`) RETURNING `+broadcastColumns, sqldb.MS(now), claim, sqldb.MS(now.Add(lease))))
		if errors.Is(err, sql.ErrNoRows) {
			b = nil
			return nil
		}
		return sqldb.Err(op, err)
	})
	if err != nil || b == nil {
		return nil, "", err
	}
	return b, claim, nil
}

// BroadcastTargets implements push.BroadcastStore.
func (s *Store) BroadcastTargets(ctx context.Context, afterCitizen, afterInstallation string, n int) ([]*push.Installation, map[string]*push.Preferences, error) {
	const op = "broadcast targets"
	rows, err := s.db.QueryContext(ctx, `SELECT `+installationColumns+` FROM push_installations
		WHERE citizen_id > $1 OR (citizen_id = $1 AND id > $2) ORDER BY citizen_id, id LIMIT $3`,
		afterCitizen, afterInstallation, min(max(n, 1), 5000))
	if err != nil {
		return nil, nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var (
		out      []*push.Installation
		citizens []any
		seen     = map[string]bool{}
	)
	for rows.Next() {
		in, err := scanInstallation(rows)
		if err != nil {
			return nil, nil, sqldb.Err(op, err)
		}
		out = append(out, in)
		if !seen[in.CitizenID] {
			seen[in.CitizenID] = true
			citizens = append(citizens, in.CitizenID)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, sqldb.Err(op, err)
	}
	rows.Close()
	prefs, bad, err := s.preferencesOf(ctx, s.db, op, citizens)
	if err != nil {
		return nil, nil, err
	}
	for _, err := range bad {
		return nil, nil, sqldb.Err(op, err)
	}
	return out, prefs, nil
}

// AdvanceBroadcast implements push.BroadcastStore.
func (s *Store) AdvanceBroadcast(ctx context.Context, p push.BroadcastProgress) error {
	const op = "advance broadcast"
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		res, err := q.ExecContext(ctx, `UPDATE push_broadcasts SET state = $1, cursor_citizen = $2, cursor_installation = $3,
			sent = sent + $4, failed = failed + $5, skipped = skipped + $6, claim_id = '', claimed_until = 0, updated_at = $7
			WHERE id = $8 AND claim_id = $9`,
			string(p.State), p.CursorCitizen, p.CursorInstallation, p.Sent, p.Failed, p.Skipped, sqldb.MS(s.clock()), p.ID, p.Claim)
		if err != nil {
			return sqldb.Err(op, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return sqldb.Err(op, err) // a lapsed claim: another dispatcher has it
		}
		if err := s.EnqueueTx(ctx, q, p.Deferred...); err != nil {
			return err
		}
		if len(p.Unregistered) > 0 {
			ids := make([]any, len(p.Unregistered))
			for i, id := range p.Unregistered {
				ids[i] = id
			}
			if _, err := q.ExecContext(ctx, `DELETE FROM push_installations WHERE id IN (`+s.placeholders(1, len(ids))+`)`, ids...); err != nil {
				return sqldb.Err(op, err)
			}
		}
		return nil
	})
}

// BroadcastsAfter implements push.BroadcastStore.
func (s *Store) BroadcastsAfter(ctx context.Context, after int64, limit int) ([]*push.Broadcast, error) {
	return s.queryBroadcasts(ctx, "list broadcasts after", `SELECT `+broadcastColumns+` FROM push_broadcasts
		WHERE live_seq > $1 AND state <> 'expired' AND (expires_at = 0 OR expires_at > $2) ORDER BY live_seq LIMIT $3`,
		max(after, 0), sqldb.MS(s.clock()), min(max(limit, 1), 1000))
}

// LastBroadcastSeq implements push.BroadcastStore.
func (s *Store) LastBroadcastSeq(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(live_seq), 0) FROM push_broadcasts`).Scan(&n)
	return n, sqldb.Err("last broadcast position", err)
}
