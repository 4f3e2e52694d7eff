package sqlstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	idpsqlstore "github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/sqlstore"
	"github.com/onedoor/onedoor/mobileapi/webhook"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/queue"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// clock is the tests' time, shared by the stores and the workers.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// queueEnv is the mobile API's store on push's job queue, one database.
type queueEnv struct {
	db   *sql.DB
	d    sqldb.Dialect
	api  *sqlstore.Store
	jobs *pushsql.Store
	c    *clock
}

func openQueueEnv(t *testing.T, opener func(t testing.TB) (*sql.DB, sqldb.Dialect)) *queueEnv {
	t.Helper()
	db, d := opener(t)
	c := newClock()
	if err := idpsqlstore.New(db, d).Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	jobs := pushsql.New(db, d, pushsql.WithNow(c.now))
	if err := jobs.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	api := sqlstore.New(db, d, sqlstore.WithNow(c.now), sqlstore.WithJobs(jobs), sqlstore.WithOutbox(jobs))
	if err := api.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return &queueEnv{db: db, d: d, api: api, jobs: jobs, c: c}
}

// consentEvent queues one consent.withdrawn delivery per subscribed hook
// of the agency, in a transaction of its own.
func (e *queueEnv) consentEvent(t *testing.T, agency, consentID string) {
	t.Helper()
	err := sqldb.InTx(t.Context(), e.db, e.d, "test", func(q sqldb.Querier) error {
		_, err := e.api.EnqueueConsentWithdrawn(t.Context(), q, agency, mobileapi.ConsentEvent{ID: consentID, ClientID: "portal",
			Purpose: "kham-benh", Receipt: "eyJhbGciOiJFUzI1NiJ9.test.sig"}, e.c.now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *queueEnv) webhook(t *testing.T, agency, url string) *mobileapi.Webhook {
	t.Helper()
	w := &mobileapi.Webhook{AgencyCode: agency, URL: url, Events: []mobileapi.EventType{mobileapi.EventConsentWithdrawn}}
	if err := e.api.CreateWebhook(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	return w
}

// testSigner signs nothing: these tests are about the queue, the
// signature has its own (mobileapi/webhook).
type testSigner struct{}

func (testSigner) Sign(context.Context, []byte, map[string]any) (string, error) {
	return "test..sig", nil
}

// runWorker runs w until the test ends or stop is called; stop waits for
// Run to return.
func runWorker(t *testing.T, w *webhook.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("the worker did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func worker(store webhook.Store, c *clock, mod func(w *webhook.Worker)) *webhook.Worker {
	w := &webhook.Worker{Store: store, Signer: testSigner{}, AllowPrivate: true, Now: c.now, PollInterval: 10 * time.Millisecond,
		Backoff: func(int) time.Duration { return time.Minute }, Logger: slog.New(slog.DiscardHandler)}
	if mod != nil {
		mod(w)
	}
	return w
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *queueEnv) deliveries(t *testing.T, w *mobileapi.Webhook) []*mobileapi.Delivery {
	t.Helper()
	ds, _, err := e.api.ListDeliveries(t.Context(), w.AgencyCode, w.ID, mobileapi.Page{Limit: mobileapi.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// dyingStore is a worker's store in a process that dies after sending:
// claims reach the database, outcomes never do.
type dyingStore struct{ webhook.Store }

func (dyingStore) RecordClaimedAttempt(context.Context, string, string, mobileapi.Attempt, mobileapi.DeliveryState, *time.Time) error {
	return errors.New("the process died before recording")
}

// A worker killed mid-batch (its deliveries sent, no outcome recorded)
// loses nothing: once its lease passes another worker on the same database
// delivers every event, those the first sent a second time with the same
// event id, so the agency drops the duplicates.
func TestWebhookQueue_SurvivesAWorkerKilledMidBatch(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := openQueueEnv(t, b.open)
			var (
				mu   sync.Mutex
				seen = map[string]int{} // event id -> requests
			)
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				var ev webhook.Event
				if err := json.Unmarshal(body, &ev); err != nil || ev.ID != r.Header.Get(webhook.HeaderEventID) {
					t.Errorf("delivery %s: %v", body, err)
				}
				mu.Lock()
				seen[ev.ID]++
				mu.Unlock()
				w.WriteHeader(http.StatusNoContent)
			}))
			defer recv.Close()
			hook := e.webhook(t, "BOYTE", recv.URL+"/hook")
			const events = 5
			for i := range events {
				e.consentEvent(t, "BOYTE", "cns_"+string(rune('a'+i)))
			}
			sent := func() int {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, c := range seen {
					n += c
				}
				return n
			}

			stopA := runWorker(t, worker(dyingStore{e.api}, e.c, nil))
			waitUntil(t, "the first worker's batch", func() bool { return sent() >= mobileapi.ClaimsPerAgency })
			stopA()
			first := sent()
			for _, d := range e.deliveries(t, hook) {
				if d.State != mobileapi.DeliveryPending || len(d.Attempts) != 0 {
					t.Fatalf("after the crash delivery %s is %s with %d attempts, want pending with none", d.ID, d.State, len(d.Attempts))
				}
			}

			e.c.advance(5 * time.Minute) // the dead worker's lease passes
			runWorker(t, worker(e.api, e.c, nil))
			waitUntil(t, "every delivery succeeded", func() bool {
				for _, d := range e.deliveries(t, hook) {
					if d.State != mobileapi.DeliverySucceeded {
						return false
					}
				}
				return true
			})
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != events {
				t.Errorf("the receiver saw %d distinct events, want %d", len(seen), events)
			}
			dup := 0
			for _, n := range seen {
				dup += n - 1
			}
			if dup != first {
				t.Errorf("%d duplicates, want the %d the dead worker sent", dup, first)
			}
		})
	}
}

// A 429 or 503 with Retry-After delays the next attempt by what the
// endpoint asked, beyond the backoff; the delivery log shows it.
func TestWebhookQueue_RetryAfterDelaysTheNextAttempt(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := openQueueEnv(t, b.open)
			var calls atomic.Int32
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				switch calls.Add(1) {
				case 1:
					w.Header().Set("Retry-After", "120")
					w.WriteHeader(http.StatusTooManyRequests)
				case 2:
					w.Header().Set("Retry-After", e.c.now().Add(10*time.Minute).Format(http.TimeFormat))
					w.WriteHeader(http.StatusServiceUnavailable)
				default:
					w.WriteHeader(http.StatusOK)
				}
			}))
			defer recv.Close()
			hook := e.webhook(t, "BOYTE", recv.URL)
			e.consentEvent(t, "BOYTE", "cns_a")
			runWorker(t, worker(e.api, e.c, func(w *webhook.Worker) { w.Backoff = func(int) time.Duration { return time.Second } }))

			waitUntil(t, "the first attempt", func() bool { return len(e.deliveries(t, hook)[0].Attempts) == 1 })
			d := e.deliveries(t, hook)[0]
			if want := e.c.now().Add(120 * time.Second); d.State != mobileapi.DeliveryPending || d.Attempts[0].StatusCode != 429 ||
				d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(want) {
				t.Fatalf("after a 429 with Retry-After: 120: %+v (next %v), want pending until %v", d, d.NextAttemptAt, want)
			}
			e.c.advance(119 * time.Second)
			time.Sleep(100 * time.Millisecond) // ten polls
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d attempts before Retry-After passed", n)
			}
			e.c.advance(time.Second)
			waitUntil(t, "the second attempt", func() bool { return len(e.deliveries(t, hook)[0].Attempts) == 2 })
			d = e.deliveries(t, hook)[0]
			if want := e.c.now().Add(10 * time.Minute); d.Attempts[1].StatusCode != 503 || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(want) {
				t.Fatalf("after a 503 with an HTTP-date Retry-After: next %v, want %v", d.NextAttemptAt, want)
			}
			e.c.advance(10 * time.Minute)
			waitUntil(t, "success", func() bool { return e.deliveries(t, hook)[0].State == mobileapi.DeliverySucceeded })
		})
	}
}

