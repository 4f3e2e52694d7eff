package fiberapi

import (
	"context"
	"testing"

	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/search"
)

// catalogAt is a search.Source whose catalog version the test moves.
type catalogAt struct {
	version  int64
	services []*mobileapi.Service
}

func (c *catalogAt) ListServices(context.Context) ([]*mobileapi.Service, error) {
	out := make([]*mobileapi.Service, len(c.services))
	for i, s := range c.services {
		cp := *s
		out[i] = &cp
	}
	return out, nil
}

func (c *catalogAt) CatalogVersion(context.Context) (int64, error) { return c.version, nil }

// A request still holding the index before a catalog change must not
// replace the newer index's encoded summaries (they would be encoded again
// by every request of the newer index, and the old index pinned).
func TestSummaryCache_OlderIndexLeavesTheNewerInPlace(t *testing.T) {
	ctx := context.Background()
	src := &catalogAt{version: 1, services: []*mobileapi.Service{{ID: "svc_1", Code: "C1", Name: mobileapi.Text{VI: "Đăng ký khai sinh", EN: "Birth registration"}}}}
	cache := search.NewCache(src)
	older, err := cache.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	src.version = 2
	cache.Invalidate()
	newer, err := cache.Index(ctx)
	if err != nil || newer == older || newer.Version() != 2 {
		t.Fatalf("rebuilt index: %v (version %d)", err, newer.Version())
	}
	var sc summaryCache
	held := sc.of(newer)
	if got := sc.of(older); got == held || got.idx != older {
		t.Error("the older index got the newer one's summaries")
	}
	if sc.of(newer) != held {
		t.Error("a request with the older index replaced the newer index's summaries")
	}
	if sc.of(older); sc.cur.Load() != held {
		t.Error("the older index was installed")
	}
}

// Past the budget a summary is encoded for the answer and not kept.
func TestSummaryCache_Budget(t *testing.T) {
	e := &encodedSummaries{}
	s := &mobileapi.Service{ID: "svc_1", Code: "C1", Name: mobileapi.Text{VI: "<b>", EN: "<b>"}}
	e.bytes.Store(summaryBudget)
	b, err := e.summary(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("summary: %q %v", b, err)
	}
	if _, kept := e.m.Load(s); kept || e.bytes.Load() != summaryBudget {
		t.Errorf("kept past the budget (%d bytes counted)", e.bytes.Load())
	}
	e.bytes.Store(0)
	if _, err := e.summary(s); err != nil {
		t.Fatal(err)
	}
	if _, kept := e.m.Load(s); !kept || e.bytes.Load() != int64(len(b)) {
		t.Errorf("not kept within the budget (%d bytes counted)", e.bytes.Load())
	}
}
