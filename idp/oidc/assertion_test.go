package oidc

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/sqlite"
)

// ttlRecorder is the real SQLite ephemeral store, remembering the TTL of the
// last Create.
type ttlRecorder struct {
	idp.Ephemeral
	ttl time.Duration
}

func (r *ttlRecorder) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	r.ttl = ttl
	return r.Ephemeral.Create(ctx, key, value, ttl)
}

func sqliteEphemeral(t *testing.T) idp.Ephemeral {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := sqlite.New(db)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStorage_ClientAssertionJTIPerClient(t *testing.T) {
	now := time.Now()
	eph := &ttlRecorder{Ephemeral: sqliteEphemeral(t)}
	s := NewStorage(nil, eph, nil, Lifespans{}, func() time.Time { return now })
	ctx := context.Background()
	set := func(client, jti string, exp time.Time) error {
		return s.SetClientAssertionJWT(WithAssertingClient(ctx, client), jti, exp)
	}
	exp := now.Add(5 * time.Minute)

	if err := set("agency-a", "jti-1", exp); err != nil {
		t.Fatalf("first use: %v", err)
	}
	if eph.ttl != 5*time.Minute+AssertionLeeway {
		t.Errorf("jti remembered for %v, want exp + leeway = %v", eph.ttl, 5*time.Minute+AssertionLeeway)
	}
	// Another client may pick the same jti.
	if err := set("agency-b", "jti-1", exp); err != nil {
		t.Errorf("same jti, other client: %v", err)
	}
	if err := set("agency-a", "jti-1", exp); !errors.Is(err, fosite.ErrJTIKnown) {
		t.Errorf("replay: %v, want ErrJTIKnown", err)
	}
	// Client ids may contain ':'; keys stay apart.
	if err := set("a:b", "c", exp); err != nil {
		t.Fatal(err)
	}
	if err := set("a", "b:c", exp); err != nil {
		t.Errorf("client a, jti b:c collides with client a:b, jti c: %v", err)
	}
	// An exp more than MaxAssertionLifetime ahead would pin the entry for
	// that long: refused, and nothing is stored.
	eph.ttl = 0
	if err := set("agency-a", "jti-far", now.Add(MaxAssertionLifetime+time.Second)); !errors.Is(err, fosite.ErrInvalidClient) {
		t.Errorf("far-future exp: %v, want invalid_client", err)
	}
	if eph.ttl != 0 {
		t.Error("a far-future assertion was remembered")
	}
	if err := set("agency-a", "jti-edge", now.Add(MaxAssertionLifetime)); err != nil {
		t.Errorf("exp exactly MaxAssertionLifetime ahead: %v", err)
	}
	// Without the authenticated client there is no key to remember it under.
	if err := s.SetClientAssertionJWT(ctx, "jti-2", exp); err == nil {
		t.Error("a jti without a client was accepted")
	}
}
