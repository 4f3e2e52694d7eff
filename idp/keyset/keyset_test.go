package keyset

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onedoor/onedoor/idp"
)

// memStore is an in-memory idp.KeyStore that copies records in and out, like
// a database would.
type memStore struct {
	mu    sync.Mutex
	keys  map[string]*idp.SigningKey
	err   error // returned by every call while set
	lists int   // ListKeys calls
}

var _ idp.KeyStore = (*memStore)(nil)

func newMemStore() *memStore { return &memStore{keys: map[string]*idp.SigningKey{}} }

func cloneKey(k *idp.SigningKey) *idp.SigningKey {
	c := *k
	c.Private = bytes.Clone(k.Private)
	for _, p := range []**time.Time{&c.ActivatedAt, &c.RetiredAt, &c.PublishUntil} {
		if *p != nil {
			t := **p
			*p = &t
		}
	}
	return &c
}

func (s *memStore) CreateKey(_ context.Context, k *idp.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if _, ok := s.keys[k.ID]; ok {
		return fmt.Errorf("key %s: %w", k.ID, idp.ErrConflict)
	}
	s.keys[k.ID] = cloneKey(k)
	return nil
}

func (s *memStore) ListKeys(context.Context) ([]*idp.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	if s.err != nil {
		return nil, s.err
	}
	var out []*idp.SigningKey
	for _, k := range s.keys {
		out = append(out, cloneKey(k))
	}
	return out, nil
}

func (s *memStore) UpdateKey(_ context.Context, kid string, fn func(k *idp.SigningKey) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	k, ok := s.keys[kid]
	if !ok {
		return fmt.Errorf("key %s: %w", kid, idp.ErrNotFound)
	}
	c := cloneKey(k)
	if err := fn(c); err != nil {
		return err
	}
	s.keys[kid] = c
	return nil
}

func (s *memStore) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *memStore) listCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lists
}

func (s *memStore) get(kid string) *idp.SigningKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneKey(s.keys[kid])
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var errDown = fmt.Errorf("dial db: %w", idp.ErrUnavailable)

