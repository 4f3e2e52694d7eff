// Package apnstest is a local stand-in for Apple Push Notification service,
// for tests of push/apns and of what is built on it: an HTTP/2-over-TLS
// server with its own signing key that checks each request the way APNs
// documents ("Sending notification requests to APNs", "Handling
// notification responses from APNs") and answers with APNs' statuses and
// JSON bodies. Tests script it to unregister tokens and to fail requests.
package apnstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/onedoor/onedoor/push/apns"
)

// Limits and intervals APNs documents.
const (
	tokenLifetime     = time.Hour        // older provider tokens get 403 ExpiredProviderToken
	tokenUpdatePeriod = 20 * time.Minute // newer ones on a connection get 429 TooManyProviderTokenUpdates
	maxCollapseID     = 64
)

// Topic is the bundle id the server accepts notifications for.
const Topic = "org.onedoor.app"

// pushTypes are the apns-push-type values APNs knows.
var pushTypes = map[string]bool{
	"alert": true, "background": true, "location": true, "voip": true, "complication": true,
	"fileprovider": true, "mdm": true, "liveactivity": true, "pushtotalk": true, "widgets": true,
}

// Notification is one notification the server accepted.
type Notification struct {
	DeviceToken string
	// ID is the apns-id the server answered with: the request's, or one it
	// made up when the request had none.
	ID string
	// Header is the request's header (authorization, apns-*).
	Header http.Header
	// Payload is the request body, decoded.
	Payload map[string]any
}

// Failure is a scripted refusal of an otherwise valid request.
type Failure struct {
	Status int
	Reason string
	// RetryAfter, when set, is sent as a Retry-After header in seconds.
	RetryAfter time.Duration
}

// Server is a fake APNs. It is safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	keyPEM []byte
	pub    *ecdsa.PublicKey
	keyID  string
	teamID string

	mu            sync.Mutex
	now           func() time.Time
	notifications []Notification
	unregistered  map[string]time.Time // lower-case device token → when
	failures      []Failure
	tokens        map[string]time.Time // well-signed provider token → its iat
	conns         map[string]*connTokens
	clients       []*http.Client
	requests      int
	connections   int
}

// connTokens is what a connection has authenticated with, for APNs' limit
// on renewals.
type connTokens struct {
	seen    map[string]bool
	lastNew time.Time
}

// NewServer starts a fake APNs with a fresh P-256 key and random key and
// team ids. It refuses HTTP/1.1 as APNs does: it speaks only h2 and drops a
// connection that does not. It stops when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("apnstest: generate key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("apnstest: marshal key: %v", err)
	}
	s := &Server{
		keyPEM:       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pub:          &key.PublicKey,
		keyID:        randomID(),
		teamID:       randomID(),
		now:          time.Now,
		unregistered: make(map[string]time.Time),
		tokens:       make(map[string]time.Time),
		conns:        make(map[string]*connTokens),
	}
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.EnableHTTP2 = true
	h2only := new(http.Protocols)
	h2only.SetHTTP2(true)
	s.srv.Config.Protocols = h2only
	s.srv.Config.ConnState = s.connState
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused HTTP/1.1 handshakes are expected
	s.srv.StartTLS()
	t.Cleanup(s.close)
	return s
}

// randomID is a key or team id in Apple's form: 10 letters and digits.
func randomID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (s *Server) close() {
	s.mu.Lock()
	clients := s.clients
	s.mu.Unlock()
	for _, c := range clients {
		c.CloseIdleConnections()
	}
	s.srv.Close()
}

// URL is the server's origin, the Endpoint of Config.
func (s *Server) URL() string { return s.srv.URL }

