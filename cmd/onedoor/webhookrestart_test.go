package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/mobileapi/webhook"
)

// A webhook delivery that failed survives a restart of the server and is
// delivered by the next process, with the same event id.
func TestWebhooks_SurviveRestart(t *testing.T) {
	var mu sync.Mutex
	var failures int
	var up bool
	var got []webhook.Event
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if !up {
			failures++
			w.Header().Set("Retry-After", "1")
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var ev webhook.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("delivery body: %v", err)
		}
		got = append(got, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	dir := t.TempDir()
	opts := []envOption{allowPrivateWebhooks, func(c *Config) { c.DataDir, c.WebhookBackoff = dir, 100*time.Millisecond }}
	e := startMain(t, opts...)
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	cit := e.citizenAPI(t, e.app)
	svcID := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-HOOK", []byte(birthService)).json(t)["id"].(string)
	hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/webhooks", []byte(`{"url":"`+recv.URL+`/hook"}`))
	a := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svcID+`","agency_code":"T-UBND-HN"}`)).json(t)["id"].(string)
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+a, []byte(`{"form":{"child_name":"Demo","child_birthdate":"2026-11-01"}}`), "Content-Type", "application/merge-patch+json")
	body, ct := multipartFile(t, "cs.pdf", []byte("%PDF-1.4\n%%EOF\n"), "document_code", "birth_certificate")
	cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+a+"/attachments", body, "Content-Type", ct)
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+a+"/submit", nil)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return failures > 0 })
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	up = true
	mu.Unlock()
	startMain(t, opts...) // the next process, on the same data
	for range 100 {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].ApplicationID != a || got[0].Type != "submitted" {
		t.Fatalf("after the restart the receiver got %+v (after %d failures)", got, failures)
	}
}
