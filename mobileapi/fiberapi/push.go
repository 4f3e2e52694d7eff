package fiberapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/problem"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/push"
)

// PushConfig serves the citizen's devices, notification preferences,
// notifications and live stream.
type PushConfig struct {
	Store push.Store
	// Broadcasts, when set, lets the app fetch a broadcast's notice by the
	// id its push carried.
	Broadcasts push.BroadcastStore
	Hub        push.Hub
	// VAPIDPublicKey is the applicationServerKey a page subscribes with;
	// empty when Web Push is not configured (webpush registrations are
	// then refused).
	VAPIDPublicKey string
	// Platforms are the platforms a provider is configured for; a
	// registration for another is refused (nothing could reach it).
	Platforms []push.Platform
	// AllowLoopbackHTTP accepts http:// Web Push endpoints on loopback
	// (tests and the demo).
	AllowLoopbackHTTP bool
	// WebPushHosts are the push services a subscription may point at
	// (default push.DefaultWebPushHosts).
	WebPushHosts []string
	// MaxStreams bounds one citizen's live streams (default
	// push.DefaultMaxStreams), counted by Streams.
	MaxStreams int
	// Streams counts the live streams: set it to one shared by every
	// replica (push/redis.Limiter) at scale; nil counts in this process.
	Streams push.StreamLimiter
	// Cursors seals the live stream's ids; every replica must share its
	// key. Nil: a key of this process only (ids do not survive a restart).
	Cursors *push.CursorSealer
	// ProvinceOf returns the province of the citizen's registry address
	// ("" when none), so a stream shows a province's broadcasts to its
	// citizens only. Nil: no province's broadcast is shown live.
	ProvinceOf func(ctx context.Context, citizenID string) (string, error)
	// Heartbeat is how often an idle stream gets a comment line and its
	// token is checked again (default 15 s).
	Heartbeat time.Duration
}

// Limits on push input.
const (
	maxFCMToken  = 4096
	maxAPNsToken = 200
)

type deviceCreate struct {
	Platform     push.Platform      `json:"platform"`
	Token        string             `json:"token"`
	Subscription *push.Subscription `json:"subscription"`
	Locale       string             `json:"locale"`
}

