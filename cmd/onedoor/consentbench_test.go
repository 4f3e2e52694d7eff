package main

// BenchmarkDataRequest measures the data broker end to end on PostgreSQL
// (with Redis, the deployment at scale), over real HTTP on loopback with
// the load generator in the same process:
//
//	go test -run NONE -bench DataRequest -benchtime 1x ./cmd/onedoor
//
// Each request is POST /agency/v1/data-requests by personal id: the agency
// token check (cached signature, deny list, live client lookup), the
// consent check (the client's live record for the purpose), the register
// read (the citizen row, by personal id and by subject), and the access-log
// append (the citizen's chain head locked, one entry inserted, the head
// moved, in one transaction). Requests spread over 1,000 citizens, each with
// a consent, so appends contend the way many citizens' do. In the same run,
// on the same connection pool and at the same concurrency, the benchmark
// measures a bare single-row INSERT (autocommit) into a copy of the log
// table with its indexes, and reports the ratio (goal: >= 1,000 data
// requests a second; the ratio says how close to the database's floor).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
)

const benchCitizens = 1000

// brokerBench is OneDoor on PostgreSQL and Redis with benchCitizens
// citizens, each of whom consented to a private_key_jwt client of
// T-UBND-HN: its API client, the citizens' subjects and one request body
// per citizen.
type brokerBench struct {
	e      *testEnv
	broker *apiClient
	client string
	ids    []string
	bodies [][]byte
}

func newBrokerBench(b *testing.B) *brokerBench {
	base, redisURL := os.Getenv("ONEDOOR_TEST_POSTGRES_DSN"), os.Getenv("ONEDOOR_TEST_REDIS_URL")
	if base == "" || redisURL == "" {
		b.Skip("ONEDOOR_TEST_POSTGRES_DSN and ONEDOOR_TEST_REDIS_URL not set")
	}
	dsn, key := freshSchema(b, base), sharedMasterKey(b)
	m := newTestMainLogging(b, io.Discard, slog.LevelError, func(c *Config) {
		c.PostgresDSN, c.RedisURL, c.MasterKeyFile = dsn, redisURL, key
		c.APIAgencyRateLimit, c.APIDataRequestRateLimit = 1<<30, 1<<30
	})
	bb := &brokerBench{e: &testEnv{t: b, m: m, issuer: m.Issuer}}
	ctx := context.Background()
	seedAgencies(b, m)
	recs := make([]citizenRecord, benchCitizens)
	for i := range recs {
		recs[i] = citizenRecord{PersonalID: fmt.Sprintf("%012d", 500000000000+i), FamilyName: "Nguyễn", GivenName: fmt.Sprintf("Văn Thử %d", i),
			Birthdate: "1990-01-01", Gender: "male", Address: "Hà Nội (thử)"}
	}
	if err := m.ImportCitizens(ctx, recs); err != nil {
		b.Fatal(err)
	}
	bb.broker, bb.client = bb.e.brokerAPI(b, "T-UBND-HN")
	for _, r := range recs {
		c, err := m.Store.GetCitizenByPersonalID(ctx, r.PersonalID)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := m.Consent.Grant(ctx, &consent.Record{CitizenID: c.ID, ClientID: bb.client, Agency: "T-UBND-HN", Recipient: "Broker",
			Purpose: consent.Purpose{Code: "benefit-check", Text: "Kiểm tra (thử)"}, Items: []string{"name", "birthdate", "address"},
			Method: consent.MethodEIDApp, Evidence: "bench"}); err != nil {
			b.Fatal(err)
		}
		bb.ids = append(bb.ids, c.ID)
		bb.bodies = append(bb.bodies, dataRequest(r.PersonalID, "benefit-check", "name", "birthdate", "address"))
	}
	return bb
}

