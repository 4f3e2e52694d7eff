package redis_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/redis"
)

// BenchmarkFanOut publishes events at a steady rate to 1,000 citizens with a
// live stream each, spread over two replicas, every event published on the
// replica that does not hold the stream. It reports the latency from
// Publish to receipt: p50-ms and p99-ms.
func BenchmarkFanOut(b *testing.B) {
	const citizens = 1000
	for _, rate := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("rate=%d/s", rate), func(b *testing.B) {
			prefix := uniquePrefix()
			quiet := redis.WithLogger(slog.New(slog.DiscardHandler))
			hubs := []*redis.Hub{
				newHub(b, newClient(b, "", ""), prefix, quiet),
				newHub(b, newClient(b, "", ""), prefix, quiet),
			}
			var (
				mu        sync.Mutex
				latencies []time.Duration
				received  atomic.Int64
				readers   sync.WaitGroup
			)
			ids := make([]string, citizens)
			for i := range ids {
				ids[i] = fmt.Sprint("citizen-", i)
				ch, unsub, err := hubs[i%2].Subscribe(context.Background(), ids[i])
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(unsub)
				readers.Go(func() {
					var mine []time.Duration
					for e := range ch {
						mine = append(mine, time.Since(e.CreatedAt))
						received.Add(1)
					}
					mu.Lock()
					latencies = append(latencies, mine...)
					mu.Unlock()
				})
			}

			interval := time.Second / time.Duration(rate)
			sent := int64(0)
			next := time.Now()
			for b.Loop() {
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				i := int(sent % citizens)
				e := push.Event{Seq: sent, MessageID: "m", Kind: push.KindResult, CreatedAt: time.Now()}
				if err := hubs[(i+1)%2].Publish(context.Background(), ids[i], e); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			b.StopTimer()
			deadline := time.Now().Add(guard)
			for received.Load() < sent && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			for _, h := range hubs {
				h.Close() // ends every stream, so the readers hand in their figures
			}
			readers.Wait()
			if got := int64(len(latencies)); got != sent {
				b.Fatalf("received %d events, want %d", got, sent)
			}
			slices.Sort(latencies)
			pct := func(p float64) float64 {
				return float64(latencies[int(p*float64(len(latencies)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
		})
	}
}
