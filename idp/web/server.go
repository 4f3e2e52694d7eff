// Package web serves the identity provider over net/http: the OAuth 2.0 and
// OpenID Connect endpoints (through fosite), the login page with its QR code,
// and the eID app's API. fosite stays on net/http: fiber's adaptor aliases
// fasthttp's reused buffers, which fosite keeps by reference.
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/clientaddr"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/idp/passkey"
	"github.com/onedoor/onedoor/idp/sso"
	"github.com/onedoor/onedoor/represent"
)

// Store is what the web layer reads from the durable store directly.
type Store interface {
	GetClient(ctx context.Context, id string) (*idp.Client, error)
	GetCitizen(ctx context.Context, id string) (*idp.Citizen, error)
	GetCitizenByPersonalID(ctx context.Context, personalID string) (*idp.Citizen, error)
	Ping(ctx context.Context) error
}

// PingQueue is what CIBA needs of the durable delivery queue.
type PingQueue interface {
	EnqueueDelivery(ctx context.Context, d *idp.Delivery) error
	ReleaseDelivery(ctx context.Context, clientID, sid string, at time.Time) error
}

// Keys publishes and resolves signing keys.
type Keys interface {
	JWKS(ctx context.Context) ([]byte, error)
}

// Config holds the web layer's settings.
type Config struct {
	// Issuer is the public URL. When it has a path (https://id.example/idp)
	// every route is served under that path and cookies are scoped to it.
	Issuer string
	// CookieKey keys the CSRF tokens (32 bytes from the master key).
	CookieKey []byte
	// SessionTTL is the lifetime of the single sign-on session.
	SessionTTL time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the key set; a new key is
	// published at least this long before it signs.
	JWKSMaxAge time.Duration
	// LoginLimit caps new login requests per client address per minute.
	LoginLimit int
	// TrustedProxies are the ranges whose X-Forwarded-For and Forwarded
	// headers say who the client is; without them the peer address counts.
	TrustedProxies []netip.Prefix
	// Limits are the other rate limits; zero fields take DefaultLimits.
	Limits Limits
	// RequestTimeout bounds every request's store calls, so a hung database
	// turns into a 503 instead of a hung client.
	RequestTimeout time.Duration
	// Consent records what citizens agree to share, signs its receipts and
	// keeps the access log every ID token and userinfo answer is written
	// to before it leaves. Required.
	Consent *consent.Service
	// Release decides what each client is shown and receives; nil means
	// idp.ConsentPolicy over the store's clients and Consent.
	Release idp.ReleasePolicy
	// AppLinks are the apps that claim the https app link and their
	// stores (see applink.go); zero serves only the fallback page.
	AppLinks AppLinks
	// Brand names the platform in every page's header, with its help line
	// and privacy policy.
	Brand Brand
	// Sessions indexes single sign-on sessions and ends them with
	// back-channel logouts (idp/sso); nil keeps sessions in the ephemeral
	// store alone, without the account page's sessions and lock.
	Sessions *sso.Service
	// RefreshTokenTTL is the refresh tokens' lifetime, which the login page
	// states as the duration of access when offline_access is asked.
	RefreshTokenTTL time.Duration
	// Passkeys runs the WebAuthn ceremonies and PasskeyStore keeps the
	// passkeys (passkey.go); nil turns passkeys off.
	Passkeys     *passkey.RP
	PasskeyStore idp.PasskeyStore
	// OnPasskeyRemoved revokes what a removed passkey yielded, named by
	// idp.PasskeyAuthenticator: sessions, access tokens, refresh families.
	OnPasskeyRemoved func(ctx context.Context, passkeyID string) error
	// Prompter sends a login_hint's approval request to the citizen's
	// devices; nil sends nothing (the app still lists it).
	Prompter Prompter
	// DPoP verifies DPoP proofs (RFC 9449) at the token endpoint, PAR and
	// userinfo; nil builds one without server nonces over the ephemeral
	// store.
	DPoP *dpop.Verifier
	// DPoPNonce makes the token endpoint require a server nonce in every
	// DPoP proof (use_dpop_nonce): a proof then cannot be made ahead of
	// time, whatever the client's clock.
	DPoPNonce bool
	// Registration enables agency self-registration (RFC 7591/7592) at
	// /register; nil serves no such endpoint.
	Registration *Registration
	// Pings is the durable delivery queue CIBA ping callbacks ride on
	// (idp.DeliveryStore; the delivery worker sends them) and OnPingQueued
	// wakes this replica's worker. Nil Pings refuses ping-mode requests.
	Pings        PingQueue
	OnPingQueued func()
	// Observer counts what operators watch (DPoP refusals, suspected
	// passkey clones, suppressed prompts); nil counts nothing.
	Observer Observer
	// Represent says whom a citizen may act for (scope representation);
	// nil refuses that scope at /authorize (invalid_scope).
	Represent *represent.Service
	Now       func() time.Time
	Logger    *slog.Logger
}

