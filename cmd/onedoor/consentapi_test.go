package main

// The citizen's and the agencies' side of consent on the mobile API (issue
// 7): consents and their receipts, withdrawal, the access log, and the data
// broker, with the abuse cases first: a curious agency, one agency using
// another's consent, one citizen reading another's, a replay after a
// withdrawal, a client without a key, and a flood.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
)

// brokerAPI registers a private_key_jwt client bound to agency and returns
// an API client with its client_credentials token, and the client's id.
func (e *testEnv) brokerAPI(t testing.TB, agency string) (*apiClient, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	f := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(f, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	id, _ := e.client(ClientSpec{Name: "Broker " + agency, Scope: "agency", Agency: agency, GrantTypes: []string{"client_credentials"},
		AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: f})
	return &apiClient{t: t, base: "http://" + e.m.APIAddr, token: e.assertionToken(t, id, key), v: contract(t)}, id
}

// assertionToken gets a client_credentials token with scope agency,
// authenticating with a private_key_jwt assertion.
func (e *testEnv) assertionToken(t testing.TB, clientID string, key *ecdsa.PrivateKey) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{Issuer: clientID, Subject: clientID,
		Audience: jwt.ClaimStrings{e.issuer + "/token"}, ID: randomString(16), IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(e.issuer+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"agency"}, "client_id": {clientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {signed}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &out); resp.StatusCode != http.StatusOK || err != nil || out.AccessToken == "" {
		t.Fatalf("broker token: %d %s", resp.StatusCode, raw)
	}
	return out.AccessToken
}

// citizenID is the subject of a demo citizen.
func (e *testEnv) citizenID(t testing.TB, pid string) string {
	t.Helper()
	c, err := e.m.Store.GetCitizenByPersonalID(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// grant records a consent as the IdP will once logins create them.
func (e *testEnv) grant(t testing.TB, citizen, client, agency, purpose string, items ...string) *consent.Record {
	t.Helper()
	r, _, err := e.m.Consent.Grant(context.Background(), &consent.Record{CitizenID: citizen, ClientID: client, Agency: agency,
		Recipient: "Broker " + agency, Purpose: consent.Purpose{Code: purpose, Text: "Kiểm tra (thử)"}, Items: items,
		Notice: "test-1", Method: consent.MethodEIDApp, Evidence: "test evidence"})
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	return r
}

func dataRequest(pidOrSub, purpose string, items ...string) []byte {
	who := `"personal_id":"` + pidOrSub + `"`
	if !idp.ValidPersonalID(pidOrSub) {
		who = `"subject":"` + pidOrSub + `"`
	}
	raw, _ := json.Marshal(items)
	return []byte(`{` + who + `,"purpose":"` + purpose + `","items":` + string(raw) + `}`)
}

// refusedItems returns the items a 403 refusal names, and fails unless
// the answer is one.
func refusedItems(t *testing.T, r apiResp) map[string]string {
	t.Helper()
	if r.status != http.StatusForbidden {
		t.Fatalf("data request: %d %s, want a 403 refusal", r.status, r.body)
	}
	var p struct {
		Missing map[string]string `json:"missing"`
		Errors  []struct {
			Pointer, Message string
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || len(p.Missing) == 0 || len(p.Errors) != len(p.Missing) {
		t.Fatalf("refusal %s: want each item without a basis in missing and errors", r.body)
	}
	return p.Missing
}

func logEntries(t *testing.T, c *apiClient, lang string) []map[string]any {
	t.Helper()
	var out []map[string]any
	path := "/v1/access-log?limit=2"
	for range 100 {
		page := c.must(http.StatusOK, http.MethodGet, path, nil, "Accept-Language", lang).json(t)
		for _, it := range page["items"].([]any) {
			out = append(out, it.(map[string]any))
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return out
		}
		path = "/v1/access-log?limit=2&cursor=" + url.QueryEscape(next)
	}
	t.Fatal("the access log does not end")
	return nil
}

func runConsentAPI(t *testing.T, e *testEnv) {
	seedAgencies(t, e.m)
	ctx := context.Background()
	cit := e.citizenAPI(t, e.app)
	other := e.citizenAPI(t, e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh))
	me, them := e.citizenID(t, demoCitizens[0].PersonalID), e.citizenID(t, demoCitizens[1].PersonalID)
	hanoi, hanoiID := e.brokerAPI(t, "T-UBND-HN")
	hcm, hcmID := e.brokerAPI(t, "T-UBND-HCM")
	pid := demoCitizens[0].PersonalID

	rec := e.grant(t, me, hanoiID, "T-UBND-HN", "benefit-check", "name", "birthdate")
	e.grant(t, them, hcmID, "T-UBND-HCM", "benefit-check", "name")

	// Allowed under the client's own consent, by personal id and by
	// subject, with the register's provenance per item.
	got := hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "benefit-check", "name", "birthdate")).json(t)
	items, _ := got["items"].(map[string]any)
	name, _ := items["name"].(map[string]any)
	if got["basis"] != "consent" || got["consent_id"] != rec.ID || got["subject"] != me || name["value"] != demoCitizens[0].Citizen().Name() ||
		name["source"] != idp.RegisterName || name["updated_at"] == nil || items["birthdate"] == nil || len(items) != 2 {
		t.Errorf("released under consent: %v", got)
	}
	hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/data-requests", dataRequest(me, "benefit-check", "birthdate"))

	// A curious agency: an item the consent does not cover is refused by
	// name, and so is another purpose.
	if m := refusedItems(t, hanoi.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "benefit-check", "name", "address"))); m["address"] == "" {
		t.Errorf("refusal %v does not name address", m)
	}
	if m := refusedItems(t, hanoi.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "tax-audit", "name"))); m["name"] == "" {
		t.Errorf("another purpose: %v", m)
	}
	// Agency B cannot use agency A's consent, nor A B's.
	refusedItems(t, hcm.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "benefit-check", "name")))
	refusedItems(t, hanoi.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(demoCitizens[1].PersonalID, "benefit-check", "name")))
	// An unknown personal id gets the very refusal a known one does.
	known := hanoi.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "tax-audit", "name"))
	unknown := hanoi.do(http.MethodPost, "/agency/v1/data-requests", dataRequest("999999999999", "tax-audit", "name"))
	if known.status != unknown.status || !sameProblem(known.body, unknown.body) {
		t.Errorf("an unknown citizen is told apart: %s vs %s", known.body, unknown.body)
	}

	// Allowed under a legal basis an operator registered, for that agency
	// and purpose only; an unknown citizen is then a plain 404.
	if err := e.m.ConsentStore.PutLegalBasis(ctx, &consent.LegalBasis{ID: consent.NewID("lb"), Agency: "T-UBND-HCM", Purpose: "tax-audit",
		Items: []string{"name", "address"}, Basis: consent.BasisLegalObligation, Law: "Luật Quản lý thuế 2019, Điều 30 (thử)"}, consent.BasisChange{Operator: "op", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	lb := hcm.must(http.StatusOK, http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "tax-audit", "name", "address")).json(t)
	if lb["basis"] != "legal_obligation" || lb["law"] != "Luật Quản lý thuế 2019, Điều 30 (thử)" || lb["consent_id"] != nil {
		t.Errorf("released under a legal basis: %v", lb)
	}
	refusedItems(t, hcm.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "tax-audit", "phone_number")))
	refusedItems(t, hanoi.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "tax-audit", "name")))
	// A basis revoked takes effect at the next request: refused, naming
	// the item. (Granted again for what follows.)
	lbs, err := e.m.ConsentStore.LegalBases(ctx, "T-UBND-HCM", "tax-audit")
	if err != nil || len(lbs) != 1 {
		t.Fatalf("bases: %v %v", lbs, err)
	}
	if err := e.m.ConsentStore.RevokeLegalBasis(ctx, lbs[0].ID, consent.BasisChange{Operator: "op", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if m := refusedItems(t, hcm.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(them, "tax-audit", "address"))); !strings.Contains(m["address"], "no legal basis") {
		t.Errorf("after the basis was revoked: %v", m)
	}
	if err := e.m.ConsentStore.PutLegalBasis(ctx, &consent.LegalBasis{Agency: "T-UBND-HCM", Purpose: "tax-audit", Items: []string{"name", "address"},
		Basis: consent.BasisLegalObligation, Law: "Luật Quản lý thuế 2019, Điều 30 (thử)"}, consent.BasisChange{Operator: "op", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	hcm.must(http.StatusNotFound, http.MethodPost, "/agency/v1/data-requests", dataRequest("999999999999", "tax-audit", "name"))

	// Bad requests are problems naming the member.
	for _, body := range []string{`{"purpose":"x","items":["name"]}`, `{"personal_id":"1","purpose":"x","items":["name"]}`,
		`{"personal_id":"` + pid + `","subject":"` + me + `","purpose":"x","items":["name"]}`,
		`{"personal_id":"` + pid + `","purpose":"x y","items":["name"]}`, `{"personal_id":"` + pid + `","purpose":"x","items":[]}`,
		`{"personal_id":"` + pid + `","purpose":"x","items":["salary"]}`, `{"personal_id":"` + pid + `","purpose":"x","items":["name","name"]}`} {
		hanoi.must(http.StatusUnprocessableEntity, http.MethodPost, "/agency/v1/data-requests", []byte(body))
	}
	// A client that authenticates with a shared secret is told why not.
	secretClient := e.agencyAPI(t, "T-UBND-HN")
	if r := secretClient.must(http.StatusForbidden, http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "benefit-check", "name")); !strings.Contains(string(r.body), "private_key_jwt") {
		t.Errorf("a client_secret client: %s", r.body)
	}
	// A citizen token is no agency token.
	cit.must(http.StatusUnauthorized, http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "benefit-check", "name"))

	// The citizen sees their consents; another citizen sees none of them.
	list := cit.must(http.StatusOK, http.MethodGet, "/v1/consents", nil).json(t)
	if ls := list["items"].([]any); len(ls) != 1 || ls[0].(map[string]any)["id"] != rec.ID || ls[0].(map[string]any)["active"] != true {
		t.Errorf("my consents: %v", list)
	}
	cit.must(http.StatusOK, http.MethodGet, "/v1/consents/"+rec.ID, nil)
	other.must(http.StatusNotFound, http.MethodGet, "/v1/consents/"+rec.ID, nil)
	other.must(http.StatusNotFound, http.MethodGet, "/v1/consents/"+rec.ID+"/receipts", nil)
	other.must(http.StatusNotFound, http.MethodDelete, "/v1/consents/"+rec.ID, nil)
	if ls := other.must(http.StatusOK, http.MethodGet, "/v1/consents", nil).json(t)["items"].([]any); len(ls) != 1 || ls[0].(map[string]any)["id"] == rec.ID {
		t.Errorf("the other citizen's consents: %v", ls)
	}
	cit.must(http.StatusBadRequest, http.MethodGet, "/v1/consents?active=maybe", nil)

	// The grant's receipt, as JSON and as the bare JWS, verifies against the
	// IdP's published keys.
	rcs := cit.must(http.StatusOK, http.MethodGet, "/v1/consents/"+rec.ID+"/receipts", nil).json(t)["items"].([]any)
	if len(rcs) != 1 || rcs[0].(map[string]any)["kind"] != "granted" {
		t.Fatalf("receipts: %v", rcs)
	}
	href := rcs[0].(map[string]any)["href"].(string)
	bare := cit.must(http.StatusOK, http.MethodGet, href, nil, "Accept", "application/jose")
	if bare.header.Get("Content-Type") != "application/jose" || !strings.HasPrefix(bare.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("receipt download: %v", bare.header)
	}
	claims := verifyReceipt(t, e.issuer, string(bare.body))
	if claims["sub"] != me || claims["event"] != "granted" || claims["consent"].(map[string]any)["id"] != rec.ID {
		t.Errorf("receipt claims: %v", claims)
	}
	if j := cit.must(http.StatusOK, http.MethodGet, href, nil).json(t); j["jws"] != string(bare.body) {
		t.Errorf("JSON receipt: %v", j)
	}
	other.must(http.StatusNotFound, http.MethodGet, href, nil)

	// Withdrawal: at once, and a second one is a clear conflict.
	wd := cit.must(http.StatusOK, http.MethodDelete, "/v1/consents/"+rec.ID, nil).json(t)
	if wd["consent"].(map[string]any)["active"] != false || wd["receipt"].(map[string]any)["kind"] != "withdrawn" {
		t.Errorf("withdrawal: %v", wd)
	}
	withdrawnAt := time.Now()
	if r := cit.must(http.StatusConflict, http.MethodDelete, "/v1/consents/"+rec.ID, nil); !strings.Contains(string(r.body), "already withdrawn") {
		t.Errorf("second withdrawal: %s", r.body)
	}
	// The same request, replayed, is refused within a second.
	refusedItems(t, hanoi.do(http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "benefit-check", "name", "birthdate")))
	if d := time.Since(withdrawnAt); d > time.Second {
		t.Errorf("the refusal came %v after the withdrawal", d)
	}
	if ls := cit.must(http.StatusOK, http.MethodGet, "/v1/consents?active=true", nil).json(t)["items"].([]any); len(ls) != 0 {
		t.Errorf("active consents after the withdrawal: %v", ls)
	}
	verifyReceipt(t, e.issuer, wd["receipt"].(map[string]any)["jws"].(string))

	// A draft pre-filled through the broker is in the log too.
	ministry := e.agencyAPI(t, "T-BTP")
	svc := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-1.001193", []byte(birthService)).json(t)
	app := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", []byte(`{"service_id":"`+svc["id"].(string)+`"}`)).json(t)
	if app["form"].(map[string]any)["applicant_personal_id"] != pid {
		t.Errorf("the draft is not pre-filled: %v", app["form"])
	}

	// The agency reading the submitted application reads the applicant from
	// the register: one entry per application shown, list rows included.
	appID := app["id"].(string)
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+appID, []byte(`{"form":{"child_name":"Nguyễn Demo Con","child_birthdate":"2026-11-20"}}`),
		"Content-Type", "application/merge-patch+json")
	body, ct := multipartFile(t, "giay-chung-sinh.pdf", []byte("%PDF-1.4\n%%EOF\n"), "document_code", "birth_certificate")
	cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+appID+"/attachments", body, "Content-Type", ct)
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+appID+"/submit", nil)
	hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/applications/"+appID, nil)
	hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/applications", nil)
	e.m.Consent.Drain() // refusals are logged after their answers
	seen := logEntries(t, cit, "en")
	for i, ent := range seen[:2] {
		if ent["channel"] != "application" || ent["basis"] != "citizen_request" || ent["purpose"] != "T-1.001193" ||
			ent["actor"].(map[string]any)["client_id"] != hanoiID || len(ent["items"].([]any)) != 4 {
			t.Errorf("agency read %d: %v", i, ent)
		}
	}
	if seen[2]["channel"] != "prefill" {
		t.Errorf("want the pre-fill before the agency's reads: %v", seen[2])
	}

	// The log, newest first, in both languages: every release and refusal
	// about me, none about the other citizen.
	en := logEntries(t, cit, "en")
	vi := logEntries(t, cit, "vi")
	if len(en) != len(vi) || len(en) < 10 {
		t.Fatalf("log: %d entries in English, %d in Vietnamese", len(en), len(vi))
	}
	pre := en[2]
	if pre["channel"] != "prefill" || pre["basis"] != "citizen_request" || pre["purpose"] != "T-1.001193" ||
		!strings.Contains(pre["description"].(string), "pre-fill") || pre["actor"].(map[string]any)["agency"] != "T-UBND-HN" {
		t.Errorf("pre-fill entry: %v", pre)
	}
	if got := pre["items"].([]any); len(got) != 2 || got[0] != "name" || got[1] != "personal_id" {
		t.Errorf("pre-fill read %v, want exactly the form's x-prefill items", got)
	}
	var released, refused int
	for i, ent := range en {
		if ent["outcome"] == "released" && ent["channel"] == "broker" {
			released++
		}
		if ent["outcome"] == "refused" {
			refused++
			if !strings.Contains(ent["description"].(string), "refused") || !strings.Contains(vi[i]["description"].(string), "từ chối") {
				t.Errorf("refusal described as %q / %q", ent["description"], vi[i]["description"])
			}
		}
		// Refusals are appended after the answer, so an entry may carry a
		// time a few milliseconds before the one above it.
		if i > 0 && parseTime(t, ent["at"]).After(parseTime(t, en[i-1]["at"]).Add(time.Second)) {
			t.Errorf("log not newest first at %d", i)
		}
	}
	// One refusal per agency, client and purpose per window: repeated ones
	// do not flood the log.
	if released != 3 || refused < 4 {
		t.Errorf("log: %d released and %d refused broker entries", released, refused)
	}
	if d := en[len(en)-1]["description"].(string); !strings.Contains(d, "Ha Noi People's Committee (test)") || !strings.Contains(d, "full name") {
		t.Errorf("first entry described as %q", d)
	}
	// The agency renames its client: what the log said stays as it was.
	if err := e.m.Store.UpdateClient(ctx, hanoiID, func(c *idp.Client) error { c.Name = "Renamed broker"; return nil }); err != nil {
		t.Fatal(err)
	}
	for i, ent := range logEntries(t, cit, "en") {
		if ent["description"] != en[i]["description"] || strings.Contains(ent["description"].(string), "Renamed broker") {
			t.Errorf("entry %d after the client was renamed: %q, was %q", i, ent["description"], en[i]["description"])
		}
	}
	for _, ent := range logEntries(t, other, "en") {
		if ent["actor"].(map[string]any)["agency"] == "T-UBND-HN" && ent["outcome"] == "released" {
			t.Errorf("the other citizen's log holds my release: %v", ent)
		}
	}

	// "This wasn't me", once; not on another citizen's entry.
	id := en[1]["id"].(string)
	other.must(http.StatusNotFound, http.MethodPost, "/v1/access-log/"+id+"/flag", []byte(`{"note":"x"}`))
	fl := cit.must(http.StatusOK, http.MethodPost, "/v1/access-log/"+id+"/flag", []byte(`{"note":"Tôi không yêu cầu việc này."}`)).json(t)
	if fl["flagged_at"] == nil || fl["flag_note"] != "Tôi không yêu cầu việc này." {
		t.Errorf("flag: %v", fl)
	}
	cit.must(http.StatusConflict, http.MethodPost, "/v1/access-log/"+id+"/flag", nil)
	cit.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/access-log/"+en[2]["id"].(string)+"/flag", []byte(`{"note":"`+strings.Repeat("x", 1001)+`"}`))

	// The export is the whole chain, as a download.
	exp := cit.must(http.StatusOK, http.MethodGet, "/v1/access-log/export", nil)
	if !strings.HasPrefix(exp.header.Get("Content-Disposition"), "attachment") {
		t.Errorf("export headers: %v", exp.header)
	}
	entries := exp.json(t)["entries"].([]any)
	if len(entries) != len(en) || entries[len(entries)-1].(map[string]any)["seq"] != float64(1) || entries[len(entries)-1].(map[string]any)["prev"] != nil {
		t.Errorf("export: %d entries, want %d from seq 1", len(entries), len(en))
	}

	// The inclusion proof of the citizen's head in the latest checkpoint:
	// the app checks it against the signed root and its own export. The
	// other citizen has a chain of their own in it too.
	hcm.must(http.StatusOK, http.MethodPost, "/agency/v1/data-requests", dataRequest(them, "benefit-check", "name"))
	if _, err := e.m.Checkpointer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	pr := cit.must(http.StatusOK, http.MethodGet, "/v1/access-log/proof", nil).json(t)
	checkInclusion(t, e.m, pr, entries[0].(map[string]any))
	// The IdP's public checkpoint goes through its middleware.
	if resp, err := http.Get(e.issuer + "/audit/v1/checkpoint"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("/audit/v1/checkpoint: %d %v", resp.StatusCode, resp.Header)
		}
	}
	// Another citizen's token proves only their own chain: never this
	// citizen's leaf, by default or by naming its seq.
	if r := other.must(http.StatusOK, http.MethodGet, "/v1/access-log/proof", nil); r.json(t)["hash"] == pr["hash"] || r.json(t)["leaf_index"] == pr["leaf_index"] {
		t.Errorf("another citizen's proof answered this citizen's leaf: %s", r.body)
	}
	other.must(http.StatusNotFound, http.MethodGet, "/v1/access-log/proof?seq="+strconv.FormatInt(int64(pr["seq"].(float64)), 10), nil)
	cit.must(http.StatusBadRequest, http.MethodGet, "/v1/access-log/proof?seq=0", nil)
	cit.must(http.StatusBadRequest, http.MethodGet, "/v1/access-log/proof?seq=x", nil)
	cit.must(http.StatusNotFound, http.MethodGet, "/v1/access-log/proof?seq="+strconv.Itoa(len(entries)+1), nil)

	// The app remembers the head it verified. After more releases, the
	// documented checks pass against the grown tree.
	kept := appHead{seq: int64(pr["seq"].(float64)), hash: pr["hash"].(string)}
	hcm.must(http.StatusOK, http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "tax-audit", "name"))
	if _, err := e.m.Checkpointer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := appCheck(t, e.m, cit, kept); err != nil {
		t.Fatalf("the honest log fails the app's checks: %v", err)
	}

	// The operator rewrites the citizen's chain: deletes its entries and
	// head and appends a different, longer chain. The tree only grows, so
	// the new head's inclusion proof verifies; the remembered head shows
	// the rewrite.
	for _, q := range []string{`DELETE FROM consent_log WHERE citizen_id = $1`, `DELETE FROM consent_chain_heads WHERE citizen_id = $1`} {
		if _, err := e.m.DB.ExecContext(ctx, q, me); err != nil {
			t.Fatal(err)
		}
	}
	for range len(entries) + 2 {
		hcm.must(http.StatusOK, http.MethodPost, "/agency/v1/data-requests", dataRequest(pid, "tax-audit", "address"))
	}
	if _, err := e.m.Checkpointer.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rewritten := cit.must(http.StatusOK, http.MethodGet, "/v1/access-log/export", nil).json(t)["entries"].([]any)
	checkInclusion(t, e.m, cit.must(http.StatusOK, http.MethodGet, "/v1/access-log/proof", nil).json(t), rewritten[0].(map[string]any))
	if err := appCheck(t, e.m, cit, kept); err == nil || !strings.Contains(err.Error(), "remembered head") {
		t.Fatalf("the rewritten chain passes the app's checks: %v", err)
	}
}

