package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
)

const recordColumns = `id, citizen_id, client_id, agency, recipient, purpose_code, purpose_text, items, declined, basis,
	notice, method, evidence, version, granted_at, updated_at, expires_at, withdrawn_at, given_by`

func scanRecord(op string, sc sqldb.Scanner) (*consent.Record, error) {
	var (
		r                         consent.Record
		items, declined           string
		basis, method             string
		granted, updated, expires int64
		withdrawn                 sql.NullInt64
		givenBy                   string
	)
	if err := sc.Scan(&r.ID, &r.CitizenID, &r.ClientID, &r.Agency, &r.Recipient, &r.Purpose.Code, &r.Purpose.Text,
		&items, &declined, &basis, &r.Notice, &method, &r.Evidence, &r.Version, &granted, &updated, &expires, &withdrawn, &givenBy); err != nil {
		return nil, dbErr(op, err)
	}
	var err error
	if r.GivenBy, err = decodeOnBehalf(op, givenBy); err != nil {
		return nil, err
	}
	if r.Items, err = sqldb.DecodeList(op, items); err != nil {
		return nil, err
	}
	if r.Declined, err = sqldb.DecodeList(op, declined); err != nil {
		return nil, err
	}
	r.Basis, r.Method = consent.Basis(basis), consent.Method(method)
	r.GrantedAt, r.UpdatedAt, r.ExpiresAt = sqldb.FromMS(granted), sqldb.FromMS(updated), sqldb.FromMS(expires)
	r.WithdrawnAt = sqldb.FromNullMS(withdrawn)
	return &r, nil
}

