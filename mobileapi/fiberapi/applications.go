package fiberapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/form"
	"github.com/onedoor/onedoor/mobileapi/province"
	"github.com/onedoor/onedoor/represent"
)

func citizenScope(c *fiber.Ctx) mobileapi.Scope { return mobileapi.Scope{CitizenID: citizenOf(c)} }

// sendApplication writes the citizen's view of an application with its
// ETag, answering 304 when the client holds it.
func (s *Server) sendApplication(c *fiber.Ctx, status int, a *mobileapi.Application) error {
	if c.Method() != http.MethodGet {
		s.forgetHomes(a)
	}
	etag := appETag(a)
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	if status == http.StatusOK && c.Method() == http.MethodGet && notModified(c, etag) {
		return c.SendStatus(http.StatusNotModified)
	}
	return c.Status(status).JSON(application(a, resultHref))
}

type applicationCreate struct {
	ServiceID  string `json:"service_id"`
	AgencyCode string `json:"agency_code"`
	// Subject, when set, files the application for a party the citizen
	// represents; absent, for themself.
	Subject *subjectInput `json:"subject"`
}

var personalIDRE = regexp.MustCompile(`^[0-9]{12}$`)

// createApplication creates a draft pre-filled from the citizen register,
// routed to the competent agency.
func (s *Server) createApplication(c *fiber.Ctx) error {
	if len(c.Body()) > maxJSONBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	return s.idempotent(c, "citizen:"+citizenOf(c), s.replayApplication(c), func() (string, error) {
		var in applicationCreate
		if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
			return "", s.fail(c, err)
		}
		if in.ServiceID == "" {
			return "", s.fail(c, unprocessable([]fieldError{{Pointer: "/service_id", Message: "Required."}}))
		}
		ctx, cancel := s.ctx(c)
		defer cancel()
		svc, err := s.cfg.Store.GetService(ctx, in.ServiceID)
		if errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) {
			return "", s.fail(c, unprocessable([]fieldError{{Pointer: "/service_id", Message: "No such service."}}))
		}
		if err != nil {
			return "", s.fail(c, err)
		}
		cit, err := s.cfg.Citizens.GetCitizen(ctx, citizenOf(c))
		if err != nil {
			return "", s.fail(c, err)
		}
		party, err := s.subjectOf(ctx, cit.ID, in.Subject, svc)
		if err != nil {
			return "", s.fail(c, err)
		}
		a := &mobileapi.Application{CitizenID: cit.ID, ApplicantName: cit.Name(), ServiceID: svc.ID, ServiceCode: svc.Code,
			ServiceCategory: svc.Category, ServiceVersion: svc.Version, Status: mobileapi.StatusDraft,
			Subject: mobileapi.Subject{Type: mobileapi.SubjectPerson, ID: cit.ID, Name: cit.Name(), Ref: cit.PersonalID}}
		// The register data a draft is pre-filled with, and the address
		// the competent agency is found by, are the subject's: a ward's,
		// never the guardian's. An organisation has no register entry in
		// the citizen registry, so nothing is pre-filled for it.
		prefillFor, address := cit.ID, cit.Address
		if party != nil {
			a.Subject = mobileapi.Subject{Type: string(party.Type), ID: party.ID, Name: party.Name, Ref: party.Ref()}
			prefillFor, address = "", ""
			switch party.Type {
			case represent.TypePerson:
				ward, err := s.cfg.Citizens.GetCitizen(ctx, party.ID)
				if err != nil {
					return "", s.fail(c, err)
				}
				prefillFor, address = ward.ID, ward.Address
			case represent.TypeOrganisation:
				if o, err := s.cfg.Represent.Store.GetOrganisationByID(ctx, party.ID); err == nil {
					address = o.Address
				} else if !errors.Is(err, represent.ErrNotFound) {
					return "", s.fail(c, repErr(err))
				}
			}
		}
		agency, err := s.competentAgency(ctx, svc, address, in.AgencyCode)
		if err != nil {
			return "", s.fail(c, err)
		}
		f, err := s.schemas.get(svc)
		if err != nil {
			return "", s.fail(c, fmt.Errorf("service %s schema: %w", svc.ID, err))
		}
		doc, prov, err := s.prefill(ctx, f, prefillFor, svc.Code, agency)
		if err != nil {
			return "", s.fail(c, err)
		}
		a.AgencyCode, a.Form, a.Prefilled = agency, doc, prov
		if err := s.cfg.Store.CreateApplication(ctx, a); err != nil {
			return "", s.fail(c, err)
		}
		c.Set(fiber.HeaderLocation, "/v1/applications/"+a.ID)
		return a.ID, s.sendApplication(c, http.StatusCreated, a)
	})
}

