package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/represent"
)

const mandateColumns = `id, grantor_id, grantee_id, party_type, party_id, party_ref, party_name, services, categories,
	valid_from_ms, valid_until_ms, may_delegate, parent_id, evidence, evidence_device, created_ms, accepted_ms, revoked_ms, revoked_by`

func scanMandate(op string, sc sqldb.Scanner) (*represent.Mandate, error) {
	var (
		m                          represent.Mandate
		partyType, ref, svcs, cats string
		from, until, created       int64
		mayDelegate                int64
		parent                     sql.NullString
		accepted, revoked          sql.NullInt64
	)
	if err := sc.Scan(&m.ID, &m.GrantorID, &m.GranteeID, &partyType, &m.Party.ID, &ref, &m.Party.Name, &svcs, &cats,
		&from, &until, &mayDelegate, &parent, &m.Evidence, &m.EvidenceDevice, &created, &accepted, &revoked, &m.RevokedBy); err != nil {
		return nil, err
	}
	m.Party.Type = represent.PartyType(partyType)
	if m.Party.Type == represent.TypeOrganisation {
		m.Party.TaxCode = ref
	} else {
		m.Party.PersonalID = ref
	}
	var err error
	if m.Services, err = decodeList(op, svcs); err != nil {
		return nil, err
	}
	if m.Categories, err = decodeList(op, cats); err != nil {
		return nil, err
	}
	m.ValidFrom, m.ValidUntil, m.CreatedAt = sqldb.FromMS(from), sqldb.FromMS(until), sqldb.FromMS(created)
	m.MayDelegate, m.ParentID = mayDelegate != 0, parent.String
	m.AcceptedAt, m.RevokedAt = sqldb.FromNullMS(accepted), sqldb.FromNullMS(revoked)
	return &m, nil
}

func checkMandate(op string, m *represent.Mandate) error {
	if m == nil {
		return invalid(op, "no mandate")
	}
	for _, f := range []struct{ name, v string }{{"id", m.ID}, {"grantor_id", m.GrantorID}, {"grantee_id", m.GranteeID}, {"party.id", m.Party.ID}, {"party ref", m.Party.Ref()}} {
		if err := checkID(op, f.name, f.v); err != nil {
			return err
		}
	}
	switch m.Party.Type {
	case represent.TypeOrganisation, represent.TypePerson:
	default:
		return invalid(op, "party type must be organisation or person")
	}
	for _, f := range []struct{ name, v string }{{"party.name", m.Party.Name}, {"evidence_device", m.EvidenceDevice}, {"parent_id", m.ParentID}, {"revoked_by", m.RevokedBy}} {
		if err := checkText(op, f.name, f.v, maxText); err != nil {
			return err
		}
	}
	if err := checkText(op, "evidence", m.Evidence, maxEvidence); err != nil {
		return err
	}
	if len(m.Services) == 0 && len(m.Categories) == 0 {
		return invalid(op, "a mandate names at least one service or category")
	}
	for _, l := range [][]string{m.Services, m.Categories} {
		if len(l) > maxTerms {
			return invalid(op, "too many services or categories")
		}
		for _, t := range l {
			if err := checkID(op, "service or category", t); err != nil {
				return err
			}
		}
	}
	if !m.ValidUntil.After(m.ValidFrom) {
		return invalid(op, "valid_until must be after valid_from")
	}
	if m.ParentID == m.ID {
		return invalid(op, "a mandate cannot be its own parent")
	}
	return nil
}

