package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/mobileapi/democatalog"
)

// The demo catalog reaches the citizen's app and the ward's back office:
// search finds birth registration, a draft is routed by the registry
// address, the ward's demo client leases it. Seeding again keeps what an
// agency changed.
func TestDemo_MobileAPI(t *testing.T) {
	e := startMain(t)
	ctx := context.Background()
	_, wardSecret, err := e.m.seedDemo(ctx, "http://localhost:9")
	if err != nil {
		t.Fatal(err)
	}
	_, services, err := democatalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	cit := e.citizenAPI(t, e.app)
	all := cit.must(http.StatusOK, http.MethodGet, "/v1/services?limit=100", nil).json(t)
	if n := len(all["items"].([]any)); n != len(services) {
		t.Errorf("catalog lists %d services, want %d", n, len(services))
	}
	found := cit.must(http.StatusOK, http.MethodGet, "/v1/services?q="+url.QueryEscape("dang ky khai sinh"), nil).json(t)
	first := found["items"].([]any)[0].(map[string]any)
	if first["code"] != "1.001193" {
		t.Fatalf("search: first hit %v", first)
	}
	full := cit.must(http.StatusOK, http.MethodGet, "/v1/services/"+first["id"].(string), nil).json(t)
	if len(full["handling_agencies"].([]any)) < 2 {
		t.Errorf("service: %v", full)
	}
	app := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+first["id"].(string)+`"}`)).json(t)
	if app["agency_code"] != demoWardAgency || len(app["prefilled"].(map[string]any)) == 0 {
		t.Errorf("draft: %v", app)
	}
	home := cit.must(http.StatusOK, http.MethodGet, "/v1/home", nil).json(t)
	if len(home["action_needed"].([]any)) != 1 || len(home["suggested_services"].([]any)) == 0 {
		t.Errorf("home: %v", home)
	}

	status, raw := tokenBasic(t, e.issuer, demoWardClient, wardSecret, url.Values{"grant_type": {"client_credentials"}, "scope": {"agency"}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(raw), &tok); status != http.StatusOK || err != nil {
		t.Fatalf("ward token: %d %s", status, raw)
	}
	ward := &apiClient{t: t, base: cit.base, token: tok.AccessToken, v: cit.v}
	ward.must(http.StatusOK, http.MethodGet, "/agency/v1/applications", nil)

	// An agency's change survives a second demo start.
	svc, err := e.m.APIStore.GetServiceByCode(ctx, "1.001193")
	if err != nil {
		t.Fatal(err)
	}
	svc.Description.EN = "Changed by the ministry."
	if _, err := e.m.APIStore.PutService(ctx, svc, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.m.seedDemo(ctx, "http://localhost:9"); err != nil {
		t.Fatal(err)
	}
	if again, _ := e.m.APIStore.GetServiceByCode(ctx, "1.001193"); !strings.HasPrefix(again.Description.EN, "Changed") {
		t.Errorf("a second seeding rewrote the service: %q", again.Description.EN)
	}
}
