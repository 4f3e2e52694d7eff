package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/mobileapi/fiberapi"
	"github.com/onedoor/onedoor/push"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// fakeAPI is an IdP that grants any device a token ("tok-1", "tok-2"...)
// and a mobile API that accepts only the last one, with a scripted live
// stream: each connection to /v1/events plays the next script.
type fakeAPI struct {
	*httptest.Server
	idp, api string

	mu        sync.Mutex
	token     string // the one token the API accepts
	grants    int
	refuse    bool     // the IdP refuses grants, as for a revoked device
	platforms []string // what push-config lists
	devices   []map[string]string
	conns     []conn      // what each stream connection carried
	fetched   chan string // the notifications fetched
	scripts   []func(w io.Writer, flush func(), r *http.Request, f *fakeAPI)
}

// conn is what one stream connection carried.
type conn struct{ auth, lastEventID string }

func startFakeAPI(t *testing.T, scripts ...func(w io.Writer, flush func(), r *http.Request, f *fakeAPI)) *fakeAPI {
	t.Helper()
	f := &fakeAPI{platforms: []string{"fcm", "webpush"}, scripts: scripts, fetched: make(chan string, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /idp/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": f.idp, "token_endpoint": f.idp + "/token", "jwks_uri": f.idp + "/jwks"})
	})
	mux.HandleFunc("POST /idp/token", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if f.refuse {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"the device is revoked"}`)
			return
		}
		f.grants++
		f.token = fmt.Sprintf("tok-%d", f.grants)
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": f.token, "token_type": "DPoP", "expires_in": 300})
	})
	api := http.NewServeMux()
	api.HandleFunc("GET /v1/push-config", func(w http.ResponseWriter, _ *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"platforms": f.platforms, "vapid_public_key": nil})
	})
	api.HandleFunc("POST /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		f.mu.Lock()
		f.devices = append(f.devices, in)
		first := len(f.devices) == 1
		f.mu.Unlock()
		if first {
			w.WriteHeader(http.StatusCreated)
		}
		_, _ = io.WriteString(w, `{"id":"ins_1","platform":"fcm","locale":"vi"}`)
	})
	api.HandleFunc("GET /v1/notifications/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		select {
		case f.fetched <- id:
		default:
		}
		if id == "ntf_gone" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"status":404,"detail":"No such notification."}`)
			return
		}
		fmt.Fprintf(w, "{\n  \"id\": %q,\n  \"kind\": \"result\",\n  \"state\": \"accepted\"\n}\n", id) //nolint:gosec // JSON, as a pretty-printing API would send it
	})
	api.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.conns = append(f.conns, conn{auth: r.Header.Get("Authorization"), lastEventID: r.Header.Get("Last-Event-ID")})
		n := len(f.conns) - 1
		f.mu.Unlock()
		if n >= len(f.scripts) {
			http.Error(w, "no more scripts", http.StatusGone)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		f.scripts[n](w, func() { _ = rc.Flush() }, r, f)
	})
	mux.Handle("/api/", http.StripPrefix("/api", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok := f.token != "" && r.Header.Get("Authorization") == "DPoP "+f.token && r.Header.Get("DPoP") != ""
		f.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"status":401}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		api.ServeHTTP(w, r)
	})))
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	f.idp, f.api = f.URL+"/idp", f.URL+"/api"
	return f
}

// say writes a part of a stream and flushes it.
func say(w io.Writer, flush func(), s string) {
	_, _ = io.WriteString(w, s)
	flush()
}

// notification is an event of the API's stream.
func notification(seq int, id string) string {
	return fmt.Sprintf("id: %d\nevent: notification\ndata: {\"message_id\":%q,\"kind\":\"result\",\"created_at\":\"2026-12-01T03:21:00Z\"}\n\n", seq, id)
}

// hold keeps a stream open until the app leaves.
func hold(r *http.Request) { <-r.Context().Done() }

func (f *fakeAPI) seen() ([]conn, []map[string]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]conn(nil), f.conns...), append([]map[string]string(nil), f.devices...), f.grants
}

// guard bounds a run that should end by itself, so that a regression
// fails (printing too little) instead of hanging the suite.
const guard = 30 * time.Second

