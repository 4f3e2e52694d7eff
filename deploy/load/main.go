// Command load is a small load generator for a OneDoor identity provider on
// this machine. It drives one endpoint for a fixed time with a fixed number of
// concurrent keep-alive clients and prints requests per second, latency
// percentiles and error counts:
//
//	go run ./deploy/load -mode client_credentials -client-id ID -secret S -c 32 -d 10s
//	go run ./deploy/load -mode private_key_jwt    -client-id ID -key key.pem
//	go run ./deploy/load -mode introspection      -client-id ID -secret S
//	go run ./deploy/load -mode code_exchange      -client-id ID -secret S \
//	    -personal-id 000000000001 -activation-code XXXXX-XXXXX
//
// code_exchange first enrolls a reference eID app (idp/eid/eidapp) with the
// activation code from `onedoor citizen activate`, logs a browser in once,
// approved in the app, and then mints codes through single sign-on for as
// long as -d (each /authorize with the session cookie redirects straight to
// the client with a code). Only the exchanges are timed.
//
// `load -serve-bare 127.0.0.1:18082 -client-id ID -secret S` serves the bare
// baseline (bare.go): a net/http token endpoint doing only what a
// client_credentials answer needs, for OneDoor's rate to be reported as a
// ratio to it.
//
// `load -gen-key key.pem` writes a new P-256 key for private_key_jwt and
// prints its public JSON Web Key Set, for `onedoor client create --jwks`.
//
// The target must be on loopback: this is a benchmark tool, not a way to
// load someone else's server. Every loop is bounded by -d and -n.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

// Modes.
const (
	modeClientCredentials = "client_credentials"
	modePrivateKeyJWT     = "private_key_jwt"
	modeCodeExchange      = "code_exchange"
	modeIntrospection     = "introspection"
)

type options struct {
	issuer, clientID, secret, mode   string
	concurrency                      int
	duration                         time.Duration
	maxRequests                      int
	keyFile, kid, scope, redirectURI string
	personalID, activationCode       string
	appHome                          string
}