type deviceView struct {
	ID          string        `json:"id"`
	Platform    push.Platform `json:"platform"`
	Locale      string        `json:"locale"`
	EIDDeviceID *string       `json:"eid_device_id"`
	// PushService is a Web Push subscription's push service origin, so
	// the citizen can tell browsers apart; the endpoint itself is secret.
	PushService *string   `json:"push_service,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func device(in *push.Installation) deviceView {
	v := deviceView{ID: in.ID, Platform: in.Platform, Locale: in.Locale, EIDDeviceID: nullable(in.DeviceID),
		CreatedAt: in.CreatedAt, UpdatedAt: in.UpdatedAt}
	if in.Subscription != nil {
		if u, err := url.Parse(in.Subscription.Endpoint); err == nil {
			origin := u.Scheme + "://" + u.Host
			v.PushService = &origin
		}
	}
	return v
}

func (s *Server) pushRoutes(v1, ag fiber.Router) {
	if s.cfg.Push == nil {
		return
	}
	v1.Get("/push-config", s.pushConfig)
	v1.Post("/devices", s.registerDevice)
	v1.Get("/devices", s.listDevices)
	v1.Delete("/devices/:id", s.deleteDevice)
	v1.Get("/notification-preferences", s.getPreferences)
	v1.Put("/notification-preferences", s.putPreferences)
	v1.Get("/notifications/:id", s.getNotification)
	v1.Get("/events", s.events)
	ag.Get("/applications/:id/notifications", s.agencyNotifications)
}

type pushConfigView struct {
	Platforms      []push.Platform `json:"platforms"`
	VAPIDPublicKey *string         `json:"vapid_public_key"`
}

// pushConfig tells the app which platforms it may register for and, for a
// browser, the applicationServerKey to subscribe with.
func (s *Server) pushConfig(c *fiber.Ctx) error {
	pc := s.cfg.Push
	platforms := pc.Platforms
	if platforms == nil {
		platforms = []push.Platform{}
	}
	c.Set(fiber.HeaderCacheControl, "private, max-age=3600")
	return c.JSON(pushConfigView{Platforms: platforms, VAPIDPublicKey: nullable(pc.VAPIDPublicKey)})
}

func webPushHosts(pc *PushConfig) []string {
	if len(pc.WebPushHosts) > 0 {
		return pc.WebPushHosts
	}
	return push.DefaultWebPushHosts
}

// validateDevice checks a registration, listing every bad field.
func (s *Server) validateDevice(in *deviceCreate) []fieldError {
	var errs []fieldError
	pc := s.cfg.Push
	switch in.Platform {
	case push.FCM, push.APNs, push.WebPush:
		configured := false
		for _, p := range pc.Platforms {
			configured = configured || p == in.Platform
		}
		if !configured {
			errs = append(errs, fieldError{Pointer: "/platform", Message: "This platform is not configured on this deployment."})
		}
	default:
		errs = append(errs, fieldError{Pointer: "/platform", Message: "One of fcm, apns, webpush."})
	}
	switch in.Platform {
	case push.FCM:
		if in.Token == "" || len(in.Token) > maxFCMToken || strings.ContainsFunc(in.Token, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_:.", r))
		}) {
			errs = append(errs, fieldError{Pointer: "/token", Message: "An FCM registration token."})
		}
	case push.APNs:
		if len(in.Token) < 32 || len(in.Token) > maxAPNsToken || len(in.Token)%2 != 0 || strings.ContainsFunc(in.Token, func(r rune) bool {
			return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F')
		}) {
			errs = append(errs, fieldError{Pointer: "/token", Message: "An APNs device token: hexadecimal."})
		}
	case push.WebPush:
		if in.Token != "" {
			errs = append(errs, fieldError{Pointer: "/token", Message: "A webpush device has a subscription, not a token."})
		}
		if in.Subscription == nil {
			errs = append(errs, fieldError{Pointer: "/subscription", Message: "Required for webpush."})
		} else if err := in.Subscription.Validate(pc.AllowLoopbackHTTP); err != nil {
			ptr, msg, _ := strings.Cut(err.Error(), ": ")
			errs = append(errs, fieldError{Pointer: "/" + strings.ReplaceAll(ptr, ".", "/"), Message: msg})
		} else if !push.ServiceAllowed(in.Subscription.Endpoint, webPushHosts(pc), pc.AllowLoopbackHTTP) {
			errs = append(errs, fieldError{Pointer: "/subscription/endpoint", Message: "Not a browser push service this deployment delivers to."})
		}
	}
	if in.Platform != push.WebPush && in.Subscription != nil {
		errs = append(errs, fieldError{Pointer: "/subscription", Message: "Only for webpush."})
	}
	switch in.Locale {
	case "":
		in.Locale = "vi"
	case "vi", "en":
	default:
		errs = append(errs, fieldError{Pointer: "/locale", Message: "vi or en."})
	}
	return errs
}

// registerDevice registers the app installation the request comes from.
// It is tied to the eID device of the token, so revoking the device
// removes it.
func (s *Server) registerDevice(c *fiber.Ctx) error {
	if len(c.Body()) > maxJSONBody {
		return s.fail(c, tooLarge("The body is too large."))
	}
	return s.idempotent(c, "citizen:"+citizenOf(c), s.replayDevice(c), func() (string, error) {
		var in deviceCreate
		if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
			return "", s.fail(c, err)
		}
		if errs := s.validateDevice(&in); len(errs) > 0 {
			return "", s.fail(c, unprocessable(errs))
		}
		ctx, cancel := s.ctx(c)
		defer cancel()
		ins := &push.Installation{CitizenID: citizenOf(c), Platform: in.Platform, Token: in.Token,
			Subscription: in.Subscription, Locale: in.Locale, DeviceID: deviceOf(c)}
		created, err := s.cfg.Push.Store.RegisterInstallation(ctx, ins)
		switch {
		case errors.Is(err, push.ErrQuota):
			return "", s.fail(c, &badRequest{status: http.StatusConflict, typ: problem.TypeConflict, title: tConflict,
				detail: fmt.Sprintf("At most %d devices receive notifications; remove one first.", push.MaxInstallations)})
		case err != nil:
			// ErrConflict is only the citizen's own concurrent registration
			// of the same address: another citizen's is no conflict (see
			// push.InstallationStore.RegisterInstallation).
			return "", s.fail(c, conflict(err, "This device is being registered by another request; retry."))
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
			c.Location("/v1/devices/" + ins.ID)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return ins.ID, c.Status(status).JSON(device(ins))
	})
}

func (s *Server) replayDevice(c *fiber.Ctx) func(ctx context.Context, ref string) error {
	return func(ctx context.Context, ref string) error {
		list, err := s.cfg.Push.Store.ListInstallations(ctx, citizenOf(c))
		if err != nil {
			return err
		}
		for _, in := range list {
			if in.ID == ref {
				c.Set(fiber.HeaderCacheControl, "no-store")
				if c.Response().StatusCode() == http.StatusCreated {
					c.Location("/v1/devices/" + in.ID)
				}
				return c.JSON(device(in))
			}
		}
		return errReplayGone
	}
}

func (s *Server) listDevices(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	list, err := s.cfg.Push.Store.ListInstallations(ctx, citizenOf(c))
	if err != nil {
		return s.fail(c, err)
	}
	list, next, err := pageOf(list, func(in *push.Installation) string { return in.ID }, p)
	if err != nil {
		return s.fail(c, err)
	}
	views := make([]deviceView, 0, len(list))
	for _, in := range list {
		views = append(views, device(in))
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(views, next))
}

// pageOf pages a short list the store returns whole (a citizen's devices,
// an application's notifications): the cursor is the last id of the page
// before.
func pageOf[T any](items []T, id func(T) string, p mobileapi.Page) ([]T, string, error) {
	start := 0
	if p.Cursor != "" {
		i := slices.IndexFunc(items, func(x T) bool { return id(x) == p.Cursor })
		if i < 0 {
			return nil, "", invalidParam("cursor", "The cursor is not valid; start again from the first page.")
		}
		start = i + 1
	}
	limit := p.Limit
	if limit <= 0 {
		limit = mobileapi.DefaultLimit
	}
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = id(items[end-1])
	}
	return items[start:end], next, nil
}

func (s *Server) deleteDevice(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Push.Store.DeleteInstallation(ctx, citizenOf(c), idParam(c, "id")); err != nil {
		return s.fail(c, err)
	}
	return c.SendStatus(http.StatusNoContent)
}

type quietView struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type servicePrefsView struct {
	Kinds    map[push.Kind]push.Channel `json:"kinds,omitempty"`
	FullText bool                       `json:"full_text"`
}

type prefsView struct {
	TimeZone   string                      `json:"time_zone"`
	QuietHours *quietView                  `json:"quiet_hours"`
	Kinds      map[push.Kind]push.Channel  `json:"kinds"`
	Services   map[string]servicePrefsView `json:"services"`
	UpdatedAt  *time.Time                  `json:"updated_at"`
}

func prefs(p *push.Preferences) prefsView {
	v := prefsView{TimeZone: p.TimeZone, Kinds: map[push.Kind]push.Channel{}, Services: map[string]servicePrefsView{}}
	for _, k := range push.Kinds {
		v.Kinds[k] = p.Channel(k, "")
	}
	if p.Quiet != nil {
		v.QuietHours = &quietView{Start: p.Quiet.Start, End: p.Quiet.End}
	}
	for code, sp := range p.Services {
		v.Services[code] = servicePrefsView{Kinds: sp.Kinds, FullText: sp.FullText}
	}
	if !p.UpdatedAt.IsZero() {
		t := p.UpdatedAt
		v.UpdatedAt = &t
	}
	return v
}

type prefsUpdate struct {
	TimeZone   string                      `json:"time_zone"`
	QuietHours *quietView                  `json:"quiet_hours"`
	Kinds      map[push.Kind]push.Channel  `json:"kinds"`
	Services   map[string]servicePrefsView `json:"services"`
}

func (s *Server) getPreferences(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	p, err := s.cfg.Push.Store.GetPreferences(ctx, citizenOf(c))
	if err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(prefs(p))
}

// putPreferences replaces the citizen's preferences. Login approvals are
// always pushed: a citizen who silenced them could not log in.
func (s *Server) putPreferences(c *fiber.Ctx) error {
	var in prefsUpdate
	if err := decodeJSON(c, fiber.MIMEApplicationJSON, &in); err != nil {
		return s.fail(c, err)
	}
	p := &push.Preferences{CitizenID: citizenOf(c), TimeZone: in.TimeZone, Kinds: in.Kinds}
	if p.TimeZone == "" {
		p.TimeZone = push.DefaultTimeZone
	}
	if in.QuietHours != nil {
		p.Quiet = &push.QuietHours{Start: in.QuietHours.Start, End: in.QuietHours.End}
	}
	var errs []fieldError
	if c, ok := in.Kinds[push.KindLoginApproval]; ok && c != push.ChannelPush {
		errs = append(errs, fieldError{Pointer: "/kinds/login_approval", Message: "Login approvals are always pushed."})
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if len(in.Services) > 0 {
		p.Services = make(map[string]push.ServicePreferences, len(in.Services))
		for code, sp := range in.Services {
			if len(p.Services) >= push.MaxServicePreferences {
				break // Validate reports it
			}
			p.Services[code] = push.ServicePreferences{Kinds: sp.Kinds, FullText: sp.FullText}
		}
		if len(in.Services) <= push.MaxServicePreferences {
			for code := range in.Services {
				if _, err := s.cfg.Store.GetServiceByCode(ctx, code); errors.Is(err, idp.ErrNotFound) && !errors.Is(err, idp.ErrUnavailable) {
					errs = append(errs, fieldError{Pointer: "/services/" + push.PointerToken(code), Message: "No such service."})
				} else if err != nil {
					return s.fail(c, err)
				}
			}
		} else {
			p.Services[""] = push.ServicePreferences{} // over the bound: Validate names it
		}
	}
	if err := p.Validate(); err != nil {
		var f *push.InvalidField
		if !errors.As(err, &f) {
			return s.fail(c, err)
		}
		errs = append(errs, fieldError{Pointer: f.Pointer, Message: f.Message})
	}
	if len(errs) > 0 {
		return s.fail(c, unprocessable(errs))
	}
	if err := s.cfg.Push.Store.PutPreferences(ctx, p); err != nil {
		return s.fail(c, err)
	}
	s.notify() // messages quiet hours held back may be due now
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(prefs(p))
}

type notificationView struct {
	ID             string     `json:"id"`
	Kind           push.Kind  `json:"kind"`
	ServiceCode    *string    `json:"service_code"`
	ApplicationID  *string    `json:"application_id"`
	InboxMessageID *string    `json:"inbox_message_id"`
	State          push.State `json:"state"`
	// Title and Body are a broadcast's notice (other notifications name
	// what to open instead).
	Title     *text     `json:"title,omitempty"`
	Body      *string   `json:"body,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func notification(m *push.Message) notificationView {
	return notificationView{ID: m.ID, Kind: m.Kind, ServiceCode: nullable(m.ServiceCode), ApplicationID: nullable(m.ApplicationID),
		InboxMessageID: nullable(m.InboxMessageID), State: m.State, CreatedAt: m.CreatedAt}
}

