package redis_test

import (
	"bytes"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/idp/redis"
	"github.com/onedoor/onedoor/internal/redistest"
)

// slowProxy forwards connections to upstream; once hold is set, the next
// reply to a SET of an absent key is held for delay, so the client's read
// times out.
type slowProxy struct {
	addr  string
	hold  atomic.Bool
	delay time.Duration
}

func newSlowProxy(t *testing.T, upstream string, delay time.Duration) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &slowProxy{addr: ln.Addr().String(), delay: delay}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 {
						// Only the replies to SET ... GET of absent keys
						// (null), not a connection's handshake.
						if (buf[0] == '_' || bytes.HasPrefix(buf[:n], []byte("$-1"))) && p.hold.CompareAndSwap(true, false) {
							time.Sleep(p.delay)
						}
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestCreateMany_ResentPipelineIsNotAReplay: when a pipeline's reply is
// slower than the read timeout, go-redis sends it again on another
// connection. The keys the first send stored are still reported as
// stored by this call: a slow Redis is never taken for a replay.
func TestCreateMany_ResentPipelineIsNotAReplay(t *testing.T) {
	opt, err := goredis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := newSlowProxy(t, opt.Addr, 500*time.Millisecond)
	opt.Addr = p.addr
	opt.ReadTimeout, opt.MaxRetries, opt.PoolSize = 200*time.Millisecond, 2, 1
	c := goredis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	e := redis.New(c, prefix())
	p.hold.Store(true)
	keys := []string{"jti:a", "jti:b", "jti:a"}
	got, err := e.CreateMany(t.Context(), keys, time.Minute)
	if err != nil {
		t.Fatalf("create many through a slow first reply: %v", err)
	}
	if want := []bool{true, true, false}; !slices.Equal(got, want) {
		t.Fatalf("create many resent after a timeout = %v, want %v", got, want)
	}
	again, err := e.CreateMany(t.Context(), keys[:2], time.Minute)
	if err != nil || !slices.Equal(again, []bool{false, false}) {
		t.Fatalf("the same keys in another call = %v, %v; want both refused", again, err)
	}
}
