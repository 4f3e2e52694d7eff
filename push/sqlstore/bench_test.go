package sqlstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/fcm"
	"github.com/onedoor/onedoor/push/fcm/fcmtest"
	"github.com/onedoor/onedoor/push/sqlstore"
)

// Run these with a fixed count, e.g.
//
//	go test -run '^$' -bench . -benchtime 20000x -count 3 ./push/sqlstore/
//
// Enqueue and RawInsert count one transaction per op and report msgs/s;
// their ratio on one backend, in one run, is what the outbox costs over
// the database's own insert rate. Dispatch counts one message per op.

// txSizes are messages per transaction: a status change enqueues one, a
// batch producer many.
var txSizes = []int{1, 100}

// producers is how many goroutines run transactions at once, as request
// handlers do. SQLite has one writer: one producer keeps it busy, and more
// only wait on busy_timeout, whose sleeps are not fair (eight producers of
// 100-message transactions starved one past the 5 s timeout).
var producers = map[string]int{"sqlite": 1, "postgres": 8}

// statusChange is a message of realistic size: what a status change of an
// application enqueues.
func statusChange(citizen string) *push.Message {
	return &push.Message{
		CitizenID: citizen, Kind: push.KindStatusChange,
		ServiceCode: "1.001234", AgencyCode: "UBND-HN", ApplicationID: "HS-2025-00012345", InboxMessageID: "inb_" + citizen,
		Title:    push.Text{VI: "Hồ sơ của bạn đã được tiếp nhận", EN: "Your application was received"},
		Body:     "Hồ sơ HS-2025-00012345 đã chuyển sang bước thẩm định. Kết quả dự kiến trong 5 ngày làm việc.",
		Priority: push.High, CollapseKey: "HS-2025-00012345", ExpiresAt: time.Now().Add(24 * time.Hour),
	}
}

func BenchmarkEnqueue(b *testing.B) {
	for _, be := range backends {
		for _, size := range txSizes {
			b.Run(fmt.Sprintf("%s/per-tx=%d", be.name, size), func(b *testing.B) {
				db, d := be.open(b)
				s := sqlstore.New(db, d)
				if err := s.Migrate(b.Context()); err != nil {
					b.Fatal(err)
				}
				benchTx(b, producers[be.name], size, func(ctx context.Context, i int) error {
					return sqldb.InTx(ctx, db, d, "enqueue", func(q sqldb.Querier) error {
						msgs := make([]*push.Message, size)
						for k := range msgs {
							msgs[k] = statusChange("cit_" + strconv.Itoa((i*size+k)%10000))
						}
						return s.EnqueueTx(ctx, q, msgs...)
					})
				})
			})
		}
	}
}

// BenchmarkRawInsert is Enqueue's baseline: the same rows, as plain
// INSERTs into a scratch copy of push_messages with the same indexes, in
// transactions of the same sizes: a statement per row, and (multi-row)
// one statement for the transaction's rows, as EnqueueTx writes them.
func BenchmarkRawInsert(b *testing.B) {
	for _, be := range backends {
		for _, bc := range []struct {
			size     int
			multiRow bool
		}{{1, false}, {100, false}, {100, true}} {
			name := fmt.Sprintf("%s/per-tx=%d", be.name, bc.size)
			if bc.multiRow {
				name += "/multi-row"
			}
			b.Run(name, func(b *testing.B) {
				db, d := be.open(b)
				if err := createRawTable(b.Context(), db, d); err != nil {
					b.Fatal(err)
				}
				rows := 1
				if bc.multiRow {
					rows = bc.size
				}
				stmt := rawInsert(d, rows)
				benchTx(b, producers[be.name], bc.size, func(ctx context.Context, i int) error {
					return sqldb.InTx(ctx, db, d, "raw insert", func(q sqldb.Querier) error {
						now := time.Now().UnixMilli()
						args := make([]any, 0, rows*16)
						for k := range bc.size {
							m := statusChange("cit_" + strconv.Itoa((i*bc.size+k)%10000))
							args = append(args, push.NewMessageID(), m.CitizenID, string(m.Kind), m.ServiceCode, m.AgencyCode,
								m.ApplicationID, m.InboxMessageID, m.Title.VI, m.Title.EN, m.Body, int(m.Priority), m.CollapseKey,
								m.ExpiresAt.UnixMilli(), now, now, now)
							if len(args) == cap(args) {
								if _, err := q.ExecContext(ctx, stmt, args...); err != nil {
									return err
								}
								args = args[:0]
							}
						}
						return nil
					})
				})
			})
		}
	}
}

