package sqlstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
	"github.com/onedoor/onedoor/push/sqlstore"
)

// TestWorker runs the queue's worker loop on plain jobs: a batch is
// claimed, handled and recorded at once; a job whose payload the handler
// cannot read is dead with why instead of coming back at every claim; an
// outcome whose claim lapsed is reported lost and changes nothing.
func TestWorker(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			c := &queuetestClock{}
			c.set(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
			s := open(t, b.open, sqlstore.WithNow(c.now))
			const kind queue.Kind = "test"
			good := &queue.Job{Kind: kind, Payload: []byte(`{"n":1}`)}
			retry := &queue.Job{Kind: kind, Payload: []byte(`{"n":2}`)}
			bad := &queue.Job{Kind: kind, Payload: []byte(`{"n":"one"}`)}
			if err := s.EnqueueJobs(ctx, good, retry, bad); err != nil {
				t.Fatal(err)
			}
			var lost []string
			w := &queue.Worker[*queue.Job, queue.Outcome]{
				Source: queue.Jobs{Store: s, Kind: kind, Lost: func(ids []string) { lost = append(lost, ids...) }},
				Handle: func(_ context.Context, jobs []*queue.Job) []queue.Outcome {
					var outs []queue.Outcome
					for _, j := range jobs {
						var p struct{ N int }
						if err := json.Unmarshal(j.Payload, &p); err != nil {
							outs = append(outs, queue.Undecodable(j, err, c.now()))
							continue
						}
						o := queue.Outcome{ID: j.ID, Claim: j.Claim, Attempt: queue.Attempt{At: c.now(), StatusCode: 204}, State: queue.StateDone}
						if p.N == 2 {
							o.Attempt.StatusCode, o.State, o.NextAttemptAt = 503, queue.StatePending, c.now().Add(time.Minute)
						}
						outs = append(outs, o)
					}
					return outs
				},
				Batch: 10, Lease: time.Minute,
			}
			if n, err := w.RunOnce(ctx); err != nil || n != 3 {
				t.Fatalf("RunOnce = %d, %v; want the 3 jobs", n, err)
			}
			for _, want := range []struct {
				j     *queue.Job
				state queue.State
				err   string
			}{{good, queue.StateDone, ""}, {retry, queue.StatePending, ""}, {bad, queue.StateDead, "payload cannot be read"}} {
				got, err := s.GetJob(ctx, want.j.ID)
				if err != nil || got.State != want.state || len(got.Attempts) != 1 || !strings.Contains(got.Attempts[0].Error, want.err) {
					t.Errorf("job %s = %+v, %v; want %s with one attempt (error %q)", want.j.Payload, got, err, want.state, want.err)
				}
			}
			if n, err := w.RunOnce(ctx); err != nil || n != 0 {
				t.Errorf("RunOnce before the retry is due = %d, %v", n, err)
			}

			// A handler slower than the lease: another worker took the job
			// meanwhile, and the slow one's outcome is lost.
			c.set(c.now().Add(time.Minute))
			slow := &queue.Worker[*queue.Job, queue.Outcome]{Source: w.Source, Lease: time.Minute, Batch: 10,
				Handle: func(ctx context.Context, jobs []*queue.Job) []queue.Outcome {
					c.set(c.now().Add(2 * time.Minute))
					taken, err := s.ClaimJobs(ctx, kind, 10, time.Minute, 0)
					if err != nil || len(taken) != 1 {
						t.Errorf("the other worker claimed %+v, %v", taken, err)
					}
					return []queue.Outcome{{ID: jobs[0].ID, Claim: jobs[0].Claim, Attempt: queue.Attempt{At: c.now()}, State: queue.StateDead}}
				}}
			if n, err := slow.RunOnce(ctx); err != nil || n != 1 {
				t.Fatalf("slow RunOnce = %d, %v", n, err)
			}
			if len(lost) != 1 || lost[0] != retry.ID {
				t.Errorf("lost %v, want %s", lost, retry.ID)
			}
			if got, _ := s.GetJob(ctx, retry.ID); got.State != queue.StatePending || len(got.Attempts) != 1 {
				t.Errorf("a lapsed claim's outcome was recorded: %+v", got)
			}
		})
	}
}

