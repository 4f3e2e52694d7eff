package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// The routes the journey does not walk: deleting a draft, withdrawing,
// the agency's filtered list, webhooks listed and deleted, pagination and
// conditional reads, all checked against the contract.
func TestMobileAPI_OtherRoutes(t *testing.T) {
	e := startMain(t, allowPrivateWebhooks)
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	cit := e.citizenAPI(t, e.app)
	svcID := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-ROUTES", []byte(birthService)).json(t)["id"].(string)
	// The same definition again is no new version.
	if v := ministry.must(http.StatusOK, http.MethodPut, "/agency/v1/services/T-ROUTES", []byte(birthService)).json(t); v["version"] != float64(1) {
		t.Errorf("unchanged PUT made version %v", v["version"])
	}

	create := func() string {
		return cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svcID+`","agency_code":"T-UBND-HN"}`)).json(t)["id"].(string)
	}
	// Delete a draft, with and without a stale If-Match.
	d := create()
	if r := cit.do(http.MethodDelete, "/v1/applications/"+d, nil, "If-Match", `"v9"`); r.status != http.StatusPreconditionFailed {
		t.Errorf("stale delete: %d", r.status)
	}
	cit.must(http.StatusNoContent, http.MethodDelete, "/v1/applications/"+d, nil, "If-Match", `"v1"`)
	cit.must(http.StatusNotFound, http.MethodGet, "/v1/applications/"+d, nil)

	// Pages of applications, and a 304 for an unchanged one.
	var ids []string
	for range 5 {
		ids = append(ids, create())
	}
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		l := cit.must(http.StatusOK, http.MethodGet, "/v1/applications?limit=2"+cursor, nil).json(t)
		for _, it := range l["items"].([]any) {
			seen[it.(map[string]any)["id"].(string)] = true
		}
		next, _ := l["next_cursor"].(string)
		if next == "" || page > 5 {
			break
		}
		cursor = "&cursor=" + next
	}
	if len(seen) != 5 {
		t.Errorf("pages held %d applications, want 5", len(seen))
	}
	r := cit.must(http.StatusOK, http.MethodGet, "/v1/applications/"+ids[0], nil)
	cit.must(http.StatusNotModified, http.MethodGet, "/v1/applications/"+ids[0], nil, "If-None-Match", r.header.Get("ETag"))

	// Home keeps its ETag beside its cached body: a 304 while it holds, a
	// new ETag once a write changes it.
	h := cit.must(http.StatusOK, http.MethodGet, "/v1/home", nil)
	et := h.header.Get("ETag")
	if et == "" {
		t.Fatal("home has no ETag")
	}
	cit.must(http.StatusNotModified, http.MethodGet, "/v1/home", nil, "If-None-Match", et)
	cit.must(http.StatusNotModified, http.MethodGet, "/v1/home", nil, "If-None-Match", `"other", W/`+et)
	create()
	if h2 := cit.must(http.StatusOK, http.MethodGet, "/v1/home", nil, "If-None-Match", et); h2.header.Get("ETag") == et || len(h2.body) == 0 {
		t.Errorf("home after a new draft: ETag %q (was %q), %d bytes", h2.header.Get("ETag"), et, len(h2.body))
	}

	// Withdraw a submitted application; the agency sees it in its filtered
	// list and queue.
	a := ids[1]
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+a, []byte(`{"form":{"child_name":"Demo","child_birthdate":"2026-11-01"}}`), "Content-Type", "application/merge-patch+json")
	pdf := []byte("%PDF-1.4\n%%EOF\n")
	body, ct := multipartFile(t, "cs.pdf", pdf, "document_code", "birth_certificate")
	cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+a+"/attachments", body, "Content-Type", ct)
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+a+"/submit", nil)
	w := cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+a+"/withdraw", []byte(`{"message":"Nộp nhầm."}`)).json(t)
	if w["status"] != "withdrawn" {
		t.Errorf("withdraw: %v", w)
	}
	l := hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/applications?status=withdrawn", nil).json(t)
	if items := l["items"].([]any); len(items) != 1 || items[0].(map[string]any)["id"] != a {
		t.Errorf("agency list: %v", l)
	}
	leases := hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/queue/leases", []byte(`{"max":10}`)).json(t)["items"].([]any)
	var events []string
	for _, l := range leases {
		events = append(events, l.(map[string]any)["event"].(string))
	}
	if fmt.Sprint(events) != "[submitted withdrawn]" {
		t.Errorf("queue events %v", events)
	}
	hanoi.must(http.StatusBadRequest, http.MethodGet, "/agency/v1/applications?status=draft&limit=1", nil) // agencies never see drafts

	// Webhooks: listed, their deliveries listed, deleted.
	wh := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/webhooks", []byte(`{"url":"https://agency.example/hook","events":["submitted"]}`)).json(t)
	list := hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/webhooks", nil).json(t)
	if len(list["items"].([]any)) != 1 {
		t.Errorf("webhooks: %v", list)
	}
	hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/webhooks/"+wh["id"].(string)+"/deliveries?state=failed", nil)
	hanoi.must(http.StatusNoContent, http.MethodDelete, "/agency/v1/webhooks/"+wh["id"].(string), nil)
	hanoi.must(http.StatusNotFound, http.MethodDelete, "/agency/v1/webhooks/"+wh["id"].(string), nil)
	ministry.must(http.StatusNotFound, http.MethodGet, "/agency/v1/webhooks/"+wh["id"].(string)+"/deliveries", nil)

	// The docs page needs no token.
	anon := &apiClient{t: t, base: cit.base, v: cit.v}
	anon.must(http.StatusOK, http.MethodGet, "/v1/docs", nil)
	anon.must(http.StatusUnauthorized, http.MethodGet, "/v1/home", nil)
}

