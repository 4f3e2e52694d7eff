package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
)

const entryColumns = `id, citizen_id, seq, at, agency, client_id, operator, channel, items, purpose, consent_id, basis, law,
	outcome, reason, prev, hash, flagged_at, flag_note, on_behalf, v, names, basis_id, basis_version`

func scanEntry(op string, sc sqldb.Scanner) (*consent.Entry, error) {
	return scanEntryAs(op, sc, false)
}

// scanEntryAs reads an entry. asStored is for verification: an items
// column someone replaced with something that is not a JSON list comes
// back as one item naming the raw text, so the entry fails its hash and is
// reported, instead of stopping the check with a read error.
func scanEntryAs(op string, sc sqldb.Scanner, asStored bool) (*consent.Entry, error) {
	var (
		e                       consent.Entry
		at                      int64
		channel, basis, outcome string
		items                   string
		flagged                 sql.NullInt64
		onBehalf, names         string
	)
	if err := sc.Scan(&e.ID, &e.CitizenID, &e.Seq, &at, &e.Actor.Agency, &e.Actor.ClientID, &e.Actor.Operator, &channel,
		&items, &e.Purpose, &e.ConsentID, &basis, &e.Law, &outcome, &e.Reason, &e.Prev, &e.Hash, &flagged, &e.FlagNote, &onBehalf,
		&e.V, &names, &e.BasisID, &e.BasisVersion); err != nil {
		return nil, dbErr(op, err)
	}
	var err error
	if e.OnBehalf, err = decodeOnBehalf(op, onBehalf); err != nil {
		if !asStored {
			return nil, err
		}
		// Tampered: keep what it says so the entry fails its hash.
		e.OnBehalf = &consent.OnBehalf{CitizenID: "undecodable on_behalf column: " + onBehalf}
	}
	if e.Items, err = sqldb.DecodeList(op, items); err != nil {
		if !asStored {
			return nil, err
		}
		e.Items = []string{"undecodable items column: " + items}
	}
	if names != "" {
		e.Names = &consent.Names{}
		if err := json.Unmarshal([]byte(names), e.Names); err != nil {
			if !asStored {
				return nil, fmt.Errorf("%s: names column: %w", op, consent.ErrInvalid)
			}
			e.Names = &consent.Names{Client: "undecodable names column: " + names}
		}
	}
	if len(e.Prev) == 0 {
		e.Prev = nil
	}
	e.At, e.FlaggedAt = sqldb.FromMS(at), sqldb.FromNullMS(flagged)
	e.Channel, e.Basis, e.Outcome = consent.Channel(channel), consent.Basis(basis), consent.Outcome(outcome)
	return &e, nil
}

