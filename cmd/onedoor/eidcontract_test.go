package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// eidContract validates responses against docs/eid-api.openapi.json.
func eidContract(t testing.TB) validator.Validator {
	t.Helper()
	c, err := eidContractOnce()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.docErrs {
		t.Errorf("docs/eid-api.openapi.json: %s", e)
	}
	return c.v
}

// eidSpec is the validator with what is wrong in the document itself.
type eidSpec struct {
	v       validator.Validator
	docErrs []string
}

// eidContractOnce builds the validator once per test binary, as
// mobileContract does.
var eidContractOnce = sync.OnceValues(func() (c eidSpec, err error) {
	b, err := readRepoFile(docsDir, "eid-api.openapi.json")
	if err != nil {
		return c, err
	}
	doc, err := libopenapi.NewDocument(b)
	if err != nil {
		return c, err
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return c, fmt.Errorf("validator: %w", errors.Join(errs...))
	}
	c.v = v
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			c.docErrs = append(c.docErrs, e.Message+": "+e.Reason)
		}
	}
	return c, nil
})

// rawDevice is an eID app spoken to at the wire level: its own key, its own
// device tokens and approvals, every answer checked against the contract.
type rawDevice struct {
	t      *testing.T
	v      validator.Validator
	issuer string
	key    *ecdsa.PrivateKey
	id     string
}

type eidResp struct {
	status int
	header http.Header
	body   map[string]any
}

func (r eidResp) err() string { s, _ := r.body["error"].(string); return s }

// call sends a request (body as JSON unless nil) with the Authorization
// header auth, and checks the response against the contract.
func (d *rawDevice) call(method, path, auth string, body any) eidResp {
	d.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, d.issuer+path, rd)
	if err != nil {
		d.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(raw))
	// The validator matches paths against the document's server "/".
	vreq := req.Clone(context.Background())
	vreq.URL, _ = url.Parse(path)
	// A method the document does not list for a path (405) has no operation
	// to check against.
	if ok, errs := d.v.ValidateHttpResponse(vreq, resp); !ok && resp.StatusCode != http.StatusMethodNotAllowed {
		for _, e := range errs {
			d.t.Errorf("%s %s %d does not match docs/eid-api.openapi.json: %s: %s\n%s", method, path, resp.StatusCode, e.Message, e.Reason, raw)
		}
	}
	out := eidResp{status: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			d.t.Errorf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return out
}

func (d *rawDevice) must(want int, method, path, auth string, body any) eidResp {
	d.t.Helper()
	r := d.call(method, path, auth, body)
	if r.status != want {
		d.t.Fatalf("%s %s: %d %v, want %d", method, path, r.status, r.body, want)
	}
	return r
}

func (d *rawDevice) sign(typ string, claims jwt.Claims) string {
	d.t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["typ"] = typ
	tok.Header["kid"] = d.id
	s, err := tok.SignedString(d.key)
	if err != nil {
		d.t.Fatal(err)
	}
	return s
}

func (d *rawDevice) registered(lifetime time.Duration) jwt.RegisteredClaims {
	now := time.Now()
	return jwt.RegisteredClaims{Issuer: d.id, Audience: jwt.ClaimStrings{d.issuer}, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(lifetime)), ID: randomHex(12)}
}

// auth is a fresh device token's Authorization header.
func (d *rawDevice) auth() string {
	return eid.DeviceAuthScheme + " " + d.sign(eid.TypeDeviceToken, d.registered(time.Minute))
}

// approval answers view with the number its login page showed in the
// browser (the view itself holds only the three choices); mod, when given,
// changes the claims before signing.
func (d *rawDevice) approval(view map[string]any, decision string, share []string, mod ...func(*eid.ApprovalClaims)) map[string]any {
	id := view["request_id"].(string)
	c := eid.ApprovalClaims{RegisteredClaims: d.registered(time.Minute),
		RequestID: id, MatchNumber: pick(eid.Payload(d.issuer, id)), Decision: decision, Claims: share,
		ClientID: view["client_id"].(string), Purpose: view["purpose_code"].(string)}
	for _, m := range mod {
		m(&c)
	}
	return map[string]any{"approval": d.sign(eid.TypeApproval, c)}
}

// enrollRaw enrolls a new key for the citizen pid at level.
func enrollRaw(t *testing.T, e *testEnv, v validator.Validator, pid string, level idp.Level) *rawDevice {
	t.Helper()
	d := &rawDevice{t: t, v: v, issuer: e.issuer, key: newECKey(t)}
	code, _, err := e.m.EID.Activate(context.Background(), pid, level)
	if err != nil {
		t.Fatal(err)
	}
	jwk := jose.JSONWebKey{Key: &d.key.PublicKey}
	r := d.must(http.StatusCreated, http.MethodPost, "/eid/v1/enrollments", "",
		map[string]any{"personal_id": pid, "activation_code": code, "public_key": jwk, "device_name": "contract phone",
			"platform": "android", "model": "Contract 9"})
	d.id = r.body["device_id"].(string)
	if r.body["level"] != string(level) {
		t.Errorf("enrolled at %v, want %s", r.body["level"], level)
	}
	return d
}

