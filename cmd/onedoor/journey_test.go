package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/webhook"
)

// apiClient calls the mobile API with one bearer token and checks every
// response against the contract.
type apiClient struct {
	t     testing.TB
	base  string
	token string
	v     validator.Validator
	// faultOK lets a test that provokes a server fault see its 5xx.
	faultOK bool
	// pop signs DPoP proofs for a key-bound token, for the API's public
	// URL (apiURL, --api-url), which base (the listener) need not be.
	pop    *dpopClient
	apiURL string
}

// validate checks resp against the contract. Only benchmarks' clients
// have no validator (contract): a test's must not lose its checks unseen.
func (a *apiClient) validate(req *http.Request, resp *http.Response) (bool, []*verrors.ValidationError) {
	if a.v == nil {
		if _, bench := a.t.(*testing.B); !bench {
			a.t.Fatal("apiClient without the contract validator")
		}
		return true, nil
	}
	return a.v.ValidateHttpResponse(req, resp)
}

type apiResp struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

// do sends a request; body is JSON unless a Content-Type header is given.
// Like the eID app, it answers a use_dpop_nonce challenge (the embedded
// default asks for a nonce right after a restart) by sending the request
// once more with a proof carrying the nonce.
func (a *apiClient) do(method, path string, body []byte, hdr ...string) apiResp {
	a.t.Helper()
	r, nonce := a.send(method, path, body, "", hdr...)
	if nonce != "" {
		r, _ = a.send(method, path, body, nonce, hdr...)
	}
	return r
}

// send is one try of do; nonce is the DPoP-Nonce of a use_dpop_nonce
// answer, "" for any other.
func (a *apiClient) send(method, path string, body []byte, nonce string, hdr ...string) (apiResp, string) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	switch {
	case a.token != "" && a.pop != nil:
		// A key-bound token goes with a DPoP proof for this request.
		req.Header.Set("Authorization", "DPoP "+a.token)
		htu, _, _ := strings.Cut(a.apiURL+path, "?")
		if nonce == "" {
			nonce = a.pop.nonce
		}
		p, err := a.pop.signNonce(method, htu, a.token, nonce)
		if err != nil {
			a.t.Fatal(err)
		}
		req.Header.Set("DPoP", p)
	case a.token != "":
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	if ok, errs := a.validate(req, resp); !ok {
		for _, e := range errs {
			a.t.Errorf("%s %s %d does not match the contract: %s: %s\n%s", method, path, resp.StatusCode, e.Message, e.Reason, raw)
		}
	}
	if resp.StatusCode >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		a.t.Errorf("%s %s: %d with Content-Type %q, want a problem", method, path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp.StatusCode >= 500 && !a.faultOK {
		a.t.Errorf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	r := apiResp{status: resp.StatusCode, header: resp.Header, body: raw}
	if a.pop != nil && resp.StatusCode == http.StatusUnauthorized && strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		return r, resp.Header.Get("DPoP-Nonce")
	}
	return r, ""
}

// must is do that fails the test unless the status is want.
func (a *apiClient) must(want int, method, path string, body []byte, hdr ...string) apiResp {
	a.t.Helper()
	r := a.do(method, path, body, hdr...)
	if r.status != want {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, want)
	}
	return r
}

// multipartFile builds a multipart body with field file (and extra fields).
func multipartFile(t testing.TB, name string, content []byte, fields ...string) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := w.CreateFormFile("file", name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(content); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes(), w.FormDataContentType()
}

// citizenAPI returns a client with the eID app's token for the API.
func (e *testEnv) citizenAPI(t testing.TB, app *eidapp.App) *apiClient {
	t.Helper()
	form := grantForm(deviceAssertion(t, app, e.issuer+"/token", nil))
	form["resource"] = []string{e.m.APIURL}
	ans := postGrant(t, e.issuer, form, appKey(t, app))
	tok, _ := ans.body["access_token"].(string)
	if tok == "" {
		t.Fatalf("the app's grant: %v", ans.body)
	}
	// The token is bound to the device key: the app proves it (DPoP).
	_, key := deviceKey(t, app)
	return &apiClient{t: t, base: "http://" + e.m.APIAddr, token: tok, v: contract(t), pop: &dpopClient{key: key}, apiURL: e.m.APIURL}
}

