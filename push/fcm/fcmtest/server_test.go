package fcmtest_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/onedoor/onedoor/push/fcm/fcmtest"
)

const scope = "https://www.googleapis.com/auth/firebase.messaging"

type serviceAccount struct {
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

func account(t *testing.T, srv *fcmtest.Server) serviceAccount {
	t.Helper()
	var sa serviceAccount
	if err := json.Unmarshal(srv.Credentials(), &sa); err != nil {
		t.Fatal(err)
	}
	return sa
}

// accessToken runs the assertion flow with x/oauth2/jwt, as a real client.
func accessToken(t *testing.T, srv *fcmtest.Server) string {
	t.Helper()
	sa := account(t, srv)
	conf := &jwt.Config{
		Email: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), PrivateKeyID: sa.PrivateKeyID,
		Scopes: []string{scope}, TokenURL: sa.TokenURI,
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
	tok, err := conf.TokenSource(ctx).Token()
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	return tok.AccessToken
}

func TestServer_Credentials(t *testing.T) {
	srv := fcmtest.NewServer(t)
	var m map[string]string
	if err := json.Unmarshal(srv.Credentials(), &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "service_account" || m["project_id"] != srv.ProjectID() ||
		m["client_email"] != srv.ClientEmail() || m["token_uri"] != srv.URL()+"/token" {
		t.Errorf("credentials = %v", m)
	}
	block, _ := pem.Decode([]byte(m["private_key"]))
	if block == nil {
		t.Fatal("private_key is not PEM")
	}
	if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		t.Errorf("private_key is not PKCS#8: %v", err)
	}
}

// signed builds an assertion with the server's key and the given claims.
func signed(t *testing.T, srv *fcmtest.Server, method gojwt.SigningMethod, kid string, claims gojwt.MapClaims) string {
	t.Helper()
	sa := account(t, srv)
	block, _ := pem.Decode([]byte(sa.PrivateKey))
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tok := gojwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kid
	signKey := any(key)
	if method == gojwt.SigningMethodHS256 {
		signKey = []byte("shared")
	}
	s, err := tok.SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func postForm(t *testing.T, srv *fcmtest.Server, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := srv.Client().PostForm(srv.URL()+"/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestServer_TokenEndpoint(t *testing.T) {
	srv := fcmtest.NewServer(t)
	sa := account(t, srv)
	now := time.Now()
	good := func() gojwt.MapClaims {
		return gojwt.MapClaims{
			"iss": sa.ClientEmail, "aud": sa.TokenURI, "scope": scope,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}
	}
	with := func(k string, v any) gojwt.MapClaims {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name      string
		grant     string
		assertion string
		wantError string // "" for success
	}{
		{"valid", "", signed(t, srv, gojwt.SigningMethodRS256, sa.PrivateKeyID, good()), ""},
		{"valid with cloud-platform scope", "", signed(t, srv, gojwt.SigningMethodRS256, "",
			with("scope", "https://www.googleapis.com/auth/cloud-platform")), ""},
		{"wrong grant type", "client_credentials", signed(t, srv, gojwt.SigningMethodRS256, "", good()), "unsupported_grant_type"},
		{"no assertion", "", "", "invalid_request"},
		{"garbage", "", "a.b.c", "invalid_grant"},
		{"HS256", "", signed(t, srv, gojwt.SigningMethodHS256, "", good()), "invalid_grant"},
		{"RS384", "", signed(t, srv, gojwt.SigningMethodRS384, "", good()), "invalid_grant"},
		{"unknown kid", "", signed(t, srv, gojwt.SigningMethodRS256, "other", good()), "invalid_grant"},
		{"wrong issuer", "", signed(t, srv, gojwt.SigningMethodRS256, "", with("iss", "x@y.iam.gserviceaccount.com")), "invalid_grant"},
		{"wrong audience", "", signed(t, srv, gojwt.SigningMethodRS256, "", with("aud", "https://oauth2.googleapis.com/token")), "invalid_grant"},
		{"no scope", "", signed(t, srv, gojwt.SigningMethodRS256, "", with("scope", nil)), "invalid_scope"},
		{"other scope", "", signed(t, srv, gojwt.SigningMethodRS256, "", with("scope", "https://www.googleapis.com/auth/userinfo.email")), "invalid_scope"},
		{"no iat", "", signed(t, srv, gojwt.SigningMethodRS256, "", with("iat", nil)), "invalid_grant"},
		{"no exp", "", signed(t, srv, gojwt.SigningMethodRS256, "", with("exp", nil)), "invalid_grant"},
		{"longer than an hour", "", signed(t, srv, gojwt.SigningMethodRS256, "", with("exp", now.Add(2*time.Hour).Unix())), "invalid_grant"},
		{"expired", "", signed(t, srv, gojwt.SigningMethodRS256, "", gojwt.MapClaims{
			"iss": sa.ClientEmail, "aud": sa.TokenURI, "scope": scope,
			"iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(-time.Hour).Unix(),
		}), "invalid_grant"},
		{"issued in the future", "", signed(t, srv, gojwt.SigningMethodRS256, "", gojwt.MapClaims{
			"iss": sa.ClientEmail, "aud": sa.TokenURI, "scope": scope,
			"iat": now.Add(time.Hour).Unix(), "exp": now.Add(90 * time.Minute).Unix(),
		}), "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			grant := tt.grant
			if grant == "" {
				grant = "urn:ietf:params:oauth:grant-type:jwt-bearer"
			}
			status, body := postForm(t, srv, url.Values{"grant_type": {grant}, "assertion": {tt.assertion}})
			if tt.wantError == "" {
				tok, _ := body["access_token"].(string)
				if status != 200 || tok == "" || body["token_type"] != "Bearer" || body["expires_in"] != 3599.0 {
					t.Errorf("got %d %v, want 200 with a Bearer token for 3599s", status, body)
				}
				return
			}
			if status != 400 || body["error"] != tt.wantError {
				t.Errorf("got %d %v, want 400 error %q", status, body, tt.wantError)
			}
		})
	}
	if got, want := srv.TokenCalls(), len(tests); got != want {
		t.Errorf("TokenCalls() = %d, want %d", got, want)
	}
}

type rpcError struct {
	Error struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Status  string         `json:"status"`
		Details []rpcErrDetail `json:"details"`
	} `json:"error"`
}

type rpcErrDetail struct {
	Type            string `json:"@type"`
	ErrorCode       string `json:"errorCode"`
	FieldViolations []struct {
		Field string `json:"field"`
	} `json:"fieldViolations"`
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) rpc(t *testing.T) rpcError {
	t.Helper()
	var e rpcError
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("answer %d is not a google.rpc.Status: %s", a.status, a.body)
	}
	if e.Error.Code != a.status {
		t.Errorf("error.code = %d, HTTP status %d", e.Error.Code, a.status)
	}
	return e
}