// Server is the identity provider's HTTP surface.
type Server struct {
	cfg      Config
	provider *oidc.Provider
	store    Store
	eph      idp.Ephemeral
	eid      *eid.Service
	dpop     *dpop.Verifier
	release  idp.ReleasePolicy
	consent  *consent.Service
	keys     Keys
	log      *slog.Logger
	secure   bool
	mux      *http.ServeMux
	addrs    *clientaddr.Resolver
	// texts are the page strings per language with the brand's name.
	texts map[string]map[string]string
	// base is the issuer's path ("" or "/idp"): every route lives under it.
	base string
	// Ready reports whether the server should receive traffic; cmd flips it
	// off first on SIGTERM.
	ready func() bool
	// notReady is why the last readiness probe failed ("" when it passed),
	// so that a probe polling every few seconds logs each change of cause,
	// not every failure.
	notReady atomic.Pointer[string]
	// waiters are the long-polled status requests held open.
	waiters *waiters
}

// New returns the server; Handler gives its routes.
func New(cfg Config, p *oidc.Provider, store Store, eph idp.Ephemeral, e *eid.Service, keys Keys) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.LoginLimit == 0 {
		cfg.LoginLimit = 600
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.DPoP == nil {
		cfg.DPoP = dpop.New(dpop.Config{Now: cfg.Now}, eph)
	}
	if cfg.JWKSMaxAge == 0 {
		cfg.JWKSMaxAge = 5 * time.Minute
	}
	s := &Server{
		cfg: cfg, provider: p, store: store, eph: eph, eid: e, keys: keys, dpop: cfg.DPoP,
		log:     cfg.Logger,
		secure:  strings.HasPrefix(cfg.Issuer, "https://"),
		ready:   func() bool { return true },
		addrs:   clientaddr.New(cfg.TrustedProxies),
		base:    issuerPath(cfg.Issuer),
		texts:   cfg.Brand.pageTexts(),
		waiters: newWaiters(),
	}
	if cfg.Consent == nil {
		panic("web: New needs a consent service (Config.Consent)")
	}
	s.consent = cfg.Consent
	s.release = cfg.Release
	if s.release == nil {
		s.release = &idp.ConsentPolicy{Clients: store, Consent: cfg.Consent}
	}
	p.SetCIBAResolver(s)
	s.mux = http.NewServeMux()
	s.routes()
	return s
}

// SetReady installs the readiness switch.
func (s *Server) SetReady(f func() bool) { s.ready = f }

// issuerPath is the path routes are mounted under: the issuer URL's path
// without its trailing slash ("" for https://id.example.gov.vn).
func issuerPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return ""
	}
	return strings.TrimRight(u.EscapedPath(), "/")
}

// Paths of the endpoints, relative to the issuer.
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathJWKS       = "/.well-known/jwks.json"
	PathAuthorize  = "/authorize"
	PathPAR        = "/par"
	PathToken      = "/token"
	PathUserinfo   = "/userinfo"
	PathIntrospect = "/introspect"
	PathRevoke     = "/revoke"
	PathLogout     = "/logout"
	PathStatus     = "/login/status"
	PathContinue   = "/login/continue"
	PathRestart    = "/login/restart"
)

func (s *Server) routes() {
	m := &prefixMux{ServeMux: s.mux, base: s.base}
	m.HandleFunc("GET "+PathDiscovery, s.discovery)
	m.HandleFunc("GET "+PathJWKS, s.jwks)
	m.HandleFunc("GET "+PathAuthorize, s.authorize)
	m.HandleFunc("POST "+PathAuthorize, s.authorize)
	m.HandleFunc("POST "+PathPAR, s.par)
	m.HandleFunc("POST "+PathToken, s.token)
	m.HandleFunc("POST "+PathBCAuthorize, s.bcAuthorize)
	m.HandleFunc("GET "+PathUserinfo, s.userinfo)
	m.HandleFunc("POST "+PathUserinfo, s.userinfo)
	m.HandleFunc("POST "+PathIntrospect, s.introspect)
	m.HandleFunc("POST "+PathRevoke, s.revoke)
	m.HandleFunc("GET "+PathLogout, s.logout)
	m.HandleFunc("POST "+PathLogout, s.logout)
	m.HandleFunc("GET "+PathStatus, s.loginStatus)
	m.HandleFunc("GET "+PathContinue, s.loginContinue)
	m.HandleFunc("POST "+PathRestart, s.loginRestart)
	healthz := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }
	m.HandleFunc("GET /healthz", healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	if s.base != "" {
		// Probes also work on the bare host, as load balancers expect.
		s.mux.HandleFunc("GET /healthz", healthz)
		s.mux.HandleFunc("GET /readyz", s.readyz)
	}
	s.eidRoutes(m)
	s.appLinkRoutes(m)
	s.accountRoutes(m)
	s.passkeyRoutes(m)
	s.registrationRoutes(m)
	m.HandleFunc("GET /{$}", s.home)
	s.mux.HandleFunc("/", s.notFound)
}

