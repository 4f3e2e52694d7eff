package sso_test

import (
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