func testSealer(t testing.TB, master string) *Sealer {
	t.Helper()
	s, err := NewSealer(DeriveKey([]byte(master), "key-encryption"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newManager(t testing.TB, st idp.KeyStore, clk *clock) *Manager {
	t.Helper()
	return New(st, testSealer(t, "0123456789abcdef0123456789abcdef"), Options{Now: clk.Now})
}

// ensured returns a Manager on a fresh store with keys for every algorithm.
func ensured(t *testing.T) (*Manager, *memStore, *clock) {
	t.Helper()
	st, clk := newMemStore(), newClock()
	m := newManager(t, st, clk)
	if err := m.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	return m, st, clk
}

func list(t *testing.T, m *Manager) []KeyInfo {
	t.Helper()
	ks, err := m.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// only returns the single key of alg in state.
func only(t *testing.T, m *Manager, alg, state string) KeyInfo {
	t.Helper()
	var found []KeyInfo
	for _, k := range list(t, m) {
		if k.Alg == alg && k.State == state {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s %s keys: got %d, want 1", state, alg, len(found))
	}
	return found[0]
}

type jwksDoc struct {
	Keys []map[string]any `json:"keys"`
}

func jwksKIDs(t *testing.T, m *Manager) []string {
	t.Helper()
	b, err := m.JWKS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var doc jwksDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range doc.Keys {
		kids = append(kids, k["kid"].(string))
	}
	return kids
}

func TestSealer(t *testing.T) {
	t.Parallel()
	s := testSealer(t, "master")
	pt, aad := []byte("pkcs8 der bytes"), []byte("kid-1")
	sealed := s.Seal(pt, aad)

	t.Run("round trip", func(t *testing.T) {
		got, err := s.Open(sealed, aad)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("Open: got %q, %v; want %q", got, err, pt)
		}
	})
	t.Run("random nonce", func(t *testing.T) {
		if bytes.Equal(s.Seal(pt, aad), sealed) {
			t.Fatal("sealing twice gave the same output")
		}
	})
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name   string
		sealer *Sealer
		sealed []byte
		aad    []byte
	}{
		{"tampered ciphertext", s, flip(len(sealed) - 1), aad},
		{"tampered nonce", s, flip(0), aad},
		{"other aad", s, sealed, []byte("kid-2")},
		{"other key", testSealer(t, "other master"), sealed, aad},
		{"truncated", s, sealed[:20], aad},
		{"empty", s, nil, aad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.sealer.Open(tc.sealed, tc.aad); err == nil {
				t.Fatalf("Open: got %q, want an error", got)
			}
		})
	}
	t.Run("key size", func(t *testing.T) {
		if _, err := NewSealer(make([]byte, 16)); err == nil {
			t.Fatal("NewSealer(16 bytes): want an error")
		}
	})
}

func TestDeriveKey(t *testing.T) {
	t.Parallel()
	// RFC 5869 test case 3 (no salt, no info), first 32 bytes.
	ikm := bytes.Repeat([]byte{0x0b}, 22)
	want := "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	if got := hex.EncodeToString(DeriveKey(ikm, "")); got != want {
		t.Errorf("DeriveKey(rfc5869 #3): got %s, want %s", got, want)
	}
	master := []byte("0123456789abcdef0123456789abcdef")
	seen := map[string]string{}
	for _, p := range []string{"client-secret", "activation-code", "fosite-global", "key-encryption", "cookie"} {
		k := DeriveKey(master, p)
		if len(k) != 32 {
			t.Errorf("DeriveKey(%q): got %d bytes, want 32", p, len(k))
		}
		if !bytes.Equal(k, DeriveKey(master, p)) {
			t.Errorf("DeriveKey(%q) is not deterministic", p)
		}
		if other, ok := seen[string(k)]; ok {
			t.Errorf("DeriveKey(%q) equals DeriveKey(%q)", p, other)
		}
		seen[string(k)] = p
	}
}

func TestKeyedHash(t *testing.T) {
	t.Parallel()
	// RFC 4231 test case 2.
	got := hex.EncodeToString(KeyedHash([]byte("Jefe"), []byte("what do ya want for nothing?")))
	if want := "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"; got != want {
		t.Errorf("KeyedHash: got %s, want %s", got, want)
	}
	key := []byte("k")
	h := KeyedHash(key, []byte("secret"))
	for _, tc := range []struct {
		name string
		a, b []byte
		want bool
	}{
		{"same", h, KeyedHash(key, []byte("secret")), true},
		{"other input", h, KeyedHash(key, []byte("secreT")), false},
		{"other key", h, KeyedHash([]byte("j"), []byte("secret")), false},
		{"prefix", h, h[:16], false},
		{"both empty", nil, []byte{}, false},
		{"stored empty", nil, h, false},
	} {
		if got := EqualHash(tc.a, tc.b); got != tc.want {
			t.Errorf("EqualHash %s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestLoadMasterKey(t *testing.T) {
	// No t.Parallel: subtests set the environment.
	writeKey := func(t *testing.T, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "master.key")
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask may have narrowed it
			t.Fatal(err)
		}
		return p
	}
	// 0xfb 0xff encode differently in standard and URL base64.
	key := bytes.Repeat([]byte{0xfb, 0xff}, 16)

	t.Run("creates then reloads", func(t *testing.T) {
		t.Setenv(MasterKeyEnv, "")
		dir := filepath.Join(t.TempDir(), "state")
		p := filepath.Join(dir, "master.key")
		k, err := LoadMasterKey(p, true)
		if err != nil || len(k) != 32 {
			t.Fatalf("LoadMasterKey(create): got %d bytes, %v; want 32 bytes", len(k), err)
		}
		for path, want := range map[string]os.FileMode{p: 0o600, dir: 0o700} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("%s: got mode %04o, want %04o", path, got, want)
			}
		}
		again, err := LoadMasterKey(p, true)
		if err != nil || !bytes.Equal(again, k) {
			t.Fatalf("reload: got %x, %v; want %x", again, err, k)
		}
		if matches, _ := filepath.Glob(filepath.Join(dir, ".master-key-*")); len(matches) > 0 {
			t.Errorf("temporary files left behind: %v", matches)
		}
	})
	t.Run("concurrent create agrees", func(t *testing.T) {
		t.Setenv(MasterKeyEnv, "")
		p := filepath.Join(t.TempDir(), "master.key")
		keys := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := LoadMasterKey(p, true)
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for _, k := range keys[1:] {
			if !bytes.Equal(k, keys[0]) {
				t.Fatal("concurrent creators got different keys")
			}
		}
	})
	t.Run("missing without create", func(t *testing.T) {
		t.Setenv(MasterKeyEnv, "")
		_, err := LoadMasterKey(filepath.Join(t.TempDir(), "master.key"), false)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("got %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("reads file", func(t *testing.T) {
		t.Setenv(MasterKeyEnv, "")
		p := writeKey(t, base64.StdEncoding.EncodeToString(key)+"\n", 0o600)
		if got, err := LoadMasterKey(p, false); err != nil || !bytes.Equal(got, key) {
			t.Fatalf("got %x, %v; want %x", got, err, key)
		}
	})
	for _, enc := range []struct {
		name string
		enc  *base64.Encoding
	}{{"std", base64.StdEncoding}, {"url", base64.URLEncoding}, {"raw url", base64.RawURLEncoding}} {
		t.Run("env overrides file "+enc.name, func(t *testing.T) {
			t.Setenv(MasterKeyEnv, enc.enc.EncodeToString(key))
			p := writeKey(t, base64.StdEncoding.EncodeToString(make([]byte, 32)), 0o600)
			if got, err := LoadMasterKey(p, true); err != nil || !bytes.Equal(got, key) {
				t.Fatalf("got %x, %v; want %x", got, err, key)
			}
		})
	}
	for _, tc := range []struct {
		name, env, file string
		mode            os.FileMode
		wantErr         string
	}{
		{name: "env short", env: base64.StdEncoding.EncodeToString(key[:31]), wantErr: "31 bytes, want 32"},
		{name: "env not base64", env: "not*base64!", wantErr: "not valid base64"},
		{name: "file short", file: base64.StdEncoding.EncodeToString(key[:16]), mode: 0o600, wantErr: "16 bytes, want 32"},
		{name: "file long", file: base64.StdEncoding.EncodeToString(append(key, 1)), mode: 0o600, wantErr: "33 bytes, want 32"},
		{name: "group readable", file: base64.StdEncoding.EncodeToString(key), mode: 0o640, wantErr: "chmod 600"},
		{name: "world readable", file: base64.StdEncoding.EncodeToString(key), mode: 0o604, wantErr: "chmod 600"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(MasterKeyEnv, tc.env)
			p := filepath.Join(t.TempDir(), "none")
			if tc.file != "" {
				p = writeKey(t, tc.file, tc.mode)
			}
			_, err := LoadMasterKey(p, true)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
			}
			if tc.env != "" && strings.Contains(err.Error(), tc.env) {
				t.Errorf("error %q reveals the secret", err)
			}
		})
	}
}

