package sqlstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
	"github.com/onedoor/onedoor/push/sqlstore"
)

// TestMigrationLeanJobIndexes seeds push_jobs as the binary before
// migration 7 wrote it (push and webhook jobs, one claimed, one held) and
// checks the queries whose indexes 0007 narrowed still find them: a
// webhook's delivery log and its deletion, a fair claim counting the group
// in flight, and new preferences releasing the held push job.
func TestMigrationLeanJobIndexes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := b.open(t)
			now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			s := sqlstore.New(db, d, sqlstore.WithNow(func() time.Time { return now }))
			if err := s.MigrateTo(ctx, 6); err != nil {
				t.Fatal(err)
			}
			ms := now.UnixMilli()
			for _, r := range []struct {
				id, kind, grp, ref, state, claim string
				next                             *int64
				claimedUntil                     int64
				held                             int
			}{
				{id: "ntf_due", kind: "push", ref: "c1", state: "pending", next: &ms},
				{id: "ntf_held", kind: "push", ref: "c1", state: "pending", next: ptr(ms + 3_600_000), held: 1},
				{id: "job_busy", kind: "webhook", grp: "AG", ref: "whk_1", state: "pending", next: ptr(ms - 1000), claim: "clm_1",
					claimedUntil: ms + 60_000},
				{id: "job_due", kind: "webhook", grp: "AG", ref: "whk_1", state: "pending", next: ptr(ms - 500)},
				{id: "job_other", kind: "webhook", grp: "AG2", ref: "whk_2", state: "pending", next: ptr(ms - 100)},
				{id: "job_done", kind: "webhook", grp: "AG", ref: "whk_1", state: "done"},
			} {
				if _, err := db.ExecContext(ctx, `INSERT INTO push_jobs (id, kind, grp, ref, payload, state, claims, attempts,
					next_attempt_at, claim_id, claimed_until, created_at, updated_at, held)
					VALUES ($1, $2, $3, $4, '{}', $5, 0, '[]', $6, $7, $8, $9, $9, $10)`,
					r.id, r.kind, r.grp, r.ref, r.state, r.next, r.claim, r.claimedUntil, ms-60_000, r.held); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO push_messages (id, citizen_id, kind, service_code, agency_code,
				application_id, inbox_message_id, title_vi, title_en, body, priority, collapse_key, expires_at, created_at,
				updated_at, state, attempts, delivered, last_error)
				SELECT id, ref, 'result', 'SVC', 'AG', 'app-1', '', 'Kết quả', 'Result', 'Approved', 0, '', 0, created_at,
					updated_at, 'queued', 0, '[]', '' FROM push_jobs WHERE kind = 'push'`); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}

			err := sqldb.InTx(ctx, db, d, "check", func(q sqldb.Querier) error {
				jobs, err := s.ListJobsTx(ctx, q, queue.KindWebhook, "whk_1", nil, 10)
				if err != nil {
					return err
				}
				var ids []string
				for _, j := range jobs {
					ids = append(ids, j.ID)
				}
				if got := strings.Join(ids, ","); len(jobs) != 3 || !strings.Contains(got, "job_busy") || !strings.Contains(got, "job_done") {
					t.Errorf("whk_1's delivery log: %s; want its 3 jobs", got)
				}
				if _, err := s.ListJobsTx(ctx, q, queue.KindPush, "c1", nil, 10); !errors.Is(err, idp.ErrInvalid) {
					t.Errorf("push jobs listed by ref: %v; want ErrInvalid", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// AG has job_busy in flight: at one per group only AG2's is claimed.
			claimed, err := s.ClaimJobs(ctx, queue.KindWebhook, 10, time.Minute, 1)
			if err != nil || len(claimed) != 1 || claimed[0].ID != "job_other" {
				t.Fatalf("fair claim %+v, %v; want job_other only", claimed, err)
			}
			// The held push job is released by new preferences.
			now = now.Add(time.Second)
			if err := s.PutPreferences(ctx, push.DefaultPreferences("c1")); err != nil {
				t.Fatal(err)
			}
			pj, err := s.Claim(ctx, 10, time.Minute)
			if err != nil || len(pj) != 2 {
				t.Fatalf("push claim after new preferences: %d jobs, %v; want ntf_due and ntf_held", len(pj), err)
			}
			err = sqldb.InTx(ctx, db, d, "delete", func(q sqldb.Querier) error {
				n, err := s.DeleteJobsTx(ctx, q, queue.KindWebhook, "whk_1")
				if err != nil || n != 3 {
					t.Errorf("deleted %d of whk_1's jobs, %v; want 3", n, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestJobQueryPlans checks on SQLite that no claim, sweep or lookup of
// push_jobs scans the table or sorts: each reads the index made for it.
// The fair claim's count of the jobs in flight groups them in a temporary
// B-tree: they are the claims in flight, not the queue.
func TestJobQueryPlans(t *testing.T) {
	db, d := backends[0].open(t)
	s := sqlstore.New(db, d)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		query, index string
		grouped      bool
	}{
		{`SELECT seq FROM push_jobs WHERE kind = ? AND state = 'pending' AND next_attempt_at <= ? AND claimed_until <= ?
			ORDER BY next_attempt_at, seq LIMIT ?`, "push_jobs_due", false},
		{`SELECT grp, COUNT(*) FROM push_jobs WHERE kind = ? AND state = 'pending' AND claimed_until > ? AND claimed_until > 0
			GROUP BY grp`, "push_jobs_busy", true},
		{`SELECT id FROM push_jobs WHERE kind = ? AND ref = ? AND kind <> 'push' ORDER BY created_at DESC, id DESC LIMIT ?`, "push_jobs_ref", false},
		{`SELECT id FROM push_jobs WHERE kind = ? AND ref = ? AND state = 'pending' AND held = 1 AND next_attempt_at > ?`, "push_jobs_held", false},
		{`SELECT seq FROM push_jobs WHERE kind = ? AND state IN ('done', 'dead') AND updated_at < ? LIMIT ?`, "push_jobs_final", false},
		{`SELECT COUNT(*) FROM push_jobs WHERE kind = ? AND state = 'pending'`, "push_jobs_due", false},
	} {
		rows, err := db.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+c.query, "webhook", "x", 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		got := strings.Join(plan, "; ")
		sorted := strings.Contains(strings.ReplaceAll(got, "USE TEMP B-TREE FOR GROUP BY", ""), "TEMP B-TREE") ||
			!c.grouped && strings.Contains(got, "TEMP B-TREE")
		if !strings.Contains(got, "INDEX "+c.index+" ") || sorted || strings.Contains(got, "SCAN push_jobs") {
			t.Errorf("%s\nplan: %s; want %s, no sort, no scan", c.query, got, c.index)
		}
	}
}
