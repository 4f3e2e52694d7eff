package webpush_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/webpush"
	"github.com/onedoor/onedoor/push/webpush/webpushtest"
)

const subject = "mailto:push@onedoor.example"

func newClient(t testing.TB, hc *http.Client) *webpush.Client {
	t.Helper()
	key, err := webpush.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c, err := webpush.New(webpush.Config{PrivateKey: key, Subject: subject, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func target(s push.Subscription) push.Target {
	return push.Target{Platform: push.WebPush, Subscription: &s}
}

// payload mirrors what a service worker reads.
type payload struct {
	MessageID string            `json:"message_id"`
	Kind      string            `json:"kind"`
	Title     string            `json:"title"`
	Body      string            `json:"body"`
	Data      map[string]string `json:"data"`
}

func TestClient_SendRoundTrip(t *testing.T) {
	srv := webpushtest.NewServer(t)
	c := newClient(t, srv.Client())
	srv.RequireVAPIDKey(c.PublicKey())
	if c.Platform() != push.WebPush {
		t.Errorf("Platform() = %q", c.Platform())
	}
	sub := srv.Subscribe()
	now := time.Now()
	c.SetNow(func() time.Time { return now })

	n := &push.Notification{
		MessageID:   "msg-1",
		Kind:        "login_approval",
		Title:       "Approve sign-in",
		Body:        "Code 42 <b>&</b> ünïcode",
		CollapseKey: "approval_7",
		Priority:    push.High,
		Expires:     now.Add(90*time.Second + 300*time.Millisecond),
		Data:        map[string]string{"tx": "7"},
	}
	if err := c.Send(context.Background(), target(sub), n); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	// A second message with neither expiry, priority nor a valid topic.
	long := strings.Repeat("case/", 10)
	n2 := &push.Notification{MessageID: "msg-2", Kind: "notice", CollapseKey: long}
	if err := c.Send(context.Background(), target(sub), n2); err != nil {
		t.Fatalf("Send() = %v", err)
	}

	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	m := msgs[0]
	var got payload
	if err := json.Unmarshal(m.Plaintext, &got); err != nil {
		t.Fatalf("payload %q: %v", m.Plaintext, err)
	}
	want := payload{MessageID: "msg-1", Kind: "login_approval", Title: n.Title, Body: n.Body, Data: map[string]string{"tx": "7"}}
	if got.MessageID != want.MessageID || got.Kind != want.Kind || got.Title != want.Title || got.Body != want.Body || got.Data["tx"] != "7" || len(got.Data) != 1 {
		t.Errorf("payload = %+v, want %+v", got, want)
	}
	if m.TTL != 91 || m.Urgency != "high" || m.Topic != "approval_7" {
		t.Errorf("TTL, Urgency, Topic = %d, %q, %q; want 91, high, approval_7", m.TTL, m.Urgency, m.Topic)
	}
	if m.VAPIDKey != c.PublicKey() || m.Subject != subject {
		t.Errorf("VAPID k, sub = %q, %q; want %q, %q", m.VAPIDKey, m.Subject, c.PublicKey(), subject)
	}
	if m.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("Content-Type = %q", m.Header.Get("Content-Type"))
	}

	m = msgs[1]
	if m.TTL != int(webpush.DefaultTTL/time.Second) || m.Urgency != "normal" {
		t.Errorf("TTL, Urgency = %d, %q; want %d, normal", m.TTL, m.Urgency, int(webpush.DefaultTTL/time.Second))
	}
	if len(m.Topic) != 32 || m.Topic == long {
		t.Errorf("Topic = %q, want a 32-character digest", m.Topic)
	}
	var got2 payload
	if err := json.Unmarshal(m.Plaintext, &got2); err != nil || got2.MessageID != "msg-2" || got2.Data != nil {
		t.Errorf("payload %q (%v)", m.Plaintext, err)
	}
}

func TestClient_SendTopics(t *testing.T) {
	srv := webpushtest.NewServer(t)
	c := newClient(t, srv.Client())
	sub := srv.Subscribe()
	keys := []string{
		"abcdefghijklmnopqrstuvwxyz012345", // 32 characters: as is
		"abcdefghijklmnopqrstuvwxyz0123456",
		"case 1", "case 2", "case 1",
		"ü",
	}
	for _, k := range keys {
		if err := c.Send(context.Background(), target(sub), &push.Notification{MessageID: "m", CollapseKey: k}); err != nil {
			t.Fatalf("Send(CollapseKey %q) = %v", k, err)
		}
	}
	msgs := srv.Messages()
	if msgs[0].Topic != keys[0] {
		t.Errorf("Topic = %q, want %q unchanged", msgs[0].Topic, keys[0])
	}
	if msgs[2].Topic != msgs[4].Topic || msgs[2].Topic == msgs[3].Topic {
		t.Errorf("derived topics %q, %q, %q: equal keys must give equal topics, others not", msgs[2].Topic, msgs[3].Topic, msgs[4].Topic)
	}
}

// The Authorization header is signed once per push service origin and
// reused until less than an hour of its 12 hours is left.
func TestClient_VAPIDTokenCache(t *testing.T) {
	a, b := webpushtest.NewServer(t), webpushtest.NewServer(t)
	// One client trusting both test servers' certificates: both share
	// httptest's certificate, so either server's client will do.
	c := newClient(t, a.Client())
	start := time.Now()
	now := start
	c.SetNow(func() time.Time { return now })
	subA, subB := a.Subscribe(), b.Subscribe()
	send := func(sub push.Subscription) {
		t.Helper()
		if err := c.Send(context.Background(), target(sub), &push.Notification{MessageID: "m"}); err != nil {
			t.Fatalf("Send() = %v", err)
		}
	}
	authz := func(s *webpushtest.Server, i int) string { return s.Messages()[i].Header.Get("Authorization") }

	send(subA)
	send(subA)
	send(subB)
	now = start.Add(10*time.Hour + 59*time.Minute)
	send(subA)
	if authz(a, 0) != authz(a, 1) || authz(a, 0) != authz(a, 2) {
		t.Error("the token was re-signed within its lifetime")
	}
	if authz(a, 0) == authz(b, 0) {
		t.Error("two origins share a token")
	}
	now = start.Add(11*time.Hour + time.Minute)
	send(subA)
	if authz(a, 3) == authz(a, 2) {
		t.Error("the token was not renewed with less than an hour left")
	}
	send(subA)
	if authz(a, 4) != authz(a, 3) {
		t.Error("the renewed token was not cached")
	}
}

func TestClient_SendErrors(t *testing.T) {
	tests := []struct {
		status       int
		retryAfter   time.Duration
		retryable    bool
		unregistered bool
	}{
		{status: 400},
		{status: 401},
		{status: 403},
		{status: 404, unregistered: true},
		{status: 410, unregistered: true},
		{status: 413},
		{status: 429, retryAfter: 7 * time.Second, retryable: true},
		{status: 429, retryable: true},
		{status: 500, retryable: true},
		{status: 502, retryable: true},
		{status: 503, retryAfter: 120 * time.Second, retryable: true},
		{status: 504, retryable: true},
	}
	srv := webpushtest.NewServer(t)
	c := newClient(t, srv.Client())
	sub := srv.Subscribe()
	path := sub.Endpoint[len(srv.Origin()):]
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			srv.FailNext(1, tt.status, tt.retryAfter)
			err := c.Send(context.Background(), target(sub), &push.Notification{MessageID: "m"})
			var pe *push.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("Send() = %v, want a *push.ProviderError", err)
			}
			if pe.Platform != push.WebPush || pe.StatusCode != tt.status || pe.Reason != "Scripted" ||
				pe.Retryable != tt.retryable || pe.Unregistered != tt.unregistered || pe.RetryAfter != tt.retryAfter {
				t.Errorf("Send() = %+v, want status %d, retryable %v, unregistered %v, retry after %v",
					*pe, tt.status, tt.retryable, tt.unregistered, tt.retryAfter)
			}
			if got := errors.Is(err, push.ErrUnregistered); got != tt.unregistered {
				t.Errorf("errors.Is(err, ErrUnregistered) = %v", got)
			}
			if strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), srv.Origin()) {
				t.Errorf("error %q: want the origin and not the endpoint's path", err)
			}
		})
	}
	t.Run("unsubscribed", func(t *testing.T) {
		srv.Unsubscribe(sub)
		err := c.Send(context.Background(), target(sub), &push.Notification{MessageID: "m"})
		if !errors.Is(err, push.ErrUnregistered) {
			t.Errorf("Send() = %v, want ErrUnregistered", err)
		}
	})
	t.Run("pinned to another key", func(t *testing.T) {
		srv.RequireVAPIDKey(newClient(t, srv.Client()).PublicKey())
		err := c.Send(context.Background(), target(srv.Subscribe()), &push.Notification{MessageID: "m"})
		var pe *push.ProviderError
		if !errors.As(err, &pe) || pe.StatusCode != 403 || pe.Reason != "VAPIDKeyMismatch" || pe.Retryable || pe.Unregistered {
			t.Errorf("Send() = %v, want a permanent 403 VAPIDKeyMismatch", err)
		}
	})
}

