// Package webpushtest is a push service and the browsers subscribed to it,
// in one local HTTPS server, for testing Web Push senders: it checks each
// request as a push service would (RFC 8030, VAPID per RFC 8292), decrypts
// it as the browser would (RFC 8291) and records what arrived.
//
// It shares no code with the sender it tests.
package webpushtest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/push"
)

// MaxBody is the largest encrypted payload the server accepts; larger ones
// get 413, as RFC 8030 section 7.2 allows of a service that takes 4096.
const MaxBody = 4096

// maxTokenLifetime is how far ahead a VAPID token may expire (RFC 8292
// section 2).
const maxTokenLifetime = 24 * time.Hour

// Message is a push message the server accepted and the browser decrypted.
type Message struct {
	// Endpoint is the subscription the message was posted to.
	Endpoint string
	// Plaintext is the decrypted payload, padding removed.
	Plaintext []byte
	// Header is the request's header, Authorization included.
	Header http.Header
	// TTL, Urgency ("normal" when absent) and Topic are the request's
	// delivery headers.
	TTL     int
	Urgency string
	Topic   string
	// VAPIDKey is the token's k parameter and Subject its sub claim.
	VAPIDKey string
	Subject  string
}

// Rejection is a request the server refused, with the reason it answered.
type Rejection struct {
	Status int
	Reason string
}

// Server is the push service and its subscribed browsers.
type Server struct {
	t      testing.TB
	srv    *httptest.Server
	origin string

	mu         sync.Mutex
	subs       map[string]*subscriber // by the endpoint's last path segment
	messages   []Message
	rejections []Rejection
	vapidKey   string
	failures   []failure
	next       int
}

type subscriber struct {
	endpoint string
	key      *ecdh.PrivateKey
	auth     []byte
	gone     bool
}

type failure struct {
	status     int
	retryAfter time.Duration
}

// NewServer starts a server that t's cleanup closes.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, subs: make(map[string]*subscriber)}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.origin = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Origin is the server's origin, the audience VAPID tokens must name.
func (s *Server) Origin() string { return s.origin }

// Client is an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Subscribe plays a browser subscribing: a fresh P-256 key pair and
// authentication secret, and an endpoint on this server. The keys are
// encoded as PushSubscription.toJSON encodes them (unpadded base64url).
func (s *Server) Subscribe() push.Subscription {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatalf("webpushtest: generate key: %v", err)
	}
	auth := make([]byte, 16)
	id := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		s.t.Fatalf("webpushtest: auth secret: %v", err)
	}
	if _, err := rand.Read(id); err != nil {
		s.t.Fatalf("webpushtest: id: %v", err)
	}
	sid := base64.RawURLEncoding.EncodeToString(id)
	endpoint := s.origin + "/push/" + sid
	s.mu.Lock()
	s.subs[sid] = &subscriber{endpoint: endpoint, key: key, auth: auth}
	s.mu.Unlock()
	return push.Subscription{
		Endpoint: endpoint,
		Keys: push.SubscriptionKeys{
			P256DH: base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
			Auth:   base64.RawURLEncoding.EncodeToString(auth),
		},
	}
}

// RequireVAPIDKey makes the server refuse, with 403, tokens signed by any
// other key than k (base64url, as in the token's k parameter), as a push
// service does for subscriptions made with an applicationServerKey.
func (s *Server) RequireVAPIDKey(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vapidKey = k
}

// Unsubscribe plays the browser dropping sub: later posts to it get 410.
func (s *Server) Unsubscribe(sub push.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.subs {
		if x.endpoint == sub.Endpoint {
			x.gone = true
		}
	}
}

// FailNext makes the next n posts fail with status (such as 429 or 503,
// but any status goes) and, when retryAfter is positive, a Retry-After in
// whole seconds.
func (s *Server) FailNext(n, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status: status, retryAfter: retryAfter})
	}
}

