package oidc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

// twoProcesses returns two stores on one SQLite file over separate pools:
// the server's and an admin command's (another process).
func twoProcesses(t *testing.T) (server, admin *sqlstore.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "idp.db")
	var out [2]*sqlstore.Store
	for i := range out {
		db, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		out[i] = sqlite.New(db)
		if err := out[i].Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return out[0], out[1]
}

// readCounter is the real store with its client reads counted.
type readCounter struct {
	*sqlstore.Store
	reads atomic.Int64
	// versionErr, when set, makes ClientsVersion fail (a store outage seen
	// by the poller).
	versionErr atomic.Pointer[error]
}

func (r *readCounter) GetClient(ctx context.Context, id string) (*idp.Client, error) {
	r.reads.Add(1)
	return r.Store.GetClient(ctx, id)
}

func (r *readCounter) ClientsVersion(ctx context.Context) (int64, error) {
	if err := r.versionErr.Load(); err != nil {
		return 0, *err
	}
	return r.Store.ClientsVersion(ctx)
}

func agency(id string, secretHash []byte) *idp.Client {
	return &idp.Client{ID: id, Name: "Agency " + id, GrantTypes: []string{"client_credentials"}, Scopes: []string{"registry.read"},
		AuthMethod: idp.AuthSecretBasic, SecretHash: secretHash, IDTokenAlg: "ES256"}
}

