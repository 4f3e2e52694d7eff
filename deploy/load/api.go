package main

// The mobile API's latency goals (docs/benchmarks.md, "The mobile API"),
// measured from another process on another core: `load -api FILE` reads
// the targets a held benchmark wrote (cmd/onedoor's BenchmarkMobileAPI_*
// with ONEDOOR_BENCH_HOLD) and, for each, finds the maximum rate with
// closed-loop callers, then sends requests at a fixed fraction of it, open
// loop: request i is due at start + i/rate whatever the server does, and
// its latency counts from then, so a stall of the server delays every
// request due behind it (no coordinated omission). deploy/load/api.sh
// pins the server and this generator to separate cores.
//
// Each citizen request carries a fresh DPoP proof by the benchmark
// device's key, as the eID app sends. The proofs of a phase are signed
// before it starts, so the generator's core spends the phase on HTTP.

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/valyala/fasthttp"
)

// apiOptions are the -api mode's knobs.
type apiOptions struct {
	file        string
	targets     string // comma-separated names, in order ("": every one in the file)
	conns       int    // closed-loop callers for the maximum rate
	workers     int    // open-loop senders (and connections)
	satDur      time.Duration
	openDur     time.Duration
	warmup      time.Duration
	fraction    float64 // open-loop rate as a fraction of the maximum
	runs        int
	rateFrom    string // take every open-loop rate from this target's maximum ("": each its own)
	maxRequests int
}

// apiTarget is one URL of the hold file with how to authorize it.
type apiTarget struct {
	name, url string
	proofs    *proofSource // nil: no Authorization (the static handler)
	token     string
}

// apiRun is one target's figures in one run.
type apiRun struct {
	Max, Rate, Achieved   float64
	P50, P99, P999, PMax  time.Duration
	LagP99                time.Duration // how late the generator sent (p99): its own health
	Errors, SatErrors, OK int
	FirstErr              string
}

