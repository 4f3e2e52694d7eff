package main

import (
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
)

// TestPushSweep_FinalJobsToo: the hourly sweep deletes, past the
// retention, final messages and their final push jobs; other kinds' final
// jobs (a webhook's delivery log) and pending ones stay.
func TestPushSweep_FinalJobsToo(t *testing.T) {
	m := newTestMain(t)
	ctx := t.Context()
	msg := &push.Message{CitizenID: "cit_sweep", Kind: push.KindNotice, Title: push.Text{VI: "x"}}
	if err := m.PushStore.Enqueue(ctx, msg); err != nil {
		t.Fatal(err)
	}
	done, pending := &queue.Job{Kind: "sweep-test", Payload: []byte(`{}`)}, &queue.Job{Kind: "sweep-test", Payload: []byte(`{}`)}
	if err := m.PushStore.EnqueueJobs(ctx, done, pending); err != nil {
		t.Fatal(err)
	}
	// The dispatcher may take the message first; either way it ends final.
	for _, j := range mustClaimPush(t, m) {
		if err := m.PushStore.Record(ctx, []push.Outcome{{MessageID: j.Message.ID, Claim: j.Claim, State: push.StateSkipped}}); err != nil {
			t.Fatal(err)
		}
	}
	js, err := m.PushStore.ClaimJobs(ctx, "sweep-test", 10, time.Minute, 0)
	if err != nil || len(js) != 2 {
		t.Fatalf("claim: %+v, %v", js, err)
	}
	for _, j := range js {
		o := queue.Outcome{ID: j.ID, Claim: j.Claim, State: queue.StateDone}
		if j.ID == pending.ID {
			o.State, o.NextAttemptAt = queue.StatePending, time.Now().Add(time.Hour)
		}
		if err := m.PushStore.RecordJob(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the message is final", func() bool {
		got, err := m.PushStore.GetMessage(ctx, msg.CitizenID, msg.ID)
		return err == nil && got.State.Final()
	})
	if ms, jobs := m.sweepPushOnce(ctx, time.Now()); ms != 0 || jobs != 0 {
		t.Fatalf("swept %d messages and %d jobs within the retention", ms, jobs)
	}
	ms, jobs := m.sweepPushOnce(ctx, time.Now().Add(m.Config.PushRetention+time.Minute))
	if ms != 1 || jobs != 1 { // the message's job only
		t.Fatalf("swept %d messages and %d jobs past the retention, want 1 and 1", ms, jobs)
	}
	if _, err := m.PushStore.GetJob(ctx, pending.ID); err != nil {
		t.Errorf("a pending job was swept: %v", err)
	}
	if _, err := m.PushStore.GetJob(ctx, done.ID); err != nil {
		t.Errorf("another kind's done job was swept: %v", err)
	}
	if _, err := m.PushStore.GetJob(ctx, msg.ID); err == nil {
		t.Error("the message's done job was kept")
	}
}

func mustClaimPush(t *testing.T, m *Main) []*push.Job {
	t.Helper()
	jobs, err := m.PushStore.Claim(t.Context(), 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}
