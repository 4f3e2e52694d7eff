// Package pushtest is the conformance suite every push.Store passes.
package pushtest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/push"
)

// Clock is a settable clock for the suite.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(t.UnixNano())
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Store is what the suite tests: messages, installations, preferences and
// broadcasts.
type Store interface {
	push.Store
	push.BroadcastStore
}

// Opener returns a new, empty, migrated store whose clock is now.
type Opener func(t *testing.T, now func() time.Time) Store

// Run runs the suite against stores open returns.
func Run(t *testing.T, open Opener) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Store, *Clock)
	}{
		{"RegisterInstallation", testRegister},
		{"SharedAddressIsNoOracle", testAddressOwner},
		{"InstallationQuota", testQuota},
		{"DeleteInstallation", testDelete},
		{"DeviceRevocationRemovesInstallations", testDeviceDelete},
		{"Preferences", testPreferences},
		{"ClaimHidesAndLapses", testClaim},
		{"RecordOutcomes", testRecord},
		{"StaleClaimIsIgnored", testStaleClaim},
		{"DeferGivesTheAttemptBack", testDefer},
		{"NewPreferencesReleaseDeferred", testPreferencesReleaseDeferred},
		{"UnregisteredInstallationsAreRemoved", testUnregistered},
		{"MessagesAreScoped", testScoped},
		{"MessagesAfter", testAfter},
		{"ConcurrentClaimsAreDisjoint", testConcurrentClaims},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClock(time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC))
			tc.fn(t, open(t, c.Now), c)
		})
	}
	t.Run("BroadcastCursorAndClaim", func(t *testing.T) {
		c := NewClock(time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC))
		testBroadcast(t, open(t, c.Now), c)
	})
	t.Run("BroadcastLivePositions", func(t *testing.T) {
		c := NewClock(time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC))
		testBroadcastLive(t, open(t, c.Now), c)
	})
}

// testBroadcastLive checks the positions a live stream replays broadcasts
// by: given at the first claim, in claim order, kept by later claims, and
// expired broadcasts left out.
func testBroadcastLive(t *testing.T, s Store, c *Clock) {
	ctx := t.Context()
	if n, err := s.LastBroadcastSeq(ctx); err != nil || n != 0 {
		t.Fatalf("no broadcast yet: %d, %v", n, err)
	}
	a := &push.Broadcast{Title: push.Text{VI: "A"}, Province: "01"}
	b := &push.Broadcast{Title: push.Text{VI: "B"}, ExpiresAt: c.Now().Add(time.Hour)}
	for _, x := range []*push.Broadcast{a, b} {
		if err := s.CreateBroadcast(ctx, x); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Millisecond)
	}
	if got, _ := s.BroadcastsAfter(ctx, 0, 10); len(got) != 0 {
		t.Errorf("unclaimed broadcasts are not on the stream yet: %+v", got)
	}
	ga, claimA, err := s.ClaimBroadcast(ctx, time.Minute)
	if err != nil || ga == nil || ga.ID != a.ID || ga.LiveSeq <= 0 {
		t.Fatalf("first claim: %+v, %v", ga, err)
	}
	gb, _, err := s.ClaimBroadcast(ctx, time.Minute)
	if err != nil || gb == nil || gb.ID != b.ID || gb.LiveSeq <= ga.LiveSeq {
		t.Fatalf("second claim: %+v, %v; want a position above %d", gb, err, ga.LiveSeq)
	}
	if err := s.AdvanceBroadcast(ctx, push.BroadcastProgress{ID: a.ID, Claim: claimA, State: push.BroadcastSending}); err != nil {
		t.Fatal(err)
	}
	if again, _, err := s.ClaimBroadcast(ctx, time.Minute); err != nil || again == nil || again.LiveSeq != ga.LiveSeq {
		t.Errorf("a later claim moved the position: %+v, %v; want %d", again, err, ga.LiveSeq)
	}
	if n, err := s.LastBroadcastSeq(ctx); err != nil || n != gb.LiveSeq {
		t.Errorf("last position %d, %v; want %d", n, err, gb.LiveSeq)
	}
	got, err := s.BroadcastsAfter(ctx, 0, 10)
	if err != nil || len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID || got[0].Province != "01" {
		t.Fatalf("after 0: %+v, %v", got, err)
	}
	if got, _ := s.BroadcastsAfter(ctx, ga.LiveSeq, 10); len(got) != 1 || got[0].ID != b.ID {
		t.Errorf("after %d: %+v, want only %s", ga.LiveSeq, got, b.ID)
	}
	c.Advance(2 * time.Hour) // b expired
	if got, _ := s.BroadcastsAfter(ctx, 0, 10); len(got) != 1 || got[0].ID != a.ID {
		t.Errorf("after b expired: %+v, want only %s", got, a.ID)
	}
}

