package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi"
)

// codePattern is the contract's pattern of agency and service codes: they
// appear in URLs and in agencies' systems, so the store keeps out anything
// else rather than trusting every caller to check.
var codePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func checkCode(op, field, code string) error {
	if code == "" {
		return fmt.Errorf("%s: %s is required: %w", op, field, idp.ErrInvalid)
	}
	if !codePattern.MatchString(code) {
		return fmt.Errorf("%s: %s must be 1 to 64 letters, digits, '.', '_' or '-': %w", op, field, idp.ErrInvalid)
	}
	return nil
}

// checkString refuses what PostgreSQL cannot store in TEXT (invalid UTF-8,
// NUL), so both engines accept and refuse the same input.
func checkString(op, field, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s: %s must be UTF-8 text without NUL: %w", op, field, idp.ErrInvalid)
	}
	return nil
}

// checkText checks a bilingual text; required asks for at least one language
// (Text.In falls back to the other).
func checkText(op, field string, t mobileapi.Text, required bool) error {
	if required && t.VI == "" && t.EN == "" {
		return fmt.Errorf("%s: %s is required: %w", op, field, idp.ErrInvalid)
	}
	if err := checkString(op, field+".vi", t.VI); err != nil {
		return err
	}
	return checkString(op, field+".en", t.EN)
}

const agencyColumns = `code, name_vi, name_en, parent_code, province_code, created_at`

// CreateAgency stores a new agency: ErrInvalid for a bad code or an empty
// name, ErrNotFound when the parent does not exist, ErrConflict when the
// code does. It sets a.CreatedAt when zero.
func (s *Store) CreateAgency(ctx context.Context, a *mobileapi.Agency) error {
	const op = "create agency"
	if a == nil {
		return fmt.Errorf("%s: no agency: %w", op, idp.ErrInvalid)
	}
	if err := checkCode(op, "code", a.Code); err != nil {
		return err
	}
	if err := checkText(op, "name", a.Name, true); err != nil {
		return err
	}
	if err := checkString(op, "province_code", a.ProvinceCode); err != nil {
		return err
	}
	var parent sql.NullString
	if a.ParentCode != "" {
		parent = sql.NullString{String: a.ParentCode, Valid: true}
	}
	created := a.CreatedAt
	if created.IsZero() {
		created = s.clock()
	}
	created = created.UTC().Truncate(time.Millisecond)
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		if parent.Valid {
			// Checked here rather than left to the foreign key so the error
			// says what is missing; agencies are never deleted, so the
			// parent cannot vanish before the insert.
			if err := agencyExists(ctx, q, parent.String); err != nil {
				return fmt.Errorf("%s: parent_code: %w", op, err)
			}
		}
		_, err := q.ExecContext(ctx, `INSERT INTO api_agencies (`+agencyColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
			a.Code, a.Name.VI, a.Name.EN, parent, a.ProvinceCode, sqldb.MS(created))
		return sqldb.Err(op, err)
	})
	if err != nil {
		return err
	}
	a.CreatedAt = created
	return nil
}

// agencyExists returns an error wrapping ErrNotFound unless code is an
// agency.
func agencyExists(ctx context.Context, q sqldb.Querier, code string) error {
	var one int
	err := q.QueryRowContext(ctx, `SELECT 1 FROM api_agencies WHERE code = $1`, code).Scan(&one)
	return sqldb.Err(fmt.Sprintf("agency %q", code), err)
}

// GetAgency returns the agency with the given code.
func (s *Store) GetAgency(ctx context.Context, code string) (*mobileapi.Agency, error) {
	a, err := scanAgency(s.db.QueryRowContext(ctx, `SELECT `+agencyColumns+` FROM api_agencies WHERE code = $1`, code))
	if err != nil {
		return nil, sqldb.Err("get agency", err)
	}
	return a, nil
}

// ListAgencies returns every agency ordered by code (byte order).
func (s *Store) ListAgencies(ctx context.Context) ([]*mobileapi.Agency, error) {
	const op = "list agencies"
	rows, err := s.db.QueryContext(ctx, `SELECT `+agencyColumns+` FROM api_agencies ORDER BY code`)
	if err != nil {
		return nil, sqldb.Err(op, err)
	}
	defer rows.Close()
	var out []*mobileapi.Agency
	for rows.Next() {
		a, err := scanAgency(rows)
		if err != nil {
			return nil, sqldb.Err(op, err)
		}
		out = append(out, a)
	}
	return out, sqldb.Err(op, rows.Err())
}

func scanAgency(r sqldb.Scanner) (*mobileapi.Agency, error) {
	var (
		a       mobileapi.Agency
		parent  sql.NullString
		created int64
	)
	if err := r.Scan(&a.Code, &a.Name.VI, &a.Name.EN, &parent, &a.ProvinceCode, &created); err != nil {
		return nil, err
	}
	a.ParentCode = parent.String
	a.CreatedAt = sqldb.FromMS(created)
	return &a, nil
}
