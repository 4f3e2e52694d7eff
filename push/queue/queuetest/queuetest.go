// Package queuetest is the conformance suite of queue.Store, run on every
// backend.
package queuetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/push/queue"
)

// Clock is the suite's time, shared with the store.
type Clock struct{ ns atomic.Int64 }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.ns.Add(int64(d))
	return c.Now()
}

// Opener returns a fresh, empty store on the clock now.
type Opener func(t *testing.T, now func() time.Time) queue.Store

// Run runs every subtest on a fresh store.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s queue.Store, c *Clock)
	}{
		{"EnqueueClaimRecord", testClaimRecord},
		{"LeaseLapsesAfterCrash", testLeaseLapse},
		{"StaleClaimIsLost", testStaleClaim},
		{"RetryWhenDue", testRetryWhenDue},
		{"DeadStays", testDead},
		{"PerGroupCap", testPerGroup},
		{"KindsApart", testKinds},
		{"ConcurrentClaimsOnce", testConcurrent},
		{"BadInput", testBadInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Clock{}
			c.ns.Store(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano())
			tc.fn(t, open(t, c.Now), c)
		})
	}
}

const kind queue.Kind = "test"

func job(group, ref, payload string) *queue.Job {
	return &queue.Job{Kind: kind, Group: group, Ref: ref, Payload: []byte(payload)}
}

