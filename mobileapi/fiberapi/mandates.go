package fiberapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/problem"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/search"
	"github.com/onedoor/onedoor/represent"
	"github.com/onedoor/onedoor/represent/evidence"
)

// The representation routes (issue 10): whom the citizen may act for, and
// the mandates they grant and receive. A mandate is granted with the
// grantor's eID device signature over its exact terms (represent/evidence),
// kept with it as evidence.

func (s *Server) representRoutes(v1 fiber.Router) {
	if s.cfg.Represent == nil {
		return
	}
	v1.Get("/representations", s.listRepresentations)
	v1.Get("/mandates", s.listMandates)
	v1.Post("/mandates", s.grantMandate)
	v1.Get("/mandates/:id", s.getMandate)
	v1.Post("/mandates/:id/accept", s.acceptMandate)
	v1.Delete("/mandates/:id", s.revokeMandate)
}

// maxMandateBody bounds a grant's body: 50 services and 50 categories and
// the signature over them fit well within it.
const maxMandateBody = 64 << 10

var (
	tNotRepresented = text{VI: "Không phải người đại diện", EN: "Not a representative"}
	// tMandateNotAllowed: the caller is a party to the mandate but may
	// not do this to it (the grantor accepting).
	tMandateNotAllowed = text{VI: "Không được phép với ủy quyền này", EN: "Not allowed on this mandate"}
)

// repErr maps the representation area's errors onto problems: its field
// errors onto a 422 listing each, its sentinels onto the ones problems are
// made from; an outage wins over what it wraps.
func repErr(err error) error {
	var inv represent.InvalidError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, represent.ErrUnavailable):
		return errors.Join(err, idp.ErrUnavailable)
	case errors.As(err, &inv):
		errs := make([]fieldError, 0, len(inv))
		for _, f := range inv {
			errs = append(errs, fieldError{Pointer: "/" + f.Field, Message: f.Detail})
		}
		return unprocessable(errs)
	case errors.Is(err, represent.ErrNotRepresented):
		return &badRequest{status: http.StatusForbidden, typ: typeForbidden, title: tNotRepresented,
			detail: "You do not represent this party (as its legal representative, guardian, or under a mandate that may be delegated and covers these services for this long)."}
	case errors.Is(err, represent.ErrForbidden):
		return &badRequest{status: http.StatusForbidden, typ: typeForbidden, title: tMandateNotAllowed,
			detail: "Only the grantee accepts a mandate; the grantor or the grantee may revoke it."}
	case errors.Is(err, represent.ErrNotFound):
		return errors.Join(err, idp.ErrNotFound)
	case errors.Is(err, represent.ErrConflict):
		return &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict,
			detail: "The mandate is no longer pending or was already revoked, or you hold too many active mandates."}
	case errors.Is(err, represent.ErrInvalid):
		return unprocessable([]fieldError{{Pointer: "", Message: "The request is not valid."}})
	}
	return err
}

// partyView is whom a representation or a mandate is for.
type partyView struct {
	Type       represent.PartyType `json:"type"`
	ID         string              `json:"id"`
	TaxCode    *string             `json:"tax_code"`
	PersonalID *string             `json:"personal_id"`
	Name       string              `json:"name"`
}

func partyOf(p represent.Party) partyView {
	return partyView{Type: p.Type, ID: p.ID, TaxCode: nullable(p.TaxCode), PersonalID: nullable(p.PersonalID), Name: p.Name}
}

// personView names a citizen to another: their personal id and name.
type personView struct {
	PersonalID string `json:"personal_id"`
	Name       string `json:"name"`
}

type representationView struct {
	Party partyView       `json:"party"`
	Basis represent.Basis `json:"basis"`
	// Services and Categories are null when the representation covers
	// every service (a legal representative, a guardian).
	Services    []string    `json:"services"`
	Categories  []string    `json:"categories"`
	MandateID   *string     `json:"mandate_id"`
	Grantor     *personView `json:"grantor"`
	Until       *time.Time  `json:"until"`
	MayDelegate bool        `json:"may_delegate"`
}

