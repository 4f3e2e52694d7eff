package sqlstore_test

import (
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/consenttest"
)

// BenchmarkAppend measures log appends (each its own transaction, with
// the chain head locked), spread over many citizens and on one citizen
// (every append waiting for the previous), beside a bare one-row INSERT
// on the same database for the ratio. On PostgreSQL it also reports the
// share of the chain-head updates made HOT (hot/upd): an update that
// changes an indexed column (or one an index predicate reads) writes new
// index entries instead.
func BenchmarkAppend(b *testing.B) {
	for _, be := range backends {
		for _, spread := range []int{1000, 1} {
			b.Run(fmt.Sprintf("%s/citizens=%d", be.name, spread), func(b *testing.B) {
				db, d := be.open(b)
				s := migrated(b, db, d)
				var n atomic.Int64
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						e := &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("cit_", i%int64(spread)), At: time.Now(),
							Actor: consent.Actor{Agency: "BYT", ClientID: "his"}, Channel: consent.ChannelBroker, Items: []string{"name", "birthdate"},
							Purpose: "kham-benh", Basis: consent.BasisCitizenRequest, Outcome: consent.OutcomeReleased}
						if err := s.Append(b.Context(), e); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
				if be.name == "postgres" {
					b.StopTimer()
					reportHOT(b, db, int64(b.N))
				}
			})
		}
		b.Run(be.name+"/bare-insert", func(b *testing.B) {
			db, _ := be.open(b)
			if _, err := db.ExecContext(b.Context(), `CREATE TABLE bench_rows (id TEXT PRIMARY KEY, at BIGINT NOT NULL, body TEXT NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := db.ExecContext(b.Context(), `INSERT INTO bench_rows (id, at, body) VALUES ($1, $2, $3)`,
						consent.NewID("row"), time.Now().UnixMilli(), `["name","birthdate"]`); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inserts/s")
		})
	}
}

// reportHOT reports the share of the chain-head updates PostgreSQL made
// heap-only (n_tup_hot_upd over n_tup_upd), once the statistics of the n
// updates are in: the pool's idle connections are closed, and a backend
// flushes its statistics as it exits.
func reportHOT(b *testing.B, db *sql.DB, n int64) {
	b.Helper()
	db.SetMaxIdleConns(0)
	var upd, hot int64
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := db.QueryRowContext(b.Context(), `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
			WHERE schemaname = current_schema() AND relname = 'consent_chain_heads'`).Scan(&upd, &hot); err != nil {
			b.Fatal(err)
		}
		if upd >= n {
			break
		}
	}
	if upd == 0 {
		b.Logf("no chain-head update counted yet (%d appends)", n)
		return
	}
	b.ReportMetric(float64(hot)/float64(upd), "hot/upd")
}

// BenchmarkCheckpointFewChanges measures one checkpoint when a large
// number of citizens have committed chain heads and only a few moved
// since: what the checkpointer's tick costs on a big, quiet platform. The
// cost should follow the heads that moved, not the citizens.
func BenchmarkCheckpointFewChanges(b *testing.B) {
	const changed = 100
	for _, be := range backends {
		for _, citizens := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/citizens=%d/changed=%d", be.name, citizens, changed), func(b *testing.B) {
				db, d := be.open(b)
				s := migrated(b, db, d)
				ctx := b.Context()
				// Seed the heads by hand (appending 100k entries one by
				// one would take minutes), then commit them all once.
				hash := make([]byte, 32)
				for from := 0; from < citizens; from += 500 {
					var (
						q    strings.Builder
						args []any
					)
					q.WriteString(`INSERT INTO consent_chain_heads (citizen_id, seq, hash, pending) VALUES `)
					for i := from; i < min(from+500, citizens); i++ {
						if i > from {
							q.WriteString(", ")
						}
						args = append(args, fmt.Sprintf("cit_%07d", i), hash)
						fmt.Fprintf(&q, "($%d, 1, $%d, TRUE)", len(args)-1, len(args))
					}
					if _, err := db.ExecContext(ctx, q.String(), args...); err != nil {
						b.Fatal(err)
					}
				}
				signer, verifier := consenttest.Keys(b, "bench")
				cp := &consent.Checkpointer{Store: s, Signer: signer, Verifier: verifier, Batch: citizens}
				if c, err := cp.Commit(ctx); err != nil || c == nil || c.Size != int64(citizens) {
					b.Fatalf("seed checkpoint: %+v, %v", c, err)
				}
				cp.Batch = 0
				next := 0
				b.ResetTimer()
				for b.Loop() {
					b.StopTimer()
					for range changed {
						if _, err := db.ExecContext(ctx, `UPDATE consent_chain_heads SET seq = seq + 1,
							pending_since = CASE WHEN pending THEN pending_since ELSE $2 END, pending = TRUE WHERE citizen_id = $1`,
							fmt.Sprintf("cit_%07d", next%citizens), time.Now().UnixMilli()); err != nil {
							b.Fatal(err)
						}
						next += citizens/changed + 1
					}
					b.StartTimer()
					if c, err := cp.Commit(ctx); err != nil || c == nil {
						b.Fatalf("checkpoint: %+v, %v", c, err)
					}
				}
			})
		}
	}
}