// CreateMandate implements represent.Store.
func (s *Store) CreateMandate(ctx context.Context, m *represent.Mandate) error {
	const op = "create mandate"
	if err := checkMandate(op, m); err != nil {
		return err
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = s.clock()
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		if m.ParentID != "" {
			var n int
			if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM rep_mandates WHERE id = $1`, m.ParentID).Scan(&n); err != nil {
				return dbErr(op, err)
			}
			if n == 0 {
				return invalid(op, "parent mandate "+m.ParentID+" does not exist")
			}
		}
		_, err := q.ExecContext(ctx, `INSERT INTO rep_mandates (`+mandateColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
			m.ID, m.GrantorID, m.GranteeID, string(m.Party.Type), m.Party.ID, m.Party.Ref(), m.Party.Name,
			sqldb.EncodeList(m.Services), sqldb.EncodeList(m.Categories), sqldb.MS(m.ValidFrom), sqldb.MS(m.ValidUntil),
			boolInt(m.MayDelegate), nullString(m.ParentID), m.Evidence, m.EvidenceDevice, sqldb.MS(m.CreatedAt),
			sqldb.NullMS(m.AcceptedAt), sqldb.NullMS(m.RevokedAt), m.RevokedBy)
		return dbErr(op, err)
	})
}

func (s *Store) getMandate(ctx context.Context, q sqldb.Querier, op, id string, lock bool) (*represent.Mandate, error) {
	query := `SELECT ` + mandateColumns + ` FROM rep_mandates WHERE id = $1`
	if lock {
		query += s.d.ForUpdate()
	}
	m, err := scanMandate(op, q.QueryRowContext(ctx, query, id))
	if err != nil {
		return nil, dbErr(op, err)
	}
	return m, nil
}

// GetMandate implements represent.Store.
func (s *Store) GetMandate(ctx context.Context, id string) (*represent.Mandate, error) {
	return s.getMandate(ctx, s.db, "get mandate", id, false)
}

func (s *Store) queryMandates(ctx context.Context, op, query string, args ...any) ([]*represent.Mandate, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*represent.Mandate
	for rows.Next() {
		m, err := scanMandate(op, rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, m)
	}
	return out, dbErr(op, rows.Err())
}

// ListMandates implements represent.Store.
func (s *Store) ListMandates(ctx context.Context, citizenID string) ([]*represent.Mandate, error) {
	return s.queryMandates(ctx, "list mandates", `SELECT `+mandateColumns+` FROM rep_mandates
		WHERE grantor_id = $1 OR grantee_id = $1 ORDER BY created_ms DESC, id DESC`, citizenID)
}

// MandatesReceived implements represent.Store.
func (s *Store) MandatesReceived(ctx context.Context, granteeID string, now time.Time) ([]*represent.Mandate, error) {
	return s.queryMandates(ctx, "mandates received", `SELECT `+mandateColumns+` FROM rep_mandates
		WHERE grantee_id = $1 AND accepted_ms IS NOT NULL AND revoked_ms IS NULL AND valid_from_ms <= $2 AND valid_until_ms > $2
		ORDER BY created_ms, id`, granteeID, sqldb.MS(now))
}

// MandatesOf implements represent.Store.
func (s *Store) MandatesOf(ctx context.Context, partyID string) ([]*represent.Mandate, error) {
	return s.queryMandates(ctx, "mandates of a party", `SELECT `+mandateColumns+` FROM rep_mandates
		WHERE party_id = $1 AND revoked_ms IS NULL ORDER BY created_ms, id`, partyID)
}

// AcceptMandate implements represent.Store.
func (s *Store) AcceptMandate(ctx context.Context, id string, at time.Time) (*represent.Mandate, error) {
	const op = "accept mandate"
	var m *represent.Mandate
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		var err error
		if m, err = s.getMandate(ctx, q, op, id, true); err != nil {
			return err
		}
		switch {
		case m.RevokedAt != nil:
			return fmt.Errorf("%s: the mandate is revoked: %w", op, represent.ErrConflict)
		case m.AcceptedAt != nil:
			return fmt.Errorf("%s: the mandate is accepted already: %w", op, represent.ErrConflict)
		}
		at := at.UTC().Truncate(time.Millisecond)
		m.AcceptedAt = &at
		_, err = q.ExecContext(ctx, `UPDATE rep_mandates SET accepted_ms = $2 WHERE id = $1`, id, sqldb.MS(at))
		return dbErr(op, err)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// RevokeMandate implements represent.Store: the mandate and every
// unrevoked mandate derived from it, level by level, in one transaction.
func (s *Store) RevokeMandate(ctx context.Context, id, by string, at time.Time) ([]string, error) {
	const op = "revoke mandate"
	if err := checkID(op, "revoked_by", by); err != nil {
		return nil, err
	}
	var ids []string
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		ids = ids[:0]
		m, err := s.getMandate(ctx, q, op, id, true)
		if err != nil {
			return err
		}
		if m.RevokedAt != nil {
			return fmt.Errorf("%s: the mandate is revoked already: %w", op, represent.ErrConflict)
		}
		when := sqldb.MS(at)
		if _, err := q.ExecContext(ctx, `UPDATE rep_mandates SET revoked_ms = $2, revoked_by = $3 WHERE id = $1`, id, when, by); err != nil {
			return dbErr(op, err)
		}
		ids = append(ids, id)
		seen := map[string]bool{id: true}
		// Breadth first; seen guards against a cycle the schema cannot
		// rule out (a row edited by hand).
		for level := []string{id}; len(level) > 0; {
			var next []string
			for _, parent := range level {
				children, err := s.unrevokedChildren(ctx, q, op, parent)
				if err != nil {
					return err
				}
				for _, c := range children {
					if !seen[c] {
						seen[c] = true
						next = append(next, c)
					}
				}
			}
			for _, c := range next {
				if _, err := q.ExecContext(ctx, `UPDATE rep_mandates SET revoked_ms = $2, revoked_by = $3 WHERE id = $1 AND revoked_ms IS NULL`,
					c, when, represent.ParentActor); err != nil {
					return dbErr(op, err)
				}
			}
			ids = append(ids, next...)
			level = next
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

func (s *Store) unrevokedChildren(ctx context.Context, q sqldb.Querier, op, parent string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT id FROM rep_mandates WHERE parent_id = $1 AND revoked_ms IS NULL ORDER BY created_ms, id`+s.d.ForUpdate(), parent)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, id)
	}
	return out, dbErr(op, rows.Err())
}

// CountActiveGranted implements represent.Store.
func (s *Store) CountActiveGranted(ctx context.Context, grantorID string, now time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM rep_mandates WHERE grantor_id = $1 AND revoked_ms IS NULL AND valid_until_ms > $2`,
		grantorID, sqldb.MS(now)).Scan(&n)
	return n, dbErr("count mandates granted", err)
}
