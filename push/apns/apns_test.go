package apns_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/apns"
	"github.com/onedoor/onedoor/push/apns/apnstest"
)

const deviceToken = "5f0c8e2a9b7d41c3a6e2f0b18d9c7a3e5f0c8e2a9b7d41c3a6e2f0b18d9c7a3e"

var target = push.Target{Platform: push.APNs, Token: deviceToken}

// clock is a settable clock shared by a client and the fake.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newClient is a client of srv; with a clock, both run on it.
func newClient(t testing.TB, srv *apnstest.Server, clk *clock) *apns.Client {
	t.Helper()
	cfg := srv.Config()
	if clk != nil {
		cfg.Now = clk.Now
		srv.SetClock(clk.Now)
	}
	c, err := apns.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func notification() *push.Notification {
	return &push.Notification{
		MessageID: "msg-0001",
		Kind:      "login_approval",
		Title:     "Sign-in request",
		Body:      "Open OneDoor to review it",
		Priority:  push.High,
	}
}

func providerError(t *testing.T, err error) *push.ProviderError {
	t.Helper()
	var perr *push.ProviderError
	if !errors.As(err, &perr) {
		t.Fatalf("Send: got %v, want a *push.ProviderError", err)
	}
	if strings.Contains(err.Error(), deviceToken) {
		t.Errorf("error %q quotes the device token", err)
	}
	return perr
}

func TestClient_Platform(t *testing.T) {
	c := newClient(t, apnstest.NewServer(t), nil)
	if got := c.Platform(); got != push.APNs {
		t.Errorf("Platform() = %q, want %q", got, push.APNs)
	}
}

func TestClient_Send(t *testing.T) {
	t.Run("a high-priority notification with every option", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		expires := time.Now().Add(time.Hour).Truncate(time.Second)
		n := notification()
		n.CollapseKey = "case-42"
		n.Expires = expires
		n.Data = map[string]string{"case": "42", "aps": "not the aps", "message_id": "forged"}
		if err := c.Send(context.Background(), target, n); err != nil {
			t.Fatalf("Send: %v", err)
		}

		got := srv.Notifications()
		if len(got) != 1 {
			t.Fatalf("server accepted %d notifications, want 1", len(got))
		}
		if got[0].DeviceToken != deviceToken {
			t.Errorf("device token = %q, want %q", got[0].DeviceToken, deviceToken)
		}
		h := got[0].Header
		for k, want := range map[string]string{
			"apns-push-type":   "alert",
			"apns-priority":    "10",
			"apns-topic":       apnstest.Topic,
			"apns-collapse-id": "case-42",
			"apns-expiration":  strconv.FormatInt(expires.Unix(), 10),
			"apns-id":          apns.MessageUUID("msg-0001"),
		} {
			if v := h.Get(k); v != want {
				t.Errorf("%s = %q, want %q", k, v, want)
			}
		}
		if got[0].ID != apns.MessageUUID("msg-0001") {
			t.Errorf("answered apns-id = %q, want the request's", got[0].ID)
		}
		if !strings.HasPrefix(h.Get("authorization"), "bearer ") {
			t.Errorf("authorization = %q, want a bearer token", h.Get("authorization"))
		}

		p := got[0].Payload
		aps, _ := p["aps"].(map[string]any)
		alert, _ := aps["alert"].(map[string]any)
		for k, v := range map[string]any{"title": "Sign-in request", "body": "Open OneDoor to review it"} {
			if alert[k] != v {
				t.Errorf("aps.alert.%s = %v, want %v", k, alert[k], v)
			}
		}
		if aps["sound"] != "default" || aps["mutable-content"] != float64(1) {
			t.Errorf("aps = %v, want sound default and mutable-content 1", aps)
		}
		for k, v := range map[string]any{"message_id": "msg-0001", "kind": "login_approval", "case": "42"} {
			if p[k] != v {
				t.Errorf("payload %s = %v, want %v", k, p[k], v)
			}
		}
	})

	t.Run("a normal-priority notification without options", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		n := notification()
		n.Priority = push.Normal
		if err := c.Send(context.Background(), target, n); err != nil {
			t.Fatalf("Send: %v", err)
		}
		h := srv.Notifications()[0].Header
		if v := h.Get("apns-priority"); v != "5" {
			t.Errorf("apns-priority = %q, want 5", v)
		}
		// No header leaves storage to APNs' policy; "0" would mean "keep nothing".
		for _, k := range []string{"apns-collapse-id", "apns-expiration"} {
			if v, ok := h[http.CanonicalHeaderKey(k)]; ok {
				t.Errorf("%s = %q, want it absent", k, v)
			}
		}
	})

	t.Run("an expiry in the past is sent as such", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		n := notification()
		n.Expires = time.Unix(-5, 0)
		if err := c.Send(context.Background(), target, n); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if v := srv.Notifications()[0].Header.Get("apns-expiration"); v != "0" {
			t.Errorf("apns-expiration = %q, want 0", v)
		}
	})

	t.Run("retries of a message keep its apns-id", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		srv.FailNext(1, apnstest.Failure{Status: http.StatusServiceUnavailable, Reason: "ServiceUnavailable"})
		for range 2 {
			_ = c.Send(context.Background(), target, notification())
		}
		other := notification()
		other.MessageID = "msg-0002"
		if err := c.Send(context.Background(), target, other); err != nil {
			t.Fatalf("Send: %v", err)
		}
		got := srv.Notifications()
		if len(got) != 2 {
			t.Fatalf("server accepted %d notifications, want 2", len(got))
		}
		id := got[0].Header.Get("apns-id")
		if u, err := uuid.Parse(id); err != nil || u.Version() != 5 {
			t.Errorf("apns-id %q is not a version 5 UUID (%v)", id, err)
		}
		if id != apns.MessageUUID("msg-0001") || got[1].Header.Get("apns-id") == id {
			t.Errorf("apns-ids %q and %q: want the first derived from msg-0001 and the second different",
				id, got[1].Header.Get("apns-id"))
		}
	})

	t.Run("a cancelled context is not a provider error", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := c.Send(ctx, target, notification())
		var perr *push.ProviderError
		if !errors.Is(err, context.Canceled) || errors.As(err, &perr) {
			t.Errorf("Send: got %v, want context.Canceled and no provider error", err)
		}
		if strings.Contains(err.Error(), deviceToken) {
			t.Errorf("error %q quotes the device token", err)
		}
	})
}