// replayApplication answers a retried creation with the draft as it now
// stands.
func (s *Server) replayApplication(c *fiber.Ctx) func(ctx context.Context, ref string) error {
	return func(ctx context.Context, ref string) error {
		a, err := s.readable(ctx, c, ref) // filed for a party: theirs while they represent it
		if err != nil {
			return err
		}
		c.Set(fiber.HeaderLocation, "/v1/applications/"+a.ID)
		return s.sendApplication(c, http.StatusCreated, a)
	}
}

// prefill fills the draft's x-prefill fields from the register through
// the data broker, as the citizen's own request for this service (the
// purpose) handled by its competent agency: only the items the form names
// are read, and the release is in the citizen's access log before the
// draft exists. citizenID is the subject's (a guardian's request for a
// ward is the ward's, made by their representative, and logged in the
// ward's log); "" pre-fills nothing (an organisation). Without a broker
// configured nothing is pre-filled.
func (s *Server) prefill(ctx context.Context, f *form.Form, citizenID, service, agency string) (json.RawMessage, map[string]mobileapi.Provenance, error) {
	items := f.PrefillItems()
	if s.cfg.Consent == nil || s.cfg.Registry == nil || len(items) == 0 || citizenID == "" {
		doc, prov := f.PrefillWith(func(string) (string, time.Time, bool) { return "", time.Time{}, false })
		return doc, prov, nil
	}
	vals, _, err := s.cfg.Consent.Fetch(ctx, s.cfg.Registry, consent.Request{CitizenID: citizenID, Actor: consent.Actor{Agency: agency},
		Channel: consent.ChannelPrefill, Purpose: service, Items: items, OwnRequest: true})
	if err != nil {
		return nil, nil, consentErr(err)
	}
	doc, prov := f.PrefillWith(func(field string) (string, time.Time, bool) {
		v, ok := vals[form.ItemOf(field)]
		str, isStr := v.Value.(string)
		return str, v.UpdatedAt, ok && isStr
	})
	return doc, prov, nil
}

// competentAgency picks the agency that handles the application: the one
// the citizen chose among the service's handlers, else the only handler,
// else the handler of the province the registry address names.
func (s *Server) competentAgency(ctx context.Context, svc *mobileapi.Service, address, chosen string) (string, error) {
	handlers := svc.Handlers()
	if chosen != "" {
		if !slices.Contains(handlers, chosen) {
			return "", unprocessable([]fieldError{{Pointer: "/agency_code", Message: "Not one of the service's handling agencies."}})
		}
		return chosen, nil
	}
	if len(handlers) == 1 {
		return handlers[0], nil
	}
	if prov, ok := province.FromAddress(address); ok {
		for _, code := range handlers {
			a, err := s.cfg.Store.GetAgency(ctx, code)
			if err != nil {
				return "", err
			}
			if a.ProvinceCode == prov {
				return code, nil
			}
		}
	}
	return "", unprocessable([]fieldError{{Pointer: "/agency_code",
		Message: "Your registry address names none of the handling agencies' provinces: choose one of the service's handling_agencies."}})
}