// rawInsert returns an INSERT of rows rows into the scratch table, with
// parameters written as the store writes them (see Store.arg).
func rawInsert(d sqldb.Dialect, rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO bench_messages (id, citizen_id, kind, service_code, agency_code, application_id,
		inbox_message_id, title_vi, title_en, body, priority, collapse_key, expires_at, next_attempt_at, created_at,
		updated_at, state, attempts, claim_id, claimed_until, delivered, last_error) VALUES `)
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(")
		for c := range 16 {
			if c > 0 {
				b.WriteString(", ")
			}
			if d == sqldb.SQLite {
				b.WriteString("?")
			} else {
				b.WriteString("$" + strconv.Itoa(r*16+c+1))
			}
		}
		b.WriteString(", 'queued', 0, '', 0, '[]', '')")
	}
	return b.String()
}

// benchTx runs tx b.N times from workers goroutines and reports messages
// and transactions per second.
func benchTx(b *testing.B, workers, size int, tx func(ctx context.Context, i int) error) {
	b.Helper()
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
				if err := tx(b.Context(), i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*size)/sec, "msgs/s")
	b.ReportMetric(float64(b.N)/sec, "tx/s")
}

// createRawTable copies push_messages' shape and indexes from the
// migration, renamed.
func createRawTable(ctx context.Context, db *sql.DB, d sqldb.Dialect) error {
	seq := `seq INTEGER PRIMARY KEY AUTOINCREMENT`
	if d == sqldb.PostgreSQL {
		seq = `seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY`
	}
	for _, stmt := range []string{
		`CREATE TABLE bench_messages (` + seq + `, id TEXT NOT NULL UNIQUE, citizen_id TEXT NOT NULL,
			kind TEXT NOT NULL, service_code TEXT NOT NULL, agency_code TEXT NOT NULL, application_id TEXT NOT NULL,
			inbox_message_id TEXT NOT NULL, title_vi TEXT NOT NULL, title_en TEXT NOT NULL, body TEXT NOT NULL,
			priority INTEGER NOT NULL, collapse_key TEXT NOT NULL, expires_at BIGINT NOT NULL, state TEXT NOT NULL,
			attempts INTEGER NOT NULL, next_attempt_at BIGINT NOT NULL, claim_id TEXT NOT NULL,
			claimed_until BIGINT NOT NULL, delivered TEXT NOT NULL, last_error TEXT NOT NULL,
			created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
		`CREATE INDEX bench_messages_due ON bench_messages (next_attempt_at) WHERE state IN ('queued', 'sent', 'failed')`,
		`CREATE INDEX bench_messages_citizen ON bench_messages (citizen_id, seq)`,
		`CREATE INDEX bench_messages_final ON bench_messages (updated_at) WHERE state IN ('accepted', 'dead', 'skipped')`,
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create scratch table: %w", err)
		}
	}
	return nil
}

// dispatchSettings are the Dispatcher settings compared; dispatchers is
// how many share the store (claim and record of one overlap the sends of
// another). noop also runs them with a provider that does nothing: the
// outbox's own ceiling, comparable with a job queue's no-op worker.
var dispatchSettings = []struct {
	dispatchers, batch, concurrency int
	noop                            bool
}{
	{1, push.DefaultBatch, push.DefaultConcurrency, true},
	{2, push.DefaultBatch, push.DefaultConcurrency, false},
	{2, 500, 128, true},
}

