package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Source is where a Worker claims its batches and records their outcomes:
// J is what a claim hands the handler, O what the handler returns for it.
// Jobs is the Source of plain jobs; push's outbox is the Source of push
// jobs (its claim adds the message, installations and preferences, its
// record the message's receipt, each in the queue's transaction).
type Source[J, O any] interface {
	// Claim takes up to n due jobs under a lease.
	Claim(ctx context.Context, n int, lease time.Duration) ([]J, error)
	// Record stores the outcomes in one transaction; an outcome whose
	// claim no longer holds its job changes nothing.
	Record(ctx context.Context, outs []O) error
}

// Defaults of a Worker's settings.
const (
	DefaultBatch        = 100
	DefaultPollInterval = time.Second
	DefaultGrace        = 10 * time.Second
)

// Worker is the queue's one worker loop: it claims a batch, hands it to
// Handle, records the outcomes in one transaction, and claims again at
// once while batches come full, else when notified or every PollInterval.
// Several workers, in one process or many, may share a Source: each claims
// its own jobs.
type Worker[J, O any] struct {
	Source Source[J, O]
	// Handle makes one attempt at each job and returns one outcome per
	// job, in any order. It must not fail as a whole: a job it cannot
	// read (Undecodable) or do is an outcome of its own.
	Handle func(ctx context.Context, jobs []J) []O
	// Recorded, when set, is told of the outcomes once they are stored.
	Recorded func(outs []O)
	// Idle, when set, is called when a batch did not come full (nothing
	// more is due): other work of the same worker, as a push broadcast's
	// next page. more asks for another turn at once.
	Idle  func(ctx context.Context) (more bool, err error)
	Batch int // default DefaultBatch
	// Lease hides a claimed batch from other workers; a worker that dies
	// releases it when the lease passes (at least once). Required.
	Lease        time.Duration
	PollInterval time.Duration // default DefaultPollInterval
	// Grace is how long a batch in flight may outlive Run's context: it
	// is finished and recorded, so a graceful stop does nothing twice.
	Grace  time.Duration // default DefaultGrace
	Name   string        // for logs ("push", "webhook")
	Logger *slog.Logger  // default slog.Default()

	once sync.Once
	wake chan struct{}
}

func (w *Worker[J, O]) init() {
	w.once.Do(func() {
		w.wake = make(chan struct{}, 1)
		if w.Batch <= 0 {
			w.Batch = DefaultBatch
		}
		if w.PollInterval <= 0 {
			w.PollInterval = DefaultPollInterval
		}
		if w.Grace <= 0 {
			w.Grace = DefaultGrace
		}
		if w.Logger == nil {
			w.Logger = slog.Default()
		}
	})
}

// Notify wakes the worker to claim at once, as after a transaction
// enqueued a job; it never blocks.
func (w *Worker[J, O]) Notify() {
	w.init()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends and returns nil.
func (w *Worker[J, O]) Run(ctx context.Context) error {
	if w.Source == nil || w.Handle == nil || w.Lease <= 0 {
		return errors.New("queue worker needs a source, a handler and a lease")
	}
	w.init()
	for {
		n, err := w.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			w.Logger.Warn(w.Name+": a batch failed", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if n == w.Batch && err == nil {
			continue // more may be due
		}
		if w.Idle != nil {
			if more, err := w.Idle(ctx); err != nil && ctx.Err() == nil {
				w.Logger.Warn(w.Name+": idle work failed", "err", err)
			} else if more {
				continue // jobs first, then more of the idle work
			}
		}
		t := time.NewTimer(w.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-w.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// RunOnce claims one batch, handles it and records the outcomes; it
// returns how many jobs it claimed. The handler's context outlives ctx by
// at most Grace, and the record is not cut short by ctx: what was done is
// recorded (a crash leaves the claims to lapse, and the jobs are done
// again).
func (w *Worker[J, O]) RunOnce(ctx context.Context) (int, error) {
	w.init()
	jobs, err := w.Source.Claim(ctx, w.Batch, w.Lease)
	if err != nil {
		return 0, fmt.Errorf("claim: %w", err)
	}
	if len(jobs) == 0 {
		return 0, nil
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(w.Grace, cancel) })
	defer stop()
	outs := w.Handle(hctx, jobs)
	if err := w.Source.Record(context.WithoutCancel(ctx), outs); err != nil {
		return len(jobs), fmt.Errorf("record %d outcomes: %w", len(outs), err)
	}
	if w.Recorded != nil {
		w.Recorded(outs)
	}
	return len(jobs), nil
}

// Jobs is the Source of a kind's plain jobs in a Store.
type Jobs struct {
	Store Store
	Kind  Kind
	// PerGroup > 0 caps each group's jobs in flight (ClaimJobs).
	PerGroup int
	// Lost, when set, is told of the outcomes whose claim had lapsed (their
	// jobs were taken again): nothing of theirs was recorded.
	Lost func(ids []string)
}

// Claim implements Source.
func (s Jobs) Claim(ctx context.Context, n int, lease time.Duration) ([]*Job, error) {
	return s.Store.ClaimJobs(ctx, s.Kind, n, lease, s.PerGroup)
}

// Record implements Source.
func (s Jobs) Record(ctx context.Context, outs []Outcome) error {
	lost, err := s.Store.RecordJobs(ctx, outs)
	if err == nil && len(lost) > 0 && s.Lost != nil {
		s.Lost(lost)
	}
	return err
}

// Undecodable is the outcome of a claimed job whose payload its handler
// cannot read: dead at once, with why, so that it neither comes back at
// every claim nor holds the jobs behind it.
func Undecodable(j *Job, err error, now time.Time) Outcome {
	msg := "payload cannot be read: " + err.Error()
	if len(msg) > 300 {
		msg = msg[:300]
	}
	return Outcome{ID: j.ID, Claim: j.Claim, State: StateDead, Attempt: Attempt{At: now, Error: msg}}
}
