package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/onedoor/onedoor/idp"
)

var _ idp.PasskeyStore = (*Store)(nil)

// PasskeyUserHandle returns the citizen's user handle, storing handle when
// there is none; of two concurrent first calls both get the one stored.
func (s *Store) PasskeyUserHandle(ctx context.Context, citizenID string, handle []byte) ([]byte, error) {
	const op = "passkey user handle"
	if _, err := s.db.ExecContext(ctx, `INSERT INTO idp_passkey_users (citizen_id, user_handle) VALUES ($1, $2)
		ON CONFLICT (citizen_id) DO NOTHING`, citizenID, blob(handle)); err != nil {
		return nil, dbErr(op, err)
	}
	var got []byte
	if err := s.db.QueryRowContext(ctx, `SELECT user_handle FROM idp_passkey_users WHERE citizen_id = $1`, citizenID).Scan(&got); err != nil {
		return nil, dbErr(op, err)
	}
	return got, nil
}

// CitizenByUserHandle returns the citizen whose user handle this is.
func (s *Store) CitizenByUserHandle(ctx context.Context, handle []byte) (string, error) {
	var id string
	if err := s.db.QueryRowContext(ctx, `SELECT citizen_id FROM idp_passkey_users WHERE user_handle = $1`, blob(handle)).Scan(&id); err != nil {
		return "", dbErr("citizen by user handle", err)
	}
	return id, nil
}

// #nosec G101 -- column names, not a credential
const passkeyColumns = `id, citizen_id, credential_id, public_key, sign_count, aaguid, backup_eligible, transports, level, name, created_at, last_used_at`

// CreatePasskey inserts p; ErrConflict when its id or credential id exists.
func (s *Store) CreatePasskey(ctx context.Context, p *idp.Passkey) error {
	s.createdAt(&p.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_passkeys (`+passkeyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		p.ID, p.CitizenID, blob(p.CredentialID), blob(p.PublicKey), int64(p.SignCount), blob(p.AAGUID), p.BackupEligible,
		jsonList(p.Transports), string(p.Level), p.Name, ms(p.CreatedAt), nullMS(p.LastUsedAt))
	return dbErr("create passkey", err)
}

// GetPasskey returns a passkey by record id.
func (s *Store) GetPasskey(ctx context.Context, id string) (*idp.Passkey, error) {
	p, err := scanPasskey(s.db.QueryRowContext(ctx, `SELECT `+passkeyColumns+` FROM idp_passkeys WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("get passkey", err)
	}
	return p, nil
}

// GetPasskeyByCredentialID returns a passkey by credential id.
func (s *Store) GetPasskeyByCredentialID(ctx context.Context, credentialID []byte) (*idp.Passkey, error) {
	p, err := scanPasskey(s.db.QueryRowContext(ctx, `SELECT `+passkeyColumns+` FROM idp_passkeys WHERE credential_id = $1`, blob(credentialID)))
	if err != nil {
		return nil, dbErr("get passkey by credential id", err)
	}
	return p, nil
}

// ListPasskeys returns the citizen's passkeys, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, citizenID string) ([]*idp.Passkey, error) {
	const op = "list passkeys"
	rows, err := s.db.QueryContext(ctx, `SELECT `+passkeyColumns+` FROM idp_passkeys WHERE citizen_id = $1
		ORDER BY created_at, id`, citizenID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var ps []*idp.Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		ps = append(ps, p)
	}
	return ps, dbErr(op, rows.Err())
}

// RenamePasskey renames one of the citizen's passkeys.
func (s *Store) RenamePasskey(ctx context.Context, citizenID, id, name string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE idp_passkeys SET name = $3 WHERE id = $1 AND citizen_id = $2`, id, citizenID, name)
	return notFoundIfNone("rename passkey", res, err)
}

// DeletePasskey removes one of the citizen's passkeys.
func (s *Store) DeletePasskey(ctx context.Context, citizenID, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM idp_passkeys WHERE id = $1 AND citizen_id = $2`, id, citizenID)
	return notFoundIfNone("delete passkey", res, err)
}

// UsePasskey advances the counter in one conditional update; when no row
// changes it tells a vanished passkey (ErrNotFound) from a counter that did
// not advance (ErrConflict).
func (s *Store) UsePasskey(ctx context.Context, id string, signCount uint32, at time.Time) error {
	const op = "use passkey"
	res, err := s.db.ExecContext(ctx, `UPDATE idp_passkeys SET sign_count = $2, last_used_at = $3
		WHERE id = $1 AND (sign_count < $2 OR (sign_count = 0 AND $2 = 0))`, id, int64(signCount), ms(at))
	if err != nil {
		return dbErr(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return dbErr(op, err)
	} else if n == 1 {
		return nil
	}
	if _, err := s.GetPasskey(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("%s: signature counter did not advance: %w", op, idp.ErrConflict)
}

func scanPasskey(r scanner) (*idp.Passkey, error) {
	var (
		p          idp.Passkey
		count      int64
		transports string
		level      string
		created    int64
		used       sql.NullInt64
	)
	if err := r.Scan(&p.ID, &p.CitizenID, &p.CredentialID, &p.PublicKey, &count, &p.AAGUID, &p.BackupEligible,
		&transports, &level, &p.Name, &created, &used); err != nil {
		return nil, err
	}
	if err := parseList(transports, &p.Transports); err != nil {
		return nil, err
	}
	p.CredentialID, p.PublicKey, p.AAGUID = orNil(p.CredentialID), orNil(p.PublicKey), orNil(p.AAGUID)
	p.SignCount = uint32(count) // #nosec G115 -- written from a uint32
	p.Level = idp.Level(level)
	p.CreatedAt = fromMS(created)
	p.LastUsedAt = fromNullMS(used)
	return &p, nil
}