func (s *Server) getApplication(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, err := s.readable(ctx, c, idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	return s.sendApplication(c, http.StatusOK, a)
}

func (s *Server) listApplications(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	q := mobileapi.ApplicationQuery{Page: p}
	if q.Statuses, err = statusFilter(c, false); err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if q.Scope, err = s.readScope(ctx, c); err != nil {
		return s.fail(c, err)
	}
	apps, next, err := s.cfg.Store.ListApplications(ctx, q)
	if err != nil {
		return s.fail(c, cursorErr(err))
	}
	items, err := s.summaries(ctx, apps)
	if err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(items, next))
}

// summaries names each application's service (from the catalog index, so
// a list costs no extra queries).
func (s *Server) summaries(ctx context.Context, apps []*mobileapi.Application) ([]applicationSummaryView, error) {
	out := make([]applicationSummaryView, 0, len(apps))
	if len(apps) == 0 {
		return out, nil
	}
	idx, err := s.cfg.Catalog.Index(ctx)
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		v := applicationSummaryView{ID: a.ID, ServiceID: a.ServiceID, AgencyCode: a.AgencyCode, Status: a.Status,
			Subject: subjectOfApp(a, true), CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
		if svc := idx.Get(a.ServiceID); svc != nil {
			v.ServiceName = svc.Name
		}
		out = append(out, v)
	}
	return out, nil
}

// updateApplication applies an RFC 7396 merge patch whose only writable
// member is form. Without If-Match the patch is applied to the version
// read, retried if another write slipped in, so no write is lost.
func (s *Server) updateApplication(c *fiber.Ctx) error {
	if len(c.Body()) > maxJSONBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	var patch map[string]json.RawMessage
	if err := decodeJSON(c, "application/merge-patch+json", &patch); err != nil {
		return s.fail(c, err)
	}
	var errs []fieldError
	for k := range patch {
		if k != "form" {
			errs = append(errs, fieldError{Pointer: "/" + escapePointer(k), Message: "Only form may be changed."})
		}
	}
	fp, ok := patch["form"]
	if !ok {
		errs = append(errs, fieldError{Pointer: "/form", Message: "Required."})
	} else if t := bytes.TrimSpace(fp); len(t) == 0 || t[0] != '{' {
		errs = append(errs, fieldError{Pointer: "/form", Message: "Must be an object."})
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b fieldError) int { return strings.Compare(a.Pointer, b.Pointer) })
		return s.fail(c, unprocessable(errs))
	}
	ifv, err := ifMatch(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := idParam(c, "id")
	for attempt := 0; ; attempt++ {
		a, scope, err := s.forChange(ctx, c, id)
		if err != nil {
			return s.fail(c, err)
		}
		if err := s.mayChange(ctx, c, a); err != nil {
			return s.fail(c, err)
		}
		if !a.Status.Editable() {
			return s.fail(c, conflict(idp.ErrConflict, "Only a draft or an application that needs information can be changed."))
		}
		if ifv > 0 && ifv != a.Version {
			return s.fail(c, mobileapi.ErrPrecondition)
		}
		merged, err := form.MergePatch(a.Form, fp)
		if err != nil {
			return s.fail(c, unprocessable([]fieldError{{Pointer: "/form", Message: "The patch could not be applied."}}))
		}
		// What the register vouches for (prefilled) stays as the register
		// holds it: the agency trusts those values without checking them.
		if changed := form.ChangedPrefilled(a.Form, merged, a.Prefilled); len(changed) > 0 {
			errs := make([]fieldError, 0, len(changed))
			for _, p := range changed {
				errs = append(errs, fieldError{Pointer: "/form" + p, Message: map[string]string{
					"vi": "Thông tin lấy từ cơ sở dữ liệu quốc gia, không sửa ở đây; đề nghị cơ quan quản lý điều chỉnh.",
					"en": "Pre-filled from the register and not editable here; ask the register to correct it."}[lang(c)]})
			}
			return s.fail(c, unprocessable(errs))
		}
		if err := s.checkForm(ctx, lang(c), a, merged, false); err != nil {
			return s.fail(c, err)
		}
		upd, err := s.cfg.Store.UpdateForm(ctx, scope, id, a.Version, merged)
		if errors.Is(err, mobileapi.ErrPrecondition) && ifv == 0 && attempt < 3 {
			continue
		}
		if err != nil {
			return s.fail(c, conflict(err, "Only a draft or an application that needs information can be changed."))
		}
		return s.sendApplication(c, http.StatusOK, upd)
	}
}

