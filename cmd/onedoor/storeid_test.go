package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Replicas on one Redis agree on its store id, and when Redis loses the
// marker (a restart without persistence) serve writes it back with the same
// id, so `citizen lock` recognises the server's Redis again.
func TestServe_RedisStoreIDKeptAcrossDataLoss(t *testing.T) {
	every := func(c *Config) { c.RedisStoreIDEvery = 20 * time.Millisecond }
	m := newTestMain(t, scaleOption(t), every)
	prefix := func(c *Config) { c.RedisPrefix = m.Config.RedisPrefix }
	second := newTestMain(t, scaleOption(t), every, prefix)
	ctx := context.Background()
	key := m.Config.RedisPrefix + storeIDKey
	id, err := m.redis.Get(ctx, key).Result()
	if err != nil {
		t.Fatalf("no store id in Redis after serve started: %v", err)
	}
	if id == "" || m.ephemeralName() != "redis:"+id || second.ephemeralName() != "redis:"+id {
		t.Fatalf("marker %q, replicas name the store %q and %q; want both redis:%s", id, m.ephemeralName(), second.ephemeralName(), id)
	}
	if err := m.redis.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	var got string
	for range 500 {
		if got, err = m.redis.Get(ctx, key).Result(); !errors.Is(err, goredis.Nil) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || got != id {
		t.Fatalf("after the marker was lost: %q (%v), want it back as %q", got, err, id)
	}
	if ttl, err := m.redis.TTL(ctx, key).Result(); err != nil || ttl != -1 {
		t.Errorf("the marker's TTL is %v (%v), want none", ttl, err)
	}
}

// `citizen lock` only reads the marker: on a Redis without it, it refuses
// with the reason, changes nothing and does not write one.
func TestCitizenLock_RedisWithoutStoreIDRefuses(t *testing.T) {
	e := startMain(t, scaleOption(t))
	ctx := context.Background()
	key := e.m.Config.RedisPrefix + storeIDKey
	if err := e.m.redis.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli(t, nil, "citizen", "lock", "--postgres-dsn", e.m.Config.PostgresDSN, "--master-key-file", e.m.Config.MasterKeyFile,
		"--personal-id", demoCitizens[0].PersonalID, "--redis-url", e.m.Config.RedisURL, "--redis-prefix", e.m.Config.RedisPrefix)
	if code == 0 || strings.TrimSpace(out) != "" || !strings.Contains(errs, "no OneDoor store id") || !strings.Contains(errs, "nothing was changed") {
		t.Errorf("lock on a Redis without the marker: exit %d, stdout %q, stderr %q; want a refusal naming the missing store id", code, out, errs)
	}
	if d, err := e.m.Store.GetDevice(ctx, e.app.Enrollment().DeviceID); err != nil || d.RevokedAt != nil {
		t.Errorf("the refused lock changed the device (%v)", err)
	}
	if n, err := e.m.redis.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Errorf("citizen lock wrote the store id (exists %d, %v); only serve may", n, err)
	}
}
