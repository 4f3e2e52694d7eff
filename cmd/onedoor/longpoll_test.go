package main

// The login page's long poll (?wait=): answered as soon as the app decides,
// on whichever replica holds the request, and never held past a shutdown.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/internal/redistest"
)

type statusAnswer struct {
	code       int
	status     string
	errCode    string
	retryAfter string
	took       time.Duration
}

// waitStatus GETs statusURL with ?wait= (on base's host when given).
func waitStatus(t testing.TB, statusURL, wait, base string) statusAnswer {
	t.Helper()
	u, err := url.Parse(statusURL)
	if err != nil {
		t.Fatal(err)
	}
	if base != "" {
		u.Host = base
	}
	if wait != "" {
		u.RawQuery += "&wait=" + wait
	}
	c := &http.Client{Timeout: 40 * time.Second}
	start := time.Now()
	resp, err := c.Get(u.String())
	if err != nil {
		t.Errorf("GET %s: %v", u, err)
		return statusAnswer{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var s struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Errorf("status body %q: %v", body, err)
	}
	return statusAnswer{code: resp.StatusCode, status: s.Status, errCode: s.Error, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start)}
}

// startLogin opens a fresh login page for a new client of e.
func startLogin(t *testing.T, e *testEnv) (payload, statusURL string) {
	t.Helper()
	id, secret := e.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
	r := e.rp(id, secret, "openid", "profile")
	auth := r.conf.AuthCodeURL(randomString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("nonce", randomString(12)))
	return newBrowser().loginPage(t, auth)
}

// waitAsync starts a long poll and returns where its answer arrives.
func waitAsync(t *testing.T, statusURL, wait, base string) <-chan statusAnswer {
	ch := make(chan statusAnswer, 1)
	go func() { ch <- waitStatus(t, statusURL, wait, base) }()
	return ch
}

// waiting waits until m holds n status requests.
func waiting(t *testing.T, m *Main, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for m.Web.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiting status requests, want %d", m.Web.Waiting(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLongPoll_SQLite(t *testing.T) {
	runLongPoll(t, startMain(t, func(c *Config) { c.Limits = web.Limits{WaitersPerAddr: 3} }))
}

func TestLongPoll_PostgresRedis(t *testing.T) {
	opt := scaleOption(t)
	runLongPoll(t, startMain(t, opt, func(c *Config) { c.Limits = web.Limits{WaitersPerAddr: 3} }))
}

func runLongPoll(t *testing.T, e *testEnv) {
	t.Run("approval answers the waiting request at once", func(t *testing.T) {
		payload, statusURL := startLogin(t, e)
		ans := waitAsync(t, statusURL, "25", "")
		waiting(t, e.m, 1)
		if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, nil); err != nil {
			t.Fatal(err)
		}
		got := <-ans
		if got.code != http.StatusOK || got.status != "approved" || got.took > 5*time.Second {
			t.Errorf("long poll = %+v, want 200 approved well within the wait", got)
		}
		waiting(t, e.m, 0)
	})

	t.Run("deny answers too", func(t *testing.T) {
		payload, statusURL := startLogin(t, e)
		ans := waitAsync(t, statusURL, "25", "")
		waiting(t, e.m, 1)
		if _, err := e.app.Approve(context.Background(), payload, "", true, nil); err != nil {
			t.Fatal(err)
		}
		if got := <-ans; got.status != "denied" || got.took > 5*time.Second {
			t.Errorf("long poll = %+v, want denied at once", got)
		}
	})

	t.Run("timeout answers pending, as a short poll would", func(t *testing.T) {
		_, statusURL := startLogin(t, e)
		got := waitStatus(t, statusURL, "1", "")
		if got.code != http.StatusOK || got.status != "pending" || got.took < 900*time.Millisecond {
			t.Errorf("long poll = %+v, want pending after about 1s", got)
		}
		if got := waitStatus(t, statusURL, "", ""); got.status != "pending" || got.took > 2*time.Second {
			t.Errorf("short poll = %+v, want pending at once", got)
		}
	})

	t.Run("unknown request is expired at once", func(t *testing.T) {
		_, statusURL := startLogin(t, e)
		u, _ := url.Parse(statusURL)
		u.RawQuery = "id=AAAAAAAAAAAAAAAAAAAAAA"
		got := waitStatus(t, u.String(), "25", "")
		if got.code != http.StatusOK || got.status != "expired" || got.took > 2*time.Second {
			t.Errorf("long poll = %+v, want expired at once", got)
		}
	})

	t.Run("bad wait is a 400 invalid_request", func(t *testing.T) {
		_, statusURL := startLogin(t, e)
		for _, w := range []string{"26", "-1", "abc", "1.5", "", "+5", "025", "99999999999999999999", "1&wait=2"} {
			u := statusURL + "&wait=" + w
			got := waitStatus(t, u, "", "")
			if got.code != http.StatusBadRequest || got.errCode != "invalid_request" {
				t.Errorf("wait=%q: %+v, want 400 invalid_request", w, got)
			}
		}
	})

	t.Run("waiters per address are bounded", func(t *testing.T) {
		_, statusURL := startLogin(t, e)
		var held []<-chan statusAnswer
		for range 3 {
			held = append(held, waitAsync(t, statusURL, "3", ""))
		}
		waiting(t, e.m, 3)
		got := waitStatus(t, statusURL, "3", "")
		if got.code != http.StatusTooManyRequests || got.errCode != "slow_down" || got.retryAfter == "" {
			t.Errorf("fourth waiter = %+v, want 429 slow_down with Retry-After", got)
		}
		if got := waitStatus(t, statusURL, "0", ""); got.code != http.StatusOK {
			t.Errorf("short poll beside the waiters = %+v, want 200", got)
		}
		for _, h := range held {
			if got := <-h; got.status != "pending" {
				t.Errorf("held waiter = %+v, want pending", got)
			}
		}
	})

	// Last: it stops the server.
	t.Run("shutdown ends waiters promptly", func(t *testing.T) {
		_, statusURL := startLogin(t, e)
		ans := waitAsync(t, statusURL, "25", "")
		waiting(t, e.m, 1)
		start := time.Now()
		if err := e.m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("close took %v with a waiter held, want well under the wait", d)
		}
		if got := <-ans; got.code != http.StatusOK || got.status != "pending" || got.took > 5*time.Second {
			t.Errorf("waiter during shutdown = %+v, want pending at once", got)
		}
	})
}

