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

// Per client address. Thousands of citizens can share one IPv4 address
// behind carrier-grade NAT, so these stop floods from one source and nothing
// more; IPv6 clients count per /64 (clientaddr.Key).
var (
	// limitPARAddr bounds the pushed requests (server state for 90 s) one
	// address can create.
	limitPARAddr = limit{name: "par-addr", max: 600, window: time.Minute}
	// limitTokenPublicAddr bounds the token requests of public clients (no
	// secret, no assertion) from one address.
	limitTokenPublicAddr = limit{name: "token-public-addr", max: 600, window: time.Minute}
	// limitEnrollAddr bounds enrollment attempts from one address.
	limitEnrollAddr = limit{name: "enroll-addr", max: 300, window: time.Minute}
)

// Per identity under attack: the strict limits.
var (
	// limitEnrollPID bounds activation-code guesses per personal id, whether
	// or not a citizen has it (the activation itself also locks after a few
	// wrong codes).
	limitEnrollPID = limit{name: "enroll-pid", max: 10, window: time.Hour}
	// limitDevice bounds what one enrolled device may do (login-request
	// reads, decisions, device management) per minute.
	limitDevice = limit{name: "device", max: 60, window: time.Minute}
	// limitPARClient bounds the pushed requests of one authenticated client.
	limitPARClient = limit{name: "par-client", max: 6000, window: time.Minute}
)

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
	now := s.cfg.Now()
	window := now.Truncate(l.window)
	n, err := s.eph.Incr(ctx, "rl:"+l.name+":"+key+":"+strconv.FormatInt(window.Unix(), 10), l.window+time.Second)
	if err != nil || n <= l.max {
		return true
	}
	retry := int(window.Add(l.window).Sub(now).Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	writeJSONError(w, http.StatusTooManyRequests, "slow_down", "Too many requests; try again later.")
	return false
}
