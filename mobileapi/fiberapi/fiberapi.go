// Package fiberapi serves the mobile API over gofiber/fiber on its own
// listener. It is the only package that imports fiber (depguard): handlers
// copy what they need out of the request before calling anything, and no
// *fiber.Ctx or fiber-owned string outlives its handler.
package fiberapi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/compress"
	"github.com/gofiber/fiber/v2/middleware/etag"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/valyala/fasthttp"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/clientaddr"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/problem"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/search"
	"github.com/onedoor/onedoor/represent"
)

// Verifier checks the IdP's access tokens in process.
type Verifier interface {
	VerifyFor(ctx context.Context, token string, e accesstoken.Expect) (*accesstoken.Claims, error)
}

// ProofVerifier checks DPoP proofs; *dpop.Verifier implements it.
type ProofVerifier interface {
	Verify(ctx context.Context, header []string, c dpop.Check) (*dpop.Proof, error)
	// Spend spends the jti of a proof verified with Check.Defer.
	Spend(ctx context.Context, p *dpop.Proof) error
	// Nonce is a fresh server nonce ("" when nonces are off).
	Nonce() string
}

// Citizens is the citizen registry, the one copy of the data.
type Citizens interface {
	GetCitizen(ctx context.Context, id string) (*idp.Citizen, error)
	// GetCitizenByPersonalID finds a citizen by the 12-digit number agencies
	// know them by (data requests).
	GetCitizenByPersonalID(ctx context.Context, personalID string) (*idp.Citizen, error)
}

// Clients looks up registered clients (cached by the IdP), so a deleted or
// re-bound agency client's tokens stop working at once.
type Clients interface {
	GetClient(ctx context.Context, id string) (*idp.Client, error)
}

// Catalog is the search index over the services, kept fresh on every
// replica.
type Catalog interface {
	Index(ctx context.Context) (*search.Index, error)
	// Invalidate makes the next Index look for changes at once.
	Invalidate()
}

// Config configures the server.
type Config struct {
	// APIURL is the API's audience: only tokens minted for it are accepted.
	APIURL   string
	Verifier Verifier
	Citizens Citizens
	Clients  Clients
	Store    mobileapi.Store
	Blobs    mobileapi.Blobs
	Catalog  Catalog
	// Consent is the one path by which personal data leaves: the data
	// broker, form pre-fill and agencies' reads of applicants go through it
	// and are logged. Registry is the register it reads (the citizen
	// store). Without them the consent routes are absent and drafts are
	// not pre-filled.
	Consent  *consent.Service
	Registry consent.Registry
	// Audit, when set, serves the citizen's inclusion proof in the access
	// log's published checkpoint (GET /v1/access-log/proof): with
	// AuditWitnesses, the latest one AuditQuorum of them cosigned (0: all).
	Audit          consent.WitnessStore
	AuditWitnesses []*consent.Witness
	AuditQuorum    int
	// Ephemeral keeps Idempotency-Key responses (and, when SharedLimits
	// is set, rate-limit counters shared by every replica).
	Ephemeral    idp.Ephemeral
	SharedLimits bool
	// RateLimit is how many requests one citizen or agency client may make
	// per minute (default 600 and 6000).
	CitizenRateLimit, AgencyRateLimit int
	// AuthFailureLimit is how many failed authentications one client
	// address may cause per minute (default DefaultAuthFailureLimit).
	AuthFailureLimit int
	// AuthFailureAddrs is how many client addresses the limit counts per
	// minute (default DefaultAuthFailureAddrs).
	AuthFailureAddrs int
	// OutageLogEvery is how often a store outage's warning is repeated per
	// cause, with a count (default DefaultOutageLogEvery).
	OutageLogEvery time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For and Forwarded
	// headers name the client (idp/clientaddr); without them the peer
	// address counts.
	TrustedProxies []netip.Prefix
	// DataRequestRateLimit is how many data requests one agency (all its
	// clients together) may make per minute (default 3000).
	DataRequestRateLimit int
	// MaxUpload bounds an uploaded file (default 10 MiB).
	MaxUpload int64
	// Notify is called after a change that raised an agency event or
	// queued a push, to wake the webhook worker and the push dispatcher.
	Notify func()
	// Push, when set, serves devices, notification preferences,
	// notifications and the live stream.
	Push *PushConfig
	// DPoP verifies DPoP proofs (idp/dpop, shared with the IdP); nil
	// refuses the DPoP scheme, and with it every citizen route.
	DPoP ProofVerifier
	// Represent says whom a citizen may act for and keeps mandates; nil
	// leaves out the representation and mandate routes, and an application
	// can then only be filed for oneself.
	Represent *represent.Service
	// Ready reports whether the server should receive traffic (nil: ready).
	Ready          func(ctx context.Context) error
	RequestTimeout time.Duration
	Now            func() time.Time
	Logger         *slog.Logger
}