// Refusals before anything is posted are permanent *push.ProviderError
// with status 0 and leave the push service untouched.
func TestClient_SendRefusesLocally(t *testing.T) {
	srv := webpushtest.NewServer(t)
	c := newClient(t, srv.Client())
	sub := srv.Subscribe()

	// The JSON framing of a message whose body is empty.
	empty, err := json.Marshal(payload{MessageID: "m", Kind: "notice"})
	if err != nil {
		t.Fatal(err)
	}
	framing := len(empty) - len(`,"data":null`)
	fits := strings.Repeat("a", webpush.MaxPayloadSize-framing)
	if err := c.Send(context.Background(), target(sub), &push.Notification{MessageID: "m", Kind: "notice", Body: fits}); err != nil {
		t.Fatalf("Send(MaxPayloadSize) = %v", err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d messages, want the largest payload delivered", n)
	}

	badKeys := sub
	badKeys.Keys.P256DH = sub.Keys.P256DH[:20]
	plain := sub
	plain.Endpoint = "http" + strings.TrimPrefix(sub.Endpoint, "https")
	tests := []struct {
		name   string
		target push.Target
		n      push.Notification
		reason string
	}{
		{"too large", target(sub), push.Notification{MessageID: "m", Kind: "notice", Body: fits + "a"}, "PayloadTooLarge"},
		{"expired", target(sub), push.Notification{MessageID: "m", Expires: time.Now().Add(-time.Second)}, "Expired"},
		{"bad keys", target(badKeys), push.Notification{MessageID: "m"}, "InvalidSubscription"},
		{"http endpoint", target(plain), push.Notification{MessageID: "m"}, "InvalidSubscription"},
		{"no subscription", push.Target{Platform: push.WebPush}, push.Notification{MessageID: "m"}, "InvalidSubscription"},
		{"other platform", push.Target{Platform: push.FCM, Token: "t", Subscription: &sub}, push.Notification{MessageID: "m"}, "InvalidSubscription"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Send(context.Background(), tt.target, &tt.n)
			var pe *push.ProviderError
			if !errors.As(err, &pe) || pe.StatusCode != 0 || pe.Reason != tt.reason || pe.Retryable || pe.Unregistered {
				t.Fatalf("Send() = %v, want a permanent refusal %s", err, tt.reason)
			}
			for _, secret := range []string{sub.Endpoint[len(srv.Origin()):], sub.Keys.P256DH[:20], sub.Keys.Auth} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q repeats the subscription", err)
				}
			}
		})
	}
	if n, r := len(srv.Messages()), len(srv.Rejections()); n != 1 || r != 0 {
		t.Errorf("%d messages, %d rejections; want the refusals to post nothing", n, r)
	}
}

