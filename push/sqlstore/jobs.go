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
	n = min(n, 1000)
	var out []*queue.Job
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		now := sqldb.MS(s.clock())
		lock := ""
		if s.d == sqldb.PostgreSQL {
			lock = ` FOR UPDATE SKIP LOCKED`
		}
		var ids []any
		if perGroup <= 0 {
			rows, err := q.QueryContext(ctx, `SELECT id FROM push_jobs WHERE kind = $1 AND state = 'pending' AND next_attempt_at <= $2
				AND claimed_until <= $2 ORDER BY next_attempt_at, seq LIMIT $3`+lock, string(kind), now, n)
			if err != nil {
				return sqldb.Err(op, err)
			}
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return sqldb.Err(op, err)
				}
				ids = append(ids, id)
			}
			if err := rows.Close(); err != nil {
				return sqldb.Err(op, err)
			}
		} else {
			var err error
			if ids, err = s.fairCandidates(ctx, q, op, kind, now, n, perGroup, lock); err != nil {
				return err
			}
		}
		if len(ids) == 0 {
			return nil
		}
		claim := newID("clm_")
		args := append([]any{now + lease.Milliseconds(), claim, now}, ids...)
		rows, err := q.QueryContext(ctx, `UPDATE push_jobs SET claims = claims + 1, claimed_until = `+s.arg(1)+`, claim_id = `+s.arg(2)+`,
			updated_at = `+s.arg(3)+` WHERE id IN (`+s.placeholders(4, len(ids))+`) RETURNING `+jobColumns, args...)
		if err != nil {
			return sqldb.Err(op, err)
		}
		defer rows.Close()
		for rows.Next() {
			j, err := scanJob(rows)
			if err != nil {
				return sqldb.Err(op, err)
			}
			out = append(out, j)
		}
		return sqldb.Err(op, rows.Err())
	})
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
	rows, err := q.QueryContext(ctx, `SELECT grp, COUNT(*) FROM push_jobs WHERE kind = $1 AND state = 'pending' AND claimed_until > $2
		GROUP BY grp`, string(kind), now)
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
	switch {
	case !o.State.Valid():
		return invalidInput(op, "state: unknown value")
	case o.State == queue.StatePending && o.NextAttemptAt.IsZero():
		return invalidInput(op, "next_attempt_at is required while pending")
	case o.State != queue.StatePending && !o.NextAttemptAt.IsZero():
		return invalidInput(op, "next_attempt_at is only for a pending job")
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		var state, claim, attempts string
		if err := q.QueryRowContext(ctx, `SELECT state, claim_id, attempts FROM push_jobs WHERE id = $1`+s.d.ForUpdate(), o.ID).
			Scan(&state, &claim, &attempts); err != nil {
			return sqldb.Err(op, err)
		}
		if state != string(queue.StatePending) || (o.Claim != "" && claim != o.Claim) {
			return fmt.Errorf("%s: job %s is %s: %w: %w", op, o.ID, state, queue.ErrLost, idp.ErrConflict)
		}
		var list []storedAttempt
		if err := json.Unmarshal([]byte(attempts), &list); err != nil {
			return fmt.Errorf("%s: job %s: attempts: %w", op, o.ID, err)
		}
		a := o.Attempt
		list = append(list, storedAttempt{At: sqldb.MS(a.At), StatusCode: a.StatusCode, Error: truncate(a.Error, 500), DurationMS: a.Duration.Milliseconds()})
		b, err := json.Marshal(list)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		var next *int64
		if !o.NextAttemptAt.IsZero() {
			ms := sqldb.MS(o.NextAttemptAt)
			next = &ms
		}
		_, err = q.ExecContext(ctx, `UPDATE push_jobs SET state = $1, attempts = $2, next_attempt_at = $3, claim_id = '', claimed_until = 0,
			updated_at = $4 WHERE id = $5`, string(o.State), string(b), next, sqldb.MS(s.clock()), o.ID)
		return sqldb.Err(op, err)
	})
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
	query := `SELECT ` + jobColumns + ` FROM push_jobs WHERE kind = $1 AND ref = $2`
	args := []any{string(kind), ref}
	if after != nil {
		query += ` AND (created_at < $3 OR (created_at = $3 AND id < $4))`
		args = append(args, sqldb.MS(after.CreatedAt), after.ID)
	}
	args = append(args, limit)
	rows, err := q.QueryContext(ctx, query+fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)), args...)
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

// DeleteJobsTx deletes the ref's jobs of kind inside q, pending ones
// included, so no worker claims them again (a webhook deleted); a worker
// holding one finds it gone when it records (idp.ErrNotFound).
func (s *Store) DeleteJobsTx(ctx context.Context, q sqldb.Querier, kind queue.Kind, ref string) (int, error) {
	const op = "delete jobs"
	if ref == "" {
		return 0, invalidInput(op, "ref is required")
	}
	res, err := q.ExecContext(ctx, `DELETE FROM push_jobs WHERE kind = $1 AND ref = $2`, string(kind), ref)
	if err != nil {
		return 0, sqldb.Err(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), sqldb.Err(op, err)
}

// SweepJobs deletes final jobs last changed before before; it returns how
// many it deleted.
func (s *Store) SweepJobs(ctx context.Context, before time.Time) (int, error) {
	const op = "sweep jobs"
	res, err := s.db.ExecContext(ctx, `DELETE FROM push_jobs WHERE state IN ('done', 'dead') AND updated_at < $1`, sqldb.MS(before))
	if err != nil {
		return 0, sqldb.Err(op, err)
	}
	n, err := res.RowsAffected()
	return int(n), sqldb.Err(op, err)
}

// JobDepth returns how many jobs of kind are pending, for metrics.
func (s *Store) JobDepth(ctx context.Context, kind queue.Kind) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM push_jobs WHERE kind = $1 AND state = 'pending'`, string(kind)).Scan(&n)
	return n, sqldb.Err("count pending jobs", err)
}
