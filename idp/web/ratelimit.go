package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"github.com/onedoor/onedoor/idp/clientaddr"
)

// limit is a fixed-window rate limit on one abusable step: one ephemeral
// Incr per check, keyed by the step, the subject and the window.
type limit struct {
	name   string
	max    int64
	window time.Duration
}

// Limits are the rate limits; a zero field takes its default. Limits per
// client address stop floods from one source and nothing more: thousands of
// citizens can share one IPv4 address behind carrier-grade NAT, so they are
// generous (IPv6 clients count per /64, see clientaddr.Key). The strict
// limits are per identity under attack: a personal id, a device, a client.
type Limits struct {
	// PARPerAddr bounds the pushed requests (server state for 90 s) from one
	// address per minute. Default 600.
	PARPerAddr int
	// PARPerClient bounds one authenticated client's pushed requests per
	// minute. Default 6000.
	PARPerClient int
	// TokenPerClient bounds one authenticated (confidential) client's token
	// requests per minute: a leaked credential or a client stuck in a loop
	// costs the platform a bounded amount, and other clients nothing.
	// Public clients (the eID app, used by every citizen) are bounded per
	// address and per device instead. Default 60000 (1000/s: a national
	// deadline brings one agency site hundreds of logins a second).
	TokenPerClient int
	// TokenPublicPerAddr bounds the token requests without a client
	// credential (public clients) from one address per minute. Default 600.
	TokenPublicPerAddr int
	// EnrollPerAddr bounds enrollment attempts from one address per minute.
	// Default 300.
	EnrollPerAddr int
	// EnrollPerPersonalID bounds activation-code guesses per personal id per
	// hour, whether or not a citizen has it (the activation also locks after
	// a few wrong codes). Default 10.
	EnrollPerPersonalID int
	// PerDevice bounds what one enrolled device does per minute (login-request
	// reads, decisions, device management). Default 60.
	PerDevice int
	// LoginTotal bounds the new login requests of the whole deployment per
	// minute. Each is state kept for 2 minutes, and a flood from many
	// addresses (an IPv6 /48 holds 65,536 /64s) passes every per-address
	// limit: this keeps that state bounded (about twice this many entries).
	// Default 60000 (1000/s).
	LoginTotal int
	// WaitersPerReplica bounds the login status requests one replica holds
	// open (?wait=); over it a status request is answered 503 with
	// Retry-After. Default 20000.
	WaitersPerReplica int
	// WaitersPerAddr bounds the status requests held open for one client
	// address (generous: a NAT holds many citizens). Default 200.
	WaitersPerAddr int
	// PromptsPerCitizen bounds the approval prompts (login_hint) one
	// citizen is sent per 10 minutes (push fatigue); beyond it the login
	// falls back to the QR code. Default 5.
	PromptsPerCitizen int
	// RegisterPerAddr bounds the registration requests (RFC 7591/7592)
	// from one address per minute. Default 30.
	RegisterPerAddr int
	// RegisterPerToken bounds the registrations tried with one initial
	// access token, known or not, per minute. Default 10.
	RegisterPerToken int
	// AuditPerAddr bounds the requests to the access log's public routes
	// (/audit/v1, served through Wrap) from one address per minute: they
	// are unauthenticated and read the database. Citizens' apps check them
	// too, many behind one carrier-grade NAT address, so the bound is for
	// floods, not for use. Default 6000.
	AuditPerAddr int
}

