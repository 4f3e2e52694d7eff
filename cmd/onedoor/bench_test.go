package main

// Benchmarks of the token endpoint's hot paths over real HTTP on loopback,
// against a Main started on :0, per backend. They only run with -bench:
//
//	go test -run NONE -bench . -benchtime 2s ./cmd/onedoor
//
// With ONEDOOR_TEST_POSTGRES_DSN and ONEDOOR_TEST_REDIS_URL set, every
// endpoint benchmark also runs on PostgreSQL + Redis (a fresh schema each).
// BenchmarkClientCredentials/bare/secret_basic is the bare baseline of the
// load script in process: divide a backend's secret_basic req/s by it.
// Besides req/s and latency percentiles, each endpoint benchmark reports
// sign-ratio: its rate divided by the raw ES256 sign rate (golang-jwt, same
// GOMAXPROCS) measured once at the start of the same run, so figures from
// machines of different speed compare. docs/benchmarks.md has the goals.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

// benchParallelism times GOMAXPROCS is the number of concurrent clients
// (32 on 2 cores, as the load script's -c 32).
const benchParallelism = 16

// benchRedirectURI is where codes are sent; nothing listens there, the
// benchmark browser stops at the redirect.
const benchRedirectURI = "http://127.0.0.1:9/callback"

// BenchmarkES256Sign is the yardstick: golang-jwt signing an access-token
// sized claim set with ES256, on every core.
func BenchmarkES256Sign(b *testing.B) {
	benchES256Sign(b)
	b.ReportMetric(benchRate(b), "sign/s")
}

// BenchmarkES256Verify is golang-jwt verifying such a token.
func BenchmarkES256Verify(b *testing.B) {
	key := benchKey(b)
	tok, err := benchJWT(key)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var c benchClaims
			if _, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
				jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(benchRate(b), "verify/s")
}

func benchES256Sign(b *testing.B) {
	key := benchKey(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := benchJWT(key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchClaims resemble an access token's claims.
type benchClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	GrantID  string `json:"gid"`
}

func benchKey(b *testing.B) *ecdsa.PrivateKey {
	b.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return k
}

func benchJWT(key *ecdsa.PrivateKey) (string, error) {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, &benchClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "http://localhost:8080", Subject: "0123456789abcdef0123", ID: "Vh2aCMcW1cG3zWbHn0bEBw",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
		},
		ClientID: "0123456789abcdef01234567", Scope: "registry.read", GrantID: "4f0c1e9a-5b1d-4c9e-9a57-0d6b2b7c8e11",
	})
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = "es256-0123456789ab"
	return t.SignedString(key)
}

var benchSign struct {
	once sync.Once
	rate float64
	err  error
}

// es256SignRate measures the raw ES256 sign rate once per run: GOMAXPROCS
// goroutines sign, as in BenchmarkES256Sign, for three half-second rounds;
// the median round counts, so a short burst of other work on the machine
// does not skew every ratio of the run. (testing.Benchmark cannot be used
// here: called from inside a running benchmark it waits forever for the
// lock the running benchmark holds.)
func es256SignRate(b *testing.B) float64 {
	b.Helper()
	benchSign.once.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			benchSign.err = err
			return
		}
		var rounds []float64
		for range 3 {
			var n atomic.Int64
			var wg sync.WaitGroup
			var once sync.Once
			start := time.Now()
			deadline := start.Add(500 * time.Millisecond)
			for range runtime.GOMAXPROCS(0) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Now().Before(deadline) {
						if _, err := benchJWT(key); err != nil {
							once.Do(func() { benchSign.err = err })
							return
						}
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			rounds = append(rounds, float64(n.Load())/time.Since(start).Seconds())
		}
		slices.Sort(rounds)
		benchSign.rate = rounds[1]
	})
	if benchSign.err != nil || benchSign.rate == 0 {
		b.Fatalf("could not measure the ES256 sign rate: %v", benchSign.err)
	}
	b.Logf("raw ES256 sign rate in this run: %.0f/s", benchSign.rate)
	return benchSign.rate
}

