package apnstest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/push/apns/apnstest"
)

const deviceToken = "5f0c8e2a9b7d41c3a6e2f0b18d9c7a3e5f0c8e2a9b7d41c3a6e2f0b18d9c7a3e"

var start = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// fixture is a fake APNs on a settable clock, with what a test needs to
// write requests to it by hand.
type fixture struct {
	srv    *apnstest.Server
	client *http.Client
	key    *ecdsa.PrivateKey
	keyID  string
	teamID string
	bearer string // one provider token for all requests, as a client keeps it

	mu  sync.Mutex
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{srv: apnstest.NewServer(t), now: start}
	f.srv.SetClock(f.Now)
	cfg := f.srv.Config()
	key, err := jwt.ParseECPrivateKeyFromPEM(cfg.Key)
	if err != nil {
		t.Fatalf("the fake's key: %v", err)
	}
	f.client, f.key, f.keyID, f.teamID = cfg.HTTPClient, key, cfg.KeyID, cfg.TeamID
	f.bearer = "bearer " + f.token(t, start)
	return f
}

func (f *fixture) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

// token signs a provider token; the options change its parts.
func (f *fixture) token(t *testing.T, iat time.Time, opts ...func(*jwt.Token, *ecdsa.PrivateKey) *ecdsa.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"iss": f.teamID, "iat": iat.Unix()})
	tok.Header["kid"] = f.keyID
	key := f.key
	for _, o := range opts {
		key = o(tok, key)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// request is a valid notification request; change edits it.
func (f *fixture) request(t *testing.T, change func(*http.Request)) *http.Request {
	t.Helper()
	body := `{"aps":{"alert":{"title":"t","body":"b"}},"message_id":"m1"}`
	r, err := http.NewRequestWithContext(context.Background(), http.MethodPost,
		f.srv.URL()+"/3/device/"+deviceToken, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("authorization", f.bearer)
	r.Header.Set("apns-topic", apnstest.Topic)
	r.Header.Set("apns-push-type", "alert")
	r.Header.Set("apns-priority", "10")
	r.Header.Set("apns-id", "6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	if change != nil {
		change(r)
	}
	return r
}

type reply struct {
	status     int
	reason     string
	timestamp  *int64
	apnsID     string
	retryAfter string
}

func (f *fixture) do(t *testing.T, r *http.Request) reply {
	t.Helper()
	resp, err := f.client.Do(r)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("answered over %s, want HTTP/2", resp.Proto)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	rep := reply{status: resp.StatusCode, apnsID: resp.Header.Get("apns-id"), retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode == http.StatusOK {
		if len(body) != 0 {
			t.Errorf("200 with body %q, want none", body)
		}
		return rep
	}
	var e struct {
		Reason    string `json:"reason"`
		Timestamp *int64 `json:"timestamp"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not APNs' JSON: %v", body, err)
	}
	rep.reason, rep.timestamp = e.Reason, e.Timestamp
	return rep
}

func TestServer_Accepts(t *testing.T) {
	f := newFixture(t)
	rep := f.do(t, f.request(t, nil))
	if rep.status != http.StatusOK || rep.apnsID != "6ba7b810-9dad-11d1-80b4-00c04fd430c8" {
		t.Errorf("got %+v, want 200 echoing the apns-id", rep)
	}
	rep = f.do(t, f.request(t, func(r *http.Request) { r.Header.Del("apns-id"); r.Header.Del("apns-priority") }))
	if rep.status != http.StatusOK || len(rep.apnsID) != 36 {
		t.Errorf("without apns-id: got %+v, want 200 with a new apns-id", rep)
	}
	got := f.srv.Notifications()
	if len(got) != 2 {
		t.Fatalf("recorded %d notifications, want 2", len(got))
	}
	if got[1].ID != rep.apnsID || got[0].DeviceToken != deviceToken || got[0].Header.Get("apns-topic") != apnstest.Topic {
		t.Errorf("recorded %+v", got)
	}
	if alert := got[0].Payload["aps"].(map[string]any)["alert"].(map[string]any); alert["title"] != "t" {
		t.Errorf("recorded payload %v", got[0].Payload)
	}
}

func TestServer_Refuses(t *testing.T) {
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*fixture, *http.Request)
		status int
		reason string
	}{
		{"GET", func(_ *fixture, r *http.Request) { r.Method = http.MethodGet }, 405, "MethodNotAllowed"},
		{"another path", func(_ *fixture, r *http.Request) { r.URL.Path = "/3/devices/" + deviceToken }, 404, "BadPath"},
		{"no device token", func(_ *fixture, r *http.Request) { r.URL.Path = "/3/device/" }, 400, "MissingDeviceToken"},
		{"a device token that is not hex", func(_ *fixture, r *http.Request) { r.URL.Path = "/3/device/xyz" }, 400, "BadDeviceToken"},
		{"a repeated header", func(_ *fixture, r *http.Request) { r.Header.Add("apns-topic", apnstest.Topic) }, 400, "DuplicateHeaders"},
		{"no provider token", func(_ *fixture, r *http.Request) { r.Header.Del("authorization") }, 403, "MissingProviderToken"},
		{"a basic authorization", func(_ *fixture, r *http.Request) { r.Header.Set("authorization", "basic eA==") }, 403, "InvalidProviderToken"},
		{"a token that is not a JWT", func(_ *fixture, r *http.Request) { r.Header.Set("authorization", "bearer x.y.z") }, 403, "InvalidProviderToken"},
		{"a token signed by another key", func(f *fixture, r *http.Request) {
			r.Header.Set("authorization", "bearer "+f.token(t, f.Now(), func(_ *jwt.Token, _ *ecdsa.PrivateKey) *ecdsa.PrivateKey { return otherKey }))
		}, 403, "InvalidProviderToken"},
		{"a token naming another key", func(f *fixture, r *http.Request) {
			r.Header.Set("authorization", "bearer "+f.token(t, f.Now(), func(tok *jwt.Token, k *ecdsa.PrivateKey) *ecdsa.PrivateKey {
				tok.Header["kid"] = "AAAAAAAAAA"
				return k
			}))
		}, 403, "InvalidProviderToken"},
		{"a token from another team", func(f *fixture, r *http.Request) {
			r.Header.Set("authorization", "bearer "+f.token(t, f.Now(), func(tok *jwt.Token, k *ecdsa.PrivateKey) *ecdsa.PrivateKey {
				tok.Claims.(jwt.MapClaims)["iss"] = "BBBBBBBBBB"
				return k
			}))
		}, 403, "InvalidProviderToken"},
		{"a token without iat", func(f *fixture, r *http.Request) {
			r.Header.Set("authorization", "bearer "+f.token(t, f.Now(), func(tok *jwt.Token, k *ecdsa.PrivateKey) *ecdsa.PrivateKey {
				delete(tok.Claims.(jwt.MapClaims), "iat")
				return k
			}))
		}, 403, "InvalidProviderToken"},
		{"an unsigned token", func(f *fixture, r *http.Request) {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": f.teamID, "iat": f.Now().Unix()})
			tok.Header["kid"] = f.keyID
			s, _ := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			r.Header.Set("authorization", "bearer "+s)
		}, 403, "InvalidProviderToken"},
		{"a token issued over an hour ago", func(f *fixture, r *http.Request) {
			r.Header.Set("authorization", "bearer "+f.token(t, f.Now().Add(-61*time.Minute)))
		}, 403, "ExpiredProviderToken"},
		{"no topic", func(_ *fixture, r *http.Request) { r.Header.Del("apns-topic") }, 400, "MissingTopic"},
		{"another topic", func(_ *fixture, r *http.Request) { r.Header.Set("apns-topic", "com.example.other") }, 400, "TopicDisallowed"},
		{"no push type", func(_ *fixture, r *http.Request) { r.Header.Del("apns-push-type") }, 400, "InvalidPushType"},
		{"an unknown push type", func(_ *fixture, r *http.Request) { r.Header.Set("apns-push-type", "urgent") }, 400, "InvalidPushType"},
		{"priority 7", func(_ *fixture, r *http.Request) { r.Header.Set("apns-priority", "7") }, 400, "BadPriority"},
		{"an apns-id that is no UUID", func(_ *fixture, r *http.Request) { r.Header.Set("apns-id", "msg-1") }, 400, "BadMessageId"},
		{"an expiration that is no number", func(_ *fixture, r *http.Request) { r.Header.Set("apns-expiration", "tomorrow") }, 400, "BadExpirationDate"},
		{"a collapse id over 64 bytes", func(_ *fixture, r *http.Request) { r.Header.Set("apns-collapse-id", strings.Repeat("c", 65)) }, 400, "BadCollapseId"},
		{"no payload", func(_ *fixture, r *http.Request) { setBody(r, "") }, 400, "PayloadEmpty"},
		{"a payload over 4096 bytes", func(_ *fixture, r *http.Request) {
			setBody(r, `{"aps":{},"x":"`+strings.Repeat("x", 4096)+`"}`)
		}, 413, "PayloadTooLarge"},
		{"a payload that is not JSON", func(_ *fixture, r *http.Request) { setBody(r, "hello") }, 400, "BadPayload"},
		{"a payload without aps", func(_ *fixture, r *http.Request) { setBody(r, `{"message_id":"m1"}`) }, 400, "BadPayload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			rep := f.do(t, f.request(t, func(r *http.Request) { tc.change(f, r) }))
			if rep.status != tc.status || rep.reason != tc.reason {
				t.Errorf("got %d %q, want %d %q", rep.status, rep.reason, tc.status, tc.reason)
			}
			if rep.timestamp != nil {
				t.Errorf("a %d has a timestamp", rep.status)
			}
			if n := len(f.srv.Notifications()); n != 0 {
				t.Errorf("recorded %d notifications, want 0", n)
			}
		})
	}
}

func setBody(r *http.Request, body string) {
	r.Body = io.NopCloser(strings.NewReader(body))
	r.ContentLength = int64(len(body))
	r.GetBody = nil
}

func TestServer_RefusesHTTP1(t *testing.T) {
	f := newFixture(t)
	roots := x509.NewCertPool()
	roots.AddCert(f.srv.Certificate())
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{
		{"offering http/1.1", &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.1"}}},
		{"offering no protocol", &tls.Config{RootCAs: roots}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h1only := new(http.Protocols)
			h1only.SetHTTP1(true)
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.tls, Protocols: h1only}}
			defer c.CloseIdleConnections()
			resp, err := c.Do(f.request(t, nil))
			if err == nil {
				resp.Body.Close()
				t.Fatalf("HTTP/1.1 request: got %s, want the connection refused", resp.Status)
			}
			if n := f.srv.Requests(); n != 0 {
				t.Errorf("server handled %d requests, want 0", n)
			}
		})
	}
}

func TestServer_Unregister(t *testing.T) {
	f := newFixture(t)
	f.srv.Unregister(strings.ToUpper(deviceToken))
	f.advance(time.Minute)
	rep := f.do(t, f.request(t, nil))
	if rep.status != http.StatusGone || rep.reason != "Unregistered" || rep.timestamp == nil || *rep.timestamp != start.UnixMilli() {
		t.Errorf("got %+v, want 410 Unregistered with the time of unregistering in milliseconds", rep)
	}
}

func TestServer_FailNext(t *testing.T) {
	f := newFixture(t)
	f.srv.FailNext(2, apnstest.Failure{Status: http.StatusTooManyRequests, Reason: "TooManyRequests", RetryAfter: 30 * time.Second})
	for i := range 2 {
		rep := f.do(t, f.request(t, nil))
		if rep.status != http.StatusTooManyRequests || rep.reason != "TooManyRequests" || rep.retryAfter != "30" {
			t.Errorf("request %d: got %+v, want 429 TooManyRequests after 30 seconds", i, rep)
		}
	}
	// A request the server refuses on its own does not use up a failure.
	f.srv.FailNext(1, apnstest.Failure{Status: http.StatusServiceUnavailable, Reason: "ServiceUnavailable"})
	if rep := f.do(t, f.request(t, func(r *http.Request) { r.Header.Del("apns-topic") })); rep.reason != "MissingTopic" {
		t.Errorf("an invalid request: got %+v, want MissingTopic", rep)
	}
	if rep := f.do(t, f.request(t, nil)); rep.status != http.StatusServiceUnavailable {
		t.Errorf("got %+v, want the scripted 503", rep)
	}
	if rep := f.do(t, f.request(t, nil)); rep.status != http.StatusOK {
		t.Errorf("after the failures: got %+v, want 200", rep)
	}
	if n := len(f.srv.Notifications()); n != 1 {
		t.Errorf("recorded %d notifications, want 1", n)
	}
}

func TestServer_ProviderTokenRenewals(t *testing.T) {
	f := newFixture(t)
	first := f.token(t, f.Now())
	withToken := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("authorization", "bearer "+tok) }
	}
	for range 3 {
		if rep := f.do(t, f.request(t, withToken(first))); rep.status != http.StatusOK {
			t.Fatalf("got %+v, want 200", rep)
		}
	}
	f.advance(10 * time.Minute)
	early := f.token(t, f.Now())
	if rep := f.do(t, f.request(t, withToken(early))); rep.status != http.StatusTooManyRequests || rep.reason != "TooManyProviderTokenUpdates" {
		t.Errorf("a new token 10 minutes after the last: got %+v, want 429 TooManyProviderTokenUpdates", rep)
	}
	f.advance(11 * time.Minute)
	if rep := f.do(t, f.request(t, withToken(early))); rep.status != http.StatusOK {
		t.Errorf("a new token 21 minutes after the last: got %+v, want 200", rep)
	}
	if rep := f.do(t, f.request(t, withToken(first))); rep.status != http.StatusOK {
		t.Errorf("the previous token, still under an hour old: got %+v, want 200", rep)
	}
	f.advance(40 * time.Minute)
	if rep := f.do(t, f.request(t, withToken(first))); rep.reason != "ExpiredProviderToken" {
		t.Errorf("the first token after 61 minutes: got %+v, want ExpiredProviderToken", rep)
	}
	if got := f.srv.ProviderTokens(); got != 2 {
		t.Errorf("ProviderTokens() = %d, want 2", got)
	}
}

func TestServer_Concurrent(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.Now())
	if rep := f.do(t, f.request(t, func(r *http.Request) { r.Header.Set("authorization", "bearer "+tok) })); rep.status != http.StatusOK {
		t.Fatalf("got %+v", rep)
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			body := `{"aps":{},"n":` + strconv.Itoa(i) + `}`
			r, err := http.NewRequestWithContext(context.Background(), http.MethodPost, f.srv.URL()+"/3/device/"+deviceToken, bytes.NewReader([]byte(body)))
			if err != nil {
				t.Error(err)
				return
			}
			r.Header.Set("authorization", "bearer "+tok)
			r.Header.Set("apns-topic", apnstest.Topic)
			r.Header.Set("apns-push-type", "alert")
			resp, err := f.client.Do(r)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("got %s", resp.Status)
			}
		})
	}
	wg.Wait()
	if n := len(f.srv.Notifications()); n != 33 {
		t.Errorf("recorded %d notifications, want 33", n)
	}
	if n := f.srv.Connections(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}
