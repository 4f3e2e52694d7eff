package apns

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestParseReason(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string
	}{
		{`{"reason":"BadDeviceToken"}`, "BadDeviceToken"},
		{`{"reason":"Unregistered","timestamp":1700000000000}`, "Unregistered"},
		{`{"timestamp":1700000000000,"reason":"ExpiredToken"}`, "ExpiredToken"},
		{``, ""},
		{`not json`, ""},
		{`{"reason":42}`, ""},
		{`{"Reason":"BadDeviceToken"}`, ""}, // APNs' key is lower case; no case folding
		{`{"reason":"Bad Device\nToken"}`, ""},
		{`{"reason":"5f0c8e2a9b7d41c3a6e2f0b18d9c7a3e5f0c8e2a9b7d41c3a6e2f0b18d9c7a3e5f0c8e2a9b7d41c3a6e2f0b1"}`, ""},
		{`["BadDeviceToken"]`, ""},
		{`{"reason":"BadTopic"} trailing`, ""},
	} {
		if got := parseReason([]byte(tc.body)); got != tc.want {
			t.Errorf("parseReason(%q) = %q, want %q", tc.body, got, tc.want)
		}
	}
}

// FuzzParseReason checks, for any body, that the reason is safe to log (a
// short word), and that any reason sent in APNs' own body comes back intact
// exactly when it is such a word.
func FuzzParseReason(f *testing.F) {
	f.Add([]byte(`{"reason":"Unregistered","timestamp":1700000000000}`), "TooManyRequests", int64(0))
	f.Add([]byte(`{"reason":"\u0000"}`), "Bad\nDevice", int64(-1))
	f.Add([]byte(`{"reason":"a","reason":"b"}`), "", int64(1<<62))
	f.Fuzz(func(t *testing.T, body []byte, reason string, timestamp int64) {
		if got := parseReason(body); !isReason(got) {
			t.Errorf("parseReason(%q) = %q, not a plain word", body, got)
		}
		apnsBody, err := json.Marshal(map[string]any{"reason": reason, "timestamp": timestamp})
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if isReason(reason) {
			want = reason
		}
		if got := parseReason(apnsBody); got != want {
			t.Errorf("parseReason(%s) = %q, want %q", apnsBody, got, want)
		}
	})
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		status                  int
		reason                  string
		retryable, unregistered bool
	}{
		{410, "Unregistered", false, true},
		{410, "ExpiredToken", false, true},
		{410, "", false, true},
		{400, "BadDeviceToken", false, false}, // maybe the wrong environment: not a dead token
		{400, "DeviceTokenNotForTopic", false, false},
		{400, "BadPriority", false, false},
		{403, "ExpiredProviderToken", true, false},
		{403, "InvalidProviderToken", false, false},
		{403, "Forbidden", false, false},
		{404, "BadPath", false, false},
		{413, "PayloadTooLarge", false, false},
		{429, "TooManyRequests", true, false},
		{429, "TooManyProviderTokenUpdates", true, false},
		{500, "InternalServerError", true, false},
		{502, "", true, false},
		{503, "ServiceUnavailable", true, false},
		{503, "Shutdown", true, false},
		{307, "", false, false},
	} {
		e := classify(tc.status, tc.reason, time.Minute)
		if e.Retryable != tc.retryable || e.Unregistered != tc.unregistered {
			t.Errorf("classify(%d, %q) = retryable %v, unregistered %v; want %v, %v",
				tc.status, tc.reason, e.Retryable, e.Unregistered, tc.retryable, tc.unregistered)
		}
		wantAfter := time.Duration(0)
		if tc.status == 429 || tc.status >= 500 {
			wantAfter = time.Minute
		}
		if e.RetryAfter != wantAfter {
			t.Errorf("classify(%d, %q).RetryAfter = %v, want %v", tc.status, tc.reason, e.RetryAfter, wantAfter)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999999", maxRetryAfter},
		{"31536000", maxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
	} {
		if got := parseRetryAfter(tc.header, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}