// getNotification is what the app fetches, after unlock, for the opaque id
// a push carried: what the notification is about, to open it.
func (s *Server) getNotification(c *fiber.Ctx) error {
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := idParam(c, "id")
	if bs := s.cfg.Push.Broadcasts; bs != nil && strings.HasPrefix(id, "brd_") {
		b, err := bs.GetBroadcast(ctx, id)
		if err != nil {
			return s.fail(c, err)
		}
		title, body := text{VI: b.Title.VI, EN: b.Title.EN}, b.Body
		c.Set(fiber.HeaderCacheControl, "private, no-cache")
		return c.JSON(notificationView{ID: b.ID, Kind: push.KindNotice, State: push.StateAccepted, Title: &title, Body: &body, CreatedAt: b.CreatedAt})
	}
	m, err := s.cfg.Push.Store.GetMessage(ctx, citizenOf(c), id)
	if err != nil {
		return s.fail(c, err)
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(notification(m))
}

type notificationReceiptView struct {
	ID        string    `json:"id"`
	Kind      push.Kind `json:"kind"`
	Delivery  string    `json:"delivery"`
	CreatedAt time.Time `json:"created_at"`
}

// reachOf is what an agency learns of a message's state: whether the
// citizen was reached, not why not (their preferences, quiet hours or
// devices are theirs).
func reachOf(s push.State) string {
	switch s {
	case push.StateAccepted:
		return "delivered"
	case push.StateDead, push.StateSkipped:
		return "not_delivered"
	}
	return "pending"
}

// agencyNotifications lists the notifications an application's
// transitions raised, with their delivery state: the agency learns whether
// the citizen was reached, not on which device.
func (s *Server) agencyNotifications(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return s.fail(c, err)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	id := idParam(c, "id")
	if _, err := s.cfg.Store.GetApplication(ctx, agencyScope(c), id); err != nil {
		return s.fail(c, err)
	}
	ms, err := s.cfg.Push.Store.ListSentMessages(ctx, agencyOf(c), id)
	if err != nil {
		return s.fail(c, err)
	}
	ms, next, err := pageOf(ms, func(m *push.Message) string { return m.ID }, p)
	if err != nil {
		return s.fail(c, err)
	}
	views := make([]notificationReceiptView, 0, len(ms))
	for _, m := range ms {
		views = append(views, notificationReceiptView{ID: m.ID, Kind: m.Kind, Delivery: reachOf(m.State), CreatedAt: m.CreatedAt})
	}
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	return c.JSON(newList(views, next))
}

// streams holds what the live streams of this replica share: the default
// limiter (per process, when no shared one is configured), the default
// cursor sealer, and the end of every stream at Shutdown.
type streams struct {
	local  push.LocalLimiter
	sealer *push.CursorSealer
	done   chan struct{} // closed at Shutdown: every stream ends
	once   sync.Once
}

func newStreams() *streams {
	// Without a configured key the ids hold only in this process: after a
	// restart an old id is refused (400) and the app starts afresh.
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	sealer, _ := push.NewCursorSealer(key)
	return &streams{sealer: sealer, done: make(chan struct{})}
}

func (st *streams) close() {
	if st == nil { // Static has none
		return
	}
	st.once.Do(func() { close(st.done) })
}

// catchUpPage is how many stored events one read of a reconnecting
// stream's catch-up returns; catchUpMax bounds the catch-up (older events
// are in the inbox and applications anyway).
const (
	catchUpPage = 100
	catchUpMax  = 1000
	// revocationCheck is how often a live stream's token is checked
	// again.
	revocationCheck = 2 * time.Second
)

// liveStream is one open stream: whom it is for and where it stands.
type liveStream struct {
	citizen  string
	province string // "" when unknown: province broadcasts are not shown
	prefs    *push.Preferences
	cursor   push.Cursor
}

// wants reports whether the stream shows e: a message's audience was
// decided by the dispatcher; a broadcast's is decided here, by the
// citizen's province and preferences, as RunBroadcastStep decides for
// pushes.
func (ls *liveStream) wants(e push.Event) bool {
	if e.BroadcastSeq == 0 {
		return true
	}
	if ls.prefs.Channel(push.KindNotice, "") == push.ChannelOff {
		return false
	}
	return e.Province == "" || (ls.province != "" && e.Province == ls.province)
}

// events is the live stream (server-sent events) for the app in the
// foreground. Its ids are sealed cursors (push.CursorSealer): opaque, bound
// to the citizen, saying nothing of the platform's volume. It subscribes
// before reading what the client missed (after Last-Event-ID) from the
// store, so nothing committed in between is lost; an event may come twice,
// and the app drops it by message_id. A first connection gets an id too
// (with no event), so reconnecting after a quiet spell loses nothing. The
// token is checked again every revocationCheck: a revoked device's stream
// ends.
func (s *Server) events(c *fiber.Ctx) error {
	pc := s.cfg.Push
	sealer := pc.Cursors
	if sealer == nil {
		sealer = s.streams.sealer
	}
	ls := &liveStream{citizen: citizenOf(c)}
	var (
		resume, legacy bool
		err            error
	)
	if v := c.Get("Last-Event-ID"); v != "" {
		ls.cursor, legacy, err = sealer.Open(ls.citizen, v)
		if err != nil {
			return s.fail(c, invalidParam("Last-Event-ID", "Not an id this stream sent you. Reconnect without it to start from now; the inbox has what came before."))
		}
		// A legacy id (a platform-wide outbox position, from before ids
		// were sealed) starts the stream from now: replaying after a
		// position the caller chose would let a citizen bisect positions
		// and learn how many messages the whole platform sent.
		resume = !legacy
	}
	limit := pc.MaxStreams
	if limit <= 0 {
		limit = push.DefaultMaxStreams
	}
	var limiter push.StreamLimiter = &s.streams.local
	if pc.Streams != nil {
		limiter = pc.Streams
	}
	ctx, cancelSub := context.WithCancel(context.Background())
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	release, ok, err := limiter.Acquire(rctx, ls.citizen, limit)
	if err != nil {
		cancelSub()
		return s.fail(c, errUnavailable(err))
	}
	if !ok {
		cancelSub()
		c.Set(fiber.HeaderRetryAfter, "30")
		return s.sendProblem(c, apiProblem{Problem: problem.Problem{Type: typeRateLimited, Title: tRateLimited.In(lang(c)),
			Status: http.StatusTooManyRequests, Detail: fmt.Sprintf("At most %d live streams per citizen; close one.", limit)}})
	}
	ch, unsubscribe, err := pc.Hub.Subscribe(ctx, ls.citizen)
	if err != nil {
		cancelSub()
		release()
		return s.fail(c, errUnavailable(err))
	}
	// After subscribing: whatever commits from now on reaches the stream.
	if err := s.startStream(rctx, ls, resume, legacy); err != nil {
		unsubscribe()
		cancelSub()
		release()
		return s.fail(c, errUnavailable(err))
	}
	token := bearer(c)
	heartbeat := pc.Heartbeat
	if heartbeat <= 0 {
		heartbeat = 15 * time.Second
	}
	conn := c.Context().Conn()
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no") // proxies must not buffer the stream
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		defer cancelSub()
		defer unsubscribe()
		sent := map[string]bool{}
		write := func(e push.Event) bool {
			if sent[e.MessageID] || !ls.wants(e) {
				return true
			}
			if len(sent) >= 4096 { // a long stream: duplicates only come early, from the catch-up
				clear(sent)
			}
			sent[e.MessageID] = true
			ls.cursor = ls.cursor.After(e)
			b, _ := json.Marshal(e)
			_ = conn.SetWriteDeadline(time.Now().Add(heartbeat + 10*time.Second))
			_, err := fmt.Fprintf(w, "id: %s\nevent: notification\ndata: %s\n\n", sealer.Seal(ls.citizen, ls.cursor), b)
			return err == nil && w.Flush() == nil
		}
		_ = conn.SetWriteDeadline(time.Now().Add(heartbeat + 10*time.Second))
		// An id without data sets the client's Last-Event-ID and fires no
		// event (the SSE spec's "dispatch the event").
		if _, err := fmt.Fprintf(w, "retry: 3000\nid: %s\n\n", sealer.Seal(ls.citizen, ls.cursor)); err != nil || w.Flush() != nil {
			return
		}
		if resume && !s.catchUp(ctx, ls, write) {
			return
		}
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		// The token is checked more often than the heartbeat: a stolen
		// phone's stream must end within seconds of the revocation (the
		// check is the verifier's cache, whose deny list is a second old at
		// most), not at the next ping.
		recheck := time.NewTicker(min(heartbeat, revocationCheck))
		defer recheck.Stop()
		for {
			select {
			case e, ok := <-ch:
				if !ok {
					return // too slow, or the hub lost events: reconnect and catch up
				}
				if !write(e) {
					return
				}
			case <-recheck.C:
				vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := s.cfg.Verifier.VerifyFor(vctx, token, accesstoken.Expect{Audience: s.cfg.APIURL, Kind: accesstoken.KindCitizen})
				cancel()
				if errors.Is(err, accesstoken.ErrInvalid) {
					_, _ = fmt.Fprintf(w, "event: end\ndata: {\"reason\":\"token\"}\n\n")
					_ = w.Flush()
					return
				}
			case <-tick.C:
				_ = conn.SetWriteDeadline(time.Now().Add(heartbeat + 10*time.Second))
				if _, err := w.WriteString(": ping\n\n"); err != nil || w.Flush() != nil {
					return
				}
			case <-s.streams.done:
				return
			}
		}
	})
	return nil
}

