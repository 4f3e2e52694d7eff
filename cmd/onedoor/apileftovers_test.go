package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
	"github.com/onedoor/onedoor/mobileapi/blob/fsblob"
)

// A stolen Redis dump (or a curious operator reading the ephemeral store)
// must find no citizen's data in the Idempotency-Key records: they keep the
// request's hash, the status and what was created, and a retry reads the
// resource again. A retry after the resource was deleted creates nothing.
func TestMobileAPI_IdempotencyKeepsNoPersonalData_SQLite(t *testing.T) {
	runIdempotencyNoPersonalData(t, startMain(t, allowPrivateWebhooks))
}

func TestMobileAPI_IdempotencyKeepsNoPersonalData_PostgresRedis(t *testing.T) {
	runIdempotencyNoPersonalData(t, startMain(t, scaleOption(t), allowPrivateWebhooks))
}

func runIdempotencyNoPersonalData(t *testing.T, e *testEnv) {
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	cit := e.citizenAPI(t, e.app)
	svcID := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-IDEM", []byte(birthService)).json(t)["id"].(string)
	sub := claimsOf(t, cit.token)["sub"].(string)
	record := func(principal, key string) string {
		t.Helper()
		k := sha256.Sum256([]byte(principal + "\x00" + key))
		raw, err := e.m.Eph.Get(context.Background(), "api:idem:"+hex.EncodeToString(k[:]))
		if err != nil {
			t.Fatalf("idempotency record of %s: %v", key, err)
		}
		return string(raw)
	}
	personal := []string{demoCitizens[0].PersonalID, demoCitizens[0].FamilyName, demoCitizens[0].GivenName, `"form"`, "prefilled"}
	noPersonalData := func(what, rec string, extra ...string) {
		t.Helper()
		for _, p := range append(personal, extra...) {
			if strings.Contains(rec, p) {
				t.Errorf("the idempotency record of %s holds %q: %s", what, p, rec)
			}
		}
		if len(rec) > 256 {
			t.Errorf("the idempotency record of %s is %d bytes, want a reference: %s", what, len(rec), rec)
		}
	}
	merge := []string{"Content-Type", "application/merge-patch+json"}

	// The draft: pre-filled with the citizen's name and personal id.
	create := []byte(`{"service_id":"` + svcID + `"}`)
	first := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", create, "Idempotency-Key", "idem-draft").json(t)
	appID := first["id"].(string)
	if first["form"].(map[string]any)["applicant_personal_id"] != demoCitizens[0].PersonalID {
		t.Fatalf("the draft is not pre-filled: %v", first["form"])
	}
	noPersonalData("a draft", record("citizen:"+sub, "idem-draft"))

	// A replay reads the draft as it now stands.
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+appID, []byte(`{"form":{"child_name":"Con Thử"}}`), merge...)
	r := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", create, "Idempotency-Key", "idem-draft")
	again := r.json(t)
	if again["id"] != appID || again["form"].(map[string]any)["child_name"] != "Con Thử" || r.header.Get("Idempotent-Replayed") != "true" ||
		r.header.Get("Location") != "/v1/applications/"+appID || r.header.Get("ETag") != `"v2"` {
		t.Errorf("replay: %v %v", r.header, again)
	}

	// An attachment: its name is the citizen's, and stays out of the record.
	body, ct := multipartFile(t, "giay-chung-sinh-nguyen-van-demo.pdf", []byte("%PDF-1.4\n%%EOF\n"), "document_code", "birth_certificate")
	att := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+appID+"/attachments", body, "Content-Type", ct, "Idempotency-Key", "idem-att").json(t)
	noPersonalData("an attachment", record("citizen:"+sub, "idem-att"), "giay-chung-sinh")
	if re := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+appID+"/attachments", body, "Content-Type", ct, "Idempotency-Key", "idem-att").json(t); re["id"] != att["id"] || re["name"] != att["name"] || re["sha256"] != att["sha256"] {
		t.Errorf("replayed upload %v, first %v", re, att)
	}

	// The agency's result document and webhook.
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+appID, []byte(`{"form":{"child_birthdate":"2026-11-01"}}`), merge...)
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+appID+"/submit", nil)
	agency := "agency:T-UBND-HN"
	body, ct = multipartFile(t, "giay-khai-sinh-con-thu.pdf", []byte("%PDF-1.4\n%%EOF\n"))
	doc := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/applications/"+appID+"/documents", body, "Content-Type", ct, "Idempotency-Key", "idem-doc").json(t)
	noPersonalData("a document", record(agency, "idem-doc"), "giay-khai-sinh")
	if re := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/applications/"+appID+"/documents", body, "Content-Type", ct, "Idempotency-Key", "idem-doc").json(t); re["id"] != doc["id"] || re["name"] != doc["name"] {
		t.Errorf("replayed document %v, first %v", re, doc)
	}
	// A decision whose answer was lost: the retry replays the application
	// (200, no second transition, no second inbox message) instead of a
	// 409 for a status it already reached.
	review := []byte(`{"to":"in_review"}`)
	tr := hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", review, "Idempotency-Key", "idem-review").json(t)
	noPersonalData("a transition", record(agency, "idem-review"))
	rr := hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", review, "Idempotency-Key", "idem-review")
	if re := rr.json(t); re["status"] != "in_review" || re["version"] != tr["version"] || rr.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replayed transition %v (%v), first %v", re, rr.header, tr)
	}
	if r := hanoi.do(http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", review); r.status != http.StatusConflict {
		t.Errorf("the same transition without the key: %d %s, want 409", r.status, r.body)
	}
	if r := hanoi.do(http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", []byte(`{"to":"approved"}`), "Idempotency-Key", "idem-review"); r.status != http.StatusUnprocessableEntity {
		t.Errorf("the key reused for another decision: %d %s, want 422", r.status, r.body)
	}
	if r := hanoi.do(http.MethodPost, "/agency/v1/applications/"+appID+"/transitions", review, "Idempotency-Key", "idem-review", "If-Match", `"v1"`); r.status != http.StatusUnprocessableEntity {
		t.Errorf("the key reused on another version (If-Match): %d %s, want 422", r.status, r.body)
	}
	hook := []byte(`{"url":"https://agency.example/hooks/idem"}`)
	w := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/webhooks", hook, "Idempotency-Key", "idem-hook").json(t)
	if rec := record(agency, "idem-hook"); strings.Contains(rec, "agency.example") {
		t.Errorf("the webhook's record holds its URL: %s", rec)
	}
	if re := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/webhooks", hook, "Idempotency-Key", "idem-hook").json(t); re["id"] != w["id"] {
		t.Errorf("replayed webhook %v, first %v", re["id"], w["id"])
	}

	// Deleted since: the retry is told so (409) and creates nothing again.
	hanoi.must(http.StatusNoContent, http.MethodDelete, "/agency/v1/webhooks/"+w["id"].(string), nil)
	if r := hanoi.do(http.MethodPost, "/agency/v1/webhooks", hook, "Idempotency-Key", "idem-hook"); r.status != http.StatusConflict {
		t.Errorf("replay of a deleted webhook: %d %s, want 409", r.status, r.body)
	}
	if l := hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/webhooks", nil).json(t); len(l["items"].([]any)) != 0 {
		t.Errorf("the replay of a deleted webhook created one: %v", l)
	}
	draft := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", create, "Idempotency-Key", "idem-deleted").json(t)["id"].(string)
	cit.must(http.StatusNoContent, http.MethodDelete, "/v1/applications/"+draft, nil)
	if r := cit.do(http.MethodPost, "/v1/applications", create, "Idempotency-Key", "idem-deleted"); r.status != http.StatusConflict {
		t.Errorf("replay of a deleted draft: %d %s, want 409", r.status, r.body)
	}
	if l := cit.must(http.StatusOK, http.MethodGet, "/v1/applications?status=draft", nil).json(t); len(l["items"].([]any)) != 0 {
		t.Errorf("the replay of a deleted draft created one: %v", l["items"])
	}
}

