package eid_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

const testTokenURL = testIssuer + "/token"

func (f *fixture) grant(t testing.TB, dev *idp.Device, key *ecdsa.PrivateKey, mod func(h map[string]any, c *eid.GrantClaims)) string {
	t.Helper()
	h := map[string]any{"alg": "ES256", "typ": eid.TypeGrant, "kid": dev.ID}
	c := eid.GrantClaims{RegisteredClaims: registered(f.clock.Now(), dev.ID, testTokenURL)}
	c.Subject = dev.ID
	if mod != nil {
		mod(h, &c)
	}
	return sign(t, jwt.SigningMethodES256, key, h, c)
}

func TestService_AuthenticateGrant(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelSubstantial)
	other := newKey(t)

	t.Run("valid assertion, bound to the device key, then replay", func(t *testing.T) {
		a := f.grant(t, dev, key, nil)
		got, jkt, err := f.svc.AuthenticateGrant(ctx, a, testTokenURL)
		if err != nil || got.ID != dev.ID || got.CitizenID != testCitizen.ID || got.Level != idp.LevelSubstantial {
			t.Fatalf("AuthenticateGrant = %+v, %q, %v", got, jkt, err)
		}
		sum, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if want := base64.RawURLEncoding.EncodeToString(sum); jkt != want {
			t.Errorf("thumbprint = %q, want the RFC 7638 thumbprint %q", jkt, want)
		}
		if _, _, err := f.svc.AuthenticateGrant(ctx, a, testTokenURL); !errors.Is(err, eid.ErrDeviceAuth) || !strings.Contains(err.Error(), "replayed") {
			t.Errorf("replay: err = %v, want ErrDeviceAuth (replayed)", err)
		}
	})

	refused := []struct {
		name, why string
		tok       func() string
	}{
		{"device token used as a grant", "typ", func() string {
			return f.grant(t, dev, key, func(h map[string]any, _ *eid.GrantClaims) { h["typ"] = eid.TypeDeviceToken })
		}},
		{"approval used as a grant", "typ", func() string {
			return f.grant(t, dev, key, func(h map[string]any, _ *eid.GrantClaims) { h["typ"] = eid.TypeApproval })
		}},
		{"no typ", "typ", func() string {
			return f.grant(t, dev, key, func(h map[string]any, _ *eid.GrantClaims) { delete(h, "typ") })
		}},
		{"aud is the issuer", "audience", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.Audience = jwt.ClaimStrings{testIssuer} })
		}},
		{"aud of another IdP", "audience", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.Audience = jwt.ClaimStrings{"https://evil.test/token"} })
		}},
		{"ES384 header", "alg", func() string {
			return f.grant(t, dev, key, func(h map[string]any, _ *eid.GrantClaims) { h["alg"] = "ES384" })
		}},
		{"alg none", "alg", func() string {
			c := eid.GrantClaims{RegisteredClaims: registered(f.clock.Now(), dev.ID, testTokenURL)}
			c.Subject = dev.ID
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
				map[string]any{"alg": "none", "typ": eid.TypeGrant, "kid": dev.ID}, c)
		}},
		{"HS256 with the public JWK as secret", "alg", func() string {
			c := eid.GrantClaims{RegisteredClaims: registered(f.clock.Now(), dev.ID, testTokenURL)}
			c.Subject = dev.ID
			return sign(t, jwt.SigningMethodHS256, []byte(dev.PublicKey),
				map[string]any{"alg": "HS256", "typ": eid.TypeGrant, "kid": dev.ID}, c)
		}},
		{"signed by another key", "signature", func() string { return f.grant(t, dev, other, nil) }},
		{"expired", "expired", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) {
				c.IssuedAt = jwt.NewNumericDate(f.clock.Now().Add(-2 * time.Minute))
				c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(-31 * time.Second))
			})
		}},
		{"lifetime over two minutes", "exp - iat", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) {
				c.ExpiresAt = jwt.NewNumericDate(f.clock.Now().Add(121 * time.Second))
			})
		}},
		{"no iat", "iat and exp", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.IssuedAt = nil })
		}},
		{"no jti", "jti", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.ID = "" })
		}},
		{"jti too long", "jti", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.ID = strings.Repeat("j", 129) })
		}},
		{"no sub", "sub", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.Subject = "" })
		}},
		{"sub is the citizen", "sub", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.Subject = testCitizen.ID })
		}},
		{"iss is not the device", "iss", func() string {
			return f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.Issuer = "someone" })
		}},
		{"unknown device", "unknown device", func() string {
			return f.grant(t, dev, key, func(h map[string]any, c *eid.GrantClaims) {
				h["kid"] = "AAAAAAAAAAAAAAAAAAAAAA"
				c.Issuer, c.Subject = "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA"
			})
		}},
		{"jwk header", "jwk", func() string {
			return f.grant(t, dev, key, func(h map[string]any, _ *eid.GrantClaims) { h["jwk"] = publicJWK(t, other.Public()) })
		}},
		{"not a compact JWS", "compact", func() string { return "a.b" }},
		{"empty", "compact", func() string { return "" }},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.svc.AuthenticateGrant(ctx, tt.tok(), testTokenURL)
			if !errors.Is(err, eid.ErrDeviceAuth) || !errors.Is(err, idp.ErrInvalid) {
				t.Fatalf("err = %v, want ErrDeviceAuth", err)
			}
			if !strings.Contains(err.Error(), tt.why) {
				t.Errorf("err = %v, want it refused for %q", err, tt.why)
			}
		})
	}

	t.Run("a grant is not a device token", func(t *testing.T) {
		a := f.grant(t, dev, key, func(_ map[string]any, c *eid.GrantClaims) { c.Audience = jwt.ClaimStrings{testIssuer} })
		if _, err := f.svc.AuthenticateDevice(ctx, a, testIssuer); !errors.Is(err, eid.ErrDeviceAuth) {
			t.Errorf("grant accepted as device token: %v", err)
		}
	})

	t.Run("revoked device", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		a := f.grant(t, dev, key, nil) // signed before the revocation
		if err := f.svc.RevokeDevice(ctx, testCitizen.ID, dev.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.AuthenticateGrant(ctx, a, testTokenURL); !errors.Is(err, eid.ErrDeviceAuth) || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("err = %v, want ErrDeviceAuth (revoked)", err)
		}
	})

	t.Run("stores unavailable pass through", func(t *testing.T) {
		f := newFixture(t)
		dev, key := f.enroll(t, idp.LevelHigh)
		f.store.setFail(errDown)
		_, _, err := f.svc.AuthenticateGrant(ctx, f.grant(t, dev, key, nil), testTokenURL)
		if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, idp.ErrInvalid) {
			t.Errorf("durable store down: err = %v, want ErrUnavailable only", err)
		}
		f.store.setFail(nil)
		f.eph.setFail(errDown)
		_, _, err = f.svc.AuthenticateGrant(ctx, f.grant(t, dev, key, nil), testTokenURL)
		if !errors.Is(err, idp.ErrUnavailable) || errors.Is(err, idp.ErrInvalid) {
			t.Errorf("ephemeral store down: err = %v, want ErrUnavailable only", err)
		}
	})
}

