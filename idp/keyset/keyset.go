// Package keyset manages the token signing keys (generation, rotation, JWKS)
// and the secrets derived from the master key.
package keyset

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/onedoor/onedoor/idp"
)

// Signing algorithms the Manager keeps keys for.
const (
	ES256 = "ES256" // ECDSA P-256
	RS256 = "RS256" // RSA 2048
)

var algs = []string{ES256, RS256}

// ErrTooSoon is returned by Rotate when the next key has not been published
// for Options.MinPublished yet.
var ErrTooSoon = errors.New("next key not published long enough")

// minReload bounds how often an unknown kid, or a failed refresh, can make
// the Manager read the store.
const minReload = time.Second

// Options tune a Manager. Zero values take the defaults.
type Options struct {
	Now func() time.Time // default time.Now
	// Retention is how long a retired key stays published (default 24h). It
	// must exceed the longest lifetime of a token or id_token_hint it signed.
	Retention time.Duration
	// MinPublished is how long a next key must have been published before
	// Rotate promotes it without force (default 15m), so relying parties
	// have refreshed their JWKS cache.
	MinPublished time.Duration
	// Refresh is how long keys read from the store are cached (default 5s);
	// another process, such as the admin CLI, may rotate.
	Refresh time.Duration
}

// Key is a parsed signing key. Keys returned by the Manager are shared: do
// not modify them.
type Key struct {
	ID      string
	Alg     string
	Private crypto.Signer // *ecdsa.PrivateKey or *rsa.PrivateKey; nil for verification keys
	Public  crypto.PublicKey
}

// KeyInfo describes a key without private material, for `onedoor keys list`.
type KeyInfo struct {
	ID           string     `json:"kid"`
	Alg          string     `json:"alg"`
	State        string     `json:"state"`
	CreatedAt    time.Time  `json:"created"`
	ActivatedAt  *time.Time `json:"activated,omitempty"`
	RetiredAt    *time.Time `json:"retired,omitempty"`
	PublishUntil *time.Time `json:"publish_until,omitempty"`
	Published    bool       `json:"published"`
}

// Manager creates, rotates and serves signing keys. Keys are cached: the
// store is read at most once per Options.Refresh and each private key is
// decrypted once, since SigningKey is on the token endpoint's hot path.
type Manager struct {
	store  idp.KeyStore
	sealer *Sealer
	opts   Options

	mutate sync.Mutex // serialises this process's Ensure and Rotate
	load   sync.Mutex // serialises store reads into the cache
	cur    atomic.Pointer[snapshot]
}

// New returns a Manager for the keys in store, private parts sealed with
// sealer (built from DeriveKey(master, "key-encryption")).
func New(store idp.KeyStore, sealer *Sealer, opts Options) *Manager {
	if store == nil || sealer == nil {
		panic("keyset: New needs a store and a sealer")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Retention <= 0 {
		opts.Retention = 24 * time.Hour
	}
	if opts.MinPublished <= 0 {
		opts.MinPublished = 15 * time.Minute
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Second
	}
	return &Manager{store: store, sealer: sealer, opts: opts}
}

// Ensure creates, for each algorithm, an active key if there is none and a
// next key if there is none. Concurrent callers in several processes may
// create duplicates, which is harmless: the newest active key signs.
func (m *Manager) Ensure(ctx context.Context) error {
	m.mutate.Lock()
	defer m.mutate.Unlock()
	return m.locked(ctx, m.ensure)
}

// Locker serialises key changes across processes that share one store (two
// replicas starting at once must not both create the first keys). A store
// without it relies on the Manager's in-process mutex.
type Locker interface {
	WithLock(ctx context.Context, name string, fn func(ctx context.Context) error) error
}

func (m *Manager) locked(ctx context.Context, fn func(ctx context.Context) error) error {
	if l, ok := m.store.(Locker); ok {
		return l.WithLock(ctx, "signing-keys", fn)
	}
	return fn(ctx)
}

func (m *Manager) ensure(ctx context.Context) error {
	recs, err := m.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("ensure signing keys: %w", err)
	}
	now := m.opts.Now().UTC()
	for _, alg := range algs {
		var active, next bool
		for _, r := range recs {
			if r.Alg == alg {
				active = active || r.State == idp.KeyActive
				next = next || r.State == idp.KeyNext
			}
		}
		for _, need := range []struct {
			state string
			have  bool
		}{{idp.KeyActive, active}, {idp.KeyNext, next}} {
			if need.have {
				continue
			}
			k, err := m.generate(alg, need.state, now)
			if err != nil {
				return fmt.Errorf("ensure signing keys: %w", err)
			}
			if err := m.store.CreateKey(ctx, k); err != nil {
				return fmt.Errorf("ensure signing keys: create %s %s key: %w", need.state, alg, err)
			}
		}
	}
	if s := m.reload(ctx); !s.ok {
		return s.err
	}
	return nil
}