func main() {
	var o options
	var genKey, bareAddr string
	var ao apiOptions
	flag.StringVar(&ao.file, "api", "", "mobile API mode: the hold file a held BenchmarkMobileAPI_* wrote (see api.go)")
	flag.StringVar(&ao.targets, "api-targets", "", "mobile API mode: comma-separated targets of the hold file (default static,home,search,static_search: those present)")
	flag.IntVar(&ao.conns, "api-conns", 32, "mobile API mode: closed-loop callers for the maximum rate")
	flag.IntVar(&ao.workers, "api-workers", 128, "mobile API mode: open-loop senders (and connections)")
	flag.DurationVar(&ao.satDur, "api-max-d", 5*time.Second, "mobile API mode: timed closed-loop phase")
	flag.DurationVar(&ao.openDur, "api-d", 10*time.Second, "mobile API mode: timed open-loop phase")
	flag.DurationVar(&ao.warmup, "api-warmup", time.Second, "mobile API mode: untimed warm-up before each phase")
	flag.Float64Var(&ao.fraction, "api-fraction", 0.5, "mobile API mode: open-loop rate as a fraction of the maximum")
	flag.StringVar(&ao.rateFrom, "api-rate-from", "", "mobile API mode: take every target's open-loop rate from this target's maximum (default: each its own)")
	flag.IntVar(&ao.runs, "api-runs", 3, "mobile API mode: runs (the table gives their median)")
	flag.StringVar(&o.issuer, "issuer", "http://localhost:18080", "issuer URL of the OneDoor under test (loopback only)")
	flag.StringVar(&o.clientID, "client-id", "", "client id")
	flag.StringVar(&o.secret, "secret", "", "client secret (client_secret_basic)")
	flag.StringVar(&o.mode, "mode", modeClientCredentials, "client_credentials, private_key_jwt, code_exchange or introspection")
	flag.IntVar(&o.concurrency, "c", 32, "concurrent clients")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "duration of the timed phase (and at most of code minting)")
	flag.IntVar(&o.maxRequests, "n", 2_000_000, "upper bound on timed requests")
	flag.StringVar(&o.keyFile, "key", "", "PKCS#8 PEM private key of the client (private_key_jwt)")
	flag.StringVar(&o.kid, "kid", "load-1", "kid of the client's key (private_key_jwt)")
	flag.StringVar(&o.scope, "scope", "", `scope to request (default "registry.read", or "openid profile" for code_exchange)`)
	flag.StringVar(&o.redirectURI, "redirect-uri", "http://127.0.0.1:9/callback", "the client's registered redirect URI (code_exchange)")
	flag.StringVar(&o.personalID, "personal-id", "000000000001", "citizen whose eID app logs in (code_exchange)")
	flag.StringVar(&o.activationCode, "activation-code", "", "activation code from `onedoor citizen activate` (code_exchange; not needed when -app-home is already enrolled)")
	flag.StringVar(&o.appHome, "app-home", "", "eID app home directory (code_exchange; default: a temporary one)")
	flag.StringVar(&genKey, "gen-key", "", "write a new P-256 private key to this file, print its JWKS and exit")
	flag.StringVar(&bareAddr, "serve-bare", "", "serve the bare client_credentials baseline on this loopback ip:port until interrupted")
	flag.Parse()

	if bareAddr != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serveBare(ctx, bareAddr, o.clientID, o.secret); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}

	if ao.file != "" {
		ao.maxRequests = o.maxRequests
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if ao.runs < 1 || ao.conns < 1 || ao.workers < 1 || ao.fraction <= 0 || ao.satDur <= 0 || ao.openDur <= 0 || ao.warmup <= 0 {
			fmt.Fprintln(os.Stderr, "load: -api-runs, -api-conns, -api-workers, -api-fraction and the durations must be positive")
			os.Exit(2)
		}
		if err := runAPI(ctx, ao, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}

	if genKey != "" {
		if err := generateKey(genKey, o.kid, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
	res.print(os.Stdout)
	if res.OK == 0 {
		os.Exit(1)
	}
}

// checkLoopback refuses any target that is not on this machine.
func checkLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	h := u.Hostname()
	if h == "localhost" {
		return u, nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return u, nil
	}
	return nil, fmt.Errorf("refusing %q: the load generator only targets loopback (localhost, 127.0.0.0/8, ::1)", raw)
}

func validate(o *options) error {
	var probs []string
	if _, err := checkLoopback(o.issuer); err != nil {
		probs = append(probs, err.Error())
	}
	o.issuer = strings.TrimRight(o.issuer, "/")
	if o.clientID == "" {
		probs = append(probs, "-client-id is required")
	}
	switch o.mode {
	case modeClientCredentials, modeIntrospection, modeCodeExchange:
		if o.secret == "" {
			probs = append(probs, "-secret is required for "+o.mode)
		}
	case modePrivateKeyJWT:
		if o.keyFile == "" {
			probs = append(probs, "-key is required for private_key_jwt")
		}
	default:
		probs = append(probs, fmt.Sprintf("-mode %q: want client_credentials, private_key_jwt, code_exchange or introspection", o.mode))
	}
	if o.mode == modeCodeExchange {
		if _, err := checkLoopback(o.redirectURI); err != nil {
			probs = append(probs, "-redirect-uri: "+err.Error())
		}
	}
	if o.concurrency < 1 || o.concurrency > 1024 {
		probs = append(probs, "-c must be between 1 and 1024")
	}
	if o.duration <= 0 || o.duration > 10*time.Minute {
		probs = append(probs, "-d must be positive and at most 10m")
	}
	if o.maxRequests < 1 {
		probs = append(probs, "-n must be positive")
	}
	if o.scope == "" {
		o.scope = "registry.read"
		if o.mode == modeCodeExchange {
			o.scope = "openid profile"
		}
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// result is what one run measured.
type result struct {
	Mode        string
	Concurrency int
	Elapsed     time.Duration
	OK          int
	Errors      map[string]int
	Latencies   []time.Duration // sorted, successful and failed requests
	Note        string
}

func (r *result) total() int {
	n := r.OK
	for _, c := range r.Errors {
		n += c
	}
	return n
}

func (r *result) percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies)) * p)
	if i >= len(r.Latencies) {
		i = len(r.Latencies) - 1
	}
	return r.Latencies[i]
}

