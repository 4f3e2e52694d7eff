package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
)

const basisColumns = `id, agency, purpose, items, basis, law, created_at, revoked_at, version, updated_at`

func scanBasis(op string, sc sqldb.Scanner) (*consent.LegalBasis, error) {
	var (
		b                consent.LegalBasis
		items            string
		basis            string
		created, updated int64
		revoked          sql.NullInt64
	)
	if err := sc.Scan(&b.ID, &b.Agency, &b.Purpose, &items, &basis, &b.Law, &created, &revoked, &b.Version, &updated); err != nil {
		return nil, dbErr(op, err)
	}
	var err error
	if b.Items, err = sqldb.DecodeList(op, items); err != nil {
		return nil, err
	}
	b.Basis, b.CreatedAt, b.UpdatedAt, b.RevokedAt = consent.Basis(basis), sqldb.FromMS(created), sqldb.FromMS(updated), sqldb.FromNullMS(revoked)
	return &b, nil
}

// checkChange checks who changes a basis and why, and returns when: the
// caller's time, or zero for the store's clock read under the change's
// locks (changeTime).
func (s *Store) checkChange(op string, c consent.BasisChange) (time.Time, error) {
	if err := checkID(op, "operator", strings.TrimSpace(c.Operator)); err != nil {
		return time.Time{}, err
	}
	if strings.TrimSpace(c.Reason) == "" {
		return time.Time{}, invalid(op, "a reason is required")
	}
	if err := checkText(op, "reason", c.Reason, maxText); err != nil {
		return time.Time{}, err
	}
	if c.At.IsZero() {
		return time.Time{}, nil
	}
	return c.At.UTC().Truncate(time.Millisecond), nil
}

// changeTime is when a change happens: read once the trail's head and the
// basis are locked, so the trail's times follow its order, and a release
// that held the basis (AppendRelease) and so committed first has a time no
// later than the change's, on one clock.
func (s *Store) changeTime(at time.Time) time.Time {
	if at.IsZero() {
		return s.clock()
	}
	return at
}

func checkBasisTerms(op string, items []string, law string) error {
	if err := checkID(op, "law", strings.TrimSpace(law)); err != nil {
		return err
	}
	if err := checkText(op, "law", law, maxText); err != nil {
		return err
	}
	return checkItems(op, "items", items, true)
}