// Rotate promotes the oldest next key of alg to active, retires the
// previously active keys (published for Options.Retention more) and creates
// a fresh next key, so every key is in the JWKS before it signs. Unless
// force, it refuses with ErrTooSoon when the next key is younger than
// Options.MinPublished. The returned record has no private part; it is
// non-nil with an error if the promotion happened but retiring failed.
func (m *Manager) Rotate(ctx context.Context, alg string, force bool) (*idp.SigningKey, error) {
	if !slices.Contains(algs, alg) {
		return nil, fmt.Errorf("rotate: algorithm %q: want ES256 or RS256: %w", alg, idp.ErrInvalid)
	}
	m.mutate.Lock()
	defer m.mutate.Unlock()
	var promoted *idp.SigningKey
	err := m.locked(ctx, func(ctx context.Context) error {
		var err error
		promoted, err = m.rotate(ctx, alg, force)
		return err
	})
	return promoted, err
}

func (m *Manager) rotate(ctx context.Context, alg string, force bool) (*idp.SigningKey, error) {
	recs, err := m.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("rotate %s: %w", alg, err)
	}
	now := m.opts.Now().UTC()
	var next *idp.SigningKey
	var active []string
	for _, r := range recs {
		if r.Alg != alg {
			continue
		}
		switch r.State {
		case idp.KeyActive:
			active = append(active, r.ID)
		case idp.KeyNext:
			if next == nil || r.CreatedAt.Before(next.CreatedAt) {
				next = r
			}
		}
	}
	if next == nil {
		return nil, fmt.Errorf("rotate %s: no next key to promote (run ensure first): %w", alg, idp.ErrNotFound)
	}
	if age := now.Sub(next.CreatedAt); age < m.opts.MinPublished && !force {
		return nil, fmt.Errorf("rotate %s: next key %s was published %s ago, less than %s, so relying parties may not know it yet; wait or force: %w",
			alg, next.ID, age.Round(time.Second), m.opts.MinPublished, ErrTooSoon)
	}

	// Create the successor first: if that fails nothing has changed yet.
	fresh, err := m.generate(alg, idp.KeyNext, now)
	if err != nil {
		return nil, fmt.Errorf("rotate %s: %w", alg, err)
	}
	if err := m.store.CreateKey(ctx, fresh); err != nil {
		return nil, fmt.Errorf("rotate %s: create next key: %w", alg, err)
	}
	// Promote before retiring so there is always an active key.
	var promoted idp.SigningKey
	err = m.store.UpdateKey(ctx, next.ID, func(k *idp.SigningKey) error {
		if k.State != idp.KeyNext {
			return fmt.Errorf("key %s is %s, not next (concurrent rotation?): %w", k.ID, k.State, idp.ErrConflict)
		}
		k.State = idp.KeyActive
		k.ActivatedAt = ptr(now)
		promoted = *k
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rotate %s: promote %s: %w", alg, next.ID, err)
	}
	promoted.Private = nil
	var errs []error
	for _, kid := range active {
		err := m.store.UpdateKey(ctx, kid, func(k *idp.SigningKey) error {
			if k.State == idp.KeyActive {
				k.State = idp.KeyRetired
				k.RetiredAt = ptr(now)
				k.PublishUntil = ptr(now.Add(m.opts.Retention))
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("retire %s: %w", kid, err))
		}
	}
	// A failed reload is not a failed rotation: the cache retries later.
	m.reload(ctx)
	if err := errors.Join(errs...); err != nil {
		return &promoted, fmt.Errorf("rotate %s: %w", alg, err)
	}
	return &promoted, nil
}

// SigningKey returns the key to sign with for alg: the active key with the
// newest ActivatedAt. When a refresh fails the cached key keeps being used.
func (m *Manager) SigningKey(ctx context.Context, alg string) (*Key, error) {
	s, err := m.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	if k := s.signers[alg]; k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("no active %s signing key: %w", alg, idp.ErrNotFound)
}

// PublicKey returns a published key (next, active, or retired until its
// PublishUntil) for verification; Private is nil. An unknown kid makes the
// Manager re-read the store, at most once a second, since another process
// may have just rotated.
func (m *Manager) PublicKey(ctx context.Context, kid string) (*Key, error) {
	s, err := m.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	e := s.byKID[kid]
	if e == nil && m.stale(s, minReload) {
		m.load.Lock()
		s = m.loadLocked(ctx, minReload)
		m.load.Unlock()
		e = s.byKID[kid]
	}
	if e == nil && s.err != nil {
		// Not a denial: the key may exist in the store we cannot reach.
		return nil, fmt.Errorf("signing key %q not cached: %w", kid, s.err)
	}
	if e == nil || !e.published(m.opts.Now()) {
		return nil, fmt.Errorf("signing key %q: %w", kid, idp.ErrNotFound)
	}
	return e.public, nil
}

// JWKS returns the JSON Web Key Set of the published keys: active first,
// then next, then retired, each newest first.
func (m *Manager) JWKS(ctx context.Context) ([]byte, error) {
	s, err := m.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	now := m.opts.Now()
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(s.keys))}
	for _, e := range s.keys {
		if e.published(now) {
			// Rebuilt from the parsed public key so nothing else stored leaks.
			set.Keys = append(set.Keys, jose.JSONWebKey{
				Key: e.public.Public, KeyID: e.rec.ID, Algorithm: e.rec.Alg, Use: "sig",
			})
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("marshal jwks: %w", err)
	}
	return b, nil
}