// BenchmarkDispatch enqueues b.N messages for b.N citizens, each with one
// FCM installation, then times Dispatchers draining them through the real
// FCM client to the fake (HTTP/2 over TLS, as FCM serves) in the same
// process, or to a provider that does nothing. Setup is outside the timer.
func BenchmarkDispatch(b *testing.B) {
	for _, be := range backends {
		for _, ds := range dispatchSettings {
			for _, provider := range []string{"fcm", "noop"} {
				if provider == "noop" && !ds.noop {
					continue
				}
				name := fmt.Sprintf("%s/%s/dispatchers=%d/batch=%d/concurrency=%d", be.name, provider, ds.dispatchers, ds.batch, ds.concurrency)
				b.Run(name, func(b *testing.B) {
					s := open(b, be.open)
					var (
						p    push.Provider
						sent func() int
					)
					if provider == "fcm" {
						srv := fcmtest.NewServer(b, fcmtest.WithTLS())
						c, err := fcm.New(fcm.Config{Credentials: srv.Credentials(), Endpoint: srv.URL(), HTTPClient: srv.Client()})
						if err != nil {
							b.Fatal(err)
						}
						// Take the OAuth token and open the connection first.
						if err := c.Send(b.Context(), push.Target{Platform: push.FCM, Token: "warm"}, &push.Notification{MessageID: "warm", Kind: "notice"}); err != nil {
							b.Fatal(err)
						}
						p, sent = c, func() int { return srv.MessageCount() - 1 }
					} else {
						n := &noopProvider{}
						p, sent = n, func() int { return int(n.sent.Load()) }
					}
					dispatch(b, s, p, ds.dispatchers, ds.batch, ds.concurrency)
					if got := sent(); got != b.N {
						b.Errorf("the provider took %d messages, want %d", got, b.N)
					}
				})
			}
		}
	}
}

func dispatch(b *testing.B, s *sqlstore.Store, p push.Provider, dispatchers, batch, concurrency int) {
	ctx := b.Context()
	seed(b, s, b.N)
	ts := &timedStore{OutboxStore: s}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.ResetTimer()
	var wg sync.WaitGroup
	for range dispatchers {
		d := &push.Dispatcher{Store: ts, Providers: map[push.Platform]push.Provider{push.FCM: p},
			Batch: batch, Concurrency: concurrency, Logger: logger}
		wg.Go(func() {
			// Run's loop, ending when nothing is due.
			for {
				n, err := d.RunOnce(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(ts.claim.Microseconds())/float64(b.N), "claim-µs/msg")
	b.ReportMetric(float64(ts.record.Microseconds())/float64(b.N), "record-µs/msg")
	if depth, err := s.Depth(ctx); err != nil || depth != 0 {
		b.Errorf("Depth() = %d, %v; want 0", depth, err)
	}
}

// noopProvider takes every message and does nothing.
type noopProvider struct{ sent atomic.Int64 }

func (*noopProvider) Platform() push.Platform { return push.FCM }

func (n *noopProvider) Send(context.Context, push.Target, *push.Notification) error {
	n.sent.Add(1)
	return nil
}

// timedStore sums the time spent in Claim and Record, to tell the store's
// share of a dispatch from the sends'.
type timedStore struct {
	push.OutboxStore
	mu            sync.Mutex
	claim, record time.Duration
}

func (t *timedStore) Claim(ctx context.Context, n int, lease time.Duration) ([]*push.Job, error) {
	start := time.Now()
	jobs, err := t.OutboxStore.Claim(ctx, n, lease)
	t.mu.Lock()
	t.claim += time.Since(start)
	t.mu.Unlock()
	return jobs, err
}

func (t *timedStore) Record(ctx context.Context, outs []push.Outcome) error {
	start := time.Now()
	err := t.OutboxStore.Record(ctx, outs)
	t.mu.Lock()
	t.record += time.Since(start)
	t.mu.Unlock()
	return err
}

// seed registers n citizens with one FCM installation each and enqueues
// one message for each, in batches.
func seed(b *testing.B, s *sqlstore.Store, n int) {
	b.Helper()
	ctx := b.Context()
	pad := strings.Repeat("x", 140) // FCM tokens are about 150 characters
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if _, err := s.RegisterInstallation(ctx, &push.Installation{CitizenID: "cit_" + strconv.Itoa(i),
					Platform: push.FCM, Token: "tok" + strconv.Itoa(i) + pad, Locale: "vi"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	for i := 0; i < n; i += 500 {
		msgs := make([]*push.Message, 0, 500)
		for k := i; k < min(i+500, n); k++ {
			msgs = append(msgs, statusChange("cit_"+strconv.Itoa(k)))
		}
		if err := s.Enqueue(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
}
