package queue_test

import (
	"testing"
	"time"

	"github.com/onedoor/onedoor/push/queue"
)

func TestPolicy_Retry(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	p := queue.Policy{MaxAttempts: 3, RetryFor: 24 * time.Hour, Backoff: func(n int) time.Duration { return time.Duration(n) * time.Minute }, Cap: time.Hour}
	for _, tc := range []struct {
		name       string
		n          int
		created    time.Time
		retryAfter time.Duration
		want       time.Time
		dead       bool
	}{
		{"backoff", 1, now, 0, now.Add(time.Minute), false},
		{"Retry-After longer than the backoff", 2, now, 10 * time.Minute, now.Add(10 * time.Minute), false},
		{"Retry-After shorter than the backoff", 2, now, time.Second, now.Add(2 * time.Minute), false},
		{"Retry-After capped", 1, now, 48 * time.Hour, now.Add(time.Hour), false},
		{"negative Retry-After ignored", 1, now, -time.Hour, now.Add(time.Minute), false},
		{"the last attempt", 3, now, 0, time.Time{}, true},
		{"retried long enough", 1, now.Add(-24 * time.Hour), 0, time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, dead := p.Retry(tc.n, tc.created, now, tc.retryAfter)
			if !got.Equal(tc.want) || dead != tc.dead {
				t.Errorf("Retry = %v, dead %v; want %v, dead %v", got, dead, tc.want, tc.dead)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"120":                           2 * time.Minute,
		" 5 ":                           5 * time.Second,
		"-1":                            0,
		"99999999999":                   time.Hour,
		"soon":                          0,
		"Tue, 01 Dec 2026 09:10:00 GMT": 10 * time.Minute,
		"Tue, 01 Dec 2026 08:00:00 GMT": 0,
	} {
		if got := queue.ParseRetryAfter(v, now, time.Hour); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}