// appHead is the chain head the citizen's app verified last.
type appHead struct {
	seq  int64
	hash string // base64
}

// appCheck runs the app's documented checks (docs/audit-transparency.md)
// with a remembered head: the new head's inclusion, the export's entry at
// the kept seq, the prev links from the new head down to it, and the kept
// head's inclusion in the new checkpoint.
func appCheck(t *testing.T, m *Main, cit *apiClient, kept appHead) error {
	t.Helper()
	entries := cit.must(http.StatusOK, http.MethodGet, "/v1/access-log/export", nil).json(t)["entries"].([]any)
	pr := cit.must(http.StatusOK, http.MethodGet, "/v1/access-log/proof", nil).json(t)
	if err := inclusionErr(m, pr, entries[0].(map[string]any)); err != nil {
		return err
	}
	// Newest first: each entry's prev is the hash of the entry below it.
	for i, v := range entries {
		en := v.(map[string]any)
		if int64(en["seq"].(float64)) == kept.seq {
			if en["hash"] != kept.hash {
				return fmt.Errorf("the export's entry %d no longer carries the remembered head's hash", kept.seq)
			}
			old := cit.do(http.MethodGet, "/v1/access-log/proof?seq="+strconv.FormatInt(kept.seq, 10), nil)
			if old.status != http.StatusOK {
				return fmt.Errorf("no proof of the remembered head: %d %s", old.status, old.body)
			}
			return inclusionErr(m, old.json(t), en)
		}
		if i+1 == len(entries) || en["prev"] != entries[i+1].(map[string]any)["hash"] {
			return fmt.Errorf("the prev links from the new head do not lead to the remembered head (broken at entry %v)", en["seq"])
		}
	}
	return fmt.Errorf("the export has no entry at the remembered head's seq %d", kept.seq)
}

func parseTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return at
}

// sameProblem reports whether two problem documents say the same but for
// the instance.
func sameProblem(a, b []byte) bool {
	var x, y map[string]any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	delete(x, "instance")
	delete(y, "instance")
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

func TestConsentAPI_SQLite(t *testing.T) { runConsentAPI(t, startMain(t)) }

func TestConsentAPI_PostgresRedis(t *testing.T) { runConsentAPI(t, startMain(t, scaleOption(t))) }

// A flood of data requests is cut per agency: two clients of one agency
// share its allowance.
func TestDataRequests_RateLimitedPerAgency(t *testing.T) {
	e := startMain(t, func(c *Config) { c.APIDataRequestRateLimit = 3 })
	seedAgencies(t, e.m)
	a, _ := e.brokerAPI(t, "T-UBND-HN")
	b, _ := e.brokerAPI(t, "T-UBND-HN")
	other, _ := e.brokerAPI(t, "T-UBND-HCM")
	body := dataRequest(demoCitizens[0].PersonalID, "benefit-check", "name")
	for _, c := range []*apiClient{a, b, a} {
		c.must(http.StatusForbidden, http.MethodPost, "/agency/v1/data-requests", body)
	}
	b.must(http.StatusTooManyRequests, http.MethodPost, "/agency/v1/data-requests", body)
	other.must(http.StatusForbidden, http.MethodPost, "/agency/v1/data-requests", body)
	// Other routes keep their own per-client allowance.
	a.must(http.StatusOK, http.MethodGet, "/agency/v1/webhooks", nil)
}

// A withdrawal on one replica refuses data requests on another at once:
// the broker reads the consent from the shared database on every request.
func TestDataRequest_WithdrawnOnAnotherReplica(t *testing.T) {
	dsn, redisURL := scaleBackends(t)
	key := sharedMasterKey(t)
	issuerPort := freePort(t)
	prefix := "test-" + randomHex(4) + ":"
	shared := func(addr string) envOption {
		return func(c *Config) {
			c.PostgresDSN, c.RedisURL, c.MasterKeyFile, c.RedisPrefix = dsn, redisURL, key, prefix
			c.IDPAddr, c.Issuer, c.APIURL = addr, "http://127.0.0.1:"+strconv.Itoa(issuerPort), "http://api.onedoor.test"
		}
	}
	m1 := newTestMain(t, shared("127.0.0.1:"+strconv.Itoa(issuerPort)))
	m2 := newTestMain(t, shared("127.0.0.1:0"))
	e := &testEnv{t: t, m: m1, issuer: m1.Issuer}
	if err := m1.ImportCitizens(context.Background(), demoCitizens[:1]); err != nil {
		t.Fatal(err)
	}
	e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	seedAgencies(t, m1)
	cit := e.citizenAPI(t, e.app)
	broker, brokerID := e.brokerAPI(t, "T-UBND-HN")
	onTwo := *broker
	onTwo.base = "http://" + m2.APIAddr
	rec := e.grant(t, e.citizenID(t, demoCitizens[0].PersonalID), brokerID, "T-UBND-HN", "benefit-check", "name")
	body := dataRequest(demoCitizens[0].PersonalID, "benefit-check", "name")
	// The second replica learns of the new client within its cache's poll.
	for i := 0; ; i++ {
		r := onTwo.do(http.MethodPost, "/agency/v1/data-requests", body)
		if r.status == http.StatusOK {
			break
		}
		if i == 50 {
			t.Fatalf("replica 2 never answered: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cit.must(http.StatusOK, http.MethodDelete, "/v1/consents/"+rec.ID, nil)
	at := time.Now()
	refusedItems(t, onTwo.do(http.MethodPost, "/agency/v1/data-requests", body))
	if d := time.Since(at); d > time.Second {
		t.Errorf("replica 2 refused %v after the withdrawal", d)
	}
}

// checkInclusion checks GET /v1/access-log/proof as the citizen's app
// would: the checkpoint's signature, the leaf naming the export's entry
// (the newest, for the latest head), and the proof against the signed root.
func checkInclusion(t *testing.T, m *Main, pr, entry map[string]any) {
	t.Helper()
	if err := inclusionErr(m, pr, entry); err != nil {
		t.Fatal(err)
	}
}

func inclusionErr(m *Main, pr, entry map[string]any) error {
	_, verifier, err := m.AuditKeys()
	if err != nil {
		return err
	}
	size, root, err := consent.OpenCheckpoint([]byte(pr["checkpoint"].(string)), verifier)
	if err != nil || float64(size) != pr["tree_size"] {
		return fmt.Errorf("checkpoint %q: %v", pr["checkpoint"], err)
	}
	b64 := func(v any) []byte {
		b, _ := base64.StdEncoding.DecodeString(v.(string))
		return b
	}
	leaf := b64(pr["leaf_data"])
	var ld struct {
		Seq  int64  `json:"seq"`
		Hash []byte `json:"hash"`
	}
	if err := json.Unmarshal(leaf, &ld); err != nil || float64(ld.Seq) != entry["seq"] || base64.StdEncoding.EncodeToString(ld.Hash) != entry["hash"] ||
		pr["hash"] != entry["hash"] {
		return fmt.Errorf("leaf %s, entry %v", leaf, entry)
	}
	var proof tlog.RecordProof
	for _, h := range pr["proof"].([]any) {
		proof = append(proof, tlog.Hash(b64(h)))
	}
	if err := tlog.CheckRecord(proof, size, root, int64(pr["leaf_index"].(float64)), tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	return nil
}
