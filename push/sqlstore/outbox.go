package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
)

// Enqueue implements push.OutboxStore in a transaction of its own.
func (s *Store) Enqueue(ctx context.Context, msgs ...*push.Message) error {
	return s.inTx(ctx, "enqueue messages", func(q sqldb.Querier) error { return s.EnqueueTx(ctx, q, msgs...) })
}

// EnqueueTx stores msgs, due now, inside the caller's transaction q: the
// state change that causes a message and the message commit together or
// not at all. Each message gets an ID (unless it has one), its Seq and
// CreatedAt. Up to enqueueChunk messages go in one INSERT: a statement per
// message cost a round trip on PostgreSQL and a parse on SQLite each.
func (s *Store) EnqueueTx(ctx context.Context, q sqldb.Querier, msgs ...*push.Message) error {
	const op = "enqueue messages"
	for _, m := range msgs {
		switch {
		case m.CitizenID == "":
			return invalidInput(op, "citizen_id is required")
		case !m.Kind.Valid():
			return invalidInput(op, "unknown kind")
		}
	}
	now := s.clock()
	for chunk := range slices.Chunk(msgs, enqueueChunk) {
		byID := make(map[string]*push.Message, len(chunk))
		args := make([]any, 0, len(chunk)*enqueueArgs)
		var b strings.Builder
		b.WriteString(`INSERT INTO push_messages (id, citizen_id, kind, service_code, agency_code, application_id,
			inbox_message_id, title_vi, title_en, body, priority, collapse_key, expires_at, next_attempt_at, created_at,
			updated_at, state, attempts, claim_id, claimed_until, delivered, last_error) VALUES `)
		for i, m := range chunk {
			if m.ID == "" {
				m.ID = push.NewMessageID()
			}
			m.State, m.Attempts, m.NextAttemptAt, m.Delivered = push.StateQueued, 0, now, nil
			m.CreatedAt, m.UpdatedAt = now, now
			var expires int64
			if !m.ExpiresAt.IsZero() {
				expires = sqldb.MS(m.ExpiresAt)
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + s.placeholders(len(args)+1, enqueueArgs) + ", 'queued', 0, '', 0, '[]', '')")
			args = append(args, m.ID, m.CitizenID, string(m.Kind), m.ServiceCode, m.AgencyCode, m.ApplicationID,
				m.InboxMessageID, m.Title.VI, m.Title.EN, m.Body, int(m.Priority), m.CollapseKey, expires,
				sqldb.MS(now), sqldb.MS(now), sqldb.MS(now))
			byID[m.ID] = m
		}
		b.WriteString(` RETURNING id, seq`)
		if err := s.scanSeqs(ctx, q, b.String(), args, byID); err != nil {
			return sqldb.Err(op, err)
		}
	}
	return nil
}

// enqueueChunk messages of enqueueArgs parameters each stay far below
// SQLite's 32,766 and PostgreSQL's 65,535 parameters per statement.
const (
	enqueueChunk = 500
	enqueueArgs  = 16
)

// scanSeqs runs an INSERT … RETURNING id, seq and sets each message's Seq
// (neither engine promises RETURNING's order).
func (s *Store) scanSeqs(ctx context.Context, q sqldb.Querier, query string, args []any, byID map[string]*push.Message) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			id  string
			seq int64
		)
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		if m := byID[id]; m != nil {
			m.Seq = seq
			n++
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != len(byID) {
		return fmt.Errorf("inserted %d of %d messages", n, len(byID))
	}
	return nil
}

const messageColumns = `seq, id, citizen_id, kind, service_code, agency_code, application_id, inbox_message_id,
	title_vi, title_en, body, priority, collapse_key, expires_at, state, attempts, next_attempt_at, delivered,
	last_error, created_at, updated_at`

