package push

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/onedoor/onedoor/internal/backoff"
	"github.com/onedoor/onedoor/push/queue"
)

// Defaults of the Dispatcher's settings.
const (
	DefaultBatch        = 200
	DefaultConcurrency  = 64
	DefaultPollInterval = time.Second
	DefaultSendTimeout  = 10 * time.Second
	DefaultRetryFor     = 24 * time.Hour
	BackoffBase         = 5 * time.Second
	BackoffCap          = time.Hour
)

// FCMQuota is FCM's default sending quota per project: 600,000 messages a
// minute.
const FCMQuota = rate.Limit(600_000.0 / 60)

// Dispatcher sends the outbox's due messages to the citizens' installations
// until its context ends. Several dispatchers, in one process or many, may
// share a store: each claims its own messages.
type Dispatcher struct {
	Store OutboxStore
	// Providers by platform. An installation whose platform has none is
	// not sent to (the message is dead for it) and a warning is logged.
	Providers map[Platform]Provider
	// Limits hold each provider to its quota: a send waits for its token
	// (back-pressure) rather than drawing a 429. Nil: unlimited.
	Limits map[Platform]*rate.Limiter
	// Live, when set, is told of each message on its first attempt, for
	// the citizen's live streams.
	Live        Publisher
	Batch       int
	Concurrency int // messages in flight at once
	// Lease is how long a claim hides a message from other dispatchers;
	// default a minute beyond what a full batch may take.
	Lease        time.Duration
	PollInterval time.Duration
	SendTimeout  time.Duration
	// A message that keeps failing is retried for RetryFor (default a
	// day: a provider outage of hours loses nothing) or MaxAttempts
	// attempts, whichever comes first.
	RetryFor    time.Duration
	MaxAttempts int
	// Backoff returns the delay before retry n (n ≥ 1); default
	// FullJitter(BackoffBase, BackoffCap).
	Backoff func(n int) time.Duration
	// Broadcasts, when set, are sent a page at a time when no message is
	// due; InProvince tells which citizens live in a province (a
	// province's broadcast).
	Broadcasts BroadcastStore
	InProvince func(ctx context.Context, province string, citizenIDs []string) (map[string]bool, error)
	// Observe, when set, is told of every send (for metrics).
	Observe func(SendResult)
	// Finished, when set, is told of every message that became final
	// (accepted, dead or skipped), once its outcome is stored.
	Finished func(State)
	Now      func() time.Time
	Logger   *slog.Logger

	once     sync.Once
	worker   *queue.Worker[*Job, Outcome]
	failures failureLog
}

// SendResult describes one send to one installation, for metrics.
type SendResult struct {
	Platform Platform
	Duration time.Duration
	// Err is nil, or the provider's error (a *ProviderError or transient).
	Err error
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		if d.Batch <= 0 {
			d.Batch = DefaultBatch
		}
		if d.Concurrency <= 0 {
			d.Concurrency = DefaultConcurrency
		}
		if d.PollInterval <= 0 {
			d.PollInterval = DefaultPollInterval
		}
		if d.SendTimeout <= 0 {
			d.SendTimeout = DefaultSendTimeout
		}
		if d.Lease <= 0 {
			d.Lease = time.Minute + time.Duration(d.Batch/d.Concurrency+1)*d.SendTimeout
		}
		if d.MaxAttempts <= 0 {
			d.MaxAttempts = MaxAttempts
		}
		if d.RetryFor <= 0 {
			d.RetryFor = DefaultRetryFor
		}
		if d.Backoff == nil {
			d.Backoff = FullJitter(BackoffBase, BackoffCap)
		}
		if d.Now == nil {
			d.Now = time.Now
		}
		if d.Logger == nil {
			d.Logger = slog.Default()
		}
		// The queue's one worker loop: the outbox is its Source (a claim
		// of push jobs with their messages, installations and
		// preferences; a record of jobs and receipts in one transaction).
		d.worker = &queue.Worker[*Job, Outcome]{Source: d.Store, Handle: d.handle, Recorded: d.recorded,
			Idle: d.RunBroadcastStep, Batch: d.Batch, Lease: d.Lease, PollInterval: d.PollInterval,
			Grace: d.SendTimeout, Name: "push", Logger: d.Logger}
	})
}

// Notify wakes the dispatcher to claim at once, as after a transaction
// enqueued a message; it never blocks.
func (d *Dispatcher) Notify() {
	d.init()
	d.worker.Notify()
}

