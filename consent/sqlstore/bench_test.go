package sqlstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// BenchmarkAppend measures log appends (each its own transaction, with
// the chain head locked), spread over many citizens and on one citizen
// (every append waiting for the previous), beside a bare one-row INSERT
// on the same database for the ratio.
func BenchmarkAppend(b *testing.B) {
	for _, be := range backends {
		for _, spread := range []int{1000, 1} {
			b.Run(fmt.Sprintf("%s/citizens=%d", be.name, spread), func(b *testing.B) {
				s := open(b, be.open)
				var n atomic.Int64
				b.SetParallelism(16)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := n.Add(1)
						e := &consent.Entry{ID: consent.NewID("log"), CitizenID: fmt.Sprint("cit_", i%int64(spread)), At: time.Now(),
							Actor: consent.Actor{Agency: "BYT", ClientID: "his"}, Channel: consent.ChannelBroker, Items: []string{"name", "birthdate"},
							Purpose: "kham-benh", Basis: consent.BasisConsent, ConsentID: "cns_x", Outcome: consent.OutcomeReleased}
						if err := s.Append(b.Context(), e); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
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