func (r *result) print(w io.Writer) {
	secs := r.Elapsed.Seconds()
	nerr := r.total() - r.OK
	fmt.Fprintf(w, "mode %s, %d clients, %.1fs: %d requests, %d ok, %d errors\n", r.Mode, r.Concurrency, secs, r.total(), r.OK, nerr)
	fmt.Fprintf(w, "  %.0f req/s (%.0f ok/s), latency p50 %.2f ms, p99 %.2f ms\n",
		float64(r.total())/secs, float64(r.OK)/secs, ms(r.percentile(0.50)), ms(r.percentile(0.99)))
	if nerr > 0 {
		keys := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  errors: %s × %d\n", k, r.Errors[k])
		}
	}
	if r.Note != "" {
		fmt.Fprintf(w, "  note: %s\n", r.Note)
	}
	// One machine-readable line for scripts.
	fmt.Fprintf(w, "RESULT mode=%s c=%d seconds=%.2f requests=%d ok=%d errors=%d req_per_s=%.1f ok_per_s=%.1f p50_ms=%.2f p99_ms=%.2f\n",
		r.Mode, r.Concurrency, secs, r.total(), r.OK, nerr, float64(r.total())/secs, float64(r.OK)/secs, ms(r.percentile(0.50)), ms(r.percentile(0.99)))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// newHTTPClient keeps one connection per worker alive and never follows a
// redirect (so nothing can lead the generator off loopback).
func newHTTPClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	// Checked again at dial time, whatever "localhost" resolves to.
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: not loopback", address)
			}
			return nil
		}}
	tr.DialContext = d.DialContext
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	return &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// requestFunc builds the i-th timed request; ok says whether there is one.
type requestFunc func(i int) (req *http.Request, ok bool, err error)

func run(ctx context.Context, o options) (*result, error) {
	if err := validate(&o); err != nil {
		return nil, err
	}
	hc := newHTTPClient(o.concurrency)
	defer hc.Transport.(*http.Transport).CloseIdleConnections()
	tokenURL, introspectURL := o.issuer+"/token", o.issuer+"/introspect"
	form := func(target string, v url.Values, basic bool) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(basicEscape(o.clientID), basicEscape(o.secret))
		}
		return req
	}
	res := &result{Mode: o.mode, Concurrency: o.concurrency}
	var next requestFunc
	switch o.mode {
	case modeClientCredentials:
		v := url.Values{"grant_type": {"client_credentials"}, "scope": {o.scope}}
		next = func(int) (*http.Request, bool, error) { return form(tokenURL, v, true), true, nil }
	case modePrivateKeyJWT:
		key, err := readKey(o.keyFile)
		if err != nil {
			return nil, err
		}
		// Each request needs a fresh assertion (its jti is single use); the
		// client-side signature is part of what a real client pays.
		next = func(int) (*http.Request, bool, error) {
			a, err := assertion(key, o.kid, o.clientID, tokenURL)
			if err != nil {
				return nil, false, err
			}
			return form(tokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {o.scope}, "client_id": {o.clientID},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}, false), true, nil
		}
	case modeIntrospection:
		tok, err := accessToken(ctx, hc, form(tokenURL, url.Values{"grant_type": {"client_credentials"}, "scope": {o.scope}}, true))
		if err != nil {
			return nil, err
		}
		v := url.Values{"token": {tok}}
		next = func(int) (*http.Request, bool, error) { return form(introspectURL, v, true), true, nil }
	case modeCodeExchange:
		codes, note, err := mintCodes(ctx, hc, o)
		if err != nil {
			return nil, err
		}
		res.Note = note
		verifier := codeVerifier
		next = func(i int) (*http.Request, bool, error) {
			if i >= len(codes) {
				return nil, false, nil
			}
			return form(tokenURL, url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]},
				"redirect_uri": {o.redirectURI}, "code_verifier": {verifier}}, true), true, nil
		}
	}
	// One untimed request, so a wrong secret fails at once with the reason.
	req, _, err := next(0)
	if err != nil {
		return nil, err
	}
	if status, body, err := send(hc, req); err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("first request: status %d, err %v: %.300s", status, err, body)
	}
	if err := drive(ctx, hc, o, next, res); err != nil {
		return nil, err
	}
	return res, nil
}