// Server is the mobile API.
type Server struct {
	app     *fiber.App
	cfg     Config
	schemas *schemaCache
	homes   *homeCache
	// addrs resolves client addresses; authFails counts their failed
	// authentications.
	addrs       *clientaddr.Resolver
	authFails   *authFailures
	outages     *outageLog
	streams     *streams
	serviceJSON summaryCache
}

// Limits on what a client may send.
const (
	maxJSONBody      = 1 << 20
	defaultMaxUpload = 10 << 20
)

// New returns the server with its routes.
func New(cfg Config) *Server {
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxUpload == 0 {
		cfg.MaxUpload = defaultMaxUpload
	}
	if cfg.CitizenRateLimit == 0 {
		cfg.CitizenRateLimit = 600
	}
	if cfg.AgencyRateLimit == 0 {
		cfg.AgencyRateLimit = 6000
	}
	if cfg.DataRequestRateLimit == 0 {
		cfg.DataRequestRateLimit = 3000
	}
	if cfg.AuthFailureLimit == 0 {
		cfg.AuthFailureLimit = DefaultAuthFailureLimit
	}
	if cfg.AuthFailureAddrs == 0 {
		cfg.AuthFailureAddrs = DefaultAuthFailureAddrs
	}
	s := &Server{cfg: cfg, schemas: newSchemaCache(512), homes: newHomeCache(homeTTL, 4096),
		addrs: clientaddr.New(cfg.TrustedProxies), authFails: &authFailures{max: int64(cfg.AuthFailureLimit), maxAddrs: cfg.AuthFailureAddrs, logger: cfg.Logger},
		outages: newOutageLog(cfg.Logger, cfg.OutageLogEvery), streams: newStreams()}
	s.app = fiber.New(fiber.Config{
		AppName: "onedoor-mobileapi",
		// Bodies are streamed (upload.go): fasthttp reads at most 8 KiB of
		// one before a handler runs, and boundBody holds each route to its
		// limit. This limit is the largest (an upload's).
		StreamRequestBody:     true,
		BodyLimit:             int(s.uploadBodyLimit()),
		ReadTimeout:           uploadReadTimeout,
		WriteTimeout:          60 * time.Second,
		IdleTimeout:           90 * time.Second,
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
		// Multipart bodies are parsed by the upload handlers, after the
		// token is checked, not by fiber before any handler runs.
		DisablePreParseMultipartForm: true,
		// Give large buffers back after each request instead of pooling
		// them: a burst must not pin its memory.
		ReduceMemoryUsage: true,
	})
	// Only an upload route, with credentials, may send more than a JSON
	// body's worth; other requests get less time to send theirs.
	s.app.Server().HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if isUpload(h) {
			return fasthttp.RequestConfig{}
		}
		return fasthttp.RequestConfig{MaxRequestBodySize: jsonBodyLimit, ReadTimeout: 10 * time.Second}
	}
	// The live stream is written as events happen: neither compressed
	// (compress buffers) nor hashed for an ETag (etag reads the whole body).
	stream := func(c *fiber.Ctx) bool { return c.Path() == "/v1/events" }
	s.app.Use(recover.New(), requestid.New(), s.accessLog, s.boundBody, compress.New(compress.Config{Next: stream}), etag.New(etag.Config{Next: stream}))
	s.app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusNoContent) })
	s.app.Get("/readyz", s.readyz)
	s.app.Get("/v1/openapi.json", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(mobileapi.OpenAPI)
	})
	s.docsRoutes()

	v1 := s.app.Group("/v1", s.citizen, s.limiter(cfg.CitizenRateLimit, localCitizen))
	v1.Get("/me", s.me)
	v1.Get("/home", s.home)
	v1.Get("/services", s.searchServices)
	v1.Get("/services/:id", s.getService)
	v1.Get("/applications", s.listApplications)
	v1.Post("/applications", s.createApplication)
	v1.Get("/applications/:id", s.getApplication)
	v1.Patch("/applications/:id", s.updateApplication)
	v1.Delete("/applications/:id", s.deleteApplication)
	v1.Post("/applications/:id/attachments", s.uploadAttachment)
	v1.Post("/applications/:id/submit", s.submitApplication)
	v1.Post("/applications/:id/withdraw", s.withdrawApplication)
	v1.Get("/applications/:id/results/:result_id", s.getResult)
	v1.Get("/inbox", s.listInbox)
	v1.Post("/inbox/:id/read", s.markRead)
	if cfg.Consent != nil {
		v1.Get("/consents", s.listConsents)
		v1.Get("/consents/:id", s.getConsent)
		v1.Delete("/consents/:id", s.withdrawConsent)
		v1.Get("/consents/:id/receipts", s.listReceipts)
		v1.Get("/consents/:id/receipts/:receipt_id", s.getReceipt)
		v1.Get("/access-log", s.listAccessLog)
		v1.Get("/access-log/export", s.exportAccessLog)
		if cfg.Audit != nil {
			v1.Get("/access-log/proof", s.accessLogProof)
		}
		v1.Post("/access-log/:id/flag", s.flagEntry)
	}

	ag := s.app.Group("/agency/v1", s.agency, s.limiter(cfg.AgencyRateLimit, localAgencyClient))
	ag.Put("/services/:code", s.putService)
	ag.Get("/applications", s.agencyListApplications)
	ag.Get("/applications/:id", s.agencyGetApplication)
	ag.Get("/applications/:id/attachments/:attachment_id", s.agencyGetFile)
	ag.Post("/applications/:id/documents", s.agencyUploadDocument)
	ag.Post("/applications/:id/transitions", s.agencyTransition)
	ag.Post("/queue/leases", s.agencyLease)
	ag.Post("/queue/leases/:lease_id/ack", s.agencyAck)
	ag.Get("/webhooks", s.agencyListWebhooks)
	ag.Post("/webhooks", s.agencyCreateWebhook)
	ag.Delete("/webhooks/:id", s.agencyDeleteWebhook)
	ag.Get("/webhooks/:id/deliveries", s.agencyListDeliveries)
	if cfg.Consent != nil && cfg.Registry != nil {
		ag.Post("/data-requests", s.limiter(cfg.DataRequestRateLimit, localAgency), s.dataRequest)
	}
	s.pushRoutes(v1, ag)
	s.representRoutes(v1)
	return s
}

