package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// storeIDKey (after --redis-prefix) holds the id that names the server's
// Redis in the session index ("redis:" + id). A URL or prefix would not do:
// another database or another Redis with the same prefix would pass for the
// server's, and a `citizen lock` there would end nothing yet report
// success. Only a Redis that holds the server's marker is its store.
const storeIDKey = "store-id"

// defaultStoreIDEvery is how often serve re-asserts the marker.
const defaultStoreIDEvery = time.Minute

// claimStoreID agrees on the Redis store id with the other replicas: the
// first to start writes a fresh one (no TTL), every replica reads the one
// written.
func (m *Main) claimStoreID(ctx context.Context) error {
	key := m.Config.RedisPrefix + storeIDKey
	if err := m.redis.SetNX(ctx, key, rand.Text(), 0).Err(); err != nil {
		return fmt.Errorf("redis: store id: %w", err)
	}
	id, err := m.redis.Get(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("redis: store id: %w", err)
	}
	m.storeID = id
	return nil
}

// readStoreID reads the marker for an admin command, which never writes
// it: a Redis without one is not the server's (or lost its data, and a
// replica writes it back within defaultStoreIDEvery).
func (m *Main) readStoreID(ctx context.Context) error {
	id, err := m.redis.Get(ctx, m.Config.RedisPrefix+storeIDKey).Result()
	if errors.Is(err, goredis.Nil) {
		return fmt.Errorf("the Redis given holds no OneDoor store id under prefix %q: it is not the server's Redis (check --redis-url and --redis-prefix), or it just lost its data (retry in a minute, once a replica has written the id back)",
			m.Config.RedisPrefix)
	}
	if err != nil {
		return fmt.Errorf("redis: store id: %w", err)
	}
	m.storeID = id
	return nil
}

// keepStoreID writes the marker back, with the same id, whenever Redis
// loses it (it may keep nothing on disk), so that `citizen lock` still
// recognises the server's Redis.
func (m *Main) keepStoreID(ctx context.Context) {
	defer m.wg.Done()
	every := m.Config.RedisStoreIDEvery
	if every <= 0 {
		every = defaultStoreIDEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	key := m.Config.RedisPrefix + storeIDKey
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.redis.SetNX(ctx, key, m.storeID, 0).Err(); err != nil {
			if ctx.Err() == nil {
				m.Logger.Warn("redis store id", "err", err)
			}
			continue
		}
		// Another id means a replica started while the marker was lost:
		// sessions it records are named by its id, ours by ours, and
		// `citizen lock` refuses (never claims) for the ones it cannot name.
		got, err := m.redis.Get(ctx, key).Result()
		if err == nil && got != m.storeID && !warned {
			m.Logger.Warn("the Redis store id differs from this replica's (Redis lost its data while another replica started): restart this replica to adopt it; until then citizen lock refuses for the sessions it starts")
			warned = true
		}
	}
}
