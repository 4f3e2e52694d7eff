package dpop_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/redis"
	"github.com/onedoor/onedoor/idp/sqlite"
)

const tokenURL = "https://id.example.vn/token"

// sqliteEph is the embedded ephemeral store on a fresh file.
func sqliteEph(t testing.TB) idp.Ephemeral {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlite.New(db)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// redisEph is real Redis when ONEDOOR_TEST_REDIS_URL is set.
func redisEph(t testing.TB) idp.Ephemeral {
	t.Helper()
	u := os.Getenv("ONEDOOR_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("ONEDOOR_TEST_REDIS_URL is not set; CI must run the Redis cases")
		}
		t.Skip("ONEDOOR_TEST_REDIS_URL is not set")
	}
	c, err := redis.Dial(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return redis.New(c, "dpoptest:"+rand.Text()+":")
}

type fixture struct {
	key  *ecdsa.PrivateKey
	now  time.Time
	v    *dpop.Verifier
	eph  idp.Ephemeral
	nkey []byte
}

func newFixture(t testing.TB, eph idp.Ephemeral) *fixture {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{key: key, now: time.Now(), eph: eph, nkey: []byte(strings.Repeat("k", 32))}
	f.v = f.verifier()
	return f
}

// verifier is another replica: same store, same nonce key, own instance.
func (f *fixture) verifier() *dpop.Verifier {
	return dpop.New(dpop.Config{NonceKey: f.nkey, Now: func() time.Time { return f.now }}, f.eph)
}

func (f *fixture) proof(t testing.TB, r dpop.ProofRequest) string {
	t.Helper()
	if r.Method == "" {
		r.Method = "POST"
	}
	if r.URL == "" {
		r.URL = tokenURL
	}
	if r.Now.IsZero() {
		r.Now = f.now
	}
	p, err := dpop.NewProof(f.key, r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var tokenCheck = dpop.Check{Method: "POST", URL: tokenURL}

// craft signs arbitrary header and claims with key (nil: alg none).
func craft(t testing.TB, method jwt.SigningMethod, header, claims map[string]any, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) claims() map[string]any {
	return map[string]any{"jti": rand.Text(), "htm": "POST", "htu": tokenURL, "iat": f.now.Unix()}
}

func publicJWK(t testing.TB, k *ecdsa.PrivateKey) map[string]any {
	t.Helper()
	b := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b(k.X), "y": b(k.Y)}
}

func wantInvalid(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("%s: got %v, want ErrInvalidProof", what, err)
	}
}

func TestVerify_Valid(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	p, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := dpop.Thumbprint(&f.key.PublicKey)
	if p.JKT != want || len(want) != 43 {
		t.Fatalf("jkt %q, want %q", p.JKT, want)
	}
}

func TestVerify_PS256(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dpop.NewProof(rk, dpop.ProofRequest{Method: "POST", URL: tokenURL, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
		t.Fatal(err)
	}
}

func TestVerify_MissingProof(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	_, err := f.v.Verify(t.Context(), nil, tokenCheck)
	if !errors.Is(err, dpop.ErrMissing) || !errors.Is(err, dpop.ErrInvalidProof) {
		t.Fatalf("got %v, want ErrMissing", err)
	}
}

func TestVerify_TwoHeaders(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	_, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{}), f.proof(t, dpop.ProofRequest{})}, tokenCheck)
	wantInvalid(t, err, "two DPoP headers")
}

func TestVerify_AlgNone(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	p := craft(t, jwt.SigningMethodNone, map[string]any{"typ": "dpop+jwt", "jwk": publicJWK(t, f.key)}, f.claims(), jwt.UnsafeAllowNoneSignatureType)
	_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "alg none")
}

func TestVerify_SymmetricAlg(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	secret := []byte(strings.Repeat("s", 32))
	jwk := map[string]any{"kty": "oct", "k": base64.RawURLEncoding.EncodeToString(secret)}
	p := craft(t, jwt.SigningMethodHS256, map[string]any{"typ": "dpop+jwt", "jwk": jwk}, f.claims(), secret)
	_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "HS256 with an oct jwk")
}

