package sqlstore_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
	"github.com/onedoor/onedoor/push/sqlstore"
)

// TestMigrationMessagesOnJobs seeds the outbox as the binary before
// migration 6 wrote it and checks every message not final became a pending
// push job keeping its due time, attempts and claim in flight, that final
// ones got none, and that the receipts read as before.
func TestMigrationMessagesOnJobs(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := b.open(t)
			now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			s := sqlstore.New(db, d, sqlstore.WithNow(func() time.Time { return clock() }))
			if err := s.MigrateTo(ctx, 5); err != nil {
				t.Fatal(err)
			}
			ms := now.UnixMilli()
			created := ms - 600_000
			for _, r := range []struct {
				id, state, claim, delivered, lastError string
				attempts                               int
				next, claimedUntil                     int64
				quiet                                  int
			}{
				{id: "ntf_due", state: "queued", next: created, delivered: "[]"},
				{id: "ntf_quiet", state: "queued", next: ms + 3_600_000, delivered: "[]", quiet: 1},
				{id: "ntf_inflight", state: "sent", attempts: 2, next: ms - 60_000, claim: "clm_old", claimedUntil: ms + 60_000,
					delivered: `["ins_a"]`, lastError: "fcm: status 503"},
				{id: "ntf_retry", state: "failed", attempts: 3, next: ms + 600_000, delivered: "[]", lastError: "apns: status 429"},
				{id: "ntf_done", state: "accepted", attempts: 1, next: created, delivered: `["ins_a"]`},
			} {
				if _, err := db.ExecContext(ctx, `INSERT INTO push_messages (id, citizen_id, kind, service_code, agency_code, application_id,
					inbox_message_id, title_vi, title_en, body, priority, collapse_key, expires_at, next_attempt_at, created_at, updated_at,
					state, attempts, claim_id, claimed_until, delivered, last_error, quiet_deferred)
					VALUES ($1, 'c1', 'result', 'SVC', 'AG', 'app-1', '', 'Kết quả', 'Result', 'Approved', 0, '', 0, $2, $3, $4,
					$5, $6, $7, $8, $9, $10, $11)`,
					r.id, r.next, created, ms-1000, r.state, r.attempts, r.claim, r.claimedUntil, r.delivered, r.lastError, r.quiet); err != nil {
					t.Fatal(err)
				}
			}
			webhook := &queue.Job{Kind: queue.KindWebhook, Group: "AG", Ref: "whk_1", Payload: []byte(`{}`)}
			if err := s.EnqueueJobs(ctx, webhook); err != nil {
				t.Fatal(err)
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}

			for id, want := range map[string]struct {
				claims int
				next   int64
				claim  string
			}{
				"ntf_due": {0, created, ""}, "ntf_quiet": {0, ms + 3_600_000, ""},
				"ntf_inflight": {2, ms - 60_000, "clm_old"}, "ntf_retry": {3, ms + 600_000, ""},
			} {
				j, err := s.GetJob(ctx, id)
				if err != nil {
					t.Fatalf("job of %s: %v", id, err)
				}
				if j.Kind != queue.KindPush || j.Ref != "c1" || j.State != queue.StatePending || j.Claims != want.claims ||
					j.NextAttemptAt.UnixMilli() != want.next || j.Claim != want.claim || !j.CreatedAt.Equal(time.UnixMilli(created).UTC()) {
					t.Errorf("job of %s = %+v, want claims %d, due %d, claim %q", id, j, want.claims, want.next, want.claim)
				}
			}
			if _, err := s.GetJob(ctx, "ntf_done"); !errors.Is(err, idp.ErrNotFound) {
				t.Errorf("a final message got a job: %v", err)
			}
			if got, err := s.GetJob(ctx, webhook.ID); err != nil || got.Kind != queue.KindWebhook || got.State != queue.StatePending {
				t.Errorf("the webhook job after the migration: %+v, %v", got, err)
			}
			// The receipts read as before.
			if m, err := s.GetSentMessage(ctx, "AG", "ntf_inflight"); err != nil || m.State != push.StateSent || m.Attempts != 2 ||
				!slices.Equal(m.Delivered, []string{"ins_a"}) || m.LastError != "fcm: status 503" || m.NextAttemptAt.UnixMilli() != ms-60_000 {
				t.Errorf("receipt of the message in flight: %+v, %v", m, err)
			}
			if m, err := s.GetMessage(ctx, "c1", "ntf_done"); err != nil || m.State != push.StateAccepted || m.Attempts != 1 || m.Body != "Approved" {
				t.Errorf("the final message: %+v, %v", m, err)
			}
			if n, err := s.Depth(ctx); err != nil || n != 4 {
				t.Errorf("depth %d, %v; want 4", n, err)
			}

			// Only the due message is claimed; the claim in flight still
			// hides its message and records under its own claim id.
			jobs, err := s.Claim(ctx, 10, time.Minute)
			if err != nil || len(jobs) != 1 || jobs[0].Message.ID != "ntf_due" || jobs[0].Message.Attempts != 1 ||
				!jobs[0].Message.NextAttemptAt.Equal(jobs[0].Message.CreatedAt) {
				t.Fatalf("claimed %+v, %v; want ntf_due at its first claim", jobs, err)
			}
			if err := s.Record(ctx, []push.Outcome{
				{MessageID: "ntf_due", Claim: jobs[0].Claim, State: push.StateAccepted, Delivered: []string{"ins_a"}},
				{MessageID: "ntf_inflight", Claim: "clm_old", State: push.StateAccepted, Delivered: []string{"ins_a", "ins_b"}},
			}); err != nil {
				t.Fatal(err)
			}
			if m, _ := s.GetMessage(ctx, "c1", "ntf_inflight"); m.State != push.StateAccepted || len(m.Delivered) != 2 || m.Body != "" {
				t.Errorf("the old claim's outcome: %+v", m)
			}
			// The held-back message is released by new preferences; the
			// retry waits for its time and keeps its attempts.
			now = now.Add(time.Second)
			if err := s.PutPreferences(ctx, push.DefaultPreferences("c1")); err != nil {
				t.Fatal(err)
			}
			jobs, err = s.Claim(ctx, 10, time.Minute)
			if err != nil || len(jobs) != 1 || jobs[0].Message.ID != "ntf_quiet" {
				t.Fatalf("after new preferences claimed %+v, %v; want ntf_quiet", jobs, err)
			}
			if err := s.Record(ctx, []push.Outcome{{MessageID: "ntf_quiet", Claim: jobs[0].Claim, State: push.StateSkipped}}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(10 * time.Minute)
			if jobs, err := s.Claim(ctx, 10, time.Minute); err != nil || len(jobs) != 1 || jobs[0].Message.ID != "ntf_retry" || jobs[0].Message.Attempts != 4 {
				t.Fatalf("when the retry is due claimed %+v, %v", jobs, err)
			}
		})
	}
}
