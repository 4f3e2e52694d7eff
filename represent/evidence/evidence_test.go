package evidence

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var errExists = errors.New("exists")

// memReplay is a replay cache in memory (the real ones are idp's
// ephemeral stores, tested by their own suite).
type memReplay struct {
	mu   sync.Mutex
	keys map[string]bool
	fail error
}

func (m *memReplay) Create(_ context.Context, key string, _ []byte, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.keys[key] {
		return errExists
	}
	if m.keys == nil {
		m.keys = map[string]bool{}
	}
	m.keys[key] = true
	return nil
}

const api = "https://api.onedoor.example"

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func terms() Terms {
	return Terms{Organisation: "0101234567", Grantee: "001099000002", Services: []string{"1.001193"},
		Categories: []string{}, ValidUntil: now.AddDate(0, 6, 0), MayDelegate: false}
}

func newKey(t testing.TB) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := (&jose.JSONWebKey{Key: k.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return k, base64.RawURLEncoding.EncodeToString(sum)
}

func sign(t testing.TB, k *ecdsa.PrivateKey, c Claims) string {
	t.Helper()
	s, err := Sign(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func check(jkt string) Check {
	return Check{Audience: api, JKT: jkt, Device: "dev_1", Terms: terms(), Now: now, Spent: func(err error) bool { return errors.Is(err, errExists) }}
}

func claims() Claims {
	return Claims{Issuer: "dev_1", Audience: api, IssuedAt: now.Unix(), ID: "jti-1", Mandate: terms()}
}

func TestVerify_Accepts(t *testing.T) {
	k, jkt := newKey(t)
	jws := sign(t, k, claims())
	r := &memReplay{}
	e, err := Verify(context.Background(), jws, check(jkt), r)
	if err != nil {
		t.Fatal(err)
	}
	if e.JKT != jkt || e.Issuer != "dev_1" || e.Mandate.Grantee != "001099000002" {
		t.Errorf("evidence %+v", e)
	}
	// The terms as another writer states them: an offset instead of UTC,
	// a null list instead of an empty one.
	c := check(jkt)
	c.Terms.ValidUntil = c.Terms.ValidUntil.In(time.FixedZone("ICT", 7*3600))
	c.Terms.Categories = nil
	cl := claims()
	cl.ID = "jti-2"
	if _, err := Verify(context.Background(), sign(t, k, cl), c, r); err != nil {
		t.Errorf("same terms written otherwise: %v", err)
	}
}

func TestVerify_Refuses(t *testing.T) {
	k, jkt := newKey(t)
	other, _ := newKey(t)
	cases := []struct {
		name  string
		jws   func() string
		check func(*Check)
		want  string
	}{
		{"another key than the token's", func() string { return sign(t, other, claims()) }, nil, "not by the device key"},
		{"aud of another API", func() string { c := claims(); c.Audience = "https://evil.example"; return sign(t, k, c) }, nil, "aud"},
		{"no aud", func() string { c := claims(); c.Audience = ""; return sign(t, k, c) }, nil, "aud"},
		{"another device", func() string { c := claims(); c.Issuer = "dev_2"; return sign(t, k, c) }, nil, "iss"},
		{"iat too old", func() string { c := claims(); c.IssuedAt = now.Add(-6 * time.Minute).Unix(); return sign(t, k, c) }, nil, "iat"},
		{"iat ahead", func() string { c := claims(); c.IssuedAt = now.Add(6 * time.Minute).Unix(); return sign(t, k, c) }, nil, "iat"},
		{"no jti", func() string { c := claims(); c.ID = strings.Repeat("j", 300); return sign(t, k, c) }, nil, "jti"},
		{"other services", func() string { return sign(t, k, claims()) }, func(c *Check) { c.Terms.Services = []string{"1.001193", "2.000001"} }, "services"},
		{"other grantee", func() string { return sign(t, k, claims()) }, func(c *Check) { c.Terms.Grantee = "001099000003" }, "grantee"},
		{"other end", func() string { return sign(t, k, claims()) }, func(c *Check) { c.Terms.ValidUntil = c.Terms.ValidUntil.Add(time.Second) }, "valid_until"},
		{"delegation added", func() string { return sign(t, k, claims()) }, func(c *Check) { c.Terms.MayDelegate = true }, "may_delegate"},
		{"start added", func() string { return sign(t, k, claims()) }, func(c *Check) { f := now; c.Terms.ValidFrom = &f }, "valid_from"},
		{"a person instead", func() string { return sign(t, k, claims()) }, func(c *Check) { c.Terms.Organisation, c.Terms.Person = "", "001099000009" }, "organisation, person"},
		{"a token without cnf", func() string { return sign(t, k, claims()) }, func(c *Check) { c.JKT = "" }, "not by the device key"},
		{"empty", func() string { return "" }, nil, "empty"},
		{"too long", func() string { return strings.Repeat("a", MaxSize+1) }, nil, "longer"},
		{"two parts", func() string { return "a.b" }, nil, "compact"},
		{"unsigned", func() string { return unsigned(t, `{"alg":"none","typ":"onedoor-mandate+jwt"}`, claims()) }, nil, "alg"},
		{"HS256", func() string { return unsigned(t, `{"alg":"HS256","typ":"onedoor-mandate+jwt"}`, claims()) }, nil, "alg"},
		{"DPoP typ", func() string { return resigned(t, k, map[string]any{"typ": "dpop+jwt"}, claims()) }, nil, "typ"},
		{"jku", func() string { return resigned(t, k, map[string]any{"jku": "https://evil.example/jwks"}, claims()) }, nil, "jku"},
		{"private jwk", func() string { return resigned(t, k, map[string]any{"jwk": privateJWK(t, k)}, claims()) }, nil, "private"},
		{"no jwk", func() string { return resigned(t, k, map[string]any{"jwk": nil}, claims()) }, nil, "jwk"},
		{"tampered payload", func() string {
			s := sign(t, k, claims())
			p := strings.Split(s, ".")
			c := claims()
			c.Mandate.Services = []string{"9.999999"}
			b, _ := json.Marshal(c)
			return p[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + p[2]
		}, func(c *Check) { c.Terms.Services = []string{"9.999999"} }, "does not verify"},
		{"unknown claim", func() string {
			return resignedPayload(t, k, `{"iss":"dev_1","aud":"`+api+`","iat":`+itoa(now.Unix())+`,"jti":"x","mandate":{"grantee":"001099000002","services":["1.001193"],"categories":[],"valid_until":"2027-06-01T10:00:00Z","may_delegate":false},"extra":1}`)
		}, nil, "claims"},
		{"duplicate member", func() string {
			return resignedPayload(t, k, `{"iss":"dev_1","aud":"`+api+`","aud":"x","iat":`+itoa(now.Unix())+`,"jti":"x","mandate":{}}`)
		}, nil, "claims"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := check(jkt)
			if tc.check != nil {
				tc.check(&c)
			}
			r := &memReplay{}
			_, err := Verify(context.Background(), tc.jws(), c, r)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrInvalid mentioning %q", err, tc.want)
			}
			if len(r.keys) != 0 {
				t.Error("a refused JWS spent its jti")
			}
		})
	}
}

func TestVerify_Replay(t *testing.T) {
	k, jkt := newKey(t)
	jws := sign(t, k, claims())
	r := &memReplay{}
	ev, err := Verify(context.Background(), jws, check(jkt), r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), jws, check(jkt), r); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "replayed") {
		t.Errorf("replay: %v", err)
	}
	// The key it was spent under is the one a caller releases after an
	// outage, so the same signature verifies again.
	r.mu.Lock()
	spent := r.keys[ev.ReplayKey()]
	delete(r.keys, ev.ReplayKey())
	r.mu.Unlock()
	if !spent {
		t.Fatalf("the jti was not spent under ReplayKey %s", ev.ReplayKey())
	}
	if _, err := Verify(context.Background(), jws, check(jkt), r); err != nil {
		t.Errorf("verify after the key was released: %v", err)
	}
	// The store down is not a refusal of the citizen's signature.
	down := errors.New("redis down")
	cl := claims()
	cl.ID = "jti-3"
	if _, err := Verify(context.Background(), sign(t, k, cl), check(jkt), &memReplay{fail: down}); !errors.Is(err, down) || errors.Is(err, ErrInvalid) {
		t.Errorf("store down: %v", err)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// unsigned builds a JWS with the given header and an empty signature.
func unsigned(t testing.TB, header string, c Claims) string {
	t.Helper()
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

// resigned signs the claims with k under a header that is the usual one
// changed by set (a nil value deletes the member).
func resigned(t testing.TB, k *ecdsa.PrivateKey, set map[string]any, c Claims) string {
	t.Helper()
	b, _ := json.Marshal(c)
	return signRaw(t, k, set, b)
}

func resignedPayload(t testing.TB, k *ecdsa.PrivateKey, payload string) string {
	t.Helper()
	return signRaw(t, k, nil, []byte(payload))
}

func signRaw(t testing.TB, k *ecdsa.PrivateKey, set map[string]any, payload []byte) string {
	t.Helper()
	pub, _ := json.Marshal(jose.JSONWebKey{Key: k.Public()})
	hdr := map[string]any{"alg": "ES256", "typ": Type, "jwk": json.RawMessage(pub)}
	for name, v := range set {
		if v == nil {
			delete(hdr, name)
		} else {
			hdr[name] = v
		}
	}
	hb, _ := json.Marshal(hdr)
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + base64.RawURLEncoding.EncodeToString(payload)
	// Signed by hand: go-jose would write its own header.
	return input + "." + base64.RawURLEncoding.EncodeToString(es256(t, k, []byte(input)))
}

// es256 is the JWS ES256 signature of input: r and s, 32 bytes each.
func es256(t testing.TB, k *ecdsa.PrivateKey, input []byte) []byte {
	t.Helper()
	sum := sha256.Sum256(input)
	r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out
}

func privateJWK(t testing.TB, k *ecdsa.PrivateKey) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: k})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParse: no input makes Parse panic, and whatever it accepts has a
// thumbprint and re-verifies.
func FuzzParse(f *testing.F) {
	k, _ := newKey(f)
	good := sign(f, k, claims())
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add(unsigned(f, `{"alg":"none","typ":"onedoor-mandate+jwt"}`, claims()))
	f.Add(resigned(f, k, map[string]any{"jwk": privateJWK(f, k)}, claims()))
	f.Add(resignedPayload(f, k, `{"iss":"d","aud":"a","aud":"b"}`))
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("refusal not ErrInvalid: %v", err)
			}
			return
		}
		if e.JKT == "" {
			t.Fatal("accepted without a thumbprint")
		}
	})
}
