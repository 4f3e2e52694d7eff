package sso_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/idp/sso"
)

// pingRP is a CIBA client's notification endpoint: it records each ping's
// auth_req_id with when it came, and answers with status(n).
type pingRP struct {
	srv    *httptest.Server
	status func(n int, w http.ResponseWriter) int
	mu     sync.Mutex
	got    []string
	at     []time.Time
	bad    []string
}

func newPingRP(t *testing.T) *pingRP {
	p := &pingRP{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			AuthReqID string `json:"auth_req_id"`
		}
		err := json.NewDecoder(r.Body).Decode(&b)
		p.mu.Lock()
		n := len(p.got) + 1
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			r.Header.Get("Authorization") != "Bearer notify-"+b.AuthReqID {
			p.bad = append(p.bad, fmt.Sprintf("%s %q %q %v", r.Method, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), err))
		}
		p.got, p.at = append(p.got, b.AuthReqID), append(p.at, time.Now())
		p.mu.Unlock()
		code := http.StatusNoContent
		if p.status != nil {
			code = p.status(n, w)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pingRP) seen() ([]string, []time.Time, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...), append([]time.Time(nil), p.at...), append([]string(nil), p.bad...)
}

func pingClient(t *testing.T, s *sqlstore.Store, id, endpoint string) {
	t.Helper()
	c := &idp.Client{ID: id, Name: id, GrantTypes: []string{idp.GrantTypeCIBA}, Scopes: []string{"openid"},
		AuthMethod: idp.AuthSecretBasic, SecretHash: []byte{1}, IDTokenAlg: "ES256",
		BackchannelTokenDeliveryMode: idp.CIBAModePing, BackchannelClientNotificationEndpoint: endpoint}
	if err := s.CreateClient(t.Context(), c); err != nil {
		t.Fatal(err)
	}
}

// queuePing queues and releases the ping of authReqID, as bc-authorize and
// the citizen's answer do.
func queuePing(t *testing.T, s *sqlstore.Store, client, authReqID string, expires time.Time) string {
	t.Helper()
	sid := idp.CIBAPingKey("h-" + authReqID)
	if err := s.EnqueueDelivery(t.Context(), &idp.Delivery{Kind: idp.DeliveryCIBAPing, ClientID: client, SID: sid, Payload: authReqID,
		Secret: "notify-" + authReqID, ExpiresAt: &expires, State: idp.DeliveryHeld, NextAttemptAt: expires}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseDelivery(t.Context(), client, sid, time.Now()); err != nil {
		t.Fatal(err)
	}
	return sid
}

// A 503 with Retry-After is retried no sooner than it asks, then delivered;
// the bearer token goes with every attempt.
func TestWorker_PingRetryAfterThenDelivers(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		rp := newPingRP(t)
		rp.status = func(n int, w http.ResponseWriter) int {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				return http.StatusServiceUnavailable
			}
			return http.StatusNoContent
		}
		pingClient(t, s, "counter", rp.srv.URL+"/ciba")
		sid := queuePing(t, s, "counter", "req-1", time.Now().Add(time.Minute))
		runWorker(t, &sso.Worker{Store: s, Keys: keys(t, s), Issuer: issuer, PollInterval: 20 * time.Millisecond, Backoff: noBackoff})
		waitFor(t, "delivery", func() bool { return state(t, s, sid).State == idp.DeliveryDelivered })
		got, at, bad := rp.seen()
		if len(got) != 2 || got[0] != "req-1" || got[1] != "req-1" || len(bad) > 0 {
			t.Fatalf("pings %v (problems %v), want req-1 twice", got, bad)
		}
		if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
			t.Errorf("retried %v after a 503 with Retry-After: 1", gap)
		}
		if d := state(t, s, sid); d.Attempts != 2 || d.LastStatus != http.StatusNoContent {
			t.Errorf("delivery %+v", d)
		}
	})
}

// An endpoint down until the request expires: the worker gives up at the
// expiry, well before MaxAttempts, and sends nothing after it.
func TestWorker_PingGivesUpAtExpiry(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		rp := newPingRP(t)
		rp.status = func(int, http.ResponseWriter) int { return http.StatusBadGateway }
		pingClient(t, s, "counter", rp.srv.URL+"/ciba")
		expires := time.Now().Add(1500 * time.Millisecond)
		sid := queuePing(t, s, "counter", "req-1", expires)
		runWorker(t, &sso.Worker{Store: s, Keys: keys(t, s), Issuer: issuer, PollInterval: 20 * time.Millisecond,
			Backoff: func(int) time.Duration { return 200 * time.Millisecond }, MaxAttempts: 100})
		waitFor(t, "given up", func() bool { return state(t, s, sid).State == idp.DeliveryDead })
		n := len(func() []string { g, _, _ := rp.seen(); return g }())
		time.Sleep(300 * time.Millisecond)
		got, at, _ := rp.seen()
		if len(got) != n || n < 2 || n >= 100 {
			t.Errorf("%d attempts (then %d); want a few, none after giving up", n, len(got))
		}
		if last := at[len(at)-1]; !last.Before(expires) {
			t.Errorf("an attempt at %v, after the expiry %v", last, expires)
		}
		if d := state(t, s, sid); d.LastStatus != http.StatusBadGateway || d.LastError == "" {
			t.Errorf("dead delivery %+v", d)
		}
	})
}

// Two replicas' workers share the pings: each is sent once.
func TestWorker_PingTwoReplicasDeliverOnce(t *testing.T) {
	backends(t, func(t *testing.T, a, b *sqlstore.Store) {
		rp := newPingRP(t)
		rp.status = func(int, http.ResponseWriter) int { time.Sleep(30 * time.Millisecond); return http.StatusNoContent }
		pingClient(t, a, "counter", rp.srv.URL+"/ciba")
		const n = 12
		sids := make([]string, n)
		for i := range n {
			sids[i] = queuePing(t, a, "counter", "req-"+strconv.Itoa(i), time.Now().Add(time.Minute))
		}
		for _, s := range []*sqlstore.Store{a, b} {
			runWorker(t, &sso.Worker{Store: s, Keys: keys(t, s), Issuer: issuer, PollInterval: 10 * time.Millisecond, Concurrency: 2})
		}
		waitFor(t, "all pings", func() bool {
			for _, sid := range sids {
				if state(t, a, sid).State != idp.DeliveryDelivered {
					return false
				}
			}
			return true
		})
		got, _, bad := rp.seen()
		seen := map[string]int{}
		for _, id := range got {
			seen[id]++
		}
		if len(got) != n || len(seen) != n || len(bad) > 0 {
			t.Errorf("%d pings for %d requests (problems %v); want each of %d once", len(got), len(seen), bad, n)
		}
	})
}
