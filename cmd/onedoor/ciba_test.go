package main

// OpenID CIBA Core 1.0: an agency's counter asks the citizen's eID app to
// approve a login, the app shows the binding message, the counter polls
// (or is pinged) and redeems the approval once.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/web"
)

type cibaClient struct {
	e          *testEnv
	id, secret string
}

func (e *testEnv) cibaClient(mode, notify string) *cibaClient {
	id, secret := e.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{idp.GrantTypeCIBA},
		RedirectURIs: []string{}, BackchannelTokenDeliveryMode: mode, BackchannelClientNotificationEndpoint: notify})
	return &cibaClient{e: e, id: id, secret: secret}
}

func (c *cibaClient) post(path string, form url.Values) (int, map[string]any) {
	c.e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		c.e.t.Fatalf("%s: %d %.200s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func (c *cibaClient) start(pid, binding string, extra ...string) (int, map[string]any) {
	f := url.Values{"scope": {"openid profile"}, "login_hint": {pid}, "binding_message": {binding}}
	for i := 0; i+1 < len(extra); i += 2 {
		f.Set(extra[i], extra[i+1])
	}
	return c.post(web.PathBCAuthorize, f)
}

func (c *cibaClient) mustStart(pid, binding string, extra ...string) string {
	c.e.t.Helper()
	st, out := c.start(pid, binding, extra...)
	if st != http.StatusOK {
		c.e.t.Fatalf("bc-authorize: %d %v", st, out)
	}
	if out["interval"] != float64(5) || out["expires_in"].(float64) <= 0 {
		c.e.t.Errorf("bc-authorize response %v", out)
	}
	return out["auth_req_id"].(string)
}

func (c *cibaClient) redeem(id string) (int, map[string]any) {
	return c.post("/token", url.Values{"grant_type": {idp.GrantTypeCIBA}, "auth_req_id": {id}})
}

func wantErr(t *testing.T, what string, st int, out map[string]any, code string) {
	t.Helper()
	if out["error"] != code || st < 400 {
		t.Errorf("%s: %d %v, want %s", what, st, out, code)
	}
}

// pendingByBinding finds the app's pending request showing binding.
func pendingByBinding(t *testing.T, app *eidapp.App, binding string) *eid.AppView {
	t.Helper()
	var found *eid.AppView
	eventually(t, "pending "+binding, func() bool {
		vs, err := app.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.BindingMessage == binding {
				found = &v
				return true
			}
		}
		return false
	})
	if len(found.MatchChoices) != 0 {
		t.Errorf("a CIBA request offers match choices %v", found.MatchChoices)
	}
	return found
}