func TestClient_SendTransportErrors(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		dead := httptest.NewTLSServer(http.NotFoundHandler())
		hc := dead.Client()
		dead.Close()
		srv := webpushtest.NewServer(t)
		sub := srv.Subscribe()
		sub.Endpoint = dead.URL + "/push/subscriber-secret-id"
		err := newClient(t, hc).Send(context.Background(), target(sub), &push.Notification{MessageID: "m"})
		var pe *push.ProviderError
		if err == nil || errors.As(err, &pe) {
			t.Fatalf("Send() = %v, want a transport error", err)
		}
		if strings.Contains(err.Error(), "subscriber-secret-id") {
			t.Errorf("error %q names the endpoint's path", err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		srv := webpushtest.NewServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := newClient(t, srv.Client()).Send(ctx, target(srv.Subscribe()), &push.Notification{MessageID: "m"})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Send() = %v, want context.Canceled", err)
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		hit := false
		var mu sync.Mutex
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				mu.Lock()
				hit = true
				mu.Unlock()
			}
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}))
		defer srv.Close()
		sub := webpushtest.NewServer(t).Subscribe()
		sub.Endpoint = srv.URL + "/push/x"
		err := newClient(t, srv.Client()).Send(context.Background(), target(sub), &push.Notification{MessageID: "m"})
		var pe *push.ProviderError
		if !errors.As(err, &pe) || pe.StatusCode != http.StatusTemporaryRedirect || pe.Retryable {
			t.Errorf("Send() = %v, want a permanent 307", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if hit {
			t.Error("the redirect was followed")
		}
	})
}