// prefixMux registers "METHOD /path" patterns under the issuer's path.
type prefixMux struct {
	*http.ServeMux
	base string
}

func (m *prefixMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	method, path, _ := strings.Cut(pattern, " ")
	m.ServeMux.HandleFunc(method+" "+m.base+path, h)
}

// routeMethods are the methods any route may serve, in Allow order.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// notFound answers what no route serves with an OAuth-style JSON error: 405
// with Allow when the path is known under other methods, 404 otherwise. It
// runs only on misses, so served requests are matched once.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	probe := *r
	for _, m := range routeMethods {
		probe.Method = m
		if _, pattern := s.mux.Handler(&probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "The endpoint does not accept the "+r.Method+" method.")
		return
	}
	writeJSONError(w, http.StatusNotFound, "not_found", "No such endpoint.")
}

// Limits on what a client may send.
const (
	maxURL  = 16 << 10
	maxBody = 1 << 20
)

// Handler returns the routes wrapped in the limits, headers, logging and
// panic recovery every request gets.
func (s *Server) Handler() http.Handler {
	return s.middleware(s.mux)
}

// Wrap gives next the IdP's middleware (request id, request log, panic
// recovery, security headers, size limits, request timeout) and a rate
// limit per client address (Limits.AuditPerAddr), for the public routes
// served beside the IdP's own (the access log's /audit/v1).
func (s *Server) Wrap(next http.Handler) http.Handler {
	return s.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(r.Context(), w, s.limitAuditAddr(), s.clientKey(r)) {
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// BasePath is the issuer URL's path ("" when the issuer is at the root).
func (s *Server) BasePath() string { return s.base }

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		reqID := requestID(r.Header.Get("X-Request-Id"))
		rec.Header().Set("X-Request-Id", reqID)
		routed := r
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic in handler", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				if !rec.wrote {
					writeJSONError(rec, http.StatusInternalServerError, "server_error", "The server could not complete the request.")
				}
			}
			s.logRequest(routed, rec.status, s.cfg.Now().Sub(start), reqID)
		}()
		h := rec.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if len(r.RequestURI) > maxURL || len(r.URL.RawQuery) > maxURL {
			writeJSONError(rec, http.StatusRequestURITooLong, "invalid_request", "The request URI is longer than 16 KB.")
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			limit, tooLarge := int64(maxBody), "The request body is larger than 1 MB."
			if r.URL.Path == s.base+PathPAR {
				// A pushed request becomes server state: keep it small.
				limit, tooLarge = maxPARBody, "A pushed authorization request is limited to 8 KB."
			}
			if r.ContentLength > limit {
				writeJSONError(rec, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
				return
			}
			r.Body = http.MaxBytesReader(rec, r.Body, limit)
			// Parse forms here so an oversized chunked body is a 413, not
			// whatever a handler would make of a truncated form.
			if isForm(r) {
				if err := r.ParseForm(); err != nil {
					var mbe *http.MaxBytesError
					if errors.As(err, &mbe) {
						writeJSONError(rec, http.StatusRequestEntityTooLarge, "invalid_request", tooLarge)
						return
					}
					writeJSONError(rec, http.StatusBadRequest, "invalid_request", "The request body is not a valid form.")
					return
				}
			}
		}
		timeout := s.cfg.RequestTimeout
		if r.URL.Path == s.base+PathStatus {
			// A long poll waits up to MaxStatusWait; each of its store
			// calls still gets RequestTimeout of its own.
			timeout += MaxStatusWait
		}
		ctx, cancel := context.WithTimeout(oidc.WithRequestMemo(r.Context()), timeout)
		defer cancel()
		// Before a 503 goes out, put back what the request consumed (a code,
		// a pushed request), so the retry the 503 asks for is not refused as
		// a reuse.
		rec.beforeOutage = func() {
			if err := oidc.RestoreAfterOutage(ctx); err != nil {
				s.log.Warn("restore after outage", "err", err.Error())
			}
		}
		// The mux records the matched route on the request it is given.
		routed = r.WithContext(ctx)
		next.ServeHTTP(rec, routed)
	})
}

