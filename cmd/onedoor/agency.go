package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// agencyView is an agency as the admin commands print it.
type agencyView struct {
	Code         string    `json:"code"`
	Name         string    `json:"name"`
	NameEN       string    `json:"name_en"`
	ParentCode   string    `json:"parent_code,omitempty"`
	ProvinceCode string    `json:"province_code,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

func viewAgency(a *mobileapi.Agency) agencyView {
	return agencyView{Code: a.Code, Name: a.Name.VI, NameEN: a.Name.EN, ParentCode: a.ParentCode, ProvinceCode: a.ProvinceCode, CreatedAt: a.CreatedAt}
}

// agencyCmd registers the agencies (ministries, departments, provinces,
// communes) that own and handle services and to which clients are bound.
func agencyCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("agency: want create or list")
	}
	sub, args := args[0], args[1:]
	var code, name, nameEN, parent, prov string
	m, fs, err := adminMain(ctx, "agency "+sub, args, env, func(fs *flag.FlagSet) {
		if sub == "create" {
			fs.StringVar(&code, "code", "", "the agency's code, unique (letters, digits, . _ -)")
			fs.StringVar(&name, "name", "", "the agency's name in Vietnamese")
			fs.StringVar(&nameEN, "name-en", "", "the agency's name in English (default: the Vietnamese name)")
			fs.StringVar(&parent, "parent", "", "code of the parent agency (a ministry above a department, a province above a commune)")
			fs.StringVar(&prov, "province", "", "code of the province the agency serves (empty for a national body)")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	switch sub {
	case "create":
		if fs.NArg() != 0 {
			return usageError("agency create: unexpected argument %q", fs.Arg(0))
		}
		if code == "" || name == "" {
			return usageError("agency create: --code and --name are required")
		}
		if nameEN == "" {
			nameEN = name
		}
		a := &mobileapi.Agency{Code: code, Name: mobileapi.Text{VI: name, EN: nameEN}, ParentCode: parent, ProvinceCode: prov}
		if err := m.APIStore.CreateAgency(ctx, a); err != nil {
			switch {
			case errors.Is(err, idp.ErrConflict):
				return fmt.Errorf("agency create: an agency with code %q exists", code)
			case errors.Is(err, idp.ErrNotFound):
				return fmt.Errorf("agency create: no parent agency has the code %q (create it first)", parent)
			}
			return fmt.Errorf("agency create: %w", err)
		}
		return m.printJSON(stdout, viewAgency(a))
	case "list":
		as, err := m.APIStore.ListAgencies(ctx)
		if err != nil {
			return err
		}
		out := make([]agencyView, 0, len(as))
		for _, a := range as {
			out = append(out, viewAgency(a))
		}
		return m.printJSON(stdout, out)
	}
	return usageError("agency: unknown subcommand %q", sub)
}
