package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

const (
	// defaultRetry is the reconnection time until the stream's retry
	// field sets one (the API sends 3000 first).
	defaultRetry = 3 * time.Second
	// maxBackoff bounds the wait between attempts, however many failed.
	maxBackoff = time.Minute
	// maxRetryAfter bounds how long a Retry-After may hold the app back.
	maxRetryAfter = 5 * time.Minute
	// idleTimeout drops a stream that sent nothing, not even the comment
	// the API sends every 15 seconds, for this long: a dead peer.
	idleTimeout = time.Minute
	// callTimeout bounds every request but the stream's body.
	callTimeout = 30 * time.Second
	// recentIDs is how many message ids are remembered to drop the
	// duplicates the API may send (a catch-up racing a live event).
	recentIDs = 1024
	// pushTokenPrefix marks the reference app's push tokens.
	pushTokenPrefix = "eidsim-"
)

// streamer is `eidsim events`: it follows the citizen's live stream and
// prints each notification with what it is about.
type streamer struct {
	app  *eidapp.App
	api  string
	out  *json.Encoder // one JSON line per notification
	log  io.Writer     // what happens to the stream, for the developer
	max  int           // stop after this many notifications; 0: never
	idle time.Duration

	retry   time.Duration // the reconnection time
	last    string        // the last event id (opaque), persisted in the home
	printed int
	seen    recent
}

// eventLine is what is printed of a notification: the event as the API
// sent it, its position, and the notification it names.
type eventLine struct {
	EventID        string `json:"event_id"`
	MessageID      string `json:"message_id"`
	Kind           string `json:"kind"`
	ServiceCode    string `json:"service_code,omitempty"`
	ApplicationID  string `json:"application_id,omitempty"`
	InboxMessageID string `json:"inbox_message_id,omitempty"`
	CreatedAt      string `json:"created_at,omitempty"`
	// Notification is GET /v1/notifications/{message_id} as the API
	// answered it; NotificationError says why it could not be fetched.
	Notification      json.RawMessage `json:"notification,omitempty"`
	NotificationError string          `json:"notification_error,omitempty"`
}

// followEvents runs `eidsim events` until --max notifications were
// printed or ctx ends (SIGINT, SIGTERM), both a success.
func followEvents(ctx context.Context, app *eidapp.App, o *options, stdout, stderr io.Writer) error {
	// The default client's 30 s timeout would cut every stream: bound the
	// wait for an answer instead, and a stream by its silence.
	app.HTTP = &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: callTimeout, KeepAlive: callTimeout}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: callTimeout,
		IdleConnTimeout:       90 * time.Second,
	}}
	err := newStreamer(app, o, stdout, stderr).run(ctx)
	if ctx.Err() != nil {
		return nil // interrupted: the position is saved, the next run resumes
	}
	return err
}

func newStreamer(app *eidapp.App, o *options, stdout, stderr io.Writer) *streamer {
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	return &streamer{app: app, api: strings.TrimRight(o.api, "/"), out: enc, log: stderr, max: o.max, idle: idleTimeout, retry: defaultRetry}
}

