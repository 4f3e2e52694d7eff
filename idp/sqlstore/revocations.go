package sqlstore

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Revoke denies key until the given time; revoking an already revoked key
// keeps the later time, so a short denial never shortens a long one.
func (s *Store) Revoke(ctx context.Context, key string, until time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_revocations (key, revoked_until) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET revoked_until = CASE
			WHEN excluded.revoked_until > idp_revocations.revoked_until THEN excluded.revoked_until
			ELSE idp_revocations.revoked_until END`,
		key, ms(until))
	return dbErr("revoke", err)
}

// AnyRevoked reports whether any of the keys is revoked now, in one query.
func (s *Store) AnyRevoked(ctx context.Context, keys ...string) (bool, error) {
	if len(keys) == 0 {
		return false, nil
	}
	var q strings.Builder
	q.WriteString(`SELECT 1 FROM idp_revocations WHERE revoked_until > $1 AND key IN (`)
	args := make([]any, 0, len(keys)+1)
	args = append(args, ms(s.now()))
	for i, k := range keys {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("$" + strconv.Itoa(i+2))
		args = append(args, k)
	}
	q.WriteString(`) LIMIT 1`)
	rows, err := s.db.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return false, dbErr("check revocations", err)
	}
	defer rows.Close()
	found := rows.Next()
	if err := rows.Err(); err != nil {
		return false, dbErr("check revocations", err)
	}
	return found, nil
}

// deleteExpiredRevocations removes denials that ended before now.
func (s *Store) deleteExpiredRevocations(ctx context.Context, now time.Time) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM idp_revocations WHERE revoked_until <= $1`, ms(now))
	return dbErr("garbage collect revocations", err)
}