func scanMessage(r sqldb.Scanner) (*push.Message, error) {
	var (
		m                           push.Message
		kind, state, delivered      string
		priority                    int
		expires, next, created, upd int64
	)
	if err := r.Scan(&m.Seq, &m.ID, &m.CitizenID, &kind, &m.ServiceCode, &m.AgencyCode, &m.ApplicationID, &m.InboxMessageID,
		&m.Title.VI, &m.Title.EN, &m.Body, &priority, &m.CollapseKey, &expires, &state, &m.Attempts, &next, &delivered,
		&m.LastError, &created, &upd); err != nil {
		return nil, err
	}
	m.Kind, m.State, m.Priority = push.Kind(kind), push.State(state), push.Priority(priority)
	if expires != 0 {
		m.ExpiresAt = sqldb.FromMS(expires)
	}
	m.NextAttemptAt, m.CreatedAt, m.UpdatedAt = sqldb.FromMS(next), sqldb.FromMS(created), sqldb.FromMS(upd)
	if err := json.Unmarshal([]byte(delivered), &m.Delivered); err != nil {
		return nil, fmt.Errorf("message %s: delivered: %w", m.ID, err)
	}
	return &m, nil
}

// due is the claimable condition: not final, due, and not claimed (or its
// claim lapsed: a dispatcher died).
const due = `state IN ('queued', 'sent', 'failed') AND next_attempt_at <= $1 AND claimed_until <= $1`

// Claim implements push.OutboxStore: one statement claims the batch (on
// PostgreSQL skipping rows another claimer holds), then the citizens'
// installations and preferences are read in two queries.
func (s *Store) Claim(ctx context.Context, n int, lease time.Duration) ([]*push.Job, error) {
	const op = "claim messages"
	if n < 1 || lease < time.Millisecond {
		return nil, invalidInput(op, "n and lease must be positive")
	}
	var jobs []*push.Job
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := s.clock()
		claim := newID("clm_")
		inner := `SELECT seq FROM push_messages WHERE ` + due + ` ORDER BY next_attempt_at, seq LIMIT $2`
		if s.d == sqldb.PostgreSQL {
			inner += ` FOR UPDATE SKIP LOCKED`
		}
		rows, err := q.QueryContext(ctx, `UPDATE push_messages SET state = 'sent', attempts = attempts + 1, claim_id = $3,
			claimed_until = $4, updated_at = $1 WHERE seq IN (`+inner+`) RETURNING `+messageColumns,
			sqldb.MS(now), n, claim, sqldb.MS(now.Add(lease)))
		if err != nil {
			return sqldb.Err(op, err)
		}
		defer rows.Close()
		byCitizen := map[string][]*push.Job{}
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return sqldb.Err(op, err)
			}
			j := &push.Job{Claim: claim, Message: m}
			jobs = append(jobs, j)
			byCitizen[m.CitizenID] = append(byCitizen[m.CitizenID], j)
		}
		if err := rows.Err(); err != nil {
			return sqldb.Err(op, err)
		}
		rows.Close()
		if len(jobs) == 0 {
			return nil
		}
		citizens := make([]any, 0, len(byCitizen))
		for c := range byCitizen {
			citizens = append(citizens, c)
		}
		in := s.placeholders(1, len(citizens))
		rows, err = q.QueryContext(ctx, `SELECT `+installationColumns+` FROM push_installations WHERE citizen_id IN (`+in+`) ORDER BY created_at, id`, citizens...)
		if err != nil {
			return sqldb.Err(op, err)
		}
		defer rows.Close()
		for rows.Next() {
			ins, err := scanInstallation(rows)
			if err != nil {
				return sqldb.Err(op, err)
			}
			for _, j := range byCitizen[ins.CitizenID] {
				j.Installations = append(j.Installations, ins)
			}
		}
		if err := rows.Err(); err != nil {
			return sqldb.Err(op, err)
		}
		rows.Close()
		prefs, err := s.preferencesOf(ctx, q, op, citizens)
		if err != nil {
			return err
		}
		for c, p := range prefs {
			for _, j := range byCitizen[c] {
				j.Preferences = p
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.Preferences == nil {
			j.Preferences = push.DefaultPreferences(j.Message.CitizenID)
		}
	}
	return jobs, nil
}

