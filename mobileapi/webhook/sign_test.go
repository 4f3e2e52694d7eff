package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/idp/sqlite"
)

// newKeys returns a real key manager over a migrated SQLite IdP store, as
// the server runs it.
func newKeys(t *testing.T) *keyset.Manager {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := sqlite.New(db)
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	sealer, err := keyset.NewSealer(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	m := keyset.New(st, sealer, keyset.Options{})
	if err := m.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return m
}

// shared is one key manager for the worker tests: generating the RSA keys
// Ensure also creates takes a while, more so under the race detector.
var shared struct {
	once sync.Once
	m    *keyset.Manager
	db   interface{ Close() error }
	dir  string
	err  error
}

func sharedKeys(t *testing.T) *keyset.Manager {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "webhook-keys")
		if shared.err != nil {
			return
		}
		db, err := sqlite.Open(filepath.Join(shared.dir, "idp.db"))
		if err != nil {
			shared.err = err
			return
		}
		shared.db = db
		st := sqlite.New(db)
		if shared.err = st.Migrate(context.Background()); shared.err != nil {
			return
		}
		sealer, err := keyset.NewSealer(make([]byte, 32))
		if err != nil {
			shared.err = err
			return
		}
		shared.m = keyset.New(st, sealer, keyset.Options{})
		shared.err = shared.m.Ensure(context.Background())
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.m
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.db != nil {
		shared.db.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// jwks is what an agency fetches from the IdP's /jwks.
func jwks(t *testing.T, m *keyset.Manager) KeyFunc {
	t.Helper()
	b, err := m.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	return JWKS(&set)
}

const (
	testWebhook = "whk_0000000000000000000000test"
	testURL     = "https://hanhchinh.example.test/onedoor/events"
)

func header(iat time.Time) map[string]any {
	return map[string]any{"typ": SignatureType, "cty": ContentType, ParamIssuedAt: iat.Unix(),
		ParamURL: testURL, ParamWebhookID: testWebhook}
}

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	m := newKeys(t)
	keys := jwks(t, m)
	body := []byte(`{"id":"evt_1","type":"submitted"}`)
	now := time.Now()
	sig, err := KeySigner{Keys: m}.Sign(ctx, body, header(now))
	if err != nil {
		t.Fatal(err)
	}

	// The header is header..signature with the documented protected header.
	parts := strings.Split(sig, ".")
	if len(parts) != 3 || parts[1] != "" {
		t.Fatalf("not a detached compact JWS: %q", sig)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	active, err := m.SigningKey(ctx, keyset.ES256)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"alg": "ES256", "kid": active.ID, "typ": SignatureType, "cty": ContentType,
		"iat": float64(now.Unix()), "url": testURL, "onedoor_webhook": testWebhook} {
		if h[k] != want {
			t.Errorf("protected header %s = %v, want %v", k, h[k], want)
		}
	}
	if len(h) != 7 {
		t.Errorf("protected header has %d members: %v", len(h), h)
	}

	ok := Expect{WebhookID: testWebhook, URL: testURL, Now: now}
	if err := Verify(body, sig, keys, ok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(body, sig, keys, Expect{WebhookID: testWebhook, Now: now.Add(4 * time.Minute)}); err != nil {
		t.Fatalf("Verify by webhook id alone, 4 minutes later: %v", err)
	}
	if err := Verify(body, sig, keys, Expect{URL: testURL, Now: now.Add(-30 * time.Second)}); err != nil {
		t.Fatalf("Verify by URL alone, clock 30 s behind: %v", err)
	}

	other := newKeys(t) // another platform's keys: the kid is unknown
	otherSig, err := KeySigner{Keys: other}.Sign(ctx, body, header(now))
	if err != nil {
		t.Fatal(err)
	}
	// The right kid over another key: a forged signature.
	rogue, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := KeySigner{Keys: fixedKey{&keyset.Key{ID: active.ID, Alg: "ES256", Private: rogue, Public: rogue.Public()}}}.Sign(ctx, body, header(now))
	if err != nil {
		t.Fatal(err)
	}
	noTyp := header(now)
	delete(noTyp, "typ")
	noTypSig, err := KeySigner{Keys: m}.Sign(ctx, body, noTyp)
	if err != nil {
		t.Fatal(err)
	}
	strIat := header(now)
	strIat[ParamIssuedAt] = "now"
	strIatSig, err := KeySigner{Keys: m}.Sign(ctx, body, strIat)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		body    []byte
		sig     string
		want    Expect
		unknown bool
	}{
		{name: "tampered body", body: []byte(`{"id":"evt_1","type":"withdrawn"}`), sig: sig, want: ok},
		{name: "whitespace added", body: append(append([]byte{}, body...), '\n'), sig: sig, want: ok},
		{name: "unknown kid", body: body, sig: otherSig, want: ok, unknown: true},
		{name: "forged with the right kid", body: body, sig: forged, want: ok},
		{name: "stale iat", body: body, sig: sig, want: Expect{WebhookID: testWebhook, Now: now.Add(5*time.Minute + time.Second)}},
		{name: "stale for a shorter window", body: body, sig: sig, want: Expect{WebhookID: testWebhook, Now: now.Add(2 * time.Minute), MaxAge: time.Minute}},
		{name: "iat in the future", body: body, sig: sig, want: Expect{WebhookID: testWebhook, Now: now.Add(-2 * time.Minute)}},
		{name: "wrong webhook id", body: body, sig: sig, want: Expect{WebhookID: "whk_another", Now: now}},
		{name: "wrong URL", body: body, sig: sig, want: Expect{URL: "https://another.example.test/hook", Now: now}},
		{name: "nothing to bind to", body: body, sig: sig, want: Expect{Now: now}},
		{name: "no typ", body: body, sig: noTypSig, want: ok},
		{name: "iat not a number", body: body, sig: strIatSig, want: ok},
		{name: "payload attached", body: body, sig: parts[0] + "." + base64.RawURLEncoding.EncodeToString(body) + "." + parts[2], want: ok},
		{name: "signature cut", body: body, sig: sig[:len(sig)-4], want: ok},
		{name: "garbage", body: body, sig: "not a jws", want: ok},
		{name: "empty", body: body, sig: "", want: ok},
		{name: "HS256 header", body: body, sig: hs256(t, body), want: ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(tc.body, tc.sig, keys, tc.want)
			if !errors.Is(err, ErrSignature) {
				t.Fatalf("Verify = %v, want ErrSignature", err)
			}
			if tc.unknown != errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Verify = %v, ErrUnknownKey %v", err, tc.unknown)
			}
		})
	}
}

