package main

import (
	"context"
	"testing"

	"github.com/onedoor/onedoor/idp/idptest"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/redis"
)

// The scale configuration: fosite's storage contract with durable data in
// PostgreSQL and ephemeral state in Redis, as the composition root wires it.
func TestFositeStorage_PostgresRedis(t *testing.T) {
	idptest.RunFositeStorageTests(t, func(t *testing.T) idptest.FositeBackend {
		dsn, redisURL := scaleBackends(t)
		db, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		store := postgres.New(db)
		if err := store.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		rdb, err := redis.Dial(context.Background(), redisURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rdb.Close() })
		return idptest.FositeBackend{Store: store, Eph: redis.New(rdb, "fositetest-"+randomHex(6)+":")}
	})
}
