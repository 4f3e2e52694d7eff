package eid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

const testIssuer = "https://id.onedoor.test"

var testCitizen = idp.Citizen{
	ID:         "c-0001",
	PersonalID: "001099012345",
	FamilyName: "Nguyễn",
	GivenName:  "Văn An",
	Birthdate:  "1990-01-02",
	Gender:     "male",
}

// fixture is an eid.Service on the real SQLite store (durable and
// ephemeral in one file), with the test's clock and error injection.
type fixture struct {
	clock *clock
	store *faultStore
	eph   *faultEph
	svc   *eid.Service
}

func newFixture(t testing.TB) *fixture {
	return newFixtureRand(t, nil)
}

// newFixtureRand takes a fixed randomness source for tests that need
// the same IDs every run (fuzzing); nil means crypto/rand.
func newFixtureRand(t testing.TB, r io.Reader) *fixture {
	t.Helper()
	c := newClock()
	citizen := testCitizen
	db, _ := openStore(t, c.Now, &citizen)
	return newFixtureOn(db, c, r)
}

// newFixtureOn builds the fixture on an open store whose clock is c.
func newFixtureOn(db *sqlstore.Store, c *clock, r io.Reader) *fixture {
	f := &fixture{clock: c, store: &faultStore{Store: db}, eph: &faultEph{Store: db}}
	f.svc = eid.New(f.store, f.eph, eid.Config{
		Issuer:  testIssuer,
		CodeKey: []byte("0123456789abcdef0123456789abcdef"),
		Now:     c.Now,
		Rand:    r,
	})
	return f
}

func seeded(seed byte) io.Reader {
	return mrand.NewChaCha8([32]byte{seed})
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func publicJWK(t testing.TB, pub any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// enroll activates the test citizen at level and enrolls a fresh key.
func (f *fixture) enroll(t testing.TB, level idp.Level) (*idp.Device, *ecdsa.PrivateKey) {
	t.Helper()
	ctx := context.Background()
	code, _, err := f.svc.Activate(ctx, testCitizen.PersonalID, level)
	if err != nil {
		t.Fatalf("Activate: %v", err)
	}
	key := newKey(t)
	dev, err := f.svc.Enroll(ctx, eid.EnrollRequest{
		PersonalID:     testCitizen.PersonalID,
		ActivationCode: code,
		PublicKey:      publicJWK(t, key.Public()),
		DeviceName:     "Pixel",
	})
	if err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	return dev, key
}

// sign makes a compact JWS with exactly the given header (alg included).
func sign(t testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header = header
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func registered(now time.Time, devID, aud string) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{
		Issuer:    devID,
		Audience:  jwt.ClaimStrings{aud},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		ID:        rand.Text(),
	}
}

func (f *fixture) deviceToken(t testing.TB, dev *idp.Device, key *ecdsa.PrivateKey, mod func(h map[string]any, c *eid.DeviceClaims)) string {
	t.Helper()
	h := map[string]any{"alg": "ES256", "typ": eid.TypeDeviceToken, "kid": dev.ID}
	c := eid.DeviceClaims{RegisteredClaims: registered(f.clock.Now(), dev.ID, testIssuer)}
	if mod != nil {
		mod(h, &c)
	}
	return sign(t, jwt.SigningMethodES256, key, h, c)
}

func (f *fixture) approval(t testing.TB, dev *idp.Device, key *ecdsa.PrivateKey, r *eid.LoginRequest, decision string, claims []string, mod func(h map[string]any, c *eid.ApprovalClaims)) string {
	t.Helper()
	h := map[string]any{"alg": "ES256", "typ": eid.TypeApproval, "kid": dev.ID}
	c := eid.ApprovalClaims{
		RegisteredClaims: registered(f.clock.Now(), dev.ID, testIssuer),
		RequestID:        r.ID,
		MatchNumber:      r.MatchNumber,
		Decision:         decision,
		ClientID:         r.ClientID,
		Purpose:          r.PurposeCode,
		Claims:           claims,
	}
	if mod != nil {
		mod(h, &c)
	}
	return sign(t, jwt.SigningMethodES256, key, h, c)
}

// newLogin starts a login asking for name (required) and phone (optional).
func (f *fixture) newLogin(t testing.TB, level idp.Level) *eid.LoginRequest {
	t.Helper()
	r := &eid.LoginRequest{
		ClientID:    "dvc",
		ClientName:  "Cổng Dịch vụ công",
		Claims:      []eid.ClaimRequest{{Name: "name"}, {Name: "phone_number", Optional: true}},
		PurposeCode: "application",
		Purpose:     "Nộp hồ sơ",
		Level:       level,
		BrowserKey:  []byte("browser-key-hash"),
	}
	if err := f.svc.NewLogin(context.Background(), r); err != nil {
		t.Fatalf("NewLogin: %v", err)
	}
	return r
}
