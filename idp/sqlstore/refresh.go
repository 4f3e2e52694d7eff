package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/onedoor/onedoor/idp"
)

const refreshColumns = `signature, request_id, client_id, subject, active, rotated_at, expires_at, created_at, request`

// CreateRefreshToken inserts t; ErrConflict when the signature exists.
func (s *Store) CreateRefreshToken(ctx context.Context, t *idp.RefreshToken) error {
	s.createdAt(&t.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_refresh_tokens (`+refreshColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.Signature, t.RequestID, t.ClientID, t.Subject, t.Active, nullMS(t.RotatedAt),
		ms(t.ExpiresAt), ms(t.CreatedAt), blob(t.Request))
	return dbErr("create refresh token", err)
}

// GetRefreshToken returns the token, rotated and revoked ones included.
func (s *Store) GetRefreshToken(ctx context.Context, signature string) (*idp.RefreshToken, error) {
	var (
		t                idp.RefreshToken
		rotated          sql.NullInt64
		expires, created int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT `+refreshColumns+` FROM idp_refresh_tokens WHERE signature = $1`, signature).
		Scan(&t.Signature, &t.RequestID, &t.ClientID, &t.Subject, &t.Active, &rotated, &expires, &created, &t.Request)
	if err != nil {
		return nil, dbErr("get refresh token", err)
	}
	t.RotatedAt = fromNullMS(rotated)
	t.ExpiresAt = fromMS(expires)
	t.CreatedAt = fromMS(created)
	t.Request = orNil(t.Request)
	return &t, nil
}

// RotateRefreshToken records the first rotation time; a retry keeps it so
// the caller's grace window cannot be stretched.
func (s *Store) RotateRefreshToken(ctx context.Context, signature string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE idp_refresh_tokens SET rotated_at = COALESCE(rotated_at, $2)
		WHERE signature = $1`, signature, ms(at))
	return notFoundIfNone("rotate refresh token", res, err)
}

// RevokeRefreshTokens deactivates the whole family of a request ID.
func (s *Store) RevokeRefreshTokens(ctx context.Context, requestID string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE idp_refresh_tokens SET active = $2 WHERE request_id = $1`, requestID, false)
	return dbErr("revoke refresh tokens", err)
}

// DeleteRefreshToken removes one token; ErrNotFound when absent.
func (s *Store) DeleteRefreshToken(ctx context.Context, signature string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idp_refresh_tokens WHERE signature = $1`, signature)
	return notFoundIfNone("delete refresh token", res, err)
}

// DeleteExpiredRefreshTokens removes tokens that expired before now.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idp_refresh_tokens WHERE expires_at < $1`, ms(now))
	if err != nil {
		return 0, dbErr("delete expired refresh tokens", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("delete expired refresh tokens", err)
}
