package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/represent"
)

// orgView is how the org commands show an organisation.
type orgView struct {
	ID string `json:"id"`
	represent.OrganisationRecord
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func viewOrg(o *represent.Organisation) orgView {
	return orgView{ID: o.ID, OrganisationRecord: o.Record(), CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}

// orgCmd runs `onedoor org import|list|show`: the business registry whose
// legal representatives act for their organisations.
func orgCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("org: want import, list or show")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "import", "list", "show":
	default:
		return usageError("org: unknown subcommand %q (want import, list or show)", sub)
	}
	var after string
	var limit int
	m, fs, err := adminMain(ctx, "org "+sub, args, env, func(fs *flag.FlagSet) {
		if sub == "list" {
			fs.StringVar(&after, "after", "", "list the organisations after this tax code (the last one of the previous page)")
			fs.IntVar(&limit, "limit", 0, "at most this many (default and maximum 1000)")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	switch sub {
	case "import":
		if fs.NArg() != 1 {
			return usageError("org import: want exactly one FILE")
		}
		// The operator names the file to import on their own command line.
		data, err := os.ReadFile(fs.Arg(0)) // #nosec G703 G304 -- operator-chosen path
		if err != nil {
			return err
		}
		orgs, err := represent.ParseOrganisations(fs.Arg(0), data)
		if err != nil {
			return err
		}
		return m.importOrganisations(ctx, orgs, stdout)
	case "list":
		if fs.NArg() != 0 {
			return usageError("org list: takes no arguments")
		}
		if limit < 0 {
			return usageError("org list: --limit must not be negative")
		}
		orgs, err := m.RepStore.ListOrganisations(ctx, after, limit)
		if err != nil {
			return err
		}
		out := make([]orgView, 0, len(orgs))
		for _, o := range orgs {
			out = append(out, viewOrg(o))
		}
		return m.printJSON(stdout, map[string]any{"organisations": out})
	}
	if fs.NArg() != 1 || !represent.ValidTaxCode(fs.Arg(0)) {
		return usageError("org show: want one TAX_CODE (10 digits, or 10 digits, a dash and 3 digits)")
	}
	o, err := m.RepStore.GetOrganisation(ctx, fs.Arg(0))
	if errors.Is(err, represent.ErrNotFound) {
		return fmt.Errorf("no organisation has tax code %s: %w", fs.Arg(0), err)
	}
	if err != nil {
		return err
	}
	return m.printJSON(stdout, viewOrg(o))
}

// importOrganisations stores orgs all or none, once every legal
// representative is a registered citizen, and denies the tokens of the
// representatives it replaced.
func (m *Main) importOrganisations(ctx context.Context, orgs []*represent.Organisation, stdout io.Writer) error {
	var probs []string
	for i, o := range orgs {
		_, err := m.Store.GetCitizenByPersonalID(ctx, o.LegalRepresentative)
		switch {
		case errors.Is(err, idp.ErrNotFound):
			probs = append(probs, fmt.Sprintf("row %d: legal_representative %s is not a registered citizen", i+1, o.LegalRepresentative))
		case err != nil:
			return err
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("nothing imported (%w):\n  %s", represent.ErrInvalid, strings.Join(probs, "\n  "))
	}
	created := 0
	for _, o := range orgs {
		if _, err := m.RepStore.GetOrganisation(ctx, o.TaxCode); errors.Is(err, represent.ErrNotFound) {
			created++
		} else if err != nil {
			return err
		}
	}
	// The replaced representatives' tokens (and those of the mandates they
	// granted) are denied before anything is written: when that fails,
	// nothing is imported and importing the file again does both.
	changes, err := m.Represent.ImportOrganisations(ctx, orgs)
	if err != nil {
		return fmt.Errorf("nothing imported: %w", err)
	}
	type changeView struct {
		TaxCode           string `json:"tax_code"`
		OldRepresentative string `json:"old_legal_representative"`
		Ended             bool   `json:"ended,omitempty"`
	}
	cv := make([]changeView, 0, len(changes))
	for _, c := range changes {
		cv = append(cv, changeView{TaxCode: c.Org.TaxCode, OldRepresentative: c.OldRepresentative, Ended: c.Ended})
	}
	return m.printJSON(stdout, map[string]any{"imported": len(orgs), "created": created, "updated": len(orgs) - created,
		"representatives_ended": cv})
}

// guardianCmd runs `onedoor citizen guardian`: an operator records a
// court-appointed guardianship, or ends one (of any source) early.
func guardianCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	var ward, guardian, until string
	var end bool
	m, fs, err := adminMain(ctx, "citizen guardian", args, env, func(fs *flag.FlagSet) {
		fs.StringVar(&ward, "ward", "", "personal id of the ward (12 digits)")
		fs.StringVar(&guardian, "guardian", "", "personal id of the guardian (12 digits)")
		fs.StringVar(&until, "until", "", "last day of a court's guardianship, YYYY-MM-DD (default: open-ended)")
		fs.BoolVar(&end, "end", false, "end the guardian's guardianship of the ward now")
	})
	if err != nil {
		return err
	}
	defer m.Close()
	switch {
	case fs.NArg() != 0:
		return usageError("citizen guardian: takes no arguments, only --ward and --guardian")
	case !idp.ValidPersonalID(ward):
		return usageError("citizen guardian: --ward must be a 12-digit personal identification number")
	case !idp.ValidPersonalID(guardian):
		return usageError("citizen guardian: --guardian must be a 12-digit personal identification number")
	case ward == guardian:
		return usageError("citizen guardian: a citizen cannot be their own guardian")
	case end && until != "":
		return usageError("citizen guardian: --end and --until do not go together")
	}
	var untilAt *time.Time
	if until != "" {
		d, err := time.ParseInLocation("2006-01-02", until, represent.Zone)
		if err != nil {
			return usageError("citizen guardian: --until must be a date as YYYY-MM-DD")
		}
		// The guardianship lasts through its last day, in Vietnam.
		d = d.AddDate(0, 0, 1)
		if !d.After(m.Now()) {
			return usageError("citizen guardian: --until %s is past", until)
		}
		untilAt = &d
	}
	w, err := m.Store.GetCitizenByPersonalID(ctx, ward)
	if errors.Is(err, idp.ErrNotFound) {
		return fmt.Errorf("no citizen has the ward's personal id %s: %w", ward, err)
	} else if err != nil {
		return err
	}
	g, err := m.Store.GetCitizenByPersonalID(ctx, guardian)
	if errors.Is(err, idp.ErrNotFound) {
		return fmt.Errorf("no citizen has the guardian's personal id %s: %w", guardian, err)
	} else if err != nil {
		return err
	}
	if end {
		// The guardian's tokens for the ward are denied first: when that
		// fails the guardianship stays, and running the command again
		// does both.
		err := m.Represent.EndGuardianship(ctx, w.ID, g.ID, func(ctx context.Context) error {
			return m.Store.EndGuardianship(ctx, w.ID, g.ID, m.Now().UTC())
		})
		if errors.Is(err, idp.ErrNotFound) {
			return fmt.Errorf("%s is not a guardian of %s: %w", guardian, ward, err)
		}
		if err != nil {
			return err
		}
		return m.printJSON(stdout, map[string]any{"ended": true, "ward": ward, "guardian": guardian})
	}
	gs := represent.Guardianship{WardID: w.ID, GuardianID: g.ID, Source: represent.GuardianCourt, Until: untilAt, CreatedAt: m.Now().UTC()}
	if err := m.Store.AddGuardianship(ctx, gs); errors.Is(err, idp.ErrConflict) {
		return fmt.Errorf("%s is already a court-appointed guardian of %s: end it first (--end) to change it: %w", guardian, ward, err)
	} else if err != nil {
		return err
	}
	out := map[string]any{"ward": ward, "guardian": guardian, "source": represent.GuardianCourt}
	if untilAt != nil {
		out["until"] = until
	}
	return m.printJSON(stdout, out)
}

// guardianshipInfo lists c's guardianships in force, naming the other side
// by personal id: a look-up of that citizen too, so it is logged as one.
func (m *Main) guardianshipInfo(ctx context.Context, c *idp.Citizen) ([]guardianshipInfo, error) {
	gs, err := m.Store.Guardianships(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	out := make([]guardianshipInfo, 0, len(gs))
	for _, g := range gs {
		other := g.GuardianID
		if other == c.ID {
			other = g.WardID
		}
		o, err := m.Store.GetCitizen(ctx, other)
		if err != nil {
			return nil, err
		}
		if err := m.logOperatorLookup(ctx, o.ID); err != nil {
			return nil, err
		}
		gi := guardianshipInfo{Ward: c.PersonalID, Guardian: o.PersonalID, Source: g.Source, CreatedAt: g.CreatedAt}
		if g.WardID != c.ID {
			gi.Ward, gi.Guardian = o.PersonalID, c.PersonalID
		}
		if g.Until != nil {
			gi.Until = g.Until.In(represent.Zone).AddDate(0, 0, -1).Format("2006-01-02")
		}
		out = append(out, gi)
	}
	return out, nil
}
