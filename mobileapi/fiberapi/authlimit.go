package fiberapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/onedoor/onedoor/idp/clientaddr"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/problem"
)

// DefaultAuthFailureLimit is how many failed authentications (no token, a
// bad one) one client address may cause per minute before its requests are
// refused without a token check.
//
// Sizing: one IPv4 address of a carrier-grade NAT can carry thousands of
// citizens, and a citizen's app fails authentication about once per access
// token lifetime (10 minutes: the expired token is answered 401 and the
// app fetches a new one), so 600 a minute leaves room for some 6,000
// active apps behind one address, the IdP's per-address sizing. A
// neighbour's flood of bad tokens costs the others little even so: over the
// limit, a token this replica has already verified (and cached) is still
// accepted, so only an app presenting a brand-new token from that address
// waits, at most until the minute ends. IPv6 clients count per /64.
const DefaultAuthFailureLimit = 600

// authFailures counts failed authentications per client address in fixed
// one-minute windows. The check before a token is verified reads only this
// replica's memory; with SharedLimits every failure is also counted in the
// ephemeral store (one INCR), and the shared count it returns raises the
// local one, so an address over the limit on any replica is refused here
// after at most one more verification.
type authFailures struct {
	max      int64
	maxAddrs int
	logger   *slog.Logger

	mu     sync.Mutex
	window time.Time
	counts map[string]int64
	// overflowed is how many failures of untracked addresses this window
	// saw (logged once, at the first).
	overflowed int64
}

// DefaultAuthFailureAddrs bounds the addresses counted in one window, so a
// flood from many addresses (an IPv6 /48 holds 65,536 /64s) costs bounded
// memory. Past it a new address is not counted here: lumping them all
// into one counter with a per-address limit would let an attacker with
// many addresses lock every citizen's new address out until the minute
// ends. Such an address is still limited by the shared count (SharedLimits)
// and, from the next window, here.
const DefaultAuthFailureAddrs = 100_000

// tracked reports whether key has (or may get) a counter this window.
func (a *authFailures) tracked(key string, now time.Time) bool {
	w := now.Truncate(time.Minute)
	if !w.Equal(a.window) {
		a.window, a.counts, a.overflowed = w, map[string]int64{}, 0
	}
	if _, ok := a.counts[key]; ok || len(a.counts) < a.maxAddrs {
		return true
	}
	return false
}

// over reports whether key is over the limit in the current window, and
// the seconds until the window ends. An untracked address is not over.
func (a *authFailures) over(key string, now time.Time) (bool, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.tracked(key, now) {
		return false, retryAfter(now)
	}
	return a.counts[key] >= a.max, retryAfter(now)
}

// add counts one failure (at least shared, the count the ephemeral store
// returned) and returns the count: for an address the table has no room
// for, only the shared count.
func (a *authFailures) add(key string, now time.Time, shared int64) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.tracked(key, now) {
		if a.overflowed == 0 {
			// Once per window: the addresses are not logged (personal data).
			a.logger.Warn("api auth failure limiter full: new addresses are not counted on this replica until the minute ends (only by the shared count, with Redis)",
				"tracked", len(a.counts), "window", a.window)
		}
		a.overflowed++
		return shared
	}
	n := max(a.counts[key]+1, shared)
	a.counts[key] = n
	return n
}

func retryAfter(now time.Time) int {
	return int(now.Truncate(time.Minute).Add(time.Minute).Sub(now).Seconds()) + 1
}

// clientKey is the rate-limit key of the request's client address: the
// peer, or what a trusted proxy (--trusted-proxies) says the client is.
func (s *Server) clientKey(c *fiber.Ctx) string {
	var peer netip.Addr
	if ip, ok := netip.AddrFromSlice(c.Context().RemoteIP()); ok {
		peer = ip
	}
	var xff, fwd []string
	for _, v := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
		xff = append(xff, string(v))
	}
	for _, v := range c.Request().Header.PeekAll("Forwarded") {
		fwd = append(fwd, string(v))
	}
	return clientaddr.Key(s.addrs.Client(peer, xff, fwd))
}

// Known is implemented by a token verifier that remembers the tokens it
// verified (accesstoken.Cache).
type Known interface {
	Known(token string) bool
}

// authLimited answers 429 when the request's address is over its limit of
// failed authentications, unless the token is one already verified: it
// runs before any signature is checked.
func (s *Server) authLimited(c *fiber.Ctx, token string) (string, bool, error) {
	key := s.clientKey(c)
	over, after := s.authFails.over(key, s.cfg.Now())
	if !over {
		return key, false, nil
	}
	if k, ok := s.cfg.Verifier.(Known); ok && token != "" && k.Known(token) {
		return key, false, nil
	}
	return key, true, s.tooManyFailures(c, after)
}

// authFailed counts a failed authentication of the address key and
// answers it: 401 with detail, or 429 once the address passed its limit.
func (s *Server) authFailed(c *fiber.Ctx, key, code, detail string) error {
	now := s.cfg.Now()
	var shared int64
	if s.cfg.SharedLimits && s.cfg.Ephemeral != nil {
		window := now.Truncate(time.Minute)
		ctx, cancel := context.WithTimeout(c.UserContext(), limiterDeadline)
		// A store error counts locally only: the limit never turns an
		// outage into refusals.
		shared, _ = s.cfg.Ephemeral.Incr(ctx, "api:authfail:"+key+":"+strconv.FormatInt(window.Unix(), 10), time.Minute+time.Second)
		cancel()
	}
	if s.authFails.add(key, now, shared) > s.authFails.max {
		return s.tooManyFailures(c, retryAfter(now))
	}
	return s.unauthorized(c, code, detail)
}

// authFailedDPoP is authFailed answered with the DPoP challenge (RFC 9449
// section 7.1), and a fresh nonce when one is asked for.
func (s *Server) authFailedDPoP(c *fiber.Ctx, key, code, detail string) error {
	c.Locals(localDPoPChallenge, dpop.Challenge(code, ""))
	if code == "use_dpop_nonce" {
		// Not a failure: the token held and the proof is signed by its key
		// (checkDPoP), and the client is asked to retry with the nonce
		// (every client of the embedded default is, right after a restart),
		// so it does not count against the address.
		if s.cfg.DPoP != nil {
			if n := s.cfg.DPoP.Nonce(); n != "" {
				c.Set("DPoP-Nonce", n)
			}
		}
		return s.unauthorized(c, code, detail)
	}
	return s.authFailed(c, key, code, detail)
}

func (s *Server) tooManyFailures(c *fiber.Ctx, after int) error {
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(after))
	return s.sendProblem(c, apiProblem{Problem: problem.Problem{Type: typeRateLimited, Title: tRateLimited.In(lang(c)),
		Status: http.StatusTooManyRequests, Detail: "Too many failed authentications from this address; retry after the time in Retry-After."}})
}
