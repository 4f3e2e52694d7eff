package eid_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// clock is the injected time source; tests move it forward by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// memStore is the durable part eid needs, in maps. fail, when set, is
// returned by every call, to stand in for a database that is down.
type memStore struct {
	mu          sync.Mutex
	citizens    map[string]*idp.Citizen // by personal ID
	activations map[string]idp.Activation
	devices     map[string]idp.Device
	fail        error
}

var _ eid.Store = (*memStore)(nil)

func newMemStore(cs ...*idp.Citizen) *memStore {
	s := &memStore{
		citizens:    map[string]*idp.Citizen{},
		activations: map[string]idp.Activation{},
		devices:     map[string]idp.Device{},
	}
	for _, c := range cs {
		s.citizens[c.PersonalID] = c
	}
	return s
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *memStore) GetCitizenByPersonalID(_ context.Context, pid string) (*idp.Citizen, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	c, ok := s.citizens[pid]
	if !ok {
		return nil, fmt.Errorf("citizen: %w", idp.ErrNotFound)
	}
	cc := *c
	return &cc, nil
}

func (s *memStore) PutActivation(_ context.Context, a *idp.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.activations[a.CitizenID] = *a
	return nil
}

func (s *memStore) activation(citizenID string) (idp.Activation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activations[citizenID]
	return a, ok
}

func (s *memStore) UpdateActivation(_ context.Context, citizenID string, fn func(a *idp.Activation) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	a, ok := s.activations[citizenID]
	if !ok {
		return fmt.Errorf("activation: %w", idp.ErrNotFound)
	}
	err := fn(&a)
	s.activations[citizenID] = a // kept even when fn fails, like the real stores
	return err
}

func (s *memStore) CreateDevice(_ context.Context, d *idp.Device) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if _, ok := s.devices[d.ID]; ok {
		return fmt.Errorf("device: %w", idp.ErrConflict)
	}
	s.devices[d.ID] = *d
	return nil
}

func (s *memStore) GetDevice(_ context.Context, id string) (*idp.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	d, ok := s.devices[id]
	if !ok {
		return nil, fmt.Errorf("device: %w", idp.ErrNotFound)
	}
	return &d, nil
}

func (s *memStore) ListDevices(_ context.Context, citizenID string) ([]*idp.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var ds []*idp.Device
	for _, d := range s.devices {
		if d.CitizenID == citizenID {
			ds = append(ds, &d)
		}
	}
	return ds, nil
}

func (s *memStore) RevokeDevice(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	d, ok := s.devices[id]
	if !ok {
		return fmt.Errorf("device: %w", idp.ErrNotFound)
	}
	if d.RevokedAt == nil {
		d.RevokedAt = &at
	}
	s.devices[id] = d
	return nil
}

// memEph is idp.Ephemeral in a map, with TTLs on the injected clock.
type memEph struct {
	mu   sync.Mutex
	now  func() time.Time
	m    map[string]ephEntry
	fail error
}

type ephEntry struct {
	v   []byte
	exp time.Time
}

var _ idp.Ephemeral = (*memEph)(nil)

func newMemEph(now func() time.Time) *memEph {
	return &memEph{now: now, m: map[string]ephEntry{}}
}

func (e *memEph) setFail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail = err
}

// live returns the entry under key if it has not expired; e.mu is held.
func (e *memEph) live(key string) (ephEntry, bool) {
	en, ok := e.m[key]
	if !ok || !e.now().Before(en.exp) {
		delete(e.m, key)
		return ephEntry{}, false
	}
	return en, true
}

func (e *memEph) Set(_ context.Context, key string, v []byte, ttl time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	e.m[key] = ephEntry{v: append([]byte(nil), v...), exp: e.now().Add(ttl)}
	return nil
}

func (e *memEph) Create(_ context.Context, key string, v []byte, ttl time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	if _, ok := e.live(key); ok {
		return fmt.Errorf("%s: %w", key, idp.ErrConflict)
	}
	e.m[key] = ephEntry{v: append([]byte(nil), v...), exp: e.now().Add(ttl)}
	return nil
}

func (e *memEph) Get(_ context.Context, key string) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return nil, e.fail
	}
	en, ok := e.live(key)
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, idp.ErrNotFound)
	}
	return append([]byte(nil), en.v...), nil
}

func (e *memEph) Take(ctx context.Context, key string) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return nil, e.fail
	}
	en, ok := e.live(key)
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, idp.ErrNotFound)
	}
	delete(e.m, key)
	return en.v, nil
}

func (e *memEph) Delete(_ context.Context, key string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	delete(e.m, key)
	return nil
}

func (e *memEph) Incr(_ context.Context, key string, ttl time.Duration) (int64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return 0, e.fail
	}
	en, ok := e.live(key)
	if !ok {
		en = ephEntry{exp: e.now().Add(ttl)}
	}
	n, _ := strconv.ParseInt(string(en.v), 10, 64) // empty for a new counter
	n++
	en.v = strconv.AppendInt(nil, n, 10)
	e.m[key] = en
	return n, nil
}

func (e *memEph) Ping(context.Context) error { return nil }
func (e *memEph) Close() error               { return nil }
