package accesstoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
)

const (
	issuer   = "https://id.onedoor.test"
	userinfo = issuer + "/userinfo"
	mobile   = "https://api.onedoor.test"
)

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

// denyList is an in-memory idp.RevocationStore that records each read; the
// real ones run idptest's RevocationStore suite.
type denyList struct {
	m     map[string]time.Time
	now   func() time.Time
	down  bool
	reads [][]string
}

func (d *denyList) Revoke(_ context.Context, key string, until time.Time) error {
	if until.After(d.m[key]) {
		d.m[key] = until
	}
	return nil
}

func (d *denyList) AnyRevoked(_ context.Context, keys ...string) (bool, error) {
	if d.down {
		return false, idp.ErrUnavailable
	}
	d.reads = append(d.reads, keys)
	for _, k := range keys {
		if d.m[k].After(d.now()) {
			return true, nil
		}
	}
	return false, nil
}

type fixture struct {
	keys *fakeKeys
	deny *denyList
	now  time.Time
	v    *Verifier
	iss  *Issuer
}

func newFixture(t testing.TB) *fixture {
	f := &fixture{keys: newFakeKeys(t), now: time.Now()}
	clock := func() time.Time { return f.now }
	f.deny = &denyList{m: map[string]time.Time{}, now: clock}
	f.v = NewVerifier(issuer, f.keys, f.deny, 30*time.Second, clock)
	f.iss = NewIssuer(issuer, f.keys, clock)
	return f
}

func (f *fixture) claims() *Claims {
	c := &Claims{ClientID: "agency", Scope: "openid profile", GrantID: "grant-1", Kind: KindCitizen, DeviceID: "device-1"}
	c.Subject = "citizen-1"
	c.Audience = jwt.ClaimStrings{userinfo}
	c.SetExpiry(f.now.Add(10 * time.Minute))
	return c
}

// forge signs arbitrary claims and headers, bypassing the Issuer.
func (f *fixture) forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, mod func(c jwt.MapClaims)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": issuer, "sub": "citizen-1", "client_id": "agency", "gid": "grant-1", "jti": "jti-1",
		"aud": []string{userinfo}, "kind": "citizen", "iat": f.now.Unix(), "exp": f.now.Add(10 * time.Minute).Unix()}
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

// A client token of an agency-bound client names the agency.
func TestVerify_AgencyClaim(t *testing.T) {
	f := newFixture(t)
	c := f.claims()
	c.Kind, c.Subject, c.DeviceID, c.Agency = KindClient, c.ClientID, "", "HN-HOANKIEM"
	tok, err := f.iss.Sign(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonClaims(t, tok)["agency"]; got != "HN-HOANKIEM" {
		t.Errorf("agency claim = %v", got)
	}
	v, err := f.v.VerifyFor(context.Background(), tok, Expect{Audience: userinfo, Kind: KindClient})
	if err != nil || v.Agency != "HN-HOANKIEM" {
		t.Errorf("VerifyFor = %+v, %v", v, err)
	}
	// Without one, the claim is absent, not empty.
	c = f.claims()
	tok, err = f.iss.Sign(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := jsonClaims(t, tok)["agency"]; ok {
		t.Error("a token without an agency has an agency claim")
	}
}

// jsonClaims decodes a token's payload without checking it.
func jsonClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
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
		{"no jti", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { delete(c, "jti") })
		}},
		{"no aud (RFC 9068 2.2)", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { delete(c, "aud") })
		}},
		{"empty aud", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["aud"] = []string{} })
		}},
		{"no kind", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { delete(c, "kind") })
		}},
		{"unknown kind", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["kind"] = "admin" })
		}},
		{"client token whose sub is a citizen", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["kind"] = "client" })
		}},
		{"citizen token with an agency", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["agency"] = "BTP" })
		}},
		{"no iat", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { delete(c, "iat") })
		}},
		{"lives longer than MaxLifetime", func(t *testing.T) string {
			return f.forge(t, jwt.SigningMethodES256, es, nil, func(c jwt.MapClaims) { c["exp"] = f.now.Add(MaxLifetime + time.Minute).Unix() })
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

func TestVerify_Outages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok, _ := f.iss.Sign(ctx, f.claims())
	f.deny.down = true
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, ErrInvalid) {
		t.Errorf("deny list down: %v, want ErrUnavailable and not ErrInvalid", err)
	}
	if _, err := f.v.VerifyFor(ctx, tok, Expect{Audience: userinfo, Kind: KindCitizen}); !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, ErrInvalid) {
		t.Errorf("VerifyFor, deny list down: %v, want ErrUnavailable and not ErrInvalid", err)
	}
	f.deny.down = false
	f.keys.down = true
	if _, err := f.v.Verify(ctx, tok); !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, ErrInvalid) {
		t.Errorf("key store down: %v, want ErrUnavailable and not ErrInvalid", err)
	}
}

