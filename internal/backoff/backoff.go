// Package backoff is the retry schedule every durable delivery in OneDoor
// shares (webhooks, pushes, the IdP's delivery queue).
package backoff

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// FullJitter returns exponential backoff with full jitter: retry n waits a
// random duration below min(limit, base × 2^(n-1)), and at least a second
// so a failing endpoint is never hammered.
func FullJitter(base, limit time.Duration) func(n int) time.Duration {
	return func(n int) time.Duration {
		ceil := limit
		if n >= 1 && n < 40 {
			if c := base << (n - 1); c > 0 && c < limit {
				ceil = c
			}
		}
		return max(time.Second, rand.N(ceil)) //nolint:gosec // jitter, not a secret
	}
}

// RetryAfter reads a Retry-After header (RFC 9110 section 10.2.3): delay
// seconds or an HTTP date. It returns 0 when the header is absent, invalid
// or in the past, and never more than limit, so that a wild value cannot
// park a delivery for ever.
func RetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(limit/time.Second) {
			return limit
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), limit)
}
