package sqlstore_test

import (
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/mobileapitest"
	"github.com/onedoor/onedoor/mobileapi/sqlstore"
)

func TestCatalog(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			mobileapitest.RunCatalog(t, func(t *testing.T) mobileapitest.AgencyCatalog { return open(t, b.open) })
		})
	}
}

// TestCatalogVersionOutsideTheStore checks that the counter sees writes the
// store does not make (a seed run by another process, an operator's SQL):
// the triggers bump it, not the Go code.
func TestCatalogVersionOutsideTheStore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, d := b.open(t)
			s := open(t, func(testing.TB) (*sql.DB, sqldb.Dialect) { return db, d })
			ctx := t.Context()
			v0, err := s.CatalogVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO api_agencies (code, name_vi, name_en, parent_code, province_code, created_at)
				VALUES ('BTP', 'Bộ Tư pháp', 'Ministry of Justice', NULL, '', 0)`); err != nil {
				t.Fatal(err)
			}
			v1, err := s.CatalogVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v1 == v0 {
				t.Error("an agency inserted by SQL left CatalogVersion unchanged")
			}
			svc := &mobileapi.Service{Code: "1.001193", Name: mobileapi.Text{VI: "Đăng ký khai sinh"}, AgencyCode: "BTP"}
			if _, err := s.PutService(ctx, svc, 0); err != nil {
				t.Fatal(err)
			}
			v2, _ := s.CatalogVersion(ctx)
			if _, err := db.ExecContext(ctx, `UPDATE api_service_versions SET name_en = 'Birth registration'`); err != nil {
				t.Fatal(err)
			}
			v3, err := s.CatalogVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if v3 == v2 {
				t.Error("a service version updated by SQL left CatalogVersion unchanged")
			}
		})
	}
}

// TestCatalogVersionAcrossReplicas: a write through one Store is seen by
// another over the same database, as by another replica.
func TestCatalogVersionAcrossReplicas(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			db, d := b.open(t)
			a := open(t, func(testing.TB) (*sql.DB, sqldb.Dialect) { return db, d })
			replica := sqlstore.New(db, d)
			ctx := t.Context()
			v0, err := replica.CatalogVersion(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.CreateAgency(ctx, &mobileapi.Agency{Code: "BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.PutService(ctx, &mobileapi.Service{Code: "1.001193", Name: mobileapi.Text{VI: "Đăng ký khai sinh"}, AgencyCode: "BTP"}, 0); err != nil {
				t.Fatal(err)
			}
			if v1, err := replica.CatalogVersion(ctx); err != nil || v1 == v0 {
				t.Errorf("the replica's CatalogVersion = %d, %v; want a change from %d", v1, err, v0)
			}
		})
	}
}

// TestServiceSchemaReformatted: a schema that differs only in layout is the
// same schema, so no new version; the bytes first stored are kept.
func TestServiceSchemaReformatted(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b.open)
			ctx := t.Context()
			if err := s.CreateAgency(ctx, &mobileapi.Agency{Code: "BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp"}}); err != nil {
				t.Fatal(err)
			}
			first := `{"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}}`
			svc := &mobileapi.Service{Code: "1.001193", Name: mobileapi.Text{VI: "Đăng ký khai sinh"}, AgencyCode: "BTP", Schema: json.RawMessage(first)}
			if _, err := s.PutService(ctx, svc, 0); err != nil {
				t.Fatal(err)
			}
			svc.Schema = json.RawMessage(`{"properties":{"n":{"maximum":10,"type":"integer"}},"type":"object"}`)
			if _, err := s.PutService(ctx, svc, 0); err != nil {
				t.Fatal(err)
			}
			if svc.Version != 1 || string(svc.Schema) != first {
				t.Errorf("reformatted schema: version %d, schema %s; want version 1, %s", svc.Version, svc.Schema, first)
			}
			// 10.0 is written differently: a new version (numbers compare
			// as written, so large integers never round into equality).
			svc.Schema = json.RawMessage(`{"type": "object", "properties": {"n": {"type": "integer", "maximum": 10.0}}}`)
			if _, err := s.PutService(ctx, svc, 0); err != nil {
				t.Fatal(err)
			}
			if svc.Version != 2 {
				t.Errorf("changed number: version %d, want 2", svc.Version)
			}
		})
	}
}

// TestPutServiceLosesCreateRace drives PostgreSQL's create race by hand: the
// service's row is inserted by another transaction after PutService looked
// and before it inserts. PutService must wait for it and store a new version
// of that service, not fail or make a second one. (SQLite's BEGIN IMMEDIATE
// lets no two puts interleave.)
func TestPutServiceLosesCreateRace(t *testing.T) {
	db, d := backends[1].open(t)
	s := open(t, func(testing.TB) (*sql.DB, sqldb.Dialect) { return db, d })
	ctx := t.Context()
	if err := s.CreateAgency(ctx, &mobileapi.Agency{Code: "BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp"}}); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	const id = "svc_aaaaaaaaaaaaaaaaaaaaaaaaaa"
	for _, q := range []string{
		`INSERT INTO api_services (id, code, current_version, agency_code, created_at) VALUES ('` + id + `', '1.001193', 1, 'BTP', 0)`,
		`INSERT INTO api_service_versions (service_id, version, name_vi, name_en, description_vi, description_en, agency_code,
			category, fee_amount, fee_currency, processing_days, required_documents, handling_agencies, form_schema, updated_at)
			VALUES ('` + id + `', 1, 'Cũ', '', '', '', 'BTP', '', 0, '', 0, '[]', '[]', NULL, 0)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var txPID int
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&txPID); err != nil {
		t.Fatal(err)
	}
	type result struct {
		created bool
		err     error
	}
	done := make(chan result, 1)
	svc := &mobileapi.Service{Code: "1.001193", Name: mobileapi.Text{VI: "Mới"}, AgencyCode: "BTP"}
	go func() {
		created, err := s.PutService(ctx, svc, 0)
		done <- result{created, err}
	}()
	// Commit once PutService waits for this transaction.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, txPID).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("PutService never waited for the concurrent insert")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("PutService: %v", r.err)
	}
	if r.created || svc.ID != id || svc.Version != 2 {
		t.Errorf("PutService = created %v, %s v%d; want a new version 2 of %s", r.created, svc.ID, svc.Version, id)
	}
	list, err := s.ListServices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name.VI != "Mới" {
		t.Errorf("ListServices = %+v, want the one service at its new version", list)
	}
}