// After a rotation the retired key still verifies what it signed.
func TestVerifyAfterRotation(t *testing.T) {
	ctx := context.Background()
	m := newKeys(t)
	body := []byte(`{}`)
	now := time.Now()
	sig, err := KeySigner{Keys: m}.Sign(ctx, body, header(now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rotate(ctx, keyset.ES256, true); err != nil {
		t.Fatal(err)
	}
	if err := Verify(body, sig, jwks(t, m), Expect{WebhookID: testWebhook, Now: now}); err != nil {
		t.Fatalf("Verify after rotation: %v", err)
	}
}

func TestSignRefusesReservedParams(t *testing.T) {
	m := newKeys(t)
	for _, p := range []string{"alg", "kid", "crit", "b64", "jwk"} {
		if _, err := (KeySigner{Keys: m}).Sign(context.Background(), []byte("{}"), map[string]any{p: "x"}); err == nil {
			t.Errorf("Sign accepted header parameter %q", p)
		}
	}
}

type fixedKey struct{ k *keyset.Key }

func (f fixedKey) SigningKey(context.Context, string) (*keyset.Key, error) { return f.k, nil }

// hs256 signs body with a MAC, as an attacker knowing only public data
// might (with the public key as the secret).
func hs256(t *testing.T, body []byte) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(SignatureType).WithHeader(ParamIssuedAt, time.Now().Unix()).WithHeader(ParamWebhookID, testWebhook)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.DetachedCompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