func benchRate(b *testing.B) float64 {
	if s := b.Elapsed().Seconds(); s > 0 {
		return float64(b.N) / s
	}
	return 0
}

// BenchmarkClientCredentials is the client_credentials grant with
// client_secret_basic and with private_key_jwt. Assertions are signed before
// the timer starts, so only the server's work is measured.
func BenchmarkClientCredentials(b *testing.B) {
	sign := es256SignRate(b)
	b.Run("bare/secret_basic", func(b *testing.B) {
		e := startBare(b)
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}.Encode()
		e.run(b, sign, func(int) (*http.Request, error) {
			return e.tokenRequest(form, bareClientID, bareSecret), nil
		})
	})
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := startBench(b, be)
			id, secret := e.client(b, ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
			form := url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}.Encode()
			b.Run("secret_basic", func(b *testing.B) {
				e.run(b, sign, func(int) (*http.Request, error) {
					return e.tokenRequest(form, id, secret), nil
				})
			})

			key := benchKey(b)
			jwksFile := filepath.Join(b.TempDir(), "jwks.json")
			jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
			if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
				b.Fatal(err)
			}
			pid, _ := e.client(b, ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read",
				AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: jwksFile})
			b.Run("private_key_jwt", func(b *testing.B) {
				b.StopTimer()
				forms := make([]string, b.N)
				for i := range forms {
					forms[i] = url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}, "client_id": {pid},
						"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
						"client_assertion":      {benchAssertion(b, key, pid, e.issuer+"/token")}}.Encode()
				}
				b.StartTimer()
				e.run(b, sign, func(i int) (*http.Request, error) {
					return e.tokenRequest(forms[i], "", ""), nil
				})
			})
		})
	}
}