// events runs eidsim events against the fake until it exits.
func (f *fakeAPI) events(ctx context.Context, home string, args ...string) (code int, stdout, stderr string) {
	ctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, append([]string{"events", "--home", home, "--api", f.api}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// lines decodes the JSON lines printed.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var ls []map[string]any
	for l := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ls = append(ls, m)
	}
	return ls
}

func lastEventID(t *testing.T, home string) string {
	t.Helper()
	app, err := eidapp.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	n, err := app.LastEventID()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRun_Events follows a stream through a dropped connection and an end
// event, then resumes in a second run where the first stopped.
func TestRun_Events(t *testing.T) {
	f := startFakeAPI(t,
		func(w io.Writer, flush func(), _ *http.Request, _ *fakeAPI) {
			say(w, flush, "retry: 5\n\n: ping\n\n")
			// A notification in two data lines, then one with CRLF line
			// ends, between an event of another type.
			say(w, flush, "id: 1\nevent: notification\ndata: {\"message_id\":\"ntf_1\",\ndata: \"kind\":\"result\",\"service_code\":\"HT-KS\",\"application_id\":\"app_1\",\"created_at\":\"2026-12-01T03:21:00Z\"}\n\n")
			say(w, flush, "event: other\ndata: x\n\n")
			say(w, flush, "id: 2\r\nevent: notification\r\ndata: {\"message_id\":\"ntf_2\",\"kind\":\"status_change\"}\r\n\r\n")
			// Dropped in the middle of an event: it is not delivered.
			say(w, flush, "id: 3\nevent: notification\ndata: {\"message_id\":\"ntf_lost\"")
		},
		func(w io.Writer, flush func(), _ *http.Request, f *fakeAPI) {
			say(w, flush, notification(2, "ntf_2")) // the catch-up repeats one: dropped
			say(w, flush, notification(3, "ntf_gone"))
			// Once the app fetched that notification, the token is no
			// longer valid: the API says so and leaves.
			for id := range f.fetched {
				if id == "ntf_gone" {
					break
				}
			}
			f.mu.Lock()
			f.token = ""
			f.mu.Unlock()
			say(w, flush, "event: end\ndata: {\"reason\":\"token\"}\n\n")
		},
		func(w io.Writer, flush func(), r *http.Request, _ *fakeAPI) {
			say(w, flush, notification(4, "ntf_4"))
			hold(r)
		},
		func(w io.Writer, flush func(), r *http.Request, _ *fakeAPI) {
			say(w, flush, notification(5, "ntf_5")+notification(6, "ntf_6"))
			hold(r)
		},
	)
	home := writeDevice(t, f.idp)

	code, out, errs := f.events(context.Background(), home, "--max", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got := lines(t, out)
	if len(got) != 4 {
		t.Fatalf("printed %d lines, want 4:\n%s", len(got), out)
	}
	for i, want := range []struct {
		eventID string
		id      string
	}{{"1", "ntf_1"}, {"2", "ntf_2"}, {"3", "ntf_gone"}, {"4", "ntf_4"}} {
		if got[i]["event_id"] != want.eventID || got[i]["message_id"] != want.id {
			t.Errorf("line %d: %v; want event_id %v, message %s", i, got[i], want.eventID, want.id)
		}
	}
	if first := got[0]; first["kind"] != "result" || first["service_code"] != "HT-KS" || first["application_id"] != "app_1" ||
		first["created_at"] != "2026-12-01T03:21:00Z" {
		t.Errorf("the first event: %v", first)
	}
	if n, _ := got[0]["notification"].(map[string]any); n["id"] != "ntf_1" || n["state"] != "accepted" {
		t.Errorf("the first notification: %v", got[0]["notification"])
	}
	if !strings.HasPrefix(out, `{"event_id":"1","message_id":"ntf_1","kind":"result",`) || !strings.Contains(out, `"notification":{"id":"ntf_1","kind":"result","state":"accepted"}}`+"\n") {
		t.Errorf("lines are not as the API sent them, in one line each:\n%s", out)
	}
	if e, _ := got[2]["notification_error"].(string); got[2]["notification"] != nil || !strings.Contains(e, "404 Not Found: No such notification.") {
		t.Errorf("a notification the API no longer has: %v", got[2])
	}

	conns, devices, grants := f.seen()
	want := []conn{{"DPoP tok-1", ""}, {"DPoP tok-1", "2"}, {"DPoP tok-2", "3"}}
	if fmt.Sprint(conns) != fmt.Sprint(want) {
		t.Errorf("connections %v, want %v", conns, want)
	}
	if grants != 2 {
		t.Errorf("%d grants, want 2 (a new token after the end event)", grants)
	}
	if len(devices) != 1 || devices[0]["platform"] != "fcm" || devices[0]["locale"] != "vi" ||
		!regexp.MustCompile(`^eidsim-[A-Za-z0-9_-]{43}$`).MatchString(devices[0]["token"]) {
		t.Fatalf("registrations %v", devices)
	}
	pushToken := devices[0]["token"]
	if lastEventID(t, home) != "4" {
		t.Errorf("saved last event id %q, want 4", lastEventID(t, home))
	}
	if fi, err := os.Stat(filepath.Join(home, eidapp.PushFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", eidapp.PushFile, fi, err)
	}
	for _, want := range []string{"registered for fcm pushes (installation ins_1)", "the stream dropped", "reconnecting in", "its token is no longer valid"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, strings.TrimPrefix(pushToken, "eidsim-")) || strings.Contains(errs, "tok-") {
		t.Errorf("stderr shows a token:\n%s", errs)
	}

	t.Run("a second run resumes after the last event, with the same push token", func(t *testing.T) {
		code, out, errs := f.events(context.Background(), home, "--max", "1")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if got := lines(t, out); len(got) != 1 || got[0]["event_id"] != "5" {
			t.Errorf("printed %s; want event 5 alone", out)
		}
		conns, devices, grants := f.seen()
		if c := conns[len(conns)-1]; c != (conn{"DPoP tok-2", "4"}) {
			t.Errorf("connection %v: want the cached token and Last-Event-ID 4", c)
		}
		if grants != 2 || len(devices) != 2 || devices[1]["token"] != pushToken {
			t.Errorf("%d grants, registrations %v; want the cached token and the same push token", grants, devices)
		}
		if lastEventID(t, home) != "5" {
			t.Errorf("saved last event id %q, want 5", lastEventID(t, home))
		}
	})
}

// An interrupted run exits 0 and keeps what it saw.
func TestRun_EventsInterrupted(t *testing.T) {
	f := startFakeAPI(t, func(w io.Writer, flush func(), r *http.Request, _ *fakeAPI) {
		say(w, flush, notification(7, "ntf_7"))
		hold(r)
	})
	f.mu.Lock()
	f.platforms = []string{"apns"}
	f.mu.Unlock()
	home := writeDevice(t, f.idp)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	var errOut bytes.Buffer
	out := &onWrite{fn: cancel} // the first line printed: the user presses ^C
	if code := run(ctx, []string{"events", "--home", home, "--api", f.api}, out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if got := lines(t, out.String()); len(got) != 1 || got[0]["message_id"] != "ntf_7" {
		t.Errorf("printed %q", out.String())
	}
	if lastEventID(t, home) != "7" {
		t.Errorf("saved last event id %q, want 7", lastEventID(t, home))
	}
	if _, devices, _ := f.seen(); len(devices) != 0 || !strings.Contains(errOut.String(), "offers no fcm pushes (platforms: apns); not registered") {
		t.Errorf("registrations %v without fcm; stderr %s", devices, errOut.String())
	}
}

// onWrite is a buffer that calls fn at the first write.
type onWrite struct {
	bytes.Buffer
	once sync.Once
	fn   func()
}

func (o *onWrite) Write(p []byte) (int, error) {
	n, err := o.Buffer.Write(p)
	o.once.Do(o.fn)
	return n, err
}

func TestRun_EventsFailures(t *testing.T) {
	t.Run("an end event and no new token", func(t *testing.T) {
		f := startFakeAPI(t, func(w io.Writer, flush func(), _ *http.Request, f *fakeAPI) {
			f.mu.Lock()
			f.refuse, f.token = true, ""
			f.mu.Unlock()
			say(w, flush, "retry: 1\n\nevent: end\ndata: {\"reason\":\"token\"}\n\n")
		})
		code, _, errs := f.events(context.Background(), writeDevice(t, f.idp))
		if code != 1 || !strings.Contains(errs, "no longer accepts this app's token, and no new token could be had") || !strings.Contains(errs, "invalid_grant") {
			t.Errorf("exit %d: %s", code, errs)
		}
	})
	t.Run("a stream the API refuses", func(t *testing.T) {
		f := startFakeAPI(t) // no script: 410
		code, _, errs := f.events(context.Background(), writeDevice(t, f.idp))
		if code != 1 || !strings.Contains(errs, "GET /v1/events: 410 Gone") || strings.Contains(errs, "reconnecting") {
			t.Errorf("exit %d: %s", code, errs)
		}
	})
	t.Run("not an event stream", func(t *testing.T) {
		f := startFakeAPI(t, func(w io.Writer, flush func(), _ *http.Request, _ *fakeAPI) {})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/v1/events" {
				_, _ = io.WriteString(w, "<html>")
				return
			}
			f.Config.Handler.ServeHTTP(w, r)
		}))
		defer srv.Close()
		var out, errOut bytes.Buffer
		home := writeDevice(t, f.idp)
		if code := run(context.Background(), []string{"events", "--home", home, "--api", srv.URL + "/api"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "not an event stream") {
			t.Errorf("exit %d: %s", code, errOut.String())
		}
	})
}

// TestRun_EventsAgainstTheAPI runs eidsim events against the real mobile
// API: its registration, live stream, catch-up and notifications.
func TestRun_EventsAgainstTheAPI(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiURL := "http://" + ln.Addr().String()
	p := startIDPFor(t, apiURL)
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "push.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store := pushsql.New(db, sqldb.SQLite)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	subscribed := make(chan struct{}, 1)
	hub := &push.LocalHub{OnFirst: func(string) {
		select {
		case subscribed <- struct{}{}:
		default:
		}
	}}
	srv := fiberapi.New(fiberapi.Config{APIURL: apiURL, Verifier: p.provider.Verifier, Citizens: p.store, DPoP: dpop.New(dpop.Config{}, p.store),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Push:   &fiberapi.PushConfig{Store: store, Hub: hub, Platforms: []push.Platform{push.FCM, push.APNs}}})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	code, _, err := p.svc.Activate(ctx, "001099012345", idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	var out, errOut bytes.Buffer
	if c := run(ctx, []string{"enroll", "--home", home, "--idp", p.issuer, "--personal-id", "001099012345", "--activation-code", code}, &out, &errOut); c != 0 {
		t.Fatalf("enroll: exit %d: %s", c, errOut.String())
	}
	send := func(m *push.Message) {
		t.Helper()
		if err := store.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := hub.Publish(ctx, "c-1", push.EventOf(m)); err != nil {
			t.Fatal(err)
		}
	}
	events := func(args ...string) (int, string, string) {
		ctx, cancel := context.WithTimeout(ctx, guard)
		defer cancel()
		var out, errOut bytes.Buffer
		c := run(ctx, append([]string{"events", "--home", home, "--api", apiURL}, args...), &out, &errOut)
		return c, out.String(), errOut.String()
	}

	type result struct {
		code        int
		out, stderr string
	}
	done := make(chan result, 1)
	go func() {
		c, o, e := events("--max", "2")
		done <- result{c, o, e}
	}()
	select {
	case <-subscribed:
	case r := <-done:
		t.Fatalf("eidsim events left before subscribing: exit %d: %s", r.code, r.stderr)
	}
	a := &push.Message{CitizenID: "c-1", Kind: push.KindResult, ServiceCode: "HT-KS", ApplicationID: "app_1", InboxMessageID: "msg_1"}
	b := &push.Message{CitizenID: "c-1", Kind: push.KindStatusChange, ApplicationID: "app_1"}
	send(a)
	send(b)
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	got := lines(t, r.out)
	// The API's ids are sealed: they show no outbox position.
	if id, _ := got[0]["event_id"].(string); !strings.HasPrefix(id, "c1.") {
		t.Errorf("event id %q, want a sealed one", id)
	}
	if len(got) != 2 || got[0]["message_id"] != a.ID || got[0]["service_code"] != "HT-KS" ||
		got[0]["inbox_message_id"] != "msg_1" || got[1]["message_id"] != b.ID || got[1]["kind"] != "status_change" {
		t.Fatalf("printed:\n%s", r.out)
	}
	if n, _ := got[0]["notification"].(map[string]any); n["id"] != a.ID || n["kind"] != "result" || n["application_id"] != "app_1" || n["state"] != "queued" {
		t.Errorf("notification %v", got[0]["notification"])
	}
	ins, err := store.ListInstallations(ctx, "c-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Platform != push.FCM || !strings.HasPrefix(ins[0].Token, "eidsim-") || ins[0].DeviceID == "" || ins[0].Locale != "vi" {
		t.Fatalf("installations %+v", ins)
	}
	if !strings.Contains(r.stderr, "registered for fcm pushes (installation "+ins[0].ID+")") {
		t.Errorf("stderr %s", r.stderr)
	}

	// Missed while the app was away: the next run catches up from the
	// saved id, and registers the same installation again.
	c := &push.Message{CitizenID: "c-1", Kind: push.KindNotice}
	send(c)
	code2, out2, errs2 := events("--max", "1")
	if code2 != 0 {
		t.Fatalf("exit %d: %s", code2, errs2)
	}
	got2 := lines(t, out2)
	if len(got2) != 1 || got2[0]["message_id"] != c.ID {
		t.Fatalf("the second run printed:\n%s", out2)
	}
	if again, _ := store.ListInstallations(ctx, "c-1"); len(again) != 1 || again[0].ID != ins[0].ID {
		t.Errorf("installations after the second run: %+v", again)
	}
	if lastEventID(t, home) != got2[0]["event_id"] {
		t.Errorf("saved last event id %q, want %v", lastEventID(t, home), got2[0]["event_id"])
	}
}

// The backoff doubles from the reconnection time, within its bounds.
func TestBackoff(t *testing.T) {
	for _, tt := range []struct {
		retry    time.Duration
		failures int
		after    time.Duration
		want     time.Duration
	}{
		{3 * time.Second, 0, 0, 3 * time.Second},
		{3 * time.Second, 1, 0, 3 * time.Second},
		{3 * time.Second, 3, 0, 12 * time.Second},
		{3 * time.Second, 50, 0, maxBackoff},
		{time.Hour, 1, 0, maxBackoff},
		{3 * time.Second, 1, 30 * time.Second, 30 * time.Second},
		{3 * time.Second, 1, time.Hour, maxRetryAfter},
	} {
		got := backoff(tt.retry, tt.failures, tt.after)
		if got < tt.want || got > tt.want+tt.want/5 {
			t.Errorf("backoff(%v, %d, %v) = %v, want %v plus at most a fifth", tt.retry, tt.failures, tt.after, got, tt.want)
		}
	}
	if got := retryAfter("7"); got != 7*time.Second {
		t.Errorf("Retry-After 7: %v", got)
	}
	if got := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); got != maxRetryAfter {
		t.Errorf("Retry-After in an hour: %v", got)
	}
}

func TestRecent(t *testing.T) {
	var r recent
	for i := range recentIDs + 1 {
		r.add(fmt.Sprint(i))
	}
	r.add("5") // already there: nothing forgotten
	if r.has("0") || !r.has("1") || !r.has(fmt.Sprint(recentIDs)) || len(r.ids) != recentIDs {
		t.Errorf("after %d ids: has 0 %v, 1 %v, last %v; %d remembered", recentIDs+1, r.has("0"), r.has("1"), r.has(fmt.Sprint(recentIDs)), len(r.ids))
	}
}

// A stream that goes silent (a dead peer behind an open connection) is
// dropped and opened again.
func TestStreamer_Idle(t *testing.T) {
	f := startFakeAPI(t,
		func(w io.Writer, flush func(), r *http.Request, _ *fakeAPI) {
			say(w, flush, "retry: 1\n\n"+notification(1, "ntf_1"))
			hold(r) // and say nothing more
		},
		func(w io.Writer, flush func(), r *http.Request, _ *fakeAPI) {
			say(w, flush, notification(2, "ntf_2"))
			hold(r)
		},
	)
	app, err := eidapp.Open(writeDevice(t, f.idp))
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	s := newStreamer(app, &options{api: f.api, max: 2}, &out, &errOut)
	s.idle = 50 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := s.run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lines(t, out.String()); len(got) != 2 || got[1]["message_id"] != "ntf_2" {
		t.Errorf("printed %s", out.String())
	}
	if conns, _, _ := f.seen(); len(conns) != 2 || conns[1].lastEventID != "1" || !strings.Contains(errOut.String(), "the stream dropped: it went silent") {
		t.Errorf("connections %v; stderr %s", conns, errOut.String())
	}
}
