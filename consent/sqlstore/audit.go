package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// CommitHeads commits the chain heads that moved since the last
// checkpoint (see consent.AuditStore). The lock row makes replicas take
// turns on PostgreSQL; on SQLite the write transaction does. Appends go on
// meanwhile on PostgreSQL: a head that moves after it was read is simply
// committed again by the next checkpoint.
func (s *Store) CommitHeads(ctx context.Context, limit int, build consent.BuildFunc) (*consent.Checkpoint, error) {
	const op = "commit chain heads"
	if limit <= 0 || build == nil {
		return nil, invalid(op, "a positive limit and a build function are required")
	}
	var out *consent.Checkpoint
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		var one int
		if err := q.QueryRowContext(ctx, `SELECT id FROM consent_checkpoint_lock WHERE id = 1`+s.d.ForUpdate()).Scan(&one); err != nil {
			return dbErr(op, err)
		}
		last, err := lastCheckpoint(ctx, q, op)
		if err != nil {
			return err
		}
		heads, err := pendingHeads(ctx, q, op, limit)
		if err != nil || len(heads) == 0 {
			return err
		}
		c, err := build(last, heads, func(indexes []int64) ([][]byte, error) { return readHashes(ctx, q, op, indexes) })
		if err != nil {
			return &callerError{err: err}
		}
		var size int64
		if last != nil {
			size = last.Size
		}
		if err := checkCommit(op, c, size, heads); err != nil {
			return err
		}
		// Leaves past the last checkpoint mean its row was removed: say
		// so, rather than fail on the leaves' key below.
		var past int64
		switch err := q.QueryRowContext(ctx, `SELECT idx FROM consent_tree_leaves WHERE idx >= $1 ORDER BY idx LIMIT 1`, size).Scan(&past); {
		case err == nil:
			return fmt.Errorf("%s: leaf %d: %w", op, past, consent.ErrUncoveredLeaves)
		case !errors.Is(err, sql.ErrNoRows):
			return dbErr(op, err)
		}
		leaves := make([][]any, 0, len(c.Leaves))
		for _, l := range c.Leaves {
			leaves = append(leaves, []any{l.Index, l.CitizenID, l.Seq, l.Hash})
		}
		hashes := make([][]any, 0, len(c.Hashes))
		for _, h := range c.Hashes {
			hashes = append(hashes, []any{h.Index, h.Hash})
		}
		for _, ins := range []struct {
			prefix, suffix string
			rows           [][]any
		}{
			{`INSERT INTO consent_tree_leaves (idx, citizen_id, seq, hash) VALUES `, ``, leaves},
			{`INSERT INTO consent_tree_hashes (idx, hash) VALUES `, ``, hashes},
		} {
			if err := insertRows(ctx, q, op, ins.prefix, ins.suffix, ins.rows); errors.Is(err, consent.ErrConflict) {
				// A leaf or hash already at an index past the last
				// checkpoint: the same removal as above.
				return fmt.Errorf("%s: %w", op, consent.ErrUncoveredLeaves)
			} else if err != nil {
				return err
			}
		}
		if err := s.lockTrailHeads(ctx, q, op, c.Leaves); err != nil {
			return err
		}
		if err := markCommitted(ctx, q, op, c.Leaves); err != nil {
			return err
		}
		cp := c.Checkpoint
		if cp.CreatedAt.IsZero() {
			cp.CreatedAt = s.clock()
		}
		cp.CreatedAt = cp.CreatedAt.UTC().Truncate(time.Millisecond)
		if _, err := q.ExecContext(ctx, `INSERT INTO consent_checkpoints (size, root, note, created_at) VALUES ($1, $2, $3, $4)`,
			cp.Size, cp.Root, cp.Note, sqldb.MS(cp.CreatedAt)); err != nil {
			return dbErr(op, err)
		}
		out = &cp
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insertRows inserts rows with multi-row VALUES, a few hundred at a time,
// so a checkpoint of thousands of heads is a handful of round trips.
func insertRows(ctx context.Context, q sqldb.Querier, op, prefix, suffix string, rows [][]any) error {
	const chunk = 200
	for len(rows) > 0 {
		n := min(chunk, len(rows))
		var (
			b    strings.Builder
			args []any
		)
		b.WriteString(prefix)
		for i, r := range rows[:n] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for j, v := range r {
				if j > 0 {
					b.WriteString(", ")
				}
				args = append(args, v)
				b.WriteString("$" + strconv.Itoa(len(args)))
			}
			b.WriteString(")")
		}
		b.WriteString(suffix)
		if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
			return dbErr(op, err)
		}
		rows = rows[n:]
	}
	return nil
}

