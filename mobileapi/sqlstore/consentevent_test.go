package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	consentsql "github.com/onedoor/onedoor/consent/sqlstore"
	idpsqlstore "github.com/onedoor/onedoor/idp/sqlstore"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/sqlstore"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// TestConsentWithdrawn_DeliveriesCommitWithTheWithdrawal checks the
// consent store's withdraw hook wired to EnqueueConsentWithdrawn, as
// cmd/onedoor wires it: a withdrawal queues one consent.withdrawn delivery
// per webhook of the recipient's agency that names the event (not those
// subscribed to "all", which means the application events), nothing in
// the lease queue, nothing for an agency without such a webhook or a
// record without an agency, and a failing hook undoes the withdrawal.
func TestConsentWithdrawn_DeliveriesCommitWithTheWithdrawal(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := b.open(t)
			if err := idpsqlstore.New(db, d).Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			jobs := pushsql.New(db, d)
			if err := jobs.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			api := sqlstore.New(db, d, sqlstore.WithJobs(jobs))
			if err := api.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			hook := func(ctx context.Context, q sqldb.Querier, rec *consent.Record, rc *consent.Receipt) error {
				_, err := api.EnqueueConsentWithdrawn(ctx, q, rec.Agency,
					mobileapi.ConsentEvent{ID: rec.ID, ClientID: rec.ClientID, Purpose: rec.Purpose.Code, Receipt: rc.JWS}, *rec.WithdrawnAt)
				return err
			}
			woken := 0
			cs := consentsql.New(db, d, consentsql.WithWithdrawHook(hook, func() { woken++ }))
			if err := cs.Migrate(ctx); err != nil {
				t.Fatal(err)
			}

			named := &mobileapi.Webhook{AgencyCode: "BOYTE", URL: "https://boyte.example/named", Events: []mobileapi.EventType{mobileapi.EventConsentWithdrawn}}
			all := &mobileapi.Webhook{AgencyCode: "BOYTE", URL: "https://boyte.example/all"}
			apps := &mobileapi.Webhook{AgencyCode: "BOYTE", URL: "https://boyte.example/apps", Events: []mobileapi.EventType{mobileapi.EventSubmitted}}
			other := &mobileapi.Webhook{AgencyCode: "OTHER", URL: "https://other.example/named", Events: []mobileapi.EventType{mobileapi.EventConsentWithdrawn}}
			for _, w := range []*mobileapi.Webhook{named, all, apps, other} {
				if err := api.CreateWebhook(ctx, w); err != nil {
					t.Fatal(err)
				}
			}

			r := grant(t, cs, "BOYTE")
			at := time.Now().UTC().Truncate(time.Millisecond)
			if _, err := cs.WithdrawRecord(ctx, "cit-1", r.ID, at, sign); err != nil {
				t.Fatal(err)
			}
			if woken != 1 {
				t.Errorf("the committed callback ran %d times, want 1", woken)
			}
			rcs, err := cs.Receipts(ctx, "cit-1", r.ID)
			if err != nil || len(rcs) != 2 || rcs[1].Kind != consent.ReceiptWithdrawn {
				t.Fatalf("receipts = %+v, %v", rcs, err)
			}
			ds := deliveries(t, api, named)
			if len(ds) != 1 {
				t.Fatalf("deliveries to the subscribed webhook: %d, want 1", len(ds))
			}
			e := ds[0].Event
			want := mobileapi.ConsentEvent{ID: r.ID, ClientID: "portal", Purpose: "kham-benh", Receipt: rcs[1].JWS}
			if e.Type != mobileapi.EventConsentWithdrawn || e.AgencyCode != "BOYTE" || e.ID == "" || !e.OccurredAt.Equal(at) ||
				e.ApplicationID != "" || e.Consent == nil || *e.Consent != want || ds[0].State != mobileapi.DeliveryPending {
				t.Errorf("delivery = %+v, consent %+v", ds[0], e.Consent)
			}
			for _, w := range []*mobileapi.Webhook{all, apps, other} {
				if n := len(deliveries(t, api, w)); n != 0 {
					t.Errorf("webhook %s (events %v, agency %s) got %d deliveries", w.URL, w.Events, w.AgencyCode, n)
				}
			}
			if ls, err := api.Lease(ctx, "BOYTE", 10, time.Minute); err != nil || len(ls) != 0 {
				t.Errorf("lease queue = %d events, %v; want none", len(ls), err)
			}
			claimed, err := api.ClaimDeliveries(ctx, 10, time.Minute)
			if err != nil || len(claimed) != 1 || claimed[0].Event.Consent == nil || *claimed[0].Event.Consent != want {
				t.Fatalf("claimed = %+v, %v", claimed, err)
			}

			// No subscribed webhook, or no agency: the withdrawal alone.
			before := countDeliveries(t, db)
			for _, agency := range []string{"NOHOOKS", ""} {
				r := grant(t, cs, agency)
				if _, err := cs.WithdrawRecord(ctx, "cit-1", r.ID, time.Time{}, sign); err != nil {
					t.Fatalf("agency %q: %v", agency, err)
				}
			}
			if n := countDeliveries(t, db); n != before {
				t.Errorf("deliveries after withdrawals with no subscriber: %d, want %d", n, before)
			}

			// A failing hook rolls the withdrawal (and its receipt and deliveries) back.
			failing := consentsql.New(db, d, consentsql.WithWithdrawHook(func(ctx context.Context, q sqldb.Querier, rec *consent.Record, rc *consent.Receipt) error {
				if err := hook(ctx, q, rec, rc); err != nil {
					return err
				}
				return errors.New("webhook queue unavailable")
			}, func() { t.Error("the committed callback ran for a failed withdrawal") }))
			r2 := grant(t, cs, "BOYTE")
			if _, err := failing.WithdrawRecord(ctx, "cit-1", r2.ID, time.Time{}, sign); err == nil {
				t.Fatal("the withdrawal succeeded though its notification could not be queued")
			}
			if got, err := cs.GetRecord(ctx, "cit-1", r2.ID); err != nil || got.WithdrawnAt != nil {
				t.Fatalf("record after the failed withdrawal: %+v, %v", got, err)
			}
			if rcs, err := cs.Receipts(ctx, "cit-1", r2.ID); err != nil || len(rcs) != 1 {
				t.Fatalf("receipts after the failed withdrawal: %d, %v", len(rcs), err)
			}
			if n := countDeliveries(t, db); n != before {
				t.Errorf("deliveries after the failed withdrawal: %d, want %d", n, before)
			}
			// And the record can still be withdrawn, notifying the agency.
			if _, err := cs.WithdrawRecord(ctx, "cit-1", r2.ID, time.Time{}, sign); err != nil {
				t.Fatal(err)
			}
			if n := len(deliveries(t, api, named)); n != 2 {
				t.Errorf("deliveries to the subscribed webhook: %d, want 2", n)
			}
		})
	}
}