func TestVerify_PrivateKeyInJWK(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	jwk := publicJWK(t, f.key)
	d, err := f.key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	jwk["d"] = base64.RawURLEncoding.EncodeToString(d)
	p := craft(t, jwt.SigningMethodES256, map[string]any{"typ": "dpop+jwt", "jwk": jwk}, f.claims(), f.key)
	_, err = f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "private key in jwk")
}

func TestVerify_WrongTyp(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	p := craft(t, jwt.SigningMethodES256, map[string]any{"typ": "JWT", "jwk": publicJWK(t, f.key)}, f.claims(), f.key)
	_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "typ JWT")
}

func TestVerify_SignedByAnotherKey(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p := craft(t, jwt.SigningMethodES256, map[string]any{"typ": "dpop+jwt", "jwk": publicJWK(t, f.key)}, f.claims(), other)
	_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "jwk that did not sign")
}

// TestVerify_HeaderKeyRemembered: a client's repeated header (same jwk)
// is decoded once, and every proof is still verified: one signed by
// another key under a header already seen is refused, before and after a
// valid one, and the thumbprint is the key's.
func TestVerify_HeaderKeyRemembered(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	header := map[string]any{"typ": "dpop+jwt", "jwk": publicJWK(t, f.key)}
	want, _ := dpop.Thumbprint(&f.key.PublicKey)
	for i := range 3 {
		forged := craft(t, jwt.SigningMethodES256, header, f.claims(), other)
		_, err := f.v.Verify(t.Context(), []string{forged}, tokenCheck)
		wantInvalid(t, err, "a proof under a known header signed by another key")
		p, err := f.v.Verify(t.Context(), []string{craft(t, jwt.SigningMethodES256, header, f.claims(), f.key)}, tokenCheck)
		if err != nil {
			t.Fatalf("proof %d under the same header: %v", i+1, err)
		}
		if p.JKT != want {
			t.Fatalf("proof %d: jkt %q, want %q", i+1, p.JKT, want)
		}
	}
	// The same key under a header naming another alg is checked afresh.
	p := craft(t, jwt.SigningMethodPS256, header, f.claims(), mustRSA(t))
	_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "an EC jwk under PS256")
}

func mustRSA(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerify_WrongHTM(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	for _, m := range []string{"GET", "post"} {
		_, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Method: m})}, tokenCheck)
		wantInvalid(t, err, "htm "+m)
	}
}

func TestVerify_WrongHTU(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	for _, u := range []string{"https://id.example.vn/userinfo", "https://evil.example/token", "http://id.example.vn/token", "https://id.example.vn:8443/token", "/token"} {
		_, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{URL: u})}, tokenCheck)
		wantInvalid(t, err, "htu "+u)
	}
}

func TestVerify_HTUIgnoresQueryAndNormalises(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	for _, u := range []string{"https://id.example.vn/token?x=1", "https://id.example.vn/token#f", "HTTPS://ID.Example.VN:443/token", "https://id.example.vn/%74oken"} {
		if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{URL: u})}, tokenCheck); err != nil {
			t.Errorf("htu %s: %v", u, err)
		}
	}
}

func TestVerify_ReplayedJTI(t *testing.T) {
	for name, eph := range map[string]func(testing.TB) idp.Ephemeral{"sqlite": sqliteEph, "redis": redisEph} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, eph(t))
			p := f.proof(t, dpop.ProofRequest{})
			if _, err := f.v.Verify(t.Context(), []string{p}, tokenCheck); err != nil {
				t.Fatal(err)
			}
			_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
			wantInvalid(t, err, "replay at the same replica")
			// Another replica shares the store: the proof is spent there too.
			_, err = f.verifier().Verify(t.Context(), []string{p}, tokenCheck)
			wantInvalid(t, err, "replay at a second replica")
		})
	}
}