func TestManager_Ensure(t *testing.T) {
	t.Parallel()
	m, st, clk := ensured(t)
	first := list(t, m)
	if len(first) != 4 {
		t.Fatalf("keys after Ensure: got %d, want 4 (active and next per algorithm)", len(first))
	}
	for _, alg := range []string{ES256, RS256} {
		only(t, m, alg, idp.KeyActive)
		only(t, m, alg, idp.KeyNext)
		if _, err := m.SigningKey(t.Context(), alg); err != nil {
			t.Errorf("SigningKey(%s): %v", alg, err)
		}
	}
	if err := m.Ensure(t.Context()); err != nil {
		t.Fatal(err)
	}
	if again := list(t, m); !reflect.DeepEqual(again, first) {
		t.Errorf("second Ensure changed the keys:\ngot  %+v\nwant %+v", again, first)
	}

	// A refresh reuses parsed keys instead of decrypting them again.
	k, _ := m.SigningKey(t.Context(), RS256)
	lists := st.listCalls()
	clk.Add(m.opts.Refresh)
	if again, _ := m.SigningKey(t.Context(), RS256); again != k || st.listCalls() != lists+1 {
		t.Errorf("after Refresh: got a new *Key or no store read (reads %d, want %d)", st.listCalls(), lists+1)
	}
}