// DefaultLimits are the limits a zero Limits field takes.
var DefaultLimits = Limits{
	PARPerAddr:          600,
	PARPerClient:        6000,
	TokenPublicPerAddr:  600,
	TokenPerClient:      60000,
	EnrollPerAddr:       300,
	EnrollPerPersonalID: 10,
	PerDevice:           60,
	LoginTotal:          60000,
	WaitersPerReplica:   20000,
	WaitersPerAddr:      200,
	PromptsPerCitizen:   5,
	RegisterPerAddr:     30,
	RegisterPerToken:    10,
	AuditPerAddr:        6000,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	for _, f := range []struct{ v, def *int }{
		{&l.PARPerAddr, &d.PARPerAddr}, {&l.PARPerClient, &d.PARPerClient},
		{&l.TokenPublicPerAddr, &d.TokenPublicPerAddr}, {&l.TokenPerClient, &d.TokenPerClient},
		{&l.EnrollPerAddr, &d.EnrollPerAddr},
		{&l.EnrollPerPersonalID, &d.EnrollPerPersonalID}, {&l.PerDevice, &d.PerDevice},
		{&l.LoginTotal, &d.LoginTotal},
		{&l.WaitersPerReplica, &d.WaitersPerReplica}, {&l.WaitersPerAddr, &d.WaitersPerAddr},
		{&l.PromptsPerCitizen, &d.PromptsPerCitizen},
		{&l.RegisterPerAddr, &d.RegisterPerAddr}, {&l.RegisterPerToken, &d.RegisterPerToken},
		{&l.AuditPerAddr, &d.AuditPerAddr},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return l
}

func perMinute(name string, n int) limit {
	return limit{name: name, max: int64(n), window: time.Minute}
}

func (s *Server) limitPARAddr() limit   { return perMinute("par-addr", s.cfg.Limits.PARPerAddr) }
func (s *Server) limitPARClient() limit { return perMinute("par-client", s.cfg.Limits.PARPerClient) }
func (s *Server) limitTokenPublicAddr() limit {
	return perMinute("token-public-addr", s.cfg.Limits.TokenPublicPerAddr)
}
func (s *Server) limitTokenClient() limit {
	return perMinute("token-client", s.cfg.Limits.TokenPerClient)
}
func (s *Server) limitEnrollAddr() limit { return perMinute("enroll-addr", s.cfg.Limits.EnrollPerAddr) }
func (s *Server) limitEnrollPID() limit {
	return limit{name: "enroll-pid", max: int64(s.cfg.Limits.EnrollPerPersonalID), window: time.Hour}
}
func (s *Server) limitDevice() limit { return perMinute("device", s.cfg.Limits.PerDevice) }
func (s *Server) limitLoginTotal() limit {
	return perMinute("login-total", s.cfg.Limits.LoginTotal)
}

func (s *Server) limitRegisterAddr() limit {
	return perMinute("register-addr", s.cfg.Limits.RegisterPerAddr)
}
func (s *Server) limitAuditAddr() limit { return perMinute("audit-addr", s.cfg.Limits.AuditPerAddr) }
func (s *Server) limitRegisterToken() limit {
	return perMinute("register-token", s.cfg.Limits.RegisterPerToken)
}

// Size of a pushed authorization request (RFC 9126): a form over maxPARBody
// bytes is 413, more than maxPARParams values 400.
const (
	maxPARBody   = 8 << 10
	maxPARParams = 40
)

// loginLimit bounds the login requests (server state) one address can create.
func (s *Server) loginLimit() limit {
	return limit{name: "login", max: int64(s.cfg.LoginLimit), window: time.Minute}
}

// clientKey is the rate-limit key of the request's client address: the peer,
// or what a trusted proxy says the client is.
func (s *Server) clientKey(r *http.Request) string {
	return clientaddr.Key(s.addrs.Request(r))
}

// subjectKey turns an identifier that is personal data (a personal id) into
// an opaque counter key, so the ephemeral store holds no personal data.
func (s *Server) subjectKey(kind, id string) string {
	m := hmac.New(sha256.New, s.cfg.CookieKey)
	m.Write([]byte("onedoor rate limit\x00" + kind + "\x00" + id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// allow counts the request against l for key and reports whether it is within
// the limit; over it, it answers 429 with Retry-After. A store outage does
// not turn into a denial: the limiter fails open and the step itself then
// answers 503 if it needs the store.
func (s *Server) allow(ctx context.Context, w http.ResponseWriter, l limit, key string) bool {
	retry, ok := s.count(ctx, l, key)
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		writeJSONError(w, http.StatusTooManyRequests, "slow_down", "Too many requests; try again later.")
	}
	return ok
}

// allowPage is allow for a browser's form post: over the limit it answers
// a page in the citizen's language, not JSON.
func (s *Server) allowPage(w http.ResponseWriter, r *http.Request, l limit, key string) bool {
	retry, ok := s.count(r.Context(), l, key)
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		s.renderMessage(w, r, http.StatusTooManyRequests, msgSlowDown)
	}
	return ok
}

// count counts the request against l for key; over the limit it returns
// false and the seconds until the window ends.
func (s *Server) count(ctx context.Context, l limit, key string) (retryAfter int, ok bool) {
	now := s.cfg.Now()
	window := now.Truncate(l.window)
	n, err := s.eph.Incr(ctx, "rl:"+l.name+":"+key+":"+strconv.FormatInt(window.Unix(), 10), l.window+time.Second)
	if err != nil || n <= l.max {
		return 0, true
	}
	return int(window.Add(l.window).Sub(now).Seconds()) + 1, false
}
