package idptest

import (
	"context"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

// ClientVersioner is a durable store that reports client changes made by any
// process, for the identity provider's in-memory client cache.
type ClientVersioner interface {
	idp.Store
	ClientsVersion(ctx context.Context) (int64, error)
	ClientWrites() uint64
}

// RunClientVersionTests checks that every committed client write, made
// through either of two stores sharing one database (as two processes do),
// changes the version both see, and that reads change nothing. newPair
// returns two migrated stores over separate connection pools.
func RunClientVersionTests(t *testing.T, newPair func(t *testing.T) (a, b ClientVersioner)) {
	t.Run("ClientsVersion", func(t *testing.T) {
		a, b := newPair(t)
		withTimeout(subtestTimeout, func() { testClientsVersion(t, a, b) })
	})
}

func testClientsVersion(t *testing.T, a, b ClientVersioner) {
	ctx := t.Context()
	version := func(s ClientVersioner) int64 {
		v, err := s.ClientsVersion(ctx)
		mustNil(t, err, "clients version")
		return v
	}
	v0 := version(a)
	if vb := version(b); vb != v0 {
		t.Fatalf("two stores on one database: versions %d and %d", v0, vb)
	}
	_, err := a.GetClient(ctx, idp.EIDAppClientID)
	mustNil(t, err, "get client")
	_, err = a.ListClients(ctx)
	mustNil(t, err, "list clients")
	if v := version(a); v != v0 {
		t.Errorf("reads changed the clients version: %d -> %d", v0, v)
	}

	w0 := a.ClientWrites()
	c := &idp.Client{ID: "versioned", Name: "Versioned", GrantTypes: []string{"client_credentials"},
		AuthMethod: idp.AuthSecretBasic, SecretHash: []byte("h1"), IDTokenAlg: "ES256"}
	mustNil(t, b.CreateClient(ctx, c), "create client in the other store")
	v1 := version(a)
	if v1 == v0 {
		t.Error("a client created through another store did not change the version")
	}
	if a.ClientWrites() != w0 {
		t.Error("a write through another store counted as this store's write")
	}
	mustNil(t, b.DeleteClient(ctx, c.ID), "delete client in the other store")
	v2 := version(a)
	if v2 == v1 || v2 == v0 {
		t.Errorf("delete through another store: version %d after %d, %d", v2, v0, v1)
	}

	mustNil(t, a.CreateClient(ctx, c), "create client")
	if a.ClientWrites() == w0 {
		t.Error("a client write did not count in ClientWrites")
	}
	if v := version(b); v == v2 {
		t.Error("a client created through this store did not change the version the other store sees")
	}
}
