package fcm

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
)

func statusBody(code int, status, fcmCode string) []byte {
	e := map[string]any{"code": code, "message": "secret content tok-123", "status": status}
	if fcmCode != "" {
		e["details"] = []map[string]string{
			{"@type": "type.googleapis.com/google.rpc.BadRequest"},
			{"@type": fcmErrorType, "errorCode": fcmCode},
		}
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	return b
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		status     int
		body       []byte
		retryAfter string
		want       push.ProviderError
	}{
		{"unregistered", 404, statusBody(404, "NOT_FOUND", "UNREGISTERED"), "",
			push.ProviderError{Reason: "UNREGISTERED", Unregistered: true}},
		{"not found", 404, statusBody(404, "NOT_FOUND", ""), "",
			push.ProviderError{Reason: "NOT_FOUND"}},
		{"404 page from elsewhere is not an unregistration", 404, []byte("<html>Not Found</html>"), "",
			push.ProviderError{}},
		{"UNREGISTERED under another status", 400, statusBody(400, "INVALID_ARGUMENT", "UNREGISTERED"), "",
			push.ProviderError{Reason: "UNREGISTERED", Unregistered: true}},
		{"quota", 429, statusBody(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "120",
			push.ProviderError{Reason: "QUOTA_EXCEEDED", Retryable: true, RetryAfter: 2 * time.Minute}},
		{"quota with date", 429, statusBody(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "Sun, 01 Mar 2026 12:00:45 GMT",
			push.ProviderError{Reason: "QUOTA_EXCEEDED", Retryable: true, RetryAfter: 45 * time.Second}},
		{"date in the past", 429, nil, "Sun, 01 Mar 2026 11:00:00 GMT",
			push.ProviderError{Retryable: true}},
		{"garbage Retry-After", 503, statusBody(503, "UNAVAILABLE", "UNAVAILABLE"), "soon",
			push.ProviderError{Reason: "UNAVAILABLE", Retryable: true}},
		{"negative Retry-After", 503, nil, "-5", push.ProviderError{Retryable: true}},
		{"internal", 500, statusBody(500, "INTERNAL", "INTERNAL"), "",
			push.ProviderError{Reason: "INTERNAL", Retryable: true}},
		{"bad gateway without body", 502, nil, "", push.ProviderError{Retryable: true}},
		{"invalid argument", 400, statusBody(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), "",
			push.ProviderError{Reason: "INVALID_ARGUMENT"}},
		{"sender id mismatch", 403, statusBody(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), "",
			push.ProviderError{Reason: "SENDER_ID_MISMATCH"}},
		{"permission denied", 403, statusBody(403, "PERMISSION_DENIED", ""), "",
			push.ProviderError{Reason: "PERMISSION_DENIED"}},
		{"unauthenticated", 401, statusBody(401, "UNAUTHENTICATED", ""), "",
			push.ProviderError{Reason: "UNAUTHENTICATED", Retryable: true}},
		{"third-party auth", 401, statusBody(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), "",
			push.ProviderError{Reason: "THIRD_PARTY_AUTH_ERROR"}},
		{"status that is not a code", 400, statusBody(400, "bad thing: tok-123", ""), "",
			push.ProviderError{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.retryAfter != "" {
				h.Set("Retry-After", tt.retryAfter)
			}
			got := classify(tt.status, h, tt.body, now)
			want := tt.want
			want.Platform, want.StatusCode = push.FCM, tt.status
			if *got != want {
				t.Errorf("classify = %+v, want %+v", *got, want)
			}
		})
	}
}

var codePattern = regexp.MustCompile(`^[A-Za-z0-9_]{0,64}$`)

// FuzzClassify holds classify to what the outbox relies on for any answer.
func FuzzClassify(f *testing.F) {
	f.Add(404, statusBody(404, "NOT_FOUND", "UNREGISTERED"), "")
	f.Add(429, statusBody(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "30")
	f.Add(503, []byte(`{"error":{"details":[{"@type":1}]}}`), "Sun, 01 Mar 2026 12:00:45 GMT")
	f.Add(400, []byte(`{"error":{"status":"A\u0000B","details":null}}`), "")
	f.Add(401, []byte(`{"error":[]}`), "99999999999")
	f.Add(500, []byte(`not json`), "")
	f.Fuzz(func(t *testing.T, status int, body []byte, retry string) {
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		h := http.Header{"Retry-After": {retry}}
		e := classify(status, h, body, now)
		if e.Platform != push.FCM || e.StatusCode != status {
			t.Errorf("platform/status = %s/%d, want fcm/%d", e.Platform, e.StatusCode, status)
		}
		if !codePattern.MatchString(e.Reason) {
			t.Errorf("Reason %q is not a plain code", e.Reason)
		}
		if e.Unregistered && e.Retryable {
			t.Error("both Unregistered and Retryable")
		}
		if e.RetryAfter < 0 || (!e.Retryable && e.RetryAfter != 0) {
			t.Errorf("RetryAfter = %v with Retryable = %v", e.RetryAfter, e.Retryable)
		}
		if (status == 429 || status >= 500) && !e.Unregistered && e.Reason != "THIRD_PARTY_AUTH_ERROR" && !e.Retryable {
			t.Errorf("status %d not retryable", status)
		}
	})
}

// FuzzParseErrorBody checks that a well-formed status round-trips: what
// looks like a code comes back as it was, anything else comes back empty.
func FuzzParseErrorBody(f *testing.F) {
	f.Add("NOT_FOUND", "UNREGISTERED", true)
	f.Add("INVALID_ARGUMENT", "", false)
	f.Add("a b", "<x>", true)
	f.Add("", "QUOTA_EXCEEDED", false)
	f.Fuzz(func(t *testing.T, status, code string, fcmType bool) {
		typ := "type.googleapis.com/google.rpc.BadRequest"
		if fcmType {
			typ = fcmErrorType
		}
		body, err := json.Marshal(map[string]any{"error": map[string]any{
			"code": 400, "status": status, "message": code,
			"details": []map[string]string{{"@type": typ, "errorCode": code}},
		}})
		if err != nil {
			t.Skip()
		}
		gotStatus, gotCode := parseErrorBody(body)
		if gotStatus != safeCode(status) {
			t.Errorf("status = %q, want %q", gotStatus, safeCode(status))
		}
		wantCode := ""
		if fcmType {
			wantCode = safeCode(code)
		}
		if gotCode != wantCode {
			t.Errorf("code = %q, want %q", gotCode, wantCode)
		}
	})
}