// badToken is a well-formed ES256 JWT the IdP never signed: checking it
// costs a signature verification.
const badToken = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJ4In0.MEUCIQDxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

func authLimit(n int) envOption {
	return func(c *Config) { c.APIAuthFailureLimit, c.TrustedProxies = n, "127.0.0.1/32" }
}

// An address that keeps sending bad tokens (or none) is refused with 429
// before any token is verified; the real client address counts (behind a
// trusted proxy, the one it names), so other addresses are untouched, and
// a citizen behind the same address whose token was already verified goes
// on working.
func TestMobileAPI_FailedAuthenticationLimitedPerAddress(t *testing.T) {
	e := startMain(t, authLimit(5))
	cit := e.citizenAPI(t, e.app)
	cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil) // verified once, so known
	// The count is per wall-clock minute: start it early in one, so a slow
	// machine (CI under load) does not see the window roll over mid-test.
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < 45*time.Second {
		time.Sleep(left + 100*time.Millisecond)
	}
	attacker := &apiClient{t: t, base: cit.base, token: badToken, v: cit.v}
	from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }
	nat := from("203.0.113.7")
	for i := range 5 {
		c := attacker
		if i == 0 {
			c = &apiClient{t: t, base: cit.base, v: cit.v} // no token counts too
		}
		if r := c.do(http.MethodGet, "/v1/me", nil, nat...); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s, want 401", i+1, r.status, r.body)
		}
	}
	for _, c := range []*apiClient{attacker, {t: t, base: cit.base, v: cit.v}} {
		r := c.do(http.MethodGet, "/v1/applications", nil, nat...)
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("over the limit: %d %v %s, want 429 problem with Retry-After", r.status, r.header, r.body)
		}
	}
	// A token never verified is refused before its signature is checked,
	// valid as it is: the cost of the limit for a neighbour with a new token.
	fresh := e.citizenAPI(t, e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh))
	if r := fresh.do(http.MethodGet, "/v1/me", nil, nat...); r.status != http.StatusTooManyRequests {
		t.Errorf("a new token from the limited address: %d, want 429 before verification", r.status)
	}
	// The citizen already verified behind the same address is not locked out.
	cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil, nat...)
	// Other addresses are untouched.
	if r := attacker.do(http.MethodGet, "/v1/me", nil, from("203.0.113.8")...); r.status != http.StatusUnauthorized {
		t.Errorf("another address: %d, want 401", r.status)
	}
	fresh.must(http.StatusOK, http.MethodGet, "/v1/me", nil, from("198.51.100.1")...)
	// Agency routes share the address's count.
	if r := attacker.do(http.MethodGet, "/agency/v1/applications", nil, nat...); r.status != http.StatusTooManyRequests {
		t.Errorf("agency route from the limited address: %d, want 429", r.status)
	}
}

