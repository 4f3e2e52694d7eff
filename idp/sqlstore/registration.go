package sqlstore

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
)

const initialTokenColumns = `id, token_hash, agency, max_uses, uses, expires_at, revoked_at, created_by, created_at` //nolint:gosec // column names, not a credential

// CreateInitialToken stores t; ErrConflict on a duplicate ID or hash.
func (s *Store) CreateInitialToken(ctx context.Context, t *idp.InitialToken) error {
	s.createdAt(&t.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_initial_tokens (`+initialTokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, blob(t.Hash), t.Agency, t.MaxUses, t.Uses, ms(t.ExpiresAt), nullMS(t.RevokedAt), t.CreatedBy, ms(t.CreatedAt))
	return dbErr("create initial token", err)
}

// GetInitialToken returns the token with the keyed hash.
func (s *Store) GetInitialToken(ctx context.Context, hash []byte) (*idp.InitialToken, error) {
	t, err := scanInitialToken(s.db.QueryRowContext(ctx, `SELECT `+initialTokenColumns+` FROM idp_initial_tokens WHERE token_hash = $1`, blob(hash)))
	if err != nil {
		return nil, dbErr("get initial token", err)
	}
	return t, nil
}

// ListInitialTokens returns every token, newest first.
func (s *Store) ListInitialTokens(ctx context.Context) ([]*idp.InitialToken, error) {
	const op = "list initial tokens"
	rows, err := s.db.QueryContext(ctx, `SELECT `+initialTokenColumns+` FROM idp_initial_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var ts []*idp.InitialToken
	for rows.Next() {
		t, err := scanInitialToken(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		ts = append(ts, t)
	}
	return ts, dbErr(op, rows.Err())
}

// RevokeInitialToken sets revoked_at once; ErrNotFound when absent.
func (s *Store) RevokeInitialToken(ctx context.Context, id string, at time.Time) error {
	const op = "revoke initial token"
	res, err := s.db.ExecContext(ctx, `UPDATE idp_initial_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`, id, ms(at))
	return notFoundIfNone(op, res, err)
}

// RegisterClient consumes a use of the token and inserts c atomically: the
// conditional UPDATE is the check, so of concurrent registrations at most
// max_uses succeed.
func (s *Store) RegisterClient(ctx context.Context, tokenID string, now time.Time, c *idp.Client) error {
	const op = "register client"
	defer s.clientWritten()
	s.createdAt(&c.CreatedAt)
	return s.inTx(ctx, op, func(q querier) error {
		res, err := q.ExecContext(ctx, `UPDATE idp_initial_tokens SET uses = uses + 1
			WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 AND uses < max_uses`, tokenID, ms(now))
		if err := notFoundIfNone(op, res, err); err != nil {
			return err
		}
		_, err = q.ExecContext(ctx, `INSERT INTO idp_clients (`+clientColumns+`)
			VALUES (`+placeholders(len(clientValues(c)))+`)`, clientValues(c)...)
		return dbErr(op, err)
	})
}

// UpdateClient runs fn on the stored client in a transaction and saves it
// when fn returns nil.
func (s *Store) UpdateClient(ctx context.Context, id string, fn func(c *idp.Client) error) error {
	const op = "update client"
	defer s.clientWritten()
	return s.inTx(ctx, op, func(q querier) error {
		c, err := scanClient(q.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM idp_clients WHERE id = $1`+s.forUpdate(), id))
		if err != nil {
			return dbErr(op, err)
		}
		created := c.CreatedAt
		if err := fn(c); err != nil {
			return err
		}
		c.ID, c.CreatedAt = id, created
		vals := clientValues(c)
		cols := strings.Split(clientColumns, ",")
		var set []string
		for i, col := range cols {
			if i == 0 {
				continue // id
			}
			set = append(set, strings.TrimSpace(col)+" = $"+strconv.Itoa(i+1))
		}
		_, err = q.ExecContext(ctx, `UPDATE idp_clients SET `+strings.Join(set, ", ")+` WHERE id = $1`, vals...)
		return dbErr(op, err)
	})
}

func placeholders(n int) string {
	p := make([]string, n)
	for i := range p {
		p[i] = "$" + strconv.Itoa(i+1)
	}
	return strings.Join(p, ", ")
}

func scanInitialToken(r scanner) (*idp.InitialToken, error) {
	var (
		t                idp.InitialToken
		expires, created int64
		maxUses, uses    int64
		revoked          sql.NullInt64
	)
	if err := r.Scan(&t.ID, &t.Hash, &t.Agency, &maxUses, &uses, &expires, &revoked, &t.CreatedBy, &created); err != nil {
		return nil, err
	}
	t.MaxUses, t.Uses = int(maxUses), int(uses)
	t.ExpiresAt, t.CreatedAt, t.RevokedAt = fromMS(expires), fromMS(created), fromNullMS(revoked)
	return &t, nil
}
