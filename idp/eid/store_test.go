package eid_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
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

// openStore returns the real SQLite store (durable and ephemeral) on a fresh
// file, on the test's clock, holding the given citizens, and its database.
func openStore(t testing.TB, now func() time.Time, cs ...*idp.Citizen) (*sqlstore.Store, *sql.DB) {
	t.Helper()
	// Not t.TempDir(): fuzz seeds' directories contain '#', which
	// sqlite.Open's "file:" URI would read as the start of a fragment.
	dir, err := os.MkdirTemp("", "eid-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	db, err := sqlite.Open(filepath.Join(dir, "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlite.New(db, sqlstore.WithNow(now))
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(cs) > 0 {
		if err := s.CreateCitizens(context.Background(), cs); err != nil {
			t.Fatal(err)
		}
	}
	return s, db
}

// failSwitch makes a store answer with an error, standing in for a database
// that is down. The wrappers below do nothing else: every call that does
// not fail goes to the real store.
type failSwitch struct{ err atomic.Pointer[error] }

func (f *failSwitch) setFail(err error) {
	if err == nil {
		f.err.Store(nil)
		return
	}
	f.err.Store(&err)
}

func (f *failSwitch) failed() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// faultStore is the real durable store as eid.Service sees it, with error
// injection.
type faultStore struct {
	*sqlstore.Store
	failSwitch
}

var _ eid.Store = (*faultStore)(nil)

func (s *faultStore) GetCitizenByPersonalID(ctx context.Context, pid string) (*idp.Citizen, error) {
	if err := s.failed(); err != nil {
		return nil, err
	}
	return s.Store.GetCitizenByPersonalID(ctx, pid)
}

func (s *faultStore) PutActivation(ctx context.Context, a *idp.Activation) error {
	if err := s.failed(); err != nil {
		return err
	}
	return s.Store.PutActivation(ctx, a)
}

func (s *faultStore) UpdateActivation(ctx context.Context, citizenID string, fn func(a *idp.Activation) error) error {
	if err := s.failed(); err != nil {
		return err
	}
	return s.Store.UpdateActivation(ctx, citizenID, fn)
}

func (s *faultStore) CreateDevice(ctx context.Context, d *idp.Device) error {
	if err := s.failed(); err != nil {
		return err
	}
	return s.Store.CreateDevice(ctx, d)
}

func (s *faultStore) GetDevice(ctx context.Context, id string) (*idp.Device, error) {
	if err := s.failed(); err != nil {
		return nil, err
	}
	return s.Store.GetDevice(ctx, id)
}

func (s *faultStore) ListDevices(ctx context.Context, citizenID string) ([]*idp.Device, error) {
	if err := s.failed(); err != nil {
		return nil, err
	}
	return s.Store.ListDevices(ctx, citizenID)
}

func (s *faultStore) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	if err := s.failed(); err != nil {
		return err
	}
	return s.Store.RevokeDevice(ctx, id, at)
}

// activation reads a citizen's activation record straight from the store.
func (s *faultStore) activation(citizenID string) (idp.Activation, bool) {
	a, err := s.GetActivation(context.Background(), citizenID)
	if err != nil {
		return idp.Activation{}, false
	}
	return *a, true
}

// faultEph is the real SQL ephemeral store with error injection.
type faultEph struct {
	*sqlstore.Store
	failSwitch
}

var _ idp.Ephemeral = (*faultEph)(nil)

func (e *faultEph) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if err := e.failed(); err != nil {
		return err
	}
	return e.Store.Set(ctx, key, v, ttl)
}

func (e *faultEph) Create(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if err := e.failed(); err != nil {
		return err
	}
	return e.Store.Create(ctx, key, v, ttl)
}

func (e *faultEph) CreateMany(ctx context.Context, keys []string, ttl time.Duration) ([]bool, error) {
	if err := e.failed(); err != nil {
		return nil, err
	}
	return e.Store.CreateMany(ctx, keys, ttl)
}

func (e *faultEph) Get(ctx context.Context, key string) ([]byte, error) {
	if err := e.failed(); err != nil {
		return nil, err
	}
	return e.Store.Get(ctx, key)
}

func (e *faultEph) Take(ctx context.Context, key string) ([]byte, error) {
	if err := e.failed(); err != nil {
		return nil, err
	}
	return e.Store.Take(ctx, key)
}

func (e *faultEph) Delete(ctx context.Context, key string) error {
	if err := e.failed(); err != nil {
		return err
	}
	return e.Store.Delete(ctx, key)
}

func (e *faultEph) Incr(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := e.failed(); err != nil {
		return 0, err
	}
	return e.Store.Incr(ctx, key, ttl)
}
