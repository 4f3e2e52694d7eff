package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/represent"
)

// ScopeRepresentation lets the citizen choose, in the eID app, whom they act
// for in this login (idp.ScopeRepresentation).
const ScopeRepresentation = idp.ScopeRepresentation

// Claims of a token whose subject is a party the citizen represents (see
// docs/eid-app-protocol.md, "Representation"):
//
//	"act":            {"sub": ACTING_CITIZEN_SUBJECT}              (RFC 8693 section 4.1)
//	"representation": {"basis": "legal_representative"|"guardian"|"mandate",
//	                   "mandate_id": "mdt_…", "type": "organisation"|"person",
//	                   "services": [...], "categories": [...]}
//	"organisation":   {"tax_code": "…", "name": "…", "name_en": "…"} (an organisation's, public registry data)
const (
	ClaimAct            = "act"
	ClaimRepresentation = "representation"
	ClaimOrganisation   = "organisation"
)

// acting is the representation a login's tokens are issued under.
type acting struct {
	actor string // the acting citizen's subject
	rep   *represent.Representation
}

// onBehalf is the representative the consent record and the access log
// name: nil when the citizen acts for themselves.
func (a *acting) onBehalf() *consent.OnBehalf {
	if a == nil || a.rep == nil {
		return nil
	}
	return &consent.OnBehalf{CitizenID: a.actor, Basis: string(a.rep.Basis), MandateID: a.rep.MandateID}
}

// tokenOnBehalf is the same, read back from a token's act and
// representation claims.
func tokenOnBehalf(act *accesstoken.Actor, rep *accesstoken.Representation) *consent.OnBehalf {
	if act == nil || rep == nil {
		return nil
	}
	return &consent.OnBehalf{CitizenID: act.Subject, Basis: rep.Basis, MandateID: rep.MandateID}
}

// bounded reports whether the login acts under a representation bounded to
// services or categories (a mandate): it releases no registry data of the
// party (idp.RepresentationReleases).
func (a *acting) bounded() bool {
	return a != nil && a.rep != nil && !a.rep.Unbounded()
}

// tokenRepresentative is a token's act and representation as the release
// policy reads them: who acts, and whether the representation is bounded.
// An act without its representation claim counts as bounded: nothing of
// the party is released on a token that does not say why it may be.
func tokenRepresentative(act *accesstoken.Actor, rep *accesstoken.Representation) (*consent.OnBehalf, bool) {
	if act == nil {
		return nil, false
	}
	if rep == nil {
		return &consent.OnBehalf{CitizenID: act.Subject}, true
	}
	return tokenOnBehalf(act, rep), len(rep.Services) > 0 || len(rep.Categories) > 0
}

// wantsRepresentation reports whether an authorization request asks the
// representation scope.
func wantsRepresentation(scopes []string) bool {
	return slices.Contains(scopes, ScopeRepresentation)
}

// actAs is what the eID app's approval's act_as is checked with: the party
// it names, if the citizen represents it now (for a login: no service).
func (s *Server) actAs() eid.ActAsFunc {
	if s.cfg.Represent == nil {
		return nil
	}
	return func(ctx context.Context, citizenID, ref string) (*represent.Party, error) {
		p, err := s.cfg.Represent.ResolveParty(ctx, ref)
		if err != nil {
			return nil, representErr(err)
		}
		r, err := s.cfg.Represent.Check(ctx, citizenID, p.ID, "", "")
		if err != nil {
			return nil, representErr(err)
		}
		return &r.Party, nil
	}
}

// representErr maps the representation service's outage onto the IdP's,
// so the web layer answers 503, never a refusal.
func representErr(err error) error {
	if errors.Is(err, represent.ErrUnavailable) && !errors.Is(err, idp.ErrUnavailable) {
		return fmt.Errorf("%w: %w", idp.ErrUnavailable, err)
	}
	return err
}

// representation checks, now, that citizenID represents partyID and
// returns it; represent.ErrNotRepresented when not (any more).
func (s *Server) representation(ctx context.Context, citizenID, partyID string) (*acting, error) {
	if s.cfg.Represent == nil {
		return nil, represent.ErrNotRepresented
	}
	r, err := s.cfg.Represent.Check(ctx, citizenID, partyID, "", "")
	if err != nil {
		if errors.Is(err, represent.ErrNotFound) {
			return nil, represent.ErrNotRepresented
		}
		return nil, representErr(err)
	}
	return &acting{actor: citizenID, rep: r}, nil
}

