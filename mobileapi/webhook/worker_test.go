package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// clock is the tests' time, shared by the worker and the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memStore implements the worker's two store methods in memory, as the
// SQL store's WebhookStore does (due = pending, next attempt passed, not
// claimed). It stands in until the real store exists.
type memStore struct {
	now      func() time.Time
	mu       sync.Mutex
	ds       map[string]*mobileapi.Delivery
	claimed  map[string]time.Time
	order    []string
	recorded chan string // delivery ids, one per attempt
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, ds: map[string]*mobileapi.Delivery{}, claimed: map[string]time.Time{}, recorded: make(chan string, 100)}
}

func (s *memStore) add(d *mobileapi.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.State = mobileapi.DeliveryPending
	s.ds[d.ID] = d
	s.order = append(s.order, d.ID)
}

func (s *memStore) get(id string) mobileapi.Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := *s.ds[id]
	d.Attempts = append([]mobileapi.Attempt(nil), d.Attempts...)
	return d
}

func (s *memStore) ClaimDeliveries(ctx context.Context, limit int, d time.Duration) ([]*mobileapi.Delivery, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []*mobileapi.Delivery
	for _, id := range s.order {
		dl := s.ds[id]
		if len(out) == limit {
			break
		}
		if dl.State != mobileapi.DeliveryPending || dl.NextAttemptAt != nil && dl.NextAttemptAt.After(now) || s.claimed[id].After(now) {
			continue
		}
		s.claimed[id] = now.Add(d)
		c := *dl
		c.Attempts = append([]mobileapi.Attempt(nil), dl.Attempts...)
		out = append(out, &c)
	}
	return out, nil
}

func (s *memStore) RecordClaimedAttempt(_ context.Context, id, _ string, a mobileapi.Attempt, state mobileapi.DeliveryState, next *time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.ds[id]
	if !ok {
		return idp.ErrNotFound
	}
	d.Attempts = append(d.Attempts, a)
	d.State = state
	d.NextAttemptAt = next
	delete(s.claimed, id)
	s.recorded <- id
	return nil
}

// waitRecorded waits for the next recorded attempt.
func (s *memStore) waitRecorded(t *testing.T) string {
	t.Helper()
	select {
	case id := <-s.recorded:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt recorded")
		return ""
	}
}

func (s *memStore) noneRecorded(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case id := <-s.recorded:
		t.Fatalf("unexpected attempt on %s", id)
	case <-time.After(d):
	}
}

var testEvent = mobileapi.Event{ID: "evt_0000000000000000000000test", Type: mobileapi.EventSubmitted, AgencyCode: "HN-HOANKIEM",
	ApplicationID: "app_0000000000000000000000test", ServiceID: "svc_0000000000000000000000test", ServiceCode: "1.001193",
	OccurredAt: time.Date(2026, 11, 30, 9, 20, 0, 0, time.FixedZone("ICT", 7*3600))}

func delivery(id, url string) *mobileapi.Delivery {
	return &mobileapi.Delivery{ID: id, WebhookID: testWebhook, AgencyCode: testEvent.AgencyCode, URL: url, Event: testEvent,
		CreatedAt: testEvent.OccurredAt}
}

type fixture struct {
	w     *Worker
	store *memStore
	clock *clock
}