func runAPI(ctx context.Context, o apiOptions, w io.Writer) error {
	raw, err := os.ReadFile(o.file)
	if err != nil {
		return err
	}
	var hold map[string]string
	if err := json.Unmarshal(raw, &hold); err != nil {
		return fmt.Errorf("%s: %w", o.file, err)
	}
	// static_search is the search answer's bytes from memory: run at the
	// search's rate (-api-rate-from search) it shows the floor the machine
	// sets on any answer's latency at that rate.
	names := []string{"static", "home", "search", "static_search"}
	if o.targets != "" {
		names = strings.Split(o.targets, ",")
	}
	var key *ecdsa.PrivateKey
	if p := hold["dpop_key"]; p != "" {
		blk, _ := pem.Decode([]byte(p))
		if blk == nil {
			return errors.New("dpop_key is not PEM")
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return err
		}
		var ok bool
		if key, ok = k.(*ecdsa.PrivateKey); !ok {
			return errors.New("dpop_key is not an ECDSA key")
		}
	}
	var targets []apiTarget
	for _, n := range names {
		u := hold[n]
		if u == "" {
			continue
		}
		pu, err := checkLoopback(u)
		if err != nil {
			return err
		}
		t := apiTarget{name: n, url: u}
		if !strings.HasPrefix(n, "static") && hold["token"] != "" {
			if key == nil {
				return errors.New("the hold file has a token but no dpop_key")
			}
			base := hold["htu_base"]
			if base == "" {
				base = pu.Scheme + "://" + pu.Host
			}
			t.token = hold["token"]
			t.proofs = &proofSource{key: key, htu: base + pu.EscapedPath(), token: t.token}
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return fmt.Errorf("%s names none of %v", o.file, names)
	}
	if o.rateFrom != "" && !slices.ContainsFunc(targets, func(t apiTarget) bool { return t.name == o.rateFrom }) {
		// Otherwise every target would silently run at its own rate.
		return fmt.Errorf("-api-rate-from %s names no target that runs", o.rateFrom)
	}
	all := make(map[string][]apiRun)
	for run := 1; run <= o.runs; run++ {
		maxes, satBad := map[string]float64{}, map[string]int{}
		for _, t := range targets {
			maxes[t.name], satBad[t.name], err = saturate(ctx, o, t)
			if err != nil {
				return err
			}
		}
		for _, t := range targets {
			r := apiRun{Max: maxes[t.name], SatErrors: satBad[t.name]}
			base := r.Max
			if m, ok := maxes[o.rateFrom]; ok {
				base = m
			}
			r.Rate = math.Max(1, base*o.fraction)
			if err := openLoop(ctx, o, t, &r); err != nil {
				return err
			}
			fmt.Fprintf(w, "run %d %-13s max %8.0f req/s | open loop %7.0f req/s (achieved %7.0f): p50 %6.2f ms  p99 %6.2f ms  p99.9 %6.2f ms  max %6.2f ms  errors %d  generator lag p99 %.2f ms\n",
				run, t.name, r.Max, r.Rate, r.Achieved, ms(r.P50), ms(r.P99), ms(r.P999), ms(r.PMax), r.Errors+r.SatErrors, ms(r.LagP99))
			if r.FirstErr != "" {
				fmt.Fprintf(w, "  first error: %s\n", r.FirstErr)
			}
			all[t.name] = append(all[t.name], r)
		}
	}
	fmt.Fprintf(w, "\nmedian of %d runs (open loop at %.2f of the maximum, %s per phase, latency from each request's due time):\n", o.runs, o.fraction, o.openDur)
	fmt.Fprintf(w, "%-13s %10s %10s %9s %9s %9s %9s %7s %8s\n", "target", "max req/s", "rate", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "lag p99")
	for _, t := range targets {
		rs := all[t.name]
		med := func(f func(apiRun) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			sort.Float64s(v)
			return v[len(v)/2]
		}
		errs := 0
		for _, r := range rs {
			errs += r.Errors + r.SatErrors
		}
		fmt.Fprintf(w, "%-13s %10.0f %10.0f %9.2f %9.2f %9.2f %9.2f %7d %8.2f\n", t.name,
			med(func(r apiRun) float64 { return r.Max }), med(func(r apiRun) float64 { return r.Rate }),
			med(func(r apiRun) float64 { return ms(r.P50) }), med(func(r apiRun) float64 { return ms(r.P99) }),
			med(func(r apiRun) float64 { return ms(r.P999) }), med(func(r apiRun) float64 { return ms(r.PMax) }),
			errs, med(func(r apiRun) float64 { return ms(r.LagP99) }))
		fmt.Fprintf(w, "RESULT target=%s max_per_s=%.0f rate=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f errors=%d\n", t.name,
			med(func(r apiRun) float64 { return r.Max }), med(func(r apiRun) float64 { return r.Rate }),
			med(func(r apiRun) float64 { return ms(r.P50) }), med(func(r apiRun) float64 { return ms(r.P99) }),
			med(func(r apiRun) float64 { return ms(r.P999) }), errs)
	}
	return nil
}

// proofSource hands out DPoP proofs for one URL and token: from a batch
// signed ahead while it lasts, then signed on the spot.
type proofSource struct {
	key        *ecdsa.PrivateKey
	htu, token string
	batch      []string
	next       atomic.Int64
}

func (p *proofSource) sign() (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(p.token))
	claims := map[string]any{"jti": rand.Text(), "htm": "GET", "htu": p.htu, "iat": time.Now().Unix(),
		"ath": base64.RawURLEncoding.EncodeToString(sum[:])}
	return josejwt.Signed(sig).Claims(claims).Serialize()
}

// prepare signs n proofs for the next phase (they stay valid for the
// verifier's minute).
func (p *proofSource) prepare(n int) error {
	p.batch = make([]string, n)
	for i := range n {
		s, err := p.sign()
		if err != nil {
			return err
		}
		p.batch[i] = s
	}
	p.next.Store(0)
	return nil
}

func (p *proofSource) get() (string, error) {
	if i := p.next.Add(1) - 1; i < int64(len(p.batch)) {
		return p.batch[i], nil
	}
	return p.sign()
}

// apiClient keeps up to conns keep-alive connections to the target's
// loopback host.
func apiClient(u string, conns int) (*fasthttp.HostClient, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	return &fasthttp.HostClient{Addr: pu.Host, MaxConns: conns, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		MaxIdleConnDuration: time.Minute,
		Dial: func(addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("refusing to connect to %s: not loopback", addr)
			}
			return fasthttp.DialTimeout(addr, 5*time.Second)
		}}, nil
}

// get sends one GET and reports an error unless the answer is 200.
func (t apiTarget) get(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) error {
	req.Reset()
	resp.Reset()
	req.SetRequestURI(t.url)
	req.Header.Set("Accept-Encoding", "identity")
	if t.proofs != nil {
		proof, err := t.proofs.get()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "DPoP "+t.token)
		req.Header.Set("DPoP", proof)
	}
	if err := hc.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return fmt.Errorf("GET %s: %d %.200s", t.name, resp.StatusCode(), resp.Body())
	}
	return nil
}

