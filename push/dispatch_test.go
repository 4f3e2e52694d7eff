package push_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/pushtest"
	"github.com/onedoor/onedoor/push/sqlstore"
)

// recorder is a provider that records what it is asked to send and answers
// from a script: the dispatcher's own logic is under test here; the real
// providers are tested against protocol-faithful servers in their packages.
type recorder struct {
	platform push.Platform
	mu       sync.Mutex
	sent     []sent
	answer   func(t push.Target) error
}

type sent struct {
	Token string
	N     push.Notification
}

func (r *recorder) Platform() push.Platform { return r.platform }

func (r *recorder) Send(_ context.Context, t push.Target, n *push.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answer != nil {
		if err := r.answer(t); err != nil {
			return err
		}
	}
	r.sent = append(r.sent, sent{Token: t.Token, N: *n})
	return nil
}

func (r *recorder) tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.sent {
		out = append(out, s.Token)
	}
	return out
}

type liveLog struct {
	mu         sync.Mutex
	events     []push.Event
	broadcasts []push.Event
}

func (l *liveLog) PublishBroadcast(_ context.Context, e push.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.broadcasts = append(l.broadcasts, e)
	return nil
}

func (l *liveLog) Publish(_ context.Context, _ string, e push.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

type fixture struct {
	store *sqlstore.Store
	clock *pushtest.Clock
	fcm   *recorder
	live  *liveLog
	d     *push.Dispatcher
}

func newFixture(t *testing.T) *fixture {
	c := pushtest.NewClock(time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC)) // 10:00 in Hanoi
	s := sqlstore.New(dbtest.SQLite(t), sqldb.SQLite, sqlstore.WithNow(c.Now))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: s, clock: c, fcm: &recorder{platform: push.FCM}, live: &liveLog{}}
	f.d = &push.Dispatcher{Store: s, Providers: map[push.Platform]push.Provider{push.FCM: f.fcm}, Live: f.live,
		Now: c.Now, Backoff: func(int) time.Duration { return time.Minute }}
	return f
}