func enqueue(t *testing.T, s queue.Store, jobs ...*queue.Job) {
	t.Helper()
	if err := s.EnqueueJobs(t.Context(), jobs...); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

func claim(t *testing.T, s queue.Store, n, perGroup int) []*queue.Job {
	t.Helper()
	js, err := s.ClaimJobs(t.Context(), kind, n, time.Minute, perGroup)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return js
}

func record(t *testing.T, s queue.Store, o queue.Outcome) {
	t.Helper()
	if err := s.RecordJob(t.Context(), o); err != nil {
		t.Fatalf("record %+v: %v", o, err)
	}
}

func testClaimRecord(t *testing.T, s queue.Store, c *Clock) {
	now := c.Now()
	j := job("g", "r", `{"n":1}`)
	enqueue(t, s, j)
	if j.ID == "" || j.State != queue.StatePending || !j.NextAttemptAt.Equal(now) || !j.CreatedAt.Equal(now) {
		t.Fatalf("enqueued %+v, want an id, pending and due now", j)
	}
	got := claim(t, s, 10, 0)
	if len(got) != 1 || got[0].ID != j.ID || string(got[0].Payload) != `{"n":1}` || got[0].Group != "g" || got[0].Ref != "r" ||
		got[0].Claims != 1 || got[0].Claim == "" || len(got[0].Attempts) != 0 {
		t.Fatalf("claimed %+v, want the job with one claim", got)
	}
	if again := claim(t, s, 10, 0); len(again) != 0 {
		t.Errorf("a claimed job was claimed again: %+v", again)
	}
	at := c.Advance(time.Second)
	a := queue.Attempt{At: at, StatusCode: 204, Duration: 48 * time.Millisecond}
	record(t, s, queue.Outcome{ID: j.ID, Claim: got[0].Claim, Attempt: a, State: queue.StateDone})
	stored, err := s.GetJob(t.Context(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != queue.StateDone || !stored.NextAttemptAt.IsZero() || len(stored.Attempts) != 1 || stored.Attempts[0] != a {
		t.Errorf("stored %+v, want done with the attempt %+v", stored, a)
	}
	c.Advance(time.Hour)
	if again := claim(t, s, 10, 0); len(again) != 0 {
		t.Errorf("a done job was claimed: %+v", again)
	}
	_, err = s.GetJob(t.Context(), "job_unknown")
	wantErr(t, err, idp.ErrNotFound, "get an unknown job")
	err = s.RecordJob(t.Context(), queue.Outcome{ID: "job_unknown", Attempt: a, State: queue.StateDone})
	wantErr(t, err, idp.ErrNotFound, "record on an unknown job")
}

// testLeaseLapse: a worker that dies holding a claim releases the job when
// the lease passes; the next claim counts another claim.
func testLeaseLapse(t *testing.T, s queue.Store, c *Clock) {
	enqueue(t, s, job("", "", `{}`))
	first := claim(t, s, 10, 0)
	c.Advance(time.Minute - time.Millisecond)
	if again := claim(t, s, 10, 0); len(again) != 0 {
		t.Fatalf("claimed before the lease passed: %+v", again)
	}
	c.Advance(time.Millisecond)
	again := claim(t, s, 10, 0)
	if len(again) != 1 || again[0].ID != first[0].ID || again[0].Claims != 2 || again[0].Claim == first[0].Claim {
		t.Fatalf("after the lease passed claimed %+v, want the job under a new claim", again)
	}
}

// testStaleClaim: the dead worker's late outcome changes nothing.
func testStaleClaim(t *testing.T, s queue.Store, c *Clock) {
	enqueue(t, s, job("", "", `{}`))
	first := claim(t, s, 10, 0)
	c.Advance(2 * time.Minute)
	second := claim(t, s, 10, 0)
	err := s.RecordJob(t.Context(), queue.Outcome{ID: first[0].ID, Claim: first[0].Claim, Attempt: queue.Attempt{At: c.Now()}, State: queue.StateDead})
	wantErr(t, err, queue.ErrLost, "record under a lapsed claim")
	wantErr(t, err, idp.ErrConflict, "record under a lapsed claim")
	record(t, s, queue.Outcome{ID: second[0].ID, Claim: second[0].Claim, Attempt: queue.Attempt{At: c.Now(), StatusCode: 200}, State: queue.StateDone})
	err = s.RecordJob(t.Context(), queue.Outcome{ID: second[0].ID, Attempt: queue.Attempt{At: c.Now()}, State: queue.StateDone})
	wantErr(t, err, queue.ErrLost, "record on a final job")
	j, _ := s.GetJob(t.Context(), first[0].ID)
	if j.State != queue.StateDone || len(j.Attempts) != 1 {
		t.Errorf("job %+v, want done with the live claim's attempt alone", j)
	}
}

func testRetryWhenDue(t *testing.T, s queue.Store, c *Clock) {
	enqueue(t, s, job("", "", `{}`))
	j := claim(t, s, 10, 0)[0]
	at := c.Now()
	next := at.Add(10 * time.Minute)
	record(t, s, queue.Outcome{ID: j.ID, Claim: j.Claim, Attempt: queue.Attempt{At: at, StatusCode: 503}, State: queue.StatePending, NextAttemptAt: next})
	c.Advance(10*time.Minute - time.Millisecond)
	if again := claim(t, s, 10, 0); len(again) != 0 {
		t.Fatalf("claimed a millisecond before its next attempt")
	}
	c.Advance(time.Millisecond)
	again := claim(t, s, 10, 0)
	if len(again) != 1 || len(again[0].Attempts) != 1 || again[0].Attempts[0].StatusCode != 503 || !again[0].NextAttemptAt.Equal(next) {
		t.Fatalf("claimed when due: %+v, want the job with its attempt", again)
	}
}

func testDead(t *testing.T, s queue.Store, c *Clock) {
	enqueue(t, s, job("", "r", `{}`))
	j := claim(t, s, 10, 0)[0]
	record(t, s, queue.Outcome{ID: j.ID, Claim: j.Claim, Attempt: queue.Attempt{At: c.Now(), StatusCode: 410}, State: queue.StateDead})
	c.Advance(24 * time.Hour)
	if again := claim(t, s, 10, 0); len(again) != 0 {
		t.Errorf("a dead job was claimed: %+v", again)
	}
	got, _ := s.GetJob(t.Context(), j.ID)
	if got.State != queue.StateDead || len(got.Attempts) != 1 {
		t.Errorf("dead job = %+v", got)
	}
}

// testPerGroup: one group's jobs in flight are capped, so another group's
// due job is claimed while the first has a backlog.
func testPerGroup(t *testing.T, s queue.Store, c *Clock) {
	for range 6 {
		enqueue(t, s, job("busy", "", `{}`))
	}
	first := claim(t, s, 10, 2)
	if len(first) != 2 {
		t.Fatalf("claimed %d of one group's jobs, want the cap 2", len(first))
	}
	if more := claim(t, s, 10, 2); len(more) != 0 {
		t.Errorf("claimed %d more while the group is at its cap", len(more))
	}
	enqueue(t, s, job("other", "", `{}`))
	if other := claim(t, s, 10, 2); len(other) != 1 || other[0].Group != "other" {
		t.Errorf("another group's job: claimed %+v", other)
	}
	record(t, s, queue.Outcome{ID: first[0].ID, Claim: first[0].Claim, Attempt: queue.Attempt{At: c.Now(), StatusCode: 204}, State: queue.StateDone})
	if next := claim(t, s, 10, 2); len(next) != 1 || next[0].Group != "busy" {
		t.Errorf("after one outcome was recorded claimed %d", len(next))
	}
	c.Advance(2 * time.Minute)
	per := map[string]int{}
	for _, j := range claim(t, s, 10, 2) {
		per[j.Group]++
	}
	if per["busy"] != 2 || per["other"] != 1 {
		t.Errorf("after the claims lapsed claimed %v", per)
	}
}

func testKinds(t *testing.T, s queue.Store, _ *Clock) {
	other := &queue.Job{Kind: "other", Payload: []byte(`{}`)}
	enqueue(t, s, other)
	if got := claim(t, s, 10, 0); len(got) != 0 {
		t.Errorf("claimed another kind's job: %+v", got)
	}
	got, err := s.ClaimJobs(t.Context(), "other", 10, time.Minute, 0)
	if err != nil || len(got) != 1 || got[0].ID != other.ID {
		t.Errorf("claim of its kind = %+v, %v", got, err)
	}
}

// testConcurrent: workers claiming at once take every job exactly once.
func testConcurrent(t *testing.T, s queue.Store, c *Clock) {
	const jobs, workers = 40, 8
	for i := range jobs {
		enqueue(t, s, job(fmt.Sprint("g", i%4), "", `{}`))
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for range workers {
		wg.Go(func() {
			for {
				js, err := s.ClaimJobs(t.Context(), kind, 3, time.Minute, 2)
				if err != nil {
					errs <- err
					return
				}
				if len(js) == 0 {
					return
				}
				mu.Lock()
				for _, j := range js {
					seen[j.ID]++
				}
				mu.Unlock()
				for _, j := range js {
					if err := s.RecordJob(t.Context(), queue.Outcome{ID: j.ID, Claim: j.Claim, Attempt: queue.Attempt{At: c.Now(), StatusCode: 204},
						State: queue.StateDone}); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != jobs {
		t.Errorf("claimed %d jobs, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %s claimed %d times", id, n)
		}
	}
}

func testBadInput(t *testing.T, s queue.Store, c *Clock) {
	wantErr(t, s.EnqueueJobs(t.Context(), &queue.Job{Payload: []byte(`{}`)}), idp.ErrInvalid, "no kind")
	wantErr(t, s.EnqueueJobs(t.Context(), &queue.Job{Kind: kind, Payload: []byte(`{`)}), idp.ErrInvalid, "payload not JSON")
	_, err := s.ClaimJobs(t.Context(), kind, 0, time.Minute, 0)
	wantErr(t, err, idp.ErrInvalid, "claim none")
	enqueue(t, s, job("", "", `{}`))
	j := claim(t, s, 1, 0)[0]
	for name, o := range map[string]queue.Outcome{
		"pending without a next attempt": {ID: j.ID, Claim: j.Claim, State: queue.StatePending},
		"done with a next attempt":       {ID: j.ID, Claim: j.Claim, State: queue.StateDone, NextAttemptAt: c.Now()},
		"an unknown state":               {ID: j.ID, Claim: j.Claim, State: "lost"},
	} {
		wantErr(t, s.RecordJob(t.Context(), o), idp.ErrInvalid, name)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}
