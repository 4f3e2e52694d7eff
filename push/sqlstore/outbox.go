package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
)

// Enqueue implements push.OutboxStore in a transaction of its own.
func (s *Store) Enqueue(ctx context.Context, msgs ...*push.Message) error {
	return s.inTx(ctx, "enqueue messages", func(q sqldb.Querier) error { return s.EnqueueTx(ctx, q, msgs...) })
}

// EnqueueTx stores msgs, due now, inside the caller's transaction q: the
// state change that causes a message and the message commit together or
// not at all. Each message gets an ID (unless it has one), its Seq and
// CreatedAt, and its job on the queue (push_jobs, kind push, the same id)
// in the same transaction. Up to enqueueChunk messages go in one INSERT: a
// statement per message cost a round trip on PostgreSQL and a parse on
// SQLite each. Their jobs are copied from the rows just inserted rather
// than sent again: on PostgreSQL in the same statement, on SQLite (no
// INSERT in a WITH) by the chunk's seq range.
//
// On SQLite both INSERTs are OR IGNORE: a multi-row statement that may
// abort (any constraint) copies every page it changes to a statement
// journal first, so it can undo itself alone, and that journal was a
// third of the enqueue's work. A row skipped (an id taken) makes the
// counts differ and EnqueueTx fail with idp.ErrConflict: the caller rolls
// the transaction back, as it must on any error here.
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
		if s.d == sqldb.PostgreSQL {
			b.WriteString(`WITH m AS (`)
		}
		b.WriteString(s.insert() + `INTO push_messages (id, citizen_id, kind, service_code, agency_code, application_id,
			inbox_message_id, title_vi, title_en, body, priority, collapse_key, expires_at, created_at,
			updated_at, state, attempts, delivered, last_error) VALUES `)
		for i, m := range chunk {
			if m.ID == "" {
				m.ID = push.NewMessageID()
			}
			if byID[m.ID] != nil {
				return fmt.Errorf("%s: message %s given twice: %w", op, m.ID, idp.ErrConflict)
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
			b.WriteString("(" + s.placeholders(len(args)+1, enqueueArgs) + ", 'queued', 0, '[]', '')")
			args = append(args, m.ID, m.CitizenID, string(m.Kind), m.ServiceCode, m.AgencyCode, m.ApplicationID,
				m.InboxMessageID, m.Title.VI, m.Title.EN, m.Body, int(m.Priority), m.CollapseKey, expires,
				sqldb.MS(now), sqldb.MS(now))
			byID[m.ID] = m
		}
		if s.d == sqldb.PostgreSQL {
			b.WriteString(` RETURNING id, seq, citizen_id, created_at), j AS (INSERT ` + pushJobsInsert + ` FROM m ORDER BY seq)
				SELECT id, seq FROM m`)
		} else {
			b.WriteString(` RETURNING id, seq`)
		}
		if err := s.scanSeqs(ctx, q, b.String(), args, byID); err != nil {
			return sqldb.Err(op, err)
		}
		if s.d == sqldb.SQLite {
			if err := s.insertPushJobs(ctx, q, chunk); err != nil {
				return sqldb.Err(op, err)
			}
		}
	}
	return nil
}

// pushJobsInsert makes the jobs of the push_messages rows it selects from
// (id, seq, citizen_id and created_at): pending, due at creation, the
// payload empty (the job's id is its message's). EnqueueJobsTx writes the
// same row.
const pushJobsInsert = `INTO push_jobs (id, kind, grp, ref, payload, next_attempt_at, created_at, updated_at,
	state, claims, attempts, claim_id, claimed_until)
	SELECT id, 'push', '', citizen_id, '{}', created_at, created_at, created_at, 'pending', 0, '[]', '', 0`

// insertPushJobs makes the jobs of msgs, just inserted by one statement on
// SQLite: the one writer took their seqs in a row, so the range from the
// lowest to the highest holds them and nothing else, which the count
// checks.
func (s *Store) insertPushJobs(ctx context.Context, q sqldb.Querier, msgs []*push.Message) error {
	lo, hi := msgs[0].Seq, msgs[0].Seq
	for _, m := range msgs[1:] {
		lo, hi = min(lo, m.Seq), max(hi, m.Seq)
	}
	res, err := q.ExecContext(ctx, s.insert()+pushJobsInsert+` FROM push_messages WHERE seq BETWEEN $1 AND $2 ORDER BY seq`, lo, hi)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if int(n) != len(msgs) {
		return fmt.Errorf("made %d jobs for %d messages, an id taken: %w", n, len(msgs), idp.ErrConflict)
	}
	return nil
}

