package fcm

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/fcm/fcmtest"
)

// fakeClock is the token cache's clock, moved by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTokenCache_RefreshesBeforeExpiry(t *testing.T) {
	srv := fcmtest.NewServer(t)
	srv.SetTokenLifetime(time.Minute) // refreshed 15s early
	c, err := New(Config{Credentials: srv.Credentials(), Endpoint: srv.URL(), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	clock := &fakeClock{t: time.Now()}
	c.tokens.now = clock.now

	send := func() {
		t.Helper()
		n := &push.Notification{MessageID: "m", Kind: "notice"}
		if err := c.Send(context.Background(), push.Target{Platform: push.FCM, Token: "tok"}, n); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	steps := []struct {
		advance   time.Duration
		wantCalls int
	}{
		{0, 1},
		{30 * time.Second, 1}, // 30s left: still cached
		{20 * time.Second, 2}, // 10s left: inside the early-refresh window
		{40 * time.Second, 2}, // the new token has 20s left
		{10 * time.Minute, 3}, // long expired
	}
	for i, s := range steps {
		clock.advance(s.advance)
		send()
		if got := srv.TokenCalls(); got != s.wantCalls {
			t.Fatalf("step %d (+%v): %d token calls, want %d", i, s.advance, got, s.wantCalls)
		}
	}
}

func TestTokenCache_InvalidateKeepsNewerToken(t *testing.T) {
	c := &tokenCache{now: time.Now}
	c.access, c.refreshAt = "new", time.Now().Add(time.Hour)
	c.invalidate("old")
	if tok, ok := c.cached(); !ok || tok != "new" {
		t.Errorf("after invalidating an older token: cached() = %q, %v; want \"new\", true", tok, ok)
	}
	c.invalidate("new")
	if _, ok := c.cached(); ok {
		t.Error("after invalidating the cached token: still cached")
	}
}