func checkEntry(op string, e *consent.Entry) error {
	if e == nil {
		return invalid(op, "no entry")
	}
	if err := checkID(op, "id", e.ID); err != nil {
		return err
	}
	if err := checkID(op, "citizen", e.CitizenID); err != nil {
		return err
	}
	if e.At.IsZero() {
		return invalid(op, "time is required")
	}
	if e.Channel == "" {
		return invalid(op, "channel is required")
	}
	if e.Outcome != consent.OutcomeReleased && e.Outcome != consent.OutcomeRefused {
		return invalid(op, "outcome must be released or refused")
	}
	if e.Basis != "" && !e.Basis.Valid() {
		return invalid(op, "unknown basis")
	}
	for _, f := range []struct{ name, v string }{{"agency", e.Actor.Agency}, {"client", e.Actor.ClientID}, {"operator", e.Actor.Operator},
		{"channel", string(e.Channel)}, {"purpose", e.Purpose}, {"consent", e.ConsentID}} {
		if err := checkText(op, f.name, f.v, maxID); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{{"law", e.Law}, {"reason", e.Reason}} {
		if err := checkText(op, f.name, f.v, maxText); err != nil {
			return err
		}
	}
	if err := checkOnBehalf(op, "on behalf", e.OnBehalf); err != nil {
		return err
	}
	if e.CitizenID == consent.BasisTrailChain || e.CitizenID == consent.RecordTrailChain {
		return invalid(op, "the citizen id is reserved")
	}
	if e.Names != nil {
		for _, f := range []struct{ name, v string }{{"client name", e.Names.Client}, {"agency name", e.Names.AgencyVI}, {"agency name", e.Names.AgencyEN}} {
			if err := checkText(op, f.name, f.v, maxText); err != nil {
				return err
			}
		}
	}
	if err := checkText(op, "basis id", e.BasisID, maxID); err != nil {
		return err
	}
	return checkItems(op, "items", e.Items, false)
}

// Append adds e at the end of its citizen's chain. The chain head row is
// created if missing and locked (FOR UPDATE on PostgreSQL; SQLite's
// BEGIN IMMEDIATE already serialises writers), so appends for one citizen
// from any number of connections, pools or replicas form one chain.
func (s *Store) Append(ctx context.Context, e *consent.Entry) error {
	return s.appendEntry(ctx, "append log entry", e, false)
}

// AppendRelease appends a release after checking, in its transaction,
// that the legal basis or consent it names still allows it (see
// consent.LogStore). The basis or record is read with a shared lock
// (PostgreSQL; SQLite's BEGIN IMMEDIATE serialises writers) before the
// chain head, so a revocation, amendment or withdrawal, which locks the
// row for update, waits for the release or the release sees it; locks are
// taken in one order (basis or record, then head), so no deadlock.
func (s *Store) AppendRelease(ctx context.Context, e *consent.Entry) error {
	return s.appendEntry(ctx, "append release", e, true)
}

func (s *Store) appendEntry(ctx context.Context, op string, e *consent.Entry, release bool) error {
	if err := checkEntry(op, e); err != nil {
		return err
	}
	if release && e.Outcome != consent.OutcomeReleased {
		return invalid(op, "outcome must be released")
	}
	sealed := *e
	sealed.At = e.At.UTC()
	sealed.FlaggedAt, sealed.FlagNote = nil, ""
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		if release {
			if err := s.stillAllowed(ctx, q, op, &sealed); err != nil {
				return err
			}
		}
		head, err := s.lockHead(ctx, q, op, sealed.CitizenID)
		if err != nil {
			return err
		}
		if head.Seq == 0 {
			sealed.Seal(nil)
		} else {
			sealed.Seal(&head)
		}
		args := []any{sealed.ID, sealed.CitizenID, sealed.Seq, sqldb.MS(sealed.At), sealed.Actor.Agency, sealed.Actor.ClientID,
			sealed.Actor.Operator, string(sealed.Channel), sqldb.EncodeList(sealed.Items), sealed.Purpose, sealed.ConsentID,
			string(sealed.Basis), sealed.Law, string(sealed.Outcome), sealed.Reason, nullBytes(sealed.Prev), sealed.Hash,
			encodeOnBehalf(sealed.OnBehalf), sealed.V, encodeNames(sealed.Names), sealed.BasisID, sealed.BasisVersion, sqldb.MS(s.clock())}
		const insert = `INSERT INTO consent_log (` + entryColumns + `)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, NULL, '', $18, $19, $20, $21, $22)`
		if s.d == sqldb.PostgreSQL {
			// One round trip for the entry and the head: appends are on
			// the path of every release.
			_, err = q.ExecContext(ctx, `WITH entry AS (`+insert+` RETURNING seq)
				UPDATE consent_chain_heads SET seq = (SELECT seq FROM entry), hash = $17, `+pendingSince("$23")+` WHERE citizen_id = $2`, args...)
			return dbErr(op, err)
		}
		if _, err := q.ExecContext(ctx, insert, args[:len(args)-1]...); err != nil {
			return dbErr(op, err)
		}
		_, err = q.ExecContext(ctx, `UPDATE consent_chain_heads SET seq = $1, hash = $2, `+pendingSince("$4")+` WHERE citizen_id = $3`,
			sealed.Seq, sealed.Hash, sealed.CitizenID, sqldb.MS(s.clock()))
		return dbErr(op, err)
	})
	if err != nil {
		return err
	}
	*e = sealed
	return nil
}

