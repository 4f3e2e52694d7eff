package fiberapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/errgroup"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

func agencyScope(c *fiber.Ctx) mobileapi.Scope { return mobileapi.Scope{AgencyCode: agencyOf(c)} }

// agencyView is an application as its competent agency sees it, with the
// applicant from the register. Showing the applicant is a release of the
// citizen's data to the agency: it is logged first.
func (s *Server) agencyView(ctx context.Context, c *fiber.Ctx, a *mobileapi.Application) (agencyApplicationView, error) {
	cit, err := s.cfg.Citizens.GetCitizen(ctx, a.CitizenID)
	if err != nil && !errors.Is(err, idp.ErrNotFound) {
		return agencyApplicationView{}, err
	}
	if err := s.logApplicant(ctx, agencyActor(c), a, cit); err != nil {
		return agencyApplicationView{}, err
	}
	if err := s.logSubject(ctx, agencyActor(c), a); err != nil {
		return agencyApplicationView{}, err
	}
	return agencyApplicationView{applicationView: application(a, agencyFileHref), Applicant: applicant(cit),
		Subject: subjectOfApp(a, false)}, nil
}

// logSubject appends the access-log entry for showing the agency the
// person an application was filed for (their name and personal id), in
// that person's own log: a ward sees which agency saw them, and why.
func (s *Server) logSubject(ctx context.Context, actor consent.Actor, a *mobileapi.Application) error {
	if s.cfg.Consent == nil || !a.ForSomeoneElse() || a.Subject.Type != mobileapi.SubjectPerson {
		return nil
	}
	req := consent.Request{CitizenID: a.Subject.ID, Actor: actor, Channel: consent.ChannelApplication,
		Purpose: a.ServiceCode, Items: []string{idp.ClaimPersonalID, "name"}}
	_, err := s.cfg.Consent.Log(ctx, req, &consent.Decision{Basis: consent.BasisCitizenRequest}, consent.OutcomeReleased)
	return consentErr(err)
}

// agencyActor is the agency client calling, as the access log names it.
func agencyActor(c *fiber.Ctx) consent.Actor {
	cl, _ := c.Locals(localAgencyClient).(string)
	return consent.Actor{Agency: agencyOf(c), ClientID: cl}
}

// applicantItems are the data items an applicant view shows of cit.
func applicantItems(cit *idp.Citizen) []string {
	var items []string
	for _, f := range []struct{ item, v string }{{idp.ClaimPersonalID, cit.PersonalID}, {"name", cit.Name()},
		{"birthdate", cit.Birthdate}, {"address", cit.Address}} {
		if f.v != "" {
			items = append(items, f.item)
		}
	}
	return items
}

// logApplicant appends the access-log entry for showing an applicant to
// the agency: one entry per application shown, not per field, on the
// citizen's own request (they applied to this agency) with the service as
// the purpose. A failed append fails the answer.
func (s *Server) logApplicant(ctx context.Context, actor consent.Actor, a *mobileapi.Application, cit *idp.Citizen) error {
	if s.cfg.Consent == nil || cit == nil {
		return nil
	}
	items := applicantItems(cit)
	if len(items) == 0 {
		return nil
	}
	req := consent.Request{CitizenID: cit.ID, Actor: actor, Channel: consent.ChannelApplication,
		Purpose: a.ServiceCode, Items: items}
	_, err := s.cfg.Consent.Log(ctx, req, &consent.Decision{Basis: consent.BasisCitizenRequest}, consent.OutcomeReleased)
	return consentErr(err)
}

func (s *Server) sendAgencyApplication(c *fiber.Ctx, a *mobileapi.Application) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	v, err := s.agencyView(ctx, c, a)
	if err != nil {
		return s.fail(c, err)
	}
	etag := appETag(a)
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	if c.Method() == http.MethodGet && notModified(c, etag) {
		return c.SendStatus(http.StatusNotModified)
	}
	return c.JSON(v)
}