func TestClient_Send_ProviderToken(t *testing.T) {
	t.Run("one token for an hour's sends, renewed before it runs out", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		clk := newClock()
		c := newClient(t, srv, clk)
		send := func() {
			t.Helper()
			if err := c.Send(context.Background(), target, notification()); err != nil {
				t.Fatalf("Send at %v: %v", clk.Now(), err)
			}
		}
		for range 3 {
			send()
		}
		clk.Advance(49 * time.Minute)
		send()
		if got := srv.ProviderTokens(); got != 1 {
			t.Errorf("after 49 minutes the server saw %d provider tokens, want 1", got)
		}
		clk.Advance(2 * time.Minute)
		send()
		send()
		if got := srv.ProviderTokens(); got != 2 {
			t.Errorf("after 51 minutes the server saw %d provider tokens, want 2", got)
		}
	})

	t.Run("renewed at once when APNs calls it expired", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		clk := newClock()
		c := newClient(t, srv, clk)
		if err := c.Send(context.Background(), target, notification()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		clk.Advance(21 * time.Minute) // past APNs' renewal throttle, short of the client's own renewal
		srv.FailNext(1, apnstest.Failure{Status: http.StatusForbidden, Reason: "ExpiredProviderToken"})
		perr := providerError(t, c.Send(context.Background(), target, notification()))
		if !perr.Retryable || perr.Reason != "ExpiredProviderToken" || perr.RetryAfter != 0 {
			t.Errorf("got %+v, want ExpiredProviderToken, retryable at once", perr)
		}
		if err := c.Send(context.Background(), target, notification()); err != nil {
			t.Fatalf("Send after renewal: %v", err)
		}
		if got := srv.ProviderTokens(); got != 2 {
			t.Errorf("server saw %d provider tokens, want 2", got)
		}
	})

	t.Run("renewed when APNs' clock runs ahead of the client's", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		clientClock, serverClock := newClock(), newClock()
		cfg := srv.Config()
		cfg.Now = clientClock.Now
		srv.SetClock(serverClock.Now)
		c, err := apns.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(context.Background(), target, notification()); err != nil {
			t.Fatalf("Send: %v", err)
		}
		serverClock.Advance(61 * time.Minute)
		perr := providerError(t, c.Send(context.Background(), target, notification()))
		if !perr.Retryable || perr.StatusCode != http.StatusForbidden || perr.Reason != "ExpiredProviderToken" {
			t.Errorf("got %+v, want 403 ExpiredProviderToken, retryable", perr)
		}
		_ = c.Send(context.Background(), target, notification()) // still expired: the client's clock is an hour behind
		if got := srv.ProviderTokens(); got != 2 {
			t.Errorf("server saw %d provider tokens, want 2 (one renewal after the refusal)", got)
		}
	})
}