func (f *fixture) install(t *testing.T, citizen, token string) *push.Installation {
	t.Helper()
	in := &push.Installation{CitizenID: citizen, Platform: push.FCM, Token: token, Locale: "en"}
	if _, err := f.store.RegisterInstallation(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	return in
}

func (f *fixture) enqueue(t *testing.T, m *push.Message) *push.Message {
	t.Helper()
	if err := f.store.Enqueue(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) run(t *testing.T) {
	t.Helper()
	if _, err := f.d.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) state(t *testing.T, m *push.Message) *push.Message {
	t.Helper()
	got, err := f.store.GetMessage(t.Context(), m.CitizenID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func result(citizen string) *push.Message {
	return &push.Message{CitizenID: citizen, Kind: push.KindResult, ServiceCode: "SVC", AgencyCode: "AG",
		Title: push.Text{VI: "Kết quả: đã duyệt", EN: "Result: approved"}, Body: "Your permit"}
}

func TestDispatch_DeliversGenericTextToEveryInstallation(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "phone")
	f.install(t, "c1", "tablet")
	f.install(t, "c2", "someone-else")
	m := f.enqueue(t, result("c1"))
	f.run(t)
	if got := f.fcm.tokens(); !slices.Equal(got, []string{"phone", "tablet"}) && !slices.Equal(got, []string{"tablet", "phone"}) {
		t.Fatalf("sent to %v", got)
	}
	for _, s := range f.fcm.sent {
		if s.N.MessageID != m.ID || s.N.Title != "Public services" || s.N.Body == "Your permit" {
			t.Errorf("notification %+v names the result", s.N)
		}
	}
	got := f.state(t, m)
	if got.State != push.StateAccepted || len(got.Delivered) != 2 || got.Body != "" {
		t.Errorf("message after delivery = %+v", got)
	}
	if len(f.live.events) != 1 || f.live.events[0].MessageID != m.ID {
		t.Errorf("live events = %+v", f.live.events)
	}
}

func TestDispatch_RetryGoesOnlyToWhatFailed(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "ok")
	f.install(t, "c1", "flaky")
	fail := true
	f.fcm.answer = func(tg push.Target) error {
		if tg.Token == "flaky" && fail {
			return &push.ProviderError{Platform: push.FCM, StatusCode: 429, Retryable: true, RetryAfter: 10 * time.Minute}
		}
		return nil
	}
	m := f.enqueue(t, result("c1"))
	f.run(t)
	got := f.state(t, m)
	if got.State != push.StateFailed || !got.NextAttemptAt.Equal(f.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("after a 429 with Retry-After 600: state %s next %v (Retry-After outweighs a shorter backoff)", got.State, got.NextAttemptAt)
	}
	f.run(t) // not due yet
	if n := len(f.fcm.sent); n != 1 {
		t.Fatalf("sent %d before the retry was due", n)
	}
	fail = false
	f.clock.Advance(10 * time.Minute)
	f.run(t)
	if got := f.fcm.tokens(); !slices.Equal(got, []string{"ok", "flaky"}) {
		t.Fatalf("sent to %v; the retry must not resend to the installation that took it", got)
	}
	if got := f.state(t, m); got.State != push.StateAccepted || got.Attempts != 2 {
		t.Fatalf("after the retry: %+v", got)
	}
	if len(f.live.events) != 1 {
		t.Errorf("a retry published the live event again: %d events", len(f.live.events))
	}
}

func TestDispatch_DeadTokenIsPrunedAtOnce(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "gone")
	f.fcm.answer = func(push.Target) error {
		return &push.ProviderError{Platform: push.FCM, StatusCode: 404, Reason: "UNREGISTERED", Unregistered: true}
	}
	m := f.enqueue(t, result("c1"))
	f.run(t)
	if l, _ := f.store.ListInstallations(t.Context(), "c1"); len(l) != 0 {
		t.Fatalf("the dead token is still installed: %+v", l)
	}
	if got := f.state(t, m); got.State != push.StateSkipped {
		t.Errorf("state %s, want skipped (nothing left to push to)", got.State)
	}
}

func TestDispatch_DeadLetterAfterMaxAttempts(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "down")
	f.d.MaxAttempts = 3
	f.fcm.answer = func(push.Target) error { return errors.New("dial tcp: connection refused") }
	m := f.enqueue(t, result("c1"))
	for range 3 {
		f.run(t)
		f.clock.Advance(time.Hour)
	}
	got := f.state(t, m)
	if got.State != push.StateDead || got.Attempts != 3 || got.LastError == "" || got.Title != (push.Text{}) {
		t.Fatalf("after three failures: %+v", got)
	}
	f.run(t)
	if n := len(f.fcm.sent); n != 0 {
		t.Fatalf("a dead message was sent")
	}
}

func TestDispatch_PermanentRefusalIsDead(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "bad")
	f.fcm.answer = func(push.Target) error {
		return &push.ProviderError{Platform: push.FCM, StatusCode: 400, Reason: "INVALID_ARGUMENT"}
	}
	m := f.enqueue(t, result("c1"))
	f.run(t)
	if got := f.state(t, m); got.State != push.StateDead || got.Attempts != 1 {
		t.Fatalf("after a permanent refusal: %+v", got)
	}
}