// List describes every stored key, read from the store rather than the
// cache, in JWKS order with unpublished keys last.
func (m *Manager) List(ctx context.Context) ([]KeyInfo, error) {
	recs, err := m.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	now := m.opts.Now()
	sortKeys(recs, now)
	out := make([]KeyInfo, 0, len(recs))
	for _, r := range recs {
		out = append(out, KeyInfo{
			ID: r.ID, Alg: r.Alg, State: r.State, CreatedAt: r.CreatedAt,
			ActivatedAt: r.ActivatedAt, RetiredAt: r.RetiredAt, PublishUntil: r.PublishUntil,
			Published: published(r, now),
		})
	}
	return out, nil
}

// snapshot is an immutable view of the store's keys.
type snapshot struct {
	checked time.Time // last load attempt
	err     error     // why that attempt failed, if it did
	ok      bool      // keys come from a successful load
	keys    []*entry  // JWKS order
	byKID   map[string]*entry
	signers map[string]*Key // alg → key to sign with
}

type entry struct {
	rec    idp.SigningKey // as stored; Private stays sealed
	public *Key
	signer *Key // decrypted for active keys only
}

func (e *entry) published(now time.Time) bool { return published(&e.rec, now) }

func published(k *idp.SigningKey, now time.Time) bool {
	switch k.State {
	case idp.KeyNext, idp.KeyActive:
		return true
	case idp.KeyRetired:
		return k.PublishUntil != nil && now.Before(*k.PublishUntil)
	}
	return false
}

// snapshot returns the cached keys, refreshing them when older than
// Options.Refresh. While one caller refreshes, others use the stale keys; a
// failed refresh keeps them. Only a cache that never loaded returns an error.
func (m *Manager) snapshot(ctx context.Context) (*snapshot, error) {
	s := m.cur.Load()
	if m.stale(s, m.opts.Refresh) {
		if s != nil && s.ok {
			if m.load.TryLock() {
				s = m.loadLocked(ctx, m.opts.Refresh)
				m.load.Unlock()
			}
		} else {
			m.load.Lock()
			s = m.loadLocked(ctx, m.opts.Refresh)
			m.load.Unlock()
		}
	}
	if !s.ok {
		return nil, s.err
	}
	return s, nil
}

// stale reports whether s is older than maxAge, or than minReload after a
// failure so a down store is retried soon but not on every request.
func (m *Manager) stale(s *snapshot, maxAge time.Duration) bool {
	if s == nil {
		return true
	}
	if s.err != nil {
		maxAge = min(maxAge, minReload)
	}
	age := m.opts.Now().Sub(s.checked)
	return age < 0 || age >= maxAge // a wall clock stepping back counts as stale
}

// reload reads the store now, after this Manager changed it.
func (m *Manager) reload(ctx context.Context) *snapshot {
	m.load.Lock()
	defer m.load.Unlock()
	return m.loadLocked(ctx, 0)
}

// loadLocked reads the store unless another caller did within maxAge. The
// caller holds m.load.
func (m *Manager) loadLocked(ctx context.Context, maxAge time.Duration) *snapshot {
	prev := m.cur.Load()
	if maxAge > 0 && !m.stale(prev, maxAge) {
		return prev
	}
	now := m.opts.Now()
	s, err := m.read(ctx, prev)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up; that says nothing about the store.
			if prev != nil && prev.ok {
				return prev
			}
			return &snapshot{err: err}
		}
		if prev != nil && prev.ok {
			cp := *prev
			s = &cp
		} else {
			s = &snapshot{}
		}
		s.err = err
	}
	s.checked = now
	m.cur.Store(s)
	return s
}

