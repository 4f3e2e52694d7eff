package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
)

func purposeList(ps []consent.Purpose) string {
	if ps == nil {
		ps = []consent.Purpose{}
	}
	b, _ := json.Marshal(ps) // strings only: cannot fail
	return string(b)
}

const clientColumns = `id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types,
	scopes, auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at, claims, agency, purposes,
	backchannel_logout_uri, backchannel_logout_session_required,
	status, registration_hash, initial_token_id, approved_by, approved_at, profile,
	backchannel_token_delivery_mode, backchannel_client_notification_endpoint`

// CreateClient inserts c; ErrConflict when the ID exists.
func (s *Store) CreateClient(ctx context.Context, c *idp.Client) error {
	defer s.clientWritten()
	s.createdAt(&c.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_clients (`+clientColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)`,
		clientValues(c)...)
	return dbErr("create client", err)
}

// GetClient returns the client with the given ID.
func (s *Store) GetClient(ctx context.Context, id string) (*idp.Client, error) {
	c, err := scanClient(s.db.QueryRowContext(ctx, `SELECT `+clientColumns+` FROM idp_clients WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("get client", err)
	}
	return c, nil
}

// ListClients returns every client ordered by ID.
func (s *Store) ListClients(ctx context.Context) ([]*idp.Client, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+clientColumns+` FROM idp_clients ORDER BY id`)
	if err != nil {
		return nil, dbErr("list clients", err)
	}
	defer rows.Close()
	var cs []*idp.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, dbErr("list clients", err)
		}
		cs = append(cs, c)
	}
	return cs, dbErr("list clients", rows.Err())
}

// DeleteClient removes a client; ErrNotFound when absent.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	defer s.clientWritten()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return dbErr("delete client", err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `DELETE FROM idp_clients WHERE id = $1`, id)
	if err := notFoundIfNone("delete client", res, err); err != nil {
		return err
	}
	// Its refresh-token families go with it, so registering the same
	// client id again revives none of them.
	if _, err := tx.ExecContext(ctx, `DELETE FROM idp_refresh_families WHERE client_id = $1`, id); err != nil {
		return dbErr("delete client's refresh tokens", err)
	}
	return dbErr("delete client", tx.Commit())
}

// statusActive is how the status column spells idp.ClientActive.
const statusActive = "active"

// clientValues are c's values in clientColumns' order.
func clientValues(c *idp.Client) []any {
	status := c.Registration.Status
	if status == idp.ClientActive {
		status = statusActive
	}
	return []any{c.ID, c.Name, orNil(c.SecretHash), jsonList(c.RedirectURIs), jsonList(c.PostLogoutRedirectURIs),
		jsonList(c.GrantTypes), jsonList(c.Scopes), c.AuthMethod, c.JWKS, c.JWKSURI, c.PARRequired,
		c.IDTokenAlg, ms(c.CreatedAt), jsonList(c.Claims), c.Agency, purposeList(c.Purposes),
		c.BackchannelLogoutURI, c.BackchannelLogoutSessionRequired,
		status, orNil(c.Registration.TokenHash), c.Registration.InitialTokenID, c.Registration.ApprovedBy,
		nullMS(c.Registration.ApprovedAt), c.Profile,
		c.BackchannelTokenDeliveryMode, c.BackchannelClientNotificationEndpoint}
}

func scanClient(r scanner) (*idp.Client, error) {
	var (
		c                                   idp.Client
		redirects, postLogout, grants, scps string
		claims, purposes                    string
		created                             int64
	)
	var approvedAt sql.NullInt64
	err := r.Scan(&c.ID, &c.Name, &c.SecretHash, &redirects, &postLogout, &grants, &scps,
		&c.AuthMethod, &c.JWKS, &c.JWKSURI, &c.PARRequired, &c.IDTokenAlg, &created, &claims, &c.Agency, &purposes,
		&c.BackchannelLogoutURI, &c.BackchannelLogoutSessionRequired,
		&c.Registration.Status, &c.Registration.TokenHash, &c.Registration.InitialTokenID, &c.Registration.ApprovedBy, &approvedAt, &c.Profile,
		&c.BackchannelTokenDeliveryMode, &c.BackchannelClientNotificationEndpoint)
	if err != nil {
		return nil, err
	}
	if c.Registration.Status == statusActive {
		c.Registration.Status = idp.ClientActive
	}
	c.Registration.TokenHash = orNil(c.Registration.TokenHash)
	c.Registration.ApprovedAt = fromNullMS(approvedAt)
	if err := json.Unmarshal([]byte(purposes), &c.Purposes); err != nil {
		return nil, fmt.Errorf("decode purposes column: %w", err)
	}
	if len(c.Purposes) == 0 {
		c.Purposes = nil
	}
	for _, l := range []struct {
		s   string
		dst *[]string
	}{{redirects, &c.RedirectURIs}, {postLogout, &c.PostLogoutRedirectURIs}, {grants, &c.GrantTypes}, {scps, &c.Scopes}, {claims, &c.Claims}} {
		if err := parseList(l.s, l.dst); err != nil {
			return nil, err
		}
	}
	if len(c.Claims) == 0 {
		c.Claims = nil // clients registered before the column had none
	}
	c.SecretHash = orNil(c.SecretHash)
	c.CreatedAt = fromMS(created)
	return &c, nil
}

const citizenColumns = `id, personal_id, family_name, given_name, birthdate, gender, address, phone_number, created_at`

// CreateCitizens inserts all citizens in one transaction, or none.
func (s *Store) CreateCitizens(ctx context.Context, cs []*idp.Citizen) error {
	const op = "create citizens"
	if len(cs) == 0 {
		return nil
	}
	return s.inTx(ctx, op, func(q querier) error {
		for _, c := range cs {
			s.createdAt(&c.CreatedAt)
			_, err := q.ExecContext(ctx, `INSERT INTO idp_citizens (`+citizenColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
				c.ID, c.PersonalID, c.FamilyName, c.GivenName, c.Birthdate, c.Gender, c.Address,
				c.PhoneNumber, ms(c.CreatedAt))
			if err != nil {
				return dbErr(op, err)
			}
		}
		return s.createRegistryGuardians(ctx, q, op, cs)
	})
}

// GetCitizen returns the citizen with the given subject ID.
func (s *Store) GetCitizen(ctx context.Context, id string) (*idp.Citizen, error) {
	c, err := scanCitizen(s.db.QueryRowContext(ctx, `SELECT `+citizenColumns+` FROM idp_citizens WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("get citizen", err)
	}
	return c, nil
}

// GetCitizenByPersonalID returns the citizen with the given personal ID.
func (s *Store) GetCitizenByPersonalID(ctx context.Context, personalID string) (*idp.Citizen, error) {
	c, err := scanCitizen(s.db.QueryRowContext(ctx, `SELECT `+citizenColumns+` FROM idp_citizens WHERE personal_id = $1`, personalID))
	if err != nil {
		return nil, dbErr("get citizen by personal id", err)
	}
	return c, nil
}

// ListCitizens returns citizens ordered by personal ID.
func (s *Store) ListCitizens(ctx context.Context, f idp.CitizenFilter) ([]*idp.Citizen, error) {
	const op = "list citizens"
	// SQLite accepts OFFSET only after LIMIT, so "no limit" is the largest one.
	limit := int64(math.MaxInt64)
	if f.Limit > 0 {
		limit = int64(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+citizenColumns+` FROM idp_citizens
		ORDER BY personal_id LIMIT $1 OFFSET $2`, limit, int64(max(f.Offset, 0)))
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var cs []*idp.Citizen
	for rows.Next() {
		c, err := scanCitizen(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		cs = append(cs, c)
	}
	return cs, dbErr(op, rows.Err())
}

func scanCitizen(r scanner) (*idp.Citizen, error) {
	var (
		c       idp.Citizen
		created int64
	)
	err := r.Scan(&c.ID, &c.PersonalID, &c.FamilyName, &c.GivenName, &c.Birthdate, &c.Gender,
		&c.Address, &c.PhoneNumber, &created)
	if err != nil {
		return nil, err
	}
	c.CreatedAt = fromMS(created)
	return &c, nil
}

const activationColumns = `citizen_id, code_hash, level, expires_at, attempts, used_at, created_at`

// PutActivation inserts a or replaces the citizen's previous activation.
func (s *Store) PutActivation(ctx context.Context, a *idp.Activation) error {
	s.createdAt(&a.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_activations (`+activationColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (citizen_id) DO UPDATE SET code_hash = excluded.code_hash, level = excluded.level,
			expires_at = excluded.expires_at, attempts = excluded.attempts, used_at = excluded.used_at,
			created_at = excluded.created_at`,
		a.CitizenID, blob(a.CodeHash), string(a.Level), ms(a.ExpiresAt), a.Attempts, nullMS(a.UsedAt), ms(a.CreatedAt))
	return dbErr("put activation", err)
}

// GetActivation returns the citizen's activation.
func (s *Store) GetActivation(ctx context.Context, citizenID string) (*idp.Activation, error) {
	a, err := scanActivation(s.db.QueryRowContext(ctx, `SELECT `+activationColumns+` FROM idp_activations WHERE citizen_id = $1`, citizenID))
	if err != nil {
		return nil, dbErr("get activation", err)
	}
	return a, nil
}

// UpdateActivation runs fn on the locked record and stores what fn leaves in
// it even when fn fails, so failed attempts count; fn's error is returned.
func (s *Store) UpdateActivation(ctx context.Context, citizenID string, fn func(a *idp.Activation) error) error {
	const op = "update activation"
	var fnErr error
	err := s.inTx(ctx, op, func(q querier) error {
		a, err := scanActivation(q.QueryRowContext(ctx, `SELECT `+activationColumns+` FROM idp_activations
			WHERE citizen_id = $1`+s.forUpdate(), citizenID))
		if err != nil {
			return dbErr(op, err)
		}
		fnErr = fn(a)
		_, err = q.ExecContext(ctx, `UPDATE idp_activations SET code_hash = $2, level = $3, expires_at = $4,
			attempts = $5, used_at = $6, created_at = $7 WHERE citizen_id = $1`,
			citizenID, blob(a.CodeHash), string(a.Level), ms(a.ExpiresAt), a.Attempts, nullMS(a.UsedAt), ms(a.CreatedAt))
		return dbErr(op, err)
	})
	if err != nil {
		if fnErr != nil {
			return errors.Join(fnErr, err)
		}
		return err
	}
	return fnErr
}

func scanActivation(r scanner) (*idp.Activation, error) {
	var (
		a                idp.Activation
		level            string
		expires, created int64
		used             sql.NullInt64
	)
	if err := r.Scan(&a.CitizenID, &a.CodeHash, &level, &expires, &a.Attempts, &used, &created); err != nil {
		return nil, err
	}
	a.CodeHash = orNil(a.CodeHash)
	a.Level = idp.Level(level)
	a.ExpiresAt = fromMS(expires)
	a.UsedAt = fromNullMS(used)
	a.CreatedAt = fromMS(created)
	return &a, nil
}

const deviceColumns = `id, citizen_id, name, public_key, level, created_at, revoked_at, platform, model, last_used_at`

// CreateDevice inserts d; ErrConflict when the ID exists.
func (s *Store) CreateDevice(ctx context.Context, d *idp.Device) error {
	s.createdAt(&d.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_devices (`+deviceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		d.ID, d.CitizenID, d.Name, d.PublicKey, string(d.Level), ms(d.CreatedAt), nullMS(d.RevokedAt), d.Platform, d.Model, nullMS(d.LastUsedAt))
	return dbErr("create device", err)
}

// GetDevice returns the device with the given ID.
func (s *Store) GetDevice(ctx context.Context, id string) (*idp.Device, error) {
	d, err := scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceColumns+` FROM idp_devices WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("get device", err)
	}
	return d, nil
}

// ListDevices returns the citizen's devices, oldest first, revoked included.
func (s *Store) ListDevices(ctx context.Context, citizenID string) ([]*idp.Device, error) {
	const op = "list devices"
	rows, err := s.db.QueryContext(ctx, `SELECT `+deviceColumns+` FROM idp_devices WHERE citizen_id = $1
		ORDER BY created_at, id`, citizenID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var ds []*idp.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		ds = append(ds, d)
	}
	return ds, dbErr(op, rows.Err())
}

// RevokeDevice sets RevokedAt unless already set; ErrNotFound when absent.
func (s *Store) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE idp_devices SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1`, id, ms(at))
	return notFoundIfNone("revoke device", res, err)
}

// TouchDevice sets last_used_at when the device is live and its last use
// is older than every: one conditional UPDATE, so of concurrent approvals
// only the first in an interval writes. ErrNotFound when absent.
func (s *Store) TouchDevice(ctx context.Context, id string, at time.Time, every time.Duration) (bool, error) {
	const op = "touch device"
	res, err := s.db.ExecContext(ctx, `UPDATE idp_devices SET last_used_at = $2
		WHERE id = $1 AND revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at <= $3)`, id, ms(at), ms(at.Add(-every)))
	if err != nil {
		return false, dbErr(op, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, dbErr(op, err)
	} else if n > 0 {
		return true, nil
	}
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1 FROM idp_devices WHERE id = $1`, id).Scan(&one); err != nil {
		return false, dbErr(op, err)
	}
	return false, nil
}

func scanDevice(r scanner) (*idp.Device, error) {
	var (
		d       idp.Device
		level   string
		created int64
		revoked sql.NullInt64
		used    sql.NullInt64
	)
	if err := r.Scan(&d.ID, &d.CitizenID, &d.Name, &d.PublicKey, &level, &created, &revoked, &d.Platform, &d.Model, &used); err != nil {
		return nil, err
	}
	d.Level = idp.Level(level)
	d.CreatedAt = fromMS(created)
	d.RevokedAt = fromNullMS(revoked)
	d.LastUsedAt = fromNullMS(used)
	return &d, nil
}

const keyColumns = `id, alg, state, private_key, public_jwk, created_at, activated_at, retired_at, publish_until`

// CreateKey inserts k; ErrConflict when the kid exists.
func (s *Store) CreateKey(ctx context.Context, k *idp.SigningKey) error {
	s.createdAt(&k.CreatedAt)
	_, err := s.db.ExecContext(ctx, `INSERT INTO idp_signing_keys (`+keyColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.Alg, k.State, blob(k.Private), k.Public, ms(k.CreatedAt),
		nullMS(k.ActivatedAt), nullMS(k.RetiredAt), nullMS(k.PublishUntil))
	return dbErr("create key", err)
}

// ListKeys returns every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]*idp.SigningKey, error) {
	const op = "list keys"
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM idp_signing_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var ks []*idp.SigningKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		ks = append(ks, k)
	}
	return ks, dbErr(op, rows.Err())
}

// UpdateKey runs fn on the locked key and saves it when fn returns nil.
func (s *Store) UpdateKey(ctx context.Context, kid string, fn func(k *idp.SigningKey) error) error {
	const op = "update key"
	var fnErr error
	err := s.inTx(ctx, op, func(q querier) error {
		k, err := scanKey(q.QueryRowContext(ctx, `SELECT `+keyColumns+` FROM idp_signing_keys WHERE id = $1`+s.forUpdate(), kid))
		if err != nil {
			return dbErr(op, err)
		}
		if fnErr = fn(k); fnErr != nil {
			return fnErr
		}
		_, err = q.ExecContext(ctx, `UPDATE idp_signing_keys SET alg = $2, state = $3, private_key = $4,
			public_jwk = $5, created_at = $6, activated_at = $7, retired_at = $8, publish_until = $9 WHERE id = $1`,
			kid, k.Alg, k.State, blob(k.Private), k.Public, ms(k.CreatedAt),
			nullMS(k.ActivatedAt), nullMS(k.RetiredAt), nullMS(k.PublishUntil))
		return dbErr(op, err)
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

func scanKey(r scanner) (*idp.SigningKey, error) {
	var (
		k                           idp.SigningKey
		created                     int64
		activated, retired, publish sql.NullInt64
	)
	if err := r.Scan(&k.ID, &k.Alg, &k.State, &k.Private, &k.Public, &created, &activated, &retired, &publish); err != nil {
		return nil, err
	}
	k.Private = orNil(k.Private)
	k.CreatedAt = fromMS(created)
	k.ActivatedAt = fromNullMS(activated)
	k.RetiredAt = fromNullMS(retired)
	k.PublishUntil = fromNullMS(publish)
	return &k, nil
}

// LegacyGrants returns up to limit rows of idp_grants, which only the move
// into consent records (idp.MoveGrants) still reads.
func (s *Store) LegacyGrants(ctx context.Context, limit int) ([]*idp.LegacyGrant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT citizen_id, client_id, claims, evidence, updated_at FROM idp_grants
		ORDER BY citizen_id, client_id LIMIT $1`, limit)
	if err != nil {
		return nil, dbErr("list legacy grants", err)
	}
	defer rows.Close()
	var out []*idp.LegacyGrant
	for rows.Next() {
		var (
			g       idp.LegacyGrant
			claims  string
			updated int64
		)
		if err := rows.Scan(&g.CitizenID, &g.ClientID, &claims, &g.Evidence, &updated); err != nil {
			return nil, dbErr("list legacy grants", err)
		}
		if err := parseList(claims, &g.Claims); err != nil {
			return nil, err
		}
		g.UpdatedAt = fromMS(updated)
		out = append(out, &g)
	}
	return out, dbErr("list legacy grants", rows.Err())
}

// DeleteLegacyGrant removes one row of idp_grants once it is moved.
func (s *Store) DeleteLegacyGrant(ctx context.Context, citizenID, clientID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM idp_grants WHERE citizen_id = $1 AND client_id = $2`, citizenID, clientID)
	return dbErr("delete legacy grant", err)
}