func TestDispatch_Preferences(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "phone")
	p := push.DefaultPreferences("c1")
	p.Kinds = map[push.Kind]push.Channel{push.KindStatusChange: push.ChannelInbox, push.KindNotice: push.ChannelOff}
	p.Services = map[string]push.ServicePreferences{"SVC": {FullText: true}}
	p.Quiet = &push.QuietHours{Start: "09:00", End: "11:00"} // it is 10:00 in Hanoi
	if err := f.store.PutPreferences(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	inbox := f.enqueue(t, &push.Message{CitizenID: "c1", Kind: push.KindStatusChange})
	off := f.enqueue(t, &push.Message{CitizenID: "c1", Kind: push.KindNotice})
	quiet := f.enqueue(t, result("c1"))
	login := f.enqueue(t, &push.Message{CitizenID: "c1", Kind: push.KindLoginApproval, Priority: push.High})
	f.run(t)
	if got := f.fcm.tokens(); len(got) != 1 || f.fcm.sent[0].N.MessageID != login.ID || f.fcm.sent[0].N.Priority != push.High {
		t.Fatalf("during quiet hours sent %+v; only the login approval goes through", f.fcm.sent)
	}
	if got := f.state(t, inbox); got.State != push.StateSkipped {
		t.Errorf("inbox-only: %s", got.State)
	}
	if got := f.state(t, off); got.State != push.StateSkipped {
		t.Errorf("off: %s", got.State)
	}
	q := f.state(t, quiet)
	if q.State != push.StateQueued || q.Attempts != 0 || !q.NextAttemptAt.Equal(f.clock.Now().Add(time.Hour)) {
		t.Errorf("in quiet hours: %+v, want queued until 11:00 with no attempt counted", q)
	}
	var ids []string
	for _, e := range f.live.events {
		ids = append(ids, e.MessageID)
	}
	if slices.Contains(ids, off.ID) || !slices.Contains(ids, inbox.ID) {
		t.Errorf("live events %v: inbox-only is streamed, off is not", ids)
	}
	f.clock.Advance(time.Hour)
	f.run(t)
	if n := len(f.fcm.sent); n != 2 || f.fcm.sent[1].N.Title != "Result: approved" {
		t.Fatalf("after quiet hours: %+v (the opted-in service's full text)", f.fcm.sent)
	}
}

func TestDispatch_ExpiredIsDead(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "phone")
	m := result("c1")
	m.ExpiresAt = f.clock.Now().Add(time.Second)
	f.enqueue(t, m)
	f.clock.Advance(2 * time.Second)
	f.run(t)
	if got := f.state(t, m); got.State != push.StateDead || len(f.fcm.sent) != 0 {
		t.Fatalf("expired message: %+v, sent %d", got, len(f.fcm.sent))
	}
}

func TestDispatch_MissingProviderIsRefusedNotRetried(t *testing.T) {
	f := newFixture(t)
	if _, err := f.store.RegisterInstallation(t.Context(), &push.Installation{CitizenID: "c1", Platform: push.APNs, Token: "ab12", Locale: "vi"}); err != nil {
		t.Fatal(err)
	}
	m := f.enqueue(t, result("c1"))
	f.run(t)
	if got := f.state(t, m); got.State != push.StateDead {
		t.Fatalf("no APNs provider: %s", got.State)
	}
}

func TestDispatch_MassUnregisteredKeepsInstallations(t *testing.T) {
	f := newFixture(t)
	for i := range push.MassUnregistered + 5 {
		f.install(t, "c"+strconv.Itoa(i), "t"+strconv.Itoa(i))
		f.enqueue(t, result("c"+strconv.Itoa(i)))
	}
	f.fcm.answer = func(push.Target) error { // as from a wrong project or environment
		return &push.ProviderError{Platform: push.FCM, StatusCode: 404, Reason: "UNREGISTERED", Unregistered: true}
	}
	f.run(t)
	if l, _ := f.store.ListInstallations(t.Context(), "c0"); len(l) != 1 {
		t.Fatalf("a batch where every token looks dead deleted installations: %+v", l)
	}
}

