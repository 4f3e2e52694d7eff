package redis

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/onedoor/onedoor/internal/redistest"
)

// A renewal that reaches Redis after its stream ended must not bring the
// slot back: a slot nobody holds would refuse the citizen's next stream
// for a whole lease.
func TestRenew_ExtendsOnlyHeldLeases(t *testing.T) {
	opt, err := goredis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	key := "pushtest:" + rand.Text() + ":streams"
	t.Cleanup(func() { rdb.Del(ctx, key) })
	lease := time.Minute
	soon := float64(time.Now().Add(time.Second).UnixMilli())
	if err := rdb.ZAdd(ctx, key, goredis.Z{Score: soon, Member: "held"}, goredis.Z{Score: soon, Member: "released"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ZRem(ctx, key, "released").Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"held", "released"} {
		if err := renew.Run(ctx, rdb, []string{key}, lease.Milliseconds(), m).Err(); err != nil {
			t.Fatalf("renew %s: %v", m, err)
		}
	}
	if n, err := rdb.ZCard(ctx, key).Result(); err != nil || n != 1 {
		t.Errorf("slots after renewing a held and a released lease: %d, %v; want 1", n, err)
	}
	if s, err := rdb.ZScore(ctx, key, "held").Result(); err != nil || s < float64(time.Now().Add(lease/2).UnixMilli()) {
		t.Errorf("the held lease was not extended: %v, %v", s, err)
	}
}