// Serve serves the API on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.streams.close() // live streams would hold the shutdown open
	err := s.app.ShutdownWithContext(ctx)
	s.outages.close()
	return err
}

// Test runs one request through the app without a listener.
func (s *Server) Test(req *http.Request) (*http.Response, error) { return s.app.Test(req, -1) }

// ctx is the request's context with the request timeout: a hung store
// turns into a 503 instead of a hung client.
func (s *Server) ctx(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
}

func (s *Server) readyz(c *fiber.Ctx) error {
	if s.cfg.Ready == nil {
		return c.SendStatus(http.StatusNoContent)
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		// Not logged: a probe polls this, and the stores' own failures are
		// logged where requests meet them.
		p := problem.From(errUnavailable(err))
		p.Title = tUnavailable.In(lang(c))
		return s.sendProblem(c, apiProblem{Problem: p})
	}
	return c.SendStatus(http.StatusNoContent)
}

func errUnavailable(err error) error {
	if errors.Is(err, idp.ErrUnavailable) {
		return err
	}
	return errors.Join(err, idp.ErrUnavailable)
}

// Request locals set by the authentication middleware.
const (
	localCitizen = "onedoor.citizen"
	// localDevice is the eID device of a citizen token ("" when none).
	localDevice = "onedoor.device"
	// localJKT is the thumbprint of the key a citizen token is bound to
	// (cnf.jkt): the eID device key, which signs mandates.
	localJKT          = "onedoor.jkt"
	localAgency       = "onedoor.agency"
	localAgencyClient = "onedoor.agency.client"
	// localAgencyAuth is the client's token endpoint auth method.
	localAgencyAuth = "onedoor.agency.auth"
	// localDPoPChallenge is the WWW-Authenticate of a DPoP refusal.
	localDPoPChallenge = "onedoor.dpop.challenge"
)