// Run dispatches until ctx ends and returns nil; between batches, when no
// message is due, it sends the next page of a broadcast. A batch in flight
// when ctx ends is finished with a fresh deadline of SendTimeout and
// recorded, so a graceful stop sends nothing twice; a crash leaves its
// claims to lapse and the messages are sent again (at least once: the app
// drops duplicates by message id).
func (d *Dispatcher) Run(ctx context.Context) error {
	if d.Store == nil {
		return errors.New("push dispatcher needs a store")
	}
	d.init()
	return d.worker.Run(ctx)
}

// RunOnce claims one batch, sends it and records the outcomes; it returns
// how many messages it claimed.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	d.init()
	return d.worker.RunOnce(ctx)
}

// handle sends a claimed batch (the worker's Handler).
func (d *Dispatcher) handle(ctx context.Context, jobs []*Job) []Outcome {
	d.publish(ctx, jobs)
	outs := make([]Outcome, len(jobs))
	sem := make(chan struct{}, d.Concurrency)
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			outs[i] = d.process(ctx, j)
		})
	}
	wg.Wait()
	d.guardPruning(jobs, outs)
	return outs
}

// recorded logs the dead and counts the final, once stored; a lost
// outcome (its claim had lapsed: the worker holding it now records its
// own) is neither.
func (d *Dispatcher) recorded(outs []Outcome) {
	for _, o := range outs {
		if o.Lost {
			continue
		}
		if o.State == StateDead {
			d.Logger.Warn("push: a message is dead", "message", o.MessageID, "last_error", o.LastError)
		}
		if d.Finished != nil && o.State.Final() {
			d.Finished(o.State)
		}
	}
}

// firstClaim reports whether m is claimed for the first time: it has been
// neither retried nor held back (both move NextAttemptAt), so its live
// event is not yet out.
func firstClaim(m *Message) bool { return m.NextAttemptAt.Equal(m.CreatedAt) }

// publish tells the live streams of the batch's new messages, in Seq
// order, so a stream sees each citizen's events in the order of their ids
// (a client reconnects with the last id it saw).
func (d *Dispatcher) publish(ctx context.Context, jobs []*Job) {
	if d.Live == nil {
		return
	}
	sorted := slices.Clone(jobs)
	slices.SortFunc(sorted, func(a, b *Job) int { return cmp.Compare(a.Message.Seq, b.Message.Seq) })
	for _, j := range sorted {
		m := j.Message
		prefs := j.Preferences
		if prefs == nil {
			prefs = DefaultPreferences(m.CitizenID)
		}
		if !firstClaim(m) || prefs.Channel(m.Kind, m.ServiceCode) == ChannelOff {
			continue
		}
		if isBroadcastCopy(m) {
			continue // the broadcast's own event told the streams
		}
		if err := d.Live.Publish(ctx, m.CitizenID, EventOf(m)); err != nil {
			d.Logger.Warn("push: live event not published", "message", m.ID, "err", err)
		}
	}
}

// isBroadcastCopy reports whether m is a broadcast held back for a citizen
// in quiet hours (its collapse key is the broadcast's id).
func isBroadcastCopy(m *Message) bool {
	return m.Kind == KindNotice && m.ApplicationID == "" && strings.HasPrefix(m.CollapseKey, "brd_")
}

// process sends one message to every installation that has not taken it,
// all at once: one citizen's slow push services hold one slot for one
// SendTimeout, not the batch for one per installation.
func (d *Dispatcher) process(ctx context.Context, j *Job) Outcome {
	m := j.Message
	now := d.Now()
	out := Outcome{MessageID: m.ID, Claim: j.Claim, Delivered: slices.Clone(m.Delivered)}
	switch {
	case !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt):
		out.State, out.LastError = StateDead, "expired before it could be delivered"
		return out
	case m.Attempts > d.MaxAttempts:
		// Claimed this often without an outcome recorded (Claim counts
		// the attempt in its own transaction): a poison message.
		out.State, out.LastError = StateDead, "claimed too often without an outcome"
		return out
	}
	prefs := j.Preferences
	if prefs == nil {
		prefs = DefaultPreferences(m.CitizenID)
	}
	ch := prefs.Channel(m.Kind, m.ServiceCode)
	if ch != ChannelPush {
		out.State = StateSkipped
		return out
	}
	if m.Kind != KindLoginApproval {
		if until := prefs.QuietUntil(now); !until.IsZero() {
			out.State, out.NextAttemptAt, out.Deferred = StateQueued, until, true
			return out
		}
	}
	var (
		retry      bool
		retryAfter time.Duration
		permanent  []string
		mu         sync.Mutex
		wg         sync.WaitGroup
	)
	fullText := prefs.FullText(m.ServiceCode)
	for _, in := range j.Installations {
		if slices.Contains(m.Delivered, in.ID) {
			continue
		}
		wg.Go(func() {
			err := d.send(ctx, in, Compose(m, in.Locale, fullText))
			mu.Lock()
			defer mu.Unlock()
			var pe *ProviderError
			switch {
			case err == nil:
				out.Delivered = append(out.Delivered, in.ID)
			case errors.Is(err, ErrUnregistered):
				out.Unregistered = append(out.Unregistered, in.ID)
			case errors.As(err, &pe) && !pe.Retryable:
				permanent = append(permanent, safeError(err))
			default:
				retry = true
				if errors.As(err, &pe) {
					retryAfter = max(retryAfter, pe.RetryAfter)
				}
				out.LastError = safeError(err)
			}
		})
	}
	wg.Wait()
	var next time.Time
	dead := false
	if retry {
		// The queue's one retry policy (push/queue), as webhooks use it.
		next, dead = queue.Policy{MaxAttempts: d.MaxAttempts, RetryFor: d.RetryFor, Backoff: d.Backoff, Cap: BackoffCap}.
			Retry(m.Attempts, m.CreatedAt, now, retryAfter)
	}
	switch {
	case retry && dead:
		out.State = StateDead
	case retry:
		out.State = StateFailed
		out.NextAttemptAt = next
	case len(out.Delivered) > 0:
		out.State = StateAccepted
	case len(permanent) > 0:
		out.State = StateDead
	default:
		out.State = StateSkipped // no installation, or none left registered
	}
	if out.LastError == "" && len(permanent) > 0 {
		out.LastError = permanent[0]
	}
	return out
}