// A search answer is built from summaries encoded once per index: it must
// equal the service as GET /v1/services/{id} shows it, change when the
// service does (no summary of an older index served), page with a cursor,
// and answer If-None-Match with 304.
func TestMobileAPI_SearchAnswer(t *testing.T) {
	e := startMain(t)
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	cit := e.citizenAPI(t, e.app)
	for _, code := range []string{"T-S1", "T-S2", "T-S3"} {
		ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/"+code, []byte(birthService))
	}
	search := "/v1/services?q=" + url.QueryEscape("dang ky khai sinh") + "&limit=2"
	r := cit.must(http.StatusOK, http.MethodGet, search, nil)
	var page struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &page); err != nil || len(page.Items) != 2 || page.NextCursor == nil {
		t.Fatalf("first page: %v %s", err, r.body)
	}
	full := cit.must(http.StatusOK, http.MethodGet, "/v1/services/"+page.Items[0]["id"].(string), nil).json(t)
	for k, v := range page.Items[0] {
		if !reflect.DeepEqual(full[k], v) {
			t.Errorf("summary %s = %v, the service has %v", k, v, full[k])
		}
	}
	last := cit.must(http.StatusOK, http.MethodGet, search+"&cursor="+*page.NextCursor, nil).json(t)
	if items := last["items"].([]any); len(items) != 1 || last["next_cursor"] != nil {
		t.Errorf("last page: %v", last)
	}

	et := r.header.Get("ETag")
	if et == "" {
		t.Fatal("search has no ETag")
	}
	cit.must(http.StatusNotModified, http.MethodGet, search, nil, "If-None-Match", et)
	cit.must(http.StatusNotModified, http.MethodGet, search, nil, "If-None-Match", `"other", W/`+et)
	cit.must(http.StatusNotModified, http.MethodGet, search, nil, "If-None-Match", "*")
	if r := cit.must(http.StatusOK, http.MethodGet, search, nil, "If-None-Match", `"other"`); len(r.body) == 0 || r.header.Get("ETag") != et {
		t.Errorf("another ETag: %s", r.header.Get("ETag"))
	}
	// The agency renames the first hit: the next search shows the new name
	// (this replica's own write is searchable at once) under a new ETag.
	code := page.Items[0]["code"].(string)
	renamed := strings.Replace(birthService, `"en": "Birth registration (test)"`, `"en": "Birth registration, renamed (test)"`, 1)
	ministry.must(http.StatusOK, http.MethodPut, "/agency/v1/services/"+code, []byte(renamed))
	r2 := cit.must(http.StatusOK, http.MethodGet, search, nil, "If-None-Match", et)
	if r2.header.Get("ETag") == et || !strings.Contains(string(r2.body), "renamed") {
		t.Errorf("after the rename: ETag %q (was %q), body %s", r2.header.Get("ETag"), et, r2.body)
	}
}