// forShare is the shared row lock a release holds on the basis or record
// it relies on.
func (s *Store) forShare() string {
	if s.d == sqldb.PostgreSQL {
		return " FOR SHARE"
	}
	return ""
}

// stillAllowed checks, in the release's transaction, that the legal basis
// or consent the entry names still allows every item: a *RefusedError
// (carried out of the transaction as the caller's) when it does not.
func (s *Store) stillAllowed(ctx context.Context, q sqldb.Querier, op string, e *consent.Entry) error {
	refuse := func(why func(item string) string) error {
		m := map[string]string{}
		for _, it := range e.Items {
			m[it] = why(it)
		}
		return &callerError{err: &consent.RefusedError{Missing: m}}
	}
	switch {
	case e.Basis.Legal():
		if e.BasisID == "" {
			return invalid(op, "a release under a legal basis must name it")
		}
		var (
			agency, purpose, items, basis string
			version                       int64
			revoked                       sql.NullInt64
		)
		err := q.QueryRowContext(ctx, `SELECT agency, purpose, items, basis, version, revoked_at FROM consent_legal_bases WHERE id = $1`+s.forShare(),
			e.BasisID).Scan(&agency, &purpose, &items, &basis, &version, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return refuse(func(string) string { return fmt.Sprintf("legal basis %s does not exist", e.BasisID) })
		}
		if err != nil {
			return dbErr(op, err)
		}
		have, err := sqldb.DecodeList(op, items)
		if err != nil {
			return err
		}
		switch {
		case revoked.Valid:
			return refuse(func(string) string {
				return fmt.Sprintf("legal basis %s (version %d) was revoked while the data was being read", e.BasisID, e.BasisVersion)
			})
		case agency != e.Actor.Agency || purpose != e.Purpose || consent.Basis(basis) != e.Basis:
			return refuse(func(string) string {
				return fmt.Sprintf("legal basis %s is not this agency's for this purpose", e.BasisID)
			})
		case version != e.BasisVersion:
			return refuse(func(it string) string {
				if !slices.Contains(have, it) {
					return fmt.Sprintf("legal basis %s was amended (version %d to %d) while the data was being read, and no longer covers it",
						e.BasisID, e.BasisVersion, version)
				}
				return fmt.Sprintf("legal basis %s was amended (version %d to %d) while the data was being read; ask again",
					e.BasisID, e.BasisVersion, version)
			})
		}
		// The version matches: it must still cover every item (a release
		// decided on this version but naming more is a forgery).
		if !covers(have, e.Items) {
			return refuse(func(it string) string {
				if !slices.Contains(have, it) {
					return fmt.Sprintf("legal basis %s (version %d) does not cover it", e.BasisID, e.BasisVersion)
				}
				return fmt.Sprintf("legal basis %s (version %d) does not cover every item asked for together", e.BasisID, e.BasisVersion)
			})
		}
		return nil
	case e.Basis == consent.BasisConsent:
		if e.ConsentID == "" {
			return invalid(op, "a release under consent must name the consent")
		}
		var (
			citizen, client, agency, purpose, items string
			expires                                 int64
			withdrawn                               sql.NullInt64
		)
		err := q.QueryRowContext(ctx, `SELECT citizen_id, client_id, agency, purpose_code, items, expires_at, withdrawn_at
			FROM consent_records WHERE id = $1`+s.forShare(),
			e.ConsentID).Scan(&citizen, &client, &agency, &purpose, &items, &expires, &withdrawn)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && citizen != e.CitizenID) {
			return refuse(func(string) string { return fmt.Sprintf("consent %s does not exist", e.ConsentID) })
		}
		if err != nil {
			return dbErr(op, err)
		}
		// A consent is given to one client, for one agency and purpose
		// (Service.Decide): it allows no release to another.
		if client != e.Actor.ClientID || agency != e.Actor.Agency || purpose != e.Purpose {
			return refuse(func(string) string {
				return fmt.Sprintf("consent %s was not given to this client and agency for this purpose", e.ConsentID)
			})
		}
		have, err := sqldb.DecodeList(op, items)
		if err != nil {
			return err
		}
		switch {
		case withdrawn.Valid:
			return refuse(func(string) string {
				return fmt.Sprintf("the citizen withdrew consent %s while the data was being read", e.ConsentID)
			})
		case expires <= sqldb.MS(s.clock()):
			// The store's clock, not the caller's: a replica whose clock
			// lags cannot release under an expired consent.
			return refuse(func(string) string { return fmt.Sprintf("consent %s has expired", e.ConsentID) })
		}
		var lost []string
		for _, it := range e.Items {
			if !slices.Contains(have, it) {
				lost = append(lost, it)
			}
		}
		if len(lost) > 0 {
			return refuse(func(it string) string {
				if slices.Contains(lost, it) {
					return fmt.Sprintf("consent %s was changed while the data was being read and no longer covers it", e.ConsentID)
				}
				return fmt.Sprintf("consent %s was changed while the data was being read; ask again", e.ConsentID)
			})
		}
	}
	return nil
}