func (s *streamer) run(ctx context.Context) error {
	if err := s.register(ctx); err != nil {
		return err
	}
	last, err := s.app.LastEventID()
	if err != nil {
		return err
	}
	s.last = last
	failures := 0
	for {
		a, err := s.connect(ctx)
		if err != nil || ctx.Err() != nil {
			return err
		}
		var why string
		switch a.how {
		case done:
			return nil
		case ended:
			if err := s.renew(ctx); err != nil {
				return err
			}
			why = "the API ended the stream: its token is no longer valid; got a new one"
		default:
			why = "the stream dropped: " + clean(a.err.Error())
		}
		// A stream that worked starts the backoff again; an attempt that
		// failed, or a token the API ends at once, doubles it.
		if a.delivered || (a.opened && a.how == dropped) {
			failures = 0
		} else {
			failures++
		}
		wait := backoff(s.retry, failures, a.retryAfter)
		fmt.Fprintf(s.log, "events: %s; reconnecting in %s\n", why, wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// register makes sure the API pushes to this app: it registers the app's
// stable token for FCM when the API offers FCM (the demo logs those pushes
// in its sink). Registering again only updates the installation.
func (s *streamer) register(ctx context.Context) error {
	b, err := s.call(ctx, http.MethodGet, "/v1/push-config", nil, http.StatusOK)
	if err != nil {
		return fmt.Errorf("push configuration: %w", err)
	}
	var cfg struct {
		Platforms []string `json:"platforms"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("push configuration: %w", err)
	}
	if !slices.Contains(cfg.Platforms, "fcm") {
		fmt.Fprintf(s.log, "push: the API offers no fcm pushes (platforms: %s); not registered, following the stream alone\n", clean(strings.Join(cfg.Platforms, ", ")))
		return nil
	}
	tok, err := s.app.PushToken()
	if err != nil {
		return err
	}
	in := map[string]string{"platform": "fcm", "token": pushTokenPrefix + tok, "locale": "vi"}
	if b, err = s.call(ctx, http.MethodPost, "/v1/devices", in, http.StatusOK, http.StatusCreated); err != nil {
		return fmt.Errorf("register for pushes: %w", err)
	}
	var dev struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(b, &dev) // the id is only shown
	fmt.Fprintf(s.log, "push: this app is registered for fcm pushes (installation %s)\n", clean(dev.ID))
	return nil
}

// outcome is how one connection to the stream ended.
type outcome int

const (
	dropped outcome = iota // closed, failed or refused for now: reconnect
	ended                  // an end event: a new token, then reconnect
	done                   // --max notifications printed
)

// attempt is one connection to the stream.
type attempt struct {
	how        outcome
	opened     bool          // the API answered with a stream
	delivered  bool          // a notification came
	retryAfter time.Duration // the API's Retry-After on 429 and 5xx
	err        error         // why it dropped
}

// errIdle is a stream silent for longer than the idle timeout.
var errIdle = errors.New("it went silent, not even a heartbeat")

// connect opens the stream after the last event received and follows it
// until it ends. Its error is one that reconnecting cannot mend.
func (s *streamer) connect(ctx context.Context) (attempt, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, s.api+"/v1/events", nil) //nolint:gosec // the API URL the user chose; DoAPI keeps the token beneath it
	if err != nil {
		return attempt{}, fmt.Errorf("GET /v1/events: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.last != "" {
		req.Header.Set("Last-Event-ID", s.last)
	}
	resp, err := s.app.DoAPI(cctx, s.api, req)
	if err != nil {
		if transient(err) {
			return attempt{err: err}, nil
		}
		return attempt{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProblem))
		err := statusError(http.MethodGet, "/v1/events", resp, body)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return attempt{err: err, retryAfter: retryAfter(resp.Header.Get("Retry-After"))}, nil
		}
		return attempt{}, err // 400, 401, 404: the same request would fare the same
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return attempt{}, fmt.Errorf("GET /v1/events: answered %q, not an event stream", clean(resp.Header.Get("Content-Type")))
	}
	a := attempt{opened: true}
	idle := time.AfterFunc(s.idle, func() { cancel(errIdle) })
	defer idle.Stop()
	r := newSSEReader(&activity{r: resp.Body, idle: idle, d: s.idle})
	for {
		ev, err := r.Next()
		if r.retry > 0 {
			s.retry = r.retry
		}
		if err != nil {
			switch {
			case errors.Is(context.Cause(cctx), errIdle):
				err = errIdle
			case errors.Is(err, io.EOF):
				err = errors.New("the API closed it")
			}
			a.err = err
			return a, nil
		}
		switch ev.Type {
		case "notification":
			a.delivered = true
			if err := s.notify(cctx, ev); err != nil {
				return a, err
			}
			if s.max > 0 && s.printed >= s.max {
				a.how = done
				return a, nil
			}
		case "end":
			a.how = ended
			return a, nil
		}
		// Other event types are not the API's: ignored.
	}
}

// notify prints a notification event with the notification it names,
// once per message, and saves its id. The API's ids are opaque: the
// newest is where the stream resumes.
func (s *streamer) notify(ctx context.Context, ev sseEvent) error {
	if ev.ID == "" || len(ev.ID) > maxEventID || strings.ContainsFunc(ev.ID, unicode.IsControl) {
		fmt.Fprintf(s.log, "events: a notification without a valid id (%q); skipped\n", clean(ev.ID))
		return nil
	}
	var line eventLine
	if err := json.Unmarshal([]byte(ev.Data), &line); err != nil || line.MessageID == "" {
		fmt.Fprintf(s.log, "events: notification %q is not an event; skipped\n", clean(ev.ID))
	} else if !s.seen.has(line.MessageID) {
		line.EventID = ev.ID
		s.describe(ctx, &line)
		if ctx.Err() != nil {
			return nil // interrupted or idle: neither shown nor saved, so it comes again
		}
		if err := s.out.Encode(&line); err != nil {
			return fmt.Errorf("print: %w", err)
		}
		s.seen.add(line.MessageID)
		s.printed++
	}
	// Saved after printing: a crash in between shows an event twice, never
	// loses one.
	if ev.ID != s.last {
		if err := s.app.SetLastEventID(ev.ID); err != nil {
			return err
		}
		s.last = ev.ID
	}
	return nil
}

// maxEventID bounds an id kept and sent back (the API's are under 100
// characters).
const maxEventID = 512

// describe fetches what the notification is about, as the app does after
// unlock.
func (s *streamer) describe(ctx context.Context, line *eventLine) {
	b, err := s.call(ctx, http.MethodGet, "/v1/notifications/"+url.PathEscape(line.MessageID), nil, http.StatusOK)
	if err != nil {
		line.NotificationError = err.Error()
		return
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		line.NotificationError = "the API answered with no JSON"
		return
	}
	line.Notification = buf.Bytes()
}

// renew replaces the token the API stopped accepting, through the app's
// own path: the device key's grant.
func (s *streamer) renew(ctx context.Context) error {
	if err := s.app.ForgetAPIToken(s.api); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.app.APIToken(cctx, s.api); err != nil {
		return fmt.Errorf("the API ended the stream because it no longer accepts this app's token, and no new token could be had (was the device revoked?): %w", err)
	}
	return nil
}

// maxProblem bounds how much of an answer is read: a notification, a
// problem document.
const maxProblem = 1 << 20

// call sends one JSON request to the API with the citizen's token and
// returns the body of an answer whose status is one of ok.
func (s *streamer) call(ctx context.Context, method, path string, in any, ok ...int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b) // sets GetBody: DoAPI may send it twice
	}
	req, err := http.NewRequestWithContext(ctx, method, s.api+path, body) //nolint:gosec // the API URL the user chose; DoAPI keeps the token beneath it
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.app.DoAPI(ctx, s.api, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxProblem))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if !slices.Contains(ok, resp.StatusCode) {
		return nil, statusError(method, path, resp, b)
	}
	return b, nil
}

// statusError names a refused request, with the problem's detail when the
// API gave one.
func statusError(method, path string, resp *http.Response, body []byte) error {
	msg := fmt.Sprintf("%s %s: %s", method, path, clean(resp.Status))
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && p.Detail != "" {
		d := []rune(p.Detail)
		if len(d) > 300 {
			d = append(d[:300], '…')
		}
		msg += ": " + clean(string(d))
	}
	return errors.New(msg)
}

// transient reports whether a failed DoAPI may succeed later: the network
// failed, or the IdP failed on its side. A refused grant or a bad
// configuration stays refused.
func transient(err error) bool {
	if e, ok := errors.AsType[*eidapp.Error](err); ok {
		return e.StatusCode >= 500
	}
	_, ok := errors.AsType[*url.Error](err)
	return ok
}

// backoff is the wait before the next attempt: the reconnection time,
// doubled for each attempt that failed in a row beyond the first, at most
// maxBackoff; at least what a Retry-After asked; with up to a fifth more
// so that apps dropped together do not come back together.
func backoff(retry time.Duration, failures int, after time.Duration) time.Duration {
	d := min(retry, maxBackoff)
	for i := 1; i < failures && d < maxBackoff; i++ {
		d = min(2*d, maxBackoff)
	}
	d = max(d, min(after, maxRetryAfter))
	return d + rand.N(d/5+1) //nolint:gosec // jitter, not a secret
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

// activity is the stream's body, re-arming the idle timer at each read.
type activity struct {
	r    io.Reader
	idle *time.Timer
	d    time.Duration
}

func (a *activity) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.idle.Reset(a.d)
	}
	return n, err
}

// recent remembers the last recentIDs message ids.
type recent struct {
	ids  map[string]bool
	ring [recentIDs]string
	next int
}

func (r *recent) has(id string) bool { return r.ids[id] }

// add records id, forgetting the oldest beyond recentIDs.
func (r *recent) add(id string) {
	if r.ids[id] {
		return
	}
	if r.ids == nil {
		r.ids = make(map[string]bool, recentIDs)
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next], r.next = id, (r.next+1)%recentIDs
	r.ids[id] = true
}