// start runs a worker against a memStore with a fixed backoff of a minute;
// mod adjusts the worker before it starts.
func start(t *testing.T, mod func(w *Worker)) *fixture {
	t.Helper()
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	st := newMemStore(c.Now)
	w := &Worker{
		Store: st, Signer: KeySigner{Keys: sharedKeys(t)}, Now: c.Now, AllowPrivate: true,
		Backoff: func(int) time.Duration { return time.Minute }, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return &fixture{w: w, store: st, clock: c}
}

func TestDeliverSigned(t *testing.T) {
	keys := sharedKeys(t)
	type received struct {
		header http.Header
		body   []byte
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Clone(), b}
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	f := start(t, func(w *Worker) { w.Signer = KeySigner{Keys: keys} })
	url := srv.URL + "/onedoor/events"
	f.store.add(delivery("dlv_1", url))
	f.w.Notify()
	f.store.waitRecorded(t)
	r := <-got

	for h, want := range map[string]string{"Content-Type": "application/json", "User-Agent": UserAgent, HeaderEventID: testEvent.ID} {
		if r.header.Get(h) != want {
			t.Errorf("%s = %q, want %q", h, r.header.Get(h), want)
		}
	}
	want := `{"id":"evt_0000000000000000000000test","type":"submitted","occurred_at":"2026-11-30T02:20:00Z",` +
		`"agency_code":"HN-HOANKIEM","application_id":"app_0000000000000000000000test","service_id":"svc_0000000000000000000000test",` +
		`"service_code":"1.001193","href":"/agency/v1/applications/app_0000000000000000000000test"}`
	if string(r.body) != want {
		t.Errorf("body\n%s\nwant\n%s", r.body, want)
	}
	// The agency verifies with the published JWKS.
	if err := Verify(r.body, r.header.Get(HeaderSignature), jwks(t, keys), Expect{WebhookID: testWebhook, URL: url, Now: f.clock.Now()}); err != nil {
		t.Errorf("the agency's Verify: %v", err)
	}

	d := f.store.get("dlv_1")
	if d.State != mobileapi.DeliverySucceeded || d.NextAttemptAt != nil || len(d.Attempts) != 1 {
		t.Fatalf("delivery %+v", d)
	}
	if a := d.Attempts[0]; a.StatusCode != http.StatusNoContent || a.Error != "" || a.Duration <= 0 || !a.At.Equal(f.clock.Now()) {
		t.Errorf("attempt %+v", a)
	}
}

// The body matches the contract's WebhookEvent: exactly its members.
func TestEventJSON(t *testing.T) {
	b, err := json.Marshal(NewEvent(testEvent))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Required   []string       `json:"required"`
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(mobileapi.OpenAPI, &spec); err != nil {
		t.Fatal(err)
	}
	s := spec.Components.Schemas["WebhookEvent"]
	// An application event has every member but consent.
	if len(s.Properties)-1 != len(m) || m["consent"] != nil {
		t.Errorf("event has %d members, the contract %d besides consent", len(m), len(s.Properties)-1)
	}
	for _, r := range s.Required {
		if _, ok := m[r]; !ok {
			t.Errorf("event lacks %s", r)
		}
	}
	// A consent event has the required members and consent alone.
	ce := mobileapi.Event{ID: "evt_2", Type: mobileapi.EventConsentWithdrawn, AgencyCode: "AG", OccurredAt: testEvent.OccurredAt,
		Consent: &mobileapi.ConsentEvent{ID: "cns_1", ClientID: "portal", Purpose: "p", Receipt: "a.b.c"}}
	b, err = json.Marshal(NewEvent(ce))
	if err != nil {
		t.Fatal(err)
	}
	m = nil
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	c, _ := m["consent"].(map[string]any)
	if len(m) != len(s.Required)+1 || len(c) != 4 || c["id"] != "cns_1" || c["client_id"] != "portal" || c["purpose"] != "p" || c["receipt"] != "a.b.c" {
		t.Errorf("consent event %s", b)
	}
	for _, r := range s.Required {
		if _, ok := m[r]; !ok {
			t.Errorf("consent event lacks %s", r)
		}
	}
}

func TestRetryThenSucceed(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, strings.Repeat("busy ", 1000), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	var backoffArgs []int
	var mu sync.Mutex
	f := start(t, func(w *Worker) {
		w.Backoff = func(n int) time.Duration {
			mu.Lock()
			backoffArgs = append(backoffArgs, n)
			mu.Unlock()
			return 90 * time.Second
		}
	})
	f.store.add(delivery("dlv_1", srv.URL))
	f.w.Notify()
	f.store.waitRecorded(t)
	d := f.store.get("dlv_1")
	if d.State != mobileapi.DeliveryPending || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(f.clock.Now().Add(90*time.Second)) {
		t.Fatalf("after a 500: %+v", d)
	}
	if d.Attempts[0].StatusCode != http.StatusInternalServerError || d.Attempts[0].Error != "" {
		t.Fatalf("attempt %+v", d.Attempts[0])
	}
	// Not due yet: no attempt, however often the worker is woken.
	f.w.Notify()
	f.store.noneRecorded(t, 200*time.Millisecond)
	f.clock.Add(90 * time.Second)
	f.w.Notify()
	f.store.waitRecorded(t)
	d = f.store.get("dlv_1")
	if d.State != mobileapi.DeliverySucceeded || len(d.Attempts) != 2 || d.NextAttemptAt != nil {
		t.Fatalf("after the retry: %+v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(backoffArgs) != "[1]" {
		t.Errorf("backoff called with %v, want [1]", backoffArgs)
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	f := start(t, func(w *Worker) { w.MaxAttempts = 3 })
	f.store.add(delivery("dlv_1", srv.URL))
	for i := range 3 {
		f.w.Notify()
		f.store.waitRecorded(t)
		f.clock.Add(time.Minute)
		if d := f.store.get("dlv_1"); i < 2 && d.State != mobileapi.DeliveryPending {
			t.Fatalf("attempt %d: %s", i+1, d.State)
		}
	}
	d := f.store.get("dlv_1")
	if d.State != mobileapi.DeliveryFailed || d.NextAttemptAt != nil || len(d.Attempts) != 3 {
		t.Fatalf("after 3 attempts: %+v", d)
	}
	f.clock.Add(time.Hour)
	f.w.Notify()
	f.store.noneRecorded(t, 200*time.Millisecond)
	if calls.Load() != 3 {
		t.Fatalf("%d requests, want 3", calls.Load())
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var retryAfter atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", retryAfter.Load().(string))
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	f := start(t, nil) // backoff: a minute
	now := f.clock.Now()
	for i, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"120", 120 * time.Second},
		{now.Add(10 * time.Minute).Format(http.TimeFormat), 10 * time.Minute},
		{"999999", BackoffCap}, // capped
		{"5", time.Minute},     // the backoff is longer
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Minute}, // a past date
		{"soon", time.Minute}, // malformed
	} {
		retryAfter.Store(tc.header)
		id := fmt.Sprintf("dlv_%d", i)
		f.store.add(delivery(id, srv.URL))
		f.w.Notify()
		if got := f.store.waitRecorded(t); got != id {
			t.Fatalf("recorded %s, want %s", got, id)
		}
		d := f.store.get(id)
		if d.NextAttemptAt == nil || d.NextAttemptAt.Sub(now) != tc.want {
			t.Errorf("Retry-After %q: next attempt in %v, want %v", tc.header, d.NextAttemptAt.Sub(now), tc.want)
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		followed.Store(true)
		w.WriteHeader(http.StatusOK)
	}))
	defer target.Close()
	srv := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	// Even a client that would follow redirects does not.
	f := start(t, func(w *Worker) { w.HTTPClient = &http.Client{} })
	f.store.add(delivery("dlv_1", srv.URL))
	f.w.Notify()
	f.store.waitRecorded(t)
	d := f.store.get("dlv_1")
	if followed.Load() {
		t.Fatal("the redirect was followed")
	}
	if d.State != mobileapi.DeliveryPending || d.Attempts[0].StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("delivery %+v", d)
	}
}

