package sso_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/idp/sso"
)

// A registered ping client whose RFC 7592 update names a new notification
// endpoint goes back to review (idp.ReviewChanges); until an operator
// approves it, a ping for a request made before the update must not carry
// the client_notification_token to the endpoint no one has reviewed.
func TestWorker_PingNotSentToUnreviewedEndpoint(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		ctx := t.Context()
		reviewed, attacker := newPingRP(t), newPingRP(t)
		pingClient(t, s, "counter", reviewed.srv.URL+"/ciba")
		// Registered over HTTP and approved.
		if err := s.UpdateClient(ctx, "counter", func(c *idp.Client) error {
			c.Registration.TokenHash, c.Registration.Status = []byte{1}, idp.ClientActive
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		sid := idp.CIBAPingKey("h-req-1")
		expires := time.Now().Add(time.Minute)
		if err := s.EnqueueDelivery(ctx, &idp.Delivery{Kind: idp.DeliveryCIBAPing, ClientID: "counter", SID: sid, Payload: "req-1",
			Secret: "notify-req-1", ExpiresAt: &expires, State: idp.DeliveryHeld, NextAttemptAt: expires}); err != nil {
			t.Fatal(err)
		}
		// What registerUpdate stores for a PUT with a new endpoint.
		if err := s.UpdateClient(ctx, "counter", func(c *idp.Client) error {
			next := *c
			next.BackchannelClientNotificationEndpoint = attacker.srv.URL + "/ciba"
			if len(idp.ReviewChanges(c, &next)) == 0 {
				t.Fatal("a new notification endpoint is not reviewed")
			}
			next.Registration.Status = idp.ClientPending
			*c = next
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The citizen answers.
		if err := s.ReleaseDelivery(ctx, "counter", sid, time.Now()); err != nil {
			t.Fatal(err)
		}
		runWorker(t, &sso.Worker{Store: s, Keys: keys(t, s), Issuer: issuer, PollInterval: 20 * time.Millisecond, Backoff: noBackoff})
		waitFor(t, "a final state", func() bool {
			st := state(t, s, sid).State
			return st == idp.DeliveryDelivered || st == idp.DeliveryDead
		})
		if got, _, _ := attacker.seen(); len(got) > 0 {
			t.Errorf("the unreviewed endpoint received %d ping(s) with the client's bearer token", len(got))
		}
	})
}

// A ping-mode client whose notification endpoint hangs (slow, or an
// attacker's tarpit) must not hold back the back-channel logouts of other
// clients queued on the same worker: a logout is a security event (the
// citizen signed out, a device was revoked), a ping only a convenience
// the client can replace by polling.
func TestWorker_SlowPingEndpointDoesNotHoldBackLogouts(t *testing.T) {
	backends(t, func(t *testing.T, s, _ *sqlstore.Store) {
		km := keys(t, s)
		release := make(chan struct{})
		var inFlight atomic.Int32
		tarpit := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inFlight.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(tarpit.Close)
		pingClient(t, s, "slow-counter", tarpit.URL+"/ciba")
		for i := range sso.DefaultConcurrency {
			queuePing(t, s, "slow-counter", "req-"+strconv.Itoa(i), time.Now().Add(time.Minute))
		}
		rp := newRP(t, km, "rp")
		createClient(t, s, "rp", rp.srv.URL+"/bcl", "ES256")
		svc := sso.New(s, s, nil)
		w := &sso.Worker{Store: s, Keys: km, Issuer: issuer, PollInterval: 20 * time.Millisecond, RequestTimeout: time.Minute}
		svc.SetNotify(w.Notify)
		runWorker(t, w)
		t.Cleanup(func() { close(release) }) // runs before the worker's cleanup waits
		waitFor(t, "the pings in flight", func() bool { return inFlight.Load() == int32(sso.DefaultConcurrency) })
		endSession(t, svc, "s1", "rp")
		waitFor(t, "the logout while the pings hang", func() bool { return state(t, s, "s1").State == idp.DeliveryDelivered })
	})
}
