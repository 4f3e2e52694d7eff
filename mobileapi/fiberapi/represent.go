package fiberapi

import (
	"context"
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/represent"
)

// Applications filed for someone else: the representation service (never
// the client, never the token alone) says whom a citizen acts for, asked
// again before every change, so a mandate revoked or a legal
// representative replaced stops the next write at once.

// subjectInput names whom an application is for: exactly one of an
// organisation's tax code and a person's personal id.
type subjectInput struct {
	Organisation *string `json:"organisation"`
	Person       *string `json:"person"`
}

var (
	errNotRepresentative = forbidden("You are not a representative of this party for this service, or no longer are.")
	errRepresentationOff = forbidden("This service does not accept applications filed for someone else: the person concerned must apply themselves.")
	errNotApplicant      = forbidden("Only the applicant who filed the application changes it.")
)

// subjectOf resolves the subject a new application names for citizenID:
// nil for the citizen themself. It checks that the service accepts
// representation and that the citizen represents the party for it.
func (s *Server) subjectOf(ctx context.Context, citizenID string, in *subjectInput, svc *mobileapi.Service) (*represent.Party, error) {
	if in == nil {
		return nil, nil
	}
	var ref, ptr string
	switch {
	case in.Organisation != nil && in.Person == nil:
		ref, ptr = *in.Organisation, "/subject/organisation"
		if !represent.ValidTaxCode(ref) {
			return nil, unprocessable([]fieldError{{Pointer: ptr, Message: "A tax code is 10 digits, or 10 digits, a dash and 3 digits."}})
		}
	case in.Person != nil && in.Organisation == nil:
		ref, ptr = *in.Person, "/subject/person"
		if !personalIDRE.MatchString(ref) {
			return nil, unprocessable([]fieldError{{Pointer: ptr, Message: "A personal id is 12 digits."}})
		}
	default:
		return nil, unprocessable([]fieldError{{Pointer: "/subject", Message: "Name exactly one of organisation (a tax code) and person (a personal id)."}})
	}
	if s.cfg.Represent == nil {
		return nil, invalidBody("/subject", "This server does not file applications for someone else: leave subject out to apply for yourself.")
	}
	p, err := s.cfg.Represent.ResolveParty(ctx, ref)
	switch {
	case errors.Is(err, represent.ErrNotFound) || (errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable)):
		what := "No organisation has this tax code."
		if in.Person != nil {
			what = "No citizen has this personal id."
		}
		return nil, invalidBody(ptr, what)
	case errors.Is(err, represent.ErrInvalid):
		return nil, unprocessable([]fieldError{{Pointer: ptr, Message: "Neither a tax code nor a personal id."}})
	case err != nil:
		return nil, repErr(err)
	}
	if p.ID == citizenID {
		return nil, nil // oneself, named
	}
	if !svc.AcceptsRepresentation() {
		return nil, errRepresentationOff
	}
	if err := s.represents(ctx, citizenID, p.ID, svc.Code, svc.Category); err != nil {
		return nil, err
	}
	return &p, nil
}

// represents asks whether the citizen acts for the party on the service
// now: errNotRepresentative otherwise.
func (s *Server) represents(ctx context.Context, citizenID, partyID, serviceCode, category string) error {
	if s.cfg.Represent == nil {
		return errNotRepresentative
	}
	_, err := s.cfg.Represent.Check(ctx, citizenID, partyID, serviceCode, category)
	switch {
	case errors.Is(err, represent.ErrNotRepresented), errors.Is(err, represent.ErrNotFound):
		return errNotRepresentative
	case err != nil:
		return repErr(err)
	}
	return nil
}

// mayChange checks a change the caller asks of a: only its applicant makes
// it, and one who filed it for someone else must still represent them for
// its service, which must still accept representation. The application
// is left as it is when they no longer may.
func (s *Server) mayChange(ctx context.Context, c *fiber.Ctx, a *mobileapi.Application) error {
	if a.CitizenID != citizenOf(c) {
		return errNotApplicant
	}
	if !a.ForSomeoneElse() {
		return nil
	}
	if svc, err := s.cfg.Store.GetService(ctx, a.ServiceID); err != nil {
		return err
	} else if !svc.AcceptsRepresentation() {
		return errRepresentationOff
	}
	return s.represents(ctx, a.CitizenID, a.Subject.ID, a.ServiceCode, a.ServiceCategory)
}

