package eid_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"database/sql"
	"encoding/base64"
	"math/big"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

// fuzzWorlds builds fuzz worlds on one SQLite file per fuzz target, emptied
// before each world: opening and migrating a database for every input would
// make fuzzing crawl. Inputs of one process run one at a time.
//
// Fuzz with -fuzzminimizetime 0, e.g.
//
//	go test -run NONE -fuzz FuzzDecide -fuzzminimizetime 0 ./idp/eid
//
// SQLite's own code paths vary a little from run to run, so many inputs look
// new to the coverage guide, and minimizing each of them would take most of
// the time (about 1 exec/s instead of about 1,300/s on two cores).
type fuzzWorlds struct {
	store *sqlstore.Store
	db    *sql.DB
	clock atomic.Pointer[clock]
}

func newFuzzWorlds(f *testing.F) *fuzzWorlds {
	w := &fuzzWorlds{}
	w.clock.Store(newClock())
	citizen := testCitizen
	w.store, w.db = openStore(f, func() time.Time { return w.clock.Load().Now() }, &citizen)
	return w
}

// world is the same enrolled device and pending login request on every
// call: the store is emptied, the randomness seeded, the clock reset and the
// key shared.
func (w *fuzzWorlds) world(t testing.TB, key *ecdsa.PrivateKey) (*fixture, *idp.Device, *eid.LoginRequest) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{"DELETE FROM idp_ephemeral", "DELETE FROM idp_devices", "DELETE FROM idp_activations"} {
		if _, err := w.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	c := newClock()
	w.clock.Store(c)
	f := newFixtureOn(w.store, c, seeded(7))
	code, _, err := f.svc.Activate(ctx, testCitizen.PersonalID, idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := f.svc.Enroll(ctx, eid.EnrollRequest{PersonalID: testCitizen.PersonalID, ActivationCode: code, PublicKey: publicJWK(t, key.Public())})
	if err != nil {
		t.Fatal(err)
	}
	return f, dev, f.newLogin(t, "")
}

// twin is the other valid encoding of an ECDSA signature, (r, n-s). ECDSA
// allows it; it carries the same claims, so single use (jti, decision key)
// still holds.
func twin(t testing.TB, tok string) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature of %q: %v", tok, err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(elliptic.P256().Params().N, s)
	out := slices.Clone(sig[:32])
	out = append(out, s.FillBytes(make([]byte, 32))...)
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(out)
}

func flipByte(s string, pos uint16, b byte) string {
	if s == "" {
		return s
	}
	i := int(pos) % len(s)
	return s[:i] + string([]byte{b}) + s[i+1:]
}

func addTokenSeeds(f *testing.F, valid string) {
	h, p, _ := strings.Cut(valid, ".")
	f.Add(valid, uint16(0), byte('A'))
	f.Add("", uint16(5), byte('.'))
	f.Add("..", uint16(9999), byte('B')) // positions wrap modulo the length
	f.Add(h+"."+p+".", uint16(40), byte('_'))
	f.Add(valid+"=", uint16(300), byte(0))
	f.Add("eyJhbGciOiJub25lIn0.e30.", uint16(1), byte('a'))
	f.Add(strings.Repeat("A", 9000), uint16(3), byte('-'))
}

// FuzzParseApproval: the approval parser never panics; the valid approval
// round-trips; nothing else verifies, and no single-byte change of the valid
// approval does either.
func FuzzParseApproval(f *testing.F) {
	key := newKey(f)
	worlds := newFuzzWorlds(f)
	w, dev, r := worlds.world(f, key)
	valid := w.approval(f, dev, key, r, eid.DecisionApprove, []string{"name", "phone_number"}, nil)
	validTwin := twin(f, valid)
	v := w.svc.Verifier()
	addTokenSeeds(f, valid)
	f.Fuzz(func(t *testing.T, tok string, pos uint16, b byte) {
		c, err := v.ParseApproval(tok, testIssuer, dev)
		switch {
		case tok == valid || tok == validTwin:
			if err != nil {
				t.Fatalf("valid approval refused: %v", err)
			}
			if c.RequestID != r.ID || c.MatchNumber != r.MatchNumber || c.Decision != eid.DecisionApprove ||
				!slices.Equal(c.Claims, []string{"name", "phone_number"}) || c.Issuer != dev.ID {
				t.Fatalf("claims did not round-trip: %+v", c)
			}
		case err == nil:
			t.Fatalf("forged approval %q accepted", tok)
		}
		if m := flipByte(valid, pos, b); m != valid {
			if _, err := v.ParseApproval(m, testIssuer, dev); err == nil {
				t.Fatalf("approval with byte %d set to %q accepted", int(pos)%len(valid), b)
			}
		}
	})
}