// BenchmarkCodeExchange redeems authorization codes (PKCE, client_secret_basic,
// scope "openid profile": an access token and an ID token per exchange).
// Codes are minted through single sign-on before the timer starts.
func BenchmarkCodeExchange(b *testing.B) {
	sign := es256SignRate(b)
	for _, be := range benchBackends(b) {
		// The spread variant logs in many citizens from one address in a
		// minute: lift the per-address login and enrollment limits.
		config := be.config
		be.config = func(b *testing.B, c *Config) {
			config(b, c)
			c.LoginRateLimit, c.Limits.EnrollPerAddr, c.Limits.LoginTotal = 1<<30, 1<<30, 1<<30
		}
		b.Run(be.name, func(b *testing.B) {
			e := startBench(b, be)
			id, secret := e.client(b, ClientSpec{Scope: "openid profile", RedirectURIs: []string{benchRedirectURI},
				GrantTypes: []string{"authorization_code"}})
			mint := e.codeMinter(b, id)
			b.Run("secret_basic", func(b *testing.B) {
				b.StopTimer()
				codes := mint.mint(b, b.N)
				b.StartTimer()
				e.run(b, sign, func(i int) (*http.Request, error) {
					form := url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]},
						"redirect_uri": {benchRedirectURI}, "code_verifier": {mint.verifier}}.Encode()
					return e.tokenRequest(form, id, secret), nil
				})
			})
			// The same exchange with personal claims in the ID token: the
			// registry read and the access-log append (issue #5) on top.
			// Its rate over secret_basic's is what the log costs.
			cid, csecret := e.client(b, ClientSpec{Scope: "openid profile", RedirectURIs: []string{benchRedirectURI},
				GrantTypes: []string{"authorization_code"}})
			cmint := e.codeMinterClaims(b, cid, `{"id_token":{"name":null,"birthdate":null}}`)
			b.Run("id_token_claims_logged", func(b *testing.B) {
				b.StopTimer()
				codes := cmint.mint(b, b.N)
				b.StartTimer()
				e.run(b, sign, func(i int) (*http.Request, error) {
					form := url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]},
						"redirect_uri": {benchRedirectURI}, "code_verifier": {cmint.verifier}}.Encode()
					return e.tokenRequest(form, cid, csecret), nil
				})
				b.StopTimer()
				c, err := e.m.Store.GetCitizenByPersonalID(context.Background(), demoCitizens[0].PersonalID)
				if err != nil {
					b.Fatal(err)
				}
				es, _, err := e.m.ConsentStore.ListEntries(context.Background(), consent.EntryQuery{CitizenID: c.ID, Page: consent.Page{Limit: 1}})
				if err != nil || len(es) == 0 || es[0].Channel != consent.ChannelIDToken {
					b.Fatalf("the exchanges were not logged: %+v %v", es, err)
				}
			})
			// The same logged exchange with the codes spread over many
			// citizens, as on a real platform: the appends no longer queue
			// on one chain head. Each citizen logs in once (through the
			// app) before the timer; the codes go round the citizens.
			mcid, mcsecret := e.client(b, ClientSpec{Scope: "openid profile", RedirectURIs: []string{benchRedirectURI},
				GrantTypes: []string{"authorization_code"}})
			minters := e.manyMinters(b, mcid, `{"id_token":{"name":null,"birthdate":null}}`, benchManyCitizens)
			b.Run(fmt.Sprintf("id_token_claims_logged_citizens=%d", benchManyCitizens), func(b *testing.B) {
				b.StopTimer()
				codes := mintRound(b, minters, b.N)
				b.StartTimer()
				e.run(b, sign, func(i int) (*http.Request, error) {
					form := url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]},
						"redirect_uri": {benchRedirectURI}, "code_verifier": {minters[i%len(minters)].verifier}}.Encode()
					return e.tokenRequest(form, mcid, mcsecret), nil
				})
				b.StopTimer()
				// The first and the last citizen that had a code both
				// have the exchange in their log.
				for _, j := range []int{0, min(b.N, len(minters)) - 1} {
					c, err := e.m.Store.GetCitizenByPersonalID(context.Background(), benchCitizenID(j))
					if err != nil {
						b.Fatal(err)
					}
					es, _, err := e.m.ConsentStore.ListEntries(context.Background(), consent.EntryQuery{CitizenID: c.ID, Page: consent.Page{Limit: 1}})
					if err != nil || len(es) == 0 || es[0].Channel != consent.ChannelIDToken {
						b.Fatalf("citizen %d's exchanges were not logged: %+v %v", j, es, err)
					}
				}
			})
		})
	}
}

// mintRound returns n fresh codes, code i from minters[i%len(minters)],
// minted by a few concurrent SSO requests.
func mintRound(b testing.TB, minters []*codeMinter, n int) []string {
	b.Helper()
	codes := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				m := minters[i%len(minters)]
				c, err := m.codeFrom(m.authURL())
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				codes[i] = c
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatalf("mint codes: %v", firstErr)
	}
	return codes
}

// benchManyCitizens is how many citizens the spread code exchange logs
// in: enough that 32 callers rarely hold codes of one citizen at once.
const benchManyCitizens = 1000

// benchCitizenID is the personal id of the j-th synthetic citizen of the
// spread benchmarks (the demo citizens' ids start with 0).
func benchCitizenID(j int) string { return fmt.Sprintf("9%011d", j) }

