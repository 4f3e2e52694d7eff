// Package fcmtest is a local stand-in for Firebase Cloud Messaging's HTTP v1
// API and Google's OAuth 2.0 token endpoint, for tests and benchmarks of
// code that sends through FCM on a machine that cannot reach Google.
//
// It issues its own service-account key, verifies the RS256 assertions
// signed with it, hands out expiring opaque access tokens, checks them on
// messages:send, validates the message JSON the way FCM does (unknown
// fields are refused) and records what it accepted. Refusals use Google's
// error shapes, and tests can script them:
//
//	srv := fcmtest.NewServer(t)
//	c, err := fcm.New(fcm.Config{Credentials: srv.Credentials(), Endpoint: srv.URL(), HTTPClient: srv.Client()})
//	srv.Unregister("gone")                       // 404 UNREGISTERED for this token
//	srv.FailNext(2, fcmtest.Failure{HTTPStatus: 429, ErrorCode: "QUOTA_EXCEEDED", RetryAfter: "30"})
//	... c.Send(ctx, target, n) ...
//	srv.SetDelay(200 * time.Millisecond)          // slow answers: batches stay in flight
//	msgs := srv.Messages()
package fcmtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// DefaultTokenLifetime is how long an access token lasts unless
// SetTokenLifetime says otherwise; Google's expires_in is 3599.
const DefaultTokenLifetime = 3599 * time.Second

// Message is one message that messages:send accepted.
type Message struct {
	Token       string
	Title, Body string
	Data        map[string]string
	// Priority is android.priority upper-cased: "HIGH", "NORMAL" or "".
	Priority    string
	CollapseKey string // android.collapse_key
	TTL         string // android.ttl as sent, e.g. "3600s"
	APNsHeaders map[string]string
}

// Failure is a scripted refusal of messages:send.
type Failure struct {
	// HTTPStatus is the answer's status code: 429, 500, 503, 400, 403...
	// The google.rpc.Status name follows from it; one that is not an
	// HTTP status gives 500.
	HTTPStatus int
	// ErrorCode, when set, is the FcmError detail's errorCode
	// (QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, SENDER_ID_MISMATCH...).
	ErrorCode string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
}

// Option configures NewServer.
type Option func(*options)

type options struct{ tls bool }

// WithTLS serves HTTPS with HTTP/2, as FCM does; Client trusts it.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// Server is a fake FCM and token endpoint. It is safe for concurrent use.
type Server struct {
	hs          *httptest.Server
	client      *http.Client
	key         *rsa.PrivateKey
	keyID       string
	projectID   string
	clientEmail string
	creds       []byte

	mu           sync.Mutex
	lifetime     time.Duration
	tokens       map[string]time.Time // access token -> expiry
	tokenCalls   int
	unregistered map[string]bool
	failures     []Failure
	messages     []Message
	delay        time.Duration
}

// NewServer starts a fake FCM with its own service account (project,
// client_email, key id; the RSA key is shared by the process's servers).
// It is closed when the test ends.
func NewServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	key, err := sharedKey()
	if err != nil {
		tb.Fatalf("fcmtest: generating the service-account key: %v", err)
	}
	s := &Server{
		key:          key,
		keyID:        randomHex(20),
		projectID:    "onedoor-fake-" + randomHex(4),
		lifetime:     DefaultTokenLifetime,
		tokens:       make(map[string]time.Time),
		unregistered: make(map[string]bool),
	}
	s.clientEmail = "fcm-sender@" + s.projectID + ".iam.gserviceaccount.com"

	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.serveToken)
	mux.HandleFunc("/v1/", s.serveSend)
	s.hs = httptest.NewUnstartedServer(mux)
	if o.tls {
		s.hs.EnableHTTP2 = true
		s.hs.StartTLS()
		tr := s.hs.Client().Transport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 256
		s.client = &http.Client{Transport: tr}
	} else {
		s.hs.Start()
		s.client = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     30 * time.Second,
		}}
	}
	tb.Cleanup(func() {
		s.client.CloseIdleConnections()
		s.hs.Close()
	})
	s.creds = s.credentials(key)
	return s
}

func (s *Server) credentials(key *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic("fcmtest: encoding the key: " + err.Error())
	}
	b, err := json.MarshalIndent(map[string]string{
		"type":                        "service_account",
		"project_id":                  s.projectID,
		"private_key_id":              s.keyID,
		"private_key":                 string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":                s.clientEmail,
		"client_id":                   "100000000000000000001",
		"auth_uri":                    s.hs.URL + "/o/oauth2/auth",
		"token_uri":                   s.TokenURI(),
		"auth_provider_x509_cert_url": s.hs.URL + "/oauth2/v1/certs",
		"client_x509_cert_url":        s.hs.URL + "/robot/v1/metadata/x509/" + s.clientEmail,
		"universe_domain":             "googleapis.com",
	}, "", "  ")
	if err != nil {
		panic("fcmtest: encoding the credentials: " + err.Error())
	}
	return b
}

// URL is the FCM endpoint (fcm.Config.Endpoint), without a trailing slash.
func (s *Server) URL() string { return s.hs.URL }

// TokenURI is the token endpoint the credentials name.
func (s *Server) TokenURI() string { return s.hs.URL + "/token" }

// ProjectID is the credentials' project_id.
func (s *Server) ProjectID() string { return s.projectID }

// ClientEmail is the service account's client_email.
func (s *Server) ClientEmail() string { return s.clientEmail }

// Credentials is a service-account key file whose token_uri is this server.
func (s *Server) Credentials() []byte { return append([]byte(nil), s.creds...) }

// Client is an HTTP client that trusts the server (WithTLS) and keeps
// enough connections idle for benchmarks.
func (s *Server) Client() *http.Client { return s.client }

// Messages returns the messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		m.Data = maps.Clone(m.Data)
		m.APNsHeaders = maps.Clone(m.APNsHeaders)
		out[i] = m
	}
	return out
}

// MessageCount is len(Messages()) without the copy.
func (s *Server) MessageCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// TokenCalls counts requests to the token endpoint, refused ones included.
func (s *Server) TokenCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls
}

// SetTokenLifetime sets the lifetime (expires_in) of access tokens issued
// from now on; it is rounded down to whole seconds, at least one.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = max(d.Truncate(time.Second), time.Second)
}

// ExpireTokens ends every access token issued so far, as if their hour had
// passed: the next send with one is refused with 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Unregister makes sends to token fail with 404 UNREGISTERED, as after
// the app was uninstalled.
func (s *Server) Unregister(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[token] = true
}

// FailNext makes the next n authenticated sends fail with f, after any
// failures scripted before.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// SetDelay makes every accepted send answer d after it was recorded, as a
// slow or distant FCM does: a batch stays in flight, and a client that
// gives up (or dies) in between has had its message delivered without
// learning so.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = max(d, 0)
}

// sharedKey is the RSA key of every Server in the process: generating a
// 2048-bit key takes a noticeable fraction of a second, and servers stay
// apart by project, client_email and key id, which the token endpoint
// checks.
var sharedKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