// Config is a push/apns Config for this server: its key, ids, topic and
// URL, and apns.NewHTTPClient trusting the server's certificate. Each call
// gives a client of its own (its own connection).
func (s *Server) Config() apns.Config {
	roots := x509.NewCertPool()
	roots.AddCert(s.srv.Certificate())
	hc := apns.NewHTTPClient(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	s.mu.Lock()
	s.clients = append(s.clients, hc)
	s.mu.Unlock()
	return apns.Config{
		Key:        s.keyPEM,
		KeyID:      s.keyID,
		TeamID:     s.teamID,
		Topic:      Topic,
		Endpoint:   s.srv.URL,
		HTTPClient: hc,
	}
}

// Certificate is the server's TLS certificate, for clients of one's own.
func (s *Server) Certificate() *x509.Certificate { return s.srv.Certificate() }

// SetClock replaces the clock the server ages provider tokens by.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Unregister makes the server answer 410 Unregistered for deviceToken from
// now on, with the current time as the timestamp.
func (s *Server) Unregister(deviceToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unregistered[strings.ToLower(deviceToken)] = s.now()
}

// FailNext makes the next n otherwise valid requests fail with f.
func (s *Server) FailNext(n int, f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, f)
	}
}

// Notifications is what the server accepted, in order.
func (s *Server) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.notifications...)
}

// ProviderTokens counts the distinct well-signed provider tokens the server
// has seen, expired ones included: every one beyond the first is a renewal.
func (s *Server) ProviderTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens)
}

// Requests counts the requests the server received, refused ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Connections counts the connections clients opened to the server.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

func (s *Server) connState(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch state {
	case http.StateNew:
		s.connections++
	case http.StateClosed, http.StateHijacked:
		delete(s.conns, c.RemoteAddr().String())
	}
}

// answer is the server's reply to one request.
type answer struct {
	status     int
	reason     string
	retryAfter time.Duration
	timestamp  time.Time // of a 410
}

func refuse(status int, reason string) *answer { return &answer{status: status, reason: reason} }

// ServeHTTP answers one notification request as APNs does.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	now := s.now()
	s.mu.Unlock()

	id := r.Header.Get("apns-id")
	if len(r.Header.Values("apns-id")) != 1 || !isUUID(id) {
		id = uuid.NewString()
	}
	w.Header().Set("apns-id", id)

	n, a := s.check(r, now)
	if a == nil {
		a = s.decide(n, id, now)
	}
	if a == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	body := map[string]any{"reason": a.reason}
	if a.status == http.StatusGone {
		body["timestamp"] = a.timestamp.UnixMilli()
	}
	if a.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(a.retryAfter/time.Second)))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_ = json.NewEncoder(w).Encode(body)
}

// check validates a request as APNs does; a nil answer means it is valid.
func (s *Server) check(r *http.Request, now time.Time) (*Notification, *answer) {
	if r.ProtoMajor != 2 { // unreachable while HTTP/1 is switched off
		return nil, refuse(http.StatusHTTPVersionNotSupported, "")
	}
	if r.Method != http.MethodPost {
		return nil, refuse(http.StatusMethodNotAllowed, "MethodNotAllowed")
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/3/device/")
	switch {
	case !ok || strings.Contains(token, "/"):
		return nil, refuse(http.StatusNotFound, "BadPath")
	case token == "":
		return nil, refuse(http.StatusBadRequest, "MissingDeviceToken")
	case !isHex(token):
		return nil, refuse(http.StatusBadRequest, "BadDeviceToken")
	}
	for _, k := range []string{"authorization", "apns-id", "apns-expiration", "apns-priority", "apns-topic", "apns-collapse-id", "apns-push-type"} {
		if len(r.Header.Values(k)) > 1 {
			return nil, refuse(http.StatusBadRequest, "DuplicateHeaders")
		}
	}
	if a := s.checkProviderToken(r, now); a != nil {
		return nil, a
	}
	h := r.Header
	switch topic := h.Get("apns-topic"); {
	case topic == "":
		return nil, refuse(http.StatusBadRequest, "MissingTopic")
	case topic != Topic:
		return nil, refuse(http.StatusBadRequest, "TopicDisallowed")
	}
	// APNs itself only insists on apns-push-type for watchOS; the fake
	// insists always, since push/apns always sends it.
	if !pushTypes[h.Get("apns-push-type")] {
		return nil, refuse(http.StatusBadRequest, "InvalidPushType")
	}
	if p, ok := header(h, "apns-priority"); ok && p != "10" && p != "5" && p != "1" {
		return nil, refuse(http.StatusBadRequest, "BadPriority")
	}
	if id, ok := header(h, "apns-id"); ok && !isUUID(id) {
		return nil, refuse(http.StatusBadRequest, "BadMessageId")
	}
	if e, ok := header(h, "apns-expiration"); ok {
		if _, err := strconv.ParseUint(e, 10, 63); err != nil {
			return nil, refuse(http.StatusBadRequest, "BadExpirationDate")
		}
	}
	if len(h.Get("apns-collapse-id")) > maxCollapseID {
		return nil, refuse(http.StatusBadRequest, "BadCollapseId")
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, apns.MaxPayloadSize+1))
	switch {
	case err != nil:
		return nil, refuse(http.StatusBadRequest, "PayloadEmpty")
	case len(body) == 0:
		return nil, refuse(http.StatusBadRequest, "PayloadEmpty")
	case len(body) > apns.MaxPayloadSize:
		return nil, refuse(http.StatusRequestEntityTooLarge, "PayloadTooLarge")
	}
	// APNs documents no reason for a payload that is not a JSON object with
	// an aps dictionary (it delivers nothing); the fake refuses it, with a
	// reason of its own, so that such a client bug shows.
	var payload map[string]any
	if json.Unmarshal(body, &payload) != nil {
		return nil, refuse(http.StatusBadRequest, "BadPayload")
	}
	if _, ok := payload["aps"].(map[string]any); !ok {
		return nil, refuse(http.StatusBadRequest, "BadPayload")
	}
	return &Notification{DeviceToken: token, Header: r.Header.Clone(), Payload: payload}, nil
}