// checkCommit refuses a commit that does not extend the tree by exactly
// the heads it was given.
func checkCommit(op string, c *consent.Commit, size int64, heads []consent.Head) error {
	if c == nil || len(c.Leaves) != len(heads) || c.Checkpoint.Size != size+int64(len(heads)) || c.Checkpoint.Note == "" {
		return invalid(op, "the commit does not add one leaf per head and a checkpoint")
	}
	for i, l := range c.Leaves {
		h := heads[i]
		if l.Index != size+int64(i) || l.CitizenID != h.CitizenID || l.Seq != h.Seq || string(l.Hash) != string(h.Hash) {
			return invalid(op, "leaf "+strconv.Itoa(i)+" does not match its head")
		}
	}
	return checkText(op, "checkpoint note", c.Checkpoint.Note, maxEvidence)
}

// pendingSince is the SET clause that marks a head pending: pending_since
// (now, the placeholder given) only when it was not pending already, so a
// head keeps its place in the checkpoint queue while it moves again, and
// an append to a pending head changes no indexed column (HOT on
// PostgreSQL). SET expressions read the row as it was before the update.
func pendingSince(now string) string {
	return `pending_since = CASE WHEN pending THEN pending_since ELSE ` + now + ` END, pending = TRUE`
}

// pendingHeads reads the heads that moved since a checkpoint last
// committed them (migrations 0005, 0008), those pending longest first:
// citizens that keep moving cannot hold a quiet one out of every
// checkpoint. Its WHERE and ORDER BY are the partial index's predicate and
// columns (consent_chain_heads_pending), so both engines read only those
// heads, in order: the cost follows what moved, not the number of citizens.
func pendingHeads(ctx context.Context, q sqldb.Querier, op string, limit int) ([]consent.Head, error) {
	rows, err := q.QueryContext(ctx, `SELECT citizen_id, seq, hash FROM consent_chain_heads
		WHERE pending ORDER BY pending_since, citizen_id LIMIT $1`, limit)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []consent.Head
	for rows.Next() {
		var h consent.Head
		if err := rows.Scan(&h.CitizenID, &h.Seq, &h.Hash); err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, h)
	}
	return out, dbErr(op, rows.Err())
}

// lockTrailHeads takes, on PostgreSQL, the legal-basis trail's head row,
// then the consent trail's, before markCommitted updates the heads, when
// a trail is among them (the consent trail's lock order is the same:
// record row -> consent trail head, in grants, withdrawals and flags).
// The lock order on heads and bases is:
//
//	trail head -> basis row        (put, amend, revoke: bases.go)
//	basis row (share) -> citizen head    (AppendRelease)
//	trail head -> citizen heads     (checkpoint, here)
//
// markCommitted's UPDATE locks the heads in whatever order it finds them,
// possibly a citizen's before the trail's: a checkpoint holding a citizen
// head and waiting for the trail head, an amendment holding the trail head
// and waiting for the basis, and a release holding the basis and waiting
// for that citizen's head would be a cycle. Taking the trail head first
// puts the checkpoint behind any change of a basis; an append takes a
// citizen head last and then waits for nothing, so there is no cycle.
// SQLite serialises writers (BEGIN IMMEDIATE) and needs no lock.
func (s *Store) lockTrailHeads(ctx context.Context, q sqldb.Querier, op string, leaves []consent.Leaf) error {
	if s.d != sqldb.PostgreSQL {
		return nil
	}
	for _, chain := range []string{consent.BasisTrailChain, consent.RecordTrailChain} {
		if !slices.ContainsFunc(leaves, func(l consent.Leaf) bool { return l.CitizenID == chain }) {
			continue
		}
		rows, err := q.QueryContext(ctx, `SELECT citizen_id FROM consent_chain_heads WHERE citizen_id = $1 FOR UPDATE`, chain)
		if err != nil {
			return dbErr(op, err)
		}
		if err := errors.Join(rows.Close(), rows.Err()); err != nil {
			return dbErr(op, err)
		}
	}
	return nil
}

