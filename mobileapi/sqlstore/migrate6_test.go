package sqlstore

import (
	"database/sql"
	"reflect"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// Migration 0006 moves every webhook delivery onto push's job queue: a
// pending one stays pending (due when it was, its attempts and a claim in
// flight kept), final ones keep their state and log, a consent event its
// consent; no pending delivery is lost.
func TestMigration6DeliveriesOnTheJobQueue(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(t testing.TB) *sql.DB
		d    sqldb.Dialect
	}{
		{"sqlite", dbtest.SQLite, sqldb.SQLite},
		{"postgres", dbtest.Postgres, sqldb.PostgreSQL},
	} {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			db := b.open(t)
			migs, err := sqldb.LoadMigrations(migrationFS, "migrations/"+b.d.String())
			if err != nil {
				t.Fatal(err)
			}
			if err := (sqldb.Migrator{DB: db, Dialect: b.d, Table: "api_schema_migrations"}).Migrate(ctx, migs, 5); err != nil {
				t.Fatal(err)
			}
			const (
				t0      = int64(1_764_579_600_000) // 2025-12-01 09:00 UTC
				attempt = `[{"at":1764579601000,"status_code":503,"duration_ms":212}]`
				two     = `[{"at":1764579601000,"error":"connection refused","duration_ms":1000},{"at":1764579602000,"status_code":204,"duration_ms":48}]`
				cns     = `{"id":"cns_1","client_id":"portal","purpose":"kham-benh","receipt":"eyJ.x.y"}`
			)
			// The rows as the previous binary wrote them.
			for _, q := range []string{
				`INSERT INTO api_webhooks (id, agency_code, url, events, description, created_at) VALUES ('whk_1', 'T-AG', 'https://t-ag.example/hook', '[]', '', 0)`,
				`INSERT INTO api_webhook_deliveries (id, webhook_id, agency_code, event_id, event_type, application_id, service_id, service_code,
					occurred_at, state, attempts, next_attempt_at, claimed_until, created_at, consent) VALUES
					('dlv_pending', 'whk_1', 'T-AG', 'evt_1', 'submitted', 'app_1', 'svc_1', 'T.1', 1764579600000, 'pending', '` + attempt + `', 1764579660000, 0, 1764579600000, ''),
					('dlv_claimed', 'whk_1', 'T-AG', 'evt_2', 'withdrawn', 'app_1', 'svc_1', 'T.1', 1764579600001, 'pending', '[]', 1764579600001, 1764579720000, 1764579600001, ''),
					('dlv_done', 'whk_1', 'T-AG', 'evt_3', 'resubmitted', 'app_1', 'svc_1', 'T.1', 1764579600002, 'succeeded', '` + two + `', NULL, 0, 1764579600002, ''),
					('dlv_failed', 'whk_1', 'T-AG', 'evt_4', 'submitted', 'app_2', 'svc_1', 'T.1', 1764579600003, 'failed', '` + attempt + `', NULL, 0, 1764579600003, ''),
					('dlv_consent', 'whk_1', 'T-AG', 'evt_5', 'consent.withdrawn', '', '', '', 1764579600004, 'pending', '[]', 1764579600004, 0, 1764579600004, '` + cns + `')`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			now := sqldb.FromMS(t0).Add(90 * time.Second)
			clock := func() time.Time { return now }
			jobs := pushsql.New(db, b.d, pushsql.WithNow(clock))
			if err := jobs.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			s := New(db, b.d, WithNow(clock), WithJobs(jobs))
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.CheckSchema(ctx); err != nil {
				t.Fatal(err)
			}

			ds, _, err := s.ListDeliveries(ctx, "T-AG", "whk_1", mobileapi.Page{Limit: 50})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]*mobileapi.Delivery{}
			for _, d := range ds {
				got[d.ID] = d
			}
			if len(got) != 5 {
				t.Fatalf("after the migration %d deliveries, want 5", len(ds))
			}
			at := func(ms int64) time.Time { return sqldb.FromMS(ms) }
			p := got["dlv_pending"]
			wantEvent := mobileapi.Event{ID: "evt_1", Type: mobileapi.EventSubmitted, AgencyCode: "T-AG", ApplicationID: "app_1",
				ServiceID: "svc_1", ServiceCode: "T.1", OccurredAt: at(1764579600000)}
			if p.State != mobileapi.DeliveryPending || p.Event != wantEvent || p.URL != "https://t-ag.example/hook" || p.WebhookID != "whk_1" ||
				p.AgencyCode != "T-AG" || !p.CreatedAt.Equal(at(1764579600000)) || p.NextAttemptAt == nil || !p.NextAttemptAt.Equal(at(1764579660000)) ||
				!reflect.DeepEqual(p.Attempts, []mobileapi.Attempt{{At: at(1764579601000), StatusCode: 503, Duration: 212 * time.Millisecond}}) {
				t.Errorf("pending delivery = %+v, event %+v", p, p.Event)
			}
			if d := got["dlv_done"]; d.State != mobileapi.DeliverySucceeded || d.NextAttemptAt != nil || len(d.Attempts) != 2 ||
				d.Attempts[0].Error != "connection refused" || d.Attempts[1].StatusCode != 204 {
				t.Errorf("succeeded delivery = %+v", d)
			}
			if d := got["dlv_failed"]; d.State != mobileapi.DeliveryFailed || d.NextAttemptAt != nil || len(d.Attempts) != 1 {
				t.Errorf("failed delivery = %+v", d)
			}
			c := got["dlv_consent"]
			if want := (mobileapi.ConsentEvent{ID: "cns_1", ClientID: "portal", Purpose: "kham-benh", Receipt: "eyJ.x.y"}); c.Event.Type != mobileapi.EventConsentWithdrawn ||
				c.Event.Consent == nil || *c.Event.Consent != want || c.State != mobileapi.DeliveryPending {
				t.Errorf("consent delivery = %+v, consent %+v", c, c.Event.Consent)
			}

			// Due now: the two pending, but the claim a worker still holds
			// counts against the agency's cap, so the longest due alone.
			claim := func() []string {
				claimed, err := s.ClaimDeliveries(ctx, 10, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, d := range claimed {
					ids = append(ids, d.ID)
				}
				return ids
			}
			if ids := claim(); !reflect.DeepEqual(ids, []string{"dlv_consent"}) {
				t.Errorf("claimed %v, want dlv_consent alone (the agency's cap with a claim in flight)", ids)
			}
			if err := s.RecordAttempt(ctx, "dlv_consent", mobileapi.Attempt{At: now, StatusCode: 204}, mobileapi.DeliverySucceeded, nil); err != nil {
				t.Fatal(err)
			}
			if ids := claim(); !reflect.DeepEqual(ids, []string{"dlv_pending"}) {
				t.Errorf("claimed %v, want dlv_pending", ids)
			}
			next := now.Add(time.Minute)
			if err := s.RecordAttempt(ctx, "dlv_pending", mobileapi.Attempt{At: now, StatusCode: 503}, mobileapi.DeliveryPending, &next); err != nil {
				t.Fatal(err)
			}
			ds, _, _ = s.ListDeliveries(ctx, "T-AG", "whk_1", mobileapi.Page{Limit: 50})
			for _, d := range ds {
				if d.ID == "dlv_pending" && (d.State != mobileapi.DeliveryPending || len(d.Attempts) != 2 || !d.NextAttemptAt.Equal(next)) {
					t.Errorf("after an attempt on a migrated delivery: %+v", d)
				}
			}
		})
	}
}