// authorization returns the request's Authorization scheme ("Bearer" or
// "DPoP") and a copy of its token: the header bytes are fiber's and reused
// after the handler.
func authorization(c *fiber.Ctx) (scheme, token string) {
	scheme, token = dpop.Authorization(c.Get(fiber.HeaderAuthorization))
	return scheme, strings.Clone(token)
}

// bearer returns the request's access token, under either scheme (verify
// has checked the scheme fits the token).
func bearer(c *fiber.Ctx) string {
	_, token := authorization(c)
	return token
}

// citizen admits only the eID app's citizen tokens minted for this API:
// an agency's token for the same citizen (even one minted for the API) is
// refused, so an agency never reads here what its registration does not
// allow it to receive.
func (s *Server) citizen(c *fiber.Ctx) error {
	if p := c.Path(); p == "/v1/openapi.json" || p == "/v1/docs" || strings.HasPrefix(p, "/v1/docs/") {
		return c.Next()
	}
	claims, ok, err := s.verify(c, accesstoken.KindCitizen)
	switch {
	case !ok:
		return err
	case claims.ClientID != idp.EIDAppClientID:
		return s.unauthorized(c, "invalid_token", "Citizen routes take the eID app's tokens only.")
	case claims.Act != nil || claims.Representation != nil || len(claims.RevocationKeys) > 0:
		// The subject of a represented token is the party, not the caller:
		// whom a citizen acts for here is chosen per request (subject),
		// never by the token. The app's grant never mints one; refuse it
		// rather than take an organisation for a citizen.
		return s.unauthorized(c, "invalid_token", "Citizen routes take the citizen's own tokens, not tokens acting for someone else.")
	}
	c.Locals(localCitizen, strings.Clone(claims.Subject))
	c.Locals(localDevice, strings.Clone(claims.DeviceID))
	if claims.Confirmation != nil {
		c.Locals(localJKT, strings.Clone(claims.Confirmation.JKT))
	}
	return c.Next()
}

