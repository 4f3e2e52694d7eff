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
	req.Header.Set("Cookie", "demo-rp-state=mine")
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not started in this browser") {
		t.Errorf("forged callback: %d %.200s", rec.Code, rec.Body.String())
	}
}