// An attacker with more addresses than the limiter counts (IPv6 /64s are
// cheap) fills its table; a new address past it, a citizen's, is not
// refused for the attacker's failures (it used to share one overflow
// counter with the per-address limit), and the overflow is logged once.
func TestMobileAPI_FailedAuthenticationTableFull(t *testing.T) {
	awayFromMinuteEnd(t)
	var logs syncBuffer
	m := newTestMainLogging(t, &logs, slog.LevelWarn, authLimit(5), func(c *Config) { c.APIAuthFailureAddrs = 3 })
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	if err := m.ImportCitizens(context.Background(), demoCitizens[:1]); err != nil {
		t.Fatal(err)
	}
	cit := e.citizenAPI(t, e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh))
	attacker := &apiClient{t: t, base: cit.base, token: badToken, v: cit.v}
	from := func(i int) []string { return []string{"X-Forwarded-For", fmt.Sprintf("2001:db8:%x::1", i)} }
	for i := range 3 { // the table is full
		for range 6 {
			attacker.do(http.MethodGet, "/v1/me", nil, from(i)...)
		}
		if r := attacker.do(http.MethodGet, "/v1/me", nil, from(i)...); r.status != http.StatusTooManyRequests {
			t.Fatalf("tracked address %d over its limit: %d, want 429", i, r.status)
		}
	}
	for i := 3; i < 10; i++ { // many failures from addresses past the table
		for range 6 {
			if r := attacker.do(http.MethodGet, "/v1/me", nil, from(i)...); r.status != http.StatusUnauthorized {
				t.Fatalf("untracked address %d: %d, want 401", i, r.status)
			}
		}
	}
	// A citizen's new address, with a token never verified, is served.
	cit.must(http.StatusOK, http.MethodGet, "/v1/me", nil, from(100)...)
	if n := strings.Count(logs.String(), "auth failure limiter full"); n != 1 {
		t.Errorf("the full table was logged %d times, want once per minute:\n%s", n, logs.String())
	}
}

// With shared limits, an address past the full table is still limited per
// address by the shared count.
func TestMobileAPI_FailedAuthenticationTableFullShared(t *testing.T) {
	awayFromMinuteEnd(t)
	m := newTestMain(t, scaleOption(t), authLimit(5), func(c *Config) {
		c.APIAuthFailureAddrs, c.RedisPrefix = 1, "test-"+randomHex(4)+":"
	})
	attacker := &apiClient{t: t, base: "http://" + m.APIAddr, token: badToken, v: contract(t)}
	attacker.do(http.MethodGet, "/v1/me", nil, "X-Forwarded-For", "203.0.113.20") // the table is full
	over := []string{"X-Forwarded-For", "203.0.113.21"}
	for i := range 5 {
		if r := attacker.do(http.MethodGet, "/v1/me", nil, over...); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, r.status)
		}
	}
	if r := attacker.do(http.MethodGet, "/v1/me", nil, over...); r.status != http.StatusTooManyRequests {
		t.Errorf("untracked address over its shared limit: %d, want 429", r.status)
	}
}

