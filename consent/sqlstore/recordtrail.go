package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/sqldb"
)

const recordTrailColumns = `seq, id, at, action, citizen_id, consent_id, state, receipt, entry_id, note, prev, hash`

// lockRecordTrail returns the consent trail's head, locked until the
// transaction ends. Grants and withdrawals take it last, after the record
// and its receipt, so it is held only for the insert of one event (lock
// order: record row -> consent trail head; a checkpoint takes the trail
// heads before citizens' heads, see lockTrailHeads).
func (s *Store) lockRecordTrail(ctx context.Context, q sqldb.Querier, op string) (consent.Head, error) {
	return s.lockHead(ctx, q, op, consent.RecordTrailChain)
}

// appendRecordEvent seals e after head (locked by the caller in q's
// transaction), inserts it and moves the trail's head; it returns the new
// head.
func (s *Store) appendRecordEvent(ctx context.Context, q sqldb.Querier, op string, head consent.Head, e *consent.RecordEvent) (consent.Head, error) {
	if e.ID == "" {
		e.ID = consent.NewID("cre")
	}
	e.Seal(&head)
	if _, err := q.ExecContext(ctx, `INSERT INTO consent_record_trail (`+recordTrailColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		e.Seq, e.ID, sqldb.MS(e.At), string(e.Action), e.CitizenID, e.ConsentID, encodeRecordState(e.State), nullBytes(e.Receipt), e.EntryID,
		nullBytes(e.Note), nullBytes(e.Prev), e.Hash); err != nil {
		return head, dbErr(op, err)
	}
	_, err := q.ExecContext(ctx, `UPDATE consent_chain_heads SET seq = $1, hash = $2, `+pendingSince("$4")+` WHERE citizen_id = $3`,
		e.Seq, e.Hash, consent.RecordTrailChain, sqldb.MS(s.clock()))
	return consent.Head{CitizenID: consent.RecordTrailChain, Seq: e.Seq, Hash: e.Hash}, dbErr(op, err)
}

// recordEvent appends the event of a record's grant, re-grant or
// withdrawal, in the transaction that stored it.
func (s *Store) recordEvent(ctx context.Context, q sqldb.Querier, op string, action consent.RecordAction, at time.Time,
	r *consent.Record, rc *consent.Receipt) error {
	head, err := s.lockRecordTrail(ctx, q, op)
	if err != nil {
		return err
	}
	e := &consent.RecordEvent{At: at, Action: action, CitizenID: r.CitizenID, ConsentID: r.ID,
		State: consent.RecordStateOf(r)}
	if rc != nil {
		e.Receipt = consent.Sum(rc.JWS)
	}
	_, err = s.appendRecordEvent(ctx, q, op, head, e)
	return err
}

func encodeRecordState(st *consent.RecordState) string {
	if st == nil {
		return ""
	}
	b, err := json.Marshal(st)
	if err != nil {
		panic(fmt.Sprintf("consent: encoding a record state: %v", err)) // strings, numbers and lists: cannot fail
	}
	return string(b)
}

// decodeRecordState reads a state column as stored: text that is not a
// state comes back as one naming it, so the event fails its hash and is
// reported rather than stopping the check.
func decodeRecordState(v string) *consent.RecordState {
	if v == "" {
		return nil
	}
	var st consent.RecordState
	if err := json.Unmarshal([]byte(v), &st); err != nil {
		return &consent.RecordState{Notice: "undecodable state column: " + v}
	}
	return &st
}