// After MaxAttempts failed attempts a delivery is dead: failed in the
// agency's delivery view, with every attempt, never claimed again.
func TestWebhookQueue_DeadLetterInTheDeliveryView(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := openQueueEnv(t, b.open)
			var calls atomic.Int32
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				http.Error(w, "broken", http.StatusInternalServerError)
			}))
			defer recv.Close()
			hook := e.webhook(t, "BOYTE", recv.URL)
			e.consentEvent(t, "BOYTE", "cns_a")
			runWorker(t, worker(e.api, e.c, func(w *webhook.Worker) {
				w.MaxAttempts = 3
				w.Backoff = func(int) time.Duration { return 0 } // due at once: the clock stands still
			}))
			waitUntil(t, "the delivery to die", func() bool { return e.deliveries(t, hook)[0].State == mobileapi.DeliveryFailed })
			d := e.deliveries(t, hook)[0]
			if len(d.Attempts) != 3 || d.NextAttemptAt != nil || d.Attempts[2].StatusCode != 500 {
				t.Errorf("dead delivery = %+v, want failed after 3 attempts of 500 and no next", d)
			}
			e.c.advance(24 * time.Hour)
			time.Sleep(100 * time.Millisecond)
			if n := calls.Load(); n != 3 {
				t.Errorf("%d requests, want 3: a dead delivery was tried again", n)
			}
		})
	}
}