func TestDispatch_Broadcast(t *testing.T) {
	f := newFixture(t)
	f.d.Broadcasts = f.store
	const citizens = push.BroadcastPage + 100 // two pages and a bit
	for i := range citizens {
		f.install(t, fmt.Sprintf("c%04d", i), fmt.Sprintf("t%04d", i))
	}
	quiet := push.DefaultPreferences("c0004")
	quiet.Quiet = &push.QuietHours{Start: "09:00", End: "11:00"} // it is 10:00 in Hanoi
	off := push.DefaultPreferences("c0002")
	off.Kinds = map[push.Kind]push.Channel{push.KindNotice: push.ChannelOff}
	for _, p := range []*push.Preferences{quiet, off} {
		if err := f.store.PutPreferences(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	// The audience is the province's: even-numbered citizens.
	f.d.InProvince = func(_ context.Context, province string, ids []string) (map[string]bool, error) {
		out := map[string]bool{}
		for _, id := range ids {
			var n int
			_, _ = fmt.Sscanf(id, "c%04d", &n)
			out[id] = province == "HN" && n%2 == 0
		}
		return out, nil
	}
	b := &push.Broadcast{Province: "HN", Title: push.Text{VI: "Hạn nộp thuế", EN: "Tax deadline"}, Body: "31/12"}
	if err := f.store.CreateBroadcast(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	steps := 0
	for {
		more, err := f.d.RunBroadcastStep(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !more {
			break
		}
		steps++
	}
	got, err := f.store.GetBroadcast(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	even := (citizens + 1) / 2
	if got.State != push.BroadcastDone || got.Sent != even-2 || got.Skipped != 1 || steps != 2 {
		t.Fatalf("broadcast = %+v after %d steps; want done, %d sent, 1 skipped (off), 1 deferred (quiet)", got, steps, even-2)
	}
	for _, s := range f.fcm.sent {
		var n int
		_, _ = fmt.Sscanf(s.Token, "t%04d", &n)
		if n%2 != 0 || s.N.MessageID != b.ID || s.N.Title != "Public services" {
			t.Fatalf("sent %+v to %s, outside the audience or not generic", s.N, s.Token)
		}
	}
	if n := len(f.fcm.sent); n != even-2 {
		t.Fatalf("sent %d pushes, want %d", n, even-2)
	}
	// The live streams heard of it once, whatever the audience's size,
	// with its position and audience and no text.
	if len(f.live.broadcasts) != 1 || f.live.broadcasts[0].MessageID != b.ID || f.live.broadcasts[0].Province != "HN" ||
		f.live.broadcasts[0].BroadcastSeq != got.LiveSeq || got.LiveSeq == 0 || f.live.broadcasts[0].Kind != push.KindNotice {
		t.Fatalf("live broadcast events %+v, want one for %s at %d", f.live.broadcasts, b.ID, got.LiveSeq)
	}
	if len(f.live.events) != 0 {
		t.Fatalf("per-citizen live events for a broadcast: %+v", f.live.events)
	}
	// The citizen in quiet hours gets an ordinary message, held back
	// until they end.
	ms, err := f.store.MessagesAfter(t.Context(), "c0004", 0, 10)
	if err != nil || len(ms) != 1 || ms[0].Kind != push.KindNotice {
		t.Fatalf("the citizen in quiet hours has %+v, %v", ms, err)
	}
	f.run(t)
	if n := len(f.fcm.sent); n != even-2 {
		t.Fatalf("sent during quiet hours")
	}
	f.clock.Advance(time.Hour)
	f.run(t)
	if last := f.fcm.sent[len(f.fcm.sent)-1]; last.Token != "t0004" {
		t.Fatalf("after quiet hours the last push went to %s", last.Token)
	}
	if len(f.live.events) != 0 || len(f.live.broadcasts) != 1 {
		t.Fatalf("the held-back copy reached the live streams again: %+v", f.live.events)
	}
}

func TestDispatch_AnOutageOfHoursLosesNothing(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "phone")
	down := true
	f.fcm.answer = func(push.Target) error {
		if down {
			return errors.New("dial tcp: connection refused")
		}
		return nil
	}
	f.d.Backoff = push.FullJitter(push.BackoffBase, push.BackoffCap)
	m := f.enqueue(t, result("c1"))
	for range 12 { // twelve failed attempts over up to six hours
		f.run(t)
		f.clock.Advance(time.Hour)
	}
	if got := f.state(t, m); got.State != push.StateFailed {
		t.Fatalf("after hours of outage: %s (attempts %d); the message must wait for the provider", got.State, got.Attempts)
	}
	down = false
	f.run(t)
	if got := f.state(t, m); got.State != push.StateAccepted {
		t.Fatalf("after the outage: %s", got.State)
	}
	// A day of failures ends it.
	down = true
	late := f.enqueue(t, result("c1"))
	f.clock.Advance(25 * time.Hour)
	f.run(t)
	if got := f.state(t, late); got.State != push.StateDead {
		t.Fatalf("a message failing for more than RetryFor: %s", got.State)
	}
}

func TestDispatch_PoisonMessageIsDeadWithoutSending(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "phone")
	f.d.MaxAttempts = 3
	m := f.enqueue(t, result("c1"))
	// A dispatcher that dies before recording (the message crashes it)
	// leaves each claim to lapse.
	for range 3 {
		if _, err := f.store.Claim(t.Context(), 10, time.Second); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(2 * time.Second)
	}
	f.run(t)
	if got := f.state(t, m); got.State != push.StateDead || len(f.fcm.sent) != 0 {
		t.Fatalf("a message claimed beyond MaxAttempts: %s, sent %d", got.State, len(f.fcm.sent))
	}
}

func TestDispatch_LiveEventsInSeqOrder(t *testing.T) {
	f := newFixture(t)
	f.d.Concurrency = 16
	var ms []*push.Message
	for range 50 {
		ms = append(ms, f.enqueue(t, result("c1")))
	}
	f.run(t)
	if len(f.live.events) != 50 {
		t.Fatalf("%d events", len(f.live.events))
	}
	for i, e := range f.live.events {
		if e.MessageID != ms[i].ID {
			t.Fatalf("event %d is %s, want %s: a stream must see its ids in order", i, e.MessageID, ms[i].ID)
		}
	}
}

func TestDispatch_SlowInstallationsAreSentAtOnce(t *testing.T) {
	f := newFixture(t)
	for i := range push.MaxInstallations {
		f.install(t, "c1", "slow"+strconv.Itoa(i))
	}
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	f.fcm.answer = func(push.Target) error { return nil }
	f.d.Providers[push.FCM] = &gate{inner: f.fcm, inFlight: &inFlight, most: &most, release: release, want: push.MaxInstallations}
	f.enqueue(t, result("c1"))
	f.run(t)
	if most.Load() != push.MaxInstallations {
		t.Fatalf("at most %d sends in flight for one message, want all %d at once", most.Load(), push.MaxInstallations)
	}
}

// gate holds sends until want of them are in flight at once.
type gate struct {
	inner          push.Provider
	inFlight, most *atomic.Int32
	release        chan struct{}
	want           int32
	once           sync.Once
}

func (g *gate) Platform() push.Platform { return g.inner.Platform() }

func (g *gate) Send(ctx context.Context, t push.Target, n *push.Notification) error {
	v := g.inFlight.Add(1)
	for {
		m := g.most.Load()
		if v <= m || g.most.CompareAndSwap(m, v) {
			break
		}
	}
	if v == g.want {
		g.once.Do(func() { close(g.release) })
	}
	select {
	case <-g.release:
	case <-time.After(2 * time.Second): // sequential sends would wait here
	}
	g.inFlight.Add(-1)
	return g.inner.Send(ctx, t, n)
}

// TestDispatch_LostOutcomeIsNotCounted: an outcome whose claim lapsed while
// sending (another dispatcher took the message) is recorded by nobody, so
// it is neither counted as final nor logged.
func TestDispatch_LostOutcomeIsNotCounted(t *testing.T) {
	f := newFixture(t)
	f.install(t, "c1", "slow")
	var finished atomic.Int32
	f.d.Finished = func(push.State) { finished.Add(1) }
	var taken []*push.Job
	f.fcm.answer = func(push.Target) error {
		f.clock.Advance(time.Hour) // the lease lapses mid-send
		var err error
		taken, err = f.store.Claim(context.Background(), 10, time.Minute)
		if err != nil {
			t.Error(err)
		}
		return nil
	}
	m := f.enqueue(t, result("c1"))
	f.run(t)
	if len(taken) != 1 {
		t.Fatalf("the other dispatcher took %d messages, want 1", len(taken))
	}
	if n := finished.Load(); n != 0 {
		t.Errorf("a lost outcome was counted %d times", n)
	}
	if got := f.state(t, m); got.State != push.StateSent {
		t.Errorf("state %s: a lost outcome was recorded", got.State)
	}
}