// RecordTrail pages the consent trail by seq, as stored.
func (s *Store) RecordTrail(ctx context.Context, after int64, limit int) ([]*consent.RecordEvent, error) {
	const op = "read consent trail"
	rows, err := s.db.QueryContext(ctx, `SELECT `+recordTrailColumns+` FROM consent_record_trail WHERE seq > $1 ORDER BY seq LIMIT $2`,
		after, clampLimit(limit))
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []*consent.RecordEvent{}
	for rows.Next() {
		var (
			e      consent.RecordEvent
			at     int64
			action string
			state  string
		)
		if err := rows.Scan(&e.Seq, &e.ID, &at, &action, &e.CitizenID, &e.ConsentID, &state, &e.Receipt, &e.EntryID, &e.Note,
			&e.Prev, &e.Hash); err != nil {
			return nil, dbErr(op, err)
		}
		for _, b := range []*[]byte{&e.Receipt, &e.Note, &e.Prev} {
			if len(*b) == 0 {
				*b = nil
			}
		}
		e.At, e.Action, e.State = sqldb.FromMS(at), consent.RecordAction(action), decodeRecordState(state)
		out = append(out, &e)
	}
	return out, dbErr(op, rows.Err())
}

// Records pages every citizen's records by id.
func (s *Store) Records(ctx context.Context, after string, limit int) ([]*consent.Record, error) {
	const op = "list all consent records"
	if err := checkText(op, "after", after, maxID); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+recordColumns+` FROM consent_records WHERE id > $1 ORDER BY id LIMIT $2`,
		after, clampLimit(limit))
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	out := []*consent.Record{}
	for rows.Next() {
		r, err := scanRecord(op, rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, dbErr(op, rows.Err())
}

// adoptRecords appends an "adopted" event for every consent record, and a
// "flag_adopted" one for every flag, stored before the consent trail
// existed, once, in one transaction: migration 0007 leaves a marker row
// that this removes. A marker put back by hand adopts after the trail
// began, which onedoor audit verify reports.
func (s *Store) adoptRecords(ctx context.Context) error {
	const op = "adopt consent records into the trail"
	return s.inTx(ctx, op, func(q sqldb.Querier) error {
		var one int
		switch err := q.QueryRowContext(ctx, `SELECT id FROM consent_record_adopt WHERE id = 1`+s.d.ForUpdate()).Scan(&one); {
		case errors.Is(err, sql.ErrNoRows):
			return nil
		case err != nil:
			return dbErr(op, err)
		}
		rows, err := q.QueryContext(ctx, `SELECT `+recordColumns+` FROM consent_records
			WHERE id NOT IN (SELECT consent_id FROM consent_record_trail) ORDER BY updated_at, id`)
		if err != nil {
			return dbErr(op, err)
		}
		var events []*consent.RecordEvent
		for rows.Next() {
			r, err := scanRecord(op, rows)
			if err != nil {
				rows.Close()
				return err
			}
			events = append(events, &consent.RecordEvent{At: r.UpdatedAt, Action: consent.RecordAdopted, CitizenID: r.CitizenID,
				ConsentID: r.ID, State: consent.RecordStateOf(r)})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbErr(op, err)
		}
		rows, err = q.QueryContext(ctx, `SELECT id, citizen_id, flagged_at, flag_note FROM consent_log
			WHERE flagged_at IS NOT NULL AND id NOT IN (SELECT entry_id FROM consent_record_trail) ORDER BY flagged_at, id`)
		if err != nil {
			return dbErr(op, err)
		}
		for rows.Next() {
			var (
				e    consent.RecordEvent
				at   int64
				note string
			)
			if err := rows.Scan(&e.EntryID, &e.CitizenID, &at, &note); err != nil {
				rows.Close()
				return dbErr(op, err)
			}
			e.At, e.Action, e.Note = sqldb.FromMS(at), consent.FlagAdopted, consent.Sum(note)
			events = append(events, &e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbErr(op, err)
		}
		if len(events) > 0 {
			head, err := s.lockRecordTrail(ctx, q, op)
			if err != nil {
				return err
			}
			for _, e := range events {
				if head, err = s.appendRecordEvent(ctx, q, op, head, e); err != nil {
					return err
				}
			}
		}
		_, err = q.ExecContext(ctx, `DELETE FROM consent_record_adopt`)
		return dbErr(op, err)
	})
}
