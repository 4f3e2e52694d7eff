package sqlstore

import (
	"database/sql"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// Migration 0005 keeps the applications filed before representation: each
// is its applicant's own, follows its service version's category (mandates
// may be bounded by it), and its service accepts representation.
func TestMigration5Backfill(t *testing.T) {
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
			m := sqldb.Migrator{DB: db, Dialect: b.d, Table: "api_schema_migrations"}
			if err := m.Migrate(ctx, migs, 4); err != nil {
				t.Fatal(err)
			}
			old := New(db, b.d)
			if err := old.CreateAgency(ctx, &mobileapi.Agency{Code: "T-OLD", Name: mobileapi.Text{VI: "Cơ quan cũ (thử)", EN: "Old agency (test)"}}); err != nil {
				t.Fatal(err)
			}
			// The rows as the previous binary wrote them.
			for _, q := range []string{
				`INSERT INTO api_services (id, code, current_version, agency_code, created_at) VALUES ('svc_old', 'T-OLD.1', 1, 'T-OLD', 0)`,
				`INSERT INTO api_service_versions (service_id, version, name_vi, name_en, description_vi, description_en, agency_code,
					category, fee_amount, fee_currency, processing_days, required_documents, handling_agencies, form_schema, updated_at)
					VALUES ('svc_old', 1, 'Cũ', 'Old', '', '', 'T-OLD', 'civil_status', 0, 'VND', 1, '[]', '[]', NULL, 0)`,
				`INSERT INTO api_applications (id, citizen_id, service_id, service_code, service_version, agency_code, status,
					form, prefilled, version, created_at, updated_at, submitted_at, decided_at)
					VALUES ('app_old', 'test-old-citizen', 'svc_old', 'T-OLD.1', 1, 'T-OLD', 'draft', '{}', '{}', 1, 1, 1, NULL, NULL)`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if err := pushsql.New(db, b.d).Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			s := New(db, b.d, WithNow(func() time.Time { return time.UnixMilli(10) }))
			if err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			a, err := s.GetApplication(ctx, mobileapi.Scope{CitizenID: "test-old-citizen"}, "app_old")
			if err != nil {
				t.Fatal(err)
			}
			want := mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: "test-old-citizen"}
			if a.Subject != want || a.ServiceCategory != "civil_status" || a.ForSomeoneElse() {
				t.Errorf("old application: subject %+v, category %q", a.Subject, a.ServiceCategory)
			}
			apps, _, err := s.ListApplications(ctx, mobileapi.ApplicationQuery{Scope: mobileapi.Scope{CitizenID: "test-old-citizen"}})
			if err != nil || len(apps) != 1 {
				t.Errorf("old applicant's list: %d, %v", len(apps), err)
			}
			if _, err := s.UpdateForm(ctx, mobileapi.Scope{CitizenID: "test-old-citizen"}, "app_old", 1, []byte(`{"x":1}`)); err != nil {
				t.Errorf("edit an old draft: %v", err)
			}
			svc, err := s.GetService(ctx, "svc_old")
			if err != nil || !svc.AcceptsRepresentation() {
				t.Errorf("old service: %+v, %v", svc, err)
			}
		})
	}
}