// markCommitted records the seq each leaf committed beside its head and
// clears its pending flag. A head that moved after it was read (an append
// on PostgreSQL, which does not wait for the checkpoint) stays pending,
// and the next checkpoint commits it again.
func markCommitted(ctx context.Context, q sqldb.Querier, op string, leaves []consent.Leaf) error {
	const chunk = 200
	for len(leaves) > 0 {
		n := min(chunk, len(leaves))
		var (
			cases strings.Builder
			ids   []string
			args  []any
		)
		for _, l := range leaves[:n] {
			args = append(args, l.CitizenID, l.Seq)
			fmt.Fprintf(&cases, " WHEN $%d THEN CAST($%d AS BIGINT)", len(args)-1, len(args))
			ids = append(ids, "$"+strconv.Itoa(len(args)-1))
		}
		if _, err := q.ExecContext(ctx, `UPDATE consent_chain_heads SET committed_seq = CASE citizen_id`+cases.String()+ // #nosec G202 -- placeholders only
			` ELSE committed_seq END WHERE citizen_id IN (`+strings.Join(ids, ", ")+`)`, args...); err != nil {
			return dbErr(op, err)
		}
		// A head that moved after it was read is still pending: the next
		// checkpoint commits it again.
		citizens, ph := make([]any, 0, n), make([]string, 0, n)
		for _, l := range leaves[:n] {
			citizens = append(citizens, l.CitizenID)
			ph = append(ph, "$"+strconv.Itoa(len(citizens)))
		}
		if _, err := q.ExecContext(ctx, `UPDATE consent_chain_heads SET pending = FALSE
			WHERE citizen_id IN (`+strings.Join(ph, ", ")+`) AND pending AND seq = committed_seq`, citizens...); err != nil { // #nosec G202 -- placeholders only
			return dbErr(op, err)
		}
		leaves = leaves[n:]
	}
	return nil
}

// readHashes reads stored tree hashes in the order asked; a missing one
// is an error (the tree is incomplete).
func readHashes(ctx context.Context, q sqldb.Querier, op string, indexes []int64) ([][]byte, error) {
	out := make([][]byte, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	pos := map[int64][]int{}
	args := make([]any, 0, len(indexes))
	ph := make([]string, 0, len(indexes))
	for i, idx := range indexes {
		if _, ok := pos[idx]; !ok {
			args = append(args, idx)
			ph = append(ph, "$"+strconv.Itoa(len(args)))
		}
		pos[idx] = append(pos[idx], i)
	}
	rows, err := q.QueryContext(ctx, `SELECT idx, hash FROM consent_tree_hashes WHERE idx IN (`+strings.Join(ph, ", ")+`)`, args...) // #nosec G202 -- placeholders only
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			idx int64
			h   []byte
		)
		if err := rows.Scan(&idx, &h); err != nil {
			return nil, dbErr(op, err)
		}
		for _, i := range pos[idx] {
			out[i] = h
		}
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(op, err)
	}
	for i, h := range out {
		if h == nil {
			return nil, fmt.Errorf("%s: tree hash %d is missing: %w", op, indexes[i], consent.ErrNotFound)
		}
	}
	return out, nil
}

const checkpointColumns = `size, root, note, created_at`

func scanCheckpoint(op string, sc sqldb.Scanner) (*consent.Checkpoint, error) {
	var (
		c       consent.Checkpoint
		created int64
	)
	if err := sc.Scan(&c.Size, &c.Root, &c.Note, &created); err != nil {
		return nil, dbErr(op, err)
	}
	c.CreatedAt = sqldb.FromMS(created)
	return &c, nil
}

func lastCheckpoint(ctx context.Context, q sqldb.Querier, op string) (*consent.Checkpoint, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+checkpointColumns+` FROM consent_checkpoints ORDER BY size DESC LIMIT 1`)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, dbErr(op, rows.Err())
	}
	return scanCheckpoint(op, rows)
}

// LastCheckpoint returns the newest checkpoint.
func (s *Store) LastCheckpoint(ctx context.Context) (*consent.Checkpoint, error) {
	const op = "last checkpoint"
	c, err := lastCheckpoint(ctx, s.db, op)
	if err == nil && c == nil {
		return nil, fmt.Errorf("%s: %w", op, consent.ErrNotFound)
	}
	return c, err
}