func TestClient_SendConcurrently(t *testing.T) {
	srv := webpushtest.NewServer(t)
	c := newClient(t, srv.Client())
	subs := []push.Subscription{srv.Subscribe(), srv.Subscribe(), srv.Subscribe()}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Go(func() {
			errs <- c.Send(context.Background(), target(subs[i%len(subs)]), &push.Notification{MessageID: strconv.Itoa(i)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	seen := map[string]bool{}
	for _, m := range srv.Messages() {
		var p payload
		if err := json.Unmarshal(m.Plaintext, &p); err != nil {
			t.Fatal(err)
		}
		seen[p.MessageID] = true
	}
	if len(seen) != 30 {
		t.Errorf("%d distinct messages delivered, want 30", len(seen))
	}
}

func TestNew_RefusesConfig(t *testing.T) {
	key, err := webpush.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  webpush.Config
		want string
	}{
		{"no key", webpush.Config{Subject: subject, HTTPClient: http.DefaultClient}, "private key is required"},
		{"P-384 key", webpush.Config{PrivateKey: p384, Subject: subject, HTTPClient: http.DefaultClient}, "P-256"},
		{"no subject", webpush.Config{PrivateKey: key, HTTPClient: http.DefaultClient}, "subject"},
		{"bare address", webpush.Config{PrivateKey: key, Subject: "push@onedoor.example", HTTPClient: http.DefaultClient}, "subject"},
		{"http subject", webpush.Config{PrivateKey: key, Subject: "http://onedoor.example", HTTPClient: http.DefaultClient}, "subject"},
		{"no client", webpush.Config{PrivateKey: key, Subject: "https://onedoor.example/contact"}, "HTTP client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webpush.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() = %v, want an error about %q", err, tt.want)
			}
		})
	}
	if _, err := webpush.New(webpush.Config{}); err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("New(Config{}) = %v, want all three problems reported", err)
	}
}

// BenchmarkSend measures a full send through the test push service over
// loopback TLS (keep-alive), the receiver's verification and decryption
// included.
func BenchmarkSend(b *testing.B) {
	srv := webpushtest.NewServer(b)
	c := newClient(b, srv.Client())
	sub := srv.Subscribe()
	n := &push.Notification{MessageID: "01J8Z6", Kind: "status_change", Title: "Your application changed", Body: "Open the app to see it", CollapseKey: "case_1"}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Send(context.Background(), target(sub), n); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