// SECURITY.md 67: a token minted for one service is worthless at another.
func TestVerifyFor_AudienceAndKind(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	sign := func(kind Kind, sub string, aud ...string) string {
		c := f.claims()
		c.Kind, c.Subject, c.Audience = kind, sub, aud
		tok, err := f.iss.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	citizenForMobile := sign(KindCitizen, "citizen-1", mobile)
	citizenForBoth := sign(KindCitizen, "citizen-1", mobile, userinfo)
	clientForMobile := sign(KindClient, "agency", mobile)
	tests := []struct {
		name string
		tok  string
		exp  Expect
		ok   bool
	}{
		{"citizen token for the mobile API at the mobile API", citizenForMobile, Expect{mobile, KindCitizen}, true},
		{"citizen token for two audiences at either", citizenForBoth, Expect{userinfo, KindCitizen}, true},
		{"citizen token for the mobile API at userinfo", citizenForMobile, Expect{userinfo, KindCitizen}, false},
		{"client token where citizen tokens are expected", clientForMobile, Expect{mobile, KindCitizen}, false},
		{"citizen token where client tokens are expected", citizenForMobile, Expect{mobile, KindClient}, false},
		{"client token where client tokens are expected", clientForMobile, Expect{mobile, KindClient}, true},
		{"a prefix of the audience", citizenForMobile, Expect{"https://api.onedoor", KindCitizen}, false},
		{"no expected audience", citizenForMobile, Expect{Kind: KindCitizen}, false},
		{"no expected kind", citizenForMobile, Expect{Audience: mobile}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.v.VerifyFor(ctx, tt.tok, tt.exp)
			if tt.ok && err != nil {
				t.Fatalf("VerifyFor: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalid) {
				t.Fatalf("VerifyFor: %v, want ErrInvalid", err)
			}
		})
	}
	if _, err := f.iss.Sign(ctx, &Claims{ClientID: "agency", GrantID: "g", Kind: KindCitizen}); err == nil {
		t.Error("the issuer signed a token without an audience")
	}
}

func TestVerify_DenyList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	mint := func(did string) (string, *Claims) {
		c := f.claims()
		c.DeviceID = did
		tok, err := f.iss.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.v.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("fresh token: %v", err)
		}
		return tok, got
	}
	refused := func(tok, what string) {
		t.Helper()
		if _, err := f.v.Verify(ctx, tok); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", what, err)
		}
		if _, err := f.v.VerifyFor(ctx, tok, Expect{userinfo, KindCitizen}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s (VerifyFor): %v, want ErrInvalid", what, err)
		}
	}

	t.Run("one read names grant, token and device", func(t *testing.T) {
		tok, c := mint("device-9")
		f.deny.reads = nil
		if _, err := f.v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if len(f.deny.reads) != 1 {
			t.Fatalf("%d deny-list reads, want 1", len(f.deny.reads))
		}
		want := []string{GrantKey("grant-1"), TokenKey(c.ID), DeviceKey("device-9")}
		if strings.Join(f.deny.reads[0], " ") != strings.Join(want, " ") {
			t.Errorf("keys read = %v, want %v", f.deny.reads[0], want)
		}
	})
	t.Run("a revoked token is refused, a later token of its grant is not", func(t *testing.T) {
		tok, c := mint("device-1")
		if err := f.v.RevokeToken(ctx, c); err != nil {
			t.Fatal(err)
		}
		refused(tok, "revoked token")
		later, _ := mint("device-1")
		if _, err := f.v.Verify(ctx, later); err != nil {
			t.Errorf("a later token of the same grant: %v", err)
		}
		// The denial lasts until the token expires, not forever.
		if until := f.deny.m[TokenKey(c.ID)]; until.Before(c.ExpiresAt.Time) || until.After(c.ExpiresAt.Add(time.Minute)) {
			t.Errorf("token denied until %v, token expires %v", until, c.ExpiresAt)
		}
	})
	t.Run("a revoked device refuses its tokens", func(t *testing.T) {
		tok, _ := mint("device-stolen")
		other, _ := mint("device-2")
		if err := DenyDevice(ctx, f.deny, "device-stolen", time.Now()); err != nil {
			t.Fatal(err)
		}
		refused(tok, "token of a revoked device")
		if _, err := f.v.Verify(ctx, other); err != nil {
			t.Errorf("another device's token: %v", err)
		}
		// Denied for at least the longest a token can live.
		if until := f.deny.m[DeviceKey("device-stolen")]; until.Before(f.now.Add(MaxLifetime)) {
			t.Errorf("device denied until %v, want at least now + %v", until, MaxLifetime)
		}
	})
	t.Run("a withdrawn consent refuses its tokens, in the same read", func(t *testing.T) {
		c := f.claims()
		c.ConsentID = "cns_withdrawn"
		tok, err := f.iss.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := f.v.Verify(ctx, tok); err != nil || got.ConsentID != "cns_withdrawn" {
			t.Fatalf("fresh token with a consent: %+v, %v", got, err)
		}
		f.deny.reads = nil
		other := f.claims()
		other.ConsentID = "cns_kept"
		otherTok, _ := f.iss.Sign(ctx, other)
		if err := DenyConsent(ctx, f.deny, "cns_withdrawn", time.Now()); err != nil {
			t.Fatal(err)
		}
		refused(tok, "token of a withdrawn consent")
		if _, err := f.v.Verify(ctx, otherTok); err != nil {
			t.Errorf("another consent's token: %v", err)
		}
		if !slices.Contains(f.deny.reads[0], ConsentKey("cns_withdrawn")) || len(f.deny.reads[0]) != 4 {
			t.Errorf("keys read = %v, want grant, token, device and consent in one read", f.deny.reads[0])
		}
		if until := f.deny.m[ConsentKey("cns_withdrawn")]; until.Before(f.now.Add(MaxLifetime)) {
			t.Errorf("consent denied until %v, want at least now + %v", until, MaxLifetime)
		}
	})
	t.Run("a revoked grant refuses every token of the grant", func(t *testing.T) {
		tok, _ := mint("device-3")
		if err := f.v.RevokeGrant(ctx, "grant-1"); err != nil {
			t.Fatal(err)
		}
		refused(tok, "token of a revoked grant")
		if _, err := f.v.Parse(ctx, tok); err != nil {
			t.Errorf("Parse ignores the deny list: %v", err)
		}
	})
}

// FuzzVerify: no input panics, and no change to a valid token verifies.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	c := fx.claims()
	c.SetExpiry(fx.now.Add(MaxLifetime))
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

func TestDenyKeys(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	if err := DenyKeys(ctx, f.deny, f.now); err != nil {
		t.Fatalf("no keys: %v", err)
	}
	keys := []string{"rep:mandate:mdt_1", "rep:legalrep:org:x:sub"}
	if err := DenyKeys(ctx, f.deny, f.now, keys...); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if until := f.deny.m[k]; until.Before(f.now.Add(MaxLifetime)) {
			t.Errorf("%s denied until %v, want at least now + %v", k, until, MaxLifetime)
		}
	}
	if ok, err := f.deny.AnyRevoked(ctx, "rep:mandate:mdt_2"); ok || err != nil {
		t.Errorf("another key denied: %v %v", ok, err)
	}
}