func send(t *testing.T, srv *fcmtest.Server, bearer, project, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL()+"/v1/projects/"+project+"/messages:send", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

const okBody = `{"message":{"token":"tok","notification":{"title":"T","body":"B"},"data":{"k":"v"},` +
	`"android":{"priority":"HIGH","collapse_key":"c","ttl":"60s"},"apns":{"headers":{"apns-priority":"10"}}}}`

func TestServer_SendAuthentication(t *testing.T) {
	srv := fcmtest.NewServer(t)
	tok := accessToken(t, srv)

	for _, bearer := range []string{"", "ya29.unknown"} {
		a := send(t, srv, bearer, srv.ProjectID(), okBody)
		if a.status != 401 || a.rpc(t).Error.Status != "UNAUTHENTICATED" ||
			!strings.Contains(a.header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("bearer %q: got %d %s %v, want 401 UNAUTHENTICATED", bearer, a.status, a.body, a.header)
		}
	}
	if a := send(t, srv, tok, "other-project", okBody); a.status != 403 || a.rpc(t).Error.Status != "PERMISSION_DENIED" {
		t.Errorf("other project: got %d %s, want 403 PERMISSION_DENIED", a.status, a.body)
	}
	if a := send(t, srv, tok, srv.ProjectID(), okBody); a.status != 200 {
		t.Fatalf("valid send: got %d %s", a.status, a.body)
	}
	srv.ExpireTokens()
	if a := send(t, srv, tok, srv.ProjectID(), okBody); a.status != 401 {
		t.Errorf("expired token: got %d %s, want 401", a.status, a.body)
	}
	if got := srv.MessageCount(); got != 1 {
		t.Errorf("MessageCount() = %d, want 1", got)
	}
}

func TestServer_SendShortLivedToken(t *testing.T) {
	srv := fcmtest.NewServer(t)
	srv.SetTokenLifetime(time.Second)
	sa := account(t, srv)
	conf := &jwt.Config{Email: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), Scopes: []string{scope}, TokenURL: sa.TokenURI}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
	tok, err := conf.TokenSource(ctx).Token()
	if err != nil {
		t.Fatal(err)
	}
	if tok.Expiry.After(time.Now().Add(time.Second)) {
		t.Errorf("token expires at %v, want within a second", tok.Expiry)
	}
}