// checkForm validates a form against the schema of the application's
// service version: partially for a draft being edited, fully on submit,
// listing every problem under /form.
func (s *Server) checkForm(ctx context.Context, lang string, a *mobileapi.Application, doc json.RawMessage, full bool) error {
	svc, err := s.cfg.Store.GetServiceVersion(ctx, a.ServiceID, a.ServiceVersion)
	if err != nil {
		return err
	}
	f, err := s.schemas.get(svc)
	if err != nil {
		return fmt.Errorf("service %s schema: %w", svc.ID, err)
	}
	if full {
		err = f.Validate(doc)
	} else {
		err = f.ValidatePartial(doc)
	}
	var errs []fieldError
	var ve *form.ValidationError
	switch {
	case errors.As(err, &ve):
		errs = fieldErrors("/form", lang, ve)
	case err != nil:
		errs = []fieldError{{Pointer: "/form", Message: "The form is not valid JSON."}}
	}
	if full {
		// Every problem at once: the form's and the missing documents.
		for _, d := range svc.RequiredDocuments {
			if d.Required && !slices.ContainsFunc(a.Attachments, func(f mobileapi.File) bool { return f.DocumentCode == d.Code }) {
				errs = append(errs, fieldError{Pointer: "/attachments", Message: map[string]string{
					"vi": "Thiếu giấy tờ bắt buộc: " + d.Name.VI + " (" + d.Code + ").",
					"en": "Missing required document: " + d.Name.EN + " (" + d.Code + ").",
				}[lang]})
			}
		}
	}
	if len(errs) > 0 {
		return unprocessable(errs)
	}
	return nil
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (s *Server) deleteApplication(c *fiber.Ctx) error {
	ifv, err := ifMatch(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, scope, err := s.forChange(ctx, c, idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	if err := s.mayChange(ctx, c, a); err != nil {
		return s.fail(c, err)
	}
	keys, err := s.cfg.Store.DeleteDraft(ctx, scope, a.ID, ifv)
	if err != nil {
		return s.fail(c, conflict(err, "Only a draft can be deleted; withdraw a submitted application instead."))
	}
	s.forgetHomes(a)
	for _, k := range keys {
		if err := s.cfg.Blobs.Delete(ctx, k); err != nil {
			s.cfg.Logger.Warn("delete attachment blob", "err", err)
		}
	}
	return c.SendStatus(http.StatusNoContent)
}

// submitApplication validates the whole form and the required documents,
// then submits exactly the version it validated.
func (s *Server) submitApplication(c *fiber.Ctx) error {
	ifv, err := ifMatch(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := idParam(c, "id")
	for attempt := 0; ; attempt++ {
		a, scope, err := s.forChange(ctx, c, id)
		if err != nil {
			return s.fail(c, err)
		}
		if err := s.mayChange(ctx, c, a); err != nil {
			return s.fail(c, err)
		}
		if ifv > 0 && ifv != a.Version {
			return s.fail(c, mobileapi.ErrPrecondition)
		}
		if !a.Status.Editable() {
			return s.fail(c, conflict(idp.ErrConflict, "Only a draft or an application that needs information can be submitted."))
		}
		if err := s.checkForm(ctx, lang(c), a, a.Form, true); err != nil {
			return s.fail(c, err)
		}
		upd, err := s.cfg.Store.Transition(ctx, mobileapi.Transition{Scope: scope, ApplicationID: id, IfVersion: a.Version,
			Actor: mobileapi.ActorCitizen, By: "citizen", To: mobileapi.StatusSubmitted})
		if errors.Is(err, mobileapi.ErrPrecondition) && ifv == 0 && attempt < 3 {
			continue
		}
		if err != nil {
			return s.fail(c, conflict(err, "Only a draft or an application that needs information can be submitted."))
		}
		s.notify()
		return s.sendApplication(c, http.StatusOK, upd)
	}
}

type withdrawRequest struct {
	Message string `json:"message"`
}

func (s *Server) withdrawApplication(c *fiber.Ctx) error {
	var in withdrawRequest
	if len(c.Body()) > 0 {
		if len(c.Body()) > maxJSONBody {
			return s.fail(c, tooLarge("The body is too large."))
		}
		if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
			return s.fail(c, err)
		}
		if len(in.Message) > 2000 {
			return s.fail(c, unprocessable([]fieldError{{Pointer: "/message", Message: "At most 2000 bytes."}}))
		}
	}
	ifv, err := ifMatch(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, scope, err := s.forChange(ctx, c, idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	if err := s.mayChange(ctx, c, a); err != nil {
		return s.fail(c, err)
	}
	upd, err := s.cfg.Store.Transition(ctx, mobileapi.Transition{Scope: scope, ApplicationID: a.ID,
		IfVersion: ifv, Actor: mobileapi.ActorCitizen, By: "citizen", To: mobileapi.StatusWithdrawn, Message: in.Message})
	if err != nil {
		return s.fail(c, conflict(err, "Only a submitted application without a decision can be withdrawn."))
	}
	s.notify()
	return s.sendApplication(c, http.StatusOK, upd)
}

func (s *Server) notify() {
	if s.cfg.Notify != nil {
		s.cfg.Notify()
	}
}

// maxAttachments bounds the files of one application, and so what one
// citizen can make the blob store hold.
const maxAttachments = mobileapi.MaxAttachments

// allowedTypes are the file types accepted, sniffed from the content (the
// client's Content-Type is not trusted).
var allowedTypes = []string{"application/pdf", "image/jpeg", "image/png"}

// upload is a received file, already in the blob store.
type upload struct {
	file         mobileapi.File
	documentCode string
}

// cleanName keeps a file name safe to show and to put in a header: its
// base name, printable, at most 200 bytes.
func cleanName(name, typ string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) || r == '"' {
			return -1
		}
		return r
	}, name)
	for len(name) > 200 {
		_, size := lastRune(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == "/" {
		name = "file" + map[string]string{"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}[typ]
	}
	return name
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xC0 != 0x80 {
			return rune(s[i]), len(s) - i
		}
	}
	return 0, len(s)
}

func (s *Server) uploadAttachment(c *fiber.Ctx) error {
	ifv, err := ifMatch(c)
	if err != nil {
		return s.fail(c, err)
	}
	id := idParam(c, "id")
	return s.idempotent(c, "citizen:"+citizenOf(c), s.replayAttachment(c), func() (string, error) {
		ctx, cancel := s.ctx(c)
		defer cancel()
		a, scope, err := s.forChange(ctx, c, id)
		if err != nil {
			return "", s.fail(c, err)
		}
		if err := s.mayChange(ctx, c, a); err != nil {
			return "", s.fail(c, err)
		}
		if !a.Status.Editable() {
			return "", s.fail(c, conflict(idp.ErrConflict, "Files can be attached to a draft or an application that needs information."))
		}
		if ifv > 0 && ifv != a.Version {
			return "", s.fail(c, mobileapi.ErrPrecondition)
		}
		if len(a.Attachments) >= maxAttachments { // the store checks again, under its lock
			return "", s.fail(c, attachmentQuota())
		}
		up, err := s.receiveFile(c, "att", func(fid string) string { return "applications/" + a.ID + "/attachments/" + fid })
		if err != nil {
			return "", s.fail(c, err)
		}
		// The file took its time to arrive: the store gets a deadline of its own.
		ctx, cancel = s.ctx(c)
		defer cancel()
		if up.documentCode != "" {
			svc, err := s.cfg.Store.GetServiceVersion(ctx, a.ServiceID, a.ServiceVersion)
			if err != nil {
				s.dropBlob(up.file.BlobKey)
				return "", s.fail(c, err)
			}
			if !slices.ContainsFunc(svc.RequiredDocuments, func(d mobileapi.RequiredDocument) bool { return d.Code == up.documentCode }) {
				s.dropBlob(up.file.BlobKey)
				return "", s.fail(c, unprocessable([]fieldError{{Pointer: "/document_code", Message: "Not one of the service's documents."}}))
			}
		}
		upd, err := s.cfg.Store.AddAttachment(ctx, scope, a.ID, ifv, &up.file)
		if err != nil {
			s.dropBlob(up.file.BlobKey)
			if quotaReached(err) {
				return "", s.fail(c, attachmentQuota())
			}
			return "", s.fail(c, conflict(err, "Files can be attached to a draft or an application that needs information."))
		}
		s.forgetHomes(a)
		return a.ID + "/" + up.file.ID, s.sendAttachment(c, upd, up.file.ID)
	})
}

// sendAttachment answers an upload with the stored file of a.
func (s *Server) sendAttachment(c *fiber.Ctx, a *mobileapi.Application, id string) error {
	i := slices.IndexFunc(a.Attachments, func(f mobileapi.File) bool { return f.ID == id })
	if i < 0 {
		return errReplayGone
	}
	f := a.Attachments[i]
	c.Set(fiber.HeaderLocation, "/v1/applications/"+a.ID)
	c.Set(fiber.HeaderETag, appETag(a))
	return c.Status(http.StatusCreated).JSON(attachmentView{ID: f.ID, Name: f.Name, ContentType: f.ContentType,
		Size: f.Size, SHA256: f.SHA256, DocumentCode: nullable(f.DocumentCode), CreatedAt: f.CreatedAt})
}

// replayAttachment answers a retried upload with the file as stored.
func (s *Server) replayAttachment(c *fiber.Ctx) func(ctx context.Context, ref string) error {
	return func(ctx context.Context, ref string) error {
		appID, fileID, err := splitRef(ref)
		if err != nil {
			return err
		}
		a, err := s.readable(ctx, c, appID)
		if err != nil {
			return err
		}
		return s.sendAttachment(c, a, fileID)
	}
}

// dropBlob deletes a stored file whose record could not be written.
func (s *Server) dropBlob(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if err := s.cfg.Blobs.Delete(ctx, key); err != nil {
		s.cfg.Logger.Warn("delete orphan blob", "err", err)
	}
}

func (s *Server) getResult(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, err := s.readable(ctx, c, idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	rid := idParam(c, "result_id")
	i := slices.IndexFunc(a.Results, func(f mobileapi.File) bool { return f.ID == rid })
	if i < 0 {
		return s.fail(c, idp.ErrNotFound)
	}
	return s.sendFile(c, a.Results[i])
}

// sendFile streams a stored file with its digest (RFC 9530 Repr-Digest)
// and an ETag from its content.
func (s *Server) sendFile(c *fiber.Ctx, f mobileapi.File) error {
	etag := `"` + f.SHA256 + `"`
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	if notModified(c, etag) {
		return c.SendStatus(http.StatusNotModified)
	}
	sum, err := hex.DecodeString(f.SHA256)
	if err != nil {
		return s.fail(c, fmt.Errorf("stored digest of %s: %w", f.ID, err))
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	r, err := s.cfg.Blobs.Open(ctx, f.BlobKey)
	if errors.Is(err, idp.ErrNotFound) {
		// The record exists, so its file must: a blob directory that is
		// not the one the other replicas write to, or a lost file.
		return s.fail(c, fmt.Errorf("file %s of a stored record is missing from the blob store (is --blob-dir shared by every replica?)", f.ID))
	}
	if err != nil {
		return s.fail(c, err)
	}
	c.Set("Repr-Digest", "sha-256=:"+base64.StdEncoding.EncodeToString(sum)+":")
	c.Set(fiber.HeaderContentType, f.ContentType)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename*=UTF-8''`+url.PathEscape(f.Name))
	c.Set("X-Content-Type-Options", "nosniff")
	return c.SendStream(r, int(f.Size))
}