// agencyAPI registers a client bound to agency and returns a client with its
// client_credentials token for the API.
func (e *testEnv) agencyAPI(t testing.TB, agency string) *apiClient {
	t.Helper()
	id, secret := e.client(ClientSpec{Name: "Back office " + agency, Scope: "agency", Agency: agency, GrantTypes: []string{"client_credentials"}})
	status, raw := tokenBasic(t, e.issuer, id, secret, url.Values{"grant_type": {"client_credentials"}, "scope": {"agency"}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(raw), &tok); status != http.StatusOK || err != nil || tok.AccessToken == "" {
		t.Fatalf("agency token: %d %s", status, raw)
	}
	return &apiClient{t: t, base: "http://" + e.m.APIAddr, token: tok.AccessToken, v: contract(t)}
}

// seedAgencies creates a ministry owning a national service handled by two
// provinces.
func seedAgencies(t testing.TB, m *Main) {
	t.Helper()
	ctx := context.Background()
	for _, a := range []*mobileapi.Agency{
		{Code: "T-BTP", Name: mobileapi.Text{VI: "Bộ Tư pháp (thử)", EN: "Ministry of Justice (test)"}},
		{Code: "T-UBND-HN", Name: mobileapi.Text{VI: "UBND Hà Nội (thử)", EN: "Ha Noi People's Committee (test)"}, ProvinceCode: "HN"},
		{Code: "T-UBND-HCM", Name: mobileapi.Text{VI: "UBND TP. Hồ Chí Minh (thử)", EN: "Ho Chi Minh City People's Committee (test)"}, ProvinceCode: "HCM"},
	} {
		if err := m.APIStore.CreateAgency(ctx, a); err != nil {
			t.Fatalf("agency %s: %v", a.Code, err)
		}
	}
}

// birthService is a service definition as an agency PUTs it.
const birthService = `{
  "name": {"vi": "Đăng ký khai sinh (thử)", "en": "Birth registration (test)"},
  "description": {"vi": "Đăng ký khai sinh cho trẻ em mới sinh.", "en": "Registers the birth of a newborn child."},
  "category": "civil_status",
  "fee": {"amount": 0, "currency": "VND"},
  "processing_time": {"working_days": 1},
  "required_documents": [{"code": "birth_certificate", "name": {"vi": "Giấy chứng sinh", "en": "Medical birth certificate"}, "required": true}],
  "handling_agencies": ["T-UBND-HN", "T-UBND-HCM"],
  "schema": {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["applicant_name", "applicant_personal_id", "child_name", "child_birthdate"],
    "properties": {
      "applicant_name": {"type": "string", "title": "Họ tên người yêu cầu", "x-title": {"vi": "Họ tên người yêu cầu", "en": "Applicant's name"}, "examples": ["Nguyễn Văn A"], "x-prefill": "citizen.full_name"},
      "applicant_personal_id": {"type": "string", "pattern": "^[0-9]{12}$", "title": "Số định danh", "x-title": {"vi": "Số định danh", "en": "Personal id"}, "examples": ["000000000001"], "x-prefill": "citizen.personal_id"},
      "child_name": {"type": "string", "minLength": 1, "title": "Họ tên trẻ", "x-title": {"vi": "Họ tên trẻ", "en": "Child's name"}, "examples": ["Nguyễn Văn B"]},
      "child_birthdate": {"type": "string", "format": "date", "title": "Ngày sinh của trẻ", "x-title": {"vi": "Ngày sinh của trẻ", "en": "Child's date of birth"}, "examples": ["2026-11-01"]}
    }
  }
}`

// The whole journey: a pre-filled draft, an attachment, submission, the
// competent agency's queue and webhook, a request for information, a
// resubmission, an approval with a result document, the inbox, home and
// the download; and nobody else sees any of it.
func runJourney(t *testing.T, e *testEnv) {
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	hcm := e.agencyAPI(t, "T-UBND-HCM")
	cit := e.citizenAPI(t, e.app)
	other := e.citizenAPI(t, e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh))

	// The ministry publishes its service; a province may not take it over.
	svc := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-1.001193", []byte(birthService)).json(t)
	svcID, _ := svc["id"].(string)
	if r := hanoi.do(http.MethodPut, "/agency/v1/services/T-1.001193", []byte(birthService)); r.status != http.StatusForbidden {
		t.Errorf("another agency's PUT: %d %s, want 403", r.status, r.body)
	}

	// Search without diacritics finds it.
	found := cit.must(http.StatusOK, http.MethodGet, "/v1/services?q="+url.QueryEscape("dang ky khai sinh"), nil).json(t)
	if items, _ := found["items"].([]any); len(items) == 0 || items[0].(map[string]any)["id"] != svcID {
		t.Errorf("search: %v", found)
	}

	// A draft, pre-filled from the register, routed to Hà Nội; the same
	// Idempotency-Key creates it once.
	create := []byte(`{"service_id":"` + svcID + `"}`)
	r := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", create, "Idempotency-Key", "journey-1")
	app := r.json(t)
	appID, _ := app["id"].(string)
	if again := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", create, "Idempotency-Key", "journey-1").json(t); again["id"] != appID {
		t.Errorf("replayed create made %v, want %s", again["id"], appID)
	}
	if app["agency_code"] != "T-UBND-HN" || app["status"] != "draft" {
		t.Errorf("draft: %v", app)
	}
	form, _ := app["form"].(map[string]any)
	if form["applicant_personal_id"] != demoCitizens[0].PersonalID {
		t.Errorf("form not pre-filled: %v", form)
	}
	if prov, _ := app["prefilled"].(map[string]any); prov["/applicant_personal_id"] == nil {
		t.Errorf("prefilled: %v", app["prefilled"])
	}
	etag := r.header.Get("ETag")

	// Submitting early lists every problem.
	if r := cit.do(http.MethodPost, "/v1/applications/"+appID+"/submit", nil); r.status != http.StatusUnprocessableEntity ||
		!strings.Contains(string(r.body), "/form/child_name") {
		t.Errorf("early submit: %d %s", r.status, r.body)
	}

	// Edit with If-Match; a stale ETag is refused.
	patch := []byte(`{"form":{"child_name":"Nguyễn Demo Con","child_birthdate":"2026-11-20"}}`)
	r = cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+appID, patch, "Content-Type", "application/merge-patch+json", "If-Match", etag)
	if cit.do(http.MethodPatch, "/v1/applications/"+appID, patch, "Content-Type", "application/merge-patch+json", "If-Match", etag).status != http.StatusPreconditionFailed {
		t.Error("a stale If-Match was not refused with 412")
	}

	// The required document.
	pdf := []byte("%PDF-1.4\n% demo birth certificate, fake\n%%EOF\n")
	body, ct := multipartFile(t, "giay-chung-sinh.pdf", pdf, "document_code", "birth_certificate")
	cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+appID+"/attachments", body, "Content-Type", ct)

	// Nobody else sees it.
	if r := other.do(http.MethodGet, "/v1/applications/"+appID, nil); r.status != http.StatusNotFound {
		t.Errorf("another citizen: %d", r.status)
	}
	if r := hanoi.do(http.MethodGet, "/agency/v1/applications/"+appID, nil); r.status != http.StatusNotFound {
		t.Errorf("the agency sees a draft: %d", r.status)
	}

	hook := newHookReceiver(t, e.issuer)
	wh := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/webhooks", []byte(`{"url":"`+hook.srv.URL+`/hook","description":"journey"}`)).json(t)
	hook.id = wh["id"].(string)

	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+appID+"/submit", nil)
	if r := hcm.do(http.MethodGet, "/agency/v1/applications/"+appID, nil); r.status != http.StatusNotFound {
		t.Errorf("an agency it is not routed to: %d", r.status)
	}
	if r := hcm.must(http.StatusOK, http.MethodPost, "/agency/v1/queue/leases", []byte(`{}`)).json(t); len(r["items"].([]any)) != 0 {
		t.Errorf("another agency's queue holds it: %v", r)
	}

	// The competent agency pulls it from its queue, once.
	leases := hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/queue/leases", []byte(`{"max":5,"lease_seconds":60}`)).json(t)
	items, _ := leases["items"].([]any)
	if len(items) != 1 {
		t.Fatalf("leases: %v", leases)
	}
	lease := items[0].(map[string]any)
	if lease["event"] != "submitted" || lease["application"].(map[string]any)["id"] != appID {
		t.Errorf("lease: %v", lease)
	}
	if again := hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/queue/leases", []byte(`{}`)).json(t); len(again["items"].([]any)) != 0 {
		t.Errorf("leased twice: %v", again)
	}
	hanoi.must(http.StatusNoContent, http.MethodPost, "/agency/v1/queue/leases/"+lease["lease_id"].(string)+"/ack", nil)

	// It downloads the attachment with its digest.
	full := hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/applications/"+appID, nil).json(t)
	att := full["attachments"].([]any)[0].(map[string]any)
	dl := hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/applications/"+appID+"/attachments/"+att["id"].(string), nil)
	if !bytes.Equal(dl.body, pdf) {
		t.Error("the attachment downloaded differs")
	}

	// Information needed; the citizen answers and resubmits.
	hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", []byte(`{"to":"in_review"}`))
	hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+appID+"/transitions",
		[]byte(`{"to":"needs_information","message":"Vui lòng ghi rõ họ tên đầy đủ của trẻ."}`))
	if r := hanoi.do(http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", []byte(`{"to":"in_review"}`)); r.status != http.StatusConflict {
		t.Errorf("an illegal transition: %d %s, want 409", r.status, r.body)
	}
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+appID, []byte(`{"form":{"child_name":"Nguyễn Demo Con Út"}}`),
		"Content-Type", "application/merge-patch+json")
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+appID+"/submit", nil)
	leases = hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/queue/leases", []byte(`{}`)).json(t)
	if items, _ := leases["items"].([]any); len(items) != 1 || items[0].(map[string]any)["event"] != "resubmitted" {
		t.Errorf("resubmission in the queue: %v", leases)
	}

	// Approval with the result document.
	cert := []byte("%PDF-1.4\n% demo birth extract, fake\n%%EOF\n")
	body, ct = multipartFile(t, "trich-luc-khai-sinh.pdf", cert)
	doc := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/applications/"+appID+"/documents", body, "Content-Type", ct).json(t)
	hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+appID+"/transitions",
		[]byte(`{"to":"approved","message":"Đã cấp trích lục khai sinh.","documents":["`+doc["id"].(string)+`"]}`))

	// The citizen sees it in the inbox and on home, and downloads it.
	inbox := cit.must(http.StatusOK, http.MethodGet, "/v1/inbox", nil).json(t)
	if inbox["unread_count"].(float64) < 2 {
		t.Errorf("inbox: %v", inbox)
	}
	home := cit.must(http.StatusOK, http.MethodGet, "/v1/home", nil).json(t)
	recent, _ := home["recent_results"].([]any)
	if len(recent) != 1 {
		t.Fatalf("home: %v", home)
	}
	res := recent[0].(map[string]any)["result"].(map[string]any)
	got := cit.must(http.StatusOK, http.MethodGet, res["href"].(string), nil)
	sum := sha256.Sum256(cert)
	if !bytes.Equal(got.body, cert) || res["sha256"] != hex.EncodeToString(sum[:]) ||
		got.header.Get("Repr-Digest") != "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":" {
		t.Errorf("result download: %q, digest %s", got.body, got.header.Get("Repr-Digest"))
	}
	if r := other.do(http.MethodGet, res["href"].(string), nil); r.status != http.StatusNotFound {
		t.Errorf("another citizen downloads the result: %d", r.status)
	}
	msgID := inbox["items"].([]any)[0].(map[string]any)["id"].(string)
	cit.must(http.StatusOK, http.MethodPost, "/v1/inbox/"+msgID+"/read", nil)
	if r := other.do(http.MethodPost, "/v1/inbox/"+msgID+"/read", nil); r.status != http.StatusNotFound {
		t.Errorf("another citizen reads the message: %d", r.status)
	}
	if r := cit.do(http.MethodPost, "/v1/applications/"+appID+"/withdraw", nil); r.status != http.StatusConflict {
		t.Errorf("withdraw after the decision: %d", r.status)
	}

	// The webhook got both events, signed with the IdP's published key.
	events := hook.wait(t, 2)
	if events[0].Type != "submitted" || events[1].Type != "resubmitted" || events[0].ApplicationID != appID || events[0].Href != "/agency/v1/applications/"+appID {
		t.Errorf("webhook events: %+v", events)
	}
	var deliveries map[string]any
	for range 50 {
		deliveries = hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/webhooks/"+hook.id+"/deliveries", nil).json(t)
		items, _ := deliveries["items"].([]any)
		if len(items) == 2 && items[0].(map[string]any)["state"] == "succeeded" && items[1].(map[string]any)["state"] == "succeeded" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("deliveries: %v", deliveries)
}

