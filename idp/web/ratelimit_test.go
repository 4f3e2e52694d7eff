package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

func newLimitServer(t *testing.T) (*Server, *sqlstore.Store, func()) {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "onedoor.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := sqlite.New(db)
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &Server{cfg: Config{Now: time.Now}, eph: st}
	return s, st, func() { _ = db.Close() }
}

func TestAllow_CountsPerKey(t *testing.T) {
	s, _, closeDB := newLimitServer(t)
	defer closeDB()
	l := limit{name: "test", max: 1, window: time.Minute}
	if !s.allow(context.Background(), httptest.NewRecorder(), l, "a") {
		t.Fatal("first request refused")
	}
	rec := httptest.NewRecorder()
	if s.allow(context.Background(), rec, l, "a") || rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("second request: status %d, Retry-After %q; want 429 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if !s.allow(context.Background(), httptest.NewRecorder(), l, "b") {
		t.Fatal("another key refused")
	}
}

// A store outage is never a denial: the limiter lets the request through and
// the step answers 503 itself if it needs the store.
func TestAllow_StoreOutageIsNotADenial(t *testing.T) {
	s, _, closeDB := newLimitServer(t)
	closeDB() // the database is gone
	l := limit{name: "test", max: 0, window: time.Minute}
	rec := httptest.NewRecorder()
	if !s.allow(context.Background(), rec, l, "a") || rec.Code != http.StatusOK {
		t.Fatalf("store down: status %d, want the request let through", rec.Code)
	}
}
