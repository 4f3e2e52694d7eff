package apns

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/push"
)

// maxResponseBody bounds what is read of an answer. APNs' error bodies are
// a few dozen bytes ({"reason":"BadDeviceToken"}).
const maxResponseBody = 4 << 10

// maxReasonLen bounds a reason kept for logs; APNs' longest is 27 bytes.
const maxReasonLen = 64

// maxRetryAfter bounds a Retry-After, so that a wild one cannot park a
// message for years (or overflow a time.Duration).
const maxRetryAfter = 24 * time.Hour

const reasonExpiredProviderToken = "ExpiredProviderToken"

// classify maps an APNs refusal to the push contract:
//   - 410 (Unregistered, ExpiredToken): the token is dead for this app;
//   - 400 BadDeviceToken is permanent but does not remove the installation:
//     APNs also answers it when the endpoint is the wrong environment
//     (sandbox for production), and deleting on it would wipe every
//     installation over one misconfiguration;
//   - 429 (TooManyRequests, TooManyProviderTokenUpdates) and 5xx: retry,
//     after Retry-After when given;
//   - 403 ExpiredProviderToken: retry at once (the caller renews the token);
//   - anything else: permanent, to be fixed rather than retried.
func classify(status int, reason string, retryAfter time.Duration) *push.ProviderError {
	e := &push.ProviderError{Platform: push.APNs, StatusCode: status, Reason: reason}
	switch {
	case status == http.StatusGone:
		e.Unregistered = true
	case status == http.StatusForbidden && reason == reasonExpiredProviderToken:
		e.Retryable = true
	case status == http.StatusTooManyRequests, status >= 500 && status <= 599:
		e.Retryable = true
		e.RetryAfter = retryAfter
	}
	return e
}

// parseReason reads the reason from an APNs error body, {"reason":
// "BadDeviceToken"} (410 adds "timestamp"). Anything else, or a reason
// that is not a plain word, gives "": the reason ends up in logs.
func parseReason(body []byte) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return ""
	}
	var reason string
	if json.Unmarshal(fields["reason"], &reason) != nil || !isReason(reason) {
		return ""
	}
	return reason
}

// isReason accepts APNs' reasons: short words of ASCII letters and digits.
func isReason(s string) bool {
	if len(s) > maxReasonLen {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// parseRetryAfter reads a Retry-After header, seconds or an HTTP date
// (RFC 9110, section 10.2.3); zero when absent, unreadable or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	secs, err := strconv.ParseUint(v, 10, 64)
	switch {
	case err == nil && secs <= uint64(maxRetryAfter/time.Second):
		return time.Duration(secs) * time.Second
	case err == nil || errors.Is(err, strconv.ErrRange):
		return maxRetryAfter
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(at.Sub(now), 0), maxRetryAfter)
}