// MassUnregistered is how many installations of one batch may be reported
// unregistered before the dispatcher suspects its own configuration (a
// wrong project, environment or endpoint makes every token look dead) and
// keeps them instead of deleting them: when more than half of at least
// this many sends say so.
const MassUnregistered = 20

func (d *Dispatcher) guardPruning(jobs []*Job, outs []Outcome) {
	var sends, unreg int
	for i, j := range jobs {
		sends += len(j.Installations) - len(j.Message.Delivered)
		unreg += len(outs[i].Unregistered)
	}
	if unreg < MassUnregistered || unreg*2 <= sends {
		return
	}
	d.Logger.Error("push: providers reported most installations of a batch unregistered; keeping them (check the provider configuration)",
		"unregistered", unreg, "sends", sends)
	for i := range outs {
		outs[i].Unregistered = nil
	}
}

func (d *Dispatcher) send(ctx context.Context, in *Installation, n *Notification) error {
	p := d.Providers[in.Platform]
	if p == nil {
		return &ProviderError{Platform: in.Platform, Reason: "no provider configured"}
	}
	if l := d.Limits[in.Platform]; l != nil {
		if err := l.Wait(ctx); err != nil {
			return fmt.Errorf("%s: waiting for quota: %w", in.Platform, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.SendTimeout)
	defer cancel()
	start := time.Now()
	err := p.Send(ctx, in.Target(), n)
	if d.Observe != nil {
		d.Observe(SendResult{Platform: in.Platform, Duration: time.Since(start), Err: err})
	}
	if err != nil && !errors.Is(err, ErrUnregistered) {
		d.failures.note(d.Logger, in.Platform, err, time.Now())
	}
	return err
}

// safeError is an error's text as the outbox keeps it: valid UTF-8, at
// most 300 bytes cut at a character boundary. Push services choose much
// of it (a status line, a reason) and PostgreSQL refuses invalid UTF-8.
func safeError(err error) string {
	s := strings.ToValidUTF8(err.Error(), "?")
	if len(s) <= 300 {
		return s
	}
	cut := 300
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// failureLog logs failing sends without flooding: the first failure of a
// platform and reason at once, then one line a minute with the count.
type failureLog struct {
	mu   sync.Mutex
	seen map[string]*failureCount
}

type failureCount struct {
	since time.Time
	n     int
}

func (f *failureLog) note(log *slog.Logger, p Platform, err error, now time.Time) {
	reason := "transport"
	var pe *ProviderError
	if errors.As(err, &pe) {
		reason = fmt.Sprintf("status %d %s", pe.StatusCode, pe.Reason)
	}
	key := string(p) + " " + reason
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]*failureCount{}
	}
	c := f.seen[key]
	switch {
	case c == nil:
		f.seen[key] = &failureCount{since: now}
		log.Warn("push: a send failed (repeats are counted and logged once a minute)", "platform", string(p), "reason", reason, "err", safeError(err))
	case now.Sub(c.since) >= time.Minute:
		log.Warn("push: sends failing", "platform", string(p), "reason", reason, "count", c.n+1, "since", c.since)
		c.since, c.n = now, 0
	default:
		c.n++
	}
}

// FullJitter is the shared retry schedule (internal/backoff).
var FullJitter = backoff.FullJitter

// RunBroadcastStep claims one unfinished broadcast and sends it to the
// next BroadcastPage installations; it reports whether there was one.
// Sends wait for the providers' quotas (Limits), so a national broadcast
// slows down instead of drawing 429s.
func (d *Dispatcher) RunBroadcastStep(ctx context.Context) (bool, error) {
	d.init()
	if d.Broadcasts == nil {
		return false, nil
	}
	b, claim, err := d.Broadcasts.ClaimBroadcast(ctx, d.Lease)
	if err != nil || b == nil {
		return false, err
	}
	now := d.Now()
	p := BroadcastProgress{ID: b.ID, Claim: claim, CursorCitizen: b.CursorCitizen, CursorInstallation: b.CursorInstallation, State: BroadcastSending}
	if !b.ExpiresAt.IsZero() && !now.Before(b.ExpiresAt) {
		p.State = BroadcastExpired
		return true, d.Broadcasts.AdvanceBroadcast(context.WithoutCancel(ctx), p)
	}
	if d.Live != nil && b.CursorCitizen == "" && b.CursorInstallation == "" && b.LiveSeq > 0 {
		// The first step tells the live streams, once per replica: each
		// keeps it when its citizen is in the audience. A step that fails
		// before it advances tells them again; streams drop the repeat by
		// message id.
		if err := d.Live.PublishBroadcast(ctx, BroadcastEventOf(b)); err != nil {
			d.Logger.Warn("push: broadcast not published to the live streams; they replay it when they reconnect", "broadcast", b.ID, "err", err)
		}
	}
	ins, prefs, err := d.Broadcasts.BroadcastTargets(ctx, b.CursorCitizen, b.CursorInstallation, BroadcastPage)
	if err != nil {
		return true, fmt.Errorf("broadcast %s: targets: %w", b.ID, err)
	}
	if len(ins) < BroadcastPage {
		p.State = BroadcastDone
	}
	if len(ins) > 0 {
		last := ins[len(ins)-1]
		p.CursorCitizen, p.CursorInstallation = last.CitizenID, last.ID
	}
	in := map[string]bool{}
	if b.Province != "" && d.InProvince != nil && len(ins) > 0 {
		var citizens []string
		for _, i := range ins {
			citizens = append(citizens, i.CitizenID)
		}
		if in, err = d.InProvince(ctx, b.Province, citizens); err != nil {
			return true, fmt.Errorf("broadcast %s: audience: %w", b.ID, err)
		}
	}
	m := &Message{ID: b.ID, Kind: KindNotice, AgencyCode: b.AgencyCode, Title: b.Title, Body: b.Body, ExpiresAt: b.ExpiresAt}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		sem      = make(chan struct{}, d.Concurrency)
		deferred = map[string]bool{}
	)
	for _, i := range ins {
		if b.Province != "" && !in[i.CitizenID] {
			continue // not in the audience: not counted
		}
		pr := prefs[i.CitizenID]
		if pr == nil {
			pr = DefaultPreferences(i.CitizenID)
		}
		if pr.Channel(KindNotice, "") != ChannelPush {
			p.Skipped++
			continue
		}
		if until := pr.QuietUntil(now); !until.IsZero() {
			if !deferred[i.CitizenID] {
				deferred[i.CitizenID] = true
				p.Deferred = append(p.Deferred, &Message{CitizenID: i.CitizenID, Kind: KindNotice, AgencyCode: b.AgencyCode,
					Title: b.Title, Body: b.Body, ExpiresAt: b.ExpiresAt, CollapseKey: b.ID})
			}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := d.send(ctx, i, Compose(m, i.Locale, false))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				p.Sent++
			case errors.Is(err, ErrUnregistered):
				p.Unregistered = append(p.Unregistered, i.ID)
				p.Failed++
			default:
				p.Failed++ // a broadcast is not retried per device: it is a notice, not a decision
			}
		})
	}
	wg.Wait()
	if len(p.Unregistered) >= MassUnregistered && len(p.Unregistered)*2 > p.Sent+p.Failed {
		d.Logger.Error("push: providers reported most installations of a broadcast page unregistered; keeping them (check the provider configuration)",
			"broadcast", b.ID, "unregistered", len(p.Unregistered))
		p.Unregistered = nil
	}
	if err := d.Broadcasts.AdvanceBroadcast(context.WithoutCancel(ctx), p); err != nil {
		return true, fmt.Errorf("broadcast %s: %w", b.ID, err)
	}
	return true, nil
}