// logRequest leaves a trace of every request at info (probes at debug): the
// route pattern rather than the path and the client id rather than any
// credential, so no token, code or personal data reaches the log.
func (s *Server) logRequest(r *http.Request, status int, d time.Duration, reqID string) {
	route := r.Pattern
	if route == "" || route == "/" {
		route = "unmatched"
	} else if _, p, ok := strings.Cut(route, " "); ok {
		route = p
	}
	lvl := slog.LevelInfo
	if strings.HasSuffix(route, "/healthz") || strings.HasSuffix(route, "/readyz") {
		lvl = slog.LevelDebug
	}
	if !s.log.Enabled(r.Context(), lvl) {
		return
	}
	// A client id that failed authentication may be anything the caller
	// typed, a secret pasted in the wrong field included: only a hash of it.
	client := requestClientID(r)
	if status == http.StatusUnauthorized && client != "" {
		sum := sha256.Sum256([]byte(client))
		client = "unverified:" + base64.RawURLEncoding.EncodeToString(sum[:6])
	}
	s.log.Log(r.Context(), lvl, "request", "method", r.Method, "route", route, "status", status,
		"duration", d, "client_id", client, "request_id", reqID)
}

// requestClientID is the client a request names, from HTTP Basic (its user
// part only) or the client_id parameter; client ids are public.
func requestClientID(r *http.Request) string {
	id := ""
	if u, _, ok := r.BasicAuth(); ok {
		if dec, err := url.QueryUnescape(u); err == nil {
			id = dec
		}
	} else if r.Form != nil {
		id = r.Form.Get("client_id")
	} else {
		id = r.URL.Query().Get("client_id")
	}
	if len(id) > 128 {
		id = id[:128]
	}
	return id
}

// requestID keeps a caller's X-Request-Id when it is a plain token (a load
// balancer's), else makes one, so a log line can be matched to a report.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 64 && strings.Trim(given, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		return given
	}
	return strings.ToLower(rand.Text())[:16]
}

func isForm(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded")
}

type statusRecorder struct {
	http.ResponseWriter
	status       int
	wrote        bool
	beforeOutage func()
}

func (r *statusRecorder) WriteHeader(code int) {
	if code == http.StatusServiceUnavailable && !r.wrote && r.beforeOutage != nil {
		r.beforeOutage()
	}
	if !r.wrote {
		r.status = code
		r.wrote = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !s.ready() {
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The server is shutting down.")
		return
	}
	what, err := "durable store", s.store.Ping(ctx)
	if err == nil {
		what, err = "ephemeral store", s.eph.Ping(ctx)
	}
	if err != nil {
		cause := what + ": " + err.Error()
		if prev := s.notReady.Swap(&cause); prev == nil || *prev != cause {
			s.log.Warn("not ready", "store", what, "err", err.Error())
		}
		w.Header().Set("Retry-After", "2")
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The service is temporarily unavailable; try again shortly.")
		return
	}
	if s.notReady.Swap(nil) != nil {
		s.log.Info("ready again")
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeJSONError writes an OAuth-style error body.
func writeJSONError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// unavailable answers a store failure. An outage (idp.ErrUnavailable) is a
// 503 with Retry-After: never reported as a denial or an invalid credential.
// Anything else is permanent (a missing table, a corrupt row, a permission
// denied): it is logged with its cause and answered as a 500 server_error
// without Retry-After, so that clients do not retry it forever.
func (s *Server) unavailable(w http.ResponseWriter, what string, err error) {
	if !errors.Is(err, idp.ErrUnavailable) {
		s.internalError(w, what, err)
		return
	}
	// err.Error(), not err: fosite's errors print a stack trace with %+v.
	s.log.Warn("store unavailable", "store", what, "err", err.Error())
	w.Header().Set("Retry-After", "2")
	writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The service is temporarily unavailable; try again shortly.")
}

// internalError logs a permanent failure with its cause and answers 500
// server_error.
func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	cause := "<nil>"
	if err != nil {
		cause = err.Error()
	}
	s.log.Error("server error", "store", what, "cause", cause)
	writeJSONError(w, http.StatusInternalServerError, "server_error", "The server could not complete the request.")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

func hashHex(t string) string {
	return base64.RawURLEncoding.EncodeToString(hashToken(t))
}

// writeJSONCached writes JSON leaving Cache-Control to the caller.
func writeJSONCached(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}
