package eidapp_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// memStore and memEph are the smallest stores a real eid.Service runs on,
// so the app is tested against the domain logic it will meet in production.

type memStore struct {
	mu          sync.Mutex
	citizens    map[string]idp.Citizen // by personal ID
	activations map[string]idp.Activation
	devices     map[string]idp.Device
}

var _ eid.Store = (*memStore)(nil)

func (s *memStore) GetCitizenByPersonalID(_ context.Context, pid string) (*idp.Citizen, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.citizens[pid]
	if !ok {
		return nil, idp.ErrNotFound
	}
	return &c, nil
}

func (s *memStore) PutActivation(_ context.Context, a *idp.Activation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.activations[a.CitizenID] = *a
	return nil
}

func (s *memStore) UpdateActivation(_ context.Context, citizenID string, fn func(a *idp.Activation) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.activations[citizenID]
	if !ok {
		return idp.ErrNotFound
	}
	err := fn(&a)
	s.activations[citizenID] = a
	return err
}

func (s *memStore) CreateDevice(_ context.Context, d *idp.Device) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.devices[d.ID] = *d
	return nil
}

func (s *memStore) GetDevice(_ context.Context, id string) (*idp.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return nil, idp.ErrNotFound
	}
	return &d, nil
}

func (s *memStore) ListDevices(_ context.Context, citizenID string) ([]*idp.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
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
	d, ok := s.devices[id]
	if !ok {
		return idp.ErrNotFound
	}
	d.RevokedAt = &at
	s.devices[id] = d
	return nil
}

type memEph struct {
	mu sync.Mutex
	m  map[string]ephEntry
}

type ephEntry struct {
	v   []byte
	exp time.Time
}

var _ idp.Ephemeral = (*memEph)(nil)

func (e *memEph) live(key string) (ephEntry, bool) {
	en, ok := e.m[key]
	if !ok || !time.Now().Before(en.exp) {
		delete(e.m, key)
		return ephEntry{}, false
	}
	return en, true
}

func (e *memEph) Set(_ context.Context, key string, v []byte, ttl time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = ephEntry{v: v, exp: time.Now().Add(ttl)}
	return nil
}

func (e *memEph) Create(_ context.Context, key string, v []byte, ttl time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.live(key); ok {
		return idp.ErrConflict
	}
	e.m[key] = ephEntry{v: v, exp: time.Now().Add(ttl)}
	return nil
}

func (e *memEph) Get(_ context.Context, key string) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en, ok := e.live(key)
	if !ok {
		return nil, idp.ErrNotFound
	}
	return en.v, nil
}

func (e *memEph) Take(_ context.Context, key string) ([]byte, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	en, ok := e.live(key)
	if !ok {
		return nil, idp.ErrNotFound
	}
	delete(e.m, key)
	return en.v, nil
}

func (e *memEph) Delete(_ context.Context, key string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
	return nil
}

func (e *memEph) Incr(context.Context, string, time.Duration) (int64, error) {
	return 0, fmt.Errorf("Incr: %w", idp.ErrUnavailable) // eid does not count
}

func (e *memEph) Ping(context.Context) error { return nil }
func (e *memEph) Close() error               { return nil }