// Record implements push.OutboxStore. An outcome whose claim lapsed and was
// taken by another dispatcher changes nothing: that one records its own.
// A deferral decided on preferences the citizen replaced since the claim
// (a message's updated_at is its claim's time) is due at once, to be decided
// again on the new ones.
// A final message loses its full text. The outcomes are written by one
// UPDATE per recordChunk joined to a VALUES list: a statement per outcome
// made recording a batch cost more than claiming and sending it.
func (s *Store) Record(ctx context.Context, outs []push.Outcome) error {
	const op = "record message outcomes"
	if len(outs) == 0 {
		return nil
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := sqldb.MS(s.clock())
		var dead []any
		for chunk := range slices.Chunk(outs, recordChunk) {
			// now twice: SQLite's anonymous parameters bind by position.
			args := make([]any, 2, 2+len(chunk)*recordArgs)
			args[0], args[1] = now, now
			var values strings.Builder
			for i, o := range chunk {
				delivered := o.Delivered
				if delivered == nil {
					delivered = []string{}
				}
				b, err := json.Marshal(delivered)
				if err != nil {
					return fmt.Errorf("%s: %w", op, err)
				}
				next := now
				if !o.NextAttemptAt.IsZero() {
					next = sqldb.MS(o.NextAttemptAt)
				}
				giveBack, final := 0, 0
				if o.Deferred {
					giveBack = 1
				}
				if o.State.Final() {
					final = 1
				}
				if i > 0 {
					values.WriteString(", ")
				}
				// Casts type the parameters alike on both engines.
				n := len(args)
				fmt.Fprintf(&values, "(%s, %s, %s, CAST(%s AS INTEGER), CAST(%s AS BIGINT), %s, %s, CAST(%s AS INTEGER))",
					s.arg(n+1), s.arg(n+2), s.arg(n+3), s.arg(n+4), s.arg(n+5), s.arg(n+6), s.arg(n+7), s.arg(n+8))
				args = append(args, o.MessageID, o.Claim, string(o.State), giveBack, next, string(b), truncate(o.LastError, 500), final)
				for _, id := range o.Unregistered {
					dead = append(dead, id)
				}
			}
			// VALUES columns are column1… on both engines.
			_, err := q.ExecContext(ctx, `UPDATE push_messages AS m SET state = v.column3, attempts = m.attempts - v.column4,
				quiet_deferred = v.column4,
				next_attempt_at = CASE WHEN v.column4 = 1 AND EXISTS (SELECT 1 FROM push_preferences AS p
					WHERE p.citizen_id = m.citizen_id AND p.updated_at > m.updated_at) THEN `+s.arg(1)+` ELSE v.column5 END, claim_id = '', claimed_until = 0, delivered = v.column6, last_error = v.column7,
				updated_at = `+s.arg(2)+`,
				title_vi = CASE WHEN v.column8 = 1 THEN '' ELSE m.title_vi END,
				title_en = CASE WHEN v.column8 = 1 THEN '' ELSE m.title_en END,
				body = CASE WHEN v.column8 = 1 THEN '' ELSE m.body END
				FROM (VALUES `+values.String()+`) AS v
				WHERE m.id = v.column1 AND m.claim_id = v.column2`, args...)
			if err != nil {
				return sqldb.Err(op, err)
			}
		}
		for chunk := range slices.Chunk(dead, recordChunk) {
			if _, err := q.ExecContext(ctx, `DELETE FROM push_installations WHERE id IN (`+s.placeholders(1, len(chunk))+`)`, chunk...); err != nil {
				return sqldb.Err(op, err)
			}
		}
		return nil
	})
}

