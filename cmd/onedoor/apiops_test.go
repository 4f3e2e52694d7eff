package main

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// On PostgreSQL every replica must name the shared blob directory, and the
// API's rate limits must be positive.
func TestConfig_APIStorageAndLimits(t *testing.T) {
	c := DefaultConfig()
	c.PostgresDSN = "postgres://db.example/onedoor"
	if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "--blob-dir") {
		t.Errorf("PostgreSQL without --blob-dir: %v", err)
	}
	c.BlobDir = "/srv/onedoor/blobs"
	c.APICitizenRateLimit = -1
	if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "--api-citizen-rate-limit") {
		t.Errorf("negative rate limit: %v", err)
	}
}

// At scale the per-citizen limit is shared through Redis: over it, 429 with
// Retry-After.
func TestMobileAPI_SharedRateLimit(t *testing.T) {
	e := startMain(t, scaleOption(t), func(c *Config) { c.APICitizenRateLimit = 3 })
	cit := e.citizenAPI(t, e.app)
	for range 3 {
		cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil)
	}
	r := cit.do(http.MethodGet, "/v1/me", nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("over the limit: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
}

// A record whose file is gone is a server fault (logged), not a 404 that
// would tell the citizen the result does not exist.
func TestMobileAPI_MissingBlob(t *testing.T) {
	e := startMain(t)
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	cit := e.citizenAPI(t, e.app)
	svcID := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-BLOB", []byte(birthService)).json(t)["id"].(string)
	a := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svcID+`","agency_code":"T-UBND-HN"}`)).json(t)["id"].(string)
	body, ct := multipartFile(t, "cs.pdf", []byte("%PDF-1.4\n%%EOF\n"), "document_code", "birth_certificate")
	att := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+a+"/attachments", body, "Content-Type", ct).json(t)["id"].(string)
	if err := os.Remove(filepath.Join(e.m.Config.blobDir(), "applications", a, "attachments", att)); err != nil {
		t.Fatal(err)
	}
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+a, []byte(`{"form":{"child_name":"Demo","child_birthdate":"2026-11-01"}}`), "Content-Type", "application/merge-patch+json")
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+a+"/submit", nil)
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	hanoi.faultOK = true
	r := hanoi.do(http.MethodGet, "/agency/v1/applications/"+a+"/attachments/"+att, nil)
	if r.status != http.StatusInternalServerError {
		t.Errorf("missing file: %d %s, want 500", r.status, r.body)
	}
}

// One application holds at most 20 files, one agency at most 10 webhooks.
func TestMobileAPI_Quotas(t *testing.T) {
	e := startMain(t)
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	cit := e.citizenAPI(t, e.app)
	svcID := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-QUOTA", []byte(birthService)).json(t)["id"].(string)
	a := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svcID+`","agency_code":"T-UBND-HN"}`)).json(t)["id"].(string)
	for i := range 21 {
		body, ct := multipartFile(t, "f.pdf", []byte("%PDF-1.4\n%%EOF\n"))
		want := http.StatusCreated
		if i == 20 {
			want = http.StatusUnprocessableEntity
		}
		cit.must(want, http.MethodPost, "/v1/applications/"+a+"/attachments", body, "Content-Type", ct)
	}
	for i := range 11 {
		want := http.StatusCreated
		if i == 10 {
			want = http.StatusUnprocessableEntity
		}
		hanoi.must(want, http.MethodPost, "/agency/v1/webhooks", []byte(`{"url":"https://agency.example/h`+strings.Repeat("x", i)+`"}`))
	}
}

// Path identifiers that are not short visible ASCII name nothing: 404, not
// a database error (PostgreSQL refuses invalid UTF-8).
func TestMobileAPI_OddPathIDs(t *testing.T) {
	e := startMain(t, scaleOption(t))
	cit := e.citizenAPI(t, e.app)
	for _, p := range []string{"/v1/applications/app_%FF%FE", "/v1/services/svc_%00", "/v1/applications/" + strings.Repeat("a", 100)} {
		req, _ := http.NewRequest(http.MethodGet, cit.base+p, nil)
		authorize(t, req, cit.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	// The proof names the path percent-encoded (a JSON string cannot hold
	// the raw bytes); htu comparison decodes both.
	proof := cit.pop.proof(t, http.MethodGet, cit.apiURL+"/v1/applications/app_%FF%FE", cit.token)
	raw := "GET /v1/applications/app_\xff\xfe HTTP/1.1\r\nHost: x\r\nAuthorization: DPoP " + cit.token + "\r\nDPoP: " + proof + "\r\nConnection: close\r\n\r\n"
	conn, err := net.Dial("tcp", e.m.APIAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 404") {
		t.Errorf("raw invalid UTF-8 path: %q", buf[:n])
	}
}