// representationClaim is the representation claim of r.
func representationClaim(r *represent.Representation) *accesstoken.Representation {
	return &accesstoken.Representation{Basis: string(r.Basis), MandateID: r.MandateID, Type: string(r.Party.Type),
		Services: slices.Clone(r.Services), Categories: slices.Clone(r.Categories)}
}

// applyActing puts the representation into a grant's session: the party
// is the subject, the citizen acts (act), and the tokens carry the basis
// and its revocation keys and end with it.
func applyActing(os *oidc.Session, a *acting) {
	os.Subject = a.rep.Party.ID
	os.Act = &accesstoken.Actor{Subject: a.actor}
	os.Representation = representationClaim(a.rep)
	os.RevocationKeys = a.rep.RevocationKeys()
	os.RepresentedUntil = representedUntil(a.rep)
}

func representedUntil(r *represent.Representation) (t time.Time) {
	if r.Until != nil {
		t = r.Until.UTC()
	}
	return t
}

// organisationClaim is the organisation claim of an organisation party:
// business registry data, public. Nil when the party is not an
// organisation or is gone from the registry.
func (s *Server) organisationClaim(ctx context.Context, partyID string) (map[string]string, error) {
	if s.cfg.Represent == nil || !represent.IsOrgSubject(partyID) {
		return nil, nil
	}
	o, err := s.cfg.Represent.Store.GetOrganisationByID(ctx, partyID)
	if errors.Is(err, represent.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, representErr(err)
	}
	c := map[string]string{"tax_code": o.TaxCode, "name": o.Name}
	if o.NameEn != "" {
		c["name_en"] = o.NameEn
	}
	return c, nil
}

// actingClaims are the claims of a represented subject for an ID token or
// userinfo: act, representation and, for an organisation, organisation.
func (s *Server) actingClaims(ctx context.Context, sub string, act *accesstoken.Actor, rep *accesstoken.Representation) (map[string]any, error) {
	out := map[string]any{ClaimAct: map[string]string{"sub": act.Subject}, ClaimRepresentation: rep}
	org, err := s.organisationClaim(ctx, sub)
	if err != nil {
		return nil, err
	}
	if org != nil {
		out[ClaimOrganisation] = org
	}
	return out, nil
}

// recheckRepresentation refuses a code or refresh grant whose
// representation has ended (a mandate revoked, a ward come of age, an
// organisation's representative replaced), and brings the session's keys,
// basis and end up to date with the representation as it stands.
func (s *Server) recheckRepresentation(ctx context.Context, os *oidc.Session) error {
	a, err := s.representation(ctx, os.Act.Subject, os.Subject)
	if errors.Is(err, represent.ErrNotRepresented) {
		return fosite.ErrInvalidGrant.WithHint("The representation this grant was issued under has ended.")
	}
	if err != nil {
		return err
	}
	applyActing(os, a)
	if os.Claims != nil && os.Claims.Extra != nil {
		os.Claims.Extra[ClaimRepresentation] = os.Representation
	}
	// The access token ends with the representation (the strategy caps
	// its exp too); so does the expires_in the client is told.
	if u := os.RepresentedUntil; !u.IsZero() && u.Before(os.GetExpiresAt(fosite.AccessToken)) {
		os.SetExpiresAt(fosite.AccessToken, u)
	}
	return nil
}

// userinfoOrganisation answers userinfo for a token whose subject is an
// organisation: its public registry entry and who acts for it; no registry
// claim of any citizen, and no consent (nothing personal is released).
func (s *Server) userinfoOrganisation(ctx context.Context, w http.ResponseWriter, scheme string, c *accesstoken.Claims) {
	out, err := s.actingClaims(ctx, c.Subject, c.Act, c.Representation)
	if err != nil {
		s.unavailable(w, "representation store", err)
		return
	}
	if _, ok := out[ClaimOrganisation]; !ok {
		// Gone from the business registry (or representation turned off).
		s.invalidToken(w, scheme, "invalid_token", "The access token is not valid.")
		return
	}
	out["sub"] = c.Subject
	writeJSON(w, http.StatusOK, out)
}