func TestServer_SendRecords(t *testing.T) {
	srv := fcmtest.NewServer(t)
	tok := accessToken(t, srv)
	camel := `{"message":{"token":"tok2","android":{"collapseKey":"c2","priority":"normal"},` +
		`"fcmOptions":{"analyticsLabel":"x"},"webpush":{"headers":{}}},"validateOnly":false}`
	for _, body := range []string{okBody, camel, `{"message":{"token":"tok3"},"validate_only":true}`} {
		if a := send(t, srv, tok, srv.ProjectID(), body); a.status != 200 || !strings.Contains(string(a.body), `"name":"projects/`+srv.ProjectID()+`/messages/`) {
			t.Fatalf("send %s: got %d %s", body, a.status, a.body)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != 2 {
		t.Fatalf("recorded %d messages, want 2 (validate_only is not sent)", len(msgs))
	}
	m := msgs[0]
	if m.Token != "tok" || m.Title != "T" || m.Body != "B" || m.Data["k"] != "v" || m.Priority != "HIGH" ||
		m.CollapseKey != "c" || m.TTL != "60s" || m.APNsHeaders["apns-priority"] != "10" {
		t.Errorf("recorded %+v", m)
	}
	if m := msgs[1]; m.Token != "tok2" || m.CollapseKey != "c2" || m.Priority != "NORMAL" {
		t.Errorf("camelCase message recorded as %+v", m)
	}
	msgs[0].Data["k"] = "changed"
	if srv.Messages()[0].Data["k"] != "v" {
		t.Error("Messages() shares its maps with the server")
	}
}

func TestServer_SendValidation(t *testing.T) {
	srv := fcmtest.NewServer(t)
	tok := accessToken(t, srv)
	big := strings.Repeat("x", 4100)
	tests := []struct {
		name, body string
		wantField  string // BadRequest field violation; "" for an FcmError INVALID_ARGUMENT
	}{
		{"not JSON", `{`, ""},
		{"unknown top-level field", `{"message":{"token":"t"},"dry_run":true}`, ""},
		{"unknown message field", `{"message":{"token":"t","priority":"high"}}`, "message"},
		{"unknown android field", `{"message":{"token":"t","android":{"time_to_live":60}}}`, "message.android"},
		{"unknown notification field", `{"message":{"token":"t","notification":{"title":"a","sound":"x"}}}`, "message.notification"},
		{"unknown apns field", `{"message":{"token":"t","apns":{"headers":{},"priority":10}}}`, "message.apns"},
		{"field under both names", `{"message":{"token":"t","android":{"collapse_key":"a","collapseKey":"b"}}}`, "message.android"},
		{"field name in the wrong case", `{"message":{"Token":"t"}}`, "message"},
		{"duplicate field", `{"message":{"token":"t","token":"u"}}`, ""},
		{"validate_only under both names", `{"message":{"token":"t"},"validate_only":true,"validateOnly":true}`, ""},
		{"invalid UTF-8", "{\"message\":{\"token\":\"t\xff\"}}", ""},
		{"webpush not an object", `{"message":{"token":"t","webpush":[]}}`, "message.webpush"},
		{"non-string data", `{"message":{"token":"t","data":{"n":1}}}`, "message.data"},
		{"non-string token", `{"message":{"token":7}}`, "message.token"},
		{"bad priority", `{"message":{"token":"t","android":{"priority":"urgent"}}}`, "message.android.priority"},
		{"bad ttl", `{"message":{"token":"t","android":{"ttl":"60"}}}`, "message.android.ttl"},
		{"ttl over four weeks", `{"message":{"token":"t","android":{"ttl":"2419201s"}}}`, ""},
		{"no message", `{}`, ""},
		{"no target", `{"message":{"data":{"a":"b"}}}`, ""},
		{"two targets", `{"message":{"token":"t","topic":"news"}}`, ""},
		{"reserved data key", `{"message":{"token":"t","data":{"google.x":"y"}}}`, ""},
		{"too big", `{"message":{"token":"t","data":{"a":"` + big + `"}}}`, ""},
		{"bad apns-priority", `{"message":{"token":"t","apns":{"headers":{"apns-priority":"7"}}}}`, ""},
		{"bad apns-expiration", `{"message":{"token":"t","apns":{"headers":{"apns-expiration":"soon"}}}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := send(t, srv, tok, srv.ProjectID(), tt.body)
			if a.status != 400 {
				t.Fatalf("got %d %s, want 400", a.status, a.body)
			}
			e := a.rpc(t)
			if e.Error.Status != "INVALID_ARGUMENT" {
				t.Errorf("status = %q, want INVALID_ARGUMENT", e.Error.Status)
			}
			if tt.wantField == "" {
				return
			}
			if len(e.Error.Details) != 1 || !strings.HasSuffix(e.Error.Details[0].Type, "google.rpc.BadRequest") ||
				len(e.Error.Details[0].FieldViolations) != 1 || e.Error.Details[0].FieldViolations[0].Field != tt.wantField {
				t.Errorf("details = %+v, want a BadRequest on %q", e.Error.Details, tt.wantField)
			}
		})
	}
	if got := srv.MessageCount(); got != 0 {
		t.Errorf("recorded %d invalid messages", got)
	}
}

func TestServer_SendScripted(t *testing.T) {
	srv := fcmtest.NewServer(t)
	tok := accessToken(t, srv)
	srv.Unregister("gone")
	srv.FailNext(1, fcmtest.Failure{HTTPStatus: 429, ErrorCode: "QUOTA_EXCEEDED", RetryAfter: "30"})
	srv.FailNext(1, fcmtest.Failure{HTTPStatus: 503})

	a := send(t, srv, tok, srv.ProjectID(), okBody)
	e := a.rpc(t)
	if a.status != 429 || a.header.Get("Retry-After") != "30" || e.Error.Status != "RESOURCE_EXHAUSTED" ||
		len(e.Error.Details) != 1 || e.Error.Details[0].ErrorCode != "QUOTA_EXCEEDED" {
		t.Errorf("first send: %d %v %s, want 429 QUOTA_EXCEEDED with Retry-After 30", a.status, a.header, a.body)
	}
	a = send(t, srv, tok, srv.ProjectID(), okBody)
	if e := a.rpc(t); a.status != 503 || e.Error.Status != "UNAVAILABLE" || len(e.Error.Details) != 0 {
		t.Errorf("second send: %d %s, want 503 UNAVAILABLE", a.status, a.body)
	}
	a = send(t, srv, tok, srv.ProjectID(), strings.Replace(okBody, `"tok"`, `"gone"`, 1))
	e = a.rpc(t)
	if a.status != 404 || e.Error.Status != "NOT_FOUND" || len(e.Error.Details) != 1 ||
		e.Error.Details[0].Type != "type.googleapis.com/google.firebase.fcm.v1.FcmError" || e.Error.Details[0].ErrorCode != "UNREGISTERED" {
		t.Errorf("unregistered: %d %s, want 404 UNREGISTERED", a.status, a.body)
	}
	if a := send(t, srv, tok, srv.ProjectID(), okBody); a.status != 200 {
		t.Errorf("after the script: %d %s", a.status, a.body)
	}
}

func TestServer_UnknownPath(t *testing.T) {
	srv := fcmtest.NewServer(t)
	resp, err := srv.Client().Get(srv.URL() + "/v1/projects/" + srv.ProjectID() + "/messages:send")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("GET messages:send: %d %s, want a plain 404", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// A slow FCM records a send on receipt: a client that gives up before the
// answer has had its message delivered all the same.
func TestServer_SendDelay(t *testing.T) {
	srv := fcmtest.NewServer(t)
	tok := accessToken(t, srv)
	srv.SetDelay(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL()+"/v1/projects/"+srv.ProjectID()+"/messages:send", strings.NewReader(okBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for srv.MessageCount() == 0 {
		select {
		case err := <-done:
			t.Fatalf("the send answered before the delay: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err == nil {
		t.Error("the send answered within the hour's delay")
	}
	srv.SetDelay(0)
	if a := send(t, srv, tok, srv.ProjectID(), okBody); a.status != 200 {
		t.Errorf("without the delay: %d %s", a.status, a.body)
	}
	if got := srv.MessageCount(); got != 2 {
		t.Errorf("MessageCount() = %d, want 2 (the abandoned send was delivered)", got)
	}
}