func TestClient_Send_Refusals(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		failure                 apnstest.Failure
		retryable, unregistered bool
		retryAfter              time.Duration
	}{
		{name: "410 Unregistered", failure: apnstest.Failure{Status: 410, Reason: "Unregistered"}, unregistered: true},
		{name: "410 ExpiredToken", failure: apnstest.Failure{Status: 410, Reason: "ExpiredToken"}, unregistered: true},
		{name: "400 BadDeviceToken", failure: apnstest.Failure{Status: 400, Reason: "BadDeviceToken"}}, // also the wrong environment: keep the installation
		{name: "400 DeviceTokenNotForTopic", failure: apnstest.Failure{Status: 400, Reason: "DeviceTokenNotForTopic"}},
		{name: "400 BadCollapseId", failure: apnstest.Failure{Status: 400, Reason: "BadCollapseId"}},
		{name: "403 InvalidProviderToken", failure: apnstest.Failure{Status: 403, Reason: "InvalidProviderToken"}},
		{name: "403 ExpiredProviderToken", failure: apnstest.Failure{Status: 403, Reason: "ExpiredProviderToken"}, retryable: true},
		{name: "405 MethodNotAllowed", failure: apnstest.Failure{Status: 405, Reason: "MethodNotAllowed"}},
		{name: "413 PayloadTooLarge", failure: apnstest.Failure{Status: 413, Reason: "PayloadTooLarge"}},
		{name: "429 TooManyRequests", failure: apnstest.Failure{Status: 429, Reason: "TooManyRequests"}, retryable: true},
		{
			name:      "429 TooManyRequests with Retry-After",
			failure:   apnstest.Failure{Status: 429, Reason: "TooManyRequests", RetryAfter: 30 * time.Second},
			retryable: true, retryAfter: 30 * time.Second,
		},
		{name: "429 TooManyProviderTokenUpdates", failure: apnstest.Failure{Status: 429, Reason: "TooManyProviderTokenUpdates"}, retryable: true},
		{name: "500 InternalServerError", failure: apnstest.Failure{Status: 500, Reason: "InternalServerError"}, retryable: true},
		{
			name:      "503 ServiceUnavailable with Retry-After",
			failure:   apnstest.Failure{Status: 503, Reason: "ServiceUnavailable", RetryAfter: 2 * time.Minute},
			retryable: true, retryAfter: 2 * time.Minute,
		},
		{name: "503 Shutdown", failure: apnstest.Failure{Status: 503, Reason: "Shutdown"}, retryable: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := apnstest.NewServer(t)
			c := newClient(t, srv, nil)
			srv.FailNext(1, tc.failure)
			perr := providerError(t, c.Send(context.Background(), target, notification()))
			want := push.ProviderError{
				Platform: push.APNs, StatusCode: tc.failure.Status, Reason: tc.failure.Reason,
				Retryable: tc.retryable, Unregistered: tc.unregistered, RetryAfter: tc.retryAfter,
			}
			if *perr != want {
				t.Errorf("got %+v, want %+v", *perr, want)
			}
			if got := errors.Is(perr, push.ErrUnregistered); got != tc.unregistered {
				t.Errorf("errors.Is(err, ErrUnregistered) = %v, want %v", got, tc.unregistered)
			}
		})
	}

	t.Run("a token APNs unregistered", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		srv.Unregister(deviceToken)
		err := c.Send(context.Background(), target, notification())
		perr := providerError(t, err)
		if perr.StatusCode != http.StatusGone || perr.Reason != "Unregistered" || perr.Retryable || !errors.Is(err, push.ErrUnregistered) {
			t.Errorf("got %+v, want 410 Unregistered, permanent, matching ErrUnregistered", perr)
		}
		other := push.Target{Platform: push.APNs, Token: strings.Repeat("ab", 32)}
		if err := c.Send(context.Background(), other, notification()); err != nil {
			t.Errorf("Send to another token: %v", err)
		}
	})
}