// TestVerify_ConcurrentSpends: proofs verified at once are spent in shared
// writes (group commit) with the same outcome as one at a time: each of
// many fresh proofs is accepted once, and of many copies of one proof sent
// at once to two replicas exactly one is accepted.
func TestVerify_ConcurrentSpends(t *testing.T) {
	for name, eph := range map[string]func(testing.TB) idp.Ephemeral{"sqlite": sqliteEph, "redis": redisEph} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, eph(t))
			replicas := []*dpop.Verifier{f.v, f.verifier()}
			fresh := make([]string, 64)
			for i := range fresh {
				fresh[i] = f.proof(t, dpop.ProofRequest{})
			}
			one := f.proof(t, dpop.ProofRequest{})
			var (
				wg                       sync.WaitGroup
				freshOK, oneOK, oneInval atomic.Int32
				other                    atomic.Value
			)
			for i := range 64 {
				wg.Go(func() {
					if _, err := replicas[i%2].Verify(t.Context(), []string{fresh[i]}, tokenCheck); err == nil {
						freshOK.Add(1)
					} else {
						other.Store(err)
					}
				})
				wg.Go(func() {
					_, err := replicas[i%2].Verify(t.Context(), []string{one}, tokenCheck)
					switch {
					case err == nil:
						oneOK.Add(1)
					case errors.Is(err, dpop.ErrInvalidProof):
						oneInval.Add(1)
					default:
						other.Store(err)
					}
				})
			}
			wg.Wait()
			if freshOK.Load() != 64 || oneOK.Load() != 1 || oneInval.Load() != 63 || other.Load() != nil {
				t.Fatalf("fresh accepted %d of 64; one proof accepted %d times, refused %d; other error %v",
					freshOK.Load(), oneOK.Load(), oneInval.Load(), other.Load())
			}
			for _, p := range fresh[:4] {
				_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
				wantInvalid(t, err, "a proof spent in a batch, sent again")
			}
		})
	}
}

// failingReplay is a replay store that is down.
type failingReplay struct{}

func (failingReplay) CreateMany(context.Context, []string, time.Duration) ([]bool, error) {
	return nil, idp.ErrUnavailable
}

// panicOnce is a replay store whose first write panics.
type panicOnce struct{ n atomic.Int32 }

func (p *panicOnce) CreateMany(_ context.Context, keys []string, _ time.Duration) ([]bool, error) {
	if p.n.Add(1) == 1 {
		panic("driver bug")
	}
	created := make([]bool, len(keys))
	for i := range created {
		created[i] = true
	}
	return created, nil
}

// TestVerify_StorePanics: a panic in the store's write fails that batch
// as an outage and leaves the verifier working for the next proofs.
func TestVerify_StorePanics(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	v := dpop.New(dpop.Config{Now: func() time.Time { return f.now }}, &panicOnce{})
	_, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
	if !errors.Is(err, idp.ErrUnavailable) {
		t.Fatalf("the batch whose write panicked: got %v, want an outage", err)
	}
	for i := range 3 {
		if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
			t.Fatalf("proof %d after the panic: %v", i+1, err)
		}
	}
}

// blockingReplay holds every write until released.
type blockingReplay struct{ release chan struct{} }

func (b blockingReplay) CreateMany(ctx context.Context, keys []string, _ time.Duration) ([]bool, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	created := make([]bool, len(keys))
	for i := range created {
		created[i] = true
	}
	return created, nil
}

// TestVerify_StoreStalls: while the store hangs, proofs whose callers gave
// up are never accepted and the backlog is bounded (beyond it a proof is
// refused at once as an outage); once the store answers, new proofs pass.
func TestVerify_StoreStalls(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	store := blockingReplay{release: make(chan struct{})}
	v := dpop.New(dpop.Config{Now: func() time.Time { return f.now }}, store)
	proof := f.proof(t, dpop.ProofRequest{})
	var wg sync.WaitGroup
	var accepted, outage atomic.Int32
	for range 20100 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			// One proof for all: only the spend's bookkeeping is tested.
			_, err := v.Verify(ctx, []string{proof}, tokenCheck)
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.Is(err, idp.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
				outage.Add(1)
			}
		})
	}
	wg.Wait()
	if accepted.Load() != 0 || outage.Load() != 20100 {
		t.Fatalf("store stalled: %d accepted, %d outages of 20100", accepted.Load(), outage.Load())
	}
	close(store.release)
	if _, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Fatalf("after the store answers: %v", err)
	}
}