// representations are the parties the citizen acts for now (none without
// a representation service, or for a citizen the registry does not know).
func (s *Server) representations(ctx context.Context, citizenID string) ([]represent.Representation, error) {
	if s.cfg.Represent == nil {
		return nil, nil
	}
	rs, err := s.cfg.Represent.Representations(ctx, citizenID)
	if errors.Is(err, represent.ErrNotFound) || (errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable)) {
		return nil, nil
	}
	if err != nil {
		return nil, repErr(err)
	}
	if len(rs) > mobileapi.MaxRepresented {
		rs = rs[:mobileapi.MaxRepresented]
	}
	return rs, nil
}

// readScope is the caller's scope for reading applications: their own,
// those about them, and those about every party they represent now,
// within each representation's services.
func (s *Server) readScope(ctx context.Context, c *fiber.Ctx) (mobileapi.Scope, error) {
	scope := citizenScope(c)
	rs, err := s.representations(ctx, scope.CitizenID)
	if err != nil {
		return scope, err
	}
	scope.Represents = represented(rs)
	return scope, nil
}

func represented(rs []represent.Representation) []mobileapi.Represented {
	out := make([]mobileapi.Represented, 0, len(rs))
	for _, r := range rs {
		out = append(out, mobileapi.Represented{PartyID: r.Party.ID, Services: r.Services, Categories: r.Categories})
	}
	return out
}

// recipients are every citizen an inbox message about a reaches
// (Transition.Recipients): the applicant of their own application; for
// one filed for someone else, the subject when a person and whoever
// represents the subject for this service now (a ward's guardians, an
// organisation's legal representative, the holders of mandates covering
// the service). The applicant is among them only while they still
// represent the subject: a former employee or guardian is told nothing.
func (s *Server) recipients(ctx context.Context, a *mobileapi.Application) ([]string, error) {
	if !a.ForSomeoneElse() {
		return []string{a.CitizenID}, nil
	}
	var out []string
	if a.Subject.Type == mobileapi.SubjectPerson {
		out = append(out, a.Subject.ID)
	}
	if s.cfg.Represent == nil {
		return out, nil
	}
	reps, err := s.cfg.Represent.RepresentativesFor(ctx, represent.Party{Type: represent.PartyType(a.Subject.Type), ID: a.Subject.ID, Name: a.Subject.Name},
		a.ServiceCode, a.ServiceCategory)
	if errors.Is(err, represent.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, repErr(err)
	}
	return append(out, reps...), nil
}

// forgetHomes drops the cached home of everyone an application shows on:
// its applicant and its subject (representatives' homes follow within
// homeTTL).
func (s *Server) forgetHomes(a *mobileapi.Application, others ...string) {
	s.homes.forget(a.CitizenID)
	if a.Subject.ID != "" && a.Subject.ID != a.CitizenID {
		s.homes.forget(a.Subject.ID)
	}
	for _, o := range others {
		s.homes.forget(o)
	}
}

// forChange reads the application the caller asks to change, with the
// scope the store must be given to change it: their own under their plain
// scope; one they filed for a party they still represent for its service
// under their representations (mayChange then checks again). One they may
// see but did not file (their ward's, their company's) is errNotApplicant;
// one they may not see, or filed for a party they no longer represent, is
// not found. Only what the plain scope misses costs the look-up.
func (s *Server) forChange(ctx context.Context, c *fiber.Ctx, id string) (*mobileapi.Application, mobileapi.Scope, error) {
	scope := citizenScope(c)
	a, err := s.cfg.Store.GetApplication(ctx, scope, id)
	if errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) && s.cfg.Represent != nil {
		rscope, serr := s.readScope(ctx, c)
		if serr != nil {
			return nil, scope, serr
		}
		ra, rerr := s.cfg.Store.GetApplication(ctx, rscope, id)
		switch {
		case rerr != nil:
			return nil, scope, rerr
		case ra.CitizenID != scope.CitizenID:
			return nil, scope, errNotApplicant
		}
		return ra, rscope, nil
	}
	return a, scope, err
}

// readable reads an application the caller may see: their own (or one
// about them) without asking the representation service, else one about
// a party they represent now for its service.
func (s *Server) readable(ctx context.Context, c *fiber.Ctx, id string) (*mobileapi.Application, error) {
	a, err := s.cfg.Store.GetApplication(ctx, citizenScope(c), id)
	if errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) && s.cfg.Represent != nil {
		scope, serr := s.readScope(ctx, c)
		if serr != nil {
			return nil, serr
		}
		return s.cfg.Store.GetApplication(ctx, scope, id)
	}
	return a, err
}