// covers reports whether have holds every item of want.
func covers(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func encodeNames(n *consent.Names) string {
	if n == nil {
		return ""
	}
	b, err := json.Marshal(n)
	if err != nil {
		panic(fmt.Sprintf("consent: encoding names: %v", err)) // strings only: cannot fail
	}
	return string(b)
}

// lockHead returns the citizen's chain head, locked until the transaction
// ends. A citizen's first append creates the row (seq 0): of two racing
// first appends, the second's insert waits for the first and then finds
// the row, whose lock it then waits for.
func (s *Store) lockHead(ctx context.Context, q sqldb.Querier, op, citizenID string) (consent.Head, error) {
	head := consent.Head{CitizenID: citizenID}
	query := `SELECT seq, hash FROM consent_chain_heads WHERE citizen_id = $1` + s.d.ForUpdate()
	err := q.QueryRowContext(ctx, query, citizenID).Scan(&head.Seq, &head.Hash)
	if !errors.Is(err, sql.ErrNoRows) {
		return head, dbErr(op, err)
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO consent_chain_heads (citizen_id, seq, hash) VALUES ($1, 0, NULL)
		ON CONFLICT (citizen_id) DO NOTHING`, citizenID); err != nil {
		return head, dbErr(op, err)
	}
	return head, dbErr(op, q.QueryRowContext(ctx, query, citizenID).Scan(&head.Seq, &head.Hash))
}

// ListEntries pages a citizen's entries newest first (by Seq), or the
// flagged entries newest flag first.
func (s *Store) ListEntries(ctx context.Context, eq consent.EntryQuery) ([]*consent.Entry, string, error) {
	const op = "list log entries"
	if eq.CitizenID == "" && !eq.Flagged {
		return nil, "", invalid(op, "citizen is required")
	}
	if err := checkText(op, "citizen", eq.CitizenID, maxID); err != nil {
		return nil, "", err
	}
	limit := pageLimit(eq.Page)
	var args []any
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	where, order := "1 = 1", ""
	if eq.CitizenID != "" {
		where += " AND citizen_id = " + arg(eq.CitizenID)
	}
	if eq.Flagged {
		where += " AND flagged_at IS NOT NULL"
		order = "flagged_at DESC, id DESC"
		if eq.Page.Cursor != "" {
			at, ids, err := decodeCursor(eq.Page.Cursor, 2)
			if err != nil {
				return nil, "", invalid(op, "cursor is malformed")
			}
			a, i := arg(at), arg(ids[0])
			where += " AND (flagged_at < " + a + " OR (flagged_at = " + a + " AND id < " + i + "))"
		}
	} else {
		order = "seq DESC"
		if eq.Page.Cursor != "" {
			seq, _, err := decodeCursor(eq.Page.Cursor, 1)
			if err != nil {
				return nil, "", invalid(op, "cursor is malformed")
			}
			where += " AND seq < " + arg(seq)
		}
	}
	query := `SELECT ` + entryColumns + ` FROM consent_log WHERE ` + where + // #nosec G202 -- constant fragments and placeholders
		` ORDER BY ` + order + ` LIMIT ` + arg(limit+1)
	out, err := s.queryEntries(ctx, op, query, args...)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		if eq.Flagged {
			next = encodeCursor(strconv.FormatInt(sqldb.MS(*last.FlaggedAt), 10), last.ID)
		} else {
			next = encodeCursor(strconv.FormatInt(last.Seq, 10))
		}
	}
	return out, next, nil
}

func (s *Store) queryEntries(ctx context.Context, op, query string, args ...any) ([]*consent.Entry, error) {
	return s.queryEntriesAs(ctx, op, false, query, args...)
}

func (s *Store) queryEntriesAs(ctx context.Context, op string, asStored bool, query string, args ...any) ([]*consent.Entry, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []*consent.Entry{}
	for rows.Next() {
		e, err := scanEntryAs(op, rows, asStored)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, dbErr(op, rows.Err())
}

// GetEntry returns one of the citizen's entries (any citizen's for "").
func (s *Store) GetEntry(ctx context.Context, citizenID, id string) (*consent.Entry, error) {
	const op = "get log entry"
	if err := checkScoped(op, citizenID, id); err != nil {
		return nil, err
	}
	return scanEntry(op, s.db.QueryRowContext(ctx, `SELECT `+entryColumns+` FROM consent_log
		WHERE id = $1 AND ($2 = '' OR citizen_id = $2)`, id, citizenID))
}

// maxFlagNote bounds the citizen's note on a flag.
const maxFlagNote = 2000

// FlagEntry records the citizen's "this wasn't me" once: the first flag
// and its note are kept. The flag's event goes to the consent trail in
// the same transaction, so a flag erased or edited later is found by
// onedoor audit verify.
func (s *Store) FlagEntry(ctx context.Context, citizenID, id, note string, at time.Time) (*consent.Entry, error) {
	const op = "flag log entry"
	if err := checkID(op, "citizen", citizenID); err != nil {
		return nil, err
	}
	if err := checkID(op, "id", id); err != nil {
		return nil, err
	}
	if err := checkText(op, "note", note, maxFlagNote); err != nil {
		return nil, err
	}
	if at.IsZero() {
		at = s.clock()
	}
	at = at.UTC().Truncate(time.Millisecond)
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		res, err := q.ExecContext(ctx, `UPDATE consent_log SET flagged_at = $1, flag_note = $2
			WHERE id = $3 AND citizen_id = $4 AND flagged_at IS NULL`, sqldb.MS(at), note, id, citizenID)
		if err != nil {
			return dbErr(op, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return dbErr(op, err) // flagged before, or not the citizen's: nothing to record
		}
		head, err := s.lockRecordTrail(ctx, q, op)
		if err != nil {
			return err
		}
		_, err = s.appendRecordEvent(ctx, q, op, head, &consent.RecordEvent{At: at, Action: consent.EntryFlagged, CitizenID: citizenID,
			EntryID: id, Note: consent.Sum(note)})
		return err
	})
	if err != nil {
		return nil, err
	}
	e, err := s.GetEntry(ctx, citizenID, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return e, nil
}