func TestDeviceTokenFromHeader(t *testing.T) {
	for _, tt := range []struct {
		h, tok string
		ok     bool
	}{
		{"DeviceJWT a.b.c", "a.b.c", true},
		{"devicejwt a.b.c", "a.b.c", true},
		{"DEVICEJWT   a.b.c ", "a.b.c", true},
		{"DeviceJWT", "", false},
		{"DeviceJWT ", "", false},
		{"DeviceJWTa.b.c", "", false},
		{"Bearer a.b.c", "", false},
		{"", "", false},
	} {
		tok, ok := eid.DeviceTokenFromHeader(tt.h)
		if tok != tt.tok || ok != tt.ok {
			t.Errorf("DeviceTokenFromHeader(%q) = %q, %v; want %q, %v", tt.h, tok, ok, tt.tok, tt.ok)
		}
	}
}

func TestService_AuthenticateHeader(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dev, key := f.enroll(t, idp.LevelHigh)
	got, err := f.svc.AuthenticateHeader(ctx, "DeviceJWT "+f.deviceToken(t, dev, key, nil), testIssuer)
	if err != nil || got.ID != dev.ID {
		t.Fatalf("AuthenticateHeader = %+v, %v", got, err)
	}
	if _, err := f.svc.AuthenticateHeader(ctx, "Bearer x", testIssuer); !errors.Is(err, eid.ErrNoDeviceToken) || !errors.Is(err, eid.ErrDeviceAuth) {
		t.Errorf("no device token: err = %v, want ErrNoDeviceToken", err)
	}
	_, err = f.svc.AuthenticateHeader(ctx, "DeviceJWT "+f.grant(t, dev, key, nil), testIssuer)
	if !errors.Is(err, eid.ErrDeviceAuth) || errors.Is(err, eid.ErrNoDeviceToken) {
		t.Errorf("grant as device token: err = %v, want ErrDeviceAuth", err)
	}
}
