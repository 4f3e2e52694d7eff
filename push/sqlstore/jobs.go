package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push/queue"
)

var _ queue.Store = (*Store)(nil)

// EnqueueJobs implements queue.Store in a transaction of its own.
func (s *Store) EnqueueJobs(ctx context.Context, jobs ...*queue.Job) error {
	return s.inTx(ctx, "enqueue jobs", func(q sqldb.Querier) error { return s.EnqueueJobsTx(ctx, q, jobs...) })
}

// EnqueueJobsTx stores jobs, due now, inside the caller's transaction q:
// the state change that causes a job and the job commit together or not at
// all. Each job gets an ID (unless it has one), its state and times; it is
// due at its CreatedAt when the producer set one (the time of the event
// that caused it), else now.
func (s *Store) EnqueueJobsTx(ctx context.Context, q sqldb.Querier, jobs ...*queue.Job) error {
	const op = "enqueue jobs"
	for _, j := range jobs {
		switch {
		case j.Kind == "":
			return invalidInput(op, "kind is required")
		case !json.Valid(j.Payload):
			return invalidInput(op, "payload must be JSON")
		}
	}
	now := s.clock()
	for chunk := range slices.Chunk(jobs, enqueueChunk) {
		args := make([]any, 0, len(chunk)*jobArgs)
		var b strings.Builder
		b.WriteString(`INSERT INTO push_jobs (id, kind, grp, ref, payload, next_attempt_at, created_at, updated_at,
			state, claims, attempts, claim_id, claimed_until) VALUES `)
		for i, j := range chunk {
			if j.ID == "" {
				j.ID = newID("job_")
			}
			j.State, j.Claims, j.Attempts, j.Claim = queue.StatePending, 0, nil, ""
			if j.CreatedAt.IsZero() {
				j.CreatedAt = now
			}
			j.CreatedAt = j.CreatedAt.UTC().Truncate(time.Millisecond)
			j.NextAttemptAt, j.UpdatedAt = j.CreatedAt, now
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + s.placeholders(len(args)+1, jobArgs) + ", 'pending', 0, '[]', '', 0)")
			args = append(args, j.ID, string(j.Kind), j.Group, j.Ref, string(j.Payload), sqldb.MS(j.NextAttemptAt), sqldb.MS(j.CreatedAt), sqldb.MS(now))
		}
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return sqldb.Err(op, err)
		}
	}
	return nil
}

const jobArgs = 8

const jobColumns = `id, kind, grp, ref, payload, state, claims, attempts, next_attempt_at, claim_id, created_at, updated_at`

