package main

// The push load test behind docs/benchmarks.md's memory and live-stream
// figures: a built onedoor binary (serve --demo) with 1,000 open
// /v1/events streams, SSE latency from an agency's decision to the
// citizen's open stream, and a burst of 10,000 queued pushes to the fake
// FCM. It measures and logs; it asserts no timing. Run it on demand:
//
//	ONEDOOR_LOAD=1 go test -count=1 -timeout 30m -run 'TestPushLoad' -v ./cmd/onedoor/

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/postgres"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/internal/sqldb"
	"github.com/onedoor/onedoor/push"
	"github.com/onedoor/onedoor/push/fcm/fcmtest"
	"github.com/onedoor/onedoor/push/sqlstore"
)

func TestPushLoad_SQLite(t *testing.T) { pushLoad(t, "", "") }

func TestPushLoad_PostgresRedis(t *testing.T) {
	if os.Getenv("ONEDOOR_LOAD") != "1" {
		t.Skip("a load test: set ONEDOOR_LOAD=1")
	}
	dsn, redisURL := scaleBackends(t)
	pushLoad(t, dsn, redisURL)
}

const (
	loadCitizens          = 200 // each with 5 streams (the per-citizen limit)
	loadStreamsPerCitizen = 5
	loadPushes            = 10_000
)