// startStream reads what the stream filters broadcasts by and, for a new
// stream (or a legacy id, which has no broadcast position), where it
// starts: after the citizen's newest message and the newest broadcast.
func (s *Server) startStream(ctx context.Context, ls *liveStream, resume, legacy bool) error {
	pc := s.cfg.Push
	var err error
	if ls.prefs, err = pc.Store.GetPreferences(ctx, ls.citizen); err != nil {
		return err
	}
	if pc.ProvinceOf != nil {
		if ls.province, err = pc.ProvinceOf(ctx, ls.citizen); err != nil {
			return err
		}
	}
	if !resume {
		if ls.cursor.Msg, err = pc.Store.LastSeq(ctx, ls.citizen); err != nil {
			return err
		}
	}
	if (!resume || legacy) && pc.Broadcasts != nil {
		if ls.cursor.Brd, err = pc.Broadcasts.LastBroadcastSeq(ctx); err != nil {
			return err
		}
	}
	return nil
}

// catchUp writes the citizen's stored events after the stream's cursor:
// messages (skipping those the citizen turned off), then broadcasts to
// the citizen. A broadcast is one row, not a row per citizen: the
// audience is decided here, as for a live one.
func (s *Server) catchUp(ctx context.Context, ls *liveStream, write func(push.Event) bool) bool {
	pc := s.cfg.Push
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	last := ls.cursor.Msg
	for n := 0; n < catchUpMax; n += catchUpPage {
		ms, err := pc.Store.MessagesAfter(rctx, ls.citizen, last, catchUpPage)
		if err != nil {
			return false
		}
		for _, m := range ms {
			last = m.Seq
			if ls.prefs.Channel(m.Kind, m.ServiceCode) == push.ChannelOff {
				continue
			}
			if !write(push.EventOf(m)) {
				return false
			}
		}
		if len(ms) < catchUpPage {
			break
		}
	}
	if pc.Broadcasts == nil {
		return true
	}
	lastB := ls.cursor.Brd
	for n := 0; n < catchUpMax; n += catchUpPage {
		bs, err := pc.Broadcasts.BroadcastsAfter(rctx, lastB, catchUpPage)
		if err != nil {
			return false
		}
		for _, b := range bs {
			lastB = b.LiveSeq
			if !write(push.BroadcastEventOf(b)) {
				return false
			}
		}
		if len(bs) < catchUpPage {
			break
		}
	}
	return true
}
