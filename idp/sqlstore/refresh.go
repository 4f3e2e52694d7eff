package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// Refresh tokens live in idp_refresh_families: one row per family, updated in
// place on rotation (see idp.RefreshToken).

const refreshColumns = `signature, prev_signature, request_id, client_id, subject, device_id, active,
	rotated_at, expires_at, created_at, request`

// CreateRefreshToken inserts a family; ErrConflict when its request ID or
// signature exists.
func (s *Store) CreateRefreshToken(ctx context.Context, t *idp.RefreshToken) error {
	s.createdAt(&t.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_refresh_families (`+refreshColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		t.Signature, nullString(t.PreviousSignature), t.RequestID, t.ClientID, t.Subject, t.DeviceID, t.Active,
		nullMS(t.RotatedAt), ms(t.ExpiresAt), ms(t.CreatedAt), blob(t.Request))
	return dbErr("create refresh token", err)
}

// GetRefreshToken returns the family whose current or previous token has the
// signature. Both columns are indexed.
func (s *Store) GetRefreshToken(ctx context.Context, signature string) (*idp.RefreshToken, error) {
	return scanRefresh(s.db.QueryRowContext(ctx, `SELECT `+refreshColumns+` FROM idp_refresh_families
		WHERE signature = $1 OR prev_signature = $1`, signature))
}

// GetRefreshTokenFamily returns a family by request ID.
func (s *Store) GetRefreshTokenFamily(ctx context.Context, requestID string) (*idp.RefreshToken, error) {
	return scanRefresh(s.db.QueryRowContext(ctx, `SELECT `+refreshColumns+` FROM idp_refresh_families
		WHERE request_id = $1`, requestID))
}

func scanRefresh(row scanner) (*idp.RefreshToken, error) {
	var (
		t                idp.RefreshToken
		prev             sql.NullString
		rotated          sql.NullInt64
		expires, created int64
	)
	err := row.Scan(&t.Signature, &prev, &t.RequestID, &t.ClientID, &t.Subject, &t.DeviceID, &t.Active,
		&rotated, &expires, &created, &t.Request)
	if err != nil {
		return nil, dbErr("get refresh token", err)
	}
	t.PreviousSignature = prev.String
	t.RotatedAt = fromNullMS(rotated)
	t.ExpiresAt = fromMS(expires)
	t.CreatedAt = fromMS(created)
	t.Request = orNil(t.Request)
	return &t, nil
}

// RotateRefreshToken is one UPDATE with the compare-and-set in its WHERE
// clause. SET expressions read the row as it was before the update, on both
// engines; on PostgreSQL a concurrent rotation waits for the row lock and
// re-checks the WHERE clause against the new row, on SQLite writers are
// serialised.
func (s *Store) RotateRefreshToken(ctx context.Context, r *idp.RefreshRotation) error {
	res, err := s.db.ExecContext(ctx, `UPDATE idp_refresh_families SET
			prev_signature = CASE WHEN signature = $2 THEN signature ELSE prev_signature END,
			rotated_at = CASE WHEN signature = $2 THEN $4 ELSE rotated_at END,
			signature = $3, expires_at = $6, request = $7
		WHERE request_id = $1 AND active = $8
			AND (signature = $2 OR (prev_signature = $2 AND rotated_at >= $5))`,
		r.RequestID, r.Redeemed, r.Signature, ms(r.At), ms(r.GraceFrom), ms(r.ExpiresAt), blob(r.Request), true)
	return notFoundIfNone("rotate refresh token", res, err)
}

// RevokeRefreshTokens deactivates a family.
func (s *Store) RevokeRefreshTokens(ctx context.Context, requestID string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE idp_refresh_families SET active = $2 WHERE request_id = $1`, requestID, false)
	return dbErr("revoke refresh tokens", err)
}

// RevokeDeviceRefreshTokens deactivates every family of a device.
func (s *Store) RevokeDeviceRefreshTokens(ctx context.Context, deviceID string) error {
	if deviceID == "" {
		return nil // families without a device are not one device's
	}
	_, err := s.db.ExecContext(ctx, `UPDATE idp_refresh_families SET active = $2 WHERE device_id = $1 AND active = $3`,
		deviceID, false, true)
	return dbErr("revoke device refresh tokens", err)
}

// DeleteRefreshToken removes a family; ErrNotFound when absent.
func (s *Store) DeleteRefreshToken(ctx context.Context, requestID string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idp_refresh_families WHERE request_id = $1`, requestID)
	return notFoundIfNone("delete refresh token", res, err)
}

// DeleteExpiredRefreshTokens removes families that expired before now.
func (s *Store) DeleteExpiredRefreshTokens(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idp_refresh_families WHERE expires_at < $1`, ms(now))
	if err != nil {
		return 0, dbErr("delete expired refresh tokens", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("delete expired refresh tokens", err)
}

func nullString(s string) sql.NullString {
	return sql.NullString{String: s, Valid: s != ""}
}
