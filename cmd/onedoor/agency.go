package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
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
		return usageError("agency: want create, list, token, grant-basis, amend-basis, revoke-basis or bases")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "grant-basis", "amend-basis", "revoke-basis", "bases":
		return basisCmd(ctx, sub, args, env, stdout)
	case "token":
		return agencyTokenCmd(ctx, args, env, stdout)
	}
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
		return m.printJSON(stdout, map[string]any{"agencies": out})
	}
	return usageError("agency: unknown subcommand %q", sub)
}

// basisView is a legal basis as the admin commands print it.
type basisView struct {
	ID        string     `json:"id"`
	Agency    string     `json:"agency"`
	Purpose   string     `json:"purpose"`
	Items     []string   `json:"items"`
	Basis     string     `json:"basis"`
	Law       string     `json:"law"`
	Version   int64      `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

func viewBasis(b *consent.LegalBasis) basisView {
	return basisView{ID: b.ID, Agency: b.Agency, Purpose: b.Purpose, Items: nonNil(b.Items), Basis: string(b.Basis), Law: b.Law,
		Version: b.Version, CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt, RevokedAt: b.RevokedAt}
}

// basisEventView is one event of the legal bases' trail as `agency bases
// --history` prints it.
type basisEventView struct {
	Seq      int64               `json:"seq"`
	ID       string              `json:"id"`
	At       time.Time           `json:"at"`
	Operator string              `json:"operator"`
	Action   string              `json:"action"`
	BasisID  string              `json:"basis_id"`
	Agency   string              `json:"agency"`
	Purpose  string              `json:"purpose"`
	Before   *consent.BasisState `json:"before"`
	After    *consent.BasisState `json:"after"`
	Reason   string              `json:"reason"`
	Hash     string              `json:"hash"`
}

// checkBasisItems reports the problems of a list of items for a basis.
func checkBasisItems(items []string) []string {
	var probs []string
	seen := map[string]bool{}
	for _, it := range items {
		if !slices.Contains(idp.KnownClaims, it) {
			probs = append(probs, fmt.Sprintf("--items: %q is not a registry item (%s)", it, strings.Join(idp.KnownClaims, ", ")))
		}
		if seen[it] {
			probs = append(probs, fmt.Sprintf("--items: %q is named twice", it))
		}
		seen[it] = true
	}
	return probs
}

// basisChange reads who changes a basis and why; both are required. The
// time is left to the store, which reads its clock (m.Now) under the
// change's locks. The operator is recorded with the OS account and host
// that ran the command (operatorOnHost).
func basisChange(sub, operator, reason string) (consent.BasisChange, error) {
	if strings.TrimSpace(operator) == "" || strings.TrimSpace(reason) == "" {
		return consent.BasisChange{}, usageError("agency %s: --operator (or ONEDOOR_OPERATOR) and --reason are required: every change of a legal basis is recorded with who made it and why", sub)
	}
	return consent.BasisChange{Operator: operatorOnHost(strings.TrimSpace(operator)), Reason: strings.TrimSpace(reason)}, nil
}

// operatorOnHost is the operator as the trail records them: the name
// typed (--operator), which nothing checks, beside the OS account and
// host that ran the command, which the operator does not type. Whoever
// controls the host can still lie about both; the trail's hash then keeps
// the lie as it was told.
func operatorOnHost(typed string) string {
	account, host := "unknown", "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		account = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		host = h
	}
	return fmt.Sprintf("%s (os %s@%s)", typed, account, host)
}