func TestClient_Send_RefusedBeforeSending(t *testing.T) {
	big := notification()
	big.Body = strings.Repeat("x", apns.MaxPayloadSize)
	longCollapse := notification()
	longCollapse.CollapseKey = strings.Repeat("k", 65)
	for _, tc := range []struct {
		name         string
		token        string
		n            *push.Notification
		reason       string
		unregistered bool
	}{
		{name: "a token that is not hex", token: "not-a-hex-device-token", n: notification(), reason: "BadDeviceToken", unregistered: true},
		{name: "a token of odd length", token: deviceToken[1:], n: notification(), reason: "BadDeviceToken", unregistered: true},
		{name: "a token with a path in it", token: "ab/../../x", n: notification(), reason: "BadDeviceToken", unregistered: true},
		{name: "an empty token", token: "", n: notification(), reason: "BadDeviceToken", unregistered: true},
		{name: "a payload over 4096 bytes", token: deviceToken, n: big, reason: "PayloadTooLarge"},
		{name: "a collapse key over 64 bytes", token: deviceToken, n: longCollapse, reason: "BadCollapseId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := apnstest.NewServer(t)
			c := newClient(t, srv, nil)
			err := c.Send(context.Background(), push.Target{Platform: push.APNs, Token: tc.token}, tc.n)
			perr := providerError(t, err)
			want := push.ProviderError{Platform: push.APNs, Reason: tc.reason, Unregistered: tc.unregistered}
			if *perr != want {
				t.Errorf("got %+v, want %+v", *perr, want)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q quotes the device token", err)
			}
			if got := srv.Requests(); got != 0 {
				t.Errorf("server received %d requests, want 0", got)
			}
		})
	}

	t.Run("a collapse key of 64 bytes is sent", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		n := notification()
		n.CollapseKey = strings.Repeat("k", 64)
		if err := c.Send(context.Background(), target, n); err != nil {
			t.Errorf("Send: %v", err)
		}
	})

	t.Run("a target of another platform", func(t *testing.T) {
		srv := apnstest.NewServer(t)
		c := newClient(t, srv, nil)
		err := c.Send(context.Background(), push.Target{Platform: push.FCM, Token: deviceToken}, notification())
		if err == nil || srv.Requests() != 0 {
			t.Errorf("Send: got %v with %d requests, want an error and none", err, srv.Requests())
		}
	})
}

func TestClient_Send_TransportFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := apnstest.NewServer(t).Config()
	cfg.Endpoint = "https://" + addr
	c, err := apns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Send(context.Background(), target, notification())
	var perr *push.ProviderError
	if err == nil || errors.As(err, &perr) {
		t.Fatalf("Send to a closed port: got %v, want a transport error", err)
	}
	if strings.Contains(err.Error(), deviceToken) {
		t.Errorf("error %q quotes the device token", err)
	}
}

