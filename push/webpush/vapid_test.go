package webpush

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestOrigin(t *testing.T) {
	tests := map[string]string{
		"https://fcm.googleapis.com/fcm/send/abc":    "https://fcm.googleapis.com",
		"https://Updates.Push.Services.Mozilla.com/": "https://updates.push.services.mozilla.com",
		"https://web.push.apple.com:443/x":           "https://web.push.apple.com",
		"https://127.0.0.1:8443/push/x":              "https://127.0.0.1:8443",
		"https://[::1]:8443/push/x":                  "https://[::1]:8443",
		"http://localhost:80/push/x":                 "http://localhost",
		"HTTPS://push.example/x?y=1":                 "https://push.example",
	}
	for in, want := range tests {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := origin(u); got != want {
			t.Errorf("origin(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"120", 2 * time.Minute},
		{" 5 ", 5 * time.Second},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999999", maxRetryAfter},
		{"86401", maxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), maxRetryAfter},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestReason(t *testing.T) {
	tests := map[string]string{
		`{"reason":"BadJwtToken"}`: "BadJwtToken",
		`{"code":410,"errno":106,"error":"Gone","message":"Request did not validate"}`: "errno 106",
		`{"reason":"has spaces in it"}`:                "",
		`{"reason":"` + strings.Repeat("a", 65) + `"}`: "",
		`{"errno":"102"}`:                              "",
		`the key in the authorization header does not correspond to the sender ID`: "",
		``: "",
	}
	for in, want := range tests {
		if got := reason(strings.NewReader(in)); got != want {
			t.Errorf("reason(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTopic(t *testing.T) {
	if got := topic("abc-_XYZ09"); got != "abc-_XYZ09" {
		t.Errorf("topic(valid) = %q", got)
	}
	for _, k := range []string{"a b", "a.b", strings.Repeat("a", 33), "ü"} {
		got := topic(k)
		if len(got) != 32 || !isBase64URL(got) {
			t.Errorf("topic(%q) = %q, want 32 characters of base64url", k, got)
		}
		if topic(k) != got {
			t.Errorf("topic(%q) is not stable", k)
		}
	}
}
