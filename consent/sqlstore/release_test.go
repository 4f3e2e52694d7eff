package sqlstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
)

// testReceipt signs nothing: the store only keeps what it returns.
func testReceipt(r *consent.Record) (*consent.Receipt, error) {
	kind := consent.ReceiptGranted
	if r.WithdrawnAt != nil {
		kind = consent.ReceiptWithdrawn
	}
	return &consent.Receipt{ID: consent.NewID("rcpt"), Kind: kind, JWS: "jws." + r.ID + "." + string(kind)}, nil
}

// testRecord is cit_1's consent to his-app of BYT for kham-benh.
func testRecord(t *testing.T, s *sqlstore.Store, granted time.Time, items ...string) *consent.Record {
	t.Helper()
	granted = granted.UTC().Truncate(time.Millisecond)
	r := &consent.Record{ID: consent.NewID("cns"), CitizenID: "cit_1", ClientID: "his-app", Agency: "BYT", Recipient: "HIS",
		Purpose: consent.Purpose{Code: "kham-benh", Text: "Khám bệnh"}, Items: items, Basis: consent.BasisConsent, Notice: "v1",
		Method: consent.MethodEIDApp, Evidence: "e.e.e", GrantedAt: granted, UpdatedAt: granted, ExpiresAt: granted.Add(time.Hour)}
	if err := s.PutRecord(t.Context(), r, testReceipt); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAppendRelease_Refuses: the release check in the append's
// transaction refuses a release naming items its basis version does not
// cover, a consent release naming no consent, or a consent given to
// another client, agency or purpose, or expired by the store's clock
// (whatever time the caller put on the entry).
func TestAppendRelease_Refuses(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := t.Context()
			db, d := be.open(t)
			s := migrated(t, db, d)
			refused := func(name string, en *consent.Entry, want string) {
				t.Helper()
				var r *consent.RefusedError
				if err := s.AppendRelease(ctx, en); !errors.As(err, &r) || !strings.Contains(r.Missing[en.Items[0]], want) {
					t.Errorf("%s: got %v, want refused %q", name, err, want)
				}
			}

			b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L1"}
			if err := s.PutLegalBasis(ctx, b, consenttest.TestChange); err != nil {
				t.Fatal(err)
			}
			legal := func(items ...string) *consent.Entry {
				return &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_1", At: time.Now(), Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"},
					Channel: consent.ChannelBroker, Items: items, Purpose: "bao-hiem", Basis: consent.BasisPublicTask, Law: "L1",
					BasisID: b.ID, BasisVersion: 1, Outcome: consent.OutcomeReleased}
			}
			if err := s.AppendRelease(ctx, legal("name")); err != nil {
				t.Fatalf("covered release: %v", err)
			}
			refused("item outside the version", legal("birthdate", "name"), "does not cover it")

			rec := testRecord(t, s, time.Now(), "name")
			withConsent := func(mod func(en *consent.Entry)) *consent.Entry {
				en := &consent.Entry{ID: consent.NewID("log"), CitizenID: "cit_1", At: time.Now(), Actor: consent.Actor{Agency: "BYT", ClientID: "his-app"},
					Channel: consent.ChannelBroker, Items: []string{"name"}, Purpose: "kham-benh", Basis: consent.BasisConsent, ConsentID: rec.ID,
					Outcome: consent.OutcomeReleased}
				if mod != nil {
					mod(en)
				}
				return en
			}
			if err := s.AppendRelease(ctx, withConsent(nil)); err != nil {
				t.Fatalf("consented release: %v", err)
			}
			if err := s.AppendRelease(ctx, withConsent(func(en *consent.Entry) { en.ConsentID = "" })); !errors.Is(err, consent.ErrInvalid) {
				t.Errorf("consent release naming none: %v", err)
			}
			const other = "was not given to this client and agency for this purpose"
			refused("another client", withConsent(func(en *consent.Entry) { en.Actor.ClientID = "other-app" }), other)
			refused("another agency", withConsent(func(en *consent.Entry) { en.Actor.Agency = "BHXH" }), other)
			refused("another purpose", withConsent(func(en *consent.Entry) { en.Purpose = "quang-cao" }), other)
			refused("another citizen", withConsent(func(en *consent.Entry) { en.CitizenID = "cit_2" }), "does not exist")
			refused("an item not agreed", withConsent(func(en *consent.Entry) { en.Items = []string{"birthdate"} }), "no longer covers it")

			// Expired by the store's clock, though the entry claims a time
			// within the consent.
			late := sqlstore.New(db, d, sqlstore.WithNow(func() time.Time { return rec.ExpiresAt.Add(time.Minute) }))
			var r *consent.RefusedError
			if err := late.AppendRelease(ctx, withConsent(func(en *consent.Entry) { en.At = rec.GrantedAt })); !errors.As(err, &r) ||
				!strings.Contains(r.Missing["name"], "has expired") {
				t.Errorf("expired by the store's clock: %v", err)
			}
		})
	}
}