// TestSweepJobs: final jobs past the retention go, pending ones and recent
// final ones stay.
func TestSweepJobs(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			c := &queuetestClock{}
			start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
			c.set(start)
			db, d := b.open(t)
			s := sqlstore.New(db, d, sqlstore.WithNow(c.now))
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			old, pending, recent := &queue.Job{Kind: "test", Payload: []byte(`{}`)}, &queue.Job{Kind: "test", Payload: []byte(`{}`)},
				&queue.Job{Kind: "test", Payload: []byte(`{}`)}
			if err := s.EnqueueJobs(ctx, old, pending); err != nil {
				t.Fatal(err)
			}
			js, err := s.ClaimJobs(ctx, "test", 10, time.Minute, 0)
			if err != nil || len(js) != 2 {
				t.Fatalf("claim: %+v, %v", js, err)
			}
			for _, j := range js {
				o := queue.Outcome{ID: j.ID, Claim: j.Claim, State: queue.StateDone}
				if j.ID == pending.ID {
					o.State, o.NextAttemptAt = queue.StatePending, c.now().Add(48*time.Hour)
				}
				if err := s.RecordJob(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			c.set(start.Add(24 * time.Hour))
			if err := s.EnqueueJobs(ctx, recent); err != nil {
				t.Fatal(err)
			}
			js, _ = s.ClaimJobs(ctx, "test", 10, time.Minute, 0)
			if len(js) != 1 {
				t.Fatalf("claimed %d", len(js))
			}
			if err := s.RecordJob(ctx, queue.Outcome{ID: js[0].ID, Claim: js[0].Claim, State: queue.StateDead}); err != nil {
				t.Fatal(err)
			}
			other := &queue.Job{Kind: "other", Payload: []byte(`{}`)}
			if err := s.EnqueueJobs(ctx, other); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE push_jobs SET state = 'dead', next_attempt_at = NULL, updated_at = 0 WHERE id = $1`, other.ID); err != nil {
				t.Fatal(err)
			}
			n, err := s.SweepJobs(ctx, "test", start.Add(time.Hour))
			if err != nil || n != 1 {
				t.Fatalf("SweepJobs = %d, %v; want the old final job", n, err)
			}
			if _, err := s.GetJob(ctx, other.ID); err != nil {
				t.Errorf("another kind's dead job was swept: %v", err)
			}
			for id, kept := range map[string]bool{old.ID: false, pending.ID: true, recent.ID: true} {
				if _, err := s.GetJob(ctx, id); (err == nil) != kept {
					t.Errorf("job %s: %v, want kept %v", id, err, kept)
				}
			}
		})
	}
}

// queuetestClock is a settable clock shared by a test and its store.
type queuetestClock struct{ ns atomic.Int64 }

func (c *queuetestClock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *queuetestClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

// TestClaim_JobWithoutMessageIsDead: a push job whose message row is gone
// is made dead by the claim that finds it, with why, instead of coming
// back at every claim.
func TestClaim_JobWithoutMessageIsDead(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, db := openDB(t, b.open)
			gone, kept := statusChange("cit_1"), statusChange("cit_2")
			if err := s.Enqueue(ctx, gone, kept); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `DELETE FROM push_messages WHERE id = $1`, gone.ID); err != nil {
				t.Fatal(err)
			}
			jobs, err := s.Claim(ctx, 10, time.Minute)
			if err != nil || len(jobs) != 1 || jobs[0].Message.ID != kept.ID {
				t.Fatalf("claimed %+v, %v; want only %s", jobs, err, kept.ID)
			}
			j, err := s.GetJob(ctx, gone.ID)
			if err != nil || j.State != queue.StateDead || len(j.Attempts) != 1 || !strings.Contains(j.Attempts[0].Error, "message is gone") {
				t.Errorf("the orphan job = %+v, %v; want dead with why", j, err)
			}
		})
	}
}

// TestSweep_RepairsMessageWithoutJob: a message not final whose job is
// missing (one an old replica committed while migration 0006 ran) gets a
// pending job at the next sweep and is delivered; final messages get none.
func TestSweep_RepairsMessageWithoutJob(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, db := openDB(t, b.open)
			lost, final := statusChange("cit_1"), statusChange("cit_2")
			if err := s.Enqueue(ctx, lost, final); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE push_messages SET state = 'accepted' WHERE id = $1`, final.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `DELETE FROM push_jobs WHERE id IN ($1, $2)`, lost.ID, final.ID); err != nil {
				t.Fatal(err)
			}
			if jobs, err := s.Claim(ctx, 10, time.Minute); err != nil || len(jobs) != 0 {
				t.Fatalf("claimed %+v, %v before the repair", jobs, err)
			}
			if _, err := s.Sweep(ctx, time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
			jobs, err := s.Claim(ctx, 10, time.Minute)
			if err != nil || len(jobs) != 1 || jobs[0].Message.ID != lost.ID {
				t.Fatalf("claimed %+v, %v; want only %s", jobs, err, lost.ID)
			}
			if _, err := s.GetJob(ctx, final.ID); err == nil {
				t.Error("a final message got a job")
			}
			if n, err := s.RepairJobs(ctx); err != nil || n != 0 {
				t.Errorf("a second repair made %d jobs, %v", n, err)
			}
		})
	}
}

// TestClaim_UndecodableRowIsDead: a message whose stored receipt does not
// decode, and a citizen whose stored preferences do not, make their jobs
// (and messages) dead, with why; the claim goes on for everyone else.
func TestClaim_UndecodableRowIsDead(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s, db := openDB(t, b.open)
			badMsg, badPrefs, kept := statusChange("cit_1"), statusChange("cit_2"), statusChange("cit_3")
			if err := s.Enqueue(ctx, badMsg, badPrefs, kept); err != nil {
				t.Fatal(err)
			}
			if err := s.PutPreferences(ctx, push.DefaultPreferences("cit_2")); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE push_messages SET delivered = '{not json' WHERE id = $1`, badMsg.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE push_preferences SET doc = '{not json' WHERE citizen_id = 'cit_2'`); err != nil {
				t.Fatal(err)
			}
			jobs, err := s.Claim(ctx, 10, time.Minute)
			if err != nil || len(jobs) != 1 || jobs[0].Message.ID != kept.ID {
				t.Fatalf("claimed %+v, %v; want only %s", jobs, err, kept.ID)
			}
			for id, why := range map[string]string{badMsg.ID: "message's stored record", badPrefs.ID: "stored preferences"} {
				j, err := s.GetJob(ctx, id)
				if err != nil || j.State != queue.StateDead || len(j.Attempts) != 1 || !strings.Contains(j.Attempts[0].Error, why) {
					t.Errorf("job %s = %+v, %v; want dead with why", id, j, err)
				}
			}
			m, err := s.GetMessage(ctx, "cit_2", badPrefs.ID)
			if err != nil || m.State != push.StateDead || !strings.Contains(m.LastError, "preferences") {
				t.Errorf("message with undecodable preferences = %+v, %v; want dead", m, err)
			}
			if jobs, err := s.Claim(ctx, 10, time.Minute); err != nil || len(jobs) != 0 {
				t.Errorf("second claim = %+v, %v; want nothing", jobs, err)
			}
		})
	}
}
