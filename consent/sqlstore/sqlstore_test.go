package sqlstore_test

import (
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
	"github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// backends opens a fresh database on each engine.
var backends = []struct {
	name string
	open func(t testing.TB) (*sql.DB, sqldb.Dialect)
}{
	{"sqlite", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.SQLite(t), sqldb.SQLite }},
	{"postgres", func(t testing.TB) (*sql.DB, sqldb.Dialect) { return dbtest.Postgres(t), sqldb.PostgreSQL }},
}

func migrated(t testing.TB, db *sql.DB, d sqldb.Dialect) *sqlstore.Store {
	t.Helper()
	s := sqlstore.New(db, d)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func open(t testing.TB, opener func(t testing.TB) (*sql.DB, sqldb.Dialect)) *sqlstore.Store {
	t.Helper()
	db, d := opener(t)
	return migrated(t, db, d)
}

func TestStore_Conformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			consenttest.Run(t, func(t *testing.T) consent.Store { return open(t, b.open) })
		})
	}
}

func TestStore_MigrateTwice(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.open)
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
		})
	}
}

// TestStore_TwoPools appends from two *sql.DB pools on one PostgreSQL
// schema, as two replicas would.
func TestStore_TwoPools(t *testing.T) {
	consenttest.RunTwoPools(t, func(t *testing.T) (consent.Store, consent.Store) {
		a, b := twoPools(t)
		return a, b
	})
}

// twoPools opens two stores, each with its own *sql.DB pool, on one fresh
// PostgreSQL schema: two replicas.
func twoPools(t *testing.T) (*sqlstore.Store, *sqlstore.Store) {
	t.Helper()
	dsn := dbtest.SchemaDSN(t)
	var stores []*sqlstore.Store
	for range 2 {
		db, err := postgres.Open(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		stores = append(stores, migrated(t, db, sqldb.PostgreSQL))
	}
	return stores[0], stores[1]
}

func TestStore_Audit(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			consenttest.RunAudit(t, func(t *testing.T) consenttest.AuditStores { return open(t, b.open) })
		})
	}
}

// TestStore_AuditTwoPools runs a checkpointer and writers on each of two
// pools on one PostgreSQL schema, as two replicas would.
func TestStore_AuditTwoPools(t *testing.T) {
	consenttest.RunAuditTwoPools(t, func(t *testing.T) (consenttest.AuditStores, consenttest.AuditStores) {
		a, b := twoPools(t)
		return a, b
	})
}

func TestStore_Service(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			consenttest.RunService(t, func(t *testing.T) consent.Store { return open(t, b.open) })
		})
	}
}

// TestStore_OutageIsUnavailable: a database that went away is
// ErrUnavailable from every method, never a driver error callers cannot
// classify.
func TestStore_OutageIsUnavailable(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, d := b.open(t)
			s := migrated(t, db, d)
			db.Close()
			ctx := t.Context()
			now := time.Now()
			sign := func(*consent.Record) (*consent.Receipt, error) { return &consent.Receipt{JWS: "x"}, nil }
			rec := &consent.Record{ID: "cns_1", CitizenID: "c", ClientID: "k", Purpose: consent.Purpose{Code: "p"}, Items: []string{"name"},
				Method: consent.MethodWebForm, ExpiresAt: now.Add(time.Hour)}
			calls := map[string]error{
				"PutRecord":   s.PutRecord(ctx, rec, sign),
				"Append":      s.Append(ctx, &consent.Entry{ID: "log_1", CitizenID: "c", At: now, Channel: consent.ChannelBroker, Outcome: consent.OutcomeReleased}),
				"PutBasis":    s.PutLegalBasis(ctx, &consent.LegalBasis{Agency: "A", Purpose: "p", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "L"}, consenttest.TestChange),
				"RevokeBasis": s.RevokeLegalBasis(ctx, "lb_1", consenttest.TestChange),
			}
			_, calls["GetRecord"] = s.GetRecord(ctx, "c", "cns_1")
			_, calls["LiveRecord"] = s.LiveRecord(ctx, "c", "k", "p")
			_, _, calls["ListRecords"] = s.ListRecords(ctx, consent.RecordQuery{CitizenID: "c"})
			_, calls["WithdrawRecord"] = s.WithdrawRecord(ctx, "c", "cns_1", now, sign)
			_, calls["Receipts"] = s.Receipts(ctx, "c", "cns_1")
			_, calls["GetReceipt"] = s.GetReceipt(ctx, "c", "rcpt_1")
			_, calls["LegalBases"] = s.LegalBases(ctx, "A", "")
			_, calls["AmendLegalBasis"] = s.AmendLegalBasis(ctx, "lb_1", []string{"name"}, "L", consenttest.TestChange)
			_, calls["AllLegalBases"] = s.AllLegalBases(ctx)
			_, calls["BasisTrail"] = s.BasisTrail(ctx, 0, 10)
			_, _, calls["ListEntries"] = s.ListEntries(ctx, consent.EntryQuery{CitizenID: "c"})
			_, calls["GetEntry"] = s.GetEntry(ctx, "c", "log_1")
			_, calls["FlagEntry"] = s.FlagEntry(ctx, "c", "log_1", "", now)
			_, calls["CommitHeads"] = s.CommitHeads(ctx, 10, func(*consent.Checkpoint, []consent.Head, func([]int64) ([][]byte, error)) (*consent.Commit, error) {
				return nil, errors.New("not reached")
			})
			_, calls["LastCheckpoint"] = s.LastCheckpoint(ctx)
			_, calls["Citizens"] = s.Citizens(ctx, "", 10)
			_, calls["Chain"] = s.Chain(ctx, "c", 0, 10)
			_, calls["ChainHead"] = s.ChainHead(ctx, "c")
			_, calls["Leaves"] = s.Leaves(ctx, 0, 10)
			for name, err := range calls {
				if !errors.Is(err, consent.ErrUnavailable) {
					t.Errorf("%s on a closed database: got %v, want ErrUnavailable", name, err)
				}
			}
		})
	}
}

func TestStore_Witness(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			consenttest.RunWitness(t, func(t *testing.T) consenttest.WitnessStores { return open(t, b.open) })
		})
	}
}