func checkRecord(op string, r *consent.Record) error {
	if r == nil {
		return invalid(op, "no record")
	}
	for _, f := range []struct{ name, v string }{{"id", r.ID}, {"citizen", r.CitizenID}, {"client", r.ClientID}, {"purpose", r.Purpose.Code}} {
		if err := checkID(op, f.name, f.v); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{{"agency", r.Agency}, {"recipient", r.Recipient}, {"purpose text", r.Purpose.Text}, {"notice", r.Notice}} {
		if err := checkText(op, f.name, f.v, maxText); err != nil {
			return err
		}
	}
	if err := checkText(op, "evidence", r.Evidence, maxEvidence); err != nil {
		return err
	}
	if err := checkOnBehalf(op, "given by", r.GivenBy); err != nil {
		return err
	}
	// A record is a decision about at least one item: shared, or (every
	// optional one) declined.
	if err := checkItems(op, "items", r.Items, len(r.Declined) == 0); err != nil {
		return err
	}
	if err := checkItems(op, "declined items", r.Declined, false); err != nil {
		return err
	}
	if r.Basis != "" && r.Basis != consent.BasisConsent {
		return invalid(op, "a record's basis is consent (legal bases are registered apart)")
	}
	if r.Method != consent.MethodEIDApp && r.Method != consent.MethodWebForm {
		return invalid(op, "method must be eid_app or web_form")
	}
	if r.ExpiresAt.IsZero() {
		return invalid(op, "expiry is required")
	}
	return nil
}

// maxGrantAttempts bounds the retries of a grant that lost a race with
// another grant of the same citizen, client and purpose: the retry finds
// the winner's record and re-grants it.
const maxGrantAttempts = 3

// PutRecord creates the record or re-grants the live one (see
// consent.RecordStore). Concurrent grants for one citizen, client and
// purpose leave one live record: the unique index refuses the second
// insert, which is then retried as a re-grant.
func (s *Store) PutRecord(ctx context.Context, r *consent.Record, sign func(*consent.Record) (*consent.Receipt, error)) error {
	const op = "put consent record"
	if err := checkRecord(op, r); err != nil {
		return err
	}
	if sign == nil {
		return invalid(op, "no receipt signer")
	}
	for attempt := 1; ; attempt++ {
		stored, err := s.putRecord(ctx, op, r, sign)
		if errors.Is(err, consent.ErrConflict) && attempt < maxGrantAttempts {
			continue
		}
		if err != nil {
			return err
		}
		*r = *stored
		return nil
	}
}

func (s *Store) putRecord(ctx context.Context, op string, r *consent.Record, sign func(*consent.Record) (*consent.Receipt, error)) (*consent.Record, error) {
	st := *r
	st.Items, st.Declined = slices.Clone(r.Items), slices.Clone(r.Declined)
	if st.Items == nil {
		st.Items = []string{}
	}
	if st.Declined == nil {
		st.Declined = []string{}
	}
	st.Basis, st.WithdrawnAt = consent.BasisConsent, nil
	if st.UpdatedAt.IsZero() {
		st.UpdatedAt = s.clock()
	}
	st.UpdatedAt = st.UpdatedAt.UTC().Truncate(time.Millisecond)
	if st.GrantedAt.IsZero() {
		st.GrantedAt = st.UpdatedAt
	}
	st.GrantedAt = st.GrantedAt.UTC().Truncate(time.Millisecond)
	st.ExpiresAt = st.ExpiresAt.UTC().Truncate(time.Millisecond)
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		action := consent.RecordRegranted
		cur, err := s.liveRecord(ctx, q, op, st.CitizenID, st.ClientID, st.Purpose.Code, true)
		switch {
		case errors.Is(err, consent.ErrNotFound):
			st.Version, action = 1, consent.RecordGranted
			_, err = q.ExecContext(ctx, `INSERT INTO consent_records (`+recordColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL, $18)`,
				st.ID, st.CitizenID, st.ClientID, st.Agency, st.Recipient, st.Purpose.Code, st.Purpose.Text,
				sqldb.EncodeList(st.Items), sqldb.EncodeList(st.Declined), string(st.Basis), st.Notice, string(st.Method), st.Evidence,
				st.Version, sqldb.MS(st.GrantedAt), sqldb.MS(st.UpdatedAt), sqldb.MS(st.ExpiresAt), encodeOnBehalf(st.GivenBy))
			if err != nil {
				return dbErr(op, err)
			}
		case err != nil:
			return err
		default:
			st.ID, st.Version, st.GrantedAt = cur.ID, cur.Version+1, cur.GrantedAt
			_, err = q.ExecContext(ctx, `UPDATE consent_records SET agency = $1, recipient = $2, purpose_text = $3, items = $4,
				declined = $5, notice = $6, method = $7, evidence = $8, version = $9, updated_at = $10, expires_at = $11,
				given_by = $12 WHERE id = $13`,
				st.Agency, st.Recipient, st.Purpose.Text, sqldb.EncodeList(st.Items), sqldb.EncodeList(st.Declined), st.Notice,
				string(st.Method), st.Evidence, st.Version, sqldb.MS(st.UpdatedAt), sqldb.MS(st.ExpiresAt), encodeOnBehalf(st.GivenBy), st.ID)
			if err != nil {
				return dbErr(op, err)
			}
		}
		view := st
		view.Items, view.Declined = slices.Clone(st.Items), slices.Clone(st.Declined)
		rc, err := s.keepReceipt(ctx, q, op, &view, consent.ReceiptGranted, sign)
		if err != nil {
			return err
		}
		// The grant's event, in the grant's transaction: the record as
		// stored is what the consent trail (and so the checkpoints) says.
		return s.recordEvent(ctx, q, op, action, st.UpdatedAt, &st, rc)
	})
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// keepReceipt calls sign with the stored record and inserts the receipt it
// returns, and returns it; a signer's failure comes out as is and rolls
// everything back.
func (s *Store) keepReceipt(ctx context.Context, q sqldb.Querier, op string, r *consent.Record, kind consent.ReceiptKind,
	sign func(*consent.Record) (*consent.Receipt, error)) (*consent.Receipt, error) {
	rc, err := sign(r)
	if err != nil {
		return nil, &callerError{err: err}
	}
	if rc == nil || rc.JWS == "" {
		return nil, invalid(op, "the signer returned no receipt")
	}
	if rc.ID == "" {
		rc.ID = consent.NewID("rcpt")
	}
	if rc.Kind == "" {
		rc.Kind = kind
	}
	rc.ConsentID, rc.CitizenID = r.ID, r.CitizenID
	if rc.Version == 0 {
		rc.Version = r.Version
	}
	if rc.CreatedAt.IsZero() {
		rc.CreatedAt = s.clock()
	}
	rc.CreatedAt = rc.CreatedAt.UTC().Truncate(time.Millisecond)
	if err := checkID(op, "receipt id", rc.ID); err != nil {
		return nil, err
	}
	if err := checkText(op, "receipt", rc.JWS, maxEvidence); err != nil {
		return nil, err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO consent_receipts (id, consent_id, citizen_id, kind, version, jws, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, rc.ID, rc.ConsentID, rc.CitizenID, string(rc.Kind), rc.Version, rc.JWS, sqldb.MS(rc.CreatedAt))
	if err != nil {
		return nil, dbErr(op, err)
	}
	return rc, nil
}

func (s *Store) liveRecord(ctx context.Context, q sqldb.Querier, op, citizenID, clientID, purpose string, lock bool) (*consent.Record, error) {
	query := `SELECT ` + recordColumns + ` FROM consent_records
		WHERE citizen_id = $1 AND client_id = $2 AND purpose_code = $3 AND withdrawn_at IS NULL`
	if lock {
		query += s.d.ForUpdate()
	}
	return scanRecord(op, q.QueryRowContext(ctx, query, citizenID, clientID, purpose))
}

// LiveRecord returns the citizen's record for the client and purpose that
// is not withdrawn.
func (s *Store) LiveRecord(ctx context.Context, citizenID, clientID, purpose string) (*consent.Record, error) {
	const op = "live consent record"
	for _, f := range []struct{ name, v string }{{"citizen", citizenID}, {"client", clientID}, {"purpose", purpose}} {
		if err := checkID(op, f.name, f.v); err != nil {
			return nil, err
		}
	}
	return s.liveRecord(ctx, s.db, op, citizenID, clientID, purpose, false)
}

// GetRecord returns the citizen's record (any citizen's for "").
func (s *Store) GetRecord(ctx context.Context, citizenID, id string) (*consent.Record, error) {
	const op = "get consent record"
	if err := checkScoped(op, citizenID, id); err != nil {
		return nil, err
	}
	return s.getRecord(ctx, s.db, op, citizenID, id, false)
}

// checkScoped checks an optional citizen and a required id.
func checkScoped(op, citizenID, id string) error {
	if err := checkText(op, "citizen", citizenID, maxID); err != nil {
		return err
	}
	return checkID(op, "id", id)
}

func (s *Store) getRecord(ctx context.Context, q sqldb.Querier, op, citizenID, id string, lock bool) (*consent.Record, error) {
	query := `SELECT ` + recordColumns + ` FROM consent_records WHERE id = $1 AND ($2 = '' OR citizen_id = $2)`
	if lock {
		query += s.d.ForUpdate()
	}
	return scanRecord(op, q.QueryRowContext(ctx, query, id, citizenID))
}

// ListRecords pages the citizen's records, newest grant first. The cursor
// is the (granted_at, id) of the last record: grants never move, so no
// record is seen twice or skipped.
func (s *Store) ListRecords(ctx context.Context, rq consent.RecordQuery) ([]*consent.Record, string, error) {
	const op = "list consent records"
	if err := checkID(op, "citizen", rq.CitizenID); err != nil {
		return nil, "", err
	}
	limit := pageLimit(rq.Page)
	args := []any{rq.CitizenID}
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	where := `citizen_id = $1`
	if rq.Active {
		now := rq.Now
		if now.IsZero() {
			now = s.clock()
		}
		where += ` AND withdrawn_at IS NULL AND expires_at > ` + arg(sqldb.MS(now))
	}
	if rq.Page.Cursor != "" {
		at, ids, err := decodeCursor(rq.Page.Cursor, 2)
		if err != nil {
			return nil, "", invalid(op, "cursor is malformed")
		}
		a, i := arg(at), arg(ids[0])
		where += ` AND (granted_at < ` + a + ` OR (granted_at = ` + a + ` AND id < ` + i + `))`
	}
	query := `SELECT ` + recordColumns + ` FROM consent_records WHERE ` + where + // #nosec G202 -- constant fragments and placeholders
		` ORDER BY granted_at DESC, id DESC LIMIT ` + arg(limit+1)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", dbErr(op, err)
	}
	defer rows.Close()
	var out []*consent.Record
	for rows.Next() {
		r, err := scanRecord(op, rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", dbErr(op, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(strconv.FormatInt(sqldb.MS(last.GrantedAt), 10), last.ID)
	}
	return out, next, nil
}

// WithdrawRecord marks the record withdrawn and keeps its receipt, once.
func (s *Store) WithdrawRecord(ctx context.Context, citizenID, id string, at time.Time, sign func(*consent.Record) (*consent.Receipt, error)) (*consent.Record, error) {
	const op = "withdraw consent record"
	if err := checkScoped(op, citizenID, id); err != nil {
		return nil, err
	}
	if sign == nil {
		return nil, invalid(op, "no receipt signer")
	}
	if at.IsZero() {
		at = s.clock()
	}
	at = at.UTC().Truncate(time.Millisecond)
	var out *consent.Record
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		r, err := s.getRecord(ctx, q, op, citizenID, id, true)
		if err != nil {
			return err
		}
		if r.WithdrawnAt != nil {
			out = r
			return fmt.Errorf("%s: %w", op, consent.ErrWithdrawn)
		}
		r.WithdrawnAt = &at
		if _, err := q.ExecContext(ctx, `UPDATE consent_records SET withdrawn_at = $1 WHERE id = $2 AND withdrawn_at IS NULL`,
			sqldb.MS(at), r.ID); err != nil {
			return dbErr(op, err)
		}
		view := *r
		view.Items, view.Declined = slices.Clone(r.Items), slices.Clone(r.Declined)
		var kept *consent.Receipt
		keep := func(r *consent.Record) (*consent.Receipt, error) {
			rc, err := sign(r)
			kept = rc // keepReceipt completes it in place
			return rc, err
		}
		if _, err := s.keepReceipt(ctx, q, op, &view, consent.ReceiptWithdrawn, keep); err != nil {
			return err
		}
		if s.withdrawHook != nil {
			hv := *r
			hv.Items, hv.Declined = slices.Clone(r.Items), slices.Clone(r.Declined)
			rc := *kept
			if err := s.withdrawHook(ctx, q, &hv, &rc); err != nil {
				return dbErr(op+": withdraw hook", err)
			}
		}
		// The withdrawal's event, last (the consent trail's head is held
		// only for its insert).
		if err := s.recordEvent(ctx, q, op, consent.RecordWithdrawn, at, r, kept); err != nil {
			return err
		}
		out = r
		return nil
	})
	if err != nil {
		if errors.Is(err, consent.ErrWithdrawn) {
			return out, err
		}
		return nil, err
	}
	if s.withdrawn != nil {
		s.withdrawn()
	}
	return out, nil
}

const receiptColumns = `id, consent_id, citizen_id, kind, version, jws, created_at`

func scanReceipt(op string, sc sqldb.Scanner) (*consent.Receipt, error) {
	var (
		rc      consent.Receipt
		kind    string
		created int64
	)
	if err := sc.Scan(&rc.ID, &rc.ConsentID, &rc.CitizenID, &kind, &rc.Version, &rc.JWS, &created); err != nil {
		return nil, dbErr(op, err)
	}
	rc.Kind, rc.CreatedAt = consent.ReceiptKind(kind), sqldb.FromMS(created)
	return &rc, nil
}

// Receipts lists the record's receipts, oldest first; another citizen's
// record is ErrNotFound.
func (s *Store) Receipts(ctx context.Context, citizenID, consentID string) ([]*consent.Receipt, error) {
	const op = "list consent receipts"
	if err := checkScoped(op, citizenID, consentID); err != nil {
		return nil, err
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_records WHERE id = $1 AND ($2 = '' OR citizen_id = $2)`,
		consentID, citizenID).Scan(&n); err != nil {
		return nil, dbErr(op, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: %w", op, consent.ErrNotFound)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+receiptColumns+` FROM consent_receipts WHERE consent_id = $1
		ORDER BY created_at, version, kind, id`, consentID)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []*consent.Receipt{}
	for rows.Next() {
		rc, err := scanReceipt(op, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, rc)
	}
	return out, dbErr(op, rows.Err())
}

// GetReceipt returns one of the citizen's receipts (any citizen's for "").
func (s *Store) GetReceipt(ctx context.Context, citizenID, id string) (*consent.Receipt, error) {
	const op = "get consent receipt"
	if err := checkScoped(op, citizenID, id); err != nil {
		return nil, err
	}
	return scanReceipt(op, s.db.QueryRowContext(ctx, `SELECT `+receiptColumns+` FROM consent_receipts
		WHERE id = $1 AND ($2 = '' OR citizen_id = $2)`, id, citizenID))
}
