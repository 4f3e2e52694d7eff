// Package backoff is the retry schedule every durable delivery in OneDoor
// shares (webhooks, pushes).
package backoff

import (
	"math/rand/v2"
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
