package eid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

var errDown = fmt.Errorf("db down: %w", idp.ErrUnavailable)

func TestService_Activate(t *testing.T) {
	ctx := context.Background()
	t.Run("code is typable and stored only as a hash", func(t *testing.T) {
		f := newFixture(t)
		code, exp, err := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^[A-HJ-NP-Z2-9]{5}-[A-HJ-NP-Z2-9]{5}$`).MatchString(code) {
			t.Errorf("code %q not XXXXX-XXXXX from the unambiguous alphabet", code)
		}
		if want := f.clock.Now().Add(15 * time.Minute); !exp.Equal(want) {
			t.Errorf("expiresAt = %v, want %v", exp, want)
		}
		a, _ := f.store.activation(testCitizen.ID)
		if a.Level != idp.LevelHigh || len(a.CodeHash) != 32 || strings.Contains(string(a.CodeHash), code[:5]) {
			t.Errorf("activation = %+v", a)
		}
	})
	t.Run("unknown citizen", func(t *testing.T) {
		f := newFixture(t)
		if _, _, err := f.svc.Activate(ctx, "999999999999", idp.LevelHigh); !errors.Is(err, idp.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("level low refused", func(t *testing.T) {
		f := newFixture(t)
		for _, l := range []idp.Level{idp.LevelLow, "", "urn:other"} {
			if _, _, err := f.svc.Activate(ctx, testCitizen.PersonalID, l); !errors.Is(err, idp.ErrInvalid) {
				t.Errorf("level %q: err = %v, want ErrInvalid", l, err)
			}
		}
	})
	t.Run("new code replaces the previous", func(t *testing.T) {
		f := newFixture(t)
		old, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelSubstantial)
		req := eid.EnrollRequest{PersonalID: testCitizen.PersonalID, ActivationCode: old, PublicKey: publicJWK(t, newKey(t).Public())}
		if _, err := f.svc.Enroll(ctx, req); !errors.Is(err, eid.ErrEnrollmentFailed) {
			t.Errorf("old code: err = %v, want ErrEnrollmentFailed", err)
		}
		req.ActivationCode = code
		d, err := f.svc.Enroll(ctx, req)
		if err != nil || d.Level != idp.LevelSubstantial {
			t.Errorf("new code: device %+v, err %v", d, err)
		}
	})
}

func TestService_Enroll(t *testing.T) {
	ctx := context.Background()
	enrollWith := func(t *testing.T, f *fixture, code string) (*idp.Device, error) {
		return f.svc.Enroll(ctx, eid.EnrollRequest{
			PersonalID: testCitizen.PersonalID, ActivationCode: code,
			PublicKey: publicJWK(t, newKey(t).Public()), DeviceName: "Pixel 9",
		})
	}
	wrongCode := "ZZZZZ-ZZZZZ"

	t.Run("happy path", func(t *testing.T) {
		f := newFixture(t)
		code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		key := newKey(t)
		typed := " " + strings.ToLower(code[:3]) + " " + code[3:] + " " // how people type
		d, err := f.svc.Enroll(ctx, eid.EnrollRequest{
			PersonalID: testCitizen.PersonalID, ActivationCode: typed,
			PublicKey: publicJWK(t, key.Public()), DeviceName: "Pixel 9",
		})
		if err != nil {
			t.Fatal(err)
		}
		if d.CitizenID != testCitizen.ID || d.Level != idp.LevelHigh || d.Name != "Pixel 9" || len(d.ID) != 22 || !d.CreatedAt.Equal(f.clock.Now()) {
			t.Errorf("device = %+v", d)
		}
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON([]byte(d.PublicKey)); err != nil || !k.IsPublic() || k.KeyID != d.ID || k.Algorithm != "ES256" {
			t.Errorf("stored key %s: %v", d.PublicKey, err)
		}
		if pub, ok := k.Key.(*ecdsa.PublicKey); !ok || !pub.Equal(key.Public()) {
			t.Errorf("stored key is not the enrolled key")
		}
		if a, _ := f.store.activation(testCitizen.ID); a.UsedAt == nil || a.Attempts != 1 {
			t.Errorf("activation after use = %+v", a)
		}
		if ds, _ := f.svc.Devices(ctx, testCitizen.ID); len(ds) != 1 || ds[0].ID != d.ID {
			t.Errorf("Devices = %+v", ds)
		}
	})

	t.Run("wrong code counts attempts and locks after max", func(t *testing.T) {
		f := newFixture(t)
		code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		for i := 1; i <= 5; i++ {
			if _, err := enrollWith(t, f, wrongCode); err != eid.ErrEnrollmentFailed {
				t.Fatalf("attempt %d: err = %v, want ErrEnrollmentFailed", i, err)
			}
			if a, _ := f.store.activation(testCitizen.ID); a.Attempts != i {
				t.Fatalf("after attempt %d: Attempts = %d", i, a.Attempts)
			}
		}
		if _, err := enrollWith(t, f, code); err != eid.ErrEnrollmentFailed {
			t.Errorf("right code after lockout: err = %v, want ErrEnrollmentFailed", err)
		}
		if a, _ := f.store.activation(testCitizen.ID); a.Attempts != 5 || a.UsedAt != nil {
			t.Errorf("locked activation changed: %+v", a)
		}
	})

	t.Run("right code on the last allowed attempt", func(t *testing.T) {
		f := newFixture(t)
		code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		for range 4 {
			if _, err := enrollWith(t, f, wrongCode); err == nil {
				t.Fatal("wrong code accepted")
			}
		}
		if _, err := enrollWith(t, f, code); err != nil {
			t.Errorf("fifth attempt: %v", err)
		}
	})

	t.Run("expired code", func(t *testing.T) {
		f := newFixture(t)
		code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		f.clock.Advance(15 * time.Minute)
		if _, err := enrollWith(t, f, code); err != eid.ErrEnrollmentFailed {
			t.Errorf("err = %v, want ErrEnrollmentFailed", err)
		}
	})

	t.Run("used code", func(t *testing.T) {
		f := newFixture(t)
		code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		if _, err := enrollWith(t, f, code); err != nil {
			t.Fatal(err)
		}
		if _, err := enrollWith(t, f, code); err != eid.ErrEnrollmentFailed {
			t.Errorf("second use: err = %v, want ErrEnrollmentFailed", err)
		}
		if ds, _ := f.svc.Devices(ctx, testCitizen.ID); len(ds) != 1 {
			t.Errorf("%d devices, want 1", len(ds))
		}
	})

	t.Run("unknown personal id looks like a wrong code", func(t *testing.T) {
		f := newFixture(t)
		if _, _, err := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh); err != nil {
			t.Fatal(err)
		}
		_, wrong := enrollWith(t, f, wrongCode)
		var unknown, malformed, noActivation error
		for pid, errp := range map[string]*error{"999999999999": &unknown, "12ab": &malformed} {
			_, *errp = f.svc.Enroll(ctx, eid.EnrollRequest{PersonalID: pid, ActivationCode: wrongCode, PublicKey: publicJWK(t, newKey(t).Public())})
		}
		other := testCitizen
		other.ID, other.PersonalID = "c-0002", "001099099999"
		if err := f.store.CreateCitizens(ctx, []*idp.Citizen{&other}); err != nil {
			t.Fatal(err)
		}
		_, noActivation = f.svc.Enroll(ctx, eid.EnrollRequest{PersonalID: other.PersonalID, ActivationCode: wrongCode, PublicKey: publicJWK(t, newKey(t).Public())})
		for name, err := range map[string]error{"wrong code": wrong, "unknown": unknown, "malformed": malformed, "no activation": noActivation} {
			if err != eid.ErrEnrollmentFailed {
				t.Errorf("%s: err = %v, want exactly ErrEnrollmentFailed", name, err)
			}
		}
	})

	t.Run("bad keys and names", func(t *testing.T) {
		priv := newKey(t)
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		withAlg := func(alg string) json.RawMessage {
			b, _ := json.Marshal(jose.JSONWebKey{Key: priv.Public(), Algorithm: alg})
			return b
		}
		offCurve := strings.Replace(string(publicJWK(t, priv.Public())), `"y":"`, `"y":"A`, 1)
		tests := []struct {
			name string
			key  json.RawMessage
			dev  string
		}{
			{"private key included", publicJWK(t, priv), ""},
			{"wrong curve", publicJWK(t, p384.Public()), ""},
			{"RSA", publicJWK(t, rsaKey.Public()), ""},
			{"symmetric", []byte(`{"kty":"oct","k":"c2VjcmV0"}`), ""},
			{"alg HS256", withAlg("HS256"), ""},
			{"off curve", json.RawMessage(offCurve), ""},
			{"not JSON", []byte(`not json`), ""},
			{"missing", nil, ""},
			{"name too long", publicJWK(t, priv.Public()), strings.Repeat("é", 65)},
			{"control character", publicJWK(t, priv.Public()), "Pixel\n9"},
			{"bidi override", publicJWK(t, priv.Public()), "Pixel\u202e9"},
			{"invalid UTF-8", publicJWK(t, priv.Public()), "Pixel\xff"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f := newFixture(t)
				code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
				_, err := f.svc.Enroll(ctx, eid.EnrollRequest{PersonalID: testCitizen.PersonalID, ActivationCode: code, PublicKey: tt.key, DeviceName: tt.dev})
				if !errors.Is(err, eid.ErrEnrollmentFailed) || !errors.Is(err, idp.ErrInvalid) {
					t.Errorf("err = %v, want ErrEnrollmentFailed", err)
				}
				if a, _ := f.store.activation(testCitizen.ID); a.Attempts != 0 {
					t.Errorf("a malformed request used an attempt")
				}
			})
		}
	})

	t.Run("store unavailable is not a refusal", func(t *testing.T) {
		f := newFixture(t)
		code, _, _ := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
		f.store.setFail(errDown)
		_, err := enrollWith(t, f, code)
		if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, eid.ErrEnrollmentFailed) {
			t.Errorf("err = %v, want ErrUnavailable only", err)
		}
	})
}

func TestService_AuthenticateDevice(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelHigh)
	ecdhKey, err := key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	pubDER := ecdhKey.Bytes() // the bytes an HS256 confusion attack would use as secret
	other := newKey(t)

	t.Run("valid token, then replay", func(t *testing.T) {
		tok := f.deviceToken(t, dev, key, nil)
		got, err := f.svc.AuthenticateDevice(ctx, tok, testIssuer)
		if err != nil || got.ID != dev.ID || got.CitizenID != testCitizen.ID {
			t.Fatalf("AuthenticateDevice = %+v, %v", got, err)
		}
		if _, err := f.svc.AuthenticateDevice(ctx, tok, testIssuer); !errors.Is(err, eid.ErrDeviceAuth) {
			t.Errorf("replay: err = %v, want ErrDeviceAuth", err)
		}
	})

	t.Run("within skew", func(t *testing.T) {
		tok := f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) {
			c.IssuedAt = jwt.NewNumericDate(f.clock.Now().Add(20 * time.Second))
			c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(80 * time.Second))
		})
		if _, err := f.svc.AuthenticateDevice(ctx, tok, testIssuer); err != nil {
			t.Errorf("iat 20 s ahead: %v", err)
		}
	})

	refused := []struct {
		name string
		tok  func() string
	}{
		{"wrong aud", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) { c.Audience = jwt.ClaimStrings{"https://evil.test"} })
		}},
		{"no aud", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) { c.Audience = nil })
		}},
		{"expired", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) {
				c.IssuedAt = jwt.NewNumericDate(f.clock.Now().Add(-2 * time.Minute))
				c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(-31 * time.Second))
			})
		}},
		{"no exp", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) { c.ExpiresAt = nil })
		}},
		{"no iat", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) { c.IssuedAt = nil })
		}},
		{"iat beyond skew", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) {
				c.IssuedAt = jwt.NewNumericDate(f.clock.Now().Add(40 * time.Second))
				c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(100 * time.Second))
			})
		}},
		{"lifetime over two minutes", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) {
				c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(121 * time.Second))
			})
		}},
		{"nbf beyond skew", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) {
				c.NotBefore = jwt.NewNumericDate(f.clock.Now().Add(time.Minute))
			})
		}},
		{"no jti", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) { c.ID = "" })
		}},
		{"iss is not the device", func() string {
			return f.deviceToken(t, dev, key, func(_ map[string]any, c *eid.DeviceClaims) { c.Issuer = "someone" })
		}},
		{"alg none", func() string {
			c := eid.DeviceClaims{RegisteredClaims: registered(f.clock.Now(), dev.ID, testIssuer)}
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
				map[string]any{"alg": "none", "typ": eid.TypeDeviceToken, "kid": dev.ID}, c)
		}},
		{"HS256 with the public key as secret", func() string {
			c := eid.DeviceClaims{RegisteredClaims: registered(f.clock.Now(), dev.ID, testIssuer)}
			return sign(t, jwt.SigningMethodHS256, pubDER,
				map[string]any{"alg": "HS256", "typ": eid.TypeDeviceToken, "kid": dev.ID}, c)
		}},
		{"HS256 with the public JWK as secret", func() string {
			c := eid.DeviceClaims{RegisteredClaims: registered(f.clock.Now(), dev.ID, testIssuer)}
			return sign(t, jwt.SigningMethodHS256, []byte(dev.PublicKey),
				map[string]any{"alg": "HS256", "typ": eid.TypeDeviceToken, "kid": dev.ID}, c)
		}},
		{"ES384 header", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["alg"] = "ES384" })
		}},
		{"signed by another key", func() string { return f.deviceToken(t, dev, other, nil) }},
		{"wrong typ", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["typ"] = "JWT" })
		}},
		{"approval used as device token", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["typ"] = eid.TypeApproval })
		}},
		{"unknown kid", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["kid"] = "AAAAAAAAAAAAAAAAAAAAAA" })
		}},
		{"kid with path characters", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["kid"] = "../../" + dev.ID })
		}},
		{"no kid", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { delete(h, "kid") })
		}},
		{"jku header", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["jku"] = "https://evil.test/jwks" })
		}},
		{"x5u header", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["x5u"] = "https://evil.test/cert" })
		}},
		{"x5c header", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["x5c"] = []string{"MIIB"} })
		}},
		{"jwk header", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["jwk"] = json.RawMessage(publicJWK(t, other.Public())) })
		}},
		{"crit header", func() string {
			return f.deviceToken(t, dev, key, func(h map[string]any, _ *eid.DeviceClaims) { h["crit"] = []string{"exp"} })
		}},
		{"whitespace", func() string { return " " + f.deviceToken(t, dev, key, nil) }},
		{"empty", func() string { return "" }},
		{"two segments", func() string {
			tok := f.deviceToken(t, dev, key, nil)
			return tok[:strings.LastIndex(tok, ".")]
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.AuthenticateDevice(ctx, tt.tok(), testIssuer)
			if !errors.Is(err, eid.ErrDeviceAuth) || !errors.Is(err, idp.ErrInvalid) {
				t.Fatalf("err = %v, want ErrDeviceAuth", err)
			}
			if why := refusedWhy[tt.name]; !strings.Contains(err.Error(), why) {
				t.Errorf("err = %v, want it refused for %q", err, why)
			}
		})
	}

	t.Run("revoked device", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		if err := f.svc.RevokeDevice(ctx, testCitizen.ID, dev.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.AuthenticateDevice(ctx, f.deviceToken(t, dev, key, nil), testIssuer); !errors.Is(err, eid.ErrDeviceAuth) {
			t.Errorf("err = %v, want ErrDeviceAuth", err)
		}
	})

	t.Run("stores unavailable pass through", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		f.store.setFail(errDown)
		_, err := f.svc.AuthenticateDevice(ctx, f.deviceToken(t, dev, key, nil), testIssuer)
		if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, idp.ErrInvalid) {
			t.Errorf("durable store down: err = %v, want ErrUnavailable only", err)
		}
		f.store.setFail(nil)
		f.eph.setFail(errDown)
		_, err = f.svc.AuthenticateDevice(ctx, f.deviceToken(t, dev, key, nil), testIssuer)
		if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, idp.ErrInvalid) {
			t.Errorf("ephemeral store down: err = %v, want ErrUnavailable only", err)
		}
	})
}

// refusedWhy keeps the refusal tests honest: each token must fail the check
// it was built to fail.
var refusedWhy = map[string]string{
	"wrong aud":                           "audience",
	"no aud":                              "required claim",
	"expired":                             "expired",
	"no exp":                              "required claim",
	"no iat":                              "iat and exp",
	"iat beyond skew":                     "future",
	"lifetime over two minutes":           "exp - iat",
	"nbf beyond skew":                     "not valid yet",
	"no jti":                              "jti",
	"iss is not the device":               "iss",
	"alg none":                            "alg",
	"HS256 with the public key as secret": "alg",
	"HS256 with the public JWK as secret": "alg",
	"ES384 header":                        "alg",
	"signed by another key":               "signature",
	"wrong typ":                           "typ",
	"approval used as device token":       "typ",
	"unknown kid":                         "unknown device",
	"kid with path characters":            "kid",
	"no kid":                              "kid",
	"jku header":                          "jku",
	"x5u header":                          "x5u",
	"x5c header":                          "x5c",
	"jwk header":                          "jwk",
	"crit header":                         "crit",
	"whitespace":                          "compact",
	"empty":                               "compact",
	"two segments":                        "compact",
}

func TestService_RevokeDevice(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, _ := f.enroll(t, idp.LevelHigh)
	if err := f.svc.RevokeDevice(ctx, "c-other", dev.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("another citizen's device: err = %v, want ErrNotFound", err)
	}
	if err := f.svc.RevokeDevice(ctx, testCitizen.ID, "no-such-device"); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("absent device: err = %v, want ErrNotFound", err)
	}
	if err := f.svc.RevokeDevice(ctx, testCitizen.ID, dev.ID); err != nil {
		t.Fatal(err)
	}
	ds, err := f.svc.Devices(ctx, testCitizen.ID)
	if err != nil || len(ds) != 1 || ds[0].RevokedAt == nil {
		t.Errorf("Devices = %+v, %v", ds, err)
	}
}

func TestService_RevokeDeviceRunsOnRevoke(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, _ := f.enroll(t, idp.LevelHigh)
	var revoked []string
	fail := true
	svc := eid.New(f.store, f.eph, eid.Config{Issuer: testIssuer, CodeKey: []byte("0123456789abcdef0123456789abcdef"), Now: f.clock.Now,
		OnRevoke: func(_ context.Context, id string) error {
			revoked = append(revoked, id)
			if fail {
				return errors.New("push store down")
			}
			return nil
		}})
	if err := svc.RevokeDevice(ctx, testCitizen.ID, dev.ID); err == nil {
		t.Fatal("a revocation whose derived revocations failed reported success")
	}
	fail = false // the caller retries the whole revocation
	if err := svc.RevokeDevice(ctx, testCitizen.ID, dev.ID); err != nil {
		t.Fatal(err)
	}
	if len(revoked) != 2 || revoked[1] != dev.ID {
		t.Errorf("OnRevoke calls = %v", revoked)
	}
}

func TestConfig_Validate(t *testing.T) {
	if err := (eid.Config{Issuer: testIssuer, CodeKey: make([]byte, 32)}).Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	err := eid.Config{Issuer: "id.onedoor.test", CodeKey: []byte("short"), LoginTTL: 5 * time.Minute, Skew: -time.Second}.Validate()
	if !errors.Is(err, idp.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	for _, want := range []string{"issuer", "code key", "login TTL", "skew"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