// awayFromMinuteEnd waits out the end of the limiter's one-minute window
// when it is near, so a test's counts stay in one window.
func awayFromMinuteEnd(t *testing.T) {
	t.Helper()
	if left := time.Until(time.Now().Truncate(time.Minute).Add(time.Minute)); left < 15*time.Second {
		time.Sleep(left + 100*time.Millisecond)
	}
}

// Two replicas on one PostgreSQL and Redis count one address's failures
// together.
func TestMobileAPI_FailedAuthenticationLimitSharedByReplicas(t *testing.T) {
	scale := scaleOption(t)
	prefix := "test-" + randomHex(4) + ":"
	shared := func(c *Config) { c.RedisPrefix = prefix }
	a := newTestMain(t, scale, authLimit(5), shared)
	b := newTestMain(t, scale, authLimit(5), shared)
	v := contract(t)
	at := func(m *Main) *apiClient { return &apiClient{t: t, base: "http://" + m.APIAddr, token: badToken, v: v} }
	nat := []string{"X-Forwarded-For", "203.0.113.9"}
	for i, m := range []*Main{a, a, a, b, b} {
		if r := at(m).do(http.MethodGet, "/v1/me", nil, nat...); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, r.status)
		}
	}
	for i, m := range []*Main{b, a, a} {
		if r := at(m).do(http.MethodGet, "/v1/me", nil, nat...); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
			t.Errorf("request %d over the shared limit: %d, want 429 with Retry-After", i+1, r.status)
		}
	}
}

// During a store outage every request fails; the log keeps the first
// failure of each cause in full and then one line per cause per interval
// with the count, rather than a line per request.
func TestMobileAPI_OutageWarningsAggregated(t *testing.T) {
	var buf syncBuffer
	m := newTestMainLogging(t, &buf, slog.LevelWarn, func(c *Config) { c.APIOutageLogEvery = 300 * time.Millisecond })
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	if err := m.ImportCitizens(context.Background(), demoCitizens[:1]); err != nil {
		t.Fatal(err)
	}
	e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	cit := e.citizenAPI(t, e.app)
	cit.must(http.StatusOK, http.MethodGet, "/v1/applications", nil)
	cit.faultOK = true
	if err := m.DB.Close(); err != nil { // the outage
		t.Fatal(err)
	}
	const failing = 40
	for range failing {
		if r := cit.do(http.MethodGet, "/v1/applications", nil); r.status != http.StatusServiceUnavailable {
			t.Fatalf("during the outage: %d %s, want 503", r.status, r.body)
		}
	}
	time.Sleep(700 * time.Millisecond) // the interval ends
	firsts, counted := 0, 0
	countRE := regexp.MustCompile(`count=(\d+)`)
	for _, line := range strings.Split(buf.String(), "\n") {
		switch {
		case strings.Contains(line, `msg="api store unavailable (repeated)"`):
			n, _ := strconv.Atoi(countRE.FindStringSubmatch(line)[1])
			counted += n
		case strings.Contains(line, `msg="api store unavailable"`):
			firsts++
			if !strings.Contains(line, "route=") || !strings.Contains(line, "request_id=") || !strings.Contains(line, "cause=") {
				t.Errorf("the first failure's line lacks its context: %s", line)
			}
		}
	}
	if firsts < 1 || firsts > 3 || firsts+counted != failing {
		t.Errorf("%d first lines and %d counted for %d failing requests, want a few lines that count all:\n%s", firsts, counted, failing, buf.String())
	}
}

// Orphaned blobs (a file whose record was never written, a deleted draft's
// file whose delete failed) are swept once older than the grace period;
// files that records name, and young files (uploads in flight), are kept.
func TestBlobSweep_SQLite(t *testing.T) {
	runBlobSweep(t, startMain(t, func(c *Config) { c.BlobSweepEvery = 50 * time.Millisecond }), "serve")
}

func TestBlobSweep_Postgres(t *testing.T) {
	runBlobSweep(t, startMain(t, scaleOption(t), func(c *Config) { c.BlobSweepEvery = time.Hour }), "direct")
}

