package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
)

const messageColumns = `id, citizen_id, application_id, status, agency_code, title_vi, title_en, body, results, created_at, read_at`

// ListInbox returns the citizen's messages, newest first, with their
// result documents.
func (s *Store) ListInbox(ctx context.Context, citizenID string, p mobileapi.Page) ([]*mobileapi.Message, string, error) {
	const op = "list inbox"
	limit := pageLimit(p.Limit)
	query := `SELECT ` + messageColumns + ` FROM api_inbox_messages WHERE citizen_id = $1`
	args := []any{citizenID}
	if p.Cursor != "" {
		at, id, err := decodeCursor(p.Cursor)
		if err != nil {
			return nil, "", invalidInput(op, "cursor is malformed")
		}
		query += ` AND (created_at < $2 OR (created_at = $2 AND id < $3))`
		args = append(args, at, id)
	}
	args = append(args, limit+1)
	var out []*mobileapi.Message
	err := s.snapshot(ctx, op, func(q sqldb.Querier) error {
		var err error
		out, err = queryMessages(ctx, q, op, query+` ORDER BY created_at DESC, id DESC LIMIT $`+strconv.Itoa(len(args)), args...)
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

// UnreadCount counts the citizen's unread messages.
func (s *Store) UnreadCount(ctx context.Context, citizenID string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_inbox_messages WHERE citizen_id = $1 AND read_at IS NULL`,
		citizenID).Scan(&n)
	return n, sqldb.Err("count unread messages", err)
}

// MarkRead marks the citizen's message read, keeping the first read time;
// another citizen's message is ErrNotFound.
func (s *Store) MarkRead(ctx context.Context, citizenID, id string) (*mobileapi.Message, error) {
	const op = "mark message read"
	var m *mobileapi.Message
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		res, err := q.ExecContext(ctx, `UPDATE api_inbox_messages SET read_at = COALESCE(read_at, $1) WHERE id = $2 AND citizen_id = $3`,
			sqldb.MS(s.clock()), id, citizenID)
		if err := sqldb.NotFoundIfNone(op, res, err); err != nil {
			return err
		}
		ms, err := queryMessages(ctx, q, op, `SELECT `+messageColumns+` FROM api_inbox_messages WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if len(ms) != 1 {
			return sqldb.Err(op, sql.ErrNoRows)
		}
		m = ms[0]
		return nil
	})
	return m, err
}

// insertMessage stores m; its Results are stored as their file IDs.
func insertMessage(ctx context.Context, q sqldb.Querier, op string, m *mobileapi.Message) error {
	ids := make([]string, 0, len(m.Results))
	for _, f := range m.Results {
		ids = append(ids, f.ID)
	}
	results, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	_, err = q.ExecContext(ctx, `INSERT INTO api_inbox_messages (`+messageColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		m.ID, m.CitizenID, m.ApplicationID, string(m.Status), m.AgencyCode, m.Title.VI, m.Title.EN, m.Body,
		string(results), sqldb.MS(m.CreatedAt), sqldb.NullMS(m.ReadAt))
	return sqldb.Err(op, err)
}

// queryMessages reads messages and then, in one query, their results.
func queryMessages(ctx context.Context, q sqldb.Querier, op, query string, args ...any) ([]*mobileapi.Message, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var (
		out     []*mobileapi.Message
		results [][]string
		all     []string
	)
	for rows.Next() {
		var (
			m             mobileapi.Message
			status, ids   string
			created       int64
			read          sql.NullInt64
			resultFileIDs []string
		)
		if err := rows.Scan(&m.ID, &m.CitizenID, &m.ApplicationID, &status, &m.AgencyCode, &m.Title.VI, &m.Title.EN,
			&m.Body, &ids, &created, &read); err != nil {
			return nil, sqldb.Err(op, err)
		}
		if err := json.Unmarshal([]byte(ids), &resultFileIDs); err != nil {
			return nil, fmt.Errorf("%s: message %s: results: %w", op, m.ID, err)
		}
		m.Status, m.CreatedAt, m.ReadAt = mobileapi.Status(status), sqldb.FromMS(created), sqldb.FromNullMS(read)
		out = append(out, &m)
		results = append(results, resultFileIDs)
		all = append(all, resultFileIDs...)
	}
	if err := rows.Err(); err != nil {
		return nil, sqldb.Err(op, err)
	}
	rows.Close()
	if len(all) == 0 {
		return out, nil
	}
	marks := make([]string, len(all))
	args = make([]any, len(all))
	for i, id := range all {
		marks[i], args[i] = "$"+strconv.Itoa(i+1), id
	}
	frows, err := q.QueryContext(ctx, `SELECT `+fileColumns+` FROM api_application_files WHERE id IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer frows.Close()
	files := make(map[string]mobileapi.File, len(all))
	for frows.Next() {
		f, err := scanFile(frows, nil)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		files[f.ID] = *f
	}
	if err := frows.Err(); err != nil {
		return nil, sqldb.Err(op, err)
	}
	for i, m := range out {
		for _, id := range results[i] {
			if f, ok := files[id]; ok {
				m.Results = append(m.Results, f)
			}
		}
	}
	return out, nil
}