// recordChunk outcomes of recordArgs parameters each stay far below
// SQLite's 32,766 and PostgreSQL's 65,535 parameters per statement.
const (
	recordChunk = 500
	recordArgs  = 8
)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// GetMessage implements push.OutboxStore.
func (s *Store) GetMessage(ctx context.Context, citizenID, id string) (*push.Message, error) {
	const op = "get message"
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM push_messages WHERE id = $1 AND citizen_id = $2`, id, citizenID))
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	return m, nil
}

// GetSentMessage implements push.OutboxStore.
func (s *Store) GetSentMessage(ctx context.Context, agencyCode, id string) (*push.Message, error) {
	const op = "get sent message"
	if agencyCode == "" {
		return nil, invalidInput(op, "agency_code is required")
	}
	m, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM push_messages WHERE id = $1 AND agency_code = $2`, id, agencyCode))
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	return m, nil
}

// ListSentMessages implements push.OutboxStore.
func (s *Store) ListSentMessages(ctx context.Context, agencyCode, applicationID string) ([]*push.Message, error) {
	const op = "list sent messages"
	if agencyCode == "" || applicationID == "" {
		return nil, invalidInput(op, "agency_code and application_id are required")
	}
	return s.queryMessages(ctx, op, `SELECT `+messageColumns+` FROM push_messages WHERE agency_code = $1 AND application_id = $2 ORDER BY seq LIMIT 1000`,
		agencyCode, applicationID)
}

func (s *Store) queryMessages(ctx context.Context, op, query string, args ...any) ([]*push.Message, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*push.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		out = append(out, m)
	}
	return out, sqldb.Err(op, rows.Err())
}

// MessagesAfter implements push.OutboxStore.
func (s *Store) MessagesAfter(ctx context.Context, citizenID string, after int64, limit int) ([]*push.Message, error) {
	const op = "list messages"
	limit = min(max(limit, 1), 1000)
	return s.queryMessages(ctx, op, `SELECT `+messageColumns+` FROM push_messages WHERE citizen_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		citizenID, after, limit)
}

// LastSeq implements push.OutboxStore.
func (s *Store) LastSeq(ctx context.Context, citizenID string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM push_messages WHERE citizen_id = $1`, citizenID).Scan(&n)
	return n, sqldb.Err("last message position", err)
}

// Sweep deletes final messages last changed before before, so the outbox
// keeps receipts and the live stream's catch-up for a retention period,
// not forever. It returns how many it deleted.
func (s *Store) Sweep(ctx context.Context, before time.Time) (int, error) {
	const op = "sweep messages"
	res, err := s.db.ExecContext(ctx, `DELETE FROM push_messages WHERE state IN ('accepted', 'dead', 'skipped') AND updated_at < $1`, sqldb.MS(before))
	if err != nil {
		return 0, sqldb.Err(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), sqldb.Err(op, err)
}

// Depth returns how many messages are not final, for metrics.
func (s *Store) Depth(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_messages WHERE state IN ('queued', 'sent', 'failed')`).Scan(&n)
	return n, sqldb.Err("count queued messages", err)
}

// preferencesOf reads the stored preferences of the citizens (those who
// set none are absent), for a claimed batch or a broadcast page.
func (s *Store) preferencesOf(ctx context.Context, q sqldb.Querier, op string, citizens []any) (map[string]*push.Preferences, error) {
	out := map[string]*push.Preferences{}
	if len(citizens) == 0 {
		return out, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT citizen_id, doc, updated_at FROM push_preferences WHERE citizen_id IN (`+s.placeholders(1, len(citizens))+`)`, citizens...) //nolint:gosec // placeholders only
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			citizen, doc string
			updated      int64
		)
		if err := rows.Scan(&citizen, &doc, &updated); err != nil {
			return nil, sqldb.Err(op, err)
		}
		p, err := decodePrefs(citizen, doc, updated)
		if err != nil {
			return nil, err
		}
		out[citizen] = p
	}
	return out, sqldb.Err(op, rows.Err())
}