// Checkpoints pages checkpoints by size.
func (s *Store) Checkpoints(ctx context.Context, after int64, limit int) ([]*consent.Checkpoint, error) {
	const op = "list checkpoints"
	rows, err := s.db.QueryContext(ctx, `SELECT `+checkpointColumns+` FROM consent_checkpoints WHERE size > $1 ORDER BY size LIMIT $2`,
		after, clampLimit(limit))
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*consent.Checkpoint
	for rows.Next() {
		c, err := scanCheckpoint(op, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, dbErr(op, rows.Err())
}

// clampLimit bounds the pages of the audit walk.
func clampLimit(n int) int {
	if n <= 0 || n > 10000 {
		return 10000
	}
	return n
}

func (s *Store) queryLeaves(ctx context.Context, op, query string, args ...any) ([]consent.Leaf, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []consent.Leaf
	for rows.Next() {
		var l consent.Leaf
		if err := rows.Scan(&l.Index, &l.CitizenID, &l.Seq, &l.Hash); err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, l)
	}
	return out, dbErr(op, rows.Err())
}

// Leaves pages the tree's leaves by index.
func (s *Store) Leaves(ctx context.Context, from int64, limit int) ([]consent.Leaf, error) {
	return s.queryLeaves(ctx, "list tree leaves", `SELECT idx, citizen_id, seq, hash FROM consent_tree_leaves
		WHERE idx >= $1 ORDER BY idx LIMIT $2`, from, clampLimit(limit))
}

// CitizenLeaves pages one citizen's leaves by seq.
func (s *Store) CitizenLeaves(ctx context.Context, citizenID string, after int64, limit int) ([]consent.Leaf, error) {
	const op = "list citizen's tree leaves"
	if err := checkID(op, "citizen", citizenID); err != nil {
		return nil, err
	}
	return s.queryLeaves(ctx, op, `SELECT idx, citizen_id, seq, hash FROM consent_tree_leaves
		WHERE citizen_id = $1 AND seq > $2 ORDER BY seq, idx LIMIT $3`, citizenID, after, clampLimit(limit))
}

// LatestCitizenLeaf returns the citizen's leaf of the highest seq with an
// index below below (the head a checkpoint of that size commits), or nil:
// one row by the (citizen_id, seq) index, not a page of all of them.
func (s *Store) LatestCitizenLeaf(ctx context.Context, citizenID string, below int64) (*consent.Leaf, error) {
	const op = "read citizen's latest tree leaf"
	if err := checkID(op, "citizen", citizenID); err != nil {
		return nil, err
	}
	out, err := s.queryLeaves(ctx, op, `SELECT idx, citizen_id, seq, hash FROM consent_tree_leaves
		WHERE citizen_id = $1 AND idx < $2 ORDER BY seq DESC, idx DESC LIMIT 1`, citizenID, below)
	if err != nil || len(out) == 0 {
		return nil, err
	}
	return &out[0], nil
}

// Citizens pages the citizens with entries, a head or leaves (the
// legal-basis and consent trails' heads are not citizens').
func (s *Store) Citizens(ctx context.Context, after string, limit int) ([]string, error) {
	const op = "list audited citizens"
	if err := checkText(op, "after", after, maxID); err != nil {
		return nil, err
	}
	// Each part reads its index from after and stops at limit, so a page
	// costs the same at the end of a large log as at its start.
	rows, err := s.db.QueryContext(ctx, `SELECT citizen_id FROM (
			SELECT citizen_id FROM (SELECT DISTINCT citizen_id FROM consent_log WHERE citizen_id > $1 AND citizen_id <> $3 AND citizen_id <> $4 ORDER BY citizen_id LIMIT $2) l
			UNION SELECT citizen_id FROM (SELECT citizen_id FROM consent_chain_heads WHERE citizen_id > $1 AND citizen_id <> $3 AND citizen_id <> $4 ORDER BY citizen_id LIMIT $2) h
			UNION SELECT citizen_id FROM (SELECT DISTINCT citizen_id FROM consent_tree_leaves WHERE citizen_id > $1 AND citizen_id <> $3 AND citizen_id <> $4 ORDER BY citizen_id LIMIT $2) t
		) c ORDER BY citizen_id LIMIT $2`, after, clampLimit(limit), consent.BasisTrailChain, consent.RecordTrailChain)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, c)
	}
	return out, dbErr(op, rows.Err())
}

// Chain pages a citizen's entries by seq, as stored.
func (s *Store) Chain(ctx context.Context, citizenID string, after int64, limit int) ([]*consent.Entry, error) {
	const op = "read chain"
	if err := checkID(op, "citizen", citizenID); err != nil {
		return nil, err
	}
	return s.queryEntriesAs(ctx, op, true, `SELECT `+entryColumns+` FROM consent_log WHERE citizen_id = $1 AND seq > $2
		ORDER BY seq LIMIT $3`, citizenID, after, clampLimit(limit))
}

// ChainHead returns the citizen's stored head.
func (s *Store) ChainHead(ctx context.Context, citizenID string) (*consent.Head, error) {
	const op = "read chain head"
	if err := checkID(op, "citizen", citizenID); err != nil {
		return nil, err
	}
	h := consent.Head{CitizenID: citizenID}
	if err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM consent_chain_heads WHERE citizen_id = $1`, citizenID).Scan(&h.Seq, &h.Hash); err != nil {
		return nil, dbErr(op, err)
	}
	return &h, nil
}