func TestClient_Send_NoRedirects(t *testing.T) {
	var followed bool
	mux := http.NewServeMux()
	mux.HandleFunc("/3/device/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { followed = true })
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	cfg := apnstest.NewServer(t).Config()
	cfg.Endpoint = srv.URL
	cfg.HTTPClient = srv.Client()
	c, err := apns.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	perr := providerError(t, c.Send(context.Background(), target, notification()))
	if perr.StatusCode != http.StatusTemporaryRedirect || perr.Retryable || followed {
		t.Errorf("got %+v (followed: %v), want a permanent 307, not followed", perr, followed)
	}
}

func TestClient_Send_Concurrent(t *testing.T) {
	srv := apnstest.NewServer(t)
	clk := newClock()
	c := newClient(t, srv, clk)
	const senders, each = 64, 8
	burst := func() {
		t.Helper()
		errs := make(chan error, senders*each)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range senders {
			wg.Go(func() {
				<-start
				for j := range each {
					n := notification()
					n.MessageID = "msg-" + strconv.Itoa(i*each+j)
					errs <- c.Send(context.Background(), target, n)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("Send: %v", err)
			}
		}
	}

	burst() // on a cold client: the senders share its first connection and token
	if got := srv.ProviderTokens(); got != 1 {
		t.Errorf("sends used %d provider tokens, want 1", got)
	}
	// Every sender finds the token stale at once; one renews it.
	clk.Advance(51 * time.Minute)
	burst()
	if got := srv.ProviderTokens(); got != 2 {
		t.Errorf("after the token went stale, sends used %d provider tokens, want 2", got)
	}
	if got := len(srv.Notifications()); got != 2*senders*each {
		t.Errorf("server accepted %d notifications, want %d", got, 2*senders*each)
	}
	if got := srv.Connections(); got != 1 {
		t.Errorf("sends used %d connections, want 1", got)
	}
}

func TestNew(t *testing.T) {
	good := apnstest.NewServer(t).Config()
	if _, err := apns.New(good); err != nil {
		t.Fatalf("New with the fake's config: %v", err)
	}
	cfg := good
	cfg.Endpoint = ""
	if _, err := apns.New(cfg); err != nil {
		t.Errorf("New without an endpoint: %v", err)
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, tc := range []struct {
		name   string
		change func(*apns.Config)
		want   string
	}{
		{"no key", func(c *apns.Config) { c.Key = nil }, "not PEM"},
		{"a key that is not PEM", func(c *apns.Config) { c.Key = []byte("MIGTAgEAMBMGByqGSM49AgEGCCqGSM49") }, "not PEM"},
		{"an RSA key", func(c *apns.Config) { c.Key = pkcs8(rsaKey) }, "not a P-256"},
		{"a P-384 key", func(c *apns.Config) { c.Key = pkcs8(p384) }, "not a P-256"},
		{"a SEC1 key", func(c *apns.Config) { c.Key = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}) }, "not PRIVATE KEY"},
		{"a corrupt PKCS#8 key", func(c *apns.Config) {
			c.Key = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("garbage")})
		}, "not a PKCS#8"},
		{"no key id", func(c *apns.Config) { c.KeyID = "" }, "key id"},
		{"a key id with a newline", func(c *apns.Config) { c.KeyID = "ABC123\n" }, "key id"},
		{"no team id", func(c *apns.Config) { c.TeamID = "" }, "team id"},
		{"no topic", func(c *apns.Config) { c.Topic = "" }, "topic"},
		{"a topic with a space", func(c *apns.Config) { c.Topic = "org.onedoor app" }, "topic"},
		{"an http endpoint", func(c *apns.Config) { c.Endpoint = "http://api.push.apple.com" }, "endpoint"},
		{"an endpoint with a path", func(c *apns.Config) { c.Endpoint = "https://api.push.apple.com/3/device" }, "endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			_, err := apns.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: got %v, want an error about %q", err, tc.want)
			}
		})
	}

	t.Run("every problem at once, and never the key", func(t *testing.T) {
		cfg := good
		cfg.Key = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("secret-key-material")})
		cfg.KeyID, cfg.Topic = "", ""
		_, err := apns.New(cfg)
		if err == nil {
			t.Fatal("New: got no error")
		}
		for _, want := range []string{"PKCS#8", "key id", "topic"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "BEGIN") {
			t.Errorf("error %q quotes the key", err)
		}
	})
}

// BenchmarkSend sends through one client, over one HTTP/2 connection, to
// the fake from parallel goroutines, and reports notifications a second.
func BenchmarkSend(b *testing.B) {
	srv := apnstest.NewServer(b)
	c := newClient(b, srv, nil)
	if err := c.Send(context.Background(), target, notification()); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := notification()
		for pb.Next() {
			if err := c.Send(context.Background(), target, n); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(srv.Connections()), "conns")
}
