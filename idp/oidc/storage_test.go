package oidc

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/onedoor/onedoor/idp"
)

// countingStore counts client reads; the rest of Store is unused here.
type countingStore struct {
	idp.ClientStore
	idp.RefreshTokenStore
	idp.RevocationStore
	reads atomic.Int32
}

func (s *countingStore) GetClient(_ context.Context, id string) (*idp.Client, error) {
	s.reads.Add(1)
	if id != "agency" {
		return nil, idp.ErrNotFound
	}
	return &idp.Client{ID: id, AuthMethod: idp.AuthSecretBasic, IDTokenAlg: "ES256"}, nil
}

func TestStorage_GetClientOncePerRequest(t *testing.T) {
	cs := &countingStore{}
	s := NewStorage(cs, nil, nil, Lifespans{}, nil)
	ctx := WithRequestMemo(context.Background())
	for range 4 {
		if _, err := s.GetClient(ctx, "agency"); err != nil {
			t.Fatal(err)
		}
	}
	if n := cs.reads.Load(); n != 1 {
		t.Errorf("%d store reads within one request, want 1", n)
	}
	// Another request reads again (the cache is off: nothing watches for
	// client changes, see clientcache_test.go).
	if _, err := s.GetClient(WithRequestMemo(context.Background()), "agency"); err != nil || cs.reads.Load() != 2 {
		t.Errorf("a new request did not read the store (reads %d, %v)", cs.reads.Load(), err)
	}
	// Without a memo every call reads, and unknown clients are not memoised.
	_, _ = s.GetClient(context.Background(), "agency")
	_, _ = s.GetClient(ctx, "nobody")
	_, _ = s.GetClient(ctx, "nobody")
	if n := cs.reads.Load(); n != 5 {
		t.Errorf("reads = %d, want 5", n)
	}
}
