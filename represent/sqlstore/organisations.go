package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/represent"
)

const orgColumns = `id, tax_code, name, name_en, address, legal_representative, status, created_ms, updated_ms`

func scanOrg(sc sqldb.Scanner) (*represent.Organisation, error) {
	var (
		o                represent.Organisation
		created, updated int64
	)
	if err := sc.Scan(&o.ID, &o.TaxCode, &o.Name, &o.NameEn, &o.Address, &o.LegalRepresentative, &o.Status, &created, &updated); err != nil {
		return nil, err
	}
	o.CreatedAt, o.UpdatedAt = sqldb.FromMS(created), sqldb.FromMS(updated)
	return &o, nil
}

func checkOrg(op string, o *represent.Organisation) error {
	if o == nil {
		return invalid(op, "no organisation")
	}
	if !represent.ValidTaxCode(o.TaxCode) {
		return invalid(op, fmt.Sprintf("tax code %q must be 10 digits, or 10 digits, a dash and 3 digits", o.TaxCode))
	}
	switch o.Status {
	case represent.OrgActive, represent.OrgSuspended, represent.OrgDissolved:
	default:
		return invalid(op, fmt.Sprintf("organisation %s: status must be active, suspended or dissolved", o.TaxCode))
	}
	if o.Name == "" {
		return invalid(op, fmt.Sprintf("organisation %s: name is required", o.TaxCode))
	}
	if o.ID != "" && !represent.IsOrgSubject(o.ID) {
		return invalid(op, fmt.Sprintf("organisation %s: id must begin with %q", o.TaxCode, represent.OrgSubjectPrefix))
	}
	for _, f := range []struct{ name, v string }{{"id", o.ID}, {"name", o.Name}, {"name_en", o.NameEn}, {"address", o.Address}} {
		if err := checkText(op, "organisation "+o.TaxCode+": "+f.name, f.v, maxText); err != nil {
			return err
		}
	}
	return checkID(op, "organisation "+o.TaxCode+": legal_representative", o.LegalRepresentative)
}

// PutOrganisations implements represent.Store: every organisation or none,
// in one transaction.
func (s *Store) PutOrganisations(ctx context.Context, orgs []*represent.Organisation) ([]represent.OrgChange, error) {
	const op = "put organisations"
	seen := make(map[string]bool, len(orgs))
	for _, o := range orgs {
		if err := checkOrg(op, o); err != nil {
			return nil, err
		}
		if seen[o.TaxCode] {
			return nil, invalid(op, "tax code "+o.TaxCode+" twice")
		}
		seen[o.TaxCode] = true
	}
	if len(orgs) == 0 {
		return nil, nil
	}
	now := s.clock()
	type stamp struct {
		id      string
		created int64
	}
	stamps := make([]stamp, len(orgs))
	var changes []represent.OrgChange
	err := s.inTx(ctx, op, func(q sqldb.Querier) error {
		changes = changes[:0]
		for i, o := range orgs {
			old, err := scanOrg(q.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM rep_organisations WHERE tax_code = $1`+s.d.ForUpdate(), o.TaxCode))
			switch {
			case errors.Is(err, sql.ErrNoRows):
				id := o.ID
				if id == "" {
					id = represent.NewOrgSubject()
				}
				stamps[i] = stamp{id, sqldb.MS(now)}
				if _, err := q.ExecContext(ctx, `INSERT INTO rep_organisations (`+orgColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
					id, o.TaxCode, o.Name, o.NameEn, o.Address, o.LegalRepresentative, o.Status, sqldb.MS(now)); err != nil {
					return dbErr(op, err)
				}
				continue
			case err != nil:
				return dbErr(op, err)
			}
			if o.ID != "" && o.ID != old.ID {
				return invalid(op, "organisation "+o.TaxCode+" has another id")
			}
			stamps[i] = stamp{old.ID, sqldb.MS(old.CreatedAt)}
			if _, err := q.ExecContext(ctx, `UPDATE rep_organisations SET name = $2, name_en = $3, address = $4,
				legal_representative = $5, status = $6, updated_ms = $7 WHERE id = $1`,
				old.ID, o.Name, o.NameEn, o.Address, o.LegalRepresentative, o.Status, sqldb.MS(now)); err != nil {
				return dbErr(op, err)
			}
			// Only an active organisation was represented: the end of its
			// representative's right is news only then.
			if old.Status == represent.OrgActive && (old.LegalRepresentative != o.LegalRepresentative || o.Status != represent.OrgActive) {
				changes = append(changes, represent.OrgChange{Org: o, OldRepresentative: old.LegalRepresentative, Ended: o.Status != represent.OrgActive})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, o := range orgs {
		o.ID, o.CreatedAt, o.UpdatedAt = stamps[i].id, sqldb.FromMS(stamps[i].created), now
	}
	return changes, nil
}

// GetOrganisation implements represent.Store.
func (s *Store) GetOrganisation(ctx context.Context, taxCode string) (*represent.Organisation, error) {
	o, err := scanOrg(s.db.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM rep_organisations WHERE tax_code = $1`, taxCode))
	if err != nil {
		return nil, dbErr("get organisation", err)
	}
	return o, nil
}

// GetOrganisationByID implements represent.Store.
func (s *Store) GetOrganisationByID(ctx context.Context, id string) (*represent.Organisation, error) {
	o, err := scanOrg(s.db.QueryRowContext(ctx, `SELECT `+orgColumns+` FROM rep_organisations WHERE id = $1`, id))
	if err != nil {
		return nil, dbErr("get organisation", err)
	}
	return o, nil
}

// MaxPage bounds ListOrganisations; a limit of 0 or less means it.
const MaxPage = 1000

// ListOrganisations implements represent.Store.
func (s *Store) ListOrganisations(ctx context.Context, after string, limit int) ([]*represent.Organisation, error) {
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	return s.queryOrgs(ctx, "list organisations", `SELECT `+orgColumns+` FROM rep_organisations
		WHERE tax_code > $1 ORDER BY tax_code LIMIT $2`, after, limit)
}

// OrganisationsRepresentedBy implements represent.Store.
func (s *Store) OrganisationsRepresentedBy(ctx context.Context, personalID string) ([]*represent.Organisation, error) {
	return s.queryOrgs(ctx, "organisations represented", `SELECT `+orgColumns+` FROM rep_organisations
		WHERE legal_representative = $1 ORDER BY tax_code`, personalID)
}

func (s *Store) queryOrgs(ctx context.Context, op, query string, args ...any) ([]*represent.Organisation, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []*represent.Organisation
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, o)
	}
	return out, dbErr(op, rows.Err())
}
