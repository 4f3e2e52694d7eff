package fiberapi

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/search"
	"github.com/onedoor/onedoor/represent"
)

func (s *Server) me(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	cit, err := s.cfg.Citizens.GetCitizen(ctx, citizenOf(c))
	if errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) {
		return s.unauthorized(c, "invalid_token", "The access token's citizen does not exist.")
	}
	if err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(meOf(cit))
}

// Sizes of the home screen's lists.
const (
	homeActions     = 20
	homeResults     = 5
	homeSuggestions = 6
	// homeParties bounds the represented parties the home shows, each
	// costing one indexed query.
	homeParties = 10
)

// homeCache keeps each citizen's home screen for a moment: it is the
// app's hottest read and the costliest to assemble. This replica's writes
// for the citizen drop it at once; another replica's show within homeTTL.
// So do changes the home's represented parties depend on and no write of
// the citizen's announces: a mandate granted or revoked, a guardianship
// ended, an employee's application for the citizen's organisation. The
// bound is homeTTL (one second) on every replica.
type homeCache struct {
	mu  sync.Mutex
	ttl time.Duration
	max int
	m   map[string]homeEntry
}

type homeEntry struct {
	body []byte
	etag string
	at   time.Time
}

const homeTTL = time.Second

func newHomeCache(ttl time.Duration, size int) *homeCache {
	return &homeCache{ttl: ttl, max: size, m: map[string]homeEntry{}}
}

func (h *homeCache) get(citizen string, now time.Time) (homeEntry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[citizen]
	if !ok || now.Sub(e.at) >= h.ttl || now.Before(e.at) {
		return homeEntry{}, false
	}
	return e, true
}

// put keeps body with its ETag, hashed once here rather than by the etag
// middleware on every hit (a byte-at-a-time CRC over the whole home).
func (h *homeCache) put(citizen string, body []byte, at time.Time) homeEntry {
	e := homeEntry{body: body, etag: contentETag(body), at: at}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.m) >= h.max {
		clear(h.m)
	}
	h.m[citizen] = e
	return e
}

// forget drops a citizen's home after a change to their applications or
// inbox.
func (h *homeCache) forget(citizen string) {
	h.mu.Lock()
	delete(h.m, citizen)
	h.mu.Unlock()
}

// home is the app's first screen in one round trip.
func (s *Server) home(c *fiber.Ctx) error {
	now := s.cfg.Now()
	if e, ok := s.homes.get(citizenOf(c), now); ok {
		return sendHome(c, e)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	scope := citizenScope(c)
	cit, err := s.cfg.Citizens.GetCitizen(ctx, scope.CitizenID)
	if errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) {
		return s.unauthorized(c, "invalid_token", "The access token's citizen does not exist.")
	}
	if err != nil {
		return s.fail(c, err)
	}
	actions, _, err := s.cfg.Store.ListApplications(ctx, mobileapi.ApplicationQuery{Scope: scope,
		Statuses: []mobileapi.Status{mobileapi.StatusDraft, mobileapi.StatusNeedsInformation}, Page: mobileapi.Page{Limit: homeActions}})
	if err != nil {
		return s.fail(c, err)
	}
	unread, err := s.cfg.Store.UnreadCount(ctx, scope.CitizenID)
	if err != nil {
		return s.fail(c, err)
	}
	decided, _, err := s.cfg.Store.ListApplications(ctx, mobileapi.ApplicationQuery{Scope: scope,
		Statuses: []mobileapi.Status{mobileapi.StatusApproved}, Page: mobileapi.Page{Limit: homeResults}})
	if err != nil {
		return s.fail(c, err)
	}
	idx, err := s.cfg.Catalog.Index(ctx)
	if err != nil {
		return s.fail(c, err)
	}
	out := homeView{Me: meOf(cit), UnreadCount: unread, RecentResults: []recentResultView{}}
	if out.ActionNeeded, err = s.summaries(ctx, actions); err != nil {
		return s.fail(c, err)
	}
	for _, d := range decided {
		if len(out.RecentResults) >= homeResults {
			break
		}
		a, err := s.cfg.Store.GetApplication(ctx, scope, d.ID)
		if err != nil {
			return s.fail(c, err)
		}
		var name mobileapi.Text
		if svc := idx.Get(a.ServiceID); svc != nil {
			name = svc.Name
		}
		decidedAt := a.UpdatedAt
		if a.DecidedAt != nil {
			decidedAt = *a.DecidedAt
		}
		for _, r := range results(a.ID, a.Results, resultHref) {
			if len(out.RecentResults) < homeResults {
				out.RecentResults = append(out.RecentResults, recentResultView{ApplicationID: a.ID, ServiceName: name, DecidedAt: decidedAt, Result: r})
			}
		}
	}
	if out.Represented, err = s.representedHome(ctx, scope.CitizenID); err != nil {
		return s.fail(c, err)
	}
	out.SuggestedServices = suggest(idx, actions, decided)
	body, err := json.Marshal(out)
	if err != nil {
		return s.fail(c, err)
	}
	return sendHome(c, s.homes.put(scope.CitizenID, body, now))
}