func sign(r *consent.Record) (*consent.Receipt, error) {
	return &consent.Receipt{JWS: "eyJhbGciOiJFUzI1NiJ9." + r.ID + "." + time.Now().Format("150405.000000000")}, nil
}

func grant(t *testing.T, cs *consentsql.Store, agency string) *consent.Record {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	r := &consent.Record{ID: consent.NewID("cns"), CitizenID: "cit-1", ClientID: "portal", Agency: agency, Recipient: "Cổng",
		Purpose: consent.Purpose{Code: "kham-benh", Text: "Khám bệnh"}, Items: []string{"name"}, Basis: consent.BasisConsent,
		Notice: "v1", Method: consent.MethodEIDApp, Evidence: "eyJhbGciOiJFUzI1NiJ9.e.s",
		GrantedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if agency == "NOHOOKS" || agency == "" {
		// A distinct purpose: one live record per citizen, client and purpose.
		r.Purpose.Code = "p-" + agency
	}
	if err := cs.PutRecord(t.Context(), r, sign); err != nil {
		t.Fatal(err)
	}
	return r
}

func deliveries(t *testing.T, api *sqlstore.Store, w *mobileapi.Webhook) []*mobileapi.Delivery {
	t.Helper()
	ds, _, err := api.ListDeliveries(t.Context(), w.AgencyCode, w.ID, mobileapi.Page{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func countDeliveries(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM push_jobs WHERE kind = 'webhook'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
