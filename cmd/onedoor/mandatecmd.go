package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/represent"
)

// mandateView is how the mandate commands show a mandate: citizens by
// personal id, as operators know them; the evidence is left out (it is the
// device-signed JWS, kept for disputes, not for reading).
type mandateView struct {
	ID          string     `json:"id"`
	State       string     `json:"state"`
	Grantor     string     `json:"grantor"`
	Grantee     string     `json:"grantee"`
	PartyType   string     `json:"party_type"`
	Party       string     `json:"party"` // tax code or personal id
	PartyName   string     `json:"party_name"`
	Services    []string   `json:"services"`
	Categories  []string   `json:"categories"`
	ValidFrom   time.Time  `json:"valid_from"`
	ValidUntil  time.Time  `json:"valid_until"`
	MayDelegate bool       `json:"may_delegate"`
	ParentID    string     `json:"parent_id,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	AcceptedAt  *time.Time `json:"accepted_at,omitempty"`
	RevokedAt   *time.Time `json:"revoked_at,omitempty"`
	RevokedBy   string     `json:"revoked_by,omitempty"` // grantor, grantee, operator or parent
}

func (m *Main) viewMandate(ctx context.Context, md *represent.Mandate) (mandateView, error) {
	pid := func(id string) (string, error) {
		c, err := m.Store.GetCitizen(ctx, id)
		if errors.Is(err, idp.ErrNotFound) {
			return "(unregistered)", nil
		}
		if err != nil {
			return "", err
		}
		return c.PersonalID, nil
	}
	grantor, err := pid(md.GrantorID)
	if err != nil {
		return mandateView{}, err
	}
	grantee, err := pid(md.GranteeID)
	if err != nil {
		return mandateView{}, err
	}
	by := md.RevokedBy
	switch by {
	case md.GrantorID:
		by = "grantor"
	case md.GranteeID:
		by = "grantee"
	}
	return mandateView{ID: md.ID, State: md.State(m.Now()), Grantor: grantor, Grantee: grantee, PartyType: string(md.Party.Type),
		Party: md.Party.Ref(), PartyName: md.Party.Name, Services: nonNil(md.Services), Categories: nonNil(md.Categories),
		ValidFrom: md.ValidFrom, ValidUntil: md.ValidUntil, MayDelegate: md.MayDelegate, ParentID: md.ParentID,
		CreatedAt: md.CreatedAt, AcceptedAt: md.AcceptedAt, RevokedAt: md.RevokedAt, RevokedBy: by}, nil
}

// mandateCmd runs `onedoor mandate list|show|revoke`: an operator's view of
// mandates (a citizen's, granted or received) and the revocation an
// operator makes, for instance on a court's order or a reported fraud. A
// revocation takes every sub-mandate with it and denies the tokens issued
// under any of them on every replica.
func mandateCmd(ctx context.Context, args []string, env func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("mandate: want list, show or revoke")
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list", "show", "revoke":
	default:
		return usageError("mandate: unknown subcommand %q (want list, show or revoke)", sub)
	}
	var personalID string
	m, fs, err := adminMain(ctx, "mandate "+sub, args, env, func(fs *flag.FlagSet) {
		if sub == "list" {
			fs.StringVar(&personalID, "personal-id", "", "the citizen whose mandates (granted or received) to list")
		}
	})
	if err != nil {
		return err
	}
	defer m.Close()
	if sub == "list" {
		if fs.NArg() != 0 || !idp.ValidPersonalID(personalID) {
			return usageError("mandate list: want --personal-id (12 digits)")
		}
		c, err := m.Store.GetCitizenByPersonalID(ctx, personalID)
		if errors.Is(err, idp.ErrNotFound) {
			return fmt.Errorf("no citizen has personal id %s: %w", personalID, err)
		}
		if err != nil {
			return err
		}
		ms, err := m.Represent.Mandates(ctx, c.ID)
		if err != nil {
			return err
		}
		out := make([]mandateView, 0, len(ms))
		for _, md := range ms {
			v, err := m.viewMandate(ctx, md)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return m.printJSON(stdout, map[string]any{"mandates": out})
	}
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return usageError("mandate %s: want one mandate ID (mdt_…)", sub)
	}
	var md *represent.Mandate
	if sub == "show" {
		md, err = m.RepStore.GetMandate(ctx, fs.Arg(0))
	} else {
		md, err = m.Represent.Revoke(ctx, represent.OperatorActor, fs.Arg(0))
	}
	switch {
	case errors.Is(err, represent.ErrNotFound):
		return fmt.Errorf("no mandate %s: %w", fs.Arg(0), err)
	case errors.Is(err, represent.ErrConflict):
		return fmt.Errorf("mandate %s was revoked already: %w", fs.Arg(0), err)
	case err != nil:
		return err
	}
	v, err := m.viewMandate(ctx, md)
	if err != nil {
		return err
	}
	return m.printJSON(stdout, v)
}