// sendHome answers with a cached home, or 304 when the client holds it.
// The ETag set here makes the etag middleware pass the response by.
func sendHome(c *fiber.Ctx, e homeEntry) error {
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	c.Set(fiber.HeaderETag, e.etag)
	if notModified(c, e.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(e.body)
}

// representedHome is a section per party the citizen acts for (at most
// homeParties), each with the party's applications waiting for action
// that the citizen may see: drafts and needs_information, as on the
// citizen's own home.
func (s *Server) representedHome(ctx context.Context, citizenID string) ([]representedHomeView, error) {
	out := []representedHomeView{}
	rs, err := s.representations(ctx, citizenID)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if len(out) >= homeParties {
			break
		}
		scope := mobileapi.Scope{CitizenID: citizenID, Represents: represented([]represent.Representation{r})}
		apps, _, err := s.cfg.Store.ListApplications(ctx, mobileapi.ApplicationQuery{Scope: scope, SubjectID: r.Party.ID,
			Statuses: []mobileapi.Status{mobileapi.StatusDraft, mobileapi.StatusNeedsInformation}, Page: mobileapi.Page{Limit: homeActions}})
		if err != nil {
			return nil, err
		}
		items, err := s.summaries(ctx, apps)
		if err != nil {
			return nil, err
		}
		party := subjectView{Type: string(r.Party.Type), ID: r.Party.ID, Name: r.Party.Name, TaxCode: r.Party.TaxCode,
			PersonalID: r.Party.PersonalID}
		out = append(out, representedHomeView{Party: party, Basis: string(r.Basis), ActionNeeded: items})
	}
	return out, nil
}

// suggest picks services the citizen has not applied for, in catalog
// order.
func suggest(idx *search.Index, apps ...[]*mobileapi.Application) []serviceSummaryView {
	used := map[string]bool{}
	for _, l := range apps {
		for _, a := range l {
			used[a.ServiceID] = true
		}
	}
	out := []serviceSummaryView{}
	for _, h := range idx.Search(search.Query{Limit: homeSuggestions + len(used)}) {
		if !used[h.Service.ID] && len(out) < homeSuggestions {
			out = append(out, serviceSummary(h.Service))
		}
	}
	return out
}

type inboxList struct {
	Items       []messageView `json:"items"`
	UnreadCount int           `json:"unread_count"`
	NextCursor  *string       `json:"next_cursor"`
}

func (s *Server) listInbox(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	msgs, next, err := s.cfg.Store.ListInbox(ctx, citizenOf(c), p)
	if err != nil {
		return s.fail(c, cursorErr(err))
	}
	unread, err := s.cfg.Store.UnreadCount(ctx, citizenOf(c))
	if err != nil {
		return s.fail(c, err)
	}
	out := inboxList{Items: make([]messageView, 0, len(msgs)), UnreadCount: unread, NextCursor: nullable(next)}
	for _, m := range msgs {
		out.Items = append(out.Items, message(m))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(out)
}

func (s *Server) markRead(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	m, err := s.cfg.Store.MarkRead(ctx, citizenOf(c), idParam(c, "id"))
	if err != nil {
		return s.fail(c, err)
	}
	s.homes.forget(citizenOf(c))
	return c.JSON(message(m))
}

// decisionTitle is the inbox subject of a decision.
func decisionTitle(to mobileapi.Status, service mobileapi.Text) mobileapi.Text {
	t := map[mobileapi.Status]mobileapi.Text{
		mobileapi.StatusInReview:         {VI: "Hồ sơ đang được xử lý", EN: "Application in review"},
		mobileapi.StatusNeedsInformation: {VI: "Hồ sơ cần bổ sung thông tin", EN: "Application needs more information"},
		mobileapi.StatusApproved:         {VI: "Hồ sơ đã được phê duyệt", EN: "Application approved"},
		mobileapi.StatusRejected:         {VI: "Hồ sơ bị từ chối", EN: "Application rejected"},
	}[to]
	if service.VI != "" {
		t.VI += ": " + service.VI
	}
	if service.EN != "" {
		t.EN += ": " + service.EN
	}
	return t
}

// announced reports whether an agency's transition to st goes to the
// citizen's inbox: every step that asks or tells the citizen something.
func announced(st mobileapi.Status) bool {
	return slices.Contains([]mobileapi.Status{mobileapi.StatusNeedsInformation, mobileapi.StatusApproved, mobileapi.StatusRejected}, st)
}