// basicEscape escapes a Basic credential (RFC 6749 2.3.1).
func basicEscape(s string) string { return url.QueryEscape(s) }

// send performs req and drains the body; the body is returned on failure.
func send(hc *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, body, err
}

// drive runs the timed phase: o.concurrency workers until o.duration has
// passed, o.maxRequests were sent or the request source is exhausted.
// Request 0 was the untimed check.
func drive(ctx context.Context, hc *http.Client, o options, next requestFunc, res *result) error {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var counter atomic.Int64
	counter.Store(1)
	var mu sync.Mutex
	res.Errors = map[string]int{}
	var firstErr error
	var lats [][]time.Duration
	var wg sync.WaitGroup
	var exhausted atomic.Bool
	start := time.Now()
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 4096)
			ok := 0
			errs := map[string]int{}
			defer func() {
				mu.Lock()
				lats = append(lats, mine)
				res.OK += ok
				for k, v := range errs {
					res.Errors[k] += v
				}
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				i := int(counter.Add(1) - 1)
				if i > o.maxRequests {
					return
				}
				req, more, err := next(i)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					cancel()
					return
				}
				if !more {
					exhausted.Store(true)
					return
				}
				t0 := time.Now()
				status, _, err := send(hc, req.WithContext(ctx))
				d := time.Since(t0)
				switch {
				case err != nil && ctx.Err() != nil:
					return // cut off by the end of the run: not counted
				case err != nil:
					errs["transport: "+shortErr(err)]++
				case status != http.StatusOK:
					errs[fmt.Sprintf("status %d", status)]++
				default:
					ok++
				}
				mine = append(mine, d)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Latencies = slices.Concat(lats...)
	slices.Sort(res.Latencies)
	if exhausted.Load() {
		res.Note = strings.TrimPrefix(res.Note+"; all minted codes were redeemed after "+res.Elapsed.Round(10*time.Millisecond).String()+" (rate is over that time)", "; ")
	}
	return firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func accessToken(ctx context.Context, hc *http.Client, req *http.Request) (string, error) {
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(body, &t); err != nil || resp.StatusCode != http.StatusOK || t.AccessToken == "" {
		return "", fmt.Errorf("client_credentials for an access token to introspect: status %d: %.300s", resp.StatusCode, body)
	}
	return t.AccessToken, nil
}

// private_key_jwt

func generateKey(path, kid string, out io.Writer) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the operator names the key file
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	jwks, err := json.MarshalIndent(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}}, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", jwks)
	return err
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	raw, err := os.ReadFile(path) //nolint:gosec // the operator names the key file
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(raw)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not a P-256 key (ES256)", path)
	}
	return ek, nil
}

func assertion(key *ecdsa.PrivateKey, kid, clientID, aud string) (string, error) {
	now := time.Now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer: clientID, Subject: clientID, Audience: jwt.ClaimStrings{aud}, ID: base64.RawURLEncoding.EncodeToString(jti[:]),
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
	})
	t.Header["kid"] = kid
	return t.SignedString(key)
}

// code_exchange

// codeVerifier is the PKCE verifier of every minted code; each code is still
// single use.
var codeVerifier = randomString(32)

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var (
	qrRE    = regexp.MustCompile(`id="eid-qr" data-payload="([^"]+)" data-status-url="([^"]+)"`)
	matchRE = regexp.MustCompile(`id="match-number">([0-9]{2})<`)
)