func testBroadcast(t *testing.T, s Store, c *Clock) {
	ctx := t.Context()
	for _, id := range []string{"c3", "c1", "c2"} {
		register(t, s, fcm(id, "t-"+id))
	}
	register(t, s, fcm("c1", "t-c1-tablet"))
	b := &push.Broadcast{Title: push.Text{VI: "Thông báo"}, Body: "x"}
	if err := s.CreateBroadcast(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateBroadcast(ctx, &push.Broadcast{}); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("a broadcast without a title: %v", err)
	}
	got, claim, err := s.ClaimBroadcast(ctx, time.Minute)
	if err != nil || got == nil || got.ID != b.ID || got.State != push.BroadcastSending {
		t.Fatalf("claim: %+v, %v", got, err)
	}
	if again, _, err := s.ClaimBroadcast(ctx, time.Minute); err != nil || again != nil {
		t.Fatalf("a claimed broadcast was claimed again: %+v, %v", again, err)
	}
	ins, _, err := s.BroadcastTargets(ctx, "", "", 3)
	if err != nil || len(ins) != 3 || ins[0].CitizenID != "c1" || ins[1].CitizenID != "c1" || ins[2].CitizenID != "c2" {
		t.Fatalf("first page: %+v, %v", ins, err)
	}
	rest, _, err := s.BroadcastTargets(ctx, ins[2].CitizenID, ins[2].ID, 3)
	if err != nil || len(rest) != 1 || rest[0].CitizenID != "c3" {
		t.Fatalf("second page: %+v, %v", rest, err)
	}
	step := push.BroadcastProgress{ID: b.ID, Claim: claim, CursorCitizen: ins[2].CitizenID, CursorInstallation: ins[2].ID, Sent: 3, State: push.BroadcastSending,
		Deferred: []*push.Message{{CitizenID: "c2", Kind: push.KindNotice}}}
	if err := s.AdvanceBroadcast(ctx, step); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.MessagesAfter(ctx, "c2", 0, 10); len(ms) != 1 {
		t.Errorf("deferred message not enqueued: %+v", ms)
	}
	// The claim was released by the step; a stale claim changes nothing.
	got, claim2, err := s.ClaimBroadcast(ctx, time.Minute)
	if err != nil || got == nil || got.CursorCitizen != "c2" || got.Sent != 3 {
		t.Fatalf("after a step: %+v, %v", got, err)
	}
	step.Sent, step.State = 100, push.BroadcastDone
	if err := s.AdvanceBroadcast(ctx, step); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetBroadcast(ctx, b.ID); got.Sent != 3 || got.State != push.BroadcastSending {
		t.Fatalf("a stale claim advanced the broadcast: %+v", got)
	}
	if err := s.AdvanceBroadcast(ctx, push.BroadcastProgress{ID: b.ID, Claim: claim2, CursorCitizen: "c3", CursorInstallation: rest[0].ID, Sent: 1, State: push.BroadcastDone}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if got, _, _ := s.ClaimBroadcast(ctx, time.Minute); got != nil {
		t.Fatalf("a done broadcast was claimed: %+v", got)
	}
	if l, err := s.ListBroadcasts(ctx, 10); err != nil || len(l) != 1 || l[0].Sent != 4 || l[0].State != push.BroadcastDone {
		t.Fatalf("list: %+v, %v", l, err)
	}
}

func fcm(citizen, token string) *push.Installation {
	return &push.Installation{CitizenID: citizen, Platform: push.FCM, Token: token, Locale: "vi"}
}

func register(t *testing.T, s Store, in *push.Installation) *push.Installation {
	t.Helper()
	if _, err := s.RegisterInstallation(t.Context(), in); err != nil {
		t.Fatalf("register: %v", err)
	}
	return in
}

func testRegister(t *testing.T, s Store, c *Clock) {
	ctx := t.Context()
	a := fcm("c1", "token-a")
	created, err := s.RegisterInstallation(ctx, a)
	if err != nil || !created || a.ID == "" {
		t.Fatalf("register: created=%v id=%q err=%v", created, a.ID, err)
	}
	again := fcm("c1", "token-a")
	again.Locale, again.DeviceID = "en", "dev-1"
	created, err = s.RegisterInstallation(ctx, again)
	if err != nil || created || again.ID != a.ID {
		t.Fatalf("re-register: created=%v id=%q (want %q) err=%v", created, again.ID, a.ID, err)
	}
	c.Advance(time.Second)
	sub := &push.Subscription{Endpoint: "https://push.example.test/s/1", Keys: push.SubscriptionKeys{P256DH: "pk", Auth: "au"}}
	w := register(t, s, &push.Installation{CitizenID: "c1", Platform: push.WebPush, Subscription: sub, Locale: "vi"})
	list, err := s.ListInstallations(ctx, "c1")
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	if list[0].ID != a.ID || list[0].Locale != "en" || list[0].DeviceID != "dev-1" || list[0].Token != "token-a" {
		t.Errorf("first = %+v", list[0])
	}
	if list[1].ID != w.ID || list[1].Subscription == nil || *list[1].Subscription != *sub {
		t.Errorf("second = %+v", list[1])
	}
	for _, bad := range []*push.Installation{
		{CitizenID: "c1", Platform: "sms", Token: "x"},
		{CitizenID: "c1", Platform: push.FCM},
		{CitizenID: "c1", Platform: push.WebPush, Token: "x"},
		{CitizenID: "", Platform: push.FCM, Token: "x"},
	} {
		if _, err := s.RegisterInstallation(ctx, bad); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("register %+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// testAddressOwner: a second citizen registering an address another holds
// is answered as for a new address, and gets an installation of their own;
// the first citizen's is neither shown to them nor changed.
func testAddressOwner(t *testing.T, s Store, c *Clock) {
	ctx := t.Context()
	first := register(t, s, &push.Installation{CitizenID: "c1", Platform: push.FCM, Token: "shared", Locale: "en", DeviceID: "dev-1"})
	before, _ := s.ListInstallations(ctx, "c1")
	c.Advance(time.Second)
	second := &push.Installation{CitizenID: "c2", Platform: push.FCM, Token: "shared", Locale: "vi", DeviceID: "dev-2"}
	created, err := s.RegisterInstallation(ctx, second)
	if err != nil || !created || second.ID == "" || second.ID == first.ID || !second.CreatedAt.Equal(c.Now().Truncate(time.Millisecond)) {
		t.Fatalf("another citizen's token: created %v, %+v, %v; want a new installation of their own", created, second, err)
	}
	c.Advance(time.Second)
	fresh := &push.Installation{CitizenID: "c2", Platform: push.FCM, Token: "unused", Locale: "vi", DeviceID: "dev-2"}
	if created, err := s.RegisterInstallation(ctx, fresh); err != nil || !created {
		t.Fatalf("a fresh token: %v, %v", created, err)
	}
	l2, _ := s.ListInstallations(ctx, "c2")
	if len(l2) != 2 || l2[0].ID != second.ID || l2[0].CitizenID != "c2" || l2[0].DeviceID != "dev-2" || l2[0].Locale != "vi" {
		t.Errorf("c2's installations: %+v", l2)
	}
	// Registering it again updates c2's own, not c1's.
	if created, err := s.RegisterInstallation(ctx, &push.Installation{CitizenID: "c2", Platform: push.FCM, Token: "shared", Locale: "en"}); err != nil || created {
		t.Errorf("c2 again: %v, %v", created, err)
	}
	if err := s.DeleteInstallation(ctx, "c2", first.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("c2 deletes c1's installation: %v, want ErrNotFound", err)
	}
	if after, _ := s.ListInstallations(ctx, "c1"); len(after) != 1 || *after[0] != *before[0] {
		t.Errorf("c1's installation changed: %+v, was %+v", after, before)
	}
	// Each citizen's messages reach the address through their own.
	m1, m2 := msg("c1"), msg("c2")
	enqueue(t, s, m1, m2)
	for _, j := range claim(t, s, 10) {
		want := first.ID
		if j.Message.CitizenID == "c2" {
			want = second.ID
		}
		if !slices.ContainsFunc(j.Installations, func(in *push.Installation) bool { return in.ID == want }) ||
			slices.ContainsFunc(j.Installations, func(in *push.Installation) bool { return in.CitizenID != j.Message.CitizenID }) {
			t.Errorf("%s's job reaches %+v, want %s", j.Message.CitizenID, j.Installations, want)
		}
	}
	// The same token on another platform is another address.
	register(t, s, &push.Installation{CitizenID: "c2", Platform: push.APNs, Token: "shared", Locale: "vi"})
	if l, _ := s.ListInstallations(ctx, "c1"); len(l) != 1 || l[0].Platform != push.FCM {
		t.Errorf("c1's installations changed: %+v", l)
	}
}

func testQuota(t *testing.T, s Store, _ *Clock) {
	for i := range push.MaxInstallations {
		register(t, s, fcm("c1", fmt.Sprint("t", i)))
	}
	if _, err := s.RegisterInstallation(t.Context(), fcm("c1", "one-more")); !errors.Is(err, push.ErrQuota) {
		t.Fatalf("beyond the quota: %v, want ErrQuota", err)
	}
	// Re-registering one that exists is not a new one.
	if _, err := s.RegisterInstallation(t.Context(), fcm("c1", "t0")); err != nil {
		t.Fatalf("re-register at the quota: %v", err)
	}
}

func testDelete(t *testing.T, s Store, _ *Clock) {
	ctx := t.Context()
	a := register(t, s, fcm("c1", "a"))
	if err := s.DeleteInstallation(ctx, "c2", a.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Fatalf("delete another's: %v, want ErrNotFound", err)
	}
	if err := s.DeleteInstallation(ctx, "c1", a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteInstallation(ctx, "c1", a.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	// The token is free again, for anyone.
	register(t, s, fcm("c2", "a"))
}

func testDeviceDelete(t *testing.T, s Store, _ *Clock) {
	ctx := t.Context()
	a := fcm("c1", "a")
	a.DeviceID = "dev-stolen"
	register(t, s, a)
	b := fcm("c1", "b")
	b.DeviceID = "dev-other"
	register(t, s, b)
	register(t, s, fcm("c1", "browserless"))
	n, err := s.DeleteDeviceInstallations(ctx, "dev-stolen")
	if err != nil || n != 1 {
		t.Fatalf("delete device: %d, %v", n, err)
	}
	l, _ := s.ListInstallations(ctx, "c1")
	if len(l) != 2 || slices.ContainsFunc(l, func(in *push.Installation) bool { return in.DeviceID == "dev-stolen" }) {
		t.Fatalf("after revocation: %+v", l)
	}
	if _, err := s.DeleteDeviceInstallations(ctx, ""); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("empty device id: %v, want ErrInvalid (it would match every browser)", err)
	}
}

func testPreferences(t *testing.T, s Store, _ *Clock) {
	ctx := t.Context()
	p, err := s.GetPreferences(ctx, "c1")
	if err != nil || p.TimeZone != push.DefaultTimeZone || p.Channel(push.KindResult, "X") != push.ChannelPush {
		t.Fatalf("defaults: %+v, %v", p, err)
	}
	p.Quiet = &push.QuietHours{Start: "22:00", End: "07:00"}
	p.Kinds = map[push.Kind]push.Channel{push.KindStatusChange: push.ChannelInbox}
	p.Services = map[string]push.ServicePreferences{"SVC": {Kinds: map[push.Kind]push.Channel{push.KindResult: push.ChannelOff}, FullText: true}}
	if err := s.PutPreferences(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPreferences(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Quiet == nil || *got.Quiet != *p.Quiet || got.Channel(push.KindStatusChange, "") != push.ChannelInbox ||
		got.Channel(push.KindResult, "SVC") != push.ChannelOff || !got.FullText("SVC") || got.FullText("OTHER") {
		t.Fatalf("round trip: %+v", got)
	}
	bad := *p
	bad.TimeZone = "Mars/Olympus"
	if err := s.PutPreferences(ctx, &bad); !errors.Is(err, idp.ErrInvalid) {
		t.Fatalf("bad zone: %v", err)
	}
	if got, _ := s.GetPreferences(ctx, "c1"); got.TimeZone != push.DefaultTimeZone {
		t.Errorf("a refused update changed the stored preferences: %q", got.TimeZone)
	}
}

func enqueue(t *testing.T, s Store, ms ...*push.Message) {
	t.Helper()
	if err := s.Enqueue(t.Context(), ms...); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

func msg(citizen string) *push.Message {
	return &push.Message{CitizenID: citizen, Kind: push.KindResult, ServiceCode: "SVC", AgencyCode: "AG",
		ApplicationID: "app-1", Title: push.Text{VI: "Kết quả", EN: "Result"}, Body: "Approved"}
}

func claim(t *testing.T, s Store, n int) []*push.Job {
	t.Helper()
	jobs, err := s.Claim(t.Context(), n, time.Minute)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return jobs
}

func testClaim(t *testing.T, s Store, c *Clock) {
	in := register(t, s, fcm("c1", "a"))
	m := msg("c1")
	enqueue(t, s, m)
	if m.ID == "" || m.Seq == 0 || m.State != push.StateQueued {
		t.Fatalf("enqueued: %+v", m)
	}
	jobs := claim(t, s, 10)
	if len(jobs) != 1 {
		t.Fatalf("claimed %d, want 1", len(jobs))
	}
	j := jobs[0]
	if j.Message.ID != m.ID || j.Message.Attempts != 1 || j.Message.Title.EN != "Result" || j.Claim == "" {
		t.Errorf("job message = %+v", j.Message)
	}
	if len(j.Installations) != 1 || j.Installations[0].ID != in.ID || j.Preferences == nil {
		t.Errorf("job = %+v", j)
	}
	if again := claim(t, s, 10); len(again) != 0 {
		t.Fatalf("claimed a claimed message again: %d", len(again))
	}
	c.Advance(time.Minute + time.Millisecond)
	again := claim(t, s, 10)
	if len(again) != 1 || again[0].Message.Attempts != 2 || again[0].Claim == j.Claim {
		t.Fatalf("after the lease lapsed: %+v", again)
	}
}

func testRecord(t *testing.T, s Store, c *Clock) {
	ctx := t.Context()
	ok, retry := msg("c1"), msg("c1")
	enqueue(t, s, ok, retry)
	jobs := claim(t, s, 10)
	if len(jobs) != 2 {
		t.Fatalf("claimed %d", len(jobs))
	}
	next := c.Now().Add(time.Hour)
	err := s.Record(ctx, []push.Outcome{
		{MessageID: ok.ID, Claim: jobs[0].Claim, State: push.StateAccepted, Delivered: []string{"ins_1"}},
		{MessageID: retry.ID, Claim: jobs[0].Claim, State: push.StateFailed, NextAttemptAt: next, LastError: "fcm: status 503", Delivered: []string{"ins_2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetMessage(ctx, "c1", ok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != push.StateAccepted || got.Title != (push.Text{}) || got.Body != "" || !slices.Equal(got.Delivered, []string{"ins_1"}) {
		t.Errorf("accepted message = %+v (its text must be erased)", got)
	}
	if n := len(claim(t, s, 10)); n != 0 {
		t.Fatalf("claimed %d before the retry was due", n)
	}
	c.Advance(time.Hour)
	jobs = claim(t, s, 10)
	if len(jobs) != 1 || jobs[0].Message.ID != retry.ID || jobs[0].Message.Attempts != 2 ||
		!slices.Equal(jobs[0].Message.Delivered, []string{"ins_2"}) || jobs[0].Message.LastError != "fcm: status 503" || jobs[0].Message.Body != "Approved" {
		t.Fatalf("retry = %+v", jobs)
	}
}

func testStaleClaim(t *testing.T, s Store, c *Clock) {
	m := msg("c1")
	enqueue(t, s, m)
	first := claim(t, s, 1)[0]
	c.Advance(2 * time.Minute)
	second := claim(t, s, 1)[0]
	late := []push.Outcome{{MessageID: m.ID, Claim: first.Claim, State: push.StateDead}}
	if err := s.Record(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	if !late[0].Lost {
		t.Error("a lapsed claim's outcome is not marked lost")
	}
	got, _ := s.GetMessage(t.Context(), "c1", m.ID)
	if got.State != push.StateSent {
		t.Fatalf("a lapsed claim's outcome was recorded: state %s", got.State)
	}
	current := []push.Outcome{{MessageID: m.ID, Claim: second.Claim, State: push.StateAccepted}}
	if err := s.Record(t.Context(), current); err != nil {
		t.Fatal(err)
	}
	if current[0].Lost {
		t.Error("the current claim's outcome is marked lost")
	}
	if got, _ := s.GetMessage(t.Context(), "c1", m.ID); got.State != push.StateAccepted {
		t.Fatalf("state %s", got.State)
	}
}

func testDefer(t *testing.T, s Store, c *Clock) {
	m := msg("c1")
	enqueue(t, s, m)
	j := claim(t, s, 1)[0]
	until := c.Now().Add(4 * time.Hour)
	if err := s.Record(t.Context(), []push.Outcome{{MessageID: m.ID, Claim: j.Claim, State: push.StateQueued, NextAttemptAt: until, Deferred: true}}); err != nil {
		t.Fatal(err)
	}
	c.Advance(4 * time.Hour)
	jobs := claim(t, s, 1)
	if len(jobs) != 1 || jobs[0].Message.Attempts != 1 {
		t.Fatalf("after quiet hours: %+v (a deferral is not an attempt)", jobs)
	}
}

// testPreferencesReleaseDeferred: a message held back by quiet hours is due
// again once the citizen puts new preferences (without quiet hours, or
// other ones: the dispatcher decides again), not at the old end. Other
// citizens' messages and retries waiting for their backoff keep their time.
func testPreferencesReleaseDeferred(t *testing.T, s Store, c *Clock) {
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		quiet *push.QuietHours
	}{
		{"quiet hours removed", nil},
		{"other quiet hours", &push.QuietHours{Start: "01:00", End: "02:00"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			citizen := "c-" + tc.name
			held, retry, other := msg(citizen), msg(citizen), msg("someone-else")
			enqueue(t, s, held, retry, other)
			jobs := claim(t, s, 10)
			if len(jobs) != 3 {
				t.Fatalf("claimed %d", len(jobs))
			}
			until, backoff := c.Now().Add(6*time.Hour), c.Now().Add(time.Hour)
			var outs []push.Outcome
			for _, j := range jobs {
				o := push.Outcome{MessageID: j.Message.ID, Claim: j.Claim, State: push.StateQueued, NextAttemptAt: until, Deferred: true}
				if j.Message.ID == retry.ID {
					o = push.Outcome{MessageID: j.Message.ID, Claim: j.Claim, State: push.StateFailed, NextAttemptAt: backoff, LastError: "fcm: status 503"}
				}
				outs = append(outs, o)
			}
			if err := s.Record(ctx, outs); err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Minute)
			if n := len(claim(t, s, 10)); n != 0 {
				t.Fatalf("claimed %d during quiet hours", n)
			}
			p := &push.Preferences{CitizenID: citizen, TimeZone: "UTC", Quiet: tc.quiet}
			if err := s.PutPreferences(ctx, p); err != nil {
				t.Fatal(err)
			}
			jobs = claim(t, s, 10)
			if len(jobs) != 1 || jobs[0].Message.ID != held.ID || jobs[0].Message.Attempts != 1 {
				t.Fatalf("after new preferences: %+v, want only the held-back message, at its first attempt", jobs)
			}
			if q := jobs[0].Preferences.Quiet; (q == nil) != (tc.quiet == nil) || q != nil && *q != *tc.quiet {
				t.Errorf("the claim carries quiet hours %+v, want %+v", q, tc.quiet)
			}
			if err := s.Record(ctx, []push.Outcome{{MessageID: held.ID, Claim: jobs[0].Claim, State: push.StateAccepted}}); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.GetMessage(ctx, "someone-else", other.ID); !got.NextAttemptAt.Equal(until) {
				t.Errorf("another citizen's held-back message is due %v, want %v", got.NextAttemptAt, until)
			}
			if got, _ := s.GetMessage(ctx, citizen, retry.ID); !got.NextAttemptAt.Equal(backoff) || got.State != push.StateFailed {
				t.Errorf("a retry is due %v (%s), want %v", got.NextAttemptAt, got.State, backoff)
			}
			// Preferences put while a message is claimed: the deferral
			// decided on the old ones does not stand.
			late := msg(citizen)
			enqueue(t, s, late)
			j := claim(t, s, 1)[0]
			c.Advance(time.Second)
			if err := s.PutPreferences(ctx, &push.Preferences{CitizenID: citizen, TimeZone: "UTC"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Record(ctx, []push.Outcome{{MessageID: late.ID, Claim: j.Claim, State: push.StateQueued,
				NextAttemptAt: c.Now().Add(6 * time.Hour), Deferred: true}}); err != nil {
				t.Fatal(err)
			}
			if jobs := claim(t, s, 10); len(jobs) != 1 || jobs[0].Message.ID != late.ID {
				t.Errorf("a deferral on replaced preferences: claimed %+v, want %s at once", jobs, late.ID)
			} else if err := s.Record(ctx, []push.Outcome{{MessageID: late.ID, Claim: jobs[0].Claim, State: push.StateAccepted}}); err != nil {
				t.Fatal(err)
			}
			c.Advance(7 * time.Hour)
			for _, j := range claim(t, s, 10) { // clear the queue for the next case
				_ = s.Record(ctx, []push.Outcome{{MessageID: j.Message.ID, Claim: j.Claim, State: push.StateAccepted}})
			}
		})
	}
}

func testUnregistered(t *testing.T, s Store, _ *Clock) {
	a, b := register(t, s, fcm("c1", "a")), register(t, s, fcm("c1", "b"))
	m := msg("c1")
	enqueue(t, s, m)
	j := claim(t, s, 1)[0]
	if err := s.Record(t.Context(), []push.Outcome{{MessageID: m.ID, Claim: j.Claim, State: push.StateAccepted,
		Delivered: []string{b.ID}, Unregistered: []string{a.ID}}}); err != nil {
		t.Fatal(err)
	}
	l, _ := s.ListInstallations(t.Context(), "c1")
	if len(l) != 1 || l[0].ID != b.ID {
		t.Fatalf("installations = %+v, want only %s", l, b.ID)
	}
}

func testScoped(t *testing.T, s Store, _ *Clock) {
	ctx := t.Context()
	m := msg("c1")
	enqueue(t, s, m)
	if _, err := s.GetMessage(ctx, "c2", m.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("another citizen's message: %v", err)
	}
	if got, err := s.GetMessage(ctx, "c1", m.ID); err != nil || got.ID != m.ID {
		t.Errorf("own message: %v", err)
	}
	if _, err := s.GetSentMessage(ctx, "OTHER", m.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("another agency's message: %v", err)
	}
	if got, err := s.GetSentMessage(ctx, "AG", m.ID); err != nil || got.State != push.StateQueued {
		t.Errorf("sender's receipt: %+v, %v", got, err)
	}
	if l, err := s.ListSentMessages(ctx, "AG", "app-1"); err != nil || len(l) != 1 || l[0].ID != m.ID {
		t.Errorf("sender's list: %+v, %v", l, err)
	}
	if l, err := s.ListSentMessages(ctx, "OTHER", "app-1"); err != nil || len(l) != 0 {
		t.Errorf("another agency's list: %+v, %v", l, err)
	}
	if _, err := s.GetSentMessage(ctx, "", m.ID); err == nil {
		t.Error("empty agency code matched")
	}
	if err := s.Enqueue(ctx, &push.Message{CitizenID: "c1", Kind: "gossip"}); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("unknown kind: %v", err)
	}
}

func testAfter(t *testing.T, s Store, _ *Clock) {
	var ms []*push.Message
	for range 5 {
		m := msg("c1")
		ms = append(ms, m)
		enqueue(t, s, m)
		enqueue(t, s, msg("c2"))
	}
	got, err := s.MessagesAfter(t.Context(), "c1", ms[1].Seq, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != ms[2].ID || got[1].ID != ms[3].ID {
		t.Fatalf("after %d: %+v", ms[1].Seq, got)
	}
	if n, err := s.LastSeq(t.Context(), "c1"); err != nil || n != ms[4].Seq {
		t.Errorf("last position of c1: %d, %v; want %d", n, err, ms[4].Seq)
	}
	if n, err := s.LastSeq(t.Context(), "nobody"); err != nil || n != 0 {
		t.Errorf("last position of a citizen without messages: %d, %v; want 0", n, err)
	}
}

func testConcurrentClaims(t *testing.T, s Store, _ *Clock) {
	const n = 60
	for range n {
		enqueue(t, s, msg("c1"))
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				jobs, err := s.Claim(t.Context(), 7, time.Minute)
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					seen[j.Message.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct messages, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("message %s claimed %d times", id, c)
		}
	}
}