func TestPrivateAddressRefused(t *testing.T) {
	var reached atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Store(true)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	f := start(t, func(w *Worker) { w.AllowPrivate = false })
	// A secret in the URL must not reach the delivery log.
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/hook?token=SECRET-TOKEN"
	f.store.add(delivery("dlv_1", url))
	f.w.Notify()
	f.store.waitRecorded(t)
	d := f.store.get("dlv_1")
	if reached.Load() {
		t.Fatal("the worker connected to a loopback address")
	}
	a := d.Attempts[0]
	if a.StatusCode != 0 || !strings.Contains(a.Error, "not public") || d.State != mobileapi.DeliveryPending {
		t.Fatalf("delivery %+v", d)
	}
	if strings.Contains(a.Error, "SECRET") || strings.Contains(a.Error, "localhost") {
		t.Fatalf("attempt error %q repeats the URL", a.Error)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	f := start(t, func(w *Worker) { w.RequestTimeout = 300 * time.Millisecond })
	f.store.add(delivery("dlv_1", srv.URL))
	f.w.Notify()
	f.store.waitRecorded(t)
	a := f.store.get("dlv_1").Attempts[0]
	if a.StatusCode != 0 || a.Error != "no response within 300ms" || a.Duration < 300*time.Millisecond || a.Duration > 5*time.Second {
		t.Fatalf("attempt %+v", a)
	}
}

func TestConnectionRefusedAndBadURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	closedURL := srv.URL
	srv.Close()
	f := start(t, nil)
	f.store.add(delivery("dlv_1", closedURL))
	f.store.add(delivery("dlv_2", "ftp://example.test/hook"))
	f.w.Notify()
	f.store.waitRecorded(t)
	f.store.waitRecorded(t)
	if a := f.store.get("dlv_1").Attempts[0]; a.Error != "connection refused" {
		t.Errorf("closed port: %+v", a)
	}
	if d := f.store.get("dlv_2"); d.State != mobileapi.DeliveryFailed || d.Attempts[0].Error == "" {
		t.Errorf("ftp URL: %+v", d)
	}
}