// manyMinters imports n synthetic citizens and logs each in once through
// its own eID app, a few at a time, returning one minter per citizen.
func (e *benchEnv) manyMinters(b testing.TB, clientID, claims string, n int) []*codeMinter {
	b.Helper()
	recs := make([]citizenRecord, n)
	for j := range recs {
		recs[j] = citizenRecord{PersonalID: benchCitizenID(j), FamilyName: "Bench", GivenName: fmt.Sprintf("Citizen %d", j),
			Birthdate: "1990-01-01", Gender: "other", Address: "1 Phố Mẫu (địa chỉ giả)", PhoneNumber: fmt.Sprintf("+849%08d", j)}
	}
	if err := e.m.ImportCitizens(context.Background(), recs); err != nil && !errors.Is(err, idp.ErrConflict) {
		b.Fatalf("import: %v", err)
	}
	start := time.Now()
	minters := make([]*codeMinter, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for j := int(next.Add(1) - 1); j < n && !b.Failed(); j = int(next.Add(1) - 1) {
				minters[j] = e.codeMinterFor(b, clientID, claims, benchCitizenID(j))
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("%d citizens logged in in %v", n, time.Since(start).Round(time.Second))
	return minters
}

// BenchmarkAuthorizeSSO is the authorize step of a login with a single
// sign-on session: the request is checked, the session reused and a code
// issued (its record written once: code, PKCE and OpenID Connect together).
func BenchmarkAuthorizeSSO(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := startBench(b, be)
			id, _ := e.client(b, ClientSpec{Scope: "openid profile", RedirectURIs: []string{benchRedirectURI},
				GrantTypes: []string{"authorization_code"}})
			mint := e.codeMinter(b, id)
			b.ResetTimer()
			mint.mint(b, b.N)
		})
	}
}

// BenchmarkIntrospection introspects a client_credentials access token
// (signature, deny list and both clients checked on every call).
func BenchmarkIntrospection(b *testing.B) {
	sign := es256SignRate(b)
	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			e := startBench(b, be)
			id, secret := e.client(b, ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read"})
			tok := e.accessToken(b, id, secret)
			form := url.Values{"token": {tok}}.Encode()
			b.Run("secret_basic", func(b *testing.B) {
				e.run(b, sign, func(int) (*http.Request, error) {
					req := e.tokenRequest(form, id, secret)
					req.URL.Path = "/introspect"
					return req, nil
				})
			})
		})
	}
}

// The bare baseline, in process (the load script's is deploy/load/bare.go):
// a plain net/http token endpoint doing only what a client_credentials
// answer needs, to compare BenchmarkClientCredentials/<backend>/secret_basic
// with in the same run.
const (
	bareClientID = "bare"
	bareSecret   = "bare-secret-0123456789abcdef0123456789abcdef"
)