// insert begins EnqueueTx's INSERTs: OR IGNORE on SQLite (see EnqueueTx).
func (s *Store) insert() string {
	if s.d == sqldb.SQLite {
		return "INSERT OR IGNORE "
	}
	return "INSERT "
}

// enqueueChunk messages of enqueueArgs parameters each stay far below
// SQLite's 32,766 and PostgreSQL's 65,535 parameters per statement.
const (
	enqueueChunk = 500
	enqueueArgs  = 15
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
		return fmt.Errorf("inserted %d of %d messages, an id taken: %w", n, len(byID), idp.ErrConflict)
	}
	return nil
}

// messageColumns are push_messages' own; a message read with its job
// (messageSelect) has the job's due time after them.
const messageColumns = `seq, id, citizen_id, kind, service_code, agency_code, application_id, inbox_message_id,
	title_vi, title_en, body, priority, collapse_key, expires_at, state, attempts, delivered,
	last_error, created_at, updated_at`

// messageSelect reads messages (m) with their job's due time (NULL once
// the job is final or swept).
var messageSelect = `SELECT m.` + strings.ReplaceAll(messageColumns, ", ", ", m.") +
	`, j.next_attempt_at FROM push_messages AS m LEFT JOIN push_jobs AS j ON j.id = m.id`

func scanMessage(r sqldb.Scanner, withNext bool) (*push.Message, error) {
	var (
		m                      push.Message
		kind, state, delivered string
		priority               int
		expires, created, upd  int64
		next                   *int64
	)
	dest := []any{&m.Seq, &m.ID, &m.CitizenID, &kind, &m.ServiceCode, &m.AgencyCode, &m.ApplicationID, &m.InboxMessageID,
		&m.Title.VI, &m.Title.EN, &m.Body, &priority, &m.CollapseKey, &expires, &state, &m.Attempts, &delivered,
		&m.LastError, &created, &upd}
	if withNext {
		dest = append(dest, &next)
	}
	if err := r.Scan(dest...); err != nil {
		return nil, err
	}
	m.Kind, m.State, m.Priority = push.Kind(kind), push.State(state), push.Priority(priority)
	if expires != 0 {
		m.ExpiresAt = sqldb.FromMS(expires)
	}
	if next != nil {
		m.NextAttemptAt = sqldb.FromMS(*next)
	}
	m.CreatedAt, m.UpdatedAt = sqldb.FromMS(created), sqldb.FromMS(upd)
	if err := json.Unmarshal([]byte(delivered), &m.Delivered); err != nil {
		// The message comes back with the error, so that a claim can
		// tell which one to give up.
		return &m, fmt.Errorf("message %s: delivered: %w: %w", m.ID, errUndecodable, err)
	}
	return &m, nil
}

// errUndecodable marks a stored row that does not decode.
var errUndecodable = errors.New("undecodable")