// hookReceiver is an agency's webhook endpoint that verifies every
// delivery against the IdP's JWKS.
type hookReceiver struct {
	srv  *httptest.Server
	id   string
	mu   sync.Mutex
	got  []webhook.Event
	errs []error
}

func newHookReceiver(t *testing.T, issuer string) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		resp, err := http.Get(issuer + web.PathJWKS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		var set jose.JSONWebKeySet
		err = json.NewDecoder(resp.Body).Decode(&set)
		resp.Body.Close()
		h.mu.Lock()
		defer h.mu.Unlock()
		if err == nil {
			err = webhook.Verify(body, r.Header.Get(webhook.HeaderSignature), webhook.JWKS(&set), webhook.Expect{WebhookID: h.id, URL: h.srv.URL + "/hook"})
		}
		var ev webhook.Event
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		if err != nil {
			h.errs = append(h.errs, err)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		h.got = append(h.got, ev)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// wait returns the first n events, in arrival order.
func (h *hookReceiver) wait(t *testing.T, n int) []webhook.Event {
	t.Helper()
	for range 100 {
		h.mu.Lock()
		got, errs := slices.Clone(h.got), slices.Clone(h.errs)
		h.mu.Unlock()
		for _, err := range errs {
			t.Errorf("webhook delivery refused: %v", err)
		}
		if len(got) >= n {
			slices.SortStableFunc(got, func(a, b webhook.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("webhook: fewer than %d events arrived", n)
	return nil
}

// allowPrivateWebhooks lets the worker reach the test's loopback receiver.
func allowPrivateWebhooks(c *Config) { c.WebhookAllowPrivate = true }

func TestJourney_SQLite(t *testing.T) { runJourney(t, startMain(t, allowPrivateWebhooks)) }

func TestJourney_PostgresRedis(t *testing.T) {
	runJourney(t, startMain(t, scaleOption(t), allowPrivateWebhooks))
}