// A huge response body is not read to its end.
func TestResponseBodyBounded(t *testing.T) {
	var wrote atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 32<<10)
		for range 1 << 12 { // up to 128 MiB
			n, err := w.Write(chunk)
			wrote.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	f := start(t, nil)
	f.store.add(delivery("dlv_1", srv.URL))
	f.w.Notify()
	f.store.waitRecorded(t)
	if d := f.store.get("dlv_1"); d.State != mobileapi.DeliverySucceeded {
		t.Fatalf("delivery %+v", d)
	}
	time.Sleep(100 * time.Millisecond)
	if wrote.Load() > 64<<20 {
		t.Fatalf("the worker read %d bytes", wrote.Load())
	}
}

// Notify wakes a worker whose poll is far off.
func TestNotifyWakes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	defer srv.Close()
	f := start(t, func(w *Worker) { w.PollInterval = time.Hour })
	time.Sleep(50 * time.Millisecond) // the first claim found nothing
	f.store.add(delivery("dlv_1", srv.URL))
	f.w.Notify()
	f.store.waitRecorded(t)
}

// More due deliveries than slots: all are delivered, never more than
// Concurrency at once.
func TestConcurrency(t *testing.T) {
	var inFlight, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		inFlight.Add(-1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	c := &clock{t: time.Now()}
	st := newMemStore(c.Now)
	for i := range 20 {
		st.add(delivery(fmt.Sprintf("dlv_%02d", i), srv.URL))
	}
	f := start(t, func(w *Worker) { w.Store = st; w.Now = c.Now; w.Concurrency = 3 })
	_ = f
	for range 20 {
		st.waitRecorded(t)
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak concurrency %d, want 2..3", p)
	}
}

func TestRunNeedsStoreAndSigner(t *testing.T) {
	if err := (&Worker{}).Run(context.Background()); err == nil {
		t.Fatal("Run without a store ran")
	}
}

func TestFullJitterBounds(t *testing.T) {
	b := FullJitter(BackoffBase, BackoffCap)
	for n := 1; n <= 64; n++ {
		ceil := BackoffCap
		if n <= 20 {
			ceil = min(BackoffCap, BackoffBase<<(n-1))
		}
		var lo, hi time.Duration = time.Hour * 2, 0
		for range 2000 {
			d := b(n)
			if d < time.Second || d >= ceil && d != time.Second {
				t.Fatalf("retry %d waited %v, want [1s, %v)", n, d, ceil)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spreads over the whole range.
		if n >= 3 && (lo > ceil/10 || hi < ceil*9/10) {
			t.Errorf("retry %d: waits spread over [%v, %v] of [0, %v)", n, lo, hi, ceil)
		}
	}
	if d := b(0); d < time.Second || d > BackoffCap {
		t.Errorf("retry 0 waited %v", d)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"30":                            30 * time.Second,
		" 30 ":                          30 * time.Second,
		"-5":                            0,
		"3.5":                           0,
		"3600":                          time.Hour,
		"3601":                          time.Hour,
		"99999999999999999999":          0, // not an int64: malformed
		"9223372036854775807":           time.Hour,
		"Mon, 30 Nov 2026 09:02:00 GMT": 2 * time.Minute,
		"Mon, 30 Nov 2026 08:00:00 GMT": 0,
		"Mon, 30 Nov 2027 09:00:00 GMT": time.Hour,
		"tomorrow":                      0,
	} {
		if got := RetryAfter(v, now); got != want {
			t.Errorf("RetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "203.0.114.1": true, "2606:4700:4700::1111": true, "14.160.0.1": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false, "169.254.169.254": false,
		"100.64.0.1": false, "0.0.0.0": false, "255.255.255.255": false, "224.0.0.1": false, "192.0.2.1": false,
		"::1": false, "::": false, "fe80::1": false, "fd00::1": false, "fc00::1": false, "ff02::1": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "::ffff:8.8.8.8": true, "64:ff9b::a00:1": false,
		"2002:a00:1::": false, "2001:db8::1": false, "2001:0:4136:e378::1": false,
	} {
		if got := Public(netip.MustParseAddr(s)); got != want {
			t.Errorf("Public(%s) = %v, want %v", s, got, want)
		}
	}
}