// `onedoor blobs sweep` does the same beside a running server.
func TestBlobSweep_AdminCommand(t *testing.T) {
	runBlobSweep(t, startMain(t, func(c *Config) { c.BlobSweepEvery = time.Hour }), "admin")
}

// A sweep pointed at a blob directory whose files the database does not
// know (the wrong database, the wrong directory) deletes nothing: the admin
// command says which database and directory and how to proceed, --dry-run
// lists the files, --force deletes them; `serve` never forces.
func TestBlobSweep_RefusesToDeleteMostFiles(t *testing.T) {
	var logs syncBuffer
	m := newTestMainLogging(t, &logs, slog.LevelWarn, func(c *Config) { c.BlobSweepEvery = 20 * time.Millisecond })
	ctx := context.Background()
	dir := m.Config.blobDir()
	// The files appear at once (a rename), old already: the running
	// periodic sweep would delete a first few, which are few enough.
	stageDir := filepath.Join(m.Config.DataDir, "stage")
	stage, err := fsblob.New(stageDir)
	if err != nil {
		t.Fatal(err)
	}
	defer stage.Close()
	old := time.Now().Add(-2 * time.Hour)
	var keys []string
	for i := range 30 {
		k := fmt.Sprintf("applications/app_other%02d/attachments/att_x", i)
		if _, err := stage.Put(ctx, k, strings.NewReader("%PDF-1.4"), 100); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(stageDir, filepath.FromSlash(k)), old, old); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := os.Rename(filepath.Join(stageDir, "applications"), filepath.Join(dir, "applications")); err != nil {
		t.Fatal(err)
	}
	left := func() int {
		n := 0
		for _, k := range keys {
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(k))); err == nil {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), "refused to delete 30 of 30"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the periodic sweep logged no refusal:\n%s", logs.String())
		}
	}
	if n := left(); n != 30 {
		t.Fatalf("the periodic sweep deleted %d files it should have refused", 30-n)
	}
	noEnv := func(string) string { return "" }
	sweep := func(extra ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, append([]string{"blobs", "sweep", "--data-dir", m.Config.DataDir}, extra...), noEnv, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, _, msg := sweep()
	if code == exitOK || !strings.Contains(msg, "refused to delete 30 of 30") || !strings.Contains(msg, m.Config.StoreName()) ||
		!strings.Contains(msg, absPath(dir)) || !strings.Contains(msg, "--dry-run") || !strings.Contains(msg, "--force") || left() != 30 {
		t.Fatalf("blobs sweep over a foreign directory: exit %d, %q, %d files left; want a refusal naming the database and directory", code, msg, left())
	}
	code, out, msg := sweep("--dry-run")
	var dry struct {
		Seen        int      `json:"seen"`
		WouldDelete []string `json:"would_delete"`
	}
	if err := json.Unmarshal([]byte(out), &dry); code != exitOK || err != nil || dry.Seen != 30 || len(dry.WouldDelete) != 30 || left() != 30 {
		t.Fatalf("--dry-run: exit %d %s %s (%v); %d files left, want 30 listed and kept", code, out, msg, err, left())
	}
	if code, out, msg := sweep("--force"); code != exitOK || !strings.Contains(strings.ReplaceAll(out, " ", ""), `"deleted":30`) || left() != 0 {
		t.Fatalf("--force: exit %d %s %s; %d files left, want all deleted", code, out, msg, left())
	}
}