func BenchmarkDataRequest(b *testing.B) {
	bb := newBrokerBench(b)
	m, ctx := bb.e.m, context.Background()
	if _, err := m.DB.ExecContext(ctx, `CREATE TABLE bench_log (LIKE consent_log INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	u := "http://" + m.APIAddr + "/agency/v1/data-requests"
	// Warm up: connections, the token cache, the client cache.
	postRate(b, u, bb.broker.token, bb.bodies, 32, time.Second)
	conc := 32
	if n, err := strconv.Atoi(os.Getenv("ONEDOOR_BENCH_CONC")); err == nil && n > 0 {
		conc = n
	}
	for b.Loop() {
		ins := insertRate(b, m, conc, 5*time.Second)
		got := postRate(b, u, bb.broker.token, bb.bodies, conc, 5*time.Second)
		b.ReportMetric(got, "data-req/s")
		b.ReportMetric(ins, "insert/s")
		b.ReportMetric(got/ins, "ratio")
	}
}

// postRate runs conc closed-loop callers for d, each POSTing the next
// body, and returns the rate of 200 answers; anything else fails.
func postRate(b *testing.B, u, token string, bodies [][]byte, conc int, d time.Duration) float64 {
	c := benchClient(conc)
	defer c.CloseIdleConnections()
	var n, next atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				body := bodies[int(next.Add(1))%len(bodies)]
				req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept-Encoding", "identity")
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("data request: %d %s", resp.StatusCode, raw)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// insertRate runs conc callers inserting one log-shaped row each per
// statement (autocommit) into bench_log, on the server's own pool, for d.
func insertRate(b *testing.B, m *Main, conc int, d time.Duration) float64 {
	ctx := context.Background()
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	hash := bytes.Repeat([]byte{7}, 32)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				_, err := m.DB.ExecContext(ctx, `INSERT INTO bench_log (id, citizen_id, seq, at, agency, client_id, operator, channel, items,
					purpose, consent_id, basis, law, outcome, reason, prev, hash, flagged_at, flag_note)
					VALUES ($1, $2, $3, $4, $5, $6, '', $7, $8, $9, $10, $11, '', $12, '', $13, $14, NULL, '')`,
					consent.NewID("log"), fmt.Sprintf("cit-%d", w), i+1, time.Now().UnixMilli(), "T-UBND-HN", "broker", string(consent.ChannelBroker),
					`["name","birthdate","address"]`, "benefit-check", "cns_bench", string(consent.BasisConsent), string(consent.OutcomeReleased), hash, hash)
				if err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

// BenchmarkDataRequest_Stages takes a data request apart, in process (no
// HTTP), with 32 callers over the same 1,000 citizens: the citizen read,
// the consent check, the log append alone, and consent.Service.Fetch
// (consent check, register read, append), each for 3 s.
func BenchmarkDataRequest_Stages(b *testing.B) {
	bb := newBrokerBench(b)
	m, ids, ctx := bb.e.m, bb.ids, context.Background()
	reg := idp.Registry{Citizens: m.Store}
	stage := func(name string, f func(i int) error) {
		var n, next atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(3 * time.Second)
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if err := f(int(next.Add(1)) % len(ids)); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(n.Load())/3, name+"/s")
	}
	for b.Loop() {
		stage("citizen-read", func(i int) error { _, err := m.Store.GetCitizen(ctx, ids[i]); return err })
		stage("consent-check", func(i int) error {
			_, err := m.ConsentStore.LiveRecord(ctx, ids[i], bb.client, "benefit-check")
			return err
		})
		stage("append", func(i int) error {
			_, err := m.Consent.Log(ctx, consent.Request{CitizenID: ids[i], Channel: consent.ChannelBroker, Purpose: "benefit-check",
				Items: []string{"name"}}, &consent.Decision{Basis: consent.BasisConsent}, consent.OutcomeReleased)
			return err
		})
		stage("fetch", func(i int) error {
			_, _, err := m.Consent.Fetch(ctx, reg, consent.Request{CitizenID: ids[i], Actor: consent.Actor{Agency: "T-UBND-HN", ClientID: bb.client},
				Channel: consent.ChannelBroker, Purpose: "benefit-check", Items: []string{"name", "birthdate", "address"}})
			return err
		})
	}
}