// Messages returns the messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Rejections returns the requests refused so far, oldest first, scripted
// failures included.
func (s *Server) Rejections() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejection(nil), s.rejections...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	sid, ok := strings.CutPrefix(r.URL.Path, "/push/")
	if !ok || r.Method != http.MethodPost {
		s.refuse(w, http.StatusNotFound, "NotFound")
		return
	}

	s.mu.Lock()
	var fail *failure
	if len(s.failures) > 0 {
		fail = &s.failures[0]
		s.failures = s.failures[1:]
	}
	sub := s.subs[sid]
	pinned := s.vapidKey
	s.mu.Unlock()

	if fail != nil {
		if fail.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(fail.retryAfter/time.Second)))
		}
		s.refuse(w, fail.status, "Scripted")
		return
	}
	switch {
	case sub == nil:
		s.refuse(w, http.StatusNotFound, "NoSuchSubscription")
		return
	case sub.gone:
		s.refuse(w, http.StatusGone, "Unsubscribed")
		return
	}

	k, subject, status, reason := s.checkVAPID(r.Header.Get("Authorization"), pinned)
	if status != 0 {
		s.refuse(w, status, reason)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 || !isDigits(r.Header.Get("TTL")) {
		s.refuse(w, http.StatusBadRequest, "BadTTL")
		return
	}
	urgency := r.Header.Get("Urgency")
	switch urgency {
	case "":
		urgency = "normal"
	case "very-low", "low", "normal", "high":
	default:
		s.refuse(w, http.StatusBadRequest, "BadUrgency")
		return
	}
	topic := r.Header.Get("Topic")
	if len(topic) > 32 || !isBase64URL(topic) {
		s.refuse(w, http.StatusBadRequest, "BadTopic")
		return
	}
	if r.Header.Get("Content-Encoding") != "aes128gcm" {
		s.refuse(w, http.StatusUnsupportedMediaType, "BadContentEncoding")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "BadBody")
		return
	}
	if len(body) > MaxBody {
		s.refuse(w, http.StatusRequestEntityTooLarge, "PayloadTooLarge")
		return
	}
	// A real push service cannot decrypt and would accept the message; the
	// browser would then drop it. Refusing makes the sender's bug visible.
	plaintext, err := decrypt(body, sub.key, sub.auth)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "DecryptionFailed")
		return
	}

	s.mu.Lock()
	s.next++
	id := s.next
	s.messages = append(s.messages, Message{
		Endpoint:  sub.endpoint,
		Plaintext: plaintext,
		Header:    r.Header.Clone(),
		TTL:       ttl,
		Urgency:   urgency,
		Topic:     topic,
		VAPIDKey:  k,
		Subject:   subject,
	})
	s.mu.Unlock()
	w.Header().Set("Location", fmt.Sprintf("%s/message/%d", s.origin, id))
	w.WriteHeader(http.StatusCreated)
}

// refuse answers status with an Apple-style {"reason": ...} body.
func (s *Server) refuse(w http.ResponseWriter, status int, reason string) {
	s.mu.Lock()
	s.rejections = append(s.rejections, Rejection{Status: status, Reason: reason})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"reason": reason})
}

// checkVAPID checks an Authorization header as RFC 8292 describes: scheme
// vapid, an ES256 JWT t verified with the uncompressed P-256 key k, its aud
// this origin, exp in the next 24 hours, sub a mailto: or https: contact.
// It returns a non-zero status for a refusal.
func (s *Server) checkVAPID(header, pinned string) (k, subject string, status int, reason string) {
	scheme, params, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "vapid") {
		return "", "", http.StatusUnauthorized, "MissingVAPID"
	}
	var t string
	for p := range strings.SplitSeq(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(name) {
		case "t":
			t = value
		case "k":
			k = value
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(k)
	if err != nil {
		return "", "", http.StatusUnauthorized, "BadVAPIDKey"
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return "", "", http.StatusUnauthorized, "BadVAPIDKey"
	}
	if pinned != "" && k != pinned {
		return "", "", http.StatusForbidden, "VAPIDKeyMismatch"
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(t, claims,
		func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}),
		jwt.WithAudience(s.origin),
		jwt.WithExpirationRequired(),
	)
	if err != nil {
		return "", "", http.StatusUnauthorized, "BadJWT"
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil || exp.After(time.Now().Add(maxTokenLifetime)) {
		return "", "", http.StatusUnauthorized, "ExpiryTooFar"
	}
	subject, _ = claims["sub"].(string)
	if !strings.HasPrefix(subject, "mailto:") && !strings.HasPrefix(subject, "https:") {
		return "", "", http.StatusUnauthorized, "BadSubject"
	}
	return k, subject, 0, ""
}

// decrypt opens an aes128gcm body (RFC 8188) as a browser does for Web Push
// (RFC 8291 sections 3 and 4): a single record, the key id the sender's
// 65-byte public key, the content key and nonce derived from the ECDH
// secret and the authentication secret.
func decrypt(body []byte, ua *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	const header = 16 + 4 + 1
	if len(body) < header {
		return nil, errors.New("short header")
	}
	salt := body[:16]
	rs := binary.BigEndian.Uint32(body[16:20])
	idlen := int(body[20])
	if rs < 18 {
		return nil, errors.New("record size below 18")
	}
	if idlen != 65 || len(body) < header+idlen {
		return nil, errors.New("key id is not a P-256 public key")
	}
	asPublic, err := ecdh.P256().NewPublicKey(body[header : header+idlen])
	if err != nil {
		return nil, fmt.Errorf("key id: %w", err)
	}
	record := body[header+idlen:]
	// RFC 8291 section 4: one record, shorter than rs.
	if len(record) <= 16 || uint64(len(record)) >= uint64(rs) {
		return nil, errors.New("not a single record")
	}

	secret, err := ua.ECDH(asPublic)
	if err != nil {
		return nil, fmt.Errorf("ecdh: %w", err)
	}
	keyInfo := "WebPush: info\x00" + string(ua.PublicKey().Bytes()) + string(asPublic.Bytes())
	ikm, err := hkdf.Key(sha256.New, secret, auth, keyInfo, 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	// The first record's sequence number is 0, so the nonce is used as is.
	plain, err := gcm.Open(nil, nonce, record, nil)
	if err != nil {
		return nil, fmt.Errorf("open record: %w", err)
	}
	// Strip the zero padding back to the delimiter, which for the last
	// (here the only) record must be 2.
	i := len(plain) - 1
	for i >= 0 && plain[i] == 0 {
		i--
	}
	if i < 0 || plain[i] != 2 {
		return nil, errors.New("bad padding delimiter")
	}
	return plain[:i], nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
