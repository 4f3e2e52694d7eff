package main

// The push crash test: `onedoor serve` is killed with SIGKILL while a batch
// of notifications is in flight to a slow FCM, and restarted on the same
// storage. Every message is delivered at least once and none is left
// behind; the ones FCM took before the crash but the dead process never
// recorded go out twice, and the message id lets the app drop them.

import (
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/fcm/fcmtest"
	pushsql "github.com/onedoor/onedoor/push/sqlstore"
)

// Sizes of the crash test: enough messages for two batches (the
// dispatcher claims 200 at a time), a lease short enough to wait out.
const (
	crashCitizens   = 10
	crashPerCitizen = 30
	crashLease      = 2 * time.Second
	crashWait       = 30 * time.Second
)

func TestPushCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and kills it")
	}
	bin := buildOneDoor(t)
	t.Run("SQLite", func(t *testing.T) {
		dir := t.TempDir()
		runPushCrash(t, bin, func(t *testing.T) *pushsql.Store {
			db, err := sqlite.Open(filepath.Join(dir, "onedoor.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return pushsql.New(db, sqldb.SQLite)
		}, "--data-dir", dir)
	})
	t.Run("PostgresRedis", func(t *testing.T) {
		dsn, redisURL := scaleBackends(t)
		runPushCrash(t, bin, func(t *testing.T) *pushsql.Store {
			db, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return pushsql.New(db, sqldb.PostgreSQL)
		}, "--postgres-dsn", dsn, "--redis-url", redisURL, "--redis-prefix", "test-"+randomHex(4)+":", "--blob-dir", t.TempDir())
	})
}

func runPushCrash(t *testing.T, bin string, open func(t *testing.T) *pushsql.Store, storage ...string) {
	ctx := context.Background()
	fake := fcmtest.NewServer(t)
	creds := filepath.Join(t.TempDir(), "fcm-service-account.json")
	if err := os.WriteFile(creds, fake.Credentials(), 0o600); err != nil {
		t.Fatal(err)
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	env := childEnv(b64(k))
	port := freePort(t)
	issuer := "http://127.0.0.1:" + strconv.Itoa(port)
	args := append(storage, "--fcm-credentials", creds, "--fcm-endpoint", fake.URL(), "--push-lease", crashLease.String())
	hc := &http.Client{Timeout: 10 * time.Second}
	first := startNode(t, bin, "first", env, port, issuer, args...)
	first.waitReady(t, hc)

	// The node migrated the schema; the test enqueues beside it, as a
	// producer on the same database would.
	store := open(t)
	var msgs []*push.Message
	for c := range crashCitizens {
		citizen := "cit_crash_" + strconv.Itoa(c)
		if _, err := store.RegisterInstallation(ctx, &push.Installation{CitizenID: citizen, Platform: push.FCM,
			Token: "crash-token-" + strconv.Itoa(c), Locale: "vi"}); err != nil {
			t.Fatal(err)
		}
		for range crashPerCitizen {
			msgs = append(msgs, &push.Message{CitizenID: citizen, Kind: push.KindNotice})
		}
	}
	// Slow answers keep the first batch in flight; the fake records each
	// message on receipt, as FCM delivers what it received even if the
	// sender dies before the answer.
	fake.SetDelay(300 * time.Millisecond)
	if err := store.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(crashWait)
	for fake.MessageCount() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("FCM received %d messages in %s", fake.MessageCount(), crashWait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.kill()
	atCrash := fake.MessageCount()
	left, err := store.Depth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if left == 0 {
		t.Fatal("every message was recorded before the kill: the crash interrupted nothing")
	}

	fake.SetDelay(0)
	second := startNode(t, bin, "restarted", env, port, issuer, args...)
	second.waitReady(t, hc)
	deadline = time.Now().Add(crashWait)
	for {
		n, err := store.Depth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still not final %s after the restart", n, crashWait)
		}
		time.Sleep(100 * time.Millisecond)
	}

	got := map[string]int{}
	for _, m := range fake.Messages() {
		got[m.Data["message_id"]]++
	}
	twice := 0
	for _, m := range msgs {
		switch n := got[m.ID]; {
		case n == 0:
			t.Errorf("message %s was never delivered", m.ID)
		case n > 1:
			twice++
		}
		stored, err := store.GetMessage(ctx, m.CitizenID, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.State != push.StateAccepted {
			t.Errorf("message %s is %s, want accepted", m.ID, stored.State)
		}
	}
	if len(got) != len(msgs) {
		t.Errorf("FCM received %d distinct message ids, want %d", len(got), len(msgs))
	}
	t.Logf("%d messages; killed with %d received by FCM and %d not final; after the restart %d were delivered twice, %d sends in all",
		len(msgs), atCrash, left, twice, fake.MessageCount())
}
