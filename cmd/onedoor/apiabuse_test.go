package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// Every bad input to the mobile API is a problem (never a 500), nothing
// stored is changed by it, and no citizen or agency reaches another's data.
func TestMobileAPI_Abuse(t *testing.T) {
	e := startMain(t, allowPrivateWebhooks)
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	hcm := e.agencyAPI(t, "T-UBND-HCM")
	cit := e.citizenAPI(t, e.app)
	other := e.citizenAPI(t, e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh))
	svc := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-ABUSE", []byte(birthService)).json(t)
	svcID := svc["id"].(string)
	app := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svcID+`"}`)).json(t)
	appID := app["id"].(string)
	merge := []string{"Content-Type", "application/merge-patch+json"}

	t.Run("malformed requests", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			method, path string
			body         string
			hdr          []string
			want         int
		}{
			{"unknown member", http.MethodPost, "/v1/applications", `{"service_id":"` + svcID + `","status":"approved"}`, nil, 400},
			{"two JSON values", http.MethodPost, "/v1/applications", `{"service_id":"x"}{}`, nil, 400},
			{"not JSON", http.MethodPost, "/v1/applications", `service_id=x`, nil, 400},
			{"wrong media type", http.MethodPost, "/v1/applications", `{"service_id":"x"}`, []string{"Content-Type", "text/plain"}, 415},
			{"unknown service", http.MethodPost, "/v1/applications", `{"service_id":"svc_nope"}`, nil, 422},
			{"agency not handling", http.MethodPost, "/v1/applications", `{"service_id":"` + svcID + `","agency_code":"T-BTP"}`, nil, 422},
			{"patch a read-only member", http.MethodPatch, "/v1/applications/" + appID, `{"status":"approved","form":{}}`, merge, 422},
			{"patch with JSON", http.MethodPatch, "/v1/applications/" + appID, `{"form":{}}`, nil, 415},
			{"patch form not an object", http.MethodPatch, "/v1/applications/" + appID, `{"form":[1]}`, merge, 422},
			{"patch a wrong type", http.MethodPatch, "/v1/applications/" + appID, `{"form":{"child_birthdate":"not a date"}}`, merge, 422},
			{"patch a value the register vouches for", http.MethodPatch, "/v1/applications/" + appID, `{"form":{"applicant_personal_id":"000000000002"}}`, merge, 422},
			{"duplicate member", http.MethodPost, "/v1/applications", `{"service_id":"svc_decoy","service_id":"` + svcID + `"}`, nil, 400},
			{"NUL in a message", http.MethodPost, "/v1/applications/" + appID + "/withdraw", `{"message":"a\u0000b"}`, nil, 400},
			{"foreign If-Match", http.MethodPatch, "/v1/applications/" + appID, `{"form":{}}`, append([]string{"If-Match", `"abc"`}, merge...), 412},
			{"bad limit", http.MethodGet, "/v1/applications?limit=0", "", nil, 400},
			{"huge limit", http.MethodGet, "/v1/applications?limit=1000", "", nil, 400},
			{"bad cursor", http.MethodGet, "/v1/applications?cursor=%21%21", "", nil, 400},
			{"bad status", http.MethodGet, "/v1/applications?status=done", "", nil, 400},
			{"bad search cursor", http.MethodGet, "/v1/services?cursor=xyz", "", nil, 400},
			{"bad category", http.MethodGet, "/v1/services?category=A%20B", "", nil, 400},
			{"withdraw a draft", http.MethodPost, "/v1/applications/" + appID + "/withdraw", "", nil, 409},
			{"unknown application", http.MethodGet, "/v1/applications/app_nope", "", nil, 404},
			{"unknown inbox message", http.MethodPost, "/v1/inbox/msg_nope/read", "", nil, 404},
			{"bad transition target", http.MethodPost, "/agency/v1/applications/" + appID + "/transitions", `{"to":"draft"}`, nil, 422},
			{"bad lease size", http.MethodPost, "/agency/v1/queue/leases", `{"max":0}`, nil, 422},
			{"unknown lease", http.MethodPost, "/agency/v1/queue/leases/lse_nope/ack", "", nil, 404},
			{"webhook to a public http URL", http.MethodPost, "/agency/v1/webhooks", `{"url":"http://example.com/hook"}`, nil, 422},
			{"webhook with credentials", http.MethodPost, "/agency/v1/webhooks", `{"url":"https://u:p@example.com/hook"}`, nil, 422},
			{"bad service code", http.MethodPut, "/agency/v1/services/bad%20code", `{}`, nil, 400},
			{"service without fields", http.MethodPut, "/agency/v1/services/T-EMPTY", `{}`, nil, 422},
			{"service with a bad schema", http.MethodPut, "/agency/v1/services/T-BAD", strings.Replace(birthService, `"type": "object"`, `"type": "objekt"`, 1), nil, 422},
		} {
			client := cit
			if strings.HasPrefix(tc.path, "/agency/") {
				client = hanoi
				if strings.HasPrefix(tc.path, "/agency/v1/services/") {
					client = ministry
				}
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := client.do(tc.method, tc.path, body, tc.hdr...)
			if r.status != tc.want {
				t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.want)
			}
		}
		// Nothing of that changed the draft.
		if got := cit.must(http.StatusOK, http.MethodGet, "/v1/applications/"+appID, nil).json(t); got["status"] != "draft" || len(got["timeline"].([]any)) != 1 {
			t.Errorf("draft after bad input: %v", got)
		}
	})

	t.Run("validation lists every bad field, in the asked language", func(t *testing.T) {
		r := cit.do(http.MethodPatch, "/v1/applications/"+appID, []byte(`{"form":{"child_birthdate":"x","child_name":""}}`),
			append([]string{"Accept-Language", "en"}, merge...)...)
		p := r.json(t)
		errs, _ := p["errors"].([]any)
		if r.status != 422 || len(errs) != 2 || p["title"] != "Invalid data" {
			t.Errorf("problem: %d %s", r.status, r.body)
		}
		r = cit.do(http.MethodPost, "/v1/applications/"+appID+"/submit", nil)
		if p := r.json(t); r.status != 422 || p["title"] != "Dữ liệu chưa hợp lệ" || len(p["errors"].([]any)) < 3 {
			t.Errorf("submit problem: %d %s", r.status, r.body)
		}
	})

	t.Run("another citizen's application is not found", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body string }{
			{http.MethodGet, "/v1/applications/" + appID, ""},
			{http.MethodPatch, "/v1/applications/" + appID, `{"form":{"child_name":"x"}}`},
			{http.MethodDelete, "/v1/applications/" + appID, ""},
			{http.MethodPost, "/v1/applications/" + appID + "/submit", ""},
			{http.MethodPost, "/v1/applications/" + appID + "/withdraw", ""},
			{http.MethodGet, "/v1/applications/" + appID + "/results/doc_x", ""},
		} {
			var body []byte
			hdr := []string{}
			if tc.body != "" {
				body = []byte(tc.body)
				hdr = merge
			}
			if r := other.do(tc.method, tc.path, body, hdr...); r.status != http.StatusNotFound {
				t.Errorf("%s %s by another citizen: %d %s", tc.method, tc.path, r.status, r.body)
			}
		}
		pdf := []byte("%PDF-1.4\n%%EOF\n")
		b, ct := multipartFile(t, "x.pdf", pdf)
		if r := other.do(http.MethodPost, "/v1/applications/"+appID+"/attachments", b, "Content-Type", ct); r.status != http.StatusNotFound {
			t.Errorf("attach to another's application: %d", r.status)
		}
		if l := other.must(http.StatusOK, http.MethodGet, "/v1/applications", nil).json(t); len(l["items"].([]any)) != 0 {
			t.Errorf("another citizen lists %v", l)
		}
	})

	t.Run("uploads are checked", func(t *testing.T) {
		b, ct := multipartFile(t, "page.html", []byte("<html><script>alert(1)</script></html>"))
		if r := cit.do(http.MethodPost, "/v1/applications/"+appID+"/attachments", b, "Content-Type", ct); r.status != http.StatusUnsupportedMediaType {
			t.Errorf("html upload: %d %s", r.status, r.body)
		}
		b, ct = multipartFile(t, "x.pdf", []byte("%PDF-1.4\n"), "document_code", "not_a_document")
		if r := cit.do(http.MethodPost, "/v1/applications/"+appID+"/attachments", b, "Content-Type", ct); r.status != http.StatusUnprocessableEntity {
			t.Errorf("unknown document code: %d %s", r.status, r.body)
		}
		big := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("x"), 10<<20+100<<10)...)
		b, ct = multipartFile(t, "big.pdf", big)
		if r := cit.do(http.MethodPost, "/v1/applications/"+appID+"/attachments", b, "Content-Type", ct); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized upload: %d %.200s", r.status, r.body)
		}
		if r := cit.do(http.MethodPost, "/v1/applications/"+appID+"/attachments", []byte(`{}`)); r.status != http.StatusUnsupportedMediaType {
			t.Errorf("JSON upload: %d", r.status)
		}
		if got := cit.must(http.StatusOK, http.MethodGet, "/v1/applications/"+appID, nil).json(t); len(got["attachments"].([]any)) != 0 {
			t.Errorf("a refused upload left an attachment: %v", got["attachments"])
		}
	})

	t.Run("Idempotency-Key", func(t *testing.T) {
		body := []byte(`{"service_id":"` + svcID + `"}`)
		first := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", body, "Idempotency-Key", "k-1").json(t)
		if r := cit.do(http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svcID+`","agency_code":"T-UBND-HCM"}`), "Idempotency-Key", "k-1"); r.status != http.StatusUnprocessableEntity {
			t.Errorf("same key, another body: %d %s", r.status, r.body)
		}
		// Another citizen's same key is another key.
		if r := other.must(http.StatusCreated, http.MethodPost, "/v1/applications", body, "Idempotency-Key", "k-1").json(t); r["id"] == first["id"] {
			t.Error("another citizen replayed the first citizen's response")
		}
		// Concurrent retries create once.
		var wg sync.WaitGroup
		ids := make(chan string, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := cit.do(http.MethodPost, "/v1/applications", body, "Idempotency-Key", "k-2")
				if r.status == http.StatusCreated {
					ids <- r.json(t)["id"].(string)
				} else if r.status != http.StatusConflict {
					t.Errorf("concurrent retry: %d %s", r.status, r.body)
				}
			}()
		}
		wg.Wait()
		close(ids)
		seen := map[string]bool{}
		for id := range ids {
			seen[id] = true
		}
		if len(seen) != 1 {
			t.Errorf("concurrent retries created %d applications", len(seen))
		}
	})

	t.Run("tokens", func(t *testing.T) {
		if r := (&apiClient{t: t, base: cit.base, token: hanoi.token, v: cit.v}).do(http.MethodGet, "/v1/me", nil); r.status != http.StatusUnauthorized {
			t.Errorf("an agency token on citizen routes: %d", r.status)
		}
		if r := (&apiClient{t: t, base: cit.base, token: cit.token, v: cit.v, pop: cit.pop, apiURL: cit.apiURL}).do(http.MethodGet, "/agency/v1/applications", nil); r.status != http.StatusUnauthorized {
			t.Errorf("a citizen token on agency routes: %d", r.status)
		}
		// A client without the agency scope.
		id, secret := e.client(ClientSpec{Name: "no agency scope", Scope: "registry.read", Agency: "T-UBND-HCM", GrantTypes: []string{"client_credentials"}})
		status, raw := tokenBasic(t, e.issuer, id, secret, map[string][]string{"grant_type": {"client_credentials"}, "resource": {e.m.APIURL}})
		if status == http.StatusOK {
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			decode(t, raw, &tok)
			if r := (&apiClient{t: t, base: cit.base, token: tok.AccessToken, v: cit.v}).do(http.MethodGet, "/agency/v1/applications", nil); r.status != http.StatusForbidden {
				t.Errorf("a token without scope agency: %d %s", r.status, r.body)
			}
		}
		// A deleted client's token stops working at once.
		victim := e.agencyAPI(t, "T-UBND-HCM")
		victim.must(http.StatusOK, http.MethodGet, "/agency/v1/applications", nil)
		claims := claimsOf(t, victim.token)
		if err := e.m.Store.DeleteClient(context.Background(), claims["client_id"].(string)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool {
			return victim.do(http.MethodGet, "/agency/v1/applications", nil).status == http.StatusUnauthorized
		})

		// Registering the id again (a replaced secret) does not revive the
		// old registration's tokens.
		time.Sleep(1100 * time.Millisecond) // the new registration starts in a later second than the token
		old := claims["client_id"].(string)
		if _, _, err := e.m.CreateClient(context.Background(), ClientSpec{ID: old, Name: "again", Scope: "agency", Agency: "T-UBND-HCM",
			GrantTypes: []string{"client_credentials"}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // the client cache's poll
		if r := victim.do(http.MethodGet, "/agency/v1/applications", nil); r.status != http.StatusUnauthorized {
			t.Errorf("a token of the deleted registration works again after re-registration: %d", r.status)
		}
	})

	t.Run("agencies see only what is routed to them", func(t *testing.T) {
		if r := hcm.do(http.MethodGet, "/agency/v1/applications/"+appID, nil); r.status != http.StatusNotFound {
			t.Errorf("another agency: %d", r.status)
		}
		if r := hcm.do(http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", []byte(`{"to":"approved"}`)); r.status != http.StatusNotFound {
			t.Errorf("another agency's decision: %d", r.status)
		}
	})
}

// waitFor polls cond for up to five seconds (changes that reach every
// replica through a poll, such as the client cache).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 100 {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met within 5 s")
}
