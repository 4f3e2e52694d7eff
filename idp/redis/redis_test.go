package redis_test

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/idptest"
	"github.com/onedoor/onedoor/idp/redis"
	"github.com/onedoor/onedoor/internal/redistest"
)

func prefix() string { return "idptest:" + rand.Text() + ":" }

func TestEphemeral_Miniredis(t *testing.T) {
	idptest.RunEphemeralTests(t, func(t *testing.T) idp.Ephemeral {
		m := miniredis.RunT(t)
		// miniredis only expires keys when told to; follow the wall clock.
		done := make(chan struct{})
		go func() {
			last := time.Now()
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case now := <-tick.C:
					m.FastForward(now.Sub(last))
					last = now
				}
			}
		}()
		t.Cleanup(func() { close(done) })
		c := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
		t.Cleanup(func() { c.Close() })
		return redis.New(c, prefix())
	})
}

func TestEphemeral_Redis(t *testing.T) {
	c, err := redis.Dial(t.Context(), redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	idptest.RunEphemeralTests(t, func(t *testing.T) idp.Ephemeral {
		p := prefix()
		t.Cleanup(func() {
			// Leave no test keys behind on a shared server. t.Context is
			// already canceled here.
			ctx := context.Background()
			it := c.Scan(ctx, 0, p+"*", 100).Iterator()
			for it.Next(ctx) {
				c.Del(ctx, it.Val())
			}
			if err := it.Err(); err != nil {
				t.Errorf("clean up keys %s*: %v", p, err)
			}
		})
		return redis.New(c, p)
	})
}

func TestUnreachable(t *testing.T) {
	if _, err := redis.Dial(t.Context(), "redis://127.0.0.1:1/0"); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Dial: got %v, want %v", err, idp.ErrUnavailable)
	}
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	e := redis.New(c, "x:")
	if _, err := e.Get(t.Context(), "k"); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Get: got %v, want %v", err, idp.ErrUnavailable)
	}
	if _, err := e.Incr(t.Context(), "k", time.Second); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Incr: got %v, want %v", err, idp.ErrUnavailable)
	}
	if err := e.Create(t.Context(), "k", nil, time.Second); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Create: got %v, want %v", err, idp.ErrUnavailable)
	}
}

func TestDial_BadURL(t *testing.T) {
	if _, err := redis.Dial(t.Context(), "http://user:secret@host"); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("Dial: got %v, want %v", err, idp.ErrInvalid)
	}
}

// TestPermanentErrorIsNotAnOutage: an error reply a retry would get again
// (here WRONGTYPE, as after a key collision with another application) must
// not read as an outage, or clients would be told to retry forever.
func TestPermanentErrorIsNotAnOutage(t *testing.T) {
	m := miniredis.RunT(t)
	c := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	e := redis.New(c, "p:")
	if err := c.RPush(t.Context(), "p:k", "x").Err(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Get":  func() error { _, err := e.Get(t.Context(), "k"); return err }(),
		"Take": func() error { _, err := e.Take(t.Context(), "k"); return err }(),
		"Incr": func() error { _, err := e.Incr(t.Context(), "k", time.Minute); return err }(),
	} {
		if err == nil || errors.Is(err, idp.ErrUnavailable) || errors.Is(err, idp.ErrNotFound) {
			t.Errorf("%s on a key of the wrong type: got %v, want a permanent error", name, err)
		}
	}
	// A server that is loading its data set will answer again: an outage.
	m.SetError("LOADING Redis is loading the dataset in memory")
	if _, err := e.Get(t.Context(), "k"); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Get while loading: got %v, want %v", err, idp.ErrUnavailable)
	}
}
