package sqlstore_test

import (
	"errors"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/push"
)

// TestEnqueue_TakenID checks a message whose id is taken (stored before,
// given twice, or held by a leftover job) fails the enqueue with
// ErrConflict and leaves nothing of its transaction: SQLite's INSERTs skip
// such a row instead of aborting, and the counts must catch it.
func TestEnqueue_TakenID(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, db := openDB(t, b.open)
			first := statusChange("c1")
			if err := s.Enqueue(ctx, first); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO push_jobs (id, kind, grp, ref, payload, state, claims, attempts,
				next_attempt_at, claim_id, claimed_until, created_at, updated_at) VALUES ('ntf_leftover', 'push', '', 'c9', '{}',
				'pending', 0, '[]', 1, '', 0, 1, 1)`); err != nil {
				t.Fatal(err)
			}
			for name, batch := range map[string][]*push.Message{
				"stored":   {statusChange("c2"), {ID: first.ID, CitizenID: "c2", Kind: push.KindStatusChange}},
				"twice":    {{ID: "ntf_twice", CitizenID: "c3", Kind: push.KindStatusChange}, {ID: "ntf_twice", CitizenID: "c3", Kind: push.KindStatusChange}},
				"leftover": {statusChange("c4"), {ID: "ntf_leftover", CitizenID: "c4", Kind: push.KindStatusChange}},
			} {
				if err := s.Enqueue(ctx, batch...); !errors.Is(err, idp.ErrConflict) {
					t.Errorf("%s: enqueue = %v; want ErrConflict", name, err)
				}
			}
			var msgs, jobs int
			if err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM push_messages), (SELECT COUNT(*) FROM push_jobs)`).
				Scan(&msgs, &jobs); err != nil {
				t.Fatal(err)
			}
			if msgs != 1 || jobs != 2 {
				t.Errorf("after the failed enqueues: %d messages, %d jobs; want the first message and its job, and the leftover", msgs, jobs)
			}
		})
	}
}
