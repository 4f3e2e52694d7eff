package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
)

const issuer = "https://id.onedoor.test"

// fakeKeys holds one ES256 and one RS256 key and counts lookups.
type fakeKeys struct {
	es, rs  *keyset.Key
	lookups atomic.Int32
	down    bool
}

func newFakeKeys(t testing.TB) *fakeKeys {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeKeys{
		es: &keyset.Key{ID: "es-1", Alg: "ES256", Private: ec, Public: &ec.PublicKey},
		rs: &keyset.Key{ID: "rs-1", Alg: "RS256", Private: rk, Public: &rk.PublicKey},
	}
}

func (k *fakeKeys) SigningKey(_ context.Context, alg string) (*keyset.Key, error) {
	if alg == "RS256" {
		return k.rs, nil
	}
	return k.es, nil
}

func (k *fakeKeys) PublicKey(_ context.Context, kid string) (*keyset.Key, error) {
	k.lookups.Add(1)
	if k.down {
		return nil, idp.ErrUnavailable
	}
	switch kid {
	case k.es.ID:
		return &keyset.Key{ID: kid, Alg: "ES256", Public: k.es.Public}, nil
	case k.rs.ID:
		return &keyset.Key{ID: kid, Alg: "RS256", Public: k.rs.Public}, nil
	}
	return nil, idp.ErrNotFound
}

// denyList is an in-memory Revocations.
type denyList struct {
	m    map[string]bool
	down bool
}

func (d *denyList) Get(_ context.Context, key string) ([]byte, error) {
	if d.down {
		return nil, idp.ErrUnavailable
	}
	if d.m[key] {
		return []byte{1}, nil
	}
	return nil, idp.ErrNotFound
}

func (d *denyList) Set(_ context.Context, key string, _ []byte, _ time.Duration) error {
	d.m[key] = true
	return nil
}

type fixture struct {
	keys *fakeKeys
	deny *denyList
	now  time.Time
	v    *Verifier
	iss  *Issuer
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{keys: newFakeKeys(t), deny: &denyList{m: map[string]bool{}}, now: time.Now()}
	clock := func() time.Time { return f.now }
	f.v = NewVerifier(issuer, f.keys, f.deny, 30*time.Second, clock)
	f.iss = NewIssuer(issuer, f.keys, clock)
	return f
}

func (f *fixture) claims() *Claims {
	c := &Claims{ClientID: "agency", Scope: "openid profile", GrantID: "grant-1"}
	c.Subject = "citizen-1"
	c.SetExpiry(f.now.Add(10 * time.Minute))
	return c
}

// forge signs arbitrary claims and headers, bypassing the Issuer.
func (f *fixture) forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, mod func(c jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": issuer, "sub": "citizen-1", "client_id": "agency", "gid": "grant-1",
		"iat": f.now.Unix(), "exp": f.now.Add(10 * time.Minute).Unix()}
	if mod != nil {
		mod(c)
	}
	tok := jwt.NewWithClaims(method, c)
	tok.Header["typ"] = Type
	tok.Header["kid"] = f.keys.es.ID
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerify_Valid(t *testing.T) {
	f := newFixture(t)
	tok, err := f.iss.Sign(context.Background(), f.claims())
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.Subject != "citizen-1" || c.GrantID != "grant-1" || c.ClientID != "agency" || strings.Join(c.Scopes(), " ") != "openid profile" {
		t.Errorf("claims = %+v", c)
	}
}