// TestVerify_ReplayStoreDown: when the store cannot be written, every
// proof in the batch fails as an outage (503), never as accepted and never
// as the client's fault; a caller that gives up does not fail the others.
func TestVerify_ReplayStoreDown(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	v := dpop.New(dpop.Config{Now: func() time.Time { return f.now }}, failingReplay{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, err := v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck)
			if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, dpop.ErrInvalidProof) {
				t.Errorf("store down: got %v, want an outage", err)
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	// Its proof may or may not have been spent; it is never called invalid.
	if _, err := f.v.Verify(ctx, []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); errors.Is(err, dpop.ErrInvalidProof) {
		t.Errorf("cancelled caller: got %v", err)
	}
	if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, tokenCheck); err != nil {
		t.Errorf("after a cancelled caller: %v", err)
	}
}

func TestVerify_StaleIAT(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	for _, d := range []time.Duration{-2 * time.Minute, -time.Hour, 5 * time.Minute} {
		_, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Now: f.now.Add(d)})}, tokenCheck)
		wantInvalid(t, err, "iat "+d.String())
	}
	// Within the window and the skew: accepted.
	for _, d := range []time.Duration{-50 * time.Second, 20 * time.Second} {
		if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Now: f.now.Add(d)})}, tokenCheck); err != nil {
			t.Errorf("iat %s: %v", d, err)
		}
	}
}

func TestVerify_ATH(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	c := dpop.Check{Method: "GET", URL: "https://id.example.vn/userinfo", AccessToken: "tok-A"}
	if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Method: "GET", URL: c.URL, AccessToken: "tok-A"})}, c); err != nil {
		t.Fatal(err)
	}
	_, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Method: "GET", URL: c.URL, AccessToken: "tok-B"})}, c)
	wantInvalid(t, err, "ath of another token")
	_, err = f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Method: "GET", URL: c.URL})}, c)
	wantInvalid(t, err, "no ath")
}

func TestVerify_Nonce(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	c := tokenCheck
	c.RequireNonce = true
	if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{})}, c); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("no nonce: got %v, want ErrUseNonce", err)
	}
	n := f.v.Nonce()
	// Another replica accepts it: the nonce is stateless.
	if _, err := f.verifier().Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Nonce: n})}, c); err != nil {
		t.Fatalf("fresh nonce: %v", err)
	}
	if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Nonce: n + "x"})}, c); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("forged nonce: got %v, want ErrUseNonce", err)
	}
	f.now = f.now.Add(5 * time.Minute)
	if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Nonce: n})}, c); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("expired nonce: got %v, want ErrUseNonce", err)
	}
	// A nonce from another deployment's key is refused.
	other := dpop.New(dpop.Config{NonceKey: []byte(strings.Repeat("o", 32)), Now: func() time.Time { return f.now }}, f.eph)
	if _, err := f.v.Verify(t.Context(), []string{f.proof(t, dpop.ProofRequest{Nonce: other.Nonce()})}, c); !errors.Is(err, dpop.ErrUseNonce) {
		t.Fatalf("other key's nonce: got %v, want ErrUseNonce", err)
	}
}

