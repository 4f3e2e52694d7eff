package web

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"
)

// limit is a fixed-window rate limit on one abusable step, per client IP.
type limit struct {
	name   string
	max    int64
	window time.Duration
}

// Limits on the steps that create server state or guess secrets. The token
// endpoint is not limited here: it authenticates clients with 256-bit
// secrets or signed assertions, and a counter there would cost a store round
// trip on the hottest path.
var limitEnroll = limit{name: "enroll", max: 10, window: time.Minute} // activation-code guesses

// loginLimit bounds the login requests (server state) one IP can create.
func (s *Server) loginLimit() limit {
	return limit{name: "login", max: int64(s.cfg.LoginLimit), window: time.Minute}
}

// allow counts the request and reports whether it is within the limit. A
// store outage does not turn into a denial: the limiter fails open and the
// step itself then answers 503 if it needs the store.
func (s *Server) allow(ctx context.Context, w http.ResponseWriter, r *http.Request, l limit) bool {
	now := s.cfg.Now()
	window := now.Truncate(l.window)
	key := "rl:" + l.name + ":" + clientIP(r) + ":" + strconv.FormatInt(window.Unix(), 10)
	n, err := s.eph.Incr(ctx, key, l.window+time.Second)
	if err != nil || n <= l.max {
		return true
	}
	retry := int(window.Add(l.window).Sub(now).Seconds()) + 1
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	writeJSONError(w, http.StatusTooManyRequests, "slow_down", "Too many requests; try again later.")
	return false
}

// clientIP is the peer address. OneDoor does not trust X-Forwarded-For: a
// deployment behind a proxy sets the real address at the proxy.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