func startBare(b *testing.B) *benchEnv {
	b.Helper()
	key := benchKey(b)
	hashKey := make([]byte, 32)
	_, _ = rand.Read(hashKey)
	hash := func(s string) []byte {
		m := hmac.New(sha256.New, hashKey)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	stored := hash(bareSecret)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
		if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
			return
		}
		id, secret, ok := r.BasicAuth()
		if ok {
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
		}
		if !ok || id != bareClientID || !hmac.Equal(hash(secret), stored) {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		tok, err := benchJWT(key)
		if err != nil {
			http.Error(w, `{"error":"server_error"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": 3600,
			"scope": r.PostForm.Get("scope")})
	}))
	b.Cleanup(srv.Close)
	e := startBenchClient(b)
	e.issuer = srv.URL
	return e
}

// benchBackend is one row of the backend table.
type benchBackend struct {
	name string
	// config adjusts a Main's configuration (temp dirs and schemas are the
	// benchmark's own).
	config func(b *testing.B, c *Config)
}

// benchBackends is SQLite always, PostgreSQL + Redis when configured.
func benchBackends(b *testing.B) []benchBackend {
	bs := []benchBackend{{name: "sqlite", config: func(*testing.B, *Config) {}}}
	base, redisURL := os.Getenv("ONEDOOR_TEST_POSTGRES_DSN"), os.Getenv("ONEDOOR_TEST_REDIS_URL")
	if base == "" || redisURL == "" {
		b.Log("postgres+redis skipped: ONEDOOR_TEST_POSTGRES_DSN and ONEDOOR_TEST_REDIS_URL not set")
		return bs
	}
	return append(bs, benchBackend{name: "postgres+redis", config: func(b *testing.B, c *Config) {
		c.PostgresDSN = freshSchema(b, base)
		c.RedisURL = redisURL
		c.MasterKeyFile = sharedMasterKey(b)
	}})
}

// benchEnv is one running OneDoor and a client with a large pool of
// keep-alive connections.
type benchEnv struct {
	m      *Main
	issuer string
	http   *http.Client
}

func startBench(b *testing.B, be benchBackend) *benchEnv {
	b.Helper()
	m := newTestMain(b, func(c *Config) { be.config(b, c) })
	e := startBenchClient(b)
	e.m, e.issuer = m, m.Issuer
	return e
}

// startBenchClient returns a benchEnv with only its HTTP client.
func startBenchClient(b testing.TB) *benchEnv {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 1024
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchEnv{http: c}
}

func (e *benchEnv) client(b testing.TB, spec ClientSpec) (id, secret string) {
	b.Helper()
	spec.Name = "Benchmark agency"
	c, s, err := e.m.CreateClient(context.Background(), spec)
	if err != nil {
		b.Fatalf("create client: %v", err)
	}
	return c.ID, s
}

// tokenRequest builds a form POST to the token endpoint, with HTTP Basic
// client authentication when id is set.
func (e *benchEnv) tokenRequest(form, id, secret string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	return req
}

// do sends req and drains the answer, so the connection is reused.
func (e *benchEnv) do(req *http.Request) (int, []byte, error) {
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// run sends b.N requests from benchParallelism×GOMAXPROCS goroutines; the
// i-th request is newReq(i). Every answer must be 200. It reports req/s,
// the ratio to the raw ES256 sign rate and latency percentiles.
func (e *benchEnv) run(b *testing.B, signRate float64, newReq func(i int) (*http.Request, error)) {
	// One request first, untimed: it fails fast with the server's answer.
	b.StopTimer()
	if b.N > 0 {
		if err := e.check(newReq); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	next.Store(1) // request 0 was the check
	lat := make([][]time.Duration, 0, 64)
	var mu sync.Mutex
	var failures atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ReportAllocs()
	b.StartTimer()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		defer func() {
			mu.Lock()
			lat = append(lat, mine)
			mu.Unlock()
		}()
		for pb.Next() {
			i := int(next.Add(1) - 1)
			if i >= b.N { // the check request took one of the b.N
				continue
			}
			req, err := newReq(i)
			if err != nil {
				b.Error(err)
				return
			}
			start := time.Now()
			status, body, err := e.do(req)
			mine = append(mine, time.Since(start))
			if err != nil || status != http.StatusOK {
				if failures.Add(1) <= 3 {
					b.Errorf("%s: status %d, err %v, body %.300s", req.URL.Path, status, err, body)
				}
			}
		}
	})
	b.StopTimer()
	rate := benchRate(b)
	b.ReportMetric(rate, "req/s")
	b.ReportMetric(rate/signRate, "sign-ratio")
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// check sends request 0 and returns the server's answer when it is not 200.
func (e *benchEnv) check(newReq func(int) (*http.Request, error)) error {
	req, err := newReq(0)
	if err != nil {
		return err
	}
	status, body, err := e.do(req)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s: status %d: %s", req.URL.Path, status, body)
	}
	return nil
}

// accessToken gets one client_credentials access token.
func (e *benchEnv) accessToken(b *testing.B, id, secret string) string {
	b.Helper()
	req := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"}}.Encode(), id, secret)
	resp, err := e.http.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		b.Fatalf("token: status %d, %v", resp.StatusCode, err)
	}
	return t.AccessToken
}

func benchAssertion(b *testing.B, key *ecdsa.PrivateKey, clientID, aud string) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer: clientID, Subject: clientID, Audience: jwt.ClaimStrings{aud}, ID: randomString(16),
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// codeMinter is a browser with a single sign-on session: each /authorize it
// sends is answered at once with a redirect carrying a fresh code.
type codeMinter struct {
	e                   *benchEnv
	browser             *http.Client
	clientID            string
	verifier, challenge string
	claims              string // the claims parameter, when set
}

// codeMinter enrolls the demo citizen's eID app, logs the browser in once
// (approved in the app) and returns the minter.
func (e *benchEnv) codeMinter(b testing.TB, clientID string) *codeMinter {
	b.Helper()
	return e.codeMinterClaims(b, clientID, "")
}

// codeMinterClaims is codeMinter with a claims parameter on every login.
func (e *benchEnv) codeMinterClaims(b testing.TB, clientID, claims string) *codeMinter {
	b.Helper()
	if err := e.m.ImportCitizens(context.Background(), demoCitizens[:1]); err != nil && !errors.Is(err, idp.ErrConflict) {
		b.Fatalf("import: %v", err)
	}
	return e.codeMinterFor(b, clientID, claims, demoCitizens[0].PersonalID)
}

// codeMinterFor enrolls the registered citizen pid's eID app and logs a
// browser in once (claims on every login when set).
func (e *benchEnv) codeMinterFor(b testing.TB, clientID, claims, pid string) *codeMinter {
	b.Helper()
	ctx := context.Background()
	code, _, err := e.m.EID.Activate(ctx, pid, idp.LevelHigh)
	if err != nil {
		b.Fatalf("activate: %v", err)
	}
	app, err := eidapp.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := app.Enroll(ctx, e.issuer, pid, code, "benchmark phone"); err != nil {
		b.Fatalf("enroll: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	verifier := randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	cm := &codeMinter{e: e, clientID: clientID, verifier: verifier, challenge: base64.RawURLEncoding.EncodeToString(sum[:]), claims: claims,
		browser: &http.Client{Jar: jar, Transport: e.http.Transport, Timeout: 30 * time.Second, CheckRedirect: e.http.CheckRedirect}}

	// The one login that goes through the app.
	resp, err := cm.browser.Get(cm.authURL())
	if err != nil {
		b.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := qrRE.FindSubmatch(page)
	noteLoginPage(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		b.Fatalf("authorize: status %d, no login page: %.300s", resp.StatusCode, page)
	}
	payload, statusURL := html.UnescapeString(string(m[1])), html.UnescapeString(string(m[2]))
	if _, err := app.Approve(ctx, payload, pick(payload), false, nil); err != nil {
		b.Fatalf("approve: %v", err)
	}
	resp, err = cm.browser.Get(statusURL)
	if err != nil {
		b.Fatal(err)
	}
	var st struct {
		Status     string `json:"status"`
		RedirectTo string `json:"redirect_to"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Status != "approved" || st.RedirectTo == "" {
		b.Fatalf("login status %+v, %v", st, err)
	}
	if _, err := cm.codeFrom(st.RedirectTo); err != nil {
		b.Fatal(err)
	}
	return cm
}

func (cm *codeMinter) authURL() string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {cm.clientID}, "redirect_uri": {benchRedirectURI},
		"scope": {"openid profile"}, "state": {randomString(12)}, "nonce": {randomString(12)},
		"code_challenge": {cm.challenge}, "code_challenge_method": {"S256"},
	}
	if cm.claims != "" {
		q.Set("claims", cm.claims)
	}
	return cm.e.issuer + "/authorize?" + q.Encode()
}

// codeFrom GETs u and returns the code of the redirect to the client.
func (cm *codeMinter) codeFrom(u string) (string, error) {
	resp, err := cm.browser.Get(u)
	if err != nil {
		return "", err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("GET %s: status %d, want a redirect with a code: %.300s", u, resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	code := loc.Query().Get("code")
	if code == "" || !strings.HasPrefix(loc.String(), benchRedirectURI) {
		return "", fmt.Errorf("redirect without a code: %s", loc.Redacted())
	}
	return code, nil
}

// mint returns n fresh codes, minted by a few concurrent SSO requests.
func (cm *codeMinter) mint(b testing.TB, n int) []string {
	b.Helper()
	return mintRound(b, []*codeMinter{cm}, n)
}