func TestVerify_SmallRSAKey(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	rk, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // the weak key is the point
	if err != nil {
		t.Fatal(err)
	}
	p, err := dpop.NewProof(rk, dpop.ProofRequest{Method: "POST", URL: tokenURL, Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.v.Verify(t.Context(), []string{p}, tokenCheck)
	wantInvalid(t, err, "RSA-1024")
}

func TestVerify_ForbiddenHeaders(t *testing.T) {
	f := newFixture(t, sqliteEph(t))
	for _, h := range []string{"jku", "x5u", "x5c", "crit"} {
		p := craft(t, jwt.SigningMethodES256, map[string]any{"typ": "dpop+jwt", "jwk": publicJWK(t, f.key), h: []string{"x"}}, f.claims(), f.key)
		_, err := f.v.Verify(t.Context(), []string{p}, tokenCheck)
		wantInvalid(t, err, "header "+h)
	}
}

func TestNormalizeURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://A.example/x?q#f", "https://a.example/x"},
		{"https://a.example", "https://a.example/"},
		{"http://a.example:80/p", "http://a.example/p"},
		{"https://[::1]:443/p", "https://[::1]/p"},
		{"https://[::1]:8443/p", "https://[::1]:8443/p"},
		{"ftp://a.example/", ""},
		{"https://u@a.example/", ""},
		{"/relative", ""},
	} {
		got, ok := dpop.NormalizeURL(tc.in)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("NormalizeURL(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

// FuzzParse: whatever the input, Parse never panics; whatever it accepts
// carries a jkt that is the thumbprint of a public key of an accepted alg,
// and re-parsing gives the same result (determinism).
func FuzzParse(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := dpop.NewProof(key, dpop.ProofRequest{Method: "POST", URL: tokenURL})
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(good[:len(good)/2])
	f.Add(strings.Replace(good, ".", "..", 1))
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","crv":"P-256","x":"","y":"","d":"AA"}}`))
	f.Add(hdr + ".e30.AA")
	hdr = base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":{"kty":"oct","k":"AA"}}`))
	f.Add(hdr + ".e30.")
	v := dpop.New(dpop.Config{}, nil)
	f.Fuzz(func(t *testing.T, s string) {
		p, jti, err := v.Parse(s)
		if err != nil {
			if !errors.Is(err, dpop.ErrInvalidProof) {
				t.Fatalf("refusal %v does not wrap ErrInvalidProof", err)
			}
			return
		}
		tok, err := jose.ParseSignedCompact(s, []jose.SignatureAlgorithm{jose.ES256, jose.PS256})
		if err != nil {
			t.Fatalf("accepted a proof go-jose cannot parse: %v", err)
		}
		jwk := tok.Signatures[0].Protected.JSONWebKey
		if jwk == nil || !jwk.IsPublic() {
			t.Fatal("accepted a proof without a public jwk")
		}
		if _, err := tok.Verify(jwk); err != nil {
			t.Fatalf("accepted a proof its jwk did not sign: %v", err)
		}
		want, _ := dpop.Thumbprint(jwk.Key)
		p2, jti2, _ := v.Parse(s)
		if p.JKT != want || p2.JKT != p.JKT || jti == "" || jti2 != jti {
			t.Fatalf("jkt %q / %q, want %q", p.JKT, p2.JKT, want)
		}
	})
}

// BenchmarkParse: a client's proofs, each new, under its one header (the
// mobile API's case: every request of the eID app).
func BenchmarkParse(b *testing.B) {
	f := newFixture(b, sqliteEph(b))
	header := map[string]any{"typ": "dpop+jwt", "jwk": publicJWK(b, f.key)}
	proofs := make([]string, 256)
	for i := range proofs {
		proofs[i] = craft(b, jwt.SigningMethodES256, header, f.claims(), f.key)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, _, err := f.v.Parse(proofs[i%len(proofs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerify_Parallel: fresh proofs verified by concurrent requests
// against the embedded store, each jti spent (one write per proof, or
// shared writes when they overlap).
func BenchmarkVerify_Parallel(b *testing.B) {
	f := newFixture(b, sqliteEph(b))
	proofs := make([]string, b.N)
	for i := range proofs {
		proofs[i] = f.proof(b, dpop.ProofRequest{})
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1) - 1)
			if _, err := f.v.Verify(context.Background(), []string{proofs[i]}, tokenCheck); err != nil {
				b.Fatal(err)
			}
		}
	})
}