// closedLoop runs conns callers back to back for d and returns what they
// completed.
func closedLoop(ctx context.Context, hc *fasthttp.HostClient, t apiTarget, conns int, d time.Duration) (ok, bad int, first error) {
	var nOK, nBad atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range conns {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for time.Now().Before(stop) && ctx.Err() == nil {
				if err := t.get(hc, req, resp); err != nil {
					nBad.Add(1)
					once.Do(func() { first = err })
					continue
				}
				nOK.Add(1)
			}
		})
	}
	wg.Wait()
	return int(nOK.Load()), int(nBad.Load()), first
}

// saturate returns the target's maximum rate: closed-loop callers for a
// warm-up, then for the timed phase with proofs signed ahead.
func saturate(ctx context.Context, o apiOptions, t apiTarget) (rate float64, bad int, err error) {
	hc, err := apiClient(t.url, o.conns)
	if err != nil {
		return 0, 0, err
	}
	defer hc.CloseIdleConnections()
	if t.proofs != nil {
		t.proofs.batch = nil
	}
	wok, _, first := closedLoop(ctx, hc, t, o.conns, o.warmup)
	if wok == 0 {
		return 0, 0, fmt.Errorf("%s: no request succeeded in the warm-up: %v", t.name, first)
	}
	if t.proofs != nil {
		// The warm-up signed on the spot; the server is at least this fast.
		n := min(o.maxRequests, int(2*float64(wok)/o.warmup.Seconds()*o.satDur.Seconds())+1000)
		if err := t.proofs.prepare(n); err != nil {
			return 0, 0, err
		}
	}
	ok, bad, first := closedLoop(ctx, hc, t, o.conns, o.satDur)
	if ctx.Err() != nil {
		return 0, 0, ctx.Err()
	}
	if first != nil {
		fmt.Fprintf(os.Stderr, "load: %s at the maximum rate: %d errors, the first: %v\n", t.name, bad, first)
	}
	return float64(ok) / o.satDur.Seconds(), bad, nil
}

// openLoop sends requests at r.Rate for o.openDur after o.warmup (not
// counted) and fills r's latencies, each counted from the request's due
// time.
func openLoop(ctx context.Context, o apiOptions, t apiTarget, r *apiRun) error {
	hc, err := apiClient(t.url, o.workers)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	interval := time.Duration(float64(time.Second) / r.Rate)
	total := int((o.warmup + o.openDur) / interval)
	if total > o.maxRequests {
		return fmt.Errorf("%s: %d requests exceed -n", t.name, total)
	}
	if t.proofs != nil {
		if err := t.proofs.prepare(total + 16); err != nil {
			return err
		}
	}
	type slot struct{ due time.Time }
	due := make(chan slot, total) // never blocks the schedule
	start := time.Now().Add(50 * time.Millisecond)
	lats := make([][]time.Duration, o.workers)
	lags := make([][]time.Duration, o.workers)
	var nBad atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for w := range o.workers {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for s := range due {
				sent := time.Now()
				err := t.get(hc, req, resp)
				end := time.Now()
				if s.due.Sub(start) < o.warmup {
					continue
				}
				if err != nil {
					nBad.Add(1)
					once.Do(func() { first = err })
				}
				// A failed request counts too, with its time.
				lats[w] = append(lats[w], end.Sub(s.due))
				lags[w] = append(lags[w], sent.Sub(s.due))
			}
		})
	}
	for i := range total {
		d := start.Add(time.Duration(i) * interval)
		if wait := time.Until(d); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		due <- slot{d}
	}
	close(due)
	wg.Wait()
	all, lag := slices.Concat(lats...), slices.Concat(lags...)
	if len(all) == 0 {
		return fmt.Errorf("%s: nothing measured", t.name)
	}
	slices.Sort(all)
	slices.Sort(lag)
	pct := func(v []time.Duration, p float64) time.Duration { return v[min(len(v)-1, int(float64(len(v))*p))] }
	r.P50, r.P99, r.P999, r.PMax = pct(all, 0.5), pct(all, 0.99), pct(all, 0.999), all[len(all)-1]
	r.LagP99 = pct(lag, 0.99)
	r.Errors = int(nBad.Load())
	r.OK = len(all) - r.Errors
	r.Achieved = float64(len(all)) / o.openDur.Seconds()
	if first != nil {
		r.FirstErr = first.Error()
	}
	return nil
}