func (s *Server) agencyListApplications(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	q := mobileapi.ApplicationQuery{Scope: agencyScope(c), Page: p}
	if q.Statuses, err = statusFilter(c, true); err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	apps, next, err := s.cfg.Store.ListApplications(ctx, q)
	if err != nil {
		return s.fail(c, cursorErr(err))
	}
	idx, err := s.cfg.Catalog.Index(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	items := make([]agencyApplicationSummaryView, len(apps))
	// Each row shows an applicant, so each is a release logged in its
	// citizen's own chain. Rows are (mostly) different citizens whose
	// chains never contend, so their reads and appends run side by side:
	// a page costs about one append's latency, not one per row.
	actor := agencyActor(c)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, a := range apps {
		g.Go(func() error {
			cit, err := s.cfg.Citizens.GetCitizen(gctx, a.CitizenID)
			if err != nil && !errors.Is(err, idp.ErrNotFound) {
				return err
			}
			if err := s.logApplicant(gctx, actor, a, cit); err != nil {
				return err
			}
			if err := s.logSubject(gctx, actor, a); err != nil {
				return err
			}
			v := agencyApplicationSummaryView{ID: a.ID, ServiceID: a.ServiceID, AgencyCode: a.AgencyCode, Status: a.Status,
				Applicant: applicant(cit), Subject: subjectOfApp(a, false), SubmittedAt: a.SubmittedAt, UpdatedAt: a.UpdatedAt}
			if svc := idx.Get(a.ServiceID); svc != nil {
				v.ServiceCode = svc.Code
			}
			items[i] = v
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(items, next))
}

func (s *Server) agencyGetApplication(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, err := s.cfg.Store.GetApplication(ctx, agencyScope(c), idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	return s.sendAgencyApplication(c, a)
}

// agencyGetFile downloads a citizen's attachment or one of the agency's own
// published result documents.
func (s *Server) agencyGetFile(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	a, err := s.cfg.Store.GetApplication(ctx, agencyScope(c), idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	fid := idParam(c, "attachment_id")
	for _, l := range [][]mobileapi.File{a.Attachments, a.Results} {
		if i := slices.IndexFunc(l, func(f mobileapi.File) bool { return f.ID == fid }); i >= 0 {
			return s.sendFile(c, l[i])
		}
	}
	return s.fail(c, idp.ErrNotFound)
}

func (s *Server) agencyUploadDocument(c *fiber.Ctx) error {
	id := idParam(c, "id")
	return s.idempotent(c, "agency:"+agencyOf(c), s.replayDocument(c), func() (string, error) {
		ctx, cancel := s.ctx(c)
		defer cancel()
		a, err := s.cfg.Store.GetApplication(ctx, agencyScope(c), id)
		if err != nil {
			return "", s.fail(c, err)
		}
		if a.Status.Decided() || a.Status == mobileapi.StatusWithdrawn {
			return "", s.fail(c, conflict(idp.ErrConflict, "The application is closed."))
		}
		up, err := s.receiveFile(c, "doc", func(fid string) string { return "applications/" + a.ID + "/documents/" + fid })
		if err != nil {
			return "", s.fail(c, err)
		}
		ctx, cancel = s.ctx(c) // the file took its time to arrive
		defer cancel()
		up.file.DocumentCode = ""
		if err := s.cfg.Store.AddDocument(ctx, agencyOf(c), a.ID, &up.file); err != nil {
			s.dropBlob(up.file.BlobKey)
			return "", s.fail(c, conflict(err, "The application is closed."))
		}
		return a.ID + "/" + up.file.ID, sendDocument(c, &up.file)
	})
}

func sendDocument(c *fiber.Ctx, f *mobileapi.File) error {
	return c.Status(http.StatusCreated).JSON(documentView{ID: f.ID, Name: f.Name, ContentType: f.ContentType,
		Size: f.Size, SHA256: f.SHA256, CreatedAt: f.CreatedAt})
}

// replayDocument answers a retried upload with the document as stored.
func (s *Server) replayDocument(c *fiber.Ctx) func(ctx context.Context, ref string) error {
	return func(ctx context.Context, ref string) error {
		appID, docID, err := splitRef(ref)
		if err != nil {
			return err
		}
		f, err := s.cfg.Store.GetDocument(ctx, agencyOf(c), appID, docID)
		if err != nil {
			return err
		}
		return sendDocument(c, f)
	}
}

type transitionRequest struct {
	To        mobileapi.Status `json:"to"`
	Message   *string          `json:"message"`
	Documents []string         `json:"documents"`
}

// agencyTransition moves an application; a decision (and a request for
// information) reaches the citizen's inbox in the same transaction.
func (s *Server) agencyTransition(c *fiber.Ctx) error {
	if len(c.Body()) > maxJSONBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	var in transitionRequest
	if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
		return s.fail(c, err)
	}
	var errs []fieldError
	switch in.To {
	case mobileapi.StatusInReview, mobileapi.StatusNeedsInformation, mobileapi.StatusApproved, mobileapi.StatusRejected:
	default:
		errs = append(errs, fieldError{Pointer: "/to", Message: "One of in_review, needs_information, approved, rejected."})
	}
	msg := ""
	if in.Message != nil {
		msg = *in.Message
	}
	if len(msg) > 4000 {
		errs = append(errs, fieldError{Pointer: "/message", Message: "At most 4000 bytes."})
	}
	if (in.To == mobileapi.StatusNeedsInformation || in.To == mobileapi.StatusRejected) && strings.TrimSpace(msg) == "" {
		errs = append(errs, fieldError{Pointer: "/message", Message: "Say what is needed or why the application is rejected."})
	}
	if len(in.Documents) > 20 {
		errs = append(errs, fieldError{Pointer: "/documents", Message: "At most 20 documents."})
	}
	if len(in.Documents) > 0 && in.To != mobileapi.StatusApproved && in.To != mobileapi.StatusRejected {
		errs = append(errs, fieldError{Pointer: "/documents", Message: "Documents are published with a decision."})
	}
	if len(errs) > 0 {
		return s.fail(c, unprocessable(errs))
	}
	ifv, err := ifMatch(c)
	if err != nil {
		return s.fail(c, err)
	}
	// A retried decision (the agency's answer was lost) replays the
	// application instead of failing on the status it already reached.
	return s.idempotent(c, "agency:"+agencyOf(c), s.replayAgencyApplication(c), func() (string, error) {
		return s.transition(c, in, msg, ifv)
	})
}

// transition makes the agency's transition and answers with the
// application; it returns the application's id once it moved.
func (s *Server) transition(c *fiber.Ctx, in transitionRequest, msg string, ifv int64) (string, error) {
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := idParam(c, "id")
	a, err := s.cfg.Store.GetApplication(ctx, agencyScope(c), id)
	if err != nil {
		return "", s.fail(c, err)
	}
	t := mobileapi.Transition{Scope: agencyScope(c), ApplicationID: id, IfVersion: ifv, Actor: mobileapi.ActorAgency,
		By: "agency:" + agencyOf(c), To: in.To, Message: msg, Documents: in.Documents}
	if announced(in.To) {
		var name mobileapi.Text
		if svc, err := s.cfg.Store.GetServiceVersion(ctx, a.ServiceID, a.ServiceVersion); err == nil {
			name = svc.Name
		} else if !errors.Is(err, idp.ErrNotFound) {
			return "", s.fail(c, err)
		}
		t.Inbox = &mobileapi.Message{AgencyCode: agencyOf(c), Title: decisionTitle(in.To, name), Body: msg}
		// Exactly whom the message reaches, decided now: the applicant of
		// their own application; for one filed for someone else, the
		// subject and whoever represents them for the service now (the
		// applicant only if still among them). The transaction writes a
		// copy for each.
		if t.Recipients, err = s.recipients(ctx, a); err != nil {
			return "", s.fail(c, err)
		}
		if len(t.Recipients) == 0 {
			t.Inbox = nil // nobody to tell: an organisation with no representative now
		}
	}
	upd, err := s.cfg.Store.Transition(ctx, t)
	if errors.Is(err, idp.ErrInvalid) && !errors.Is(err, idp.ErrUnavailable) {
		return "", s.fail(c, unprocessable([]fieldError{{Pointer: "/documents", Message: "Every document must be an unpublished document uploaded for this application."}}))
	}
	if err != nil {
		return "", s.fail(c, conflict(err, "This transition is not allowed from the application's status."))
	}
	s.forgetHomes(upd, t.Recipients...)
	if t.Inbox != nil {
		s.notify() // its push is queued: wake the dispatcher rather than wait for its poll
	}
	return upd.ID, s.sendAgencyApplication(c, upd)
}

// replayAgencyApplication answers a retried transition with the
// application as it now stands.
func (s *Server) replayAgencyApplication(c *fiber.Ctx) func(ctx context.Context, ref string) error {
	return func(ctx context.Context, ref string) error {
		a, err := s.cfg.Store.GetApplication(ctx, agencyScope(c), ref)
		if err != nil {
			return err
		}
		return s.sendAgencyApplication(c, a)
	}
}

type leaseRequest struct {
	Max          *int `json:"max"`
	LeaseSeconds *int `json:"lease_seconds"`
}

type leaseView struct {
	LeaseID     string                `json:"lease_id"`
	ExpiresAt   time.Time             `json:"expires_at"`
	Event       mobileapi.EventType   `json:"event"`
	Application agencyApplicationView `json:"application"`
}

// agencyLease hands out queued applications to one worker at a time.
func (s *Server) agencyLease(c *fiber.Ctx) error {
	in := leaseRequest{}
	if len(c.Body()) > 0 {
		if len(c.Body()) > maxJSONBody {
			return s.fail(c, tooLarge("The body is too large."))
		}
		if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
			return s.fail(c, err)
		}
	}
	n, secs := 10, 300
	var errs []fieldError
	if in.Max != nil {
		if n = *in.Max; n < 1 || n > 100 {
			errs = append(errs, fieldError{Pointer: "/max", Message: "From 1 to 100."})
		}
	}
	if in.LeaseSeconds != nil {
		if secs = *in.LeaseSeconds; secs < 10 || secs > 3600 {
			errs = append(errs, fieldError{Pointer: "/lease_seconds", Message: "From 10 to 3600."})
		}
	}
	if len(errs) > 0 {
		return s.fail(c, unprocessable(errs))
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	leases, err := s.cfg.Store.Lease(ctx, agencyOf(c), n, time.Duration(secs)*time.Second)
	if err != nil {
		return s.fail(c, err)
	}
	out := struct {
		Items []leaseView `json:"items"`
	}{Items: make([]leaseView, 0, len(leases))}
	for _, l := range leases {
		a, err := s.cfg.Store.GetApplication(ctx, agencyScope(c), l.Event.ApplicationID)
		if err != nil {
			return s.fail(c, err)
		}
		v, err := s.agencyView(ctx, c, a)
		if err != nil {
			return s.fail(c, err)
		}
		out.Items = append(out.Items, leaseView{LeaseID: l.ID, ExpiresAt: l.ExpiresAt, Event: l.Event.Type, Application: v})
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(out)
}

func (s *Server) agencyAck(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Store.Ack(ctx, agencyOf(c), idParam(c, "lease_id")); err != nil {
		return s.fail(c, conflict(err, "The lease expired; the application went back to the queue."))
	}
	return c.SendStatus(http.StatusNoContent)
}

// maxWebhooks bounds an agency's webhooks.
const maxWebhooks = mobileapi.MaxWebhooks

type webhookCreate struct {
	URL         string                `json:"url"`
	Events      []mobileapi.EventType `json:"events"`
	Description string                `json:"description"`
}

// validWebhookURL allows https, and http only to a loopback host (tests,
// the demo).
func validWebhookURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > 2000 {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

func (s *Server) agencyCreateWebhook(c *fiber.Ctx) error {
	if len(c.Body()) > maxJSONBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	return s.idempotent(c, "agency:"+agencyOf(c), s.replayWebhook(c), func() (string, error) {
		var in webhookCreate
		if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
			return "", s.fail(c, err)
		}
		var errs []fieldError
		if !validWebhookURL(in.URL) {
			errs = append(errs, fieldError{Pointer: "/url", Message: "An https URL (http only on loopback), without credentials or fragment."})
		}
		for i, e := range in.Events {
			if !slices.Contains(mobileapi.WebhookEventTypes, e) {
				errs = append(errs, fieldError{Pointer: "/events/" + strconv.Itoa(i), Message: "One of submitted, resubmitted, withdrawn, consent.withdrawn."})
			}
		}
		if len(in.Description) > 500 {
			errs = append(errs, fieldError{Pointer: "/description", Message: "At most 500 bytes."})
		}
		if len(errs) > 0 {
			return "", s.fail(c, unprocessable(errs))
		}
		ctx, cancel := s.ctx(c)
		defer cancel()
		// Each event is signed and sent once per webhook: a bounded fan-out.
		existing, _, err := s.cfg.Store.ListWebhooks(ctx, agencyOf(c), mobileapi.Page{Limit: maxWebhooks})
		if err != nil {
			return "", s.fail(c, err)
		}
		if len(existing) >= maxWebhooks { // the store checks again, under its lock
			return "", s.fail(c, webhookQuota())
		}
		w := &mobileapi.Webhook{AgencyCode: agencyOf(c), URL: in.URL, Events: slices.Compact(slices.Sorted(slices.Values(in.Events))), Description: in.Description}
		if err := s.cfg.Store.CreateWebhook(ctx, w); err != nil {
			if quotaReached(err) {
				return "", s.fail(c, webhookQuota())
			}
			return "", s.fail(c, conflict(err, "A webhook with this URL exists."))
		}
		return w.ID, sendWebhook(c, w)
	})
}

func sendWebhook(c *fiber.Ctx, w *mobileapi.Webhook) error {
	c.Set(fiber.HeaderLocation, "/agency/v1/webhooks/"+w.ID)
	return c.Status(http.StatusCreated).JSON(webhook(w))
}

// replayWebhook answers a retried registration with the webhook as stored
// (an agency has at most mobileapi.MaxWebhooks, so one page holds them).
func (s *Server) replayWebhook(c *fiber.Ctx) func(ctx context.Context, ref string) error {
	return func(ctx context.Context, ref string) error {
		ws, _, err := s.cfg.Store.ListWebhooks(ctx, agencyOf(c), mobileapi.Page{Limit: mobileapi.MaxLimit})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ws, func(w *mobileapi.Webhook) bool { return w.ID == ref })
		if i < 0 {
			return errReplayGone
		}
		return sendWebhook(c, ws[i])
	}
}

func (s *Server) agencyListWebhooks(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	ws, next, err := s.cfg.Store.ListWebhooks(ctx, agencyOf(c), p)
	if err != nil {
		return s.fail(c, cursorErr(err))
	}
	items := make([]webhookView, 0, len(ws))
	for _, w := range ws {
		items = append(items, webhook(w))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(items, next))
}

func (s *Server) agencyDeleteWebhook(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Store.DeleteWebhook(ctx, agencyOf(c), idParam(c, "id")); err != nil {
		return s.fail(c, err)
	}
	return c.SendStatus(http.StatusNoContent)
}

func (s *Server) agencyListDeliveries(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	state := mobileapi.DeliveryState(c.Query("state"))
	switch state {
	case "", mobileapi.DeliveryPending, mobileapi.DeliverySucceeded, mobileapi.DeliveryFailed:
	default:
		return s.fail(c, invalidParam("state", "One of pending, succeeded, failed."))
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	ds, next, err := s.cfg.Store.ListDeliveries(ctx, agencyOf(c), idParam(c, "id"), p)
	if err != nil {
		return s.fail(c, cursorErr(err))
	}
	items := make([]deliveryView, 0, len(ds))
	for _, d := range ds {
		// The state filter narrows each page; the cursor still walks every
		// delivery, so a page may hold fewer than limit items.
		if state == "" || d.State == state {
			items = append(items, delivery(d))
		}
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(items, next))
}
