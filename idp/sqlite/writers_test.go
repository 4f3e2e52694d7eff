package sqlite_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// TestInTx_ManyWritersNeverBusy: more writers than the pool has
// connections, each holding the write lock for a while after reading,
// keep the database busy for longer than busy_timeout (5 s) in all. Every
// transaction commits: the process's writers wait their turn in order
// instead of racing in SQLite's busy handler until one gives up with
// SQLITE_BUSY, and readers still get a connection meanwhile.
func TestInTx_ManyWritersNeverBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("holds the write lock for about 6 s")
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE counter (n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO counter (n) VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	const writers, each = 24, 10
	hold := 25 * time.Millisecond // writers*each*hold = 6 s > busy_timeout
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for range writers {
		wg.Go(func() {
			for range each {
				errs <- sqldb.InTx(ctx, db, sqldb.SQLite, "increment", func(q sqldb.Querier) error {
					var n int
					if err := q.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
						return err
					}
					time.Sleep(hold)
					_, err := q.ExecContext(ctx, `UPDATE counter SET n = $1`, n+1)
					return err
				})
			}
		})
	}
	// A reader is served while writers queue.
	readDone := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n int
		readDone <- db.QueryRowContext(rctx, `SELECT n FROM counter`).Scan(&n)
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a write transaction failed: %v", err)
		}
	}
	if err := <-readDone; err != nil {
		t.Errorf("a reader waited for the queued writers: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil || n != writers*each {
		t.Fatalf("counter = %d (%v), want %d: increments were lost", n, err, writers*each)
	}
}

// TestInTx_WaitEndsWithContext: a writer waiting for its turn gives up
// when its context ends, with an outage error, and the turn is not lost.
func TestInTx_WaitEndsWithContext(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	holding, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = sqldb.InTx(ctx, db, sqldb.SQLite, "hold", func(sqldb.Querier) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = sqldb.InTx(wctx, db, sqldb.SQLite, "wait", func(sqldb.Querier) error { return nil })
	if !sqldb.IsOutage(err) {
		t.Fatalf("waiting past the deadline: %v, want an outage error", err)
	}
	close(release)
	if err := sqldb.InTx(ctx, db, sqldb.SQLite, "after", func(sqldb.Querier) error { return nil }); err != nil {
		t.Fatalf("after the holder finished: %v", err)
	}
}

// TestInTx_PanicEndsTheTransaction: a panic inside fn (which the servers
// recover from) rolls back, so the write lock is not left held by a pooled
// connection and later writes go on.
func TestInTx_PanicEndsTheTransaction(t *testing.T) {
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (n INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = sqldb.InTx(ctx, db, sqldb.SQLite, "panics", func(q sqldb.Querier) error {
			if _, err := q.ExecContext(ctx, `INSERT INTO t (n) VALUES (1)`); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	for i := range 10 { // every pooled connection in turn
		if err := sqldb.InTx(ctx, db, sqldb.SQLite, "after", func(q sqldb.Querier) error {
			_, err := q.ExecContext(ctx, `INSERT INTO t (n) VALUES (2)`)
			return err
		}); err != nil {
			t.Fatalf("write %d after a panic: %v", i, err)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM t WHERE n = 1`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the panicking transaction's row: %d (%v), want rolled back", n, err)
	}
}

// TestEphemeral_WritesQueueWithTransactions: the ephemeral store's
// one-statement writes (logins, sessions, rate limits) wait for their turn
// beside long write transactions instead of failing with SQLITE_BUSY.
func TestEphemeral_WritesQueueWithTransactions(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps the database busy for about 6 s")
	}
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	st := sqlite.New(db)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = sqldb.InTx(ctx, db, sqldb.SQLite, "busy", func(sqldb.Querier) error {
					time.Sleep(20 * time.Millisecond)
					return nil
				})
			}
		})
	}
	var errs []error
	var mu sync.Mutex
	var writers sync.WaitGroup
	for i := range 15 {
		writers.Go(func() {
			err := st.Set(ctx, "k"+strconv.Itoa(i), []byte("v"), time.Minute)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("an ephemeral write failed beside busy transactions: %v", err)
		}
	}
}