// storedAttempt is a queue.Attempt in push_jobs.attempts (the form
// api_webhook_deliveries.attempts had, so migrated logs read alike).
type storedAttempt struct {
	At         int64  `json:"at"`
	StatusCode int    `json:"status_code,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

func scanJob(r sqldb.Scanner) (*queue.Job, error) {
	var (
		j                    queue.Job
		kind, state, payload string
		attempts             string
		next                 *int64
		created, updated     int64
		stored               []storedAttempt
	)
	if err := r.Scan(&j.ID, &kind, &j.Group, &j.Ref, &payload, &state, &j.Claims, &attempts, &next, &j.Claim, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(attempts), &stored); err != nil {
		return nil, fmt.Errorf("job %s: attempts: %w", j.ID, err)
	}
	for _, a := range stored {
		j.Attempts = append(j.Attempts, queue.Attempt{At: sqldb.FromMS(a.At), StatusCode: a.StatusCode, Error: a.Error,
			Duration: time.Duration(a.DurationMS) * time.Millisecond})
	}
	j.Kind, j.State, j.Payload = queue.Kind(kind), queue.State(state), []byte(payload)
	if next != nil {
		j.NextAttemptAt = sqldb.FromMS(*next)
	}
	j.CreatedAt, j.UpdatedAt = sqldb.FromMS(created), sqldb.FromMS(updated)
	return &j, nil
}

// ClaimJobs implements queue.Store: one statement claims the jobs (on
// PostgreSQL skipping rows another claimer holds). With perGroup, the
// groups' jobs in flight are counted first and at most 4n candidates are
// read, so a group at its cap does not starve the others behind it.
func (s *Store) ClaimJobs(ctx context.Context, kind queue.Kind, n int, lease time.Duration, perGroup int) ([]*queue.Job, error) {
	const op = "claim jobs"
	if n < 1 || lease < time.Millisecond {
		return nil, invalidInput(op, "n and lease must be positive")
	}
	var out []*queue.Job
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		var err error
		out, err = s.claimJobsTx(ctx, q, op, kind, min(n, 1000), lease, perGroup)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// claimJobsTx claims up to n inside q (see ClaimJobs), the longest due
// first.
func (s *Store) claimJobsTx(ctx context.Context, q sqldb.Querier, op string, kind queue.Kind, n int, lease time.Duration, perGroup int) ([]*queue.Job, error) {
	now := sqldb.MS(s.clock())
	lock := ""
	if s.d == sqldb.PostgreSQL {
		lock = ` FOR UPDATE SKIP LOCKED`
	}
	claim := newID("clm_")
	set := `UPDATE push_jobs SET claims = claims + 1, held = 0, claimed_until = ` + s.arg(1) + `, claim_id = ` + s.arg(2) + `,
		updated_at = ` + s.arg(3) + ` WHERE `
	args := []any{now + lease.Milliseconds(), claim, now}
	var query string
	if perGroup <= 0 {
		// One statement: the candidates are a subquery.
		query = set + `seq IN (SELECT seq FROM push_jobs WHERE kind = ` + s.arg(4) + ` AND state = 'pending' AND next_attempt_at <= ` + s.arg(5) + `
			AND claimed_until <= ` + s.arg(6) + ` ORDER BY next_attempt_at, seq LIMIT ` + s.arg(7) + lock + `) RETURNING ` + jobColumns
		args = append(args, string(kind), now, now, n)
	} else {
		ids, err := s.fairCandidates(ctx, q, op, kind, now, n, perGroup, lock)
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		query = set + `id IN (` + s.placeholders(4, len(ids)) + `) RETURNING ` + jobColumns
		args = append(args, ids...)
	}
	out, err := queryJobs(ctx, q, op, query, args...)
	if err != nil {
		return nil, err
	}
	// RETURNING's order is not promised: longest due first.
	slices.SortStableFunc(out, func(a, b *queue.Job) int { return a.NextAttemptAt.Compare(b.NextAttemptAt) })
	return out, nil
}

// fairCandidates returns the ids of up to n due jobs, no group above
// perGroup in flight.
func (s *Store) fairCandidates(ctx context.Context, q sqldb.Querier, op string, kind queue.Kind, now int64, n, perGroup int, lock string) ([]any, error) {
	busy := map[string]int{}
	// claimed_until > 0 repeats push_jobs_busy's predicate for the planners.
	rows, err := q.QueryContext(ctx, `SELECT grp, COUNT(*) FROM push_jobs WHERE kind = $1 AND state = 'pending' AND claimed_until > $2
		AND claimed_until > 0 GROUP BY grp`, string(kind), now)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	for rows.Next() {
		var (
			g string
			c int
		)
		if err := rows.Scan(&g, &c); err != nil {
			rows.Close()
			return nil, sqldb.Err(op, err)
		}
		busy[g] = c
	}
	if err := rows.Close(); err != nil {
		return nil, sqldb.Err(op, err)
	}
	rows, err = q.QueryContext(ctx, `SELECT id, grp FROM push_jobs WHERE kind = $1 AND state = 'pending' AND next_attempt_at <= $2
		AND claimed_until <= $2 ORDER BY next_attempt_at, seq LIMIT $3`+lock, string(kind), now, 4*n)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var ids []any
	for rows.Next() {
		var id, g string
		if err := rows.Scan(&id, &g); err != nil {
			return nil, sqldb.Err(op, err)
		}
		if len(ids) < n && busy[g] < perGroup {
			busy[g]++
			ids = append(ids, id)
		}
	}
	return ids, sqldb.Err(op, rows.Err())
}

// RecordJob implements queue.Store. An empty o.Claim records on any
// pending job (a caller that tracks no claim, as mobileapi's
// RecordAttempt); a final job is then ErrLost all the same.
func (s *Store) RecordJob(ctx context.Context, o queue.Outcome) error {
	const op = "record job outcome"
	if err := o.Validate(); err != nil {
		return invalidInput(op, err.Error())
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		recorded, err := s.recordJobsTx(ctx, q, op, []queue.Outcome{o})
		if err != nil || recorded[o.ID] {
			return err
		}
		var state string
		if err := q.QueryRowContext(ctx, `SELECT state FROM push_jobs WHERE id = $1`, o.ID).Scan(&state); err != nil {
			return sqldb.Err(op, err)
		}
		return fmt.Errorf("%s: job %s is %s: %w: %w", op, o.ID, state, queue.ErrLost, idp.ErrConflict)
	})
}

// RecordJobs implements queue.Store.
func (s *Store) RecordJobs(ctx context.Context, outs []queue.Outcome) ([]string, error) {
	const op = "record job outcomes"
	for _, o := range outs {
		if err := o.Validate(); err != nil {
			return nil, invalidInput(op, err.Error())
		}
	}
	var lost []string
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		recorded, err := s.recordJobsTx(ctx, q, op, outs)
		for _, o := range outs {
			if !recorded[o.ID] {
				lost = append(lost, o.ID)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return lost, nil
}

// recordJobsTx records valid outcomes inside q, one UPDATE per recordChunk
// joined to a VALUES list, each only where its claim still holds the job
// (an empty claim: any pending job). It returns the ids recorded.
func (s *Store) recordJobsTx(ctx context.Context, q sqldb.Querier, op string, outs []queue.Outcome) (map[string]bool, error) {
	recorded := make(map[string]bool, len(outs))
	if len(outs) == 0 {
		return recorded, nil
	}
	now := sqldb.MS(s.clock())
	// The attempt is appended in SQL: on PostgreSQL as jsonb (which
	// reorders its keys; readers do not care), on SQLite with json_insert.
	appendAttempt := `(j.attempts::jsonb || v.column6::jsonb)::text`
	if s.d == sqldb.SQLite {
		appendAttempt = `json_insert(j.attempts, '$[#]', json(v.column6))`
	}
	for chunk := range slices.Chunk(outs, recordChunk) {
		args := make([]any, 1, 1+len(chunk)*6)
		args[0] = now
		var values strings.Builder
		for i, o := range chunk {
			attempt := ""
			if a := o.Attempt; !a.At.IsZero() {
				b, err := json.Marshal(storedAttempt{At: sqldb.MS(a.At), StatusCode: a.StatusCode, Error: truncate(a.Error, 500),
					DurationMS: a.Duration.Milliseconds()})
				if err != nil {
					return nil, fmt.Errorf("%s: %w", op, err)
				}
				attempt = string(b)
			}
			var next *int64
			if !o.NextAttemptAt.IsZero() {
				ms := sqldb.MS(o.NextAttemptAt)
				next = &ms
			}
			hold := 0
			if o.Hold {
				hold = 1
			}
			if i > 0 {
				values.WriteString(", ")
			}
			n := len(args)
			// Casts type the parameters alike on both engines.
			fmt.Fprintf(&values, "(%s, %s, %s, CAST(%s AS INTEGER), CAST(%s AS BIGINT), %s)",
				s.arg(n+1), s.arg(n+2), s.arg(n+3), s.arg(n+4), s.arg(n+5), s.arg(n+6))
			args = append(args, o.ID, o.Claim, string(o.State), hold, next, attempt)
		}
		// VALUES columns are column1… on both engines.
		rows, err := q.QueryContext(ctx, `UPDATE push_jobs AS j SET updated_at = `+s.arg(1)+`, state = v.column3,
			claims = j.claims - v.column4, held = v.column4, next_attempt_at = v.column5,
			attempts = CASE WHEN v.column6 = '' THEN j.attempts ELSE `+appendAttempt+` END, claim_id = '', claimed_until = 0
			FROM (VALUES `+values.String()+`) AS v
			WHERE j.id = v.column1 AND j.state = 'pending' AND (v.column2 = '' OR j.claim_id = v.column2) RETURNING id`, args...)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, sqldb.Err(op, err)
			}
			recorded[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, sqldb.Err(op, err)
		}
	}
	return recorded, nil
}

// ReleaseHeldTx makes the ref's held jobs of kind (Outcome.Hold) due now,
// inside q: the owner changed what held them back (a citizen's new
// preferences), so the worker decides again.
func (s *Store) ReleaseHeldTx(ctx context.Context, q sqldb.Querier, kind queue.Kind, ref string) error {
	now := sqldb.MS(s.clock())
	_, err := q.ExecContext(ctx, `UPDATE push_jobs SET next_attempt_at = $1, updated_at = $1
		WHERE kind = $2 AND ref = $3 AND state = 'pending' AND held = 1 AND next_attempt_at > $1`, now, string(kind), ref)
	return sqldb.Err("release held jobs", err)
}

// GetJob implements queue.Store.
func (s *Store) GetJob(ctx context.Context, id string) (*queue.Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM push_jobs WHERE id = $1`, id))
	if err != nil {
		return nil, sqldb.Err("get job", err)
	}
	return j, nil
}

