package idptest

import (
	"database/sql"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// RunDeliveryMigrationTests checks that a back-channel logout queued before 0017 (in
// idp_logout_deliveries) is, after it, a backchannel_logout delivery of the
// one queue, claimed and recorded as before; and a final delivery keeps no
// secret.
func RunDeliveryMigrationTests(t *testing.T, newStore func(t *testing.T) (*sql.DB, StepMigrator)) {
	t.Run("LogoutQueuedBefore0017", func(t *testing.T) {
		db, s := newStore(t)
		ctx := t.Context()
		mustNil(t, s.MigrateTo(ctx, 16), "migrate to 0016")
		bclClient(t, s, "rp-old", "https://rp-old.example/bcl")
		now := time.Now().UnixMilli()
		_, err := db.ExecContext(ctx, `INSERT INTO idp_logout_deliveries (id, client_id, sid, subject, state, attempts, next_attempt_at,
			created_at, updated_at) VALUES ('bcl_old:rp-old', 'rp-old', 'sid-old', 'cit-old', 'pending', 2, $1, $1, $1)`, now)
		mustNil(t, err, "seed a logout before 0017")
		mustNil(t, s.Migrate(ctx), "migrate")
		q, ok := s.(idp.DeliveryStore)
		if !ok {
			t.Skip("the store has no delivery queue")
		}
		ds, err := q.ClaimDeliveries(ctx, "", 10, time.Minute)
		mustNil(t, err, "claim")
		if len(ds) != 1 || ds[0].Kind != idp.DeliveryBackchannelLogout || ds[0].SID != "sid-old" || ds[0].Subject != "cit-old" ||
			ds[0].Attempts != 2 || ds[0].URI != "https://rp-old.example/bcl" || ds[0].ExpiresAt != nil {
			t.Fatalf("claimed after 0017: %+v", ds)
		}
		mustNil(t, q.RecordDelivery(ctx, ds[0].ID, ds[0].LeaseID, idp.DeliveryAttempt{State: idp.DeliveryDelivered, StatusCode: 200, At: time.Now()}), "record")

		// A ping's secret is gone once it is final.
		mustNil(t, s.CreateClient(ctx, &idp.Client{ID: "counter", Name: "counter", GrantTypes: []string{idp.GrantTypeCIBA}, Scopes: []string{"openid"},
			AuthMethod: idp.AuthSecretBasic, SecretHash: []byte{1}, IDTokenAlg: "ES256", BackchannelTokenDeliveryMode: idp.CIBAModePing,
			BackchannelClientNotificationEndpoint: "https://counter.example/ciba"}), "create ping client")
		p := newPing("counter", "req-1", time.Now().Add(time.Minute))
		mustNil(t, q.EnqueueDelivery(ctx, p), "enqueue")
		mustNil(t, q.ReleaseDelivery(ctx, "counter", p.SID, time.Now()), "release")
		ds, err = q.ClaimDeliveries(ctx, "", 10, time.Minute)
		mustNil(t, err, "claim ping")
		if len(ds) != 1 {
			t.Fatalf("claimed %d, want the ping", len(ds))
		}
		mustNil(t, q.RecordDelivery(ctx, ds[0].ID, ds[0].LeaseID, idp.DeliveryAttempt{State: idp.DeliveryDead, StatusCode: 500, At: time.Now()}), "record dead")
		var secret string
		mustNil(t, db.QueryRowContext(ctx, `SELECT secret FROM idp_deliveries WHERE id = $1`, ds[0].ID).Scan(&secret), "read secret")
		if secret != "" {
			t.Error("a final delivery kept its notification token")
		}
	})
}