// verify checks the request's bearer token: minted by the IdP for this API
// alone, of the given kind, not revoked. When ok is false the answer (401,
// or 503 when the deny list cannot be read) is already written and err is
// what the middleware returns.
func (s *Server) verify(c *fiber.Ctx, kind accesstoken.Kind) (claims *accesstoken.Claims, ok bool, err error) {
	scheme, token := authorization(c)
	// An address that keeps failing is refused before any signature is
	// checked: each bad token would otherwise cost an ES256 verification.
	addr, limited, err := s.authLimited(c, token)
	if limited {
		return nil, false, err
	}
	if token == "" {
		return nil, false, s.authFailed(c, addr, "", "An access token is required.")
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	claims, err = s.cfg.Verifier.VerifyFor(ctx, token, accesstoken.Expect{Audience: s.cfg.APIURL, Kind: kind})
	switch {
	case errors.Is(err, accesstoken.ErrInvalid):
		return nil, false, s.authFailed(c, addr, "invalid_token", "The access token is not valid for this API.")
	case err != nil:
		return nil, false, s.fail(c, errUnavailable(err))
	case len(claims.Audience) != 1:
		// A token for several services could be replayed here by any of them.
		return nil, false, s.authFailed(c, addr, "invalid_token", "The access token must be minted for this API alone.")
	}
	if ok, err := s.checkDPoP(c, addr, kind, scheme, token, claims); !ok {
		return nil, false, err
	}
	return claims, true, nil
}

// checkDPoP checks how a verified token was presented (RFC 9449 section
// 7): a key-bound token only with the DPoP scheme and a proof by its key
// for this request (htu from the API's configured URL, never the Host
// header) and this token (ath); an unbound token only as a Bearer token.
// The eID app's tokens are always bound to its device key (its grant
// needs a proof): one presented as Bearer, or one without cnf.jkt, is
// refused, so a token lifted from the app is worthless without the key.
// When ok is false the answer is written and err is what the middleware
// returns.
func (s *Server) checkDPoP(c *fiber.Ctx, addr string, kind accesstoken.Kind, scheme, token string, claims *accesstoken.Claims) (ok bool, err error) {
	bound := claims.Confirmation != nil && claims.Confirmation.JKT != ""
	app := kind == accesstoken.KindCitizen && claims.ClientID == idp.EIDAppClientID
	switch {
	case scheme == "Bearer" && (bound || app):
		return false, s.authFailedDPoP(c, addr, "invalid_token", "The access token is bound to a key: present it with the DPoP scheme and a DPoP proof.")
	case scheme == "Bearer":
		return true, nil
	case !bound && app:
		return false, s.authFailedDPoP(c, addr, "invalid_token", "The eID app's access token is not bound to the device key: obtain a new one with a DPoP proof.")
	case !bound:
		return false, s.authFailedDPoP(c, addr, "invalid_token", "The access token is not bound to a key: present it as a Bearer token.")
	case s.cfg.DPoP == nil:
		return false, s.authFailedDPoP(c, addr, "invalid_dpop_proof", "This API does not verify DPoP proofs.")
	}
	var hdr []string
	for _, v := range c.Request().Header.PeekAll("DPoP") {
		hdr = append(hdr, string(v)) // copies: fiber reuses the bytes
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	p, perr := s.cfg.DPoP.Verify(ctx, hdr, dpop.Check{Method: c.Method(), URL: s.cfg.APIURL + strings.Clone(c.Path()), AccessToken: token, Defer: true})
	// A proof by another key is refused before its jti is spent: a token's
	// holder cannot fill the replay store with proofs of keys it made up.
	if perr == nil && p.JKT == claims.Confirmation.JKT {
		perr = s.cfg.DPoP.Spend(ctx, p)
	}
	switch {
	case errors.Is(perr, dpop.ErrUseNonce) && (p == nil || p.JKT != claims.Confirmation.JKT):
		// Not by the token's key: a failure like any other, counted.
		return false, s.authFailedDPoP(c, addr, "invalid_dpop_proof", "The DPoP proof is not signed by the key the access token is bound to.")
	case errors.Is(perr, dpop.ErrUseNonce):
		return false, s.authFailedDPoP(c, addr, "use_dpop_nonce", "Resource server requires nonce in DPoP proof.")
	case errors.Is(perr, dpop.ErrInvalidProof):
		return false, s.authFailedDPoP(c, addr, "invalid_dpop_proof", "The DPoP proof is missing or not valid.")
	case perr != nil:
		return false, s.fail(c, errUnavailable(perr))
	case p.JKT != claims.Confirmation.JKT:
		return false, s.authFailedDPoP(c, addr, "invalid_dpop_proof", "The DPoP proof is not signed by the key the access token is bound to.")
	}
	return true, nil
}

// ScopeAgency is the scope of agency clients' tokens for /agency/v1.
const ScopeAgency = "agency"

// agency admits client_credentials tokens with scope agency, minted for
// this API, of a client that is still registered and still bound to the
// agency the token names.
func (s *Server) agency(c *fiber.Ctx) error {
	claims, ok, err := s.verify(c, accesstoken.KindClient)
	if !ok {
		return err
	}
	if !slices.Contains(claims.Scopes(), ScopeAgency) || claims.Agency == "" {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="onedoor-api", error="insufficient_scope", scope="agency"`)
		return s.fail(c, forbidden("Agency routes take tokens with scope agency of a client bound to an agency."))
	}
	ctx, cancel := s.ctx(c)
	defer cancel()
	cl, err := s.cfg.Clients.GetClient(ctx, claims.ClientID)
	switch {
	case errors.Is(err, idp.ErrNotFound):
		return s.unauthorized(c, "invalid_token", "The client of the access token no longer exists.")
	case err != nil:
		return s.fail(c, errUnavailable(err))
	case cl.Agency != claims.Agency:
		return s.unauthorized(c, "invalid_token", "The client is no longer bound to the token's agency.")
	case claims.ClientRegistered != cl.CreatedAt.UnixMilli():
		// Issued to an earlier registration under the same id (deleted and
		// created again, as when a leaked secret is replaced).
		return s.unauthorized(c, "invalid_token", "The access token was issued to an earlier registration of this client.")
	}
	c.Locals(localAgency, strings.Clone(claims.Agency))
	c.Locals(localAgencyClient, strings.Clone(claims.ClientID))
	c.Locals(localAgencyAuth, cl.AuthMethod)
	return c.Next()
}

func citizenOf(c *fiber.Ctx) string { id, _ := c.Locals(localCitizen).(string); return id }

func deviceOf(c *fiber.Ctx) string { d, _ := c.Locals(localDevice).(string); return d }

func jktOf(c *fiber.Ctx) string { k, _ := c.Locals(localJKT).(string); return k }

func agencyOf(c *fiber.Ctx) string { a, _ := c.Locals(localAgency).(string); return a }

func (s *Server) unauthorized(c *fiber.Ctx, code, detail string) error {
	h := `Bearer realm="onedoor-api"`
	if code != "" {
		h += `, error="` + code + `"`
	}
	if ch, ok := c.Locals(localDPoPChallenge).(string); ok {
		h = ch
	}
	c.Set(fiber.HeaderWWWAuthenticate, h)
	return s.sendProblem(c, apiProblem{Problem: problem.Problem{Type: typeUnauthorized, Title: tUnauthorized.In(lang(c)), Status: http.StatusUnauthorized, Detail: detail}})
}

// errorHandler turns fiber's own errors (no route, wrong method, body too
// large) and anything unexpected into problems.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		switch fe.Code {
		case http.StatusRequestEntityTooLarge:
			return s.fail(c, tooLarge("The request body is too large."))
		case http.StatusNotFound:
			return s.fail(c, idp.ErrNotFound)
		}
		return s.sendProblem(c, apiProblem{Problem: problem.Problem{Type: "about:blank", Title: http.StatusText(fe.Code), Status: fe.Code}})
	}
	return s.fail(c, err)
}

// Static is a fiber server whose one route answers GET /static with body
// from memory, behind the same middleware as the API: the floor the mobile
// API's benchmarks measure their routes against.
func Static(body []byte) *Server {
	s := &Server{cfg: Config{Logger: slog.Default()}}
	s.app = fiber.New(fiber.Config{DisableStartupMessage: true})
	s.app.Use(recover.New(), requestid.New(), compress.New(), etag.New())
	// Its ETag is computed once, as home's and search's are: the floor pays
	// no per-request hash the routes it bounds do not pay.
	tag := contentETag(body)
	s.app.Get("/static", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderETag, tag)
		if notModified(c, tag) {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(body)
	})
	return s
}