// ListJobsTx returns up to limit of the ref's jobs of kind, newest first,
// after the cursor (when set), read inside q: the owner's own view of
// them (an agency's delivery log).
func (s *Store) ListJobsTx(ctx context.Context, q sqldb.Querier, kind queue.Kind, ref string, after *queue.Cursor, limit int) ([]*queue.Job, error) {
	const op = "list jobs"
	if kind == queue.KindPush {
		return nil, invalidInput(op, errPushByRef)
	}
	query := `SELECT ` + jobColumns + ` FROM push_jobs WHERE kind = $1 AND ref = $2 AND ` + notPush
	args := []any{string(kind), ref}
	if after != nil {
		query += ` AND (created_at < $3 OR (created_at = $3 AND id < $4))`
		args = append(args, sqldb.MS(after.CreatedAt), after.ID)
	}
	args = append(args, limit)
	return queryJobs(ctx, q, op, query+fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)), args...)
}

// queryJobs runs a query whose rows are jobColumns and scans them.
func queryJobs(ctx context.Context, q sqldb.Querier, op, query string, args ...any) ([]*queue.Job, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*queue.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		out = append(out, j)
	}
	return out, sqldb.Err(op, rows.Err())
}

// notPush repeats push_jobs_ref's predicate (migration 0007) in the
// queries by ref, so the planners pick that index: push jobs are not in it.
const notPush = `kind <> 'push'`

