package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/represent"
)

// createRegistryGuardians records, inside CreateCitizens' transaction, each
// citizen's Guardians (personal ids of the batch or of stored citizens) as
// registry guardianships.
func (s *Store) createRegistryGuardians(ctx context.Context, q querier, op string, cs []*idp.Citizen) error {
	inBatch := make(map[string]string, len(cs)) // personal id -> subject
	for _, c := range cs {
		inBatch[c.PersonalID] = c.ID
	}
	for _, c := range cs {
		seen := map[string]bool{}
		for _, pid := range c.Guardians {
			if pid == c.PersonalID {
				return fmt.Errorf("%s: citizen %s: a citizen cannot be their own guardian: %w", op, c.PersonalID, idp.ErrInvalid)
			}
			if seen[pid] {
				continue
			}
			seen[pid] = true
			gid, ok := inBatch[pid]
			if !ok {
				err := q.QueryRowContext(ctx, `SELECT id FROM idp_citizens WHERE personal_id = $1`, pid).Scan(&gid)
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("%s: citizen %s: guardian %s is not registered: %w", op, c.PersonalID, pid, idp.ErrInvalid)
				}
				if err != nil {
					return dbErr(op, err)
				}
			}
			if _, err := q.ExecContext(ctx, `INSERT INTO idp_guardianships (ward_id, guardian_id, source, until_ms, created_ms)
				VALUES ($1, $2, $3, NULL, $4)`, c.ID, gid, represent.GuardianRegistry, ms(c.CreatedAt)); err != nil {
				return dbErr(op, err)
			}
		}
	}
	return nil
}

// AddGuardianship implements idp.CitizenStore.
func (s *Store) AddGuardianship(ctx context.Context, g represent.Guardianship) error {
	const op = "add guardianship"
	switch {
	case g.WardID == "" || g.GuardianID == "":
		return fmt.Errorf("%s: ward and guardian are required: %w", op, idp.ErrInvalid)
	case g.WardID == g.GuardianID:
		return fmt.Errorf("%s: a citizen cannot be their own guardian: %w", op, idp.ErrInvalid)
	case g.Source != represent.GuardianCourt && g.Source != represent.GuardianRegistry:
		return fmt.Errorf("%s: source must be %q or %q: %w", op, represent.GuardianCourt, represent.GuardianRegistry, idp.ErrInvalid)
	case g.Source == represent.GuardianRegistry && g.Until != nil:
		return fmt.Errorf("%s: a registry guardianship ends at the ward's majority, not at a date: %w", op, idp.ErrInvalid)
	}
	s.createdAt(&g.CreatedAt)
	return s.inTx(ctx, op, func(q querier) error {
		var n int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM idp_citizens WHERE id IN ($1, $2)`, g.WardID, g.GuardianID).Scan(&n); err != nil {
			return dbErr(op, err)
		}
		if n != 2 {
			return fmt.Errorf("%s: ward or guardian: %w", op, idp.ErrNotFound)
		}
		var ended sql.NullInt64
		err := q.QueryRowContext(ctx, `SELECT ended_ms FROM idp_guardianships WHERE ward_id = $1 AND guardian_id = $2 AND source = $3`+s.forUpdate(),
			g.WardID, g.GuardianID, g.Source).Scan(&ended)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err := q.ExecContext(ctx, `INSERT INTO idp_guardianships (ward_id, guardian_id, source, until_ms, created_ms)
				VALUES ($1, $2, $3, $4, $5)`, g.WardID, g.GuardianID, g.Source, nullMS(g.Until), ms(g.CreatedAt))
			return dbErr(op, err)
		case err != nil:
			return dbErr(op, err)
		case !ended.Valid:
			return fmt.Errorf("%s: this guardianship is already in force: %w", op, idp.ErrConflict)
		}
		_, err = q.ExecContext(ctx, `UPDATE idp_guardianships SET until_ms = $4, created_ms = $5, ended_ms = NULL
			WHERE ward_id = $1 AND guardian_id = $2 AND source = $3`, g.WardID, g.GuardianID, g.Source, nullMS(g.Until), ms(g.CreatedAt))
		return dbErr(op, err)
	})
}

// EndGuardianship implements idp.CitizenStore.
func (s *Store) EndGuardianship(ctx context.Context, wardID, guardianID string, at time.Time) error {
	const op = "end guardianship"
	done, err := s.writeTurn(ctx)
	if err != nil {
		return dbErr(op, err)
	}
	defer done()
	res, err := s.db.ExecContext(ctx, `UPDATE idp_guardianships SET ended_ms = $3
		WHERE ward_id = $1 AND guardian_id = $2 AND ended_ms IS NULL`, wardID, guardianID, ms(at))
	return notFoundIfNone(op, res, err)
}

// Guardianships implements idp.CitizenStore.
func (s *Store) Guardianships(ctx context.Context, citizenID string) ([]represent.Guardianship, error) {
	const op = "guardianships"
	rows, err := s.db.QueryContext(ctx, `SELECT ward_id, guardian_id, source, until_ms, created_ms FROM idp_guardianships
		WHERE (ward_id = $1 OR guardian_id = $1) AND ended_ms IS NULL
		ORDER BY created_ms, ward_id, guardian_id, source`, citizenID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []represent.Guardianship
	for rows.Next() {
		var (
			g       represent.Guardianship
			until   sql.NullInt64
			created int64
		)
		if err := rows.Scan(&g.WardID, &g.GuardianID, &g.Source, &until, &created); err != nil {
			return nil, dbErr(op, err)
		}
		g.Until, g.CreatedAt = fromNullMS(until), fromMS(created)
		out = append(out, g)
	}
	return out, dbErr(op, rows.Err())
}