func TestManager_EnsureConcurrent(t *testing.T) {
	t.Parallel()
	st, clk := newMemStore(), newClock()
	ms := []*Manager{newManager(t, st, clk), newManager(t, st, clk)}
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Go(func() {
			if err := m.Ensure(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Within Refresh each may still sign with a key it created; afterwards they agree.
	clk.Add(ms[0].opts.Refresh)
	for _, alg := range []string{ES256, RS256} {
		a, err := ms[0].SigningKey(t.Context(), alg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ms[1].SigningKey(t.Context(), alg)
		if err != nil {
			t.Fatal(err)
		}
		if a.ID != b.ID {
			t.Errorf("%s: processes sign with different keys %s and %s", alg, a.ID, b.ID)
		}
	}
}

func TestManager_Rotate(t *testing.T) {
	t.Parallel()
	m, _, clk := ensured(t)
	ctx := t.Context()
	old, err := m.SigningKey(ctx, ES256)
	if err != nil {
		t.Fatal(err)
	}
	rsaBefore, _ := m.SigningKey(ctx, RS256)
	next := only(t, m, ES256, idp.KeyNext)
	if !slices.Contains(jwksKIDs(t, m), next.ID) {
		t.Fatal("next key is not published before it signs")
	}

	clk.Add(m.opts.MinPublished)
	now := clk.Now()
	promoted, err := m.Rotate(ctx, ES256, false)
	if err != nil {
		t.Fatal(err)
	}
	if promoted.ID != next.ID || promoted.State != idp.KeyActive || promoted.Private != nil {
		t.Errorf("Rotate: got %s %s (private %d bytes), want %s active without private part",
			promoted.ID, promoted.State, len(promoted.Private), next.ID)
	}
	if k, _ := m.SigningKey(ctx, ES256); k.ID != next.ID {
		t.Errorf("SigningKey after Rotate: got %s, want the promoted %s", k.ID, next.ID)
	}
	if k, _ := m.SigningKey(ctx, RS256); k.ID != rsaBefore.ID {
		t.Errorf("rotating ES256 changed the RS256 key")
	}
	retired := only(t, m, ES256, idp.KeyRetired)
	if retired.ID != old.ID || !retired.RetiredAt.Equal(now) || !retired.PublishUntil.Equal(now.Add(24*time.Hour)) {
		t.Errorf("retired key: got %+v, want %s retired at %v until %v", retired, old.ID, now, now.Add(24*time.Hour))
	}
	fresh := only(t, m, ES256, idp.KeyNext)
	if fresh.ID == next.ID || fresh.ID == old.ID {
		t.Errorf("Rotate did not create a fresh next key")
	}

	// JWKS order: active, next, retired; each state lists both algorithms.
	states := map[string]string{}
	for _, k := range list(t, m) {
		states[k.ID] = k.State
	}
	var order []string
	for _, kid := range jwksKIDs(t, m) {
		order = append(order, states[kid])
	}
	want := []string{idp.KeyActive, idp.KeyActive, idp.KeyNext, idp.KeyNext, idp.KeyRetired}
	if !slices.Equal(order, want) {
		t.Errorf("JWKS states: got %v, want %v", order, want)
	}

	clk.Add(24*time.Hour - time.Second)
	if !slices.Contains(jwksKIDs(t, m), old.ID) {
		t.Error("retired key left the JWKS before PublishUntil")
	}
	if _, err := m.PublicKey(ctx, old.ID); err != nil {
		t.Errorf("PublicKey(retired) before PublishUntil: %v", err)
	}
	clk.Add(time.Second)
	if slices.Contains(jwksKIDs(t, m), old.ID) {
		t.Error("retired key still in the JWKS at PublishUntil")
	}
	if _, err := m.PublicKey(ctx, old.ID); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("PublicKey(expired): got %v, want ErrNotFound", err)
	}
	if k := only(t, m, ES256, idp.KeyRetired); k.Published {
		t.Error("List: expired retired key marked published")
	}
}

func TestManager_RotateRefusals(t *testing.T) {
	t.Parallel()
	m, st, clk := ensured(t)
	ctx := t.Context()
	before := list(t, m)

	clk.Add(m.opts.MinPublished - time.Second)
	if _, err := m.Rotate(ctx, ES256, false); !errors.Is(err, ErrTooSoon) {
		t.Fatalf("Rotate too soon: got %v, want ErrTooSoon", err)
	}
	if after := list(t, m); !reflect.DeepEqual(after, before) {
		t.Error("refused Rotate changed the keys")
	}
	if _, err := m.Rotate(ctx, "HS256", true); !errors.Is(err, idp.ErrInvalid) {
		t.Errorf("Rotate(HS256): got %v, want ErrInvalid", err)
	}
	next := only(t, m, ES256, idp.KeyNext)
	if promoted, err := m.Rotate(ctx, ES256, true); err != nil || promoted.ID != next.ID {
		t.Fatalf("forced Rotate: got %v, %v; want %s", promoted, err, next.ID)
	}

	// Without a next key (e.g. a concurrent rotation consumed it) there is nothing to promote.
	fresh := only(t, m, ES256, idp.KeyNext)
	if err := st.UpdateKey(ctx, fresh.ID, func(k *idp.SigningKey) error {
		k.State = idp.KeyRetired
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rotate(ctx, ES256, true); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("Rotate without next key: got %v, want ErrNotFound", err)
	}
}

func TestManager_SignVerify(t *testing.T) {
	t.Parallel()
	m, _, _ := ensured(t)
	ctx := t.Context()
	for _, alg := range []string{ES256, RS256} {
		t.Run(alg, func(t *testing.T) {
			k, err := m.SigningKey(ctx, alg)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := jose.NewSigner(jose.SigningKey{
				Algorithm: jose.SignatureAlgorithm(k.Alg),
				Key:       jose.JSONWebKey{Key: k.Private, KeyID: k.ID},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			obj, err := signer.Sign([]byte(`{"sub":"c1"}`))
			if err != nil {
				t.Fatal(err)
			}
			compact, err := obj.CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}

			jws, err := jose.ParseSignedCompact(compact, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
			if err != nil {
				t.Fatal(err)
			}
			pub, err := m.PublicKey(ctx, jws.Signatures[0].Header.KeyID)
			if err != nil {
				t.Fatal(err)
			}
			if pub.Private != nil {
				t.Error("PublicKey returned a private key")
			}
			if got, err := jws.Verify(pub.Public); err != nil || string(got) != `{"sub":"c1"}` {
				t.Errorf("Verify: got %q, %v", got, err)
			}
		})
	}
	if _, err := m.PublicKey(ctx, "no-such-kid"); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("PublicKey(unknown): got %v, want ErrNotFound", err)
	}
}

func TestManager_JWKS(t *testing.T) {
	t.Parallel()
	m, _, _ := ensured(t)
	ctx := t.Context()
	for _, alg := range []string{ES256, RS256} {
		if _, err := m.Rotate(ctx, alg, true); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.JWKS(ctx); !bytes.Equal(again, b) {
		t.Error("JWKS is not deterministic")
	}
	var doc jwksDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 6 {
		t.Fatalf("JWKS: got %d keys, want 6 (active, next, retired per algorithm)", len(doc.Keys))
	}
	for _, k := range doc.Keys {
		for _, f := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[f]; ok {
				t.Errorf("key %v has private field %q", k["kid"], f)
			}
		}
		want := []string{"kid", "alg", "use", "kty", "crv", "x", "y"}
		if k["alg"] == RS256 {
			want = []string{"kid", "alg", "use", "kty", "n", "e"}
		}
		for _, f := range want {
			if _, ok := k[f]; !ok {
				t.Errorf("key %v lacks %q", k["kid"], f)
			}
		}
		if k["use"] != "sig" {
			t.Errorf("key %v: use %v, want sig", k["kid"], k["use"])
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			t.Errorf("key %s is not a valid public key", k.KeyID)
		}
	}
}

func TestManager_NewestActiveSigns(t *testing.T) {
	t.Parallel()
	st, clk := newMemStore(), newClock()
	m := newManager(t, st, clk)
	var kids []string
	for range 2 {
		k, err := m.generate(ES256, idp.KeyActive, clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateKey(t.Context(), k); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, k.ID)
		clk.Add(time.Minute)
	}
	k, err := m.SigningKey(t.Context(), ES256)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != kids[1] {
		t.Errorf("SigningKey: got %s, want the newest active %s", k.ID, kids[1])
	}
	if got := jwksKIDs(t, m); !slices.Equal(got, []string{kids[1], kids[0]}) {
		t.Errorf("JWKS: got %v, want newest first %v", got, []string{kids[1], kids[0]})
	}
	if _, err := m.SigningKey(t.Context(), RS256); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("SigningKey(RS256) without keys: got %v, want ErrNotFound", err)
	}
}

func TestManager_Refresh(t *testing.T) {
	t.Parallel()
	st, clk := newMemStore(), newClock()
	admin, server := newManager(t, st, clk), newManager(t, st, clk)
	ctx := t.Context()
	if err := admin.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	old, err := server.SigningKey(ctx, ES256)
	if err != nil {
		t.Fatal(err)
	}
	promoted, err := admin.Rotate(ctx, ES256, true)
	if err != nil {
		t.Fatal(err)
	}
	fresh := only(t, admin, ES256, idp.KeyNext)

	t.Run("signing key cached until Refresh", func(t *testing.T) {
		clk.Add(server.opts.Refresh - time.Millisecond)
		if k, _ := server.SigningKey(ctx, ES256); k.ID != old.ID {
			t.Fatalf("before Refresh: got %s, want the cached %s", k.ID, old.ID)
		}
		clk.Add(time.Millisecond)
		if k, _ := server.SigningKey(ctx, ES256); k.ID != promoted.ID {
			t.Fatalf("after Refresh: got %s, want the promoted %s", k.ID, promoted.ID)
		}
	})
	t.Run("unknown kid reloads at most once a second", func(t *testing.T) {
		promoted2, err := admin.Rotate(ctx, ES256, true)
		if err != nil || promoted2.ID != fresh.ID {
			t.Fatalf("Rotate: got %v, %v; want %s", promoted2, err, fresh.ID)
		}
		newest := only(t, admin, ES256, idp.KeyNext)
		lists := st.listCalls()
		if _, err := server.PublicKey(ctx, newest.ID); !errors.Is(err, idp.ErrNotFound) {
			t.Fatalf("PublicKey right after a reload: got %v, want ErrNotFound", err)
		}
		if got := st.listCalls(); got != lists {
			t.Errorf("store reads: got %d, want %d", got, lists)
		}
		clk.Add(time.Second)
		if _, err := server.PublicKey(ctx, newest.ID); err != nil {
			t.Fatalf("PublicKey a second later: %v", err)
		}
		for range 10 {
			if _, err := server.PublicKey(ctx, "bogus"); !errors.Is(err, idp.ErrNotFound) {
				t.Fatalf("PublicKey(bogus): got %v, want ErrNotFound", err)
			}
		}
		if got := st.listCalls(); got != lists+1 {
			t.Errorf("store reads: got %d, want %d", got, lists+1)
		}
	})
}

func TestManager_StoreDown(t *testing.T) {
	t.Parallel()
	st, clk := newMemStore(), newClock()
	m := newManager(t, st, clk)
	ctx := t.Context()

	st.setErr(errDown)
	if _, err := m.SigningKey(ctx, ES256); !errors.Is(err, idp.ErrUnavailable) {
		t.Fatalf("first load: got %v, want ErrUnavailable", err)
	}
	if err := m.Ensure(ctx); !errors.Is(err, idp.ErrUnavailable) {
		t.Fatalf("Ensure: got %v, want ErrUnavailable", err)
	}
	st.setErr(nil)
	clk.Add(time.Second)
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	k, err := m.SigningKey(ctx, ES256)
	if err != nil {
		t.Fatal(err)
	}

	st.setErr(errDown)
	clk.Add(m.opts.Refresh)
	lists := st.listCalls()
	for range 3 {
		if got, err := m.SigningKey(ctx, ES256); err != nil || got != k {
			t.Fatalf("SigningKey with store down: got %v, %v; want the cached key", got, err)
		}
		if _, err := m.PublicKey(ctx, k.ID); err != nil {
			t.Fatalf("PublicKey(cached) with store down: %v", err)
		}
		if _, err := m.JWKS(ctx); err != nil {
			t.Fatalf("JWKS with store down: %v", err)
		}
	}
	if got := st.listCalls(); got != lists+1 {
		t.Errorf("store reads while down: got %d, want %d (retries at most once a second)", got, lists+1)
	}
	clk.Add(time.Second)
	if _, err := m.PublicKey(ctx, "just-rotated?"); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("PublicKey(unknown) with store down: got %v, want ErrUnavailable, not a denial", err)
	}
	if _, err := m.List(ctx); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("List: got %v, want ErrUnavailable", err)
	}
	if _, err := m.Rotate(ctx, ES256, true); !errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("Rotate: got %v, want ErrUnavailable", err)
	}

	st.setErr(nil)
	clk.Add(time.Second)
	if _, err := m.PublicKey(ctx, "bogus"); !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("PublicKey(unknown) after recovery: got %v, want ErrNotFound", err)
	}
}