func approveCIBA(t *testing.T, app *eidapp.App, v *eid.AppView, deny bool) (*eidapp.Result, error) {
	t.Helper()
	p, err := app.RequestPayload(v.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	return app.Approve(context.Background(), p, "", deny, nil)
}

func TestCIBA_SQLite(t *testing.T) {
	runCIBA(t, startMain(t, func(c *Config) { c.Limits = web.Limits{PromptsPerCitizen: 8} }))
}

func TestCIBA_PostgresRedis(t *testing.T) {
	runCIBA(t, startMain(t, scaleOption(t), func(c *Config) { c.Limits = web.Limits{PromptsPerCitizen: 8} }))
}

func runCIBA(t *testing.T, e *testEnv) {
	alice := demoCitizens[0].PersonalID // e.app is hers
	poll := e.cibaClient(idp.CIBAModePoll, "")
	other := e.cibaClient(idp.CIBAModePoll, "")

	// Refusals before anything is sent.
	plain := &cibaClient{e: e}
	plain.id, plain.secret = e.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
	st, out := plain.start(alice, "Quầy 3")
	wantErr(t, "client without the CIBA grant", st, out, "unauthorized_client")
	for _, bad := range []string{"", "a\u202eb", "line\nbreak", strings.Repeat("x", 41)} {
		st, out := poll.start(alice, bad)
		wantErr(t, "binding message "+bad, st, out, "invalid_binding_message")
	}
	st, out = poll.post(web.PathBCAuthorize, url.Values{"scope": {"openid"}, "login_hint_token": {"x"}, "binding_message": {"A"}})
	wantErr(t, "login_hint_token", st, out, "invalid_request")
	st, out = poll.start(alice, "Quầy 3", "scope", "profile")
	wantErr(t, "no openid", st, out, "invalid_scope")
	st, out = poll.start(alice, "Quầy 3", "id_token_hint", "x.y.z")
	wantErr(t, "two hints", st, out, "invalid_request")

	// An unknown personal id is answered as a known one.
	unknown := poll.mustStart("099999999999", "Quầy 9")

	approved := poll.mustStart(alice, "Quầy 1 · mã 4711")
	denied := poll.mustStart(alice, "Quầy 2")
	twice := poll.mustStart(alice, "Quầy 4")

	// Too fast: the first poll comes before the interval.
	st, out = poll.redeem(approved)
	wantErr(t, "first poll", st, out, "slow_down")

	v := pendingByBinding(t, e.app, "Quầy 1 · mã 4711")
	if v.ClientID != poll.id || len(v.Claims) == 0 {
		t.Errorf("app view %+v", v)
	}
	if res, err := approveCIBA(t, e.app, v, false); err != nil || res.Status != string(eid.StatusApproved) {
		t.Fatalf("approve: %v %+v", err, res)
	}
	if _, err := approveCIBA(t, e.app, pendingByBinding(t, e.app, "Quầy 2"), true); err != nil {
		t.Fatalf("deny: %v", err)
	}
	// TestCIBA_ApprovedTwice: the second answer is refused.
	tv := pendingByBinding(t, e.app, "Quầy 4")
	if _, err := approveCIBA(t, e.app, tv, false); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if _, err := approveCIBA(t, e.app, tv, false); err == nil {
		t.Error("a CIBA request approved twice")
	}
	// Stolen phone: approved from a second device of Alice's that is
	// revoked before the counter redeems.
	lost := poll.mustStart(alice, "Quầy 6")
	lostApp := e.enroll(alice, idp.LevelHigh)
	if _, err := approveCIBA(t, lostApp, pendingByBinding(t, lostApp, "Quầy 6"), false); err != nil {
		t.Fatalf("approve from the second device: %v", err)
	}
	if err := e.app.RevokeDevice(context.Background(), lostApp.Enrollment().DeviceID); err != nil {
		t.Fatal(err)
	}
	// Another client cannot redeem it.
	st, out = other.redeem(approved)
	wantErr(t, "another client", st, out, "invalid_grant")

	time.Sleep(5200 * time.Millisecond)
	st, out = poll.redeem(unknown)
	wantErr(t, "unknown personal id", st, out, "authorization_pending")
	st, out = poll.redeem(denied)
	wantErr(t, "denied", st, out, "access_denied")
	st, out = poll.redeem(lost)
	wantErr(t, "approved by a device revoked since", st, out, "access_denied")
	st, out = poll.redeem(approved)
	if st != http.StatusOK || out["id_token"] == nil || out["access_token"] == nil || out["refresh_token"] != nil {
		t.Fatalf("tokens: %d %v", st, out)
	}
	claims := claimsOf(t, out["id_token"].(string))
	if claims["sub"] != e.citizenID(t, alice) || claims["acr"] != string(idp.LevelHigh) || claims["aud"] != poll.id && !audHas(claims["aud"], poll.id) {
		t.Errorf("ID token claims %v", claims)
	}
	if info := cibaUserinfo(t, e, out["access_token"].(string)); info["sub"] != claims["sub"] || info["name"] == nil {
		t.Errorf("userinfo %v: want the released profile", info)
	}
	st, out = poll.redeem(approved)
	wantErr(t, "redeemed twice", st, out, "invalid_grant")
	st, out = poll.redeem(twice)
	if st != http.StatusOK {
		t.Errorf("approved-twice request: %d %v", st, out)
	}

	// Ping mode: the client is told, then redeems.
	recv := newPingReceiver(t, "ping-token-123")
	ping := e.cibaClient(idp.CIBAModePing, recv.URL+"/ciba")
	st, out = ping.start(alice, "Tổng đài")
	wantErr(t, "ping without a notification token", st, out, "invalid_request")
	pid := ping.mustStart(alice, "Tổng đài", "client_notification_token", "ping-token-123")
	if _, err := approveCIBA(t, e.app, pendingByBinding(t, e.app, "Tổng đài"), false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ping", func() bool { return recv.pinged(pid) })
	time.Sleep(5200 * time.Millisecond)
	if st, out := ping.redeem(pid); st != http.StatusOK {
		t.Errorf("ping redeem: %d %v", st, out)
	}

	// Expiry.
	exp := poll.mustStart(alice, "Hết hạn", "requested_expiry", "1")
	time.Sleep(1100 * time.Millisecond)
	st, out = poll.redeem(exp)
	wantErr(t, "expired", st, out, "expired_token")
}

func audHas(a any, id string) bool {
	l, _ := a.([]any)
	for _, x := range l {
		if x == id {
			return true
		}
	}
	return false
}

func cibaUserinfo(t *testing.T, e *testEnv, at string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+at)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// pingReceiver is a client's notification endpoint that records the
// auth_req_ids pinged with the bearer token.
type pingReceiver struct {
	*httptest.Server
	token string
	mu    sync.Mutex
	got   []string
}

func newPingReceiver(t *testing.T, token string) *pingReceiver {
	p := &pingReceiver{token: token}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b struct {
			AuthReqID string `json:"auth_req_id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		if r.Header.Get("Authorization") == "Bearer "+p.token && r.Method == http.MethodPost {
			p.mu.Lock()
			p.got = append(p.got, b.AuthReqID)
			p.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *pingReceiver) pinged(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.got, id)
}

// cibaBothModes runs one approved CIBA login per delivery mode (poll and
// ping) for e.app's citizen and returns the token responses by mode.
func cibaBothModes(t *testing.T, e *testEnv) map[string]map[string]any {
	t.Helper()
	alice := demoCitizens[0].PersonalID
	recv := newPingReceiver(t, "disc-ping-token")
	poll := e.cibaClient(idp.CIBAModePoll, "")
	ping := e.cibaClient(idp.CIBAModePing, recv.URL+"/cb")
	ids := map[string]string{
		idp.CIBAModePoll: poll.mustStart(alice, "Discovery poll"),
		idp.CIBAModePing: ping.mustStart(alice, "Discovery ping", "client_notification_token", "disc-ping-token"),
	}
	for _, m := range []string{"poll", "ping"} {
		if _, err := approveCIBA(t, e.app, pendingByBinding(t, e.app, "Discovery "+m), false); err != nil {
			t.Fatalf("approve %s: %v", m, err)
		}
	}
	eventually(t, "ping", func() bool { return recv.pinged(ids[idp.CIBAModePing]) })
	time.Sleep(5200 * time.Millisecond)
	out := map[string]map[string]any{}
	for m, c := range map[string]*cibaClient{idp.CIBAModePoll: poll, idp.CIBAModePing: ping} {
		st, body := c.redeem(ids[m])
		if st != http.StatusOK {
			t.Errorf("%s mode redeem: %d %v", m, st, body)
		}
		out[m] = body
	}
	return out
}

// TestCIBA_ApprovedTwice: a CIBA request is answered once; the second
// approval is refused (409 already_decided) and the one approval yields
// tokens once. The DPoP proof at the token endpoint binds them, the
// consent the app signed is recorded with its receipt, and another
// citizen's app never sees the request.
func TestCIBA_ApprovedTwice(t *testing.T) {
	e := startMain(t)
	ctx := context.Background()
	alice := demoCitizens[0].PersonalID
	bobApp := e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh)
	c := e.cibaClient(idp.CIBAModePoll, "")
	id := c.mustStart(alice, "Quầy 7 · 2468")

	v := pendingByBinding(t, e.app, "Quầy 7 · 2468")
	if vs, err := bobApp.Pending(ctx); err != nil || len(vs) != 0 {
		t.Errorf("another citizen's app lists %v (%v)", vs, err)
	}
	p, _ := bobApp.RequestPayload(v.RequestID)
	if _, err := bobApp.Approve(ctx, p, "", false, nil); err == nil {
		t.Error("another citizen's app approved the request")
	}
	if res, err := approveCIBA(t, e.app, v, false); err != nil || res.Mode != eid.ModeCIBA {
		t.Fatalf("approve: %v %+v", err, res)
	}
	_, err := approveCIBA(t, e.app, v, false)
	var ae *eidapp.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusConflict {
		t.Errorf("second approval: %v, want 409", err)
	}
	if _, err := approveCIBA(t, e.app, v, true); err == nil {
		t.Error("a deny after the approval was accepted")
	}

	time.Sleep(5200 * time.Millisecond)
	key := newDPoPClient(t)
	form := url.Values{"grant_type": {idp.GrantTypeCIBA}, "auth_req_id": {id}}
	// A replayed proof is refused before the approval is taken: the next
	// poll, with a fresh proof, still gets the tokens.
	key.nonce = tokenNonce(t, e.issuer)
	replayed := key.proof(t, http.MethodPost, e.issuer+"/token", "")
	if _, err := e.m.DPoP.Verify(ctx, []string{replayed}, dpop.Check{Method: http.MethodPost, URL: e.issuer + "/token"}); err != nil {
		t.Fatal(err)
	}
	if r := proofToken(t, e.issuer, c.id, c.secret, form, replayed); r.status != http.StatusBadRequest || r.str("error") != "invalid_dpop_proof" {
		t.Fatalf("a replayed proof: %d %v", r.status, r.body)
	}
	time.Sleep(5200 * time.Millisecond) // the poll interval
	r := dpopToken(t, e.issuer, c.id, c.secret, form, key)
	if r.status != http.StatusOK || r.str("token_type") != "DPoP" || cnfOf(t, r.str("access_token")) != key.jkt(t) {
		t.Fatalf("DPoP-bound CIBA tokens: %d %v", r.status, r.body)
	}
	if r.str("consent_receipt") == "" {
		t.Error("no consent receipt")
	}
	sub := e.citizenID(t, alice)
	if rec, err := e.m.Consent.Remembered(ctx, sub, c.id, consent.LoginPurpose.Code); err != nil || rec == nil {
		t.Errorf("consent record: %v %v", rec, err)
	}
	r = dpopToken(t, e.issuer, c.id, c.secret, form, key)
	if r.status != http.StatusBadRequest || r.str("error") != "invalid_grant" {
		t.Errorf("second redemption: %d %v", r.status, r.body)
	}
}

// TestCIBA_PushFatigue: the requests one agency (or several) may send to
// one personal id are counted with the login_hint prompts; over the
// limit they are refused, and alike for a personal id nobody has.
func TestCIBA_PushFatigue(t *testing.T) {
	e := startMain(t, func(c *Config) { c.Limits = web.Limits{PromptsPerCitizen: 2} })
	c := e.cibaClient(idp.CIBAModePoll, "")
	for _, pid := range []string{demoCitizens[0].PersonalID, "099999999998"} {
		for i := range 2 {
			if st, out := c.start(pid, "Lần "+strconv.Itoa(i)); st != http.StatusOK {
				t.Fatalf("request %d: %d %v", i, st, out)
			}
		}
		st, out := c.start(pid, "Lần 3")
		wantErr(t, "third request", st, out, "access_denied")
	}
	vs, err := e.app.Pending(context.Background())
	if err != nil || len(vs) != 2 {
		t.Errorf("the app lists %d requests (%v), want 2", len(vs), err)
	}
}

// `client create` registers the CIBA grant with its delivery mode, and
// refuses a ping client without a notification endpoint.
func TestCLI_ClientCreateCIBA(t *testing.T) {
	dir := migratedDir(t)
	code, out, errs := cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Quầy", "--scope", "openid profile",
		"--grant-type", idp.GrantTypeCIBA, "--backchannel-token-delivery-mode", "ping",
		"--backchannel-client-notification-endpoint", "https://quay.example/ciba")
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errs)
	}
	var c struct {
		Mode     string `json:"backchannel_token_delivery_mode"`
		Endpoint string `json:"backchannel_client_notification_endpoint"`
	}
	decode(t, out, &c)
	if c.Mode != "ping" || c.Endpoint != "https://quay.example/ciba" {
		t.Errorf("create output %s", out)
	}
	code, _, errs = cli(t, nil, "client", "create", "--data-dir", dir, "--name", "Quầy", "--grant-type", idp.GrantTypeCIBA,
		"--backchannel-token-delivery-mode", "ping", "--auth-method", "none")
	if code != 1 || !strings.Contains(errs, "notification endpoint") || !strings.Contains(errs, "confidential") {
		t.Errorf("bad CIBA client: exit %d: %s", code, errs)
	}
}

// TestEIDAPI_ContractCIBA: the app's side of a CIBA request, checked
// against docs/eid-api.openapi.json: the pending list and the view carry
// the binding message and no match choices; a cross-device approval is
// refused, the ciba-mode approval over the message is taken once.
func TestEIDAPI_ContractCIBA(t *testing.T) {
	v := eidContract(t)
	e := startMain(t)
	pid := demoCitizens[1].PersonalID
	d := enrollRaw(t, e, v, pid, idp.LevelSubstantial)
	c := e.cibaClient(idp.CIBAModePoll, "")
	c.mustStart(pid, "Quầy 5 · 1357")

	var view map[string]any
	eventually(t, "pending", func() bool {
		l, _ := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests?pending", d.auth(), nil).body["login_requests"].([]any)
		if len(l) == 1 {
			view = l[0].(map[string]any)
		}
		return view != nil
	})
	id := view["request_id"].(string)
	one := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+id, d.auth(), nil).body
	for _, w := range []map[string]any{view, one} {
		if ch, _ := w["match_choices"].([]any); w["binding_message"] != "Quầy 5 · 1357" || len(ch) != 0 {
			t.Errorf("CIBA view %v", w)
		}
	}
	path := "/eid/v1/login-requests/" + id + "/decision"
	if r := d.must(http.StatusBadRequest, http.MethodPost, path, d.auth(), d.approval(view, eid.DecisionApprove, []string{"name"})); r.err() != "invalid_request" {
		t.Errorf("cross-device approval of a CIBA request: %v", r.body)
	}
	ciba := func(c *eid.ApprovalClaims) {
		c.Mode, c.MatchNumber, c.BindingMessage = eid.ModeCIBA, "", "Quầy 5 · 1357"
	}
	if r := d.must(http.StatusOK, http.MethodPost, path, d.auth(), d.approval(view, eid.DecisionApprove, []string{"name"}, ciba)); r.body["status"] != "approved" {
		t.Errorf("ciba approval: %v", r.body)
	}
	d.must(http.StatusConflict, http.MethodPost, path, d.auth(), d.approval(view, eid.DecisionApprove, []string{"name"}, ciba))
}

// TestCIBA_PingSurvivesRestart: the citizen approves, the client's
// notification endpoint is down, the server restarts; the new server on the
// same database sends the ping, with the client's bearer token, and the
// client redeems the approval there.
func TestCIBA_PingSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	sameDir := func(c *Config) { c.DataDir = dir }
	e := startMain(t, sameDir)
	alice := demoCitizens[0].PersonalID
	var down sync.Mutex
	failing := true
	recv := newPingReceiver(t, "restart-token")
	inner := recv.Config.Handler
	recv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		down.Lock()
		f := failing
		down.Unlock()
		if f {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		inner.ServeHTTP(w, r)
	})
	ping := e.cibaClient(idp.CIBAModePing, recv.URL+"/ciba")
	id := ping.mustStart(alice, "Khởi động lại", "client_notification_token", "restart-token")
	if _, err := approveCIBA(t, e.app, pendingByBinding(t, e.app, "Khởi động lại"), false); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eventually(t, "a first, failed ping", func() bool {
		ds, err := e.m.Store.ListDeliveries(ctx, web.CIBAPingSID(id))
		return err == nil && len(ds) == 1 && ds[0].Attempts > 0
	})
	_ = e.m.Close()
	down.Lock()
	failing = false
	down.Unlock()

	m2 := newTestMain(t, sameDir)
	e2 := &testEnv{t: t, m: m2, issuer: m2.Issuer}
	eventually(t, "the ping from the restarted server", func() bool { return recv.pinged(id) })
	// The receiver answers before the worker records the outcome.
	// (That its token is then blanked is checked on the stored row by
	// the store's tests; listings never carry it.)
	eventually(t, "the ping recorded as delivered", func() bool {
		ds, err := m2.Store.ListDeliveries(ctx, web.CIBAPingSID(id))
		return err == nil && len(ds) == 1 && ds[0].State == idp.DeliveryDelivered
	})
	again := &cibaClient{e: e2, id: ping.id, secret: ping.secret}
	time.Sleep(5200 * time.Millisecond) // the poll interval since bc-authorize
	if st, out := again.redeem(id); st != http.StatusOK || out["access_token"] == nil {
		t.Errorf("redeem after the restart: %d %v", st, out)
	}
}

func (c *cibaClient) refresh(rt string) (int, map[string]any) {
	return c.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// TestCIBA_RefreshToken: a CIBA client registered for the refresh_token
// grant that asks offline_access gets a refresh token, which refreshes; it
// belongs to a family bound to the approving device, so revoking that
// device revokes it (and not another device's), and locking the account
// revokes the rest.
func TestCIBA_RefreshToken(t *testing.T) {
	e := startMain(t, func(c *Config) { c.Limits = web.Limits{PromptsPerCitizen: 8} })
	ctx := context.Background()
	alice := demoCitizens[0].PersonalID
	id, secret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{idp.GrantTypeCIBA, "refresh_token"},
		RedirectURIs: []string{}, BackchannelTokenDeliveryMode: idp.CIBAModePoll})
	c := &cibaClient{e: e, id: id, secret: secret}
	noRefresh := e.cibaClient(idp.CIBAModePoll, "")
	st, out := noRefresh.start(alice, "Quầy 7", "scope", "openid offline_access")
	wantErr(t, "offline_access without the refresh_token grant", st, out, "invalid_scope")

	second := e.enroll(alice, idp.LevelHigh)
	idA := c.mustStart(alice, "Làm mới A", "scope", "openid profile offline_access")
	idB := c.mustStart(alice, "Làm mới B", "scope", "openid profile offline_access")
	idC := c.mustStart(alice, "Không làm mới")
	if _, err := approveCIBA(t, e.app, pendingByBinding(t, e.app, "Làm mới A"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := approveCIBA(t, second, pendingByBinding(t, second, "Làm mới B"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := approveCIBA(t, e.app, pendingByBinding(t, e.app, "Không làm mới"), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5200 * time.Millisecond)
	tokens := map[string]string{}
	for name, rid := range map[string]string{"A": idA, "B": idB} {
		st, out := c.redeem(rid)
		rt, _ := out["refresh_token"].(string)
		if st != http.StatusOK || rt == "" || out["id_token"] == nil {
			t.Fatalf("CIBA token response %s: %d %v, want a refresh token", name, st, out)
		}
		tokens[name] = rt
	}
	if st, out := c.redeem(idC); st != http.StatusOK || out["refresh_token"] != nil {
		t.Errorf("without offline_access: %d %v, want no refresh token", st, out)
	}
	// Refresh works and rotates.
	st, out = c.refresh(tokens["A"])
	if st != http.StatusOK || out["access_token"] == nil || out["refresh_token"] == nil || out["refresh_token"] == tokens["A"] {
		t.Fatalf("refresh: %d %v", st, out)
	}
	tokens["A"] = out["refresh_token"].(string)
	// Revoking the device that approved B revokes B's refresh token only.
	if err := e.app.RevokeDevice(ctx, second.Enrollment().DeviceID); err != nil {
		t.Fatal(err)
	}
	st, out = c.refresh(tokens["B"])
	wantErr(t, "refresh after its device was revoked", st, out, "invalid_grant")
	st, out = c.refresh(tokens["A"])
	if st != http.StatusOK || out["refresh_token"] == nil {
		t.Fatalf("refresh of another device's family: %d %v", st, out)
	}
	tokens["A"] = out["refresh_token"].(string)
	// citizen lock: nothing refreshes any more.
	if _, err := e.m.LockCitizen(ctx, e.citizenID(t, alice)); err != nil {
		t.Fatal(err)
	}
	st, out = c.refresh(tokens["A"])
	wantErr(t, "refresh after citizen lock", st, out, "invalid_grant")
}