// header is a header's value and whether it was sent.
func header(h http.Header, k string) (string, bool) {
	v := h.Values(k)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// decide answers a valid request: a scripted failure, 410 for an
// unregistered token, or acceptance.
func (s *Server) decide(n *Notification, id string, now time.Time) *answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		return &answer{status: f.Status, reason: f.Reason, retryAfter: f.RetryAfter}
	}
	if at, ok := s.unregistered[strings.ToLower(n.DeviceToken)]; ok {
		return &answer{status: http.StatusGone, reason: "Unregistered", timestamp: at}
	}
	n.ID = id
	s.notifications = append(s.notifications, *n)
	return nil
}

// checkProviderToken verifies the authorization header: an ES256 JWT with
// the server's key id, its team as issuer, issued within the hour, and not
// a renewal within 20 minutes of the last one on this connection.
func (s *Server) checkProviderToken(r *http.Request, now time.Time) *answer {
	authz := r.Header.Get("authorization")
	if authz == "" {
		return refuse(http.StatusForbidden, "MissingProviderToken")
	}
	scheme, raw, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return refuse(http.StatusForbidden, "InvalidProviderToken")
	}
	s.mu.Lock()
	iat, known := s.tokens[raw]
	s.mu.Unlock()
	if !known {
		var err error
		if iat, err = s.verify(raw); err != nil {
			return refuse(http.StatusForbidden, "InvalidProviderToken")
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[raw] = iat
	if now.Sub(iat) > tokenLifetime {
		return refuse(http.StatusForbidden, "ExpiredProviderToken")
	}
	conn := s.conns[r.RemoteAddr]
	if conn == nil {
		conn = &connTokens{seen: make(map[string]bool)}
		s.conns[r.RemoteAddr] = conn
	}
	if !conn.seen[raw] {
		if len(conn.seen) > 0 && now.Sub(conn.lastNew) < tokenUpdatePeriod {
			return refuse(http.StatusTooManyRequests, "TooManyProviderTokenUpdates")
		}
		conn.seen[raw] = true
		conn.lastNew = now
	}
	return nil
}

// verify checks a provider token's signature, kid and iss, and returns its
// iat. It is the costly part, so the caller remembers good tokens.
func (s *Server) verify(raw string) (time.Time, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(raw, &claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.keyID {
			return nil, errors.New("unknown kid")
		}
		return s.pub, nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}), jwt.WithoutClaimsValidation())
	if err != nil {
		return time.Time{}, err
	}
	if claims.Issuer != s.teamID {
		return time.Time{}, errors.New("wrong iss")
	}
	if claims.IssuedAt == nil {
		return time.Time{}, errors.New("no iat")
	}
	return claims.IssuedAt.Time, nil
}

func isHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return len(s)%2 == 0
}

// isUUID accepts the canonical 8-4-4-4-12 form APNs asks for.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