func runBlobSweep(t *testing.T, e *testEnv, how string) {
	ctx := context.Background()
	seedAgencies(t, e.m)
	ministry := e.agencyAPI(t, "T-BTP")
	hanoi := e.agencyAPI(t, "T-UBND-HN")
	cit := e.citizenAPI(t, e.app)
	svcID := ministry.must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-SWEEP", []byte(birthService)).json(t)["id"].(string)
	create := []byte(`{"service_id":"` + svcID + `","agency_code":"T-UBND-HN"}`)
	pdf := []byte("%PDF-1.4\n%%EOF\n")
	upload := func(appID, name string) string {
		b, ct := multipartFile(t, name, pdf, "document_code", "birth_certificate")
		return cit.must(http.StatusCreated, http.MethodPost, "/v1/applications/"+appID+"/attachments", b, "Content-Type", ct).json(t)["id"].(string)
	}
	// Kept: an attachment, and an agency's unpublished result document.
	app := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", create).json(t)["id"].(string)
	att := upload(app, "cs.pdf")
	cit.must(http.StatusOK, http.MethodPatch, "/v1/applications/"+app, []byte(`{"form":{"child_name":"Con","child_birthdate":"2026-11-01"}}`), "Content-Type", "application/merge-patch+json")
	cit.must(http.StatusOK, http.MethodPost, "/v1/applications/"+app+"/submit", nil)
	b, ct := multipartFile(t, "kq.pdf", pdf)
	doc := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/applications/"+app+"/documents", b, "Content-Type", ct).json(t)["id"].(string)
	// Orphans: a deleted draft whose file stayed (its delete failed), and
	// a file stored by a request that died before its record.
	draft := cit.must(http.StatusCreated, http.MethodPost, "/v1/applications", create).json(t)["id"].(string)
	lost := "applications/" + draft + "/attachments/" + upload(draft, "lost.pdf")
	sub := claimsOf(t, cit.token)["sub"].(string)
	if _, err := e.m.APIStore.DeleteDraft(ctx, mobileapi.Scope{CitizenID: sub}, draft, 0); err != nil {
		t.Fatal(err)
	}
	crashed := "applications/" + app + "/attachments/att_crashedbeforeitsrecord"
	young := "applications/" + app + "/attachments/att_uploadinflight"
	for _, k := range []string{crashed, young} {
		if _, err := e.m.Blobs.Put(ctx, k, bytes.NewReader(pdf), 100); err != nil {
			t.Fatal(err)
		}
	}
	dir := e.m.Config.blobDir()
	var files []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, ".tmp") {
			files = append(files, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(files) != 5 {
		t.Fatalf("%d files stored, want 5: %v", len(files), files)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, f := range files {
		if !strings.HasSuffix(f, "att_uploadinflight") {
			if err := os.Chtimes(f, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	exists := func(k string) bool {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(k)))
		return err == nil
	}
	switch how {
	case "serve":
		waitFor(t, func() bool { return !exists(crashed) && !exists(lost) }) // `serve` sweeps by itself
	case "direct":
		res, err := e.m.sweepBlobs(ctx, e.m.Blobs, dir, mobileapi.OrphanGrace, mobileapi.SweepOptions{})
		if err != nil || res.Deleted != 2 {
			t.Fatalf("sweep: %d deleted, %v; want 2", res.Deleted, err)
		}
	case "admin":
		var out, errOut bytes.Buffer
		noEnv := func(string) string { return "" }
		if code := run(ctx, []string{"blobs", "sweep", "--data-dir", e.m.Config.DataDir, "--grace", "1s"}, noEnv, &out, &errOut); code != exitUsage {
			t.Errorf("a grace shorter than uploads in flight: exit %d, want usage", code)
		}
		if code := run(ctx, []string{"blobs", "sweep", "--data-dir", e.m.Config.DataDir}, noEnv, &out, &errOut); code != exitOK {
			t.Fatalf("blobs sweep: exit %d: %s", code, errOut.String())
		}
		if got := strings.TrimSpace(out.String()); !strings.Contains(got, `"deleted": 2`) && !strings.Contains(got, `"deleted":2`) {
			t.Errorf("blobs sweep printed %s, want 2 deleted", got)
		}
	}
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.Contains(p, ".tmp") {
			left = append(left, filepath.Base(p))
		}
		return err
	})
	slices.Sort(left)
	if want := []string{att, doc, "att_uploadinflight"}; !slices.Equal(left, slices.Sorted(slices.Values(want))) {
		t.Errorf("after the sweep: %v, want %v", left, want)
	}
	hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/applications/"+app+"/attachments/"+att, nil)
}

// A readiness probe polling the IdP during an outage logs the change
// once, not a warning per probe.
func TestIdP_ReadyzLogsTheChangeOnce(t *testing.T) {
	var buf syncBuffer
	m := newTestMainLogging(t, &buf, slog.LevelInfo)
	if err := m.DB.Close(); err != nil { // the outage
		t.Fatal(err)
	}
	for range 10 {
		rec := httptest.NewRecorder()
		m.Web.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("readyz during the outage: %d %v %s, want 503 with Retry-After", rec.Code, rec.Header(), rec.Body)
		}
	}
	if n := strings.Count(buf.String(), `msg="not ready"`); n != 1 {
		t.Errorf("%d \"not ready\" lines for 10 probes, want 1:\n%s", n, buf.String())
	}
	if strings.Contains(buf.String(), `msg="store unavailable"`) {
		t.Errorf("a probe logged a per-request warning:\n%s", buf.String())
	}
}