// startLoginRequest starts a login in a new browser and returns its login
// request id, the browser and the page's status URL.
func startLoginRequest(t *testing.T, e *testEnv, clientID string, extra url.Values) (string, *browser, string) {
	t.Helper()
	a := newAuthRequest(e.issuer, clientID, "openid profile eid")
	b := newBrowser()
	payload, statusURL := b.loginPage(t, a.url+"&"+extra.Encode())
	_, id, err := eid.ParsePayload(payload)
	if err != nil {
		t.Fatal(err)
	}
	return id, b, statusURL
}

// Real responses of the eID API, successes and the error catalogue of
// docs/eid-app-protocol.md, match docs/eid-api.openapi.json.
func TestEIDAPI_Contract(t *testing.T) {
	v := eidContract(t)
	e := startMain(t)
	pid := demoCitizens[1].PersonalID
	d := &rawDevice{t: t, v: v, issuer: e.issuer, key: newECKey(t)}

	// Enrollment errors, then an enrollment.
	jwk := jose.JSONWebKey{Key: &d.key.PublicKey}
	if r := d.must(http.StatusBadRequest, http.MethodPost, "/eid/v1/enrollments", "",
		map[string]any{"personal_id": pid, "activation_code": "WRONG-CODE0", "public_key": jwk}); r.err() != "enrollment_failed" {
		t.Errorf("wrong code: %v", r.body)
	}
	if r := d.must(http.StatusBadRequest, http.MethodPost, "/eid/v1/enrollments", "", `{"personal_id": 1}`); r.err() != "invalid_request" {
		t.Errorf("bad body: %v", r.body)
	}
	if r := d.must(http.StatusBadRequest, http.MethodPost, "/eid/v1/enrollments", "",
		map[string]any{"personal_id": pid, "activation_code": "X", "public_key": jwk, "os": "android"}); r.err() != "invalid_request" {
		t.Errorf("unknown member: %v", r.body)
	}
	// What the app declares about itself is checked before the code: a
	// platform that is no lower-case token, or a model with control
	// characters, is refused like any malformed enrollment.
	for _, bad := range []map[string]any{{"platform": "Android!"}, {"platform": strings.Repeat("a", 17)}, {"model": "Pixel\u202e9"}, {"model": strings.Repeat("m", 65)}} {
		// Another personal id, so these count against its enrollment limit,
		// not the one this test enrolls under.
		body := map[string]any{"personal_id": "099999999999", "activation_code": "WRONG-CODE0", "public_key": jwk}
		for k, v := range bad {
			body[k] = v
		}
		if r := d.must(http.StatusBadRequest, http.MethodPost, "/eid/v1/enrollments", "", body); r.err() != "enrollment_failed" {
			t.Errorf("enrollment with %v: %v", bad, r.body)
		}
	}
	if r := d.must(http.StatusMethodNotAllowed, http.MethodGet, "/eid/v1/enrollments", "", nil); r.err() != "invalid_request" || r.header.Get("Allow") != "POST" {
		t.Errorf("GET enrollments: %v, Allow %q", r.body, r.header.Get("Allow"))
	}
	d = enrollRaw(t, e, v, pid, idp.LevelSubstantial)

	// Devices.
	r := d.must(http.StatusOK, http.MethodGet, "/eid/v1/devices", d.auth(), nil)
	if devs, _ := r.body["devices"].([]any); len(devs) != 1 || devs[0].(map[string]any)["current"] != true ||
		devs[0].(map[string]any)["platform"] != "android" || devs[0].(map[string]any)["model"] != "Contract 9" || devs[0].(map[string]any)["last_used_at"] != nil {
		t.Errorf("devices: %v", r.body)
	}

	// Device token errors: none, expired, replayed, too long-lived.
	if r := d.must(http.StatusUnauthorized, http.MethodGet, "/eid/v1/devices", "", nil); !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DeviceJWT") || strings.Contains(r.header.Get("WWW-Authenticate"), "error=") {
		t.Errorf("no token: WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	expired := d.registered(time.Minute)
	expired.IssuedAt = jwt.NewNumericDate(time.Now().Add(-5 * time.Minute))
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-4 * time.Minute))
	if r := d.must(http.StatusUnauthorized, http.MethodGet, "/eid/v1/devices", "DeviceJWT "+d.sign(eid.TypeDeviceToken, expired), nil); r.err() != "invalid_token" || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("expired: %v %q", r.body, r.header.Get("WWW-Authenticate"))
	}
	once := d.auth()
	d.must(http.StatusOK, http.MethodGet, "/eid/v1/devices", once, nil)
	d.must(http.StatusUnauthorized, http.MethodGet, "/eid/v1/devices", once, nil)
	d.must(http.StatusUnauthorized, http.MethodGet, "/eid/v1/devices", "DeviceJWT "+d.sign(eid.TypeDeviceToken, d.registered(10*time.Minute)), nil)

	// A login request: the view, a decision, a second decision.
	site, _ := e.client(ClientSpec{Scope: "openid profile eid"})
	id, b, statusURL := startLoginRequest(t, e, site, nil)
	d.must(http.StatusNotFound, http.MethodGet, "/eid/v1/login-requests/"+id+"x", d.auth(), nil)
	view := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+id, d.auth(), nil).body
	if view["request_id"] != id || view["client_id"] != site || view["purpose_code"] != "login" {
		t.Errorf("view: %v", view)
	}
	if ch, _ := view["match_choices"].([]any); len(ch) != 3 || view["match_number"] != nil || !slices.Contains(ch, any(pick(eid.Payload(e.issuer, id)))) {
		t.Errorf("view: match_choices %v, match_number %v; want the page's number among three, and not named", view["match_choices"], view["match_number"])
	}
	// An approval that leaves out the essential personal_id.
	if r := d.must(http.StatusBadRequest, http.MethodPost, "/eid/v1/login-requests/"+id+"/decision", d.auth(), d.approval(view, eid.DecisionApprove, []string{"name"})); r.err() != "invalid_request" {
		t.Errorf("incomplete approval: %v", r.body)
	}
	var all []string
	for _, c := range view["claims"].([]any) {
		all = append(all, c.(map[string]any)["name"].(string))
	}
	if r := d.must(http.StatusOK, http.MethodPost, "/eid/v1/login-requests/"+id+"/decision", d.auth(), d.approval(view, eid.DecisionApprove, all)); r.body["status"] != "approved" {
		t.Errorf("decision: %v", r.body)
	}
	if r := d.must(http.StatusConflict, http.MethodPost, "/eid/v1/login-requests/"+id+"/decision", d.auth(), d.approval(view, eid.DecisionDeny, nil)); r.err() != "already_decided" {
		t.Errorf("second decision: %v", r.body)
	}
	// Fetching an answered request still shows it until the browser
	// continues; then it is gone.
	d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+id, d.auth(), nil)
	st, next := b.status(t, statusURL)
	if st != "approved" || next == "" {
		t.Fatalf("browser status %q %q", st, next)
	}
	// Only the browser that started the login may continue it.
	if resp, err := newBrowser().Get(next); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("continue from another browser: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if loc := b.follow(t, next); loc.Query().Get("code") == "" {
		t.Errorf("continue: %s", loc)
	}
	d.must(http.StatusNotFound, http.MethodGet, "/eid/v1/login-requests/"+id, d.auth(), nil)

	// A request for level high, answered from a substantial device.
	high, _, _ := startLoginRequest(t, e, site, url.Values{"acr_values": {string(idp.LevelHigh)}})
	hv := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+high, d.auth(), nil).body
	if r := d.must(http.StatusForbidden, http.MethodPost, "/eid/v1/login-requests/"+high+"/decision", d.auth(), d.approval(hv, eid.DecisionApprove, all)); r.err() != "insufficient_level" {
		t.Errorf("low device, high request: %v", r.body)
	}
	// A wrong pick: a 200 denial with its reason, and no second try.
	wrong, _, _ := startLoginRequest(t, e, site, nil)
	wv := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+wrong, d.auth(), nil).body
	other := ""
	for _, c := range wv["match_choices"].([]any) {
		if c != pick(eid.Payload(e.issuer, wrong)) {
			other = c.(string)
		}
	}
	if r := d.must(http.StatusOK, http.MethodPost, "/eid/v1/login-requests/"+wrong+"/decision", d.auth(),
		d.approval(wv, eid.DecisionApprove, all, func(c *eid.ApprovalClaims) { c.MatchNumber = other })); r.body["status"] != "denied" || r.body["reason"] != eid.ReasonWrongMatch {
		t.Errorf("wrong pick: %v", r.body)
	}
	if r := d.must(http.StatusConflict, http.MethodPost, "/eid/v1/login-requests/"+wrong+"/decision", d.auth(), d.approval(wv, eid.DecisionApprove, all)); r.err() != "already_decided" {
		t.Errorf("the right pick after a wrong one: %v", r.body)
	}
	// A same-device approval: no pick, a return URL.
	same, sb, _ := startLoginRequest(t, e, site, nil)
	sv := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+same, d.auth(), nil).body
	r = d.must(http.StatusOK, http.MethodPost, "/eid/v1/login-requests/"+same+"/decision", d.auth(),
		d.approval(sv, eid.DecisionApprove, all, func(c *eid.ApprovalClaims) { c.MatchNumber, c.Mode = "", eid.ModeSameDevice }))
	ret, _ := r.body["return_url"].(string)
	if r.body["status"] != "approved" || !strings.HasPrefix(ret, e.issuer+"/login/continue?id="+same+"&code=") {
		t.Errorf("same-device decision: %v", r.body)
	} else if loc := sb.follow(t, ret); loc.Query().Get("code") == "" {
		t.Errorf("return URL in the starting browser went to %s", loc)
	}
	// A denial.
	deny, _, _ := startLoginRequest(t, e, site, nil)
	dv := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+deny, d.auth(), nil).body
	if r := d.must(http.StatusOK, http.MethodPost, "/eid/v1/login-requests/"+deny+"/decision", d.auth(), d.approval(dv, eid.DecisionDeny, nil)); r.body["status"] != "denied" {
		t.Errorf("deny: %v", r.body)
	}

	// Revocation: a device enrolled higher cannot be revoked from this one;
	// a second phone can, and its tokens fail from then on.
	strong := enrollRaw(t, e, v, pid, idp.LevelHigh)
	if r := d.must(http.StatusForbidden, http.MethodDelete, "/eid/v1/devices/"+strong.id, d.auth(), nil); r.err() != "insufficient_level" {
		t.Errorf("revoke a stronger device: %v", r.body)
	}
	lost := enrollRaw(t, e, v, pid, idp.LevelSubstantial)
	d.must(http.StatusNoContent, http.MethodDelete, "/eid/v1/devices/"+lost.id, d.auth(), nil)
	lost.must(http.StatusUnauthorized, http.MethodGet, "/eid/v1/devices", lost.auth(), nil)
	r = d.must(http.StatusOK, http.MethodGet, "/eid/v1/devices", d.auth(), nil)
	revoked := 0
	for _, x := range r.body["devices"].([]any) {
		if x.(map[string]any)["revoked_at"] != nil {
			revoked++
		}
	}
	if revoked != 1 {
		t.Errorf("devices after a revocation: %v", r.body)
	}
	// Revoking it again is no error; another citizen's device is not found.
	d.must(http.StatusNoContent, http.MethodDelete, "/eid/v1/devices/"+lost.id, d.auth(), nil)
	if r := d.must(http.StatusNotFound, http.MethodDelete, "/eid/v1/devices/"+e.app.Enrollment().DeviceID, d.auth(), nil); r.err() != "not_found" {
		t.Errorf("another citizen's device: %v", r.body)
	}
	// A device may revoke itself.
	self := enrollRaw(t, e, v, pid, idp.LevelSubstantial)
	self.must(http.StatusNoContent, http.MethodDelete, "/eid/v1/devices/"+self.id, self.auth(), nil)
	self.must(http.StatusUnauthorized, http.MethodGet, "/eid/v1/devices", self.auth(), nil)

	// The per-device rate limit, counted per wall-clock minute: not across
	// a minute's end (seen failing at 01:35:59).
	awayFromMinuteEnd(t)
	var last eidResp
	for range 61 {
		if last = strong.call(http.MethodGet, "/eid/v1/devices", strong.auth(), nil); last.status == http.StatusTooManyRequests {
			break
		}
	}
	if last.status != http.StatusTooManyRequests || last.err() != "slow_down" || last.header.Get("Retry-After") == "" {
		t.Errorf("61 requests a minute from one device: %d %v, Retry-After %q", last.status, last.body, last.header.Get("Retry-After"))
	}
}

// With the ephemeral store gone, the eID API answers 503 with Retry-After,
// as documented, and recovers.
func TestEIDAPI_ContractOutage(t *testing.T) {
	v := eidContract(t)
	var proxy *tcpProxy
	e := startMain(t, scaleOption(t), func(c *Config) { proxy, c.RedisURL = proxied(t, c.RedisURL) })
	d := enrollRaw(t, e, v, demoCitizens[1].PersonalID, idp.LevelHigh)
	proxy.set(proxyReset)
	r := d.must(http.StatusServiceUnavailable, http.MethodGet, "/eid/v1/devices", d.auth(), nil)
	if r.err() != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
		t.Errorf("outage: %v, Retry-After %q", r.body, r.header.Get("Retry-After"))
	}
	proxy.set(proxyUp)
	d.must(http.StatusOK, http.MethodGet, "/eid/v1/devices", d.auth(), nil)
}
