package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The demo site refuses a callback whose state was not issued to this
// browser (login CSRF), before it looks at anything else.
func TestDemoRP_CallbackNeedsThisBrowsersState(t *testing.T) {
	rp := newDemoRP("http://127.0.0.1:1", "http://localhost:1", "demo", "secret")
	req := httptest.NewRequest(http.MethodGet, "/callback?state=forged&code=x", nil)
	req.Host = "localhost:1"
	req.Header.Set("Cookie", "demo-rp-state=mine")
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not started in this browser") {
		t.Errorf("forged callback: %d %.200s", rec.Code, rec.Body.String())
	}
}

// Opened at 127.0.0.1, the demo site first moves the browser to the host its
// callback uses, so the login's state cookie comes back with it.
func TestDemoRP_MovesTheBrowserToItsRegisteredHost(t *testing.T) {
	rp := newDemoRP("http://localhost:1", "http://localhost:8090", "demo", "secret")
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8090/login?x=1", nil)
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "http://localhost:8090/" {
		t.Fatalf("got %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}