type mandateView struct {
	ID          string     `json:"id"`
	Direction   string     `json:"direction"`
	State       string     `json:"state"`
	Party       partyView  `json:"party"`
	Grantor     personView `json:"grantor"`
	Grantee     personView `json:"grantee"`
	Services    []string   `json:"services"`
	Categories  []string   `json:"categories"`
	ValidFrom   time.Time  `json:"valid_from"`
	ValidUntil  time.Time  `json:"valid_until"`
	MayDelegate bool       `json:"may_delegate"`
	ParentID    *string    `json:"parent_id"`
	CreatedAt   time.Time  `json:"created_at"`
	AcceptedAt  *time.Time `json:"accepted_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	RevokedBy   *string    `json:"revoked_by"`
	// Evidence is the grantor's device-signed JWS over the terms.
	Evidence string `json:"evidence"`
}

// Directions of a mandate, from the caller's side.
const (
	directionGranted  = "granted"
	directionReceived = "received"
)

// people resolves citizens' subjects to how others know them, once each.
type people struct {
	s     *Server
	ctx   context.Context
	known map[string]personView
}

func (s *Server) people(ctx context.Context) *people {
	return &people{s: s, ctx: ctx, known: map[string]personView{}}
}

func (p *people) get(id string) (personView, error) {
	if v, ok := p.known[id]; ok {
		return v, nil
	}
	c, err := p.s.cfg.Citizens.GetCitizen(p.ctx, id)
	switch {
	case errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable):
		// A citizen since removed from the registry: the mandate still
		// shows, without their name.
		p.known[id] = personView{}
		return personView{}, nil
	case err != nil:
		return personView{}, err
	}
	v := personView{PersonalID: c.PersonalID, Name: c.Name()}
	p.known[id] = v
	return v, nil
}

func (p *people) mandate(m *represent.Mandate, me string, now time.Time) (mandateView, error) {
	grantor, err := p.get(m.GrantorID)
	if err != nil {
		return mandateView{}, err
	}
	grantee, err := p.get(m.GranteeID)
	if err != nil {
		return mandateView{}, err
	}
	v := mandateView{ID: m.ID, Direction: directionReceived, State: m.State(now), Party: partyOf(m.Party),
		Grantor: grantor, Grantee: grantee, Services: nonNilStrings(m.Services), Categories: nonNilStrings(m.Categories),
		ValidFrom: m.ValidFrom.UTC(), ValidUntil: m.ValidUntil.UTC(), MayDelegate: m.MayDelegate, ParentID: nullable(m.ParentID),
		CreatedAt: m.CreatedAt.UTC(), AcceptedAt: utcPtr(m.AcceptedAt), RevokedAt: utcPtr(m.RevokedAt), Evidence: m.Evidence}
	if m.GrantorID == me {
		v.Direction = directionGranted
	}
	if m.RevokedAt != nil {
		// Who revoked, as a role: the other party's subject is not theirs
		// to see.
		by := represent.OperatorActor
		switch m.RevokedBy {
		case m.GrantorID:
			by = "grantor"
		case m.GranteeID:
			by = "grantee"
		case represent.ParentActor:
			by = represent.ParentActor
		}
		v.RevokedBy = &by
	}
	return v, nil
}

func (s *Server) listRepresentations(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	rs, err := s.cfg.Represent.Representations(ctx, citizenOf(c))
	if err != nil {
		return s.fail(c, repErr(err))
	}
	ppl := s.people(ctx)
	out := struct {
		Items []representationView `json:"items"`
	}{Items: make([]representationView, 0, len(rs))}
	for _, r := range rs {
		v := representationView{Party: partyOf(r.Party), Basis: r.Basis, MandateID: nullable(r.MandateID),
			Until: utcPtr(r.Until), MayDelegate: r.MayDelegate}
		if !r.Unbounded() {
			v.Services, v.Categories = nonNilStrings(r.Services), nonNilStrings(r.Categories)
		}
		if r.GrantorID != "" {
			g, err := ppl.get(r.GrantorID)
			if err != nil {
				return s.fail(c, err)
			}
			v.Grantor = &g
		}
		out.Items = append(out.Items, v)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(out)
}

func (s *Server) listMandates(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	limit := p.Limit
	if limit == 0 {
		limit = mobileapi.DefaultLimit
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	me := citizenOf(c)
	ms, err := s.cfg.Represent.Mandates(ctx, me)
	if err != nil {
		return s.fail(c, repErr(err))
	}
	// The store lists every mandate of the citizen, newest first (a bounded
	// number: MaxGranted active ones, and what they received); the cursor
	// is the last id of the previous page.
	start := 0
	if p.Cursor != "" {
		i := slices.IndexFunc(ms, func(m *represent.Mandate) bool { return m.ID == p.Cursor })
		if i < 0 {
			return s.fail(c, invalidParam("cursor", "The cursor is not valid; start again from the first page."))
		}
		start = i + 1
	}
	end, next := min(start+limit, len(ms)), ""
	if end < len(ms) {
		next = ms[end-1].ID
	}
	now := s.cfg.Now()
	ppl := s.people(ctx)
	items := make([]mandateView, 0, end-start)
	for _, m := range ms[start:end] {
		v, err := ppl.mandate(m, me, now)
		if err != nil {
			return s.fail(c, err)
		}
		items = append(items, v)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(items, next))
}

func (s *Server) getMandate(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	m, err := s.cfg.Represent.Mandate(ctx, citizenOf(c), idParam(c, "id"))
	if err != nil {
		return s.fail(c, repErr(err))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return s.sendMandate(ctx, c, http.StatusOK, m)
}

func (s *Server) sendMandate(ctx context.Context, c *fiber.Ctx, status int, m *represent.Mandate) error {
	v, err := s.people(ctx).mandate(m, citizenOf(c), s.cfg.Now())
	if err != nil {
		return s.fail(c, err)
	}
	return c.Status(status).JSON(v)
}

// mandateGrant is the body of POST /v1/mandates. Times are strings so a bad
// one is listed with the other bad fields instead of failing the decoding.
type mandateGrant struct {
	Organisation *string  `json:"organisation"`
	Person       *string  `json:"person"`
	Grantee      string   `json:"grantee"`
	Services     []string `json:"services"`
	Categories   []string `json:"categories"`
	ValidFrom    *string  `json:"valid_from"`
	ValidUntil   string   `json:"valid_until"`
	MayDelegate  bool     `json:"may_delegate"`
	Signature    string   `json:"signature"`
}

// maxTermsChecked bounds the catalog lookups of one request; the service
// refuses more terms than this anyway.
const maxTermsChecked = 50

// grantMandate grants a mandate: the body's terms, checked against the
// catalog, signed by the device the token is bound to (and by no other),
// for this API, lately and once, then granted by the representation
// service, which checks the grantor may.
//
// The signature's jti is spent before the grant: a grant refused after it
// (a grantee that does not exist) is signed again by the app with a new
// jti. A retry with the same Idempotency-Key is answered from the first
// grant without verifying again.
func (s *Server) grantMandate(c *fiber.Ctx) error {
	if len(c.Body()) > maxMandateBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	return s.idempotent(c, "citizen:"+citizenOf(c), s.replayMandate(c), func() (string, error) {
		var in mandateGrant
		if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
			return "", s.fail(c, err)
		}
		ctx, cancel := s.ctx(c)
		defer cancel()
		terms := evidence.Terms{Grantee: in.Grantee, Services: in.Services, Categories: in.Categories, MayDelegate: in.MayDelegate}
		var errs []fieldError
		if in.Organisation != nil {
			terms.Organisation = *in.Organisation
		}
		if in.Person != nil {
			terms.Person = *in.Person
		}
		if in.ValidFrom != nil {
			t, err := time.Parse(time.RFC3339, *in.ValidFrom)
			if err != nil {
				errs = append(errs, fieldError{Pointer: "/valid_from", Message: "An RFC 3339 date-time, such as 2027-01-01T00:00:00+07:00."})
			} else {
				terms.ValidFrom = &t
			}
		}
		if in.ValidUntil == "" {
			errs = append(errs, fieldError{Pointer: "/valid_until", Message: "Required: when the mandate ends (a mandate never lasts for ever)."})
		} else if t, err := time.Parse(time.RFC3339, in.ValidUntil); err != nil {
			errs = append(errs, fieldError{Pointer: "/valid_until", Message: "An RFC 3339 date-time, such as 2027-01-01T00:00:00+07:00."})
		} else {
			terms.ValidUntil = t
		}
		catalogErrs, err := s.checkCatalogTerms(ctx, in.Services, in.Categories)
		if err != nil {
			return "", s.fail(c, err)
		}
		errs = append(errs, catalogErrs...)
		if in.Signature == "" {
			errs = append(errs, fieldError{Pointer: "/signature", Message: "Required: the compact JWS (typ " + evidence.Type + ") the device key signed over these terms."})
		}
		if len(errs) > 0 {
			return "", s.fail(c, unprocessable(errs))
		}
		if s.cfg.Ephemeral == nil { // wired in every deployment; without it a signature could be replayed
			return "", s.fail(c, errUnavailable(errors.New("mandate evidence: no replay cache configured")))
		}
		ev, err := evidence.Verify(ctx, in.Signature, evidence.Check{Audience: s.cfg.APIURL, JKT: jktOf(c), Device: deviceOf(c),
			Terms: terms, Now: s.cfg.Now(), Spent: func(err error) bool { return errors.Is(err, idp.ErrConflict) }}, s.cfg.Ephemeral)
		if errors.Is(err, evidence.ErrInvalid) {
			msg := strings.TrimSuffix(err.Error(), ": "+evidence.ErrInvalid.Error())
			return "", s.fail(c, unprocessable([]fieldError{{Pointer: "/signature", Message: "Not a valid signature of these terms: " + msg + "."}}))
		}
		if err != nil {
			return "", s.fail(c, errUnavailable(err))
		}
		req := represent.GrantRequest{GrantorID: citizenOf(c), Organisation: terms.Organisation, Person: terms.Person,
			Grantee: in.Grantee, Services: in.Services, Categories: in.Categories, ValidUntil: terms.ValidUntil,
			MayDelegate: in.MayDelegate, Evidence: in.Signature, EvidenceDevice: deviceOf(c)}
		if terms.ValidFrom != nil {
			req.ValidFrom = *terms.ValidFrom
		}
		m, err := s.cfg.Represent.Grant(ctx, req)
		if errors.Is(err, represent.ErrUnavailable) {
			// Nothing was granted: the signature may be sent again, so the
			// app's retry after this 503 is not taken for a replay.
			_ = s.cfg.Ephemeral.Delete(context.WithoutCancel(ctx), ev.ReplayKey())
		}
		if err != nil {
			return "", s.fail(c, repErr(err))
		}
		c.Set(fiber.HeaderLocation, "/v1/mandates/"+m.ID)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return m.ID, s.sendMandate(ctx, c, http.StatusCreated, m)
	})
}

// replayMandate answers a retried grant with the mandate as it now stands.
func (s *Server) replayMandate(c *fiber.Ctx) func(ctx context.Context, ref string) error {
	return func(ctx context.Context, ref string) error {
		m, err := s.cfg.Represent.Mandate(ctx, citizenOf(c), ref)
		if err != nil {
			return repErr(err)
		}
		c.Set(fiber.HeaderLocation, "/v1/mandates/"+m.ID)
		v, err := s.people(ctx).mandate(m, citizenOf(c), s.cfg.Now())
		if err != nil {
			return err
		}
		return c.Status(http.StatusCreated).JSON(v)
	}
}

// checkCatalogTerms lists the services that are not in the catalog and the
// categories no service of the catalog has: a mandate names what exists.
func (s *Server) checkCatalogTerms(ctx context.Context, services, categories []string) ([]fieldError, error) {
	var errs []fieldError
	if len(services) > maxTermsChecked {
		errs = append(errs, fieldError{Pointer: "/services", Message: fmt.Sprintf("At most %d services.", maxTermsChecked)})
		services = nil
	}
	if len(categories) > maxTermsChecked {
		errs = append(errs, fieldError{Pointer: "/categories", Message: fmt.Sprintf("At most %d categories.", maxTermsChecked)})
		categories = nil
	}
	for i, code := range services {
		if code == "" || len(code) > 64 {
			continue // the service lists its form
		}
		_, err := s.cfg.Store.GetServiceByCode(ctx, code)
		switch {
		case errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable):
			errs = append(errs, fieldError{Pointer: "/services/" + strconv.Itoa(i), Message: "No service of the catalog has this code."})
		case err != nil:
			return nil, err
		}
	}
	if len(categories) == 0 {
		return errs, nil
	}
	idx, err := s.cfg.Catalog.Index(ctx)
	if err != nil {
		return nil, err
	}
	for i, cat := range categories {
		if cat != "" && len(idx.Search(search.Query{Category: cat, Limit: 1})) == 0 {
			errs = append(errs, fieldError{Pointer: "/categories/" + strconv.Itoa(i), Message: "No service of the catalog is of this category."})
		}
	}
	return errs, nil
}

func (s *Server) acceptMandate(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	m, err := s.cfg.Represent.Accept(ctx, citizenOf(c), idParam(c, "id"))
	if err != nil {
		return s.fail(c, repErr(err))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return s.sendMandate(ctx, c, http.StatusOK, m)
}

// revokeMandate revokes a mandate (and what was delegated from it) as a
// consent is withdrawn: the record stays, revoked, and is answered.
func (s *Server) revokeMandate(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	m, err := s.cfg.Represent.Revoke(ctx, citizenOf(c), idParam(c, "id"))
	if err != nil {
		return s.fail(c, repErr(err))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return s.sendMandate(ctx, c, http.StatusOK, m)
}
