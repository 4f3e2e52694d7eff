package fcm

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/push"
)

// maxErrorBody bounds how much of a refusal is read; Google's are well
// under a kilobyte.
const maxErrorBody = 64 << 10

// fcmErrorType is the @type of the google.rpc.Status detail that carries
// FCM's own error code.
const fcmErrorType = "type.googleapis.com/google.firebase.fcm.v1.FcmError"

// rpcStatus is the body of a refused request: a google.rpc.Status in
// Google's JSON error envelope.
type rpcStatus struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type      string `json:"@type"`
			ErrorCode string `json:"errorCode"`
		} `json:"details"`
	} `json:"error"`
}

// parseErrorBody returns the status name (INVALID_ARGUMENT, NOT_FOUND) and
// the FCM error code (UNREGISTERED, QUOTA_EXCEEDED) of a refusal, each
// empty when absent or not a plain code. The message is ignored: it can
// quote the request.
func parseErrorBody(body []byte) (status, fcmCode string) {
	var s rpcStatus
	if json.Unmarshal(body, &s) != nil {
		return "", ""
	}
	for _, d := range s.Error.Details {
		if d.Type == fcmErrorType && d.ErrorCode != "" {
			fcmCode = safeCode(d.ErrorCode)
			break
		}
	}
	return safeCode(s.Error.Status), fcmCode
}

// classify turns a non-2xx answer of messages:send into a ProviderError.
func classify(statusCode int, header http.Header, body []byte, now time.Time) *push.ProviderError {
	status, code := parseErrorBody(body)
	e := &push.ProviderError{Platform: push.FCM, StatusCode: statusCode, Reason: code}
	if e.Reason == "" {
		e.Reason = status
	}
	switch {
	case code == "UNREGISTERED":
		// Only FCM's own code removes an installation: a bare NOT_FOUND
		// may name the project (a wrong --fcm-credentials) or come from a
		// misconfigured proxy, and would unregister every installation.
		e.Unregistered = true
	case code == "THIRD_PARTY_AUTH_ERROR":
		// FCM's APNs or Web Push credentials are wrong: a console fix,
		// not something a new access token or a retry cures.
	case statusCode == http.StatusUnauthorized,
		statusCode == http.StatusRequestTimeout,
		statusCode == http.StatusTooManyRequests,
		statusCode >= 500,
		code == "QUOTA_EXCEEDED", code == "UNAVAILABLE", code == "INTERNAL",
		status == "RESOURCE_EXHAUSTED", status == "UNAVAILABLE", status == "INTERNAL":
		e.Retryable = true
		e.RetryAfter = retryAfter(header.Get("Retry-After"), now)
	}
	return e
}

// retryAfter reads a Retry-After header (RFC 9110 10.2.3): delay seconds
// or an HTTP date. Anything else, or a date in the past, gives zero.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// safeCode keeps a service's error code only if it looks like one (letters,
// digits, underscores; short), so that whatever reaches a log is never
// message content.
func safeCode(s string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return ""
		}
	}
	return s
}