// read lists the keys, reusing what prev already parsed and decrypted.
func (m *Manager) read(ctx context.Context, prev *snapshot) (*snapshot, error) {
	recs, err := m.store.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	sortKeys(recs, m.opts.Now())
	s := &snapshot{
		ok:      true,
		keys:    make([]*entry, 0, len(recs)),
		byKID:   make(map[string]*entry, len(recs)),
		signers: make(map[string]*Key, len(algs)),
	}
	for _, r := range recs {
		var old *entry
		if prev != nil {
			old = prev.byKID[r.ID]
		}
		e, err := m.parse(r, old)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, e)
		s.byKID[r.ID] = e
		if e.signer != nil && s.signers[r.Alg] == nil {
			s.signers[r.Alg] = e.signer // sorted: the newest active key
		}
	}
	return s, nil
}

// parse checks a stored key and, when it is active, decrypts it. A record
// that fails these checks fails the whole load: it means a wrong master key
// or tampering, which must not go unnoticed.
func (m *Manager) parse(r *idp.SigningKey, old *entry) (*entry, error) {
	e := &entry{rec: *r}
	if old != nil && old.rec.Public == r.Public && bytes.Equal(old.rec.Private, r.Private) {
		e.public, e.signer = old.public, old.signer
	} else {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON([]byte(r.Public)); err != nil {
			return nil, fmt.Errorf("signing key %s: public jwk: %w", r.ID, err)
		}
		if !jwk.IsPublic() || jwk.KeyID != r.ID || jwk.Algorithm != r.Alg {
			return nil, fmt.Errorf("signing key %s: public jwk does not match the record", r.ID)
		}
		e.public = &Key{ID: r.ID, Alg: r.Alg, Public: jwk.Key}
	}
	if r.State != idp.KeyActive || !slices.Contains(algs, r.Alg) {
		// A key that stopped being active (rotated, or withdrawn by hand)
		// never signs again, even though this process decrypted it before.
		e.signer = nil
		return e, nil
	}
	if e.signer != nil {
		return e, nil
	}
	der, err := m.sealer.Open(r.Private, []byte(r.ID))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", r.ID, err)
	}
	signer, ok := pk.(crypto.Signer)
	if !ok || !fitsAlg(r.Alg, signer.Public()) {
		return nil, fmt.Errorf("signing key %s: private key is not %s", r.ID, r.Alg)
	}
	if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(e.public.Public) {
		return nil, fmt.Errorf("signing key %s: private key does not match the public jwk", r.ID)
	}
	e.signer = &Key{ID: r.ID, Alg: r.Alg, Private: signer, Public: e.public.Public}
	return e, nil
}

func fitsAlg(alg string, pub crypto.PublicKey) bool {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		return alg == ES256 && p.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return alg == RS256 && p.N.BitLen() >= 2048
	}
	return false
}

// generate makes a new key record. The kid is the RFC 7638 thumbprint, so it
// names the key material and cannot collide across processes.
func (m *Manager) generate(alg, state string, now time.Time) (*idp.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return nil, fmt.Errorf("generate key: algorithm %q: %w", alg, idp.ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	pub, err := jwk.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	k := &idp.SigningKey{
		ID:        jwk.KeyID,
		Alg:       alg,
		State:     state,
		Private:   m.sealer.Seal(der, []byte(jwk.KeyID)),
		Public:    string(pub),
		CreatedAt: now,
	}
	if state == idp.KeyActive {
		k.ActivatedAt = ptr(now)
	}
	return k, nil
}

// sortKeys orders keys as the JWKS lists them: published before unpublished;
// then active, next, retired; newest first within a state.
func sortKeys(ks []*idp.SigningKey, now time.Time) {
	rank := func(k *idp.SigningKey) int {
		r := 3
		switch k.State {
		case idp.KeyActive:
			r = 0
		case idp.KeyNext:
			r = 1
		case idp.KeyRetired:
			r = 2
		}
		if !published(k, now) {
			r += 4
		}
		return r
	}
	at := func(k *idp.SigningKey) time.Time {
		switch {
		case k.State == idp.KeyActive && k.ActivatedAt != nil:
			return *k.ActivatedAt
		case k.State == idp.KeyRetired && k.RetiredAt != nil:
			return *k.RetiredAt
		}
		return k.CreatedAt
	}
	slices.SortFunc(ks, func(a, b *idp.SigningKey) int {
		return cmp.Or(
			cmp.Compare(rank(a), rank(b)),
			at(b).Compare(at(a)),
			b.CreatedAt.Compare(a.CreatedAt),
			cmp.Compare(a.ID, b.ID),
		)
	})
}

func ptr(t time.Time) *time.Time { return &t }