// purposeCodeRE is the form of a purpose code, as clients register them.
var purposeCodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// basisCmd registers, revokes and lists the legal bases under which an
// agency receives data items for a purpose without asking the citizen,
// because a law says so.
func basisCmd(ctx context.Context, sub string, args []string, env func(string) string, stdout io.Writer) error {
	var (
		agency, purpose, basis, law, operator, reason string
		items                                         []string
		history                                       bool
	)
	m, fs, err := adminMain(ctx, "agency "+sub, args, env, func(fs *flag.FlagSet) {
		switch sub {
		case "grant-basis":
			fs.StringVar(&agency, "agency", "", "code of the agency that receives the data (it must exist)")
			fs.StringVar(&purpose, "purpose", "", "the purpose code the law covers")
			fs.Var(&commaList{v: &items}, "items", "comma-separated data items the law covers ("+strings.Join(idp.KnownClaims, ", ")+")")
			fs.StringVar(&basis, "basis", "", "legal_obligation or public_task")
			fs.StringVar(&law, "law", "", "the law, article and clause that allow it")
		case "amend-basis":
			fs.Var(&commaList{v: &items}, "items", "the new comma-separated data items (default: unchanged)")
			fs.StringVar(&law, "law", "", "the new law, article and clause (default: unchanged)")
		case "bases":
			fs.StringVar(&agency, "agency", "", "only this agency's bases")
			fs.StringVar(&purpose, "purpose", "", "only bases for this purpose")
			fs.BoolVar(&history, "history", false, "print the trail of every grant, amendment and revocation instead, oldest first")
		}
		if sub != "bases" {
			fs.StringVar(&operator, "operator", "", "who makes the change (required; recorded in the legal-basis trail)")
			fs.StringVar(&reason, "reason", "", "why (required; recorded in the legal-basis trail)")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	switch sub {
	case "grant-basis":
		if fs.NArg() != 0 {
			return usageError("agency grant-basis: unexpected argument %q", fs.Arg(0))
		}
		var probs []string
		if agency == "" || purpose == "" || len(items) == 0 || basis == "" || strings.TrimSpace(law) == "" {
			return usageError("agency grant-basis: --agency, --purpose, --items, --basis and --law are required")
		}
		by, err := basisChange(sub, operator, reason)
		if err != nil {
			return err
		}
		if !purposeCodeRE.MatchString(purpose) {
			probs = append(probs, fmt.Sprintf("--purpose must be 1 to 64 letters, digits, '.', '_' or '-' (got %q)", purpose))
		}
		if b := consent.Basis(basis); !b.Legal() {
			probs = append(probs, fmt.Sprintf("--basis must be legal_obligation or public_task (got %q)", basis))
		}
		probs = append(probs, checkBasisItems(items)...)
		if idp.ValidAgencyCode(agency) {
			if err := m.checkAgency(ctx, agency); err != nil {
				probs = append(probs, err.Error())
			}
		} else {
			probs = append(probs, fmt.Sprintf("--agency: %q is not an agency code", agency))
		}
		if len(probs) > 0 {
			return fmt.Errorf("agency grant-basis:\n  - %s", strings.Join(probs, "\n  - "))
		}
		b := &consent.LegalBasis{Agency: agency, Purpose: purpose, Items: items, Basis: consent.Basis(basis), Law: strings.TrimSpace(law)}
		if err := m.ConsentStore.PutLegalBasis(ctx, b, by); err != nil {
			switch {
			case errors.Is(err, consent.ErrConflict):
				return fmt.Errorf("agency grant-basis: %s already has a legal basis for %q (amend or revoke it: onedoor agency bases --agency %s)", agency, purpose, agency)
			case errors.Is(err, consent.ErrInvalid):
				return fmt.Errorf("agency grant-basis: %w", err)
			}
			return fmt.Errorf("agency grant-basis: %w", err)
		}
		return m.printJSON(stdout, viewBasis(b))
	case "amend-basis":
		if fs.NArg() != 1 {
			return usageError("agency amend-basis: want the basis id (see onedoor agency bases)")
		}
		if len(items) == 0 && strings.TrimSpace(law) == "" {
			return usageError("agency amend-basis: give --items, --law or both")
		}
		by, err := basisChange(sub, operator, reason)
		if err != nil {
			return err
		}
		if probs := checkBasisItems(items); len(probs) > 0 {
			return fmt.Errorf("agency amend-basis:\n  - %s", strings.Join(probs, "\n  - "))
		}
		id := fs.Arg(0)
		bs, err := m.ConsentStore.LegalBases(ctx, "", "")
		if err != nil {
			return err
		}
		i := slices.IndexFunc(bs, func(b *consent.LegalBasis) bool { return b.ID == id })
		if i < 0 {
			return fmt.Errorf("agency amend-basis: no live legal basis has the id %q", id)
		}
		if len(items) == 0 {
			items = bs[i].Items
		}
		if strings.TrimSpace(law) == "" {
			law = bs[i].Law
		}
		b, err := m.ConsentStore.AmendLegalBasis(ctx, id, items, strings.TrimSpace(law), by)
		switch {
		case errors.Is(err, consent.ErrNotFound):
			return fmt.Errorf("agency amend-basis: no live legal basis has the id %q", id)
		case err != nil:
			return fmt.Errorf("agency amend-basis: %w", err)
		}
		return m.printJSON(stdout, viewBasis(b))
	case "revoke-basis":
		if fs.NArg() != 1 {
			return usageError("agency revoke-basis: want the basis id (see onedoor agency bases)")
		}
		by, err := basisChange(sub, operator, reason)
		if err != nil {
			return err
		}
		id := fs.Arg(0)
		if err := m.ConsentStore.RevokeLegalBasis(ctx, id, by); err != nil {
			if errors.Is(err, consent.ErrNotFound) || errors.Is(err, consent.ErrInvalid) {
				return fmt.Errorf("agency revoke-basis: no live legal basis has the id %q", id)
			}
			return fmt.Errorf("agency revoke-basis: %w", err)
		}
		return m.printJSON(stdout, map[string]any{"id": id, "revoked": true})
	}
	// bases
	if fs.NArg() != 0 {
		return usageError("agency bases: unexpected argument %q", fs.Arg(0))
	}
	if history {
		return basisHistory(ctx, m, agency, purpose, stdout)
	}
	bs, err := m.ConsentStore.LegalBases(ctx, agency, purpose)
	if errors.Is(err, consent.ErrInvalid) {
		return usageError("agency bases: %v", err)
	}
	if err != nil {
		return err
	}
	out := make([]basisView, 0, len(bs))
	for _, b := range bs {
		out = append(out, viewBasis(b))
	}
	return m.printJSON(stdout, map[string]any{"bases": out})
}

// basisHistory prints the legal bases' trail, oldest first, optionally
// only one agency's or purpose's events.
func basisHistory(ctx context.Context, m *Main, agency, purpose string, stdout io.Writer) error {
	out := []basisEventView{}
	var after int64
	for {
		page, err := m.ConsentStore.BasisTrail(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, e := range page {
			if (agency != "" && e.Agency != agency) || (purpose != "" && e.Purpose != purpose) {
				continue
			}
			out = append(out, basisEventView{Seq: e.Seq, ID: e.ID, At: e.At, Operator: e.Operator, Action: string(e.Action), BasisID: e.BasisID,
				Agency: e.Agency, Purpose: e.Purpose, Before: e.Before, After: e.After, Reason: e.Reason,
				Hash: base64.RawURLEncoding.EncodeToString(e.Hash)})
		}
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Seq
	}
	return m.printJSON(stdout, map[string]any{"events": out})
}