// memStatus reads a process's VmRSS and VmHWM in KiB.
func memStatus(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

func pushLoad(t *testing.T, dsn, redisURL string) {
	if os.Getenv("ONEDOOR_LOAD") != "1" {
		t.Skip("a load test: set ONEDOOR_LOAD=1")
	}
	ctx := context.Background()
	bin := buildOneDoor(t)
	fake := fcmtest.NewServer(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "fcm.json")
	if err := os.WriteFile(creds, fake.Credentials(), 0o600); err != nil {
		t.Fatal(err)
	}
	key := sharedMasterKey(t)
	dataDir := t.TempDir()
	idpPort, apiPort := freePort(t), freePort(t)
	issuer, apiURL := "http://127.0.0.1:"+strconv.Itoa(idpPort), "http://localhost:"+strconv.Itoa(apiPort)
	prefix := "load-" + randomHex(4) + ":"
	blobDir := t.TempDir()

	// Setup in process: citizens, their eID devices, API tokens, FCM
	// installations, a submitted application each and an agency's token.
	m := newTestMain(t, func(c *Config) {
		c.DataDir, c.MasterKeyFile = dataDir, key
		c.IDPAddr, c.Issuer, c.APIAddr, c.APIURL = "127.0.0.1:"+strconv.Itoa(idpPort), issuer, "127.0.0.1:"+strconv.Itoa(apiPort), apiURL
		c.PostgresDSN, c.RedisURL, c.RedisPrefix = dsn, redisURL, prefix
		if dsn != "" {
			c.BlobDir = blobDir
		}
		c.FCMCredentials, c.FCMEndpoint = creds, fake.URL()
		c.APICitizenRateLimit, c.APIAgencyRateLimit = 100_000, 100_000
	})
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	recs := make([]citizenRecord, loadCitizens)
	for i := range recs {
		recs[i] = citizenRecord{PersonalID: fmt.Sprintf("9%011d", i), FamilyName: "Tải", GivenName: "Thử " + strconv.Itoa(i),
			Birthdate: "1990-01-01", Gender: "male", Address: "1 Phố Mẫu, Hà Nội (địa chỉ giả)", PhoneNumber: fmt.Sprintf("+8491%07d", i)}
	}
	if err := m.ImportCitizens(ctx, recs); err != nil {
		t.Fatalf("import: %v", err)
	}
	seedAgencies(t, m)
	svc := e.agencyAPI(t, "T-BTP").must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-2.000488", []byte(pushService)).json(t)
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	type citizen struct {
		api   *apiClient
		id    string // the citizen's id in pushes (sub)
		appID string
	}
	cits := make([]*citizen, loadCitizens)
	setup := time.Now()
	var work sync.WaitGroup
	next := atomic.Int64{}
	for range 4 { // the setup is not what is measured: share it out
		work.Go(func() {
			for i := int(next.Add(1) - 1); i < loadCitizens; i = int(next.Add(1) - 1) {
				r := recs[i]
				api := e.citizenAPI(t, e.enroll(r.PersonalID, idp.LevelHigh))
				api.must(http.StatusCreated, http.MethodPost, "/v1/devices", []byte(`{"platform":"fcm","token":"load-`+strconv.Itoa(i)+`"}`))
				a := api.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svc["id"].(string)+`"}`)).json(t)
				c := &citizen{api: api, appID: a["id"].(string)}
				api.must(http.StatusOK, http.MethodPost, "/v1/applications/"+c.appID+"/submit", nil)
				ci, err := m.Store.GetCitizenByPersonalID(ctx, r.PersonalID)
				if err != nil {
					t.Error(err)
					return
				}
				c.id = ci.ID
				cits[i] = c
			}
		})
	}
	work.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("setup of %d citizens: %v", loadCitizens, time.Since(setup).Round(time.Second))
	_ = m.Close()

	// The server under test: the built binary.
	args := []string{"serve", "--demo", "--demo-rp-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)),
		"--data-dir", dataDir, "--master-key-file", key, "--idp-addr", "127.0.0.1:" + strconv.Itoa(idpPort),
		"--api-addr", "127.0.0.1:" + strconv.Itoa(apiPort), "--issuer", issuer, "--api-url", apiURL,
		"--fcm-credentials", creds, "--fcm-endpoint", fake.URL(), "--log-level", "warn",
		"--api-citizen-rate-limit", "100000", "--api-agency-rate-limit", "100000"}
	if dsn != "" {
		args = append(args, "--postgres-dsn", dsn, "--redis-url", redisURL, "--redis-prefix", prefix, "--blob-dir", blobDir)
	}
	n := &node{name: "load", url: issuer, out: &syncBuffer{}, done: make(chan struct{})}
	n.cmd = exec.Command(bin, args...)
	n.cmd.Dir = t.TempDir()
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("server output:\n%s", n.out)
		}
	})
	n.waitReady(t, http.DefaultClient)
	pid := n.cmd.Process.Pid
	time.Sleep(3 * time.Second)
	runtime.GC()
	idleRSS, idleHWM := memStatus(t, pid)

	// 1,000 streams. Each reader notes when each application's event
	// arrived and counts notifications.
	var (
		events  atomic.Int64
		mu      sync.Mutex
		arrived = map[string]time.Time{} // application id → first arrival
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	sctx, stop := context.WithCancel(ctx)
	var readers sync.WaitGroup
	t.Cleanup(func() { stop(); readers.Wait() })
	open := func(c *citizen) {
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, c.api.base+"/v1/events", nil)
		authorize(t, req, c.api.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("open a stream: %v", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			t.Fatalf("open a stream: %d", resp.StatusCode)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := readFrame(br); err != nil {
			t.Fatalf("first frame: %v", err)
		}
		readers.Go(func() {
			defer resp.Body.Close()
			for {
				lines, err := readFrame(br)
				if err != nil {
					return
				}
				now := time.Now()
				if !slices.Contains(lines, "event: notification") {
					continue
				}
				events.Add(1)
				for _, l := range lines {
					if d, ok := strings.CutPrefix(l, "data: "); ok {
						var ev struct {
							ApplicationID string `json:"application_id"`
						}
						if json.Unmarshal([]byte(d), &ev) == nil && ev.ApplicationID != "" {
							mu.Lock()
							if _, seen := arrived[ev.ApplicationID]; !seen {
								arrived[ev.ApplicationID] = now
							}
							mu.Unlock()
						}
					}
				}
			}
		})
	}
	for _, c := range cits {
		for range loadStreamsPerCitizen {
			open(c)
		}
	}
	streams := loadCitizens * loadStreamsPerCitizen
	time.Sleep(3 * time.Second)
	streamRSS, _ := memStatus(t, pid)

	// Latency: an agency's decision, sent over HTTP, to the event on the
	// citizen's open streams (the first of them to get it).
	var lat []time.Duration
	for _, c := range cits {
		body := []byte(`{"to":"needs_information","message":"Vui lòng bổ sung."}`)
		t0 := time.Now()
		hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+c.appID+"/transitions", body)
		deadline := time.Now().Add(pushWait)
		for {
			mu.Lock()
			at, ok := arrived[c.appID]
			mu.Unlock()
			if ok {
				lat = append(lat, at.Sub(t0))
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no event for %s", c.appID)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }

	// The burst: 10,000 pushes queued at once (50 per citizen), straight
	// into the outbox as a producer's transaction would.
	var db interface{ Close() error }
	var ps *sqlstore.Store
	if dsn != "" {
		pdb, err := postgres.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		db, ps = pdb, sqlstore.New(pdb, sqldb.PostgreSQL)
	} else {
		sdb, err := sqlite.Open(filepath.Join(dataDir, "onedoor.db"))
		if err != nil {
			t.Fatal(err)
		}
		db, ps = sdb, sqlstore.New(sdb, sqldb.SQLite)
	}
	defer db.Close()
	sent0 := fake.MessageCount()
	events0 := events.Load()
	msgs := make([]*push.Message, 0, loadPushes)
	for i := range loadPushes {
		c := cits[i%loadCitizens]
		msgs = append(msgs, &push.Message{CitizenID: c.id, Kind: push.KindNotice, AgencyCode: "T-UBND-HN",
			Title: push.Text{VI: "Thông báo", EN: "Notice"}, Body: "Tải thử"})
	}
	var peak atomic.Int64
	sampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-sampling:
				return
			case <-time.After(20 * time.Millisecond):
				if r, _ := memStatus(t, pid); int64(r) > peak.Load() {
					peak.Store(int64(r))
				}
			}
		}
	})
	start := time.Now()
	if err := ps.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for fake.MessageCount()-sent0 < loadPushes {
		if time.Now().After(deadline) {
			t.Fatalf("sent %d of %d pushes", fake.MessageCount()-sent0, loadPushes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	for events.Load()-events0 < loadPushes*loadStreamsPerCitizen && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(sampling)
	sampler.Wait()
	afterRSS, hwm := memStatus(t, pid)

	backend := "SQLite"
	if dsn != "" {
		backend = "PostgreSQL + Redis"
	}
	t.Logf("%s, %d CPUs: idle RSS %.1f MiB (HWM %.1f); %d open streams: RSS %.1f MiB, %.1f KiB per stream",
		backend, runtime.NumCPU(), float64(idleRSS)/1024, float64(idleHWM)/1024, streams, float64(streamRSS)/1024,
		float64(streamRSS-idleRSS)/float64(streams))
	t.Logf("SSE latency, decision POST sent → event on an open stream, %d samples at %d streams: p50 %v, p99 %v, max %v",
		len(lat), streams, pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	t.Logf("burst of %d pushes: all accepted by FCM in %v; %d of %d stream events received; peak RSS sampled %.1f MiB, VmHWM %.1f MiB, RSS after %.1f MiB",
		loadPushes, took.Round(time.Millisecond), events.Load()-events0, loadPushes*loadStreamsPerCitizen,
		float64(peak.Load())/1024, float64(hwm)/1024, float64(afterRSS)/1024)
}