// SECURITY.md 31: what the verifier must refuse.
func TestVerify_Rejects(t *testing.T) {
	f := newFixture(t)
	es := f.keys.es.Private
	rsaPub := x509.MarshalPKCS1PublicKey(f.keys.rs.Public.(*rsa.PublicKey))
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name string
		tok  func(t *testing.T) string
	}{
		{"alg none", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, nil)
		}},
		{"HS256 keyed with the public key", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodHS256, rsaPub, map[string]any{"kid": f.keys.rs.ID}, nil)
		}},
		{"RS256 with a published RSA key", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodRS256, f.keys.rs.Private, map[string]any{"kid": f.keys.rs.ID}, nil)
		}},
		{"unknown kid", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"kid": "nope"}, nil)
		}},
		{"kid with path characters", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"kid": "../../etc/passwd"}, nil)
		}},
		{"kid with SQL", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"kid": "x' OR '1'='1"}, nil)
		}},
		{"jku header", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"jku": "https://evil.example/jwks"}, nil)
		}},
		{"x5u header", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"x5u": "https://evil.example/cert"}, nil)
		}},
		{"x5c header", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"x5c": []string{"MIIB"}}, nil)
		}},
		{"embedded jwk", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"jwk": map[string]any{"kty": "EC"}}, nil)
		}},
		{"unknown crit", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"crit": []string{"exp-ext"}, "exp-ext": 1}, nil)
		}},
		{"typ JWT, not at+jwt (an ID token)", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, map[string]any{"typ": "JWT"}, nil)
		}},
		{"nbf beyond skew", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["nbf"] = f.now.Add(time.Minute).Unix() })
		}},
		{"expired beyond skew", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["exp"] = f.now.Add(-time.Minute).Unix() })
		}},
		{"no exp", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { delete(c, "exp") })
		}},
		{"wrong iss", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["iss"] = "https://staging.onedoor.test" })
		}},
		{"another environment's key under our kid", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, other, nil, nil)
		}},
		{"no grant id", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { delete(c, "gid") })
		}},
		{"no client_id", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { delete(c, "client_id") })
		}},
		{"garbage", func(*testing.T) string { return "a.b.c" }},
		{"oversized", func(*testing.T) string { return strings.Repeat("a", 9000) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.keys.lookups.Load()
			_, err := f.v.Verify(context.Background(), tt.tok(t))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if strings.Contains(tt.name, "kid with") && f.keys.lookups.Load() != before {
				t.Error("a malformed kid reached the key lookup")
			}
		})
	}
}

func TestVerify_SkewTolerated(t *testing.T) {
	f := newFixture(t)
	for _, mod := range []func(c jwt.MapClaims){
		func(c jwt.MapClaims) { c["nbf"] = f.now.Add(20 * time.Second).Unix() },
		func(c jwt.MapClaims) { c["exp"] = f.now.Add(-20 * time.Second).Unix() },
		func(c jwt.MapClaims) { c["iat"] = f.now.Add(20 * time.Second).Unix() },
	} {
		if _, err := f.v.Verify(context.Background(), f.forge(t, jwt.SigningMethodES256, f.keys.es.Private, nil, mod)); err != nil {
			t.Errorf("within 30 s of skew: %v", err)
		}
	}
}

func TestVerify_RevocationAndOutages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok, _ := f.iss.Sign(ctx, f.claims())
	f.deny.down = true
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, ErrInvalid) {
		t.Errorf("deny list down: %v, want ErrUnavailable and not ErrInvalid", err)
	}
	f.deny.down = false
	f.keys.down = true
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, ErrInvalid) {
		t.Errorf("key store down: %v, want ErrUnavailable and not ErrInvalid", err)
	}
	f.keys.down = false
	if err := f.v.Revoke(ctx, "grant-1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, ErrInvalid) {
		t.Errorf("revoked grant: %v, want ErrInvalid", err)
	}
	if _, err := f.v.Parse(ctx, tok); err != nil {
		t.Errorf("Parse ignores the deny list: %v", err)
	}
}

// FuzzVerify: no input panics, and no change to a valid token verifies.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	c := fx.claims()
	c.SetExpiry(time.Now().Add(24 * time.Hour))
	valid, _ := fx.iss.Sign(context.Background(), c)
	f.Add(valid, 0, byte(0))
	f.Add("e30.e30.", 1, byte('A'))
	f.Add("", 0, byte(0))
	f.Fuzz(func(t *testing.T, tok string, pos int, b byte) {
		_, _ = fx.v.Verify(context.Background(), tok)
		if len(valid) == 0 || pos < 0 {
			return
		}
		i := pos % len(valid)
		if valid[i] == b || valid[i] == '.' {
			return
		}
		mutated := valid[:i] + string(b) + valid[i+1:]
		if _, err := fx.v.Verify(context.Background(), mutated); err == nil && mutated != valid {
			// A changed signature character can still decode to the same
			// bytes (base64 padding bits); only then may it verify.
			parts := strings.Split(mutated, ".")
			if len(parts) != 3 || i < len(valid)-len(parts[2]) {
				t.Fatalf("mutated token verified (byte %d set to %q)", i, b)
			}
		}
	})
}