// errPushByRef refuses push jobs to the queries by ref: they would scan
// the queue. A citizen's messages are read from push_messages.
const errPushByRef = "push jobs are not listed or deleted by ref"

// DeleteJobsTx deletes the ref's jobs of kind inside q, pending ones
// included, so no worker claims them again (a webhook deleted); a worker
// holding one finds it gone when it records (idp.ErrNotFound).
func (s *Store) DeleteJobsTx(ctx context.Context, q sqldb.Querier, kind queue.Kind, ref string) (int, error) {
	const op = "delete jobs"
	switch {
	case ref == "":
		return 0, invalidInput(op, "ref is required")
	case kind == queue.KindPush:
		return 0, invalidInput(op, errPushByRef)
	}
	res, err := q.ExecContext(ctx, `DELETE FROM push_jobs WHERE kind = $1 AND ref = $2 AND `+notPush, string(kind), ref)
	if err != nil {
		return 0, sqldb.Err(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), sqldb.Err(op, err)
}

// SweepJobs deletes final jobs of kind last changed before before,
// sweepBatch rows per statement; it returns how many it deleted. Each kind
// has its own retention: push's sweep takes only push jobs, a webhook's
// delivery log stays for its agency.
func (s *Store) SweepJobs(ctx context.Context, kind queue.Kind, before time.Time) (int, error) {
	const op = "sweep jobs"
	if kind == "" {
		return 0, invalidInput(op, "kind is required")
	}
	return s.deleteBatches(ctx, op, `DELETE FROM push_jobs WHERE seq IN (SELECT seq FROM push_jobs
		WHERE kind = $1 AND state IN ('done', 'dead') AND updated_at < $2 LIMIT $3)`, string(kind), sqldb.MS(before))
}

// JobDepth returns how many jobs of kind are pending, for metrics.
func (s *Store) JobDepth(ctx context.Context, kind queue.Kind) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_jobs WHERE kind = $1 AND state = 'pending'`, string(kind)).Scan(&n)
	return n, sqldb.Err("count pending jobs", err)
}