// A decision that causes a webhook delivery and a push enqueues both in
// its one transaction: a failure after both were written leaves neither.
func TestWebhookQueue_WebhookAndPushCommitTogether(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := openQueueEnv(t, b.open)
			hook := e.webhook(t, "BOYTE", "https://boyte.example/hook")
			decide := func(fail bool) error {
				return sqldb.InTx(t.Context(), e.db, e.d, "withdraw", func(q sqldb.Querier) error {
					if _, err := e.api.EnqueueConsentWithdrawn(t.Context(), q, "BOYTE", mobileapi.ConsentEvent{ID: "cns_a", ClientID: "portal",
						Purpose: "kham-benh", Receipt: "eyJhbGciOiJFUzI1NiJ9.test.sig"}, e.c.now()); err != nil {
						return err
					}
					if err := e.jobs.EnqueueTx(t.Context(), q, &push.Message{CitizenID: "cit-1", Kind: push.KindNotice,
						Title: push.Text{VI: "Đã rút đồng ý", EN: "Consent withdrawn"}}); err != nil {
						return err
					}
					if fail {
						return errors.New("the decision failed after queueing")
					}
					return nil
				})
			}
			pushes := func() int {
				ms, err := e.jobs.MessagesAfter(t.Context(), "cit-1", 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				return len(ms)
			}
			if err := decide(true); err == nil {
				t.Fatal("the failing decision committed")
			}
			if n, p := len(e.deliveries(t, hook)), pushes(); n != 0 || p != 0 {
				t.Fatalf("after a rolled back decision: %d deliveries and %d pushes, want none", n, p)
			}
			if err := decide(false); err != nil {
				t.Fatal(err)
			}
			if n, p := len(e.deliveries(t, hook)), pushes(); n != 1 || p != 1 {
				t.Fatalf("after the decision: %d deliveries and %d pushes, want one of each", n, p)
			}
		})
	}
}

// A worker whose claim lapsed (it was slow, another worker claimed the
// delivery) records nothing: its late outcome cannot overwrite the one
// that now holds the delivery.
func TestWebhookQueue_LapsedClaimRecordsNothing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := openQueueEnv(t, b.open)
			w := e.webhook(t, "AG-1", "https://agency.example.test/hook")
			e.consentEvent(t, "AG-1", "cns_1")
			ctx := t.Context()
			first, err := e.api.ClaimDeliveries(ctx, 10, time.Minute)
			if err != nil || len(first) != 1 || first[0].Claim == "" {
				t.Fatalf("claim: %+v, %v", first, err)
			}
			e.c.advance(2 * time.Minute)
			second, err := e.api.ClaimDeliveries(ctx, 10, time.Minute)
			if err != nil || len(second) != 1 || second[0].Claim == first[0].Claim {
				t.Fatalf("claim after the lease: %+v, %v", second, err)
			}
			late := e.api.RecordClaimedAttempt(ctx, first[0].ID, first[0].Claim, mobileapi.Attempt{At: e.c.now(), StatusCode: 410},
				mobileapi.DeliveryFailed, nil)
			if !errors.Is(late, idp.ErrConflict) {
				t.Fatalf("the lapsed claim's outcome: %v, want ErrConflict", late)
			}
			if err := e.api.RecordClaimedAttempt(ctx, second[0].ID, second[0].Claim, mobileapi.Attempt{At: e.c.now(), StatusCode: 204},
				mobileapi.DeliverySucceeded, nil); err != nil {
				t.Fatal(err)
			}
			ds := e.deliveries(t, w)
			if len(ds) != 1 || ds[0].State != mobileapi.DeliverySucceeded || len(ds[0].Attempts) != 1 || ds[0].Attempts[0].StatusCode != 204 {
				t.Errorf("delivery = %+v, want succeeded with the live claim's attempt alone", ds)
			}
		})
	}
}

// One delivery whose stored payload does not decode is made dead with why
// by the claim that finds it; the others in the batch are still claimed.
// A listed delivery shows no worker's claim.
func TestWebhookQueue_UndecodablePayloadIsDead(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := openQueueEnv(t, b.open)
			ctx := t.Context()
			hook := e.webhook(t, "BOYTE", "https://example.invalid/hook")
			e.consentEvent(t, "BOYTE", "cns_a")
			e.consentEvent(t, "BOYTE", "cns_b")
			ds := e.deliveries(t, hook)
			if len(ds) != 2 {
				t.Fatalf("%d deliveries, want 2", len(ds))
			}
			bad, good := ds[0].ID, ds[1].ID
			if _, err := e.db.ExecContext(ctx, `UPDATE push_jobs SET payload = '{not json' WHERE id = $1`, bad); err != nil {
				t.Fatal(err)
			}
			claimed, err := e.api.ClaimDeliveries(ctx, 10, time.Minute)
			if err != nil || len(claimed) != 1 || claimed[0].ID != good || claimed[0].Claim == "" {
				t.Fatalf("claimed %+v, %v; want only %s under a claim", claimed, err, good)
			}
			j, err := e.jobs.GetJob(ctx, bad)
			if err != nil || j.State != queue.StateDead || len(j.Attempts) != 1 || !strings.Contains(j.Attempts[0].Error, "payload cannot be read") {
				t.Errorf("the undecodable delivery = %+v, %v; want dead with why", j, err)
			}
			if _, err := e.db.ExecContext(ctx, `DELETE FROM push_jobs WHERE id = $1`, bad); err != nil {
				t.Fatal(err)
			}
			if ds := e.deliveries(t, hook); len(ds) != 1 || ds[0].Claim != "" {
				t.Errorf("listed %+v; want the claimed delivery without its claim", ds)
			}
		})
	}
}