func TestManager_Tampering(t *testing.T) {
	t.Parallel()
	m, st, clk := ensured(t)
	ctx := t.Context()

	other := New(st, testSealer(t, "a different master key.........."), Options{Now: clk.Now})
	if _, err := other.SigningKey(ctx, ES256); err == nil || errors.Is(err, idp.ErrUnavailable) {
		t.Errorf("wrong master key: got %v, want a decryption error", err)
	}

	// A sealed key moved to another record fails: the kid is the aad.
	active, next := only(t, m, ES256, idp.KeyActive), only(t, m, ES256, idp.KeyNext)
	sealed := st.get(next.ID).Private
	if err := st.UpdateKey(ctx, active.ID, func(k *idp.SigningKey) error {
		k.Private = sealed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := newManager(t, st, clk).SigningKey(ctx, ES256); err == nil {
		t.Error("swapped private key: want an error")
	}
}

// BenchmarkSigningKey measures the token endpoint's key lookup: a cache hit
// should neither allocate nor read the store.
func BenchmarkSigningKey(b *testing.B) {
	st := newMemStore()
	m := New(st, testSealer(b, "0123456789abcdef0123456789abcdef"), Options{})
	if err := m.Ensure(b.Context()); err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{ES256, RS256} {
		b.Run(alg, func(b *testing.B) {
			ctx := b.Context()
			lists := st.listCalls()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.SigningKey(ctx, alg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.listCalls()-lists)/float64(b.N), "store-reads/op")
		})
	}
}
