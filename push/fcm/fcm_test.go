package fcm_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/fcm"
	"github.com/onedoor/onedoor/push/fcm/fcmtest"
)

func newClient(t testing.TB, srv *fcmtest.Server) *fcm.Client {
	t.Helper()
	c, err := fcm.New(fcm.Config{Credentials: srv.Credentials(), Endpoint: srv.URL(), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func target(token string) push.Target { return push.Target{Platform: push.FCM, Token: token} }

func note() *push.Notification {
	return &push.Notification{
		MessageID: "msg-1", Kind: "result", Title: "Your application", Body: "A decision is ready",
		Priority: push.High,
	}
}

func TestClient_Platform(t *testing.T) {
	c := newClient(t, fcmtest.NewServer(t))
	if got := c.Platform(); got != push.FCM {
		t.Errorf("Platform() = %q, want %q", got, push.FCM)
	}
}

func TestClient_SendDelivers(t *testing.T) {
	expires := time.Now().Add(2 * time.Hour)
	tests := []struct {
		name string
		n    push.Notification
		want fcmtest.Message
	}{
		{
			name: "high priority with collapse key and expiry",
			n: push.Notification{
				MessageID: "m-42", Kind: "login_approval", Title: "Approve sign-in?", Body: "Tap to review",
				CollapseKey: "login", Priority: push.High, Expires: expires,
				Data: map[string]string{"extra": "1", "kind": "overridden"},
			},
			want: fcmtest.Message{
				Token: "tok-a", Title: "Approve sign-in?", Body: "Tap to review",
				Data:     map[string]string{"extra": "1", "message_id": "m-42", "kind": "login_approval"},
				Priority: "HIGH", CollapseKey: "login",
				APNsHeaders: map[string]string{
					"apns-priority": "10", "apns-collapse-id": "login",
					"apns-expiration": timeString(expires),
				},
			},
		},
		{
			name: "normal priority data only",
			n:    push.Notification{MessageID: "m-43", Kind: "notice"},
			want: fcmtest.Message{
				Token:       "tok-a",
				Data:        map[string]string{"message_id": "m-43", "kind": "notice"},
				Priority:    "NORMAL",
				APNsHeaders: map[string]string{"apns-priority": "5"},
			},
		},
		{
			name: "expired notification is sent now or never",
			n:    push.Notification{MessageID: "m-44", Kind: "notice", Title: "t", Expires: time.Now().Add(-time.Minute)},
			want: fcmtest.Message{
				Token: "tok-a", Title: "t",
				Data:     map[string]string{"message_id": "m-44", "kind": "notice"},
				Priority: "NORMAL", TTL: "0s",
				APNsHeaders: map[string]string{"apns-priority": "5", "apns-expiration": "0"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fcmtest.NewServer(t)
			c := newClient(t, srv)
			if err := c.Send(context.Background(), target("tok-a"), &tt.n); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("server accepted %d messages, want 1", len(msgs))
			}
			got := msgs[0]
			if tt.want.TTL == "" && !tt.n.Expires.IsZero() {
				// Seconds left depend on when Send ran; check the form.
				if !strings.HasSuffix(got.TTL, "s") || got.TTL == "0s" {
					t.Errorf("TTL = %q, want a positive number of seconds", got.TTL)
				}
				got.TTL = ""
			}
			if !equalMessage(got, tt.want) {
				t.Errorf("server got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func timeString(t time.Time) string {
	b, _ := json.Marshal(t.Unix())
	return string(b)
}

func equalMessage(a, b fcmtest.Message) bool {
	return a.Token == b.Token && a.Title == b.Title && a.Body == b.Body && a.Priority == b.Priority &&
		a.CollapseKey == b.CollapseKey && a.TTL == b.TTL &&
		maps.Equal(a.Data, b.Data) && maps.Equal(a.APNsHeaders, b.APNsHeaders)
}

func TestClient_SendCachesToken(t *testing.T) {
	srv := fcmtest.NewServer(t)
	c := newClient(t, srv)
	for range 50 {
		if err := c.Send(context.Background(), target("tok"), note()); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if got := srv.TokenCalls(); got != 1 {
		t.Errorf("token endpoint called %d times for 50 sends, want 1", got)
	}
}

func TestClient_ConcurrentSendsShareOneRefresh(t *testing.T) {
	srv := fcmtest.NewServer(t)
	c := newClient(t, srv)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			nt := note()
			nt.MessageID = "m" + string(rune('A'+i%26))
			errs <- c.Send(context.Background(), target("tok"), nt)
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if got := srv.MessageCount(); got != n {
		t.Errorf("server accepted %d messages, want %d", got, n)
	}
	if got := srv.TokenCalls(); got != 1 {
		t.Errorf("token endpoint called %d times by %d concurrent first sends, want 1", got, n)
	}
}

func TestClient_SendRejectedTokenIsReplaced(t *testing.T) {
	srv := fcmtest.NewServer(t)
	c := newClient(t, srv)
	ctx := context.Background()
	if err := c.Send(ctx, target("tok"), note()); err != nil {
		t.Fatalf("first Send: %v", err)
	}
	srv.ExpireTokens()

	err := c.Send(ctx, target("tok"), note())
	var pe *push.ProviderError
	if !errors.As(err, &pe) || pe.StatusCode != http.StatusUnauthorized || !pe.Retryable {
		t.Fatalf("Send with a revoked token: %v, want a retryable 401 ProviderError", err)
	}
	if err := c.Send(ctx, target("tok"), note()); err != nil {
		t.Fatalf("Send after the 401: %v", err)
	}
	if got := srv.TokenCalls(); got != 2 {
		t.Errorf("token endpoint called %d times, want 2 (one more after the 401)", got)
	}
}

func TestClient_SendErrors(t *testing.T) {
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name    string
		script  func(*fcmtest.Server)
		noToken bool
		data    map[string]string
		want    push.ProviderError
		minWait time.Duration // for an HTTP-date Retry-After
	}{
		{
			name:   "unregistered token",
			script: func(s *fcmtest.Server) { s.Unregister("tok-secret-123") },
			want:   push.ProviderError{StatusCode: 404, Reason: "UNREGISTERED", Unregistered: true},
		},
		{
			name:   "404 NOT_FOUND without FCM code",
			script: func(s *fcmtest.Server) { s.FailNext(1, fcmtest.Failure{HTTPStatus: 404}) },
			want:   push.ProviderError{StatusCode: 404, Reason: "NOT_FOUND"},
		},
		{
			name: "quota exceeded with Retry-After seconds",
			script: func(s *fcmtest.Server) {
				s.FailNext(1, fcmtest.Failure{HTTPStatus: 429, ErrorCode: "QUOTA_EXCEEDED", RetryAfter: "30"})
			},
			want: push.ProviderError{StatusCode: 429, Reason: "QUOTA_EXCEEDED", Retryable: true, RetryAfter: 30 * time.Second},
		},
		{
			name: "429 with Retry-After date",
			script: func(s *fcmtest.Server) {
				s.FailNext(1, fcmtest.Failure{HTTPStatus: 429, RetryAfter: httpDate})
			},
			want:    push.ProviderError{StatusCode: 429, Reason: "RESOURCE_EXHAUSTED", Retryable: true},
			minWait: 60 * time.Second,
		},
		{
			name: "unavailable",
			script: func(s *fcmtest.Server) {
				s.FailNext(1, fcmtest.Failure{HTTPStatus: 503, ErrorCode: "UNAVAILABLE", RetryAfter: "5"})
			},
			want: push.ProviderError{StatusCode: 503, Reason: "UNAVAILABLE", Retryable: true, RetryAfter: 5 * time.Second},
		},
		{
			name:   "internal",
			script: func(s *fcmtest.Server) { s.FailNext(1, fcmtest.Failure{HTTPStatus: 500, ErrorCode: "INTERNAL"}) },
			want:   push.ProviderError{StatusCode: 500, Reason: "INTERNAL", Retryable: true},
		},
		{
			name: "sender id mismatch",
			script: func(s *fcmtest.Server) {
				s.FailNext(1, fcmtest.Failure{HTTPStatus: 403, ErrorCode: "SENDER_ID_MISMATCH"})
			},
			want: push.ProviderError{StatusCode: 403, Reason: "SENDER_ID_MISMATCH"},
		},
		{
			name: "third-party auth error is permanent",
			script: func(s *fcmtest.Server) {
				s.FailNext(1, fcmtest.Failure{HTTPStatus: 401, ErrorCode: "THIRD_PARTY_AUTH_ERROR"})
			},
			want: push.ProviderError{StatusCode: 401, Reason: "THIRD_PARTY_AUTH_ERROR"},
		},
		{
			name: "invalid argument from FCM's own validation",
			data: map[string]string{"from": "reserved key"},
			want: push.ProviderError{StatusCode: 400, Reason: "INVALID_ARGUMENT"},
		},
		{
			name:    "empty registration token",
			noToken: true,
			want:    push.ProviderError{StatusCode: 400, Reason: "INVALID_ARGUMENT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fcmtest.NewServer(t)
			c := newClient(t, srv)
			if tt.script != nil {
				tt.script(srv)
			}
			tok := "tok-secret-123"
			if tt.noToken {
				tok = ""
			}
			n := note()
			n.Body = "body-secret-456"
			n.Data = tt.data
			err := c.Send(context.Background(), target(tok), n)
			var pe *push.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("Send: %v, want a *push.ProviderError", err)
			}
			got := *pe
			if tt.minWait > 0 {
				if got.RetryAfter < tt.minWait || got.RetryAfter > 90*time.Second {
					t.Errorf("RetryAfter = %v, want between %v and 90s", got.RetryAfter, tt.minWait)
				}
				got.RetryAfter = 0
			}
			want := tt.want
			want.Platform = push.FCM
			if got != want {
				t.Errorf("Send error = %+v, want %+v", got, want)
			}
			if is := errors.Is(err, push.ErrUnregistered); is != want.Unregistered {
				t.Errorf("errors.Is(err, ErrUnregistered) = %v, want %v", is, want.Unregistered)
			}
			for _, secret := range []string{"tok-secret-123", "body-secret-456", "reserved key"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains message content %q", err, secret)
				}
			}
			if got := srv.MessageCount(); got != 0 {
				t.Errorf("server accepted %d messages, want 0", got)
			}
		})
	}
}

func TestClient_SendRetryAfterFailuresSucceeds(t *testing.T) {
	srv := fcmtest.NewServer(t)
	c := newClient(t, srv)
	srv.FailNext(2, fcmtest.Failure{HTTPStatus: 503, ErrorCode: "UNAVAILABLE"})
	ctx := context.Background()
	for i := range 2 {
		var pe *push.ProviderError
		if err := c.Send(ctx, target("tok"), note()); !errors.As(err, &pe) || !pe.Retryable {
			t.Fatalf("Send %d: %v, want a retryable ProviderError", i+1, err)
		}
	}
	if err := c.Send(ctx, target("tok"), note()); err != nil {
		t.Fatalf("third Send: %v", err)
	}
	if got := srv.TokenCalls(); got != 1 {
		t.Errorf("token endpoint called %d times, want 1 (5xx keeps the token)", got)
	}
}

func TestClient_SendOverTLS(t *testing.T) {
	srv := fcmtest.NewServer(t, fcmtest.WithTLS())
	c := newClient(t, srv)
	if err := c.Send(context.Background(), target("tok"), note()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if got := srv.MessageCount(); got != 1 {
		t.Errorf("server accepted %d messages, want 1", got)
	}
}

func TestClient_SendWithDefaultHTTPClient(t *testing.T) {
	srv := fcmtest.NewServer(t)
	c, err := fcm.New(fcm.Config{Credentials: srv.Credentials(), Endpoint: srv.URL() + "/"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := c.Send(context.Background(), target("tok"), note()); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func TestClient_SendWrongPlatform(t *testing.T) {
	c := newClient(t, fcmtest.NewServer(t))
	err := c.Send(context.Background(), push.Target{Platform: push.APNs, Token: "tok"}, note())
	if err == nil {
		t.Fatal("Send to an APNs target: nil error")
	}
}

func TestClient_SendCanceledContext(t *testing.T) {
	c := newClient(t, fcmtest.NewServer(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Send(ctx, target("tok"), note())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a canceled context: %v, want context.Canceled", err)
	}
}

// credentialsWith returns srv's credentials with field set to value (or
// removed for nil).
func credentialsWith(t *testing.T, srv *fcmtest.Server, field string, value any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(srv.Credentials(), &m); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(m, field)
	} else {
		m[field] = value
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pemKey(t *testing.T, srv *fcmtest.Server) string {
	var m map[string]string
	if err := json.Unmarshal(srv.Credentials(), &m); err != nil {
		t.Fatal(err)
	}
	return m["private_key"]
}

func TestNew_RefusesBadCredentials(t *testing.T) {
	srv := fcmtest.NewServer(t)
	key := pemKey(t, srv)
	ecDER := func() string {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}()
	tests := []struct {
		name  string
		creds []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("private_key: " + key)},
		{"JSON with trailing garbage", append(srv.Credentials(), []byte("x"+key)...)},
		{"array", []byte(`[1,2]`)},
		{"wrong type", credentialsWith(t, srv, "type", "authorized_user")},
		{"type is a number", credentialsWith(t, srv, "type", 7)},
		{"no project", credentialsWith(t, srv, "project_id", nil)},
		{"no client email", credentialsWith(t, srv, "client_email", nil)},
		{"no key", credentialsWith(t, srv, "private_key", nil)},
		{"key not PEM", credentialsWith(t, srv, "private_key", strings.ReplaceAll(key, "-----", ""))},
		{"key truncated", credentialsWith(t, srv, "private_key", key[:len(key)/2]+"\n-----END PRIVATE KEY-----\n")},
		{"EC key", credentialsWith(t, srv, "private_key", ecDER)},
		{"plain http token_uri off loopback", credentialsWith(t, srv, "token_uri", "http://oauth2.example/token")},
		{"token_uri not a URL", credentialsWith(t, srv, "token_uri", "::")},
	}
	keyBody := strings.Split(key, "\n")[1] // the first line of base64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fcm.New(fcm.Config{Credentials: tt.creds, Endpoint: srv.URL()})
			if err == nil {
				t.Fatal("New: nil error")
			}
			if strings.Contains(err.Error(), keyBody[:16]) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("New error quotes the key: %v", err)
			}
		})
	}
}

func TestNew_RefusesEndpoint(t *testing.T) {
	srv := fcmtest.NewServer(t)
	for _, ep := range []string{"http://fcm.example", "ftp://127.0.0.1", "fcm.googleapis.com"} {
		if _, err := fcm.New(fcm.Config{Credentials: srv.Credentials(), Endpoint: ep}); err == nil {
			t.Errorf("New with endpoint %q: nil error", ep)
		}
	}
}

func TestClient_SendWithForeignKey(t *testing.T) {
	srv := fcmtest.NewServer(t)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	// srv's service account, but another key: the assertion's signature
	// does not verify.
	creds := credentialsWith(t, srv, "private_key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	c, err := fcm.New(fcm.Config{Credentials: creds, Endpoint: srv.URL(), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	err = c.Send(context.Background(), target("tok"), note())
	if err == nil {
		t.Fatal("Send: nil error")
	}
	var pe *push.ProviderError
	if errors.As(err, &pe) {
		t.Errorf("Send: %v is a ProviderError; a token failure is not FCM's answer", err)
	}
	if !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("Send error %q does not name invalid_grant", err)
	}
	if srv.MessageCount() != 0 {
		t.Error("server accepted a message without a valid token")
	}
}

// BenchmarkSend measures messages per second through the fake over loopback,
// parallel senders sharing one Client.
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []fcmtest.Option
	}{
		{"http1", nil},
		{"h2-tls", []fcmtest.Option{fcmtest.WithTLS()}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := fcmtest.NewServer(b, bc.opts...)
			c := newClient(b, srv)
			n := note()
			n.CollapseKey = "result"
			n.Expires = time.Now().Add(time.Hour)
			if err := c.Send(context.Background(), target("warm"), n); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.Send(context.Background(), target("tok"), n); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
