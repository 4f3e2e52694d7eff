package sqlstore_test

import (
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
)

// TestMigration_PendingHeads stores chain heads as the binary of migration
// 0004 did (pending while seq <> committed_seq), migrates, and checks that
// exactly the moved heads are pending; then that appends set the flag, a
// checkpoint commits them and clears it, and an append sets it again.
func TestMigration_PendingHeads(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := be.open(t)
			s := sqlstore.New(db, d)
			if err := s.MigrateTo(ctx, 4); err != nil {
				t.Fatal(err)
			}
			// Heads as the old binary left them: cit_moved moved after the
			// last checkpoint, cit_done did not, cit_new was never committed.
			for _, h := range []struct {
				citizen        string
				seq, committed int64
			}{{"cit_moved", 2, 1}, {"cit_done", 1, 1}, {"cit_new", 1, 0}} {
				if _, err := db.ExecContext(ctx, `INSERT INTO consent_chain_heads (citizen_id, seq, hash, committed_seq) VALUES ($1, $2, $3, $4)`,
					h.citizen, h.seq, []byte("h"), h.committed); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			pending := func() map[string]bool {
				t.Helper()
				rows, err := db.QueryContext(ctx, `SELECT citizen_id FROM consent_chain_heads WHERE pending`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				out := map[string]bool{}
				for rows.Next() {
					var c string
					if err := rows.Scan(&c); err != nil {
						t.Fatal(err)
					}
					out[c] = true
				}
				return out
			}
			if p := pending(); len(p) != 2 || !p["cit_moved"] || !p["cit_new"] {
				t.Fatalf("pending after the upgrade: %v", p)
			}
			// (They have no entries: remove them before appending for real.)
			if _, err := db.ExecContext(ctx, `DELETE FROM consent_chain_heads`); err != nil {
				t.Fatal(err)
			}
			for _, c := range []string{"cit_a", "cit_b"} {
				if err := s.Append(ctx, &consent.Entry{ID: "log_" + c, CitizenID: c, At: time.Now(), Actor: consent.Actor{Agency: "BYT"},
					Channel: consent.ChannelBroker, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
					t.Fatal(err)
				}
			}
			if p := pending(); len(p) != 2 {
				t.Fatalf("pending after appends: %v", p)
			}
			signer, verifier := consenttest.Keys(t, "a")
			cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier}
			c, err := cp.Commit(ctx)
			if err != nil || c == nil || c.Size != 2 {
				t.Fatalf("checkpoint: %+v, %v", c, err)
			}
			if p := pending(); len(p) != 0 {
				t.Fatalf("pending after the checkpoint: %v", p)
			}
			if c, err := cp.Commit(ctx); err != nil || c != nil {
				t.Fatalf("a checkpoint with nothing moved: %+v, %v", c, err)
			}
			if err := s.Append(ctx, &consent.Entry{ID: "log_b2", CitizenID: "cit_b", At: time.Now(), Actor: consent.Actor{Agency: "BYT"},
				Channel: consent.ChannelBroker, Items: []string{"name"}, Outcome: consent.OutcomeReleased}); err != nil {
				t.Fatal(err)
			}
			if p := pending(); len(p) != 1 || !p["cit_b"] {
				t.Fatalf("pending after an append: %v", p)
			}
			if r, err := consent.Verify(ctx, s, verifier); err != nil || !r.Intact() {
				t.Fatalf("verify: %+v, %v", r, err)
			}
		})
	}
}