// Claim implements push.OutboxStore on the job queue: the queue's claim
// takes the due push jobs (on PostgreSQL skipping rows another claimer
// holds), one statement marks their messages sent and counts the attempt
// on the receipt, then the citizens' installations and preferences are
// read in two queries, all in one transaction. A job whose message is
// gone is made dead at once, so it cannot come back on every claim.
func (s *Store) Claim(ctx context.Context, n int, lease time.Duration) ([]*push.Job, error) {
	const op = "claim messages"
	if n < 1 || lease < time.Millisecond {
		return nil, invalidInput(op, "n and lease must be positive")
	}
	var jobs []*push.Job
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		claimed, err := s.claimJobsTx(ctx, q, op, queue.KindPush, n, lease, 0)
		if err != nil || len(claimed) == 0 {
			return err
		}
		byID := make(map[string]*push.Job, len(claimed))
		ids := make([]any, 0, len(claimed))
		for _, cj := range claimed {
			byID[cj.ID] = &push.Job{Claim: cj.Claim}
			ids = append(ids, cj.ID)
		}
		now := sqldb.MS(s.clock())
		rows, err := q.QueryContext(ctx, `UPDATE push_messages SET state = 'sent', attempts = attempts + 1, updated_at = `+s.arg(1)+`
			WHERE id IN (`+s.placeholders(2, len(ids))+`) RETURNING `+messageColumns, append([]any{now}, ids...)...)
		if err != nil {
			return sqldb.Err(op, err)
		}
		defer rows.Close()
		// A job that cannot be handled (its message gone, its message or
		// its citizen's preferences undecodable) is made dead at once,
		// with why, so it neither comes back at every claim nor fails the
		// claim for everyone.
		var dead []queue.Outcome
		deadMsgs := map[string]string{}
		giveUp := func(cj *queue.Job, why string, msg bool) {
			dead = append(dead, queue.Outcome{ID: cj.ID, Claim: cj.Claim, State: queue.StateDead,
				Attempt: queue.Attempt{At: sqldb.FromMS(now), Error: why}})
			if msg {
				deadMsgs[cj.ID] = why
			}
		}
		undecodable := map[string]bool{}
		for rows.Next() {
			m, err := scanMessage(rows, false)
			if m != nil && errors.Is(err, errUndecodable) {
				undecodable[m.ID] = true
				continue
			}
			if err != nil {
				return sqldb.Err(op, err)
			}
			byID[m.ID].Message = m
		}
		if err := rows.Err(); err != nil {
			return sqldb.Err(op, err)
		}
		rows.Close()
		byCitizen := map[string][]*push.Job{}
		claimOf := make(map[string]*queue.Job, len(claimed))
		for _, cj := range claimed {
			claimOf[cj.ID] = cj
			j := byID[cj.ID]
			switch {
			case undecodable[cj.ID]:
				giveUp(cj, "push: the message's stored record does not decode", true)
				continue
			case j.Message == nil:
				giveUp(cj, "push: the job's message is gone", false)
				continue
			}
			j.Message.NextAttemptAt = cj.NextAttemptAt
			jobs = append(jobs, j)
			byCitizen[j.Message.CitizenID] = append(byCitizen[j.Message.CitizenID], j)
		}
		if len(jobs) > 0 {
			if err := s.claimExtras(ctx, q, op, byCitizen); err != nil {
				return err
			}
			// A citizen whose preferences do not decode gets nothing:
			// defaults might send what they turned off.
			kept := jobs[:0]
			for _, j := range jobs {
				if j.Preferences == badPrefs {
					giveUp(claimOf[j.Message.ID], "push: the citizen's stored preferences do not decode", true)
					continue
				}
				kept = append(kept, j)
			}
			clear(jobs[len(kept):])
			jobs = kept
		}
		if _, err := s.recordJobsTx(ctx, q, op, dead); err != nil {
			return err
		}
		return s.killMessagesTx(ctx, q, op, now, deadMsgs)
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

// badPrefs marks a claimed job whose citizen's preferences do not decode.
var badPrefs = &push.Preferences{}

// claimExtras reads the claimed jobs' installations and preferences inside
// q; a citizen whose stored preferences do not decode gets badPrefs.
func (s *Store) claimExtras(ctx context.Context, q sqldb.Querier, op string, byCitizen map[string][]*push.Job) error {
	citizens := make([]any, 0, len(byCitizen))
	for c := range byCitizen {
		citizens = append(citizens, c)
	}
	in := s.placeholders(1, len(citizens))
	rows, err := q.QueryContext(ctx, `SELECT `+installationColumns+` FROM push_installations WHERE citizen_id IN (`+in+`) ORDER BY created_at, id`, citizens...) //nolint:gosec // placeholders only
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
	prefs, bad, err := s.preferencesOf(ctx, q, op, citizens)
	if err != nil {
		return err
	}
	for c, p := range prefs {
		for _, j := range byCitizen[c] {
			j.Preferences = p
		}
	}
	for c := range bad {
		for _, j := range byCitizen[c] {
			j.Preferences = badPrefs
		}
	}
	return nil
}

// killMessagesTx makes the messages (id: why) dead inside q, their full
// text dropped as a final message's is.
func (s *Store) killMessagesTx(ctx context.Context, q sqldb.Querier, op string, now int64, why map[string]string) error {
	for id, reason := range why {
		if _, err := q.ExecContext(ctx, `UPDATE push_messages SET state = 'dead', last_error = $1, updated_at = $2,
			title_vi = '', title_en = '', body = '' WHERE id = $3`, truncate(reason, 500), now, id); err != nil {
			return sqldb.Err(op, err)
		}
	}
	return nil
}

// jobOutcome is the queue's side of a push outcome: accepted and skipped
// are done, dead is dead, the rest are pending again (a deferral held back
// without an attempt).
func jobOutcome(o push.Outcome, now time.Time) queue.Outcome {
	q := queue.Outcome{ID: o.MessageID, Claim: o.Claim}
	switch o.State {
	case push.StateAccepted, push.StateSkipped:
		q.State = queue.StateDone
	case push.StateDead:
		q.State = queue.StateDead
	default:
		q.State, q.NextAttemptAt, q.Hold = queue.StatePending, o.NextAttemptAt, o.Deferred
		if q.NextAttemptAt.IsZero() {
			q.NextAttemptAt = now
		}
	}
	return q
}

// Record implements push.OutboxStore: the queue records the jobs (only
// where their claim still holds them: a lapsed claim's late outcome
// changes nothing, the dispatcher holding it now records its own), then
// one statement per recordChunk, joined to a VALUES list, writes the
// receipts of the messages recorded, in one transaction. A deferral decided
// on preferences the citizen replaced since the claim (the job's
// updated_at is its claim's time) is due at once, to be decided again on
// the new ones. A final message loses its full text.
func (s *Store) Record(ctx context.Context, outs []push.Outcome) error {
	const op = "record message outcomes"
	if len(outs) == 0 {
		return nil
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := s.clock()
		jouts := make([]queue.Outcome, len(outs))
		var deferred []any
		at := map[string]int{}
		for i, o := range outs {
			jouts[i] = jobOutcome(o, now)
			if err := jouts[i].Validate(); err != nil {
				return invalidInput(op, err.Error())
			}
			at[o.MessageID] = i
			if o.Deferred {
				deferred = append(deferred, o.MessageID)
			}
		}
		if len(deferred) > 0 {
			rows, err := q.QueryContext(ctx, `SELECT j.id FROM push_jobs AS j JOIN push_preferences AS p ON p.citizen_id = j.ref
				WHERE j.id IN (`+s.placeholders(1, len(deferred))+`) AND p.updated_at > j.updated_at`, deferred...)
			if err != nil {
				return sqldb.Err(op, err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return sqldb.Err(op, err)
				}
				jouts[at[id]].NextAttemptAt = now
			}
			if err := rows.Close(); err != nil {
				return sqldb.Err(op, err)
			}
		}
		recorded, err := s.recordJobsTx(ctx, q, op, jouts)
		if err != nil {
			return err
		}
		var dead []any
		held := make([]push.Outcome, 0, len(recorded))
		for i, o := range outs {
			outs[i].Lost = !recorded[o.MessageID]
			if !outs[i].Lost {
				held = append(held, o)
			}
			for _, id := range o.Unregistered {
				dead = append(dead, id)
			}
		}
		for chunk := range slices.Chunk(held, recordChunk) {
			args := make([]any, 1, 1+len(chunk)*recordArgs)
			args[0] = sqldb.MS(now)
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
				fmt.Fprintf(&values, "(%s, %s, CAST(%s AS INTEGER), %s, %s, CAST(%s AS INTEGER))",
					s.arg(n+1), s.arg(n+2), s.arg(n+3), s.arg(n+4), s.arg(n+5), s.arg(n+6))
				args = append(args, o.MessageID, string(o.State), giveBack, string(b), truncate(o.LastError, 500), final)
			}
			// VALUES columns are column1… on both engines.
			_, err := q.ExecContext(ctx, `UPDATE push_messages AS m SET updated_at = `+s.arg(1)+`, state = v.column2,
				attempts = m.attempts - v.column3, delivered = v.column4, last_error = v.column5,
				title_vi = CASE WHEN v.column6 = 1 THEN '' ELSE m.title_vi END,
				title_en = CASE WHEN v.column6 = 1 THEN '' ELSE m.title_en END,
				body = CASE WHEN v.column6 = 1 THEN '' ELSE m.body END
				FROM (VALUES `+values.String()+`) AS v
				WHERE m.id = v.column1`, args...)
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
	recordArgs  = 6
)

// truncate cuts s to at most n bytes at a character boundary, and makes
// it valid UTF-8: errors quote providers' answers, and PostgreSQL refuses
// text with a broken character, which would fail the whole record.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// GetMessage implements push.OutboxStore.
func (s *Store) GetMessage(ctx context.Context, citizenID, id string) (*push.Message, error) {
	const op = "get message"
	m, err := scanMessage(s.db.QueryRowContext(ctx, messageSelect+` WHERE m.id = $1 AND m.citizen_id = $2`, id, citizenID), true)
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
	m, err := scanMessage(s.db.QueryRowContext(ctx, messageSelect+` WHERE m.id = $1 AND m.agency_code = $2`, id, agencyCode), true)
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
	return s.queryMessages(ctx, op, messageSelect+` WHERE m.agency_code = $1 AND m.application_id = $2 ORDER BY m.seq LIMIT 1000`,
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
		m, err := scanMessage(rows, true)
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
	return s.queryMessages(ctx, op, messageSelect+` WHERE m.citizen_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3`,
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
// not forever, sweepBatch rows per statement (the first sweep after an
// upgrade is no one huge transaction on a database shared with the
// identity provider). It first repairs the queue (RepairJobs). It returns
// how many messages it deleted.
func (s *Store) Sweep(ctx context.Context, before time.Time) (int, error) {
	const op = "sweep messages"
	if _, err := s.RepairJobs(ctx); err != nil {
		return 0, err
	}
	return s.deleteBatches(ctx, op, `DELETE FROM push_messages WHERE seq IN (SELECT seq FROM push_messages
		WHERE state IN ('accepted', 'dead', 'skipped') AND updated_at < $1 LIMIT $2)`, sqldb.MS(before))
}

// RepairJobs makes a pending job, due now, for every message not final
// that has none (a message an old replica committed while migration 0006
// ran), so none waits forever; it returns how many it made. The messages
// not final are few and indexed (push_messages_open): it is cheap.
func (s *Store) RepairJobs(ctx context.Context) (int, error) {
	const op = "repair message jobs"
	now := sqldb.MS(s.clock())
	res, err := s.db.ExecContext(ctx, `INSERT INTO push_jobs (id, kind, grp, ref, payload, state, claims, attempts, next_attempt_at,
			claim_id, claimed_until, created_at, updated_at)
		SELECT m.id, 'push', '', m.citizen_id, '{}', 'pending', 0, '[]', $1, '', 0, m.created_at, $1
		FROM push_messages AS m WHERE m.state IN ('queued', 'sent', 'failed')
			AND NOT EXISTS (SELECT 1 FROM push_jobs AS j WHERE j.id = m.id)
		ORDER BY m.seq
		ON CONFLICT (id) DO NOTHING`, now)
	if err != nil {
		return 0, sqldb.Err(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), sqldb.Err(op, err)
}

// sweepBatch rows go per DELETE of a sweep.
const sweepBatch = 1000

// deleteBatches runs query (a DELETE whose last parameter is the batch
// size) until a batch deletes fewer than sweepBatch rows, each statement
// its own transaction; it returns how many rows it deleted.
func (s *Store) deleteBatches(ctx context.Context, op, query string, args ...any) (int, error) {
	args = append(args, sweepBatch)
	total := 0
	for {
		res, err := s.db.ExecContext(ctx, query, args...)
		if err != nil {
			return total, sqldb.Err(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, sqldb.Err(op, err)
		}
		total += int(n)
		if n < sweepBatch {
			return total, nil
		}
	}
}

// Depth returns how many messages are not final (their jobs pending), for
// metrics.
func (s *Store) Depth(ctx context.Context) (int, error) { return s.JobDepth(ctx, queue.KindPush) }

// preferencesOf reads the stored preferences of the citizens (those who
// set none are absent), for a claimed batch or a broadcast page; those
// whose stored preferences do not decode are in bad, with why.
func (s *Store) preferencesOf(ctx context.Context, q sqldb.Querier, op string, citizens []any) (map[string]*push.Preferences, map[string]error, error) {
	out := map[string]*push.Preferences{}
	bad := map[string]error{}
	if len(citizens) == 0 {
		return out, bad, nil
	}
	rows, err := q.QueryContext(ctx, `SELECT citizen_id, doc, updated_at FROM push_preferences WHERE citizen_id IN (`+s.placeholders(1, len(citizens))+`)`, citizens...) //nolint:gosec // placeholders only
	if err != nil {
		return nil, nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			citizen, doc string
			updated      int64
		)
		if err := rows.Scan(&citizen, &doc, &updated); err != nil {
			return nil, nil, sqldb.Err(op, err)
		}
		p, err := decodePrefs(citizen, doc, updated)
		if err != nil {
			bad[citizen] = err
			continue
		}
		out[citizen] = p
	}
	return out, bad, sqldb.Err(op, rows.Err())
}