// PutLegalBasis registers a basis at version 1 with its "granted" event.
func (s *Store) PutLegalBasis(ctx context.Context, b *consent.LegalBasis, c consent.BasisChange) error {
	const op = "put legal basis"
	if b == nil {
		return invalid(op, "no legal basis")
	}
	at, err := s.checkChange(op, c)
	if err != nil {
		return err
	}
	if b.ID == "" {
		b.ID = consent.NewID("lb")
	}
	for _, f := range []struct{ name, v string }{{"id", b.ID}, {"agency", b.Agency}, {"purpose", b.Purpose}} {
		if err := checkID(op, f.name, f.v); err != nil {
			return err
		}
	}
	if err := checkBasisTerms(op, b.Items, b.Law); err != nil {
		return err
	}
	if !b.Basis.Legal() {
		return invalid(op, "basis must be legal_obligation or public_task")
	}
	var st consent.LegalBasis
	err = s.inTx(ctx, op, func(q sqldb.Querier) error {
		// The trail's head first: every change of a basis takes it, so
		// changes are serialised and the trail is one chain.
		head, err := s.lockHead(ctx, q, op, consent.BasisTrailChain)
		if err != nil {
			return err
		}
		at := s.changeTime(at)
		st = *b
		st.Items = slices.Clone(b.Items)
		st.Version, st.CreatedAt, st.UpdatedAt, st.RevokedAt = 1, at, at, nil
		if _, err := q.ExecContext(ctx, `INSERT INTO consent_legal_bases (`+basisColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 1, $7)`,
			st.ID, st.Agency, st.Purpose, sqldb.EncodeList(st.Items), string(st.Basis), st.Law, sqldb.MS(at)); err != nil {
			return dbErr(op, err)
		}
		return s.appendBasisEvent(ctx, q, op, head, &consent.BasisEvent{At: at, Operator: strings.TrimSpace(c.Operator), Action: consent.BasisGranted,
			BasisID: st.ID, Agency: st.Agency, Purpose: st.Purpose, After: consent.StateOf(&st), Reason: c.Reason})
	})
	if err != nil {
		return err
	}
	*b = st
	return nil
}

// liveBasis reads a live basis for update.
func (s *Store) liveBasis(ctx context.Context, q sqldb.Querier, op, id string) (*consent.LegalBasis, error) {
	return scanBasis(op, q.QueryRowContext(ctx, `SELECT `+basisColumns+` FROM consent_legal_bases
		WHERE id = $1 AND revoked_at IS NULL`+s.d.ForUpdate(), id))
}

// AmendLegalBasis replaces a live basis's items and law with its
// "amended" event.
func (s *Store) AmendLegalBasis(ctx context.Context, id string, items []string, law string, c consent.BasisChange) (*consent.LegalBasis, error) {
	const op = "amend legal basis"
	if err := checkID(op, "id", id); err != nil {
		return nil, err
	}
	at, err := s.checkChange(op, c)
	if err != nil {
		return nil, err
	}
	if err := checkBasisTerms(op, items, law); err != nil {
		return nil, err
	}
	var out *consent.LegalBasis
	err = s.inTx(ctx, op, func(q sqldb.Querier) error {
		head, err := s.lockHead(ctx, q, op, consent.BasisTrailChain)
		if err != nil {
			return err
		}
		cur, err := s.liveBasis(ctx, q, op, id)
		if err != nil {
			return err
		}
		at := s.changeTime(at)
		next := *cur
		next.Items, next.Law, next.Version, next.UpdatedAt = slices.Clone(items), law, cur.Version+1, at
		if _, err := q.ExecContext(ctx, `UPDATE consent_legal_bases SET items = $1, law = $2, version = $3, updated_at = $4 WHERE id = $5`,
			sqldb.EncodeList(next.Items), next.Law, next.Version, sqldb.MS(at), id); err != nil {
			return dbErr(op, err)
		}
		out = &next
		return s.appendBasisEvent(ctx, q, op, head, &consent.BasisEvent{At: at, Operator: strings.TrimSpace(c.Operator), Action: consent.BasisAmended,
			BasisID: id, Agency: cur.Agency, Purpose: cur.Purpose, Before: consent.StateOf(cur), After: consent.StateOf(&next), Reason: c.Reason})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeLegalBasis ends a live basis with its "revoked" event.
func (s *Store) RevokeLegalBasis(ctx context.Context, id string, c consent.BasisChange) error {
	const op = "revoke legal basis"
	if err := checkID(op, "id", id); err != nil {
		return err
	}
	at, err := s.checkChange(op, c)
	if err != nil {
		return err
	}
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		head, err := s.lockHead(ctx, q, op, consent.BasisTrailChain)
		if err != nil {
			return err
		}
		cur, err := s.liveBasis(ctx, q, op, id)
		if err != nil {
			return err
		}
		at := s.changeTime(at)
		if _, err := q.ExecContext(ctx, `UPDATE consent_legal_bases SET revoked_at = $1 WHERE id = $2`, sqldb.MS(at), id); err != nil {
			return dbErr(op, err)
		}
		return s.appendBasisEvent(ctx, q, op, head, &consent.BasisEvent{At: at, Operator: strings.TrimSpace(c.Operator), Action: consent.BasisRevoked,
			BasisID: id, Agency: cur.Agency, Purpose: cur.Purpose, Before: consent.StateOf(cur), Reason: c.Reason})
	})
}

// LegalBases lists live bases by agency and purpose ("" for every agency
// or every purpose), oldest first.
func (s *Store) LegalBases(ctx context.Context, agency, purpose string) ([]*consent.LegalBasis, error) {
	const op = "list legal bases"
	if err := checkText(op, "agency", agency, maxID); err != nil {
		return nil, err
	}
	if err := checkText(op, "purpose", purpose, maxID); err != nil {
		return nil, err
	}
	return s.queryBases(ctx, op, `SELECT `+basisColumns+` FROM consent_legal_bases
		WHERE revoked_at IS NULL AND ($1 = '' OR agency = $1) AND ($2 = '' OR purpose = $2)
		ORDER BY agency, purpose, created_at, id`, agency, purpose)
}

// AllLegalBases lists every basis, live or revoked, by id.
func (s *Store) AllLegalBases(ctx context.Context) ([]*consent.LegalBasis, error) {
	return s.queryBases(ctx, "list all legal bases", `SELECT `+basisColumns+` FROM consent_legal_bases ORDER BY id`)
}

func (s *Store) queryBases(ctx context.Context, op, query string, args ...any) ([]*consent.LegalBasis, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []*consent.LegalBasis{}
	for rows.Next() {
		b, err := scanBasis(op, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, dbErr(op, rows.Err())
}

const trailColumns = `seq, id, at, operator, action, basis_id, agency, purpose, state_before, state_after, reason, prev, hash`

// appendBasisEvent seals e after head (locked by the caller in q's
// transaction), inserts it and moves the trail's head.
func (s *Store) appendBasisEvent(ctx context.Context, q sqldb.Querier, op string, head consent.Head, e *consent.BasisEvent) error {
	if e.ID == "" {
		e.ID = consent.NewID("lbe")
	}
	e.Seal(&head)
	if _, err := q.ExecContext(ctx, `INSERT INTO consent_basis_trail (`+trailColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		e.Seq, e.ID, sqldb.MS(e.At), e.Operator, string(e.Action), e.BasisID, e.Agency, e.Purpose, encodeState(e.Before), encodeState(e.After),
		e.Reason, nullBytes(e.Prev), e.Hash); err != nil {
		return dbErr(op, err)
	}
	_, err := q.ExecContext(ctx, `UPDATE consent_chain_heads SET seq = $1, hash = $2, `+pendingSince("$4")+` WHERE citizen_id = $3`,
		e.Seq, e.Hash, consent.BasisTrailChain, sqldb.MS(s.clock()))
	return dbErr(op, err)
}

func encodeState(st *consent.BasisState) string {
	if st == nil {
		return ""
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(fmt.Sprintf("consent: encoding a basis state: %v", err)) // strings and numbers: cannot fail
	}
	return string(b)
}

// decodeState reads a state column as stored: text that is not a state
// comes back as one naming it, so the event fails its hash and is
// reported rather than stopping the check.
func decodeState(v string) *consent.BasisState {
	if v == "" {
		return nil
	}
	var st consent.BasisState
	if err := json.Unmarshal([]byte(v), &st); err != nil {
		return &consent.BasisState{Law: "undecodable state column: " + v}
	}
	return &st
}

// BasisTrail pages the trail by seq, as stored.
func (s *Store) BasisTrail(ctx context.Context, after int64, limit int) ([]*consent.BasisEvent, error) {
	const op = "read legal basis trail"
	rows, err := s.db.QueryContext(ctx, `SELECT `+trailColumns+` FROM consent_basis_trail WHERE seq > $1 ORDER BY seq LIMIT $2`,
		after, clampLimit(limit))
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []*consent.BasisEvent{}
	for rows.Next() {
		var (
			e             consent.BasisEvent
			at            int64
			action        string
			before, after string
		)
		if err := rows.Scan(&e.Seq, &e.ID, &at, &e.Operator, &action, &e.BasisID, &e.Agency, &e.Purpose, &before, &after, &e.Reason,
			&e.Prev, &e.Hash); err != nil {
			return nil, dbErr(op, err)
		}
		if len(e.Prev) == 0 {
			e.Prev = nil
		}
		e.At, e.Action, e.Before, e.After = sqldb.FromMS(at), consent.BasisAction(action), decodeState(before), decodeState(after)
		out = append(out, &e)
	}
	return out, dbErr(op, rows.Err())
}

// adoptBases appends an "adopted" event (and a "revoked" one for a basis
// already revoked) for every basis registered before the trail existed,
// once: migration 0004 leaves a marker row that this removes in the same
// transaction. A marker put back by hand adopts after the trail began,
// which onedoor audit verify reports.
func (s *Store) adoptBases(ctx context.Context) error {
	const op = "adopt legal bases into the trail"
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		var one int
		switch err := q.QueryRowContext(ctx, `SELECT id FROM consent_basis_adopt WHERE id = 1`+s.d.ForUpdate()).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return dbErr(op, err)
		}
		rows, err := q.QueryContext(ctx, `SELECT `+basisColumns+` FROM consent_legal_bases
			WHERE id NOT IN (SELECT basis_id FROM consent_basis_trail) ORDER BY created_at, id`)
		if err != nil {
			return dbErr(op, err)
		}
		var bases []*consent.LegalBasis
		for rows.Next() {
			b, err := scanBasis(op, rows)
			if err != nil {
				rows.Close()
				return err
			}
			bases = append(bases, b)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbErr(op, err)
		}
		var head consent.Head
		if len(bases) > 0 {
			if head, err = s.lockHead(ctx, q, op, consent.BasisTrailChain); err != nil {
				return err
			}
		}
		var events []*consent.BasisEvent
		for _, b := range bases {
			events = append(events, &consent.BasisEvent{At: b.CreatedAt, Operator: "onedoor migrate", Action: consent.BasisAdopted,
				BasisID: b.ID, Agency: b.Agency, Purpose: b.Purpose, After: consent.StateOf(b), Reason: "registered before the legal-basis trail existed"})
		}
		for _, b := range bases {
			if b.RevokedAt != nil {
				events = append(events, &consent.BasisEvent{At: *b.RevokedAt, Operator: "onedoor migrate", Action: consent.BasisRevoked,
					BasisID: b.ID, Agency: b.Agency, Purpose: b.Purpose, Before: consent.StateOf(b), Reason: "revoked before the legal-basis trail existed"})
			}
		}
		for _, e := range events {
			if err := s.appendBasisEvent(ctx, q, op, head, e); err != nil {
				return err
			}
			head = consent.Head{CitizenID: consent.BasisTrailChain, Seq: e.Seq, Hash: e.Hash}
		}
		_, err = q.ExecContext(ctx, `DELETE FROM consent_basis_adopt`)
		return dbErr(op, err)
	})
}
