package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/internal/redistest"
)

// Replicas on one Redis agree on its store id, and when Redis loses the
// marker (a restart without persistence) serve writes it back with the same
// id, so `citizen lock` recognises the server's Redis again.
// On a Redis Cluster as well (one key, on its slot's master).
func TestServe_RedisStoreIDKeptAcrossDataLoss(t *testing.T) {
	for _, mode := range []string{"plain", "cluster"} {
		t.Run(mode, func(t *testing.T) { testStoreIDKept(t, mode == "cluster") })
	}
}

func testStoreIDKept(t *testing.T, cluster bool) {
	dsn, redisURL := scaleBackends(t)
	if cluster {
		redisURL = redistest.ClusterURL(t)
	}
	key := sharedMasterKey(t)
	prefix := "test-" + randomHex(4) + ":"
	opt := func(c *Config) {
		c.PostgresDSN, c.RedisURL, c.MasterKeyFile, c.RedisPrefix, c.RedisCluster = dsn, redisURL, key, prefix, cluster
		c.RedisStoreIDEvery = 20 * time.Millisecond
	}
	m := newTestMain(t, opt)
	second := newTestMain(t, opt)
	ctx := context.Background()
	marker := prefix + storeIDKey
	id, err := m.redis.Get(ctx, marker).Result()
	if err != nil {
		t.Fatalf("no store id in Redis after serve started: %v", err)
	}
	if id == "" || m.ephemeralName() != "redis:"+id || second.ephemeralName() != "redis:"+id {
		t.Fatalf("marker %q, replicas name the store %q and %q; want both redis:%s", id, m.ephemeralName(), second.ephemeralName(), id)
	}
	if err := m.redis.Del(ctx, marker).Err(); err != nil {
		t.Fatal(err)
	}
	var got string
	for range 500 {
		if got, err = m.redis.Get(ctx, marker).Result(); !errors.Is(err, goredis.Nil) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || got != id {
		t.Fatalf("after the marker was lost: %q (%v), want it back as %q", got, err, id)
	}
	if ttl, err := m.redis.TTL(ctx, marker).Result(); err != nil || ttl != -1 {
		t.Errorf("the marker's TTL is %v (%v), want none", ttl, err)
	}
	// An admin command with the same flags reads the same id.
	admin := NewMain()
	admin.Config = m.Config
	t.Cleanup(func() { _ = admin.Close() })
	if err := admin.openEphemeral(ctx); err != nil {
		t.Fatal(err)
	}
	if err := admin.readStoreID(ctx); err != nil || admin.ephemeralName() != "redis:"+id {
		t.Errorf("citizen lock's Redis name: %q (%v), want redis:%s", admin.ephemeralName(), err, id)
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