// FuzzAuthenticateDevice: never panics; only the valid token (or its ECDSA
// twin) authenticates, and only once.
func FuzzAuthenticateDevice(f *testing.F) {
	key := newKey(f)
	worlds := newFuzzWorlds(f)
	w, dev, _ := worlds.world(f, key)
	valid := w.deviceToken(f, dev, key, func(_ map[string]any, c *eid.DeviceClaims) { c.ID = "fixed-jti" })
	validTwin := twin(f, valid)
	addTokenSeeds(f, valid)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, tok string, pos uint16, b byte) {
		w, _, _ := worlds.world(t, key)
		got, err := w.svc.AuthenticateDevice(ctx, tok, testIssuer)
		switch {
		case tok == valid || tok == validTwin:
			if err != nil || got.ID != dev.ID {
				t.Fatalf("valid token: %+v, %v", got, err)
			}
			if _, err := w.svc.AuthenticateDevice(ctx, valid, testIssuer); err == nil {
				t.Fatal("replay accepted")
			}
		case err == nil:
			t.Fatalf("forged token %q accepted", tok)
		}
		if m := flipByte(valid, pos, b); m != valid {
			if _, err := w.svc.AuthenticateDevice(ctx, m, testIssuer); err == nil {
				t.Fatalf("token with byte %d set to %q accepted", int(pos)%len(valid), b)
			}
		}
	})
}

// FuzzDecide: Decide never panics, and records a decision only for the
// valid approval of the pending request.
func FuzzDecide(f *testing.F) {
	key := newKey(f)
	worlds := newFuzzWorlds(f)
	w, dev, r := worlds.world(f, key)
	valid := w.approval(f, dev, key, r, eid.DecisionApprove, []string{"name"}, nil)
	validTwin := twin(f, valid)
	deny := w.approval(f, dev, key, r, eid.DecisionDeny, nil, nil)
	wrongMatch := w.approval(f, dev, key, r, eid.DecisionApprove, []string{"name"}, func(_ map[string]any, c *eid.ApprovalClaims) {
		c.MatchNumber = otherMatch(c.MatchNumber)
	})
	wrongMatchTwin := twin(f, wrongMatch)
	f.Add(r.ID, valid)
	f.Add(r.ID, deny)
	f.Add(r.ID, wrongMatch)
	f.Add("AAAAAAAAAAAAAAAAAAAAAA", valid)
	f.Add("", "")
	f.Add(r.ID+"x", valid[1:])
	f.Add(r.ID, sign(f, jwt.SigningMethodHS256, []byte(dev.PublicKey), map[string]any{"alg": "HS256", "typ": eid.TypeApproval, "kid": dev.ID}, jwt.MapClaims{"iss": dev.ID}))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, id, approval string) {
		w, dev, r := worlds.world(t, key)
		d, err := w.svc.Decide(ctx, id, dev, approval)
		if err != nil {
			if st, _, _ := w.svc.Status(ctx, r.ID); st != eid.StatusPending {
				t.Fatalf("refused decision changed the status to %s", st)
			}
			return
		}
		picked := approval == wrongMatch || approval == wrongMatchTwin
		if id != r.ID || (approval != valid && approval != validTwin && approval != deny && !picked) {
			t.Fatalf("Decide(%q, %q) accepted", id, approval)
		}
		if picked != (d.Reason == eid.ReasonWrongMatch) {
			t.Fatalf("decision = %+v", d)
		}
		if d.Approved != (approval != deny && !picked) {
			t.Fatalf("decision = %+v", d)
		}
	})
}

// FuzzPayload: ParsePayload never panics, whatever it accepts from Payload
// or SameDevicePayload comes back unchanged, and only the QR form is read as
// cross-device.
func FuzzPayload(f *testing.F) {
	f.Add("https://id.onedoor.test", "AbCdEfGhIjKlMnOpQrStUv", "onedoor-eid://login?issuer=x&request=y")
	f.Add("http://127.0.0.1:8080/base", "AAAAAAAAAAAAAAAAAAAAAA", "onedoor-eid://login/?request=%zz")
	f.Add("https://a&issuer=https://b", "AAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("https://id.onedoor.test", "AbCdEfGhIjKlMnOpQrStUv", "onedoor-eid://login?issuer=x&request=y&mode=same_device&mode=same_device")
	f.Add("https://id.onedoor.test&mode=same_device", "AbCdEfGhIjKlMnOpQrStUv", "onedoor-eid://login?mode=cross_device")
	f.Fuzz(func(t *testing.T, issuer, id, raw string) {
		if _, _, err := eid.ParsePayload(raw); err == nil {
			_ = eid.PayloadMode(raw)
		}
		for _, same := range []bool{false, true} {
			p := eid.Payload(issuer, id)
			if same {
				p = eid.SameDevicePayload(issuer, id)
			}
			iss, rid, err := eid.ParsePayload(p)
			if err != nil {
				continue
			}
			if iss != issuer || rid != id {
				t.Fatalf("%q parsed as %q, %q", p, iss, rid)
			}
			if got := eid.PayloadMode(p) == eid.ModeSameDevice; got != same {
				t.Fatalf("PayloadMode(%q) same-device = %v, want %v", p, got, same)
			}
		}
		if _, _, err := eid.ParsePayload(eid.AppLink(issuer, id)); err == nil && eid.PayloadMode(eid.AppLink(issuer, id)) != eid.ModeSameDevice {
			t.Fatalf("app link %q not read as same-device", eid.AppLink(issuer, id))
		}
	})
}
