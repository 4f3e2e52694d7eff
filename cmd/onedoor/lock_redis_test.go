package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
)

// liveEntries returns the ephemeral keys of the citizen's live sessions, as
// the durable index records them, after checking that each entry is in the
// server's ephemeral store (Redis at scale).
func liveEntries(t *testing.T, e *testEnv, citizenID string) []string {
	t.Helper()
	ctx := context.Background()
	ss, err := e.m.Store.ListSessions(ctx, citizenID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range ss {
		if _, err := e.m.Eph.Get(ctx, s.Key); err != nil {
			t.Fatalf("session %s has no entry in the server's ephemeral store: %v", s.SID, err)
		}
		keys = append(keys, s.Key)
	}
	if len(keys) == 0 {
		t.Fatal("the citizen has no live session")
	}
	return keys
}

// mustEntriesGone checks that no key is left in the server's ephemeral store.
func mustEntriesGone(t *testing.T, e *testEnv, keys []string, what string) {
	t.Helper()
	for _, k := range keys {
		if _, err := e.m.Eph.Get(context.Background(), k); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("%s: a session entry is still in the ephemeral store (%v)", what, err)
		}
	}
}

// silentSSO asks for a silent login (prompt=none) in browser b and returns
// the error the IdP redirects with; "" when it logs the browser in.
func silentSSO(t *testing.T, b *browser, r *rp) string {
	t.Helper()
	u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("prompt", "none"))
	loc := b.follow(t, u)
	if loc.Query().Get("code") != "" {
		return ""
	}
	return loc.Query().Get("error")
}

// An operator's `citizen lock` on PostgreSQL + Redis must end the sessions
// held in Redis. Run without the server's Redis (or with another prefix, or
// a Redis that does not answer), it cannot: it refuses and changes nothing,
// rather than claim a lock whose sessions still sign in. With the same
// Redis, from the environment as `serve` reads it, it ends them: the
// entries are gone, silent SSO answers login_required and the relying
// party receives its back-channel logout.
func TestCitizenLock_PostgresRedis_ReachesSessions(t *testing.T) {
	e := startMain(t, scaleOption(t))
	pid := demoCitizens[0].PersonalID
	rcv := newBCLRP(t)
	id, secret := e.bclClient(t, rcv, ClientSpec{})
	r := e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
	b := newBrowser()
	_, idt := e.codeFlow(r, b, e.app)
	keys := liveEntries(t, e, idt.Subject)
	if got := silentSSO(t, b, r); got != "" {
		t.Fatalf("silent SSO before the lock: %s", got)
	}
	storage := []string{"citizen", "lock", "--postgres-dsn", e.m.Config.PostgresDSN, "--master-key-file", e.m.Config.MasterKeyFile, "--personal-id", pid}

	for _, c := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"without Redis", nil, "--redis-url"},
		{"another key prefix", []string{"--redis-url", e.m.Config.RedisURL, "--redis-prefix", "elsewhere:"}, "--redis-url"},
		{"Redis not answering", []string{"--redis-url", "redis://127.0.0.1:1/0"}, "redis"},
	} {
		code, out, errs := cli(t, nil, append(storage, c.extra...)...)
		if code == 0 || strings.TrimSpace(out) != "" || !strings.Contains(errs, c.want) {
			t.Errorf("lock %s: exit %d, stdout %q, stderr %q; want a refusal naming %s", c.name, code, out, errs, c.want)
		}
		if d, err := e.m.Store.GetDevice(context.Background(), e.app.Enrollment().DeviceID); err != nil || d.RevokedAt != nil {
			t.Fatalf("lock %s changed the device (%v)", c.name, err)
		}
	}
	if got := silentSSO(t, b, r); got != "" {
		t.Fatalf("a refused lock ended the session: %s", got)
	}

	env := map[string]string{"ONEDOOR_REDIS_URL": e.m.Config.RedisURL, "ONEDOOR_REDIS_PREFIX": e.m.Config.RedisPrefix}
	code, out, errs := cli(t, env, storage...)
	if code != 0 {
		t.Fatalf("lock with the server's Redis: %d %s", code, errs)
	}
	var res LockResult
	decode(t, out, &res)
	if res.EndedSessions != 1 || len(res.RevokedDevices) != 1 {
		t.Errorf("lock printed %s", out)
	}
	mustEntriesGone(t, e, keys, "after citizen lock")
	if got := silentSSO(t, b, r); got != "login_required" {
		t.Errorf("silent SSO after the lock: %q, want login_required", got)
	}
	rcv.waitSID(t, sidOf(t, idt))
}
