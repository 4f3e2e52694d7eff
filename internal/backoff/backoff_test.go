package backoff

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	limit := 30 * time.Minute
	for _, tt := range []struct {
		name, v string
		want    time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "3", 3 * time.Second},
		{"zero", "0", 0},
		{"negative", "-5", 0},
		{"beyond the limit", "999999999999", limit},
		{"http date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"date in the past", now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"date beyond the limit", now.Add(48 * time.Hour).Format(http.TimeFormat), limit},
		{"garbage", "soon", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := RetryAfter(tt.v, now, limit); got != tt.want {
				t.Errorf("RetryAfter(%q) = %v, want %v", tt.v, got, tt.want)
			}
		})
	}
}
