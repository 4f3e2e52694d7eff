package passkey_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/passkey"
	"github.com/onedoor/onedoor/idp/passkey/passkeytest"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

const (
	issuer = "http://localhost:8080"
	origin = "http://localhost:8080"
)

func newRP(tb testing.TB) (*passkey.RP, *sqlstore.Store) {
	tb.Helper()
	db, err := sqlite.Open(filepath.Join(tb.TempDir(), "idp.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	s := sqlite.New(db)
	if err := s.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	rp, err := passkey.New(passkey.Config{Issuer: issuer, Store: s, Ephemeral: s})
	if err != nil {
		tb.Fatal(err)
	}
	return rp, s
}

// register adds a passkey for citizen through the ceremony.
func register(tb testing.TB, rp *passkey.RP, citizen string) (*passkeytest.Authenticator, *idp.Passkey) {
	tb.Helper()
	ctx := context.Background()
	opts, err := rp.BeginRegistration(ctx, "reg-"+citizen, citizen, "Citizen", idp.LevelHigh)
	if err != nil {
		tb.Fatal(err)
	}
	a := &passkeytest.Authenticator{}
	resp, err := a.Create(opts, passkeytest.Options{Origin: origin})
	if err != nil {
		tb.Fatal(err)
	}
	p, err := rp.FinishRegistration(ctx, "reg-"+citizen, citizen, resp, "Laptop")
	if err != nil {
		tb.Fatalf("finish registration: %v", err)
	}
	return a, p
}

func begin(tb testing.TB, rp *passkey.RP, handle string) []byte {
	tb.Helper()
	opts, err := rp.BeginLogin(context.Background(), handle, []byte("login-1"))
	if err != nil {
		tb.Fatal(err)
	}
	return opts
}

func TestRP_ConfigFromIssuer(t *testing.T) {
	rp, _ := newRP(t)
	if rp.RPID() != "localhost" {
		t.Errorf("RP ID = %q, want localhost", rp.RPID())
	}
	for _, bad := range []string{"", "localhost", "ftp://x", "http://"} {
		if _, err := passkey.New(passkey.Config{Issuer: bad}); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("New(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRP_RegisterAndLogin(t *testing.T) {
	rp, s := newRP(t)
	ctx := context.Background()
	a, p := register(t, rp, "cit_a")
	if p.Level != idp.LevelSubstantial {
		t.Errorf("passkey from a high session has level %s, want substantial", p.Level)
	}
	h, err := s.PasskeyUserHandle(ctx, "cit_a", nil)
	if err != nil || len(h) != 32 {
		t.Errorf("user handle = %x (%v), want 32 random bytes", h, err)
	}
	opts := begin(t, rp, "h1")
	var o struct {
		PublicKey struct {
			UserVerification string            `json:"userVerification"`
			AllowCredentials []json.RawMessage `json:"allowCredentials"`
			Timeout          int               `json:"timeout"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &o); err != nil {
		t.Fatal(err)
	}
	if o.PublicKey.UserVerification != "required" || len(o.PublicKey.AllowCredentials) != 0 || o.PublicKey.Timeout > 120000 {
		t.Errorf("login options %s: want userVerification required, no allowCredentials, timeout <= 2 min", opts)
	}
	resp, err := a.Get(opts, passkeytest.Options{Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	got, bind, err := rp.FinishLogin(ctx, "h1", resp)
	if err != nil {
		t.Fatalf("finish login: %v", err)
	}
	if got.ID != p.ID || got.CitizenID != "cit_a" || string(bind) != "login-1" || got.SignCount != 1 {
		t.Errorf("login gave %+v bind %q", got, bind)
	}
}

func TestRP_LoginChallengeReplayed(t *testing.T) {
	rp, _ := newRP(t)
	ctx := context.Background()
	a, _ := register(t, rp, "cit_a")
	opts := begin(t, rp, "h1")
	resp, err := a.Get(opts, passkeytest.Options{Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rp.FinishLogin(ctx, "h1", resp); err != nil {
		t.Fatal(err)
	}
	// The same response again, and a fresh signature over the same
	// challenge: the ceremony is gone.
	if _, _, err := rp.FinishLogin(ctx, "h1", resp); !errors.Is(err, passkey.ErrNoCeremony) {
		t.Errorf("replayed response: %v, want ErrNoCeremony", err)
	}
	resp2, _ := a.Get(opts, passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h1", resp2); !errors.Is(err, passkey.ErrNoCeremony) {
		t.Errorf("second answer to a used challenge: %v, want ErrNoCeremony", err)
	}
	// A response to one ceremony's challenge sent to another ceremony.
	begin(t, rp, "h2")
	resp3, _ := a.Get(opts, passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h2", resp3); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("old challenge in a new ceremony: %v, want ErrRefused", err)
	}
	// A ceremony is tied to its handle (the browser's cookie).
	if _, _, err := rp.FinishLogin(ctx, "", resp3); !errors.Is(err, passkey.ErrNoCeremony) {
		t.Errorf("no handle: %v, want ErrNoCeremony", err)
	}
}

func TestRP_LoginWrongOrigin(t *testing.T) {
	rp, _ := newRP(t)
	a, _ := register(t, rp, "cit_a")
	for i, o := range []string{"http://localhost:8081", "https://localhost:8080", "http://evil.example", "http://127.0.0.1:8080"} {
		h := "h" + string(rune('a'+i))
		resp, _ := a.Get(begin(t, rp, h), passkeytest.Options{Origin: o})
		if _, _, err := rp.FinishLogin(context.Background(), h, resp); !errors.Is(err, passkey.ErrRefused) {
			t.Errorf("origin %s: %v, want ErrRefused", o, err)
		}
	}
}

func TestRP_LoginWrongRPID(t *testing.T) {
	rp, _ := newRP(t)
	a, _ := register(t, rp, "cit_a")
	a.RPID = "evil.example"
	resp, _ := a.Get(begin(t, rp, "h"), passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(context.Background(), "h", resp); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("rpIdHash of another RP: %v, want ErrRefused", err)
	}
}

func TestRP_LoginUserVerificationMissing(t *testing.T) {
	rp, _ := newRP(t)
	a, _ := register(t, rp, "cit_a")
	for name, flags := range map[string]byte{"UP only": passkeytest.FlagUP, "UV without UP": passkeytest.FlagUV, "none": 0} {
		resp, _ := a.Get(begin(t, rp, name), passkeytest.Options{Origin: origin, Flags: flags, SetFlags: true})
		if _, _, err := rp.FinishLogin(context.Background(), name, resp); !errors.Is(err, passkey.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", name, err)
		}
	}
}

func TestRP_RegisterUserVerificationMissing(t *testing.T) {
	rp, s := newRP(t)
	ctx := context.Background()
	opts, err := rp.BeginRegistration(ctx, "r", "cit_a", "Citizen", idp.LevelSubstantial)
	if err != nil {
		t.Fatal(err)
	}
	a := &passkeytest.Authenticator{}
	resp, _ := a.Create(opts, passkeytest.Options{Origin: origin, Flags: passkeytest.FlagUP, SetFlags: true})
	if _, err := rp.FinishRegistration(ctx, "r", "cit_a", resp, "x"); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("registration without UV: %v, want ErrRefused", err)
	}
	if ps, _ := s.ListPasskeys(ctx, "cit_a"); len(ps) != 0 {
		t.Errorf("%d passkeys stored after a refused registration", len(ps))
	}
}

func TestRP_LoginMalformedCBOR(t *testing.T) {
	rp, _ := newRP(t)
	a, _ := register(t, rp, "cit_a")
	resp, _ := a.Get(begin(t, rp, "h"), passkeytest.Options{Origin: origin})
	var m map[string]any
	_ = json.Unmarshal(resp, &m)
	// authenticatorData cut short (truncated authData), and an
	// attestation object that is not CBOR at all.
	r := m["response"].(map[string]any)
	r["authenticatorData"] = base64.RawURLEncoding.EncodeToString([]byte{0xa5, 0x01})
	bad, _ := json.Marshal(m)
	if _, _, err := rp.FinishLogin(context.Background(), "h", bad); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("truncated authenticator data: %v, want ErrRefused", err)
	}
	ctx := context.Background()
	opts, _ := rp.BeginRegistration(ctx, "r", "cit_b", "B", idp.LevelSubstantial)
	b := &passkeytest.Authenticator{}
	reg, _ := b.Create(opts, passkeytest.Options{Origin: origin})
	_ = json.Unmarshal(reg, &m)
	m["response"].(map[string]any)["attestationObject"] = base64.RawURLEncoding.EncodeToString([]byte{0xbf, 0x63, 0x66, 0x6d, 0xff, 0xff})
	bad, _ = json.Marshal(m)
	if _, err := rp.FinishRegistration(ctx, "r", "cit_b", bad, "x"); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("malformed CBOR attestation object: %v, want ErrRefused", err)
	}
}

func TestRP_ClonedAuthenticatorRefused(t *testing.T) {
	rp, s := newRP(t)
	ctx := context.Background()
	a, p := register(t, rp, "cit_a")
	a.Counter = 10
	resp, _ := a.Get(begin(t, rp, "h1"), passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h1", resp); err != nil {
		t.Fatal(err)
	}
	// A copy of the key whose counter lags behind.
	clone := *a
	clone.Counter = 4
	resp, _ = clone.Get(begin(t, rp, "h2"), passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h2", resp); !errors.Is(err, passkey.ErrCloned) {
		t.Errorf("counter going backwards: %v, want ErrCloned", err)
	}
	clone.KeepCounter, clone.Counter = true, 12
	resp, _ = clone.Get(begin(t, rp, "h3"), passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h3", resp); err != nil {
		t.Errorf("counter advancing: %v", err)
	}
	resp, _ = clone.Get(begin(t, rp, "h4"), passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h4", resp); !errors.Is(err, passkey.ErrCloned) {
		t.Errorf("counter standing still: %v, want ErrCloned", err)
	}
	got, _ := s.GetPasskey(ctx, p.ID)
	if got.SignCount != 12 {
		t.Errorf("stored counter %d, want 12", got.SignCount)
	}
}

func TestRP_CredentialRegisteredOnce(t *testing.T) {
	rp, _ := newRP(t)
	ctx := context.Background()
	a, _ := register(t, rp, "cit_a")
	// The same authenticator answers a second registration with the
	// same credential (ignoring excludeCredentials).
	opts, err := rp.BeginRegistration(ctx, "r2", "cit_b", "B", idp.LevelSubstantial)
	if err != nil {
		t.Fatal(err)
	}
	key, cred := a.Key, a.CredentialID
	resp, _ := a.Create(opts, passkeytest.Options{Origin: origin})
	_ = key
	resp = replaceCredential(t, resp, a.CredentialID, cred)
	if _, err := rp.FinishRegistration(ctx, "r2", "cit_b", resp, "x"); !errors.Is(err, passkey.ErrDuplicate) {
		t.Errorf("credential id registered twice: %v, want ErrDuplicate", err)
	}
}

// replaceCredential rewrites a registration response to carry credential id
// want instead of got, in the JSON and inside the attested credential data.
func replaceCredential(t *testing.T, resp, got, want []byte) []byte {
	t.Helper()
	if len(got) != len(want) {
		t.Fatal("credential ids differ in length")
	}
	var m map[string]any
	_ = json.Unmarshal(resp, &m)
	m["id"] = base64.RawURLEncoding.EncodeToString(want)
	m["rawId"] = m["id"]
	r := m["response"].(map[string]any)
	att, _ := base64.RawURLEncoding.DecodeString(r["attestationObject"].(string))
	att = replaceBytes(att, got, want)
	r["attestationObject"] = base64.RawURLEncoding.EncodeToString(att)
	b, _ := json.Marshal(m)
	return b
}

func replaceBytes(s, old, repl []byte) []byte {
	for i := 0; i+len(old) <= len(s); i++ {
		if string(s[i:i+len(old)]) == string(old) {
			copy(s[i:], repl)
		}
	}
	return s
}

func TestRP_RegistrationBoundToCitizen(t *testing.T) {
	rp, _ := newRP(t)
	ctx := context.Background()
	opts, _ := rp.BeginRegistration(ctx, "r", "cit_a", "A", idp.LevelSubstantial)
	a := &passkeytest.Authenticator{}
	resp, _ := a.Create(opts, passkeytest.Options{Origin: origin})
	// Another citizen's session finishing A's ceremony.
	if _, err := rp.FinishRegistration(ctx, "r", "cit_b", resp, "x"); !errors.Is(err, passkey.ErrNoCeremony) {
		t.Errorf("another citizen finishing the ceremony: %v, want ErrNoCeremony", err)
	}
}

func TestRP_DeletedPasskeyCannotLogIn(t *testing.T) {
	rp, s := newRP(t)
	ctx := context.Background()
	a, p := register(t, rp, "cit_a")
	if err := s.DeletePasskey(ctx, "cit_a", p.ID); err != nil {
		t.Fatal(err)
	}
	resp, _ := a.Get(begin(t, rp, "h"), passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h", resp); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("removed passkey: %v, want ErrRefused", err)
	}
}

func TestRP_UserHandleOfAnotherCitizen(t *testing.T) {
	rp, _ := newRP(t)
	ctx := context.Background()
	a, _ := register(t, rp, "cit_a")
	b, _ := register(t, rp, "cit_b")
	// A's credential presented with B's user handle.
	a.UserHandle = b.UserHandle
	resp, _ := a.Get(begin(t, rp, "h"), passkeytest.Options{Origin: origin})
	if _, _, err := rp.FinishLogin(ctx, "h", resp); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("mismatched user handle: %v, want ErrRefused", err)
	}
}

func TestRP_OversizedResponse(t *testing.T) {
	rp, _ := newRP(t)
	begin(t, rp, "h")
	big := make([]byte, 1<<20)
	if _, _, err := rp.FinishLogin(context.Background(), "h", big); !errors.Is(err, passkey.ErrRefused) {
		t.Errorf("1 MB response: %v, want ErrRefused", err)
	}
}

// FuzzParseAssertion: any input is refused or parsed, never a panic; what
// parses has a credential id matching its rawId and authenticator data
// holding at least the RP ID hash.
func FuzzParseAssertion(f *testing.F) {
	rp, _ := newRP(f)
	a, _ := register(f, rp, "cit_a")
	good, _ := a.Get(begin(f, rp, "h"), passkeytest.Options{Origin: origin})
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"oQ","signature":"AA"}}`))
	f.Add([]byte("null"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := passkey.ParseAssertion(b)
		if err != nil {
			if !errors.Is(err, passkey.ErrRefused) {
				t.Fatalf("error %v does not wrap ErrRefused", err)
			}
			return
		}
		if base64.RawURLEncoding.EncodeToString(p.RawID) != p.ID {
			t.Errorf("parsed id %q, rawId %x", p.ID, p.RawID)
		}
	})
}

// FuzzParseRegistration: as FuzzParseAssertion, for registration responses.
func FuzzParseRegistration(f *testing.F) {
	rp, _ := newRP(f)
	opts, _ := rp.BeginRegistration(context.Background(), "r", "cit_a", "A", idp.LevelSubstantial)
	a := &passkeytest.Authenticator{}
	good, _ := a.Create(opts, passkeytest.Options{Origin: origin})
	f.Add(good)
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"v2NmbXT__w"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := passkey.ParseRegistration(b)
		if err != nil {
			if !errors.Is(err, passkey.ErrRefused) {
				t.Fatalf("error %v does not wrap ErrRefused", err)
			}
			return
		}
		if base64.RawURLEncoding.EncodeToString(p.RawID) != p.ID {
			t.Errorf("parsed id %q, rawId %x", p.ID, p.RawID)
		}
	})
}

// BenchmarkPasskeyLoginFinish measures a whole login finish: taking the
// ceremony from the ephemeral store, parsing, verifying, looking the
// passkey up and advancing its counter in SQLite. The ceremonies and
// assertions are made before the timer starts.
func BenchmarkPasskeyLoginFinish(b *testing.B) {
	rp, _ := newRP(b)
	ctx := context.Background()
	a, _ := register(b, rp, "cit_a")
	resps := make([][]byte, b.N)
	handles := make([]string, b.N)
	for i := range b.N {
		handles[i] = "h" + base64.RawURLEncoding.EncodeToString([]byte{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24)})
		resps[i], _ = a.Get(begin(b, rp, handles[i]), passkeytest.Options{Origin: origin})
	}
	b.ResetTimer()
	for i := range b.N {
		if _, _, err := rp.FinishLogin(ctx, handles[i], resps[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
}

// BenchmarkES256Verify is the raw P-256 ECDSA verification rate on this
// machine, the floor any assertion check stands on.
func BenchmarkES256Verify(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	h := sha256.Sum256([]byte("authenticator data and client data hash"))
	sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
	b.ResetTimer()
	for range b.N {
		if !ecdsa.VerifyASN1(&key.PublicKey, h[:], sig) {
			b.Fatal("verify failed")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
}