// TestLongPoll_TwoReplicas: the login is decided on replica A (where the
// app posts) while the browser's long poll waits on replica B; the Redis
// wake-up reaches B well within the wait. Plain and sharded Pub/Sub on one
// Redis node, and a three-master Redis Cluster (--redis-cluster), where
// every Redis key and channel of the flow lives on its slot's master.
func TestLongPoll_TwoReplicas(t *testing.T) {
	for _, mode := range []string{"plain", "sharded", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			dsn, redisURL := scaleBackends(t)
			sharded, cluster := mode == "sharded", mode == "cluster"
			if cluster {
				redisURL = redistest.ClusterURL(t)
			}
			key := sharedMasterKey(t)
			issuerPort := freePort(t)
			prefix := "test-" + randomHex(4) + ":"
			shared := func(addr string) envOption {
				return func(c *Config) {
					c.PostgresDSN, c.RedisURL, c.MasterKeyFile, c.RedisPrefix = dsn, redisURL, key, prefix
					c.IDPAddr, c.Issuer = addr, "http://127.0.0.1:"+strconv.Itoa(issuerPort)
					c.RedisShardedPubSub, c.RedisCluster = sharded, cluster
				}
			}
			a := newTestMain(t, shared("127.0.0.1:"+strconv.Itoa(issuerPort)))
			b := newTestMain(t, shared("127.0.0.1:0"))
			e := &testEnv{t: t, m: a, issuer: a.Issuer}
			if err := a.ImportCitizens(context.Background(), demoCitizens[:1]); err != nil && !errors.Is(err, idp.ErrConflict) {
				t.Fatal(err)
			}
			e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
			for i := range 3 {
				payload, statusURL := startLogin(t, e)
				ans := waitAsync(t, statusURL, "25", b.IDPAddr)
				waiting(t, b, 1)
				if _, err := e.app.Approve(context.Background(), payload, pick(payload), i == 1, nil); err != nil {
					t.Fatal(err)
				}
				want := "approved"
				if i == 1 {
					want = "denied"
				}
				if got := <-ans; got.code != http.StatusOK || got.status != want || got.took > 3*time.Second {
					t.Errorf("login %d: waiter on B = %+v, want %s well within the wait", i, got, want)
				}
				waiting(t, b, 0)
			}
		})
	}
}

// TestLongPoll_StatusURLUnchanged: the page still names the same status URL
// and its script asks with wait=25.
func TestLongPoll_PageAsksToWait(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid", GrantTypes: []string{"authorization_code"}})
	r := e.rp(id, secret, "openid")
	resp, err := newBrowser().Get(r.conf.AuthCodeURL(randomString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("nonce", randomString(12))))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"&wait=25"`) {
		t.Error("the login page's script does not long-poll with wait=25")
	}
}

// BenchmarkLoginStatus_RequestsPerLogin counts the status requests a
// login page makes while the citizen takes 6 s to approve: the old page's
// short poll (every 1.5 s) against the long poll (wait=25). Run with
// -benchtime=1x; each iteration is one login.
func BenchmarkLoginStatus_RequestsPerLogin(b *testing.B) {
	const approveAfter = 6 * time.Second
	for _, mode := range []struct {
		name     string
		wait     string
		interval time.Duration
	}{{"short-poll-1.5s", "", 1500 * time.Millisecond}, {"long-poll-25s", "25", 0}} {
		b.Run(mode.name, func(b *testing.B) {
			m := newTestMain(b)
			env := &testEnv{t: b, m: m, issuer: m.Issuer}
			if err := m.ImportCitizens(context.Background(), demoCitizens[:1]); err != nil && !errors.Is(err, idp.ErrConflict) {
				b.Fatal(err)
			}
			app := env.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
			id, secret := env.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
			r := env.rp(id, secret, "openid", "profile")
			requests := 0
			for b.Loop() {
				auth := r.conf.AuthCodeURL(randomString(12), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("nonce", randomString(12)))
				payload, statusURL := newBrowser().loginPage(b, auth)
				time.AfterFunc(approveAfter, func() { _, _ = app.Approve(context.Background(), payload, pick(payload), false, nil) })
				for {
					requests++
					if got := waitStatus(b, statusURL, mode.wait, ""); got.status != "pending" {
						break
					}
					time.Sleep(mode.interval)
				}
			}
			b.ReportMetric(float64(requests)/float64(b.N), "requests/login")
		})
	}
}