func mustCreate(t *testing.T, s *sqlstore.Store, c *idp.Client) {
	t.Helper()
	if err := s.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

func secretOf(t *testing.T, s *Storage, id string) ([]byte, error) {
	t.Helper()
	c, err := s.GetClient(context.Background(), id)
	if err != nil {
		return nil, err
	}
	return c.GetHashedSecret(), nil
}

func pollOnce(t *testing.T, s *Storage) {
	t.Helper()
	if err := s.clients.poll(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestClientCache_ServesFromMemoryWhileWatched(t *testing.T) {
	server, _ := twoProcesses(t)
	mustCreate(t, server, agency("a1", []byte("h1")))
	rc := &readCounter{Store: server}
	s := NewStorage(rc, nil, nil, Lifespans{}, nil)

	// Not watched: every lookup reads the store.
	for range 3 {
		if _, err := secretOf(t, s, "a1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := rc.reads.Load(); n != 3 {
		t.Fatalf("unwatched cache: %d reads for 3 lookups, want 3", n)
	}
	pollOnce(t, s)
	for range 5 {
		if _, err := secretOf(t, s, "a1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := rc.reads.Load() - 3; n != 1 {
		t.Errorf("watched cache: %d reads for 5 lookups, want 1", n)
	}
	// Unknown clients are not cached (no memory for random ids).
	for range 2 {
		if _, err := secretOf(t, s, "nobody"); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("unknown client: got %v, want not found", err)
		}
	}
	if n := rc.reads.Load() - 4; n != 2 {
		t.Errorf("unknown client: %d reads for 2 lookups, want 2", n)
	}
}

// An admin command in another process deletes or replaces a client: the next
// poll drops it.
func TestClientCache_ChangeByAnotherProcess(t *testing.T) {
	server, admin := twoProcesses(t)
	mustCreate(t, server, agency("a1", []byte("old")))
	s := NewStorage(server, nil, nil, Lifespans{}, nil)
	pollOnce(t, s)
	if _, err := secretOf(t, s, "a1"); err != nil {
		t.Fatal(err)
	}

	if err := admin.DeleteClient(context.Background(), "a1"); err != nil {
		t.Fatal(err)
	}
	pollOnce(t, s)
	if _, err := secretOf(t, s, "a1"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted by another process, after a poll: got %v, want not found", err)
	}

	mustCreate(t, admin, agency("a1", []byte("new")))
	pollOnce(t, s)
	if h, err := secretOf(t, s, "a1"); err != nil || string(h) != "new" {
		t.Fatalf("recreated by another process, after a poll: got %q, %v, want the new secret", h, err)
	}
}

// Writes through this process's store take effect at once, without a poll.
func TestClientCache_ChangeInProcessAtOnce(t *testing.T) {
	server, _ := twoProcesses(t)
	mustCreate(t, server, agency("a1", []byte("old")))
	s := NewStorage(server, nil, nil, Lifespans{}, nil)
	pollOnce(t, s)
	if _, err := secretOf(t, s, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := server.DeleteClient(context.Background(), "a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := secretOf(t, s, "a1"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deleted in process: got %v, want not found at once", err)
	}
	mustCreate(t, server, agency("a1", []byte("new")))
	if h, err := secretOf(t, s, "a1"); err != nil || string(h) != "new" {
		t.Fatalf("recreated in process: got %q, %v, want the new secret at once", h, err)
	}
	// The cache is still in use afterwards.
	rc := &readCounter{Store: server}
	s = NewStorage(rc, nil, nil, Lifespans{}, nil)
	pollOnce(t, s)
	for range 3 {
		_, _ = secretOf(t, s, "a1")
	}
	if n := rc.reads.Load(); n != 1 {
		t.Errorf("%d reads for 3 lookups, want 1", n)
	}
}

// With the watcher running, a client deleted by another process stops being
// served within the documented bound (asserted only against a generous
// deadline).
func TestClientCache_WatchedDeleteStopsWithinBound(t *testing.T) {
	server, admin := twoProcesses(t)
	mustCreate(t, server, agency("a1", []byte("h")))
	s := NewStorage(server, nil, nil, Lifespans{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.clients.run(ctx, nil) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, "the watcher to make the cache fresh", func() bool { return s.clients.generation() != nil })
	if _, err := secretOf(t, s, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteClient(context.Background(), "a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the deleted client to stop being served", func() bool {
		_, err := secretOf(t, s, "a1")
		return errors.Is(err, fosite.ErrNotFound)
	})
	for range 20 {
		if _, err := secretOf(t, s, "a1"); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("deleted client served again: %v", err)
		}
	}
}

// When the poller cannot read the version (store outage, stalled poller),
// the cache is bypassed after ClientMaxStale instead of serving old clients.
func TestClientCache_FailingPollsBypassTheCache(t *testing.T) {
	server, admin := twoProcesses(t)
	mustCreate(t, server, agency("a1", []byte("h")))
	rc := &readCounter{Store: server}
	s := NewStorage(rc, nil, nil, Lifespans{}, nil)
	s.clients.maxStale = 200 * time.Millisecond
	pollOnce(t, s)
	if _, err := secretOf(t, s, "a1"); err != nil {
		t.Fatal(err)
	}
	outage := fmt.Errorf("version: %w", idp.ErrUnavailable)
	rc.versionErr.Store(&outage)
	if err := s.clients.poll(context.Background()); !errors.Is(err, idp.ErrUnavailable) {
		t.Fatalf("poll during an outage: got %v", err)
	}
	if err := admin.DeleteClient(context.Background(), "a1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unconfirmed cache to be bypassed", func() bool {
		_ = s.clients.poll(context.Background()) // keeps failing
		_, err := secretOf(t, s, "a1")
		return errors.Is(err, fosite.ErrNotFound)
	})
}

// Readers run while another process deletes and recreates one client with a
// new secret, again and again, and the server polls after each round. After
// a poll that follows round k, no lookup may return a secret older than k:
// a read that raced with a change never lands in the cache that is served.
func TestClientCache_ConcurrentDeleteRecreate(t *testing.T) {
	server, admin := twoProcesses(t)
	secret := func(k int) []byte { return fmt.Appendf(nil, "secret-%03d", k) }
	mustCreate(t, admin, agency("a1", secret(0)))
	s := NewStorage(server, nil, nil, Lifespans{}, nil)
	pollOnce(t, s)

	const rounds = 40
	var published atomic.Int64 // rounds whose change a poll has seen
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Pointer[string]
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := published.Load()
				h, err := secretOf(t, s, "a1")
				if errors.Is(err, fosite.ErrNotFound) {
					continue // between a delete and its recreate
				}
				if err != nil {
					msg := err.Error()
					bad.Store(&msg)
					return
				}
				var k int64
				if _, err := fmt.Sscanf(string(h), "secret-%03d", &k); err != nil || k < floor {
					msg := fmt.Sprintf("after the poll for round %d a lookup returned %q", floor, h)
					bad.Store(&msg)
					return
				}
			}
		}()
	}
	// The server's own process writes too, every fifth round.
	for k := 1; k <= rounds; k++ {
		w := admin
		if k%5 == 0 {
			w = server
		}
		if err := w.DeleteClient(context.Background(), "a1"); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, w, agency("a1", secret(k)))
		pollOnce(t, s)
		published.Store(int64(k))
	}
	close(stop)
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(*msg)
	}
	if h, err := secretOf(t, s, "a1"); err != nil || !bytes.Equal(h, secret(rounds)) {
		t.Errorf("final lookup: %q, %v, want %q", h, err, secret(rounds))
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