// mintCodes logs a browser in once through the eID app, then mints codes
// through single sign-on with o.concurrency workers for up to o.duration.
func mintCodes(ctx context.Context, hc *http.Client, o options) ([]string, string, error) {
	home := o.appHome
	if home == "" {
		dir, err := os.MkdirTemp("", "onedoor-load-eid-")
		if err != nil {
			return nil, "", err
		}
		defer os.RemoveAll(dir)
		home = dir
	}
	app, err := eidapp.Open(home)
	if err != nil {
		return nil, "", err
	}
	if e := app.Enrollment(); e == nil {
		if o.activationCode == "" {
			return nil, "", errors.New("code_exchange needs -activation-code (from `onedoor citizen activate --id " + o.personalID + " --level high`) or an enrolled -app-home")
		}
		if _, err := app.Enroll(ctx, o.issuer, o.personalID, o.activationCode, "load generator"); err != nil {
			return nil, "", fmt.Errorf("enroll the eID app: %w", err)
		}
	} else if e.IDP != o.issuer {
		return nil, "", fmt.Errorf("the eID app in %s is enrolled at %s, not %s", home, e.IDP, o.issuer)
	}
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: hc.Transport, Timeout: 30 * time.Second, CheckRedirect: hc.CheckRedirect}
	sum := sha256.Sum256([]byte(codeVerifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	authURL := func() string {
		return o.issuer + "/authorize?" + url.Values{
			"response_type": {"code"}, "client_id": {o.clientID}, "redirect_uri": {o.redirectURI},
			"scope": {o.scope}, "state": {randomString(12)}, "nonce": {randomString(12)},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"},
		}.Encode()
	}
	get := func(u string) (*http.Response, []byte, error) {
		if err := sameOrigin(u, o.issuer); err != nil {
			return nil, nil, err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := browser.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, body, err
	}
	codeFrom := func(u string) (string, error) {
		resp, body, err := get(u)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return "", fmt.Errorf("GET %s: status %d, want a redirect with a code: %.300s", redact(u), resp.StatusCode, body)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil {
			return "", err
		}
		if e := loc.Query().Get("error"); e != "" {
			return "", fmt.Errorf("authorization error %s: %s", e, loc.Query().Get("error_description"))
		}
		code := loc.Query().Get("code")
		if code == "" {
			return "", errors.New("redirect without a code")
		}
		return code, nil
	}

	// The one login that goes through the app.
	resp, page, err := get(authURL())
	if err != nil {
		return nil, "", err
	}
	m, n := qrRE.FindSubmatch(page), matchRE.FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil || n == nil {
		return nil, "", fmt.Errorf("authorize: status %d and no login page: %.300s", resp.StatusCode, page)
	}
	payload, statusURL := html.UnescapeString(string(m[1])), html.UnescapeString(string(m[2]))
	// The number the page shows, picked in the app as a citizen would.
	if _, err := app.Approve(ctx, payload, string(n[1]), false, nil); err != nil {
		return nil, "", fmt.Errorf("approve in the eID app: %w", err)
	}
	_, body, err := get(statusURL)
	if err != nil {
		return nil, "", err
	}
	var st struct {
		Status     string `json:"status"`
		RedirectTo string `json:"redirect_to"`
	}
	if err := json.Unmarshal(body, &st); err != nil || st.Status != "approved" || st.RedirectTo == "" {
		return nil, "", fmt.Errorf("login status after approval: %.300s", body)
	}
	first, err := codeFrom(st.RedirectTo)
	if err != nil {
		return nil, "", err
	}

	// Mint through single sign-on. Codes live a minute; the exchange phase
	// starts right after and lasts at most as long as this one.
	mctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var mu sync.Mutex
	codes := []string{first}
	var mintErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for mctx.Err() == nil {
				mu.Lock()
				full := len(codes) > o.maxRequests
				mu.Unlock()
				if full {
					return
				}
				c, err := codeFrom(authURL())
				mu.Lock()
				if err != nil {
					if mctx.Err() == nil && mintErr == nil {
						mintErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				codes = append(codes, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if mintErr != nil {
		return nil, "", fmt.Errorf("minting codes: %w", mintErr)
	}
	el := time.Since(start)
	return codes, fmt.Sprintf("minted %d codes in %s (%.0f/s) through single sign-on", len(codes), el.Round(10*time.Millisecond), float64(len(codes))/el.Seconds()), nil
}

// sameOrigin keeps the browser on the issuer's origin.
func sameOrigin(u, issuer string) error {
	a, err := url.Parse(u)
	if err != nil {
		return err
	}
	b, _ := url.Parse(issuer)
	if a.Scheme != b.Scheme || a.Host != b.Host {
		return fmt.Errorf("refusing to follow %s: not on the issuer's origin %s", redact(u), issuer)
	}
	return nil
}

// redact drops the query, which carries codes.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
