package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
)

// serviceColumns read one version of a service joined with its identity.
const serviceColumns = `s.id, s.code, v.version, v.name_vi, v.name_en, v.description_vi, v.description_en,
	v.agency_code, v.category, v.fee_amount, v.fee_currency, v.processing_days, v.required_documents,
	v.handling_agencies, v.form_schema, v.updated_at, v.representation`

// latestService joins each service with its current version.
const latestService = ` FROM api_services s
	JOIN api_service_versions v ON v.service_id = s.id AND v.version = s.current_version`

var currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)

// PutService creates the service named by svc.Code (ID "svc_…", version 1)
// or, when any field differs from its current version, stores the next
// version under the same ID; identical input changes nothing (schemas
// compare as JSON values, and the first bytes stay stored). svc.ID,
// Version and UpdatedAt are ignored on input and filled with what was
// stored. ifVersion > 0 must be the current version (ErrPrecondition
// otherwise, also when the service does not exist). The owner and every
// handling agency must exist (ErrInvalid otherwise).
func (s *Store) PutService(ctx context.Context, svc *mobileapi.Service, ifVersion int) (bool, error) {
	const op = "put service"
	in, err := checkService(op, svc)
	if err != nil {
		return false, err
	}
	if ifVersion < 0 {
		return false, fmt.Errorf("%s: the expected version must not be negative: %w", op, idp.ErrInvalid)
	}
	docs, err := json.Marshal(in.RequiredDocuments)
	if err != nil {
		return false, fmt.Errorf("%s: required_documents: %w", op, err)
	}
	handlers, err := json.Marshal(in.HandlingAgencies)
	if err != nil {
		return false, fmt.Errorf("%s: handling_agencies: %w", op, err)
	}
	var (
		out     *mobileapi.Service
		created bool
	)
	err = s.inTx(ctx, op, func(q sqldb.Querier) error {
		out, created = nil, false
		if err := checkAgencies(ctx, q, op, in); err != nil {
			return err
		}
		// The service's row is the lock that orders concurrent puts of one
		// code (SQLite's BEGIN IMMEDIATE orders them all).
		id, current, err := s.lockService(ctx, q, in.Code)
		if errors.Is(err, idp.ErrNotFound) {
			if ifVersion > 0 {
				return fmt.Errorf("%s %s: no such service, expected version %d: %w", op, in.Code, ifVersion, mobileapi.ErrPrecondition)
			}
			if err := s.checkServiceQuota(ctx, q, op, in.AgencyCode); err != nil {
				return err
			}
			now := s.clock()
			id = newID("svc")
			// A concurrent put of the same code may insert first: PostgreSQL
			// then waits for it, inserts nothing, and the second lookup
			// below finds its row, so the loser stores a new version of the
			// winner's service instead of failing or making a second one.
			inserted, ierr := insertService(ctx, q, op, id, in, now)
			if ierr != nil {
				return ierr
			}
			if inserted {
				out, created = stored(in, id, 1, now), true
				return insertVersion(ctx, q, op, out, docs, handlers)
			}
			id, current, err = s.lockService(ctx, q, in.Code)
		}
		if err != nil {
			return sqldb.Err(op, err)
		}
		if ifVersion > 0 && current != ifVersion {
			return fmt.Errorf("%s %s: version %d is current, not %d: %w", op, in.Code, current, ifVersion, mobileapi.ErrPrecondition)
		}
		cur, err := scanService(q.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM api_services s
			JOIN api_service_versions v ON v.service_id = s.id WHERE s.id = $1 AND v.version = $2`, id, current))
		if err != nil {
			return sqldb.Err(op, err)
		}
		// Checked here, under the row lock: a check before the transaction
		// let two agencies racing on a new code both "win".
		if cur.AgencyCode != in.AgencyCode {
			return fmt.Errorf("%s %s: %w", op, in.Code, mobileapi.ErrNotOwner)
		}
		if sameDefinition(cur, in) {
			out = cur
			return nil
		}
		now := s.clock()
		if now.Before(cur.UpdatedAt) {
			now = cur.UpdatedAt // another replica's clock ran ahead: versions never go back in time
		}
		out = stored(in, id, current+1, now)
		if err := insertVersion(ctx, q, op, out, docs, handlers); err != nil {
			return err
		}
		_, err = q.ExecContext(ctx, `UPDATE api_services SET current_version = $1, agency_code = $2 WHERE id = $3`,
			out.Version, out.AgencyCode, id)
		return sqldb.Err(op, err)
	})
	if err != nil {
		return false, err
	}
	*svc = *out
	return created, nil
}

// lockService returns the ID and current version of the service with the
// given code, locking its row until the transaction ends.
func (s *Store) lockService(ctx context.Context, q sqldb.Querier, code string) (string, int, error) {
	var (
		id      string
		current int
	)
	err := q.QueryRowContext(ctx, `SELECT id, current_version FROM api_services WHERE code = $1`+s.d.ForUpdate(), code).
		Scan(&id, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, idp.ErrNotFound
	}
	return id, current, err
}

// insertService inserts the service's row at version 1 unless its code
// exists, and reports whether it did.
func insertService(ctx context.Context, q sqldb.Querier, op, id string, in *mobileapi.Service, now time.Time) (bool, error) {
	res, err := q.ExecContext(ctx, `INSERT INTO api_services (id, code, current_version, agency_code, created_at)
		VALUES ($1, $2, 1, $3, $4) ON CONFLICT (code) DO NOTHING`, id, in.Code, in.AgencyCode, sqldb.MS(now))
	if err != nil {
		return false, sqldb.Err(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, sqldb.Err(op, err)
	}
	return n == 1, nil
}

// checkServiceQuota refuses a new service of an agency that owns
// MaxServicesPerAgency. The agency's row is locked first on PostgreSQL
// (SQLite's BEGIN IMMEDIATE orders every writer), so concurrent creations
// count one after another. FOR NO KEY UPDATE, not FOR UPDATE: it excludes
// other creators but not the key-share locks that inserting any service
// version referencing the agency takes, so a put holding a service's row
// never waits here behind a creator that waits for that row (a deadlock
// the concurrent-puts conformance test found).
func (s *Store) checkServiceQuota(ctx context.Context, q sqldb.Querier, op, agency string) error {
	lock := ""
	if s.d == sqldb.PostgreSQL {
		lock = " FOR NO KEY UPDATE"
	}
	var code string
	if err := q.QueryRowContext(ctx, `SELECT code FROM api_agencies WHERE code = $1`+lock, agency).Scan(&code); err != nil {
		return sqldb.Err(op, err)
	}
	var n int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_services WHERE agency_code = $1`, agency).Scan(&n); err != nil {
		return sqldb.Err(op, err)
	}
	if n >= mobileapi.MaxServicesPerAgency {
		return fmt.Errorf("%s: agency %s owns %d services: %w", op, agency, n, mobileapi.ErrQuota)
	}
	return nil
}

// stored returns in as stored under id at version v.
func stored(in *mobileapi.Service, id string, v int, at time.Time) *mobileapi.Service {
	out := *in
	out.ID, out.Version, out.UpdatedAt = id, v, at
	return &out
}

func insertVersion(ctx context.Context, q sqldb.Querier, op string, v *mobileapi.Service, docs, handlers []byte) error {
	var schema sql.NullString
	if len(v.Schema) > 0 {
		schema = sql.NullString{String: string(v.Schema), Valid: true}
	}
	_, err := q.ExecContext(ctx, `INSERT INTO api_service_versions (service_id, version, name_vi, name_en,
			description_vi, description_en, agency_code, category, fee_amount, fee_currency, processing_days,
			required_documents, handling_agencies, form_schema, updated_at, representation)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		v.ID, v.Version, v.Name.VI, v.Name.EN, v.Description.VI, v.Description.EN, v.AgencyCode, v.Category,
		v.Fee.Amount, v.Fee.Currency, v.ProcessingDays, string(docs), string(handlers), schema, sqldb.MS(v.UpdatedAt),
		v.Representation)
	return sqldb.Err(op, err)
}

// checkAgencies requires the owner and every handling agency to exist.
// Agencies are never deleted, so what is found stays there until commit.
func checkAgencies(ctx context.Context, q sqldb.Querier, op string, in *mobileapi.Service) error {
	codes := append([]string{in.AgencyCode}, in.HandlingAgencies...)
	args := make([]any, len(codes))
	marks := make([]string, len(codes))
	for i, c := range codes {
		args[i], marks[i] = c, fmt.Sprintf("$%d", i+1)
	}
	rows, err := q.QueryContext(ctx, `SELECT code FROM api_agencies WHERE code IN (`+strings.Join(marks, ", ")+`)`, args...)
	if err != nil {
		return sqldb.Err(op, err)
	}
	defer rows.Close()
	found := make(map[string]bool, len(codes))
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return sqldb.Err(op, err)
		}
		found[c] = true
	}
	if err := rows.Err(); err != nil {
		return sqldb.Err(op, err)
	}
	for i, c := range codes {
		if found[c] {
			continue
		}
		field := "agency_code"
		if i > 0 {
			field = fmt.Sprintf("handling_agencies[%d]", i-1)
		}
		return fmt.Errorf("%s %s: %s: unknown agency %q: %w", op, in.Code, field, c, idp.ErrInvalid)
	}
	return nil
}

// checkService validates svc and returns a copy that shares nothing with
// it, its lists never nil (so they are stored as [] and read back alike).
func checkService(op string, svc *mobileapi.Service) (*mobileapi.Service, error) {
	if svc == nil {
		return nil, fmt.Errorf("%s: no service: %w", op, idp.ErrInvalid)
	}
	if err := checkCode(op, "code", svc.Code); err != nil {
		return nil, err
	}
	op += " " + svc.Code
	if err := checkCode(op, "agency_code", svc.AgencyCode); err != nil {
		return nil, err
	}
	if err := checkText(op, "name", svc.Name, true); err != nil {
		return nil, err
	}
	if err := checkText(op, "description", svc.Description, false); err != nil {
		return nil, err
	}
	if err := checkString(op, "category", svc.Category); err != nil {
		return nil, err
	}
	if svc.Fee.Amount < 0 {
		return nil, fmt.Errorf("%s: fee.amount must not be negative: %w", op, idp.ErrInvalid)
	}
	if svc.Fee.Currency != "" && !currencyPattern.MatchString(svc.Fee.Currency) {
		return nil, fmt.Errorf("%s: fee.currency must be an ISO 4217 code: %w", op, idp.ErrInvalid)
	}
	if svc.ProcessingDays < 0 {
		return nil, fmt.Errorf("%s: processing_days must not be negative: %w", op, idp.ErrInvalid)
	}
	in := *svc
	in.ID, in.Version, in.UpdatedAt = "", 0, time.Time{}
	switch in.Representation {
	case "", mobileapi.RepresentationAllowed, mobileapi.RepresentationRefused:
	default:
		return nil, fmt.Errorf("%s: representation must be allowed or refused: %w", op, idp.ErrInvalid)
	}
	in.RequiredDocuments = make([]mobileapi.RequiredDocument, 0, len(svc.RequiredDocuments))
	seen := map[string]bool{}
	for i, d := range svc.RequiredDocuments {
		field := fmt.Sprintf("required_documents[%d]", i)
		if d.Code == "" {
			return nil, fmt.Errorf("%s: %s.code is required: %w", op, field, idp.ErrInvalid)
		}
		if err := checkString(op, field+".code", d.Code); err != nil {
			return nil, err
		}
		if seen[d.Code] {
			// Attachments name the document they stand for by its code.
			return nil, fmt.Errorf("%s: %s.code %q is listed twice: %w", op, field, d.Code, idp.ErrInvalid)
		}
		seen[d.Code] = true
		if err := checkText(op, field+".name", d.Name, true); err != nil {
			return nil, err
		}
		in.RequiredDocuments = append(in.RequiredDocuments, d)
	}
	in.HandlingAgencies = make([]string, 0, len(svc.HandlingAgencies))
	clear(seen)
	for i, c := range svc.HandlingAgencies {
		field := fmt.Sprintf("handling_agencies[%d]", i)
		if err := checkCode(op, field, c); err != nil {
			return nil, err
		}
		if seen[c] {
			return nil, fmt.Errorf("%s: %s %q is listed twice: %w", op, field, c, idp.ErrInvalid)
		}
		seen[c] = true
		in.HandlingAgencies = append(in.HandlingAgencies, c)
	}
	in.Schema = nil
	if len(svc.Schema) > 0 {
		if err := checkSchema(svc.Schema); err != nil {
			return nil, fmt.Errorf("%s: schema: %v: %w", op, err, idp.ErrInvalid)
		}
		in.Schema = bytes.Clone(svc.Schema)
	}
	return &in, nil
}

// checkSchema accepts a JSON Schema as 2020-12 defines one: an object or a
// boolean. Its bytes are stored as given.
func checkSchema(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("not UTF-8")
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return errors.New("not JSON")
	}
	switch v.(type) {
	case map[string]any, bool:
		return nil
	}
	return errors.New("not an object or a boolean")
}

// sameDefinition reports whether b would store nothing new over a. Schemas
// compare as JSON, so a reformatted schema is no new version.
func sameDefinition(a, b *mobileapi.Service) bool {
	return a.Name == b.Name && a.Description == b.Description && a.AgencyCode == b.AgencyCode &&
		a.Category == b.Category && a.Fee == b.Fee && a.ProcessingDays == b.ProcessingDays &&
		slices.Equal(a.RequiredDocuments, b.RequiredDocuments) &&
		slices.Equal(a.HandlingAgencies, b.HandlingAgencies) &&
		sameJSON(a.Schema, b.Schema) && a.Representation == b.Representation
}

func sameJSON(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

// decodeJSON keeps numbers as written, so 1 and 1.0 differ and large
// integers are not rounded into equality.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// GetService returns the latest version of the service.
func (s *Store) GetService(ctx context.Context, id string) (*mobileapi.Service, error) {
	svc, err := scanService(s.db.QueryRowContext(ctx, `SELECT `+serviceColumns+latestService+` WHERE s.id = $1`, id))
	if err != nil {
		return nil, sqldb.Err("get service", err)
	}
	return svc, nil
}

// GetServiceByCode returns the latest version of the service with the code.
func (s *Store) GetServiceByCode(ctx context.Context, code string) (*mobileapi.Service, error) {
	svc, err := scanService(s.db.QueryRowContext(ctx, `SELECT `+serviceColumns+latestService+` WHERE s.code = $1`, code))
	if err != nil {
		return nil, sqldb.Err("get service by code", err)
	}
	return svc, nil
}

// GetServiceVersion returns one version of the service, current or not.
func (s *Store) GetServiceVersion(ctx context.Context, id string, version int) (*mobileapi.Service, error) {
	svc, err := scanService(s.db.QueryRowContext(ctx, `SELECT `+serviceColumns+` FROM api_services s
		JOIN api_service_versions v ON v.service_id = s.id WHERE s.id = $1 AND v.version = $2`, id, version))
	if err != nil {
		return nil, sqldb.Err("get service version", err)
	}
	return svc, nil
}

// ListServices returns the latest version of every service, ordered by code
// (byte order).
func (s *Store) ListServices(ctx context.Context) ([]*mobileapi.Service, error) {
	const op = "list services"
	rows, err := s.db.QueryContext(ctx, `SELECT `+serviceColumns+latestService+` ORDER BY s.code`)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*mobileapi.Service
	for rows.Next() {
		svc, err := scanService(rows)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		out = append(out, svc)
	}
	return out, sqldb.Err(op, rows.Err())
}

// CatalogVersion returns the catalog change counter, which every committed
// write to the services or the agencies changes, whichever process makes it
// (triggers bump it inside the writing transaction, migration 0001).
func (s *Store) CatalogVersion(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, `SELECT version FROM api_catalog_changes WHERE id = 1`).Scan(&v)
	return v, sqldb.Err("catalog version", err)
}

func scanService(r sqldb.Scanner) (*mobileapi.Service, error) {
	var (
		svc            mobileapi.Service
		docs, handlers string
		schema         sql.NullString
		updated        int64
	)
	err := r.Scan(&svc.ID, &svc.Code, &svc.Version, &svc.Name.VI, &svc.Name.EN, &svc.Description.VI,
		&svc.Description.EN, &svc.AgencyCode, &svc.Category, &svc.Fee.Amount, &svc.Fee.Currency,
		&svc.ProcessingDays, &docs, &handlers, &schema, &updated, &svc.Representation)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(docs), &svc.RequiredDocuments); err != nil {
		return nil, fmt.Errorf("service %s version %d: required_documents: %w", svc.ID, svc.Version, err)
	}
	if err := json.Unmarshal([]byte(handlers), &svc.HandlingAgencies); err != nil {
		return nil, fmt.Errorf("service %s version %d: handling_agencies: %w", svc.ID, svc.Version, err)
	}
	if schema.Valid {
		svc.Schema = json.RawMessage(schema.String)
	}
	svc.UpdatedAt = sqldb.FromMS(updated)
	return &svc, nil
}
