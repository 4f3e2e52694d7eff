package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/mobileapi"
)

// contract validates responses against the mobile API's OpenAPI document.
func contract(t testing.TB) validator.Validator {
	t.Helper()
	if _, bench := t.(*testing.B); bench {
		// Benchmarks measure the server as deployed: the validator's parsed
		// document (about 20 MB of pointers) would sit in the same heap and
		// be marked by every GC cycle of the server under load.
		return nil
	}
	v, err := mobileContract()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mobileContract is built once per test binary: NewValidator compiles every
// schema of the document, seconds under the race detector, and the
// validator is safe for concurrent use.
var mobileContract = sync.OnceValues(func() (validator.Validator, error) {
	doc, err := libopenapi.NewDocument(mobileapi.OpenAPI)
	if err != nil {
		return nil, err
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return nil, fmt.Errorf("validator: %w", errors.Join(errs...))
	}
	return v, nil
})

// The mobile API on its own listener: the eID app's tokens minted for the
// API's audience alone, and no other token, reach the citizen routes; every
// response matches the contract.
func TestMobileAPI_Me(t *testing.T) {
	e := startMain(t)
	v := contract(t)
	base := "http://" + e.m.APIAddr
	if _, port, _ := strings.Cut(e.m.APIAddr, ":"); e.m.APIURL != "http://localhost:"+port {
		t.Errorf("API audience %q, want http://localhost:%s (from the bound --api-addr)", e.m.APIURL, port)
	}
	call := func(t *testing.T, path, token string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		authorize(t, req, token) // the eID app's tokens with a DPoP proof
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.HasPrefix(path, "/v1/") && path != "/v1/no-such-route" { // the one path the contract lacks
			resp.Body = io.NopCloser(bytes.NewReader(body))
			if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
				for _, e := range errs {
					t.Errorf("GET %s %d does not match the contract: %s: %s", path, resp.StatusCode, e.Message, e.Reason)
				}
			}
		}
		return resp, body
	}
	wantStatus := func(t *testing.T, what string, resp *http.Response, body []byte, status int) {
		t.Helper()
		if resp.StatusCode != status {
			t.Errorf("%s: %d %s, want %d", what, resp.StatusCode, body, status)
		}
		if status >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: Content-Type %q, want application/problem+json", what, resp.Header.Get("Content-Type"))
		}
	}
	appToken := func(t *testing.T, resources ...string) string {
		t.Helper()
		form := grantForm(deviceAssertion(t, e.app, e.issuer+"/token", nil))
		form["resource"] = resources
		a := postGrant(t, e.issuer, form, appKey(t, e.app))
		tok, _ := a.body["access_token"].(string)
		if tok == "" {
			t.Fatalf("the app's grant: %v", a.body)
		}
		return tok
	}

	resp, body := call(t, "/v1/openapi.json", "")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, mobileapi.OpenAPI) {
		t.Errorf("openapi.json: %d, %d bytes", resp.StatusCode, len(body))
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, body := call(t, p, ""); resp.StatusCode != http.StatusNoContent {
			t.Errorf("%s: %d %s", p, resp.StatusCode, body)
		}
	}

	tok := appToken(t, e.m.APIURL)
	resp, body = call(t, "/v1/me", tok)
	wantStatus(t, "me", resp, body, http.StatusOK)
	if !strings.Contains(string(body), `"personal_id":"`+demoCitizens[0].PersonalID+`"`) {
		t.Errorf("me: %s", body)
	}
	if etag := resp.Header.Get("ETag"); etag == "" {
		t.Error("me: no ETag")
	} else if resp, body := call(t, "/v1/me", tok, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("me with If-None-Match: %d %s, want 304", resp.StatusCode, body)
	}
	resp, body = call(t, "/v1/no-such-route", tok)
	wantStatus(t, "unknown route", resp, body, http.StatusNotFound)

	t.Run("any other token is refused", func(t *testing.T) {
		resp, body := call(t, "/v1/me", "")
		wantStatus(t, "no token", resp, body, http.StatusUnauthorized)
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		resp, body = call(t, "/v1/me", appToken(t))
		wantStatus(t, "the app's token for userinfo", resp, body, http.StatusUnauthorized)
		resp, body = call(t, "/v1/me", appToken(t, e.m.APIURL, e.issuer+"/userinfo"))
		wantStatus(t, "the app's token for the API and userinfo", resp, body, http.StatusUnauthorized)

		// An agency's citizen token, even one minted for the API, would
		// release what the agency's registration does not allow.
		id, secret := e.client(ClientSpec{Scope: "openid"})
		r := e.rp(id, secret, "openid")
		u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("resource", e.m.APIURL))
		agency, _ := e.exchange(r, e.login(newBrowser(), u, e.app, nil), state, nonce, verifier)
		if aud := audOf(t, agency.AccessToken); len(aud) != 1 || aud[0] != e.m.APIURL {
			t.Fatalf("agency token aud %v", aud)
		}
		resp, body = call(t, "/v1/me", agency.AccessToken)
		wantStatus(t, "an agency's citizen token for the API", resp, body, http.StatusUnauthorized)

		ccID, ccSecret := e.client(ClientSpec{Scope: "registry.read", GrantTypes: []string{"client_credentials"}})
		status, raw := tokenBasic(t, e.issuer, ccID, ccSecret, url.Values{"grant_type": {"client_credentials"}, "resource": {e.m.APIURL}})
		var cc struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal([]byte(raw), &cc); status != http.StatusOK || err != nil {
			t.Fatalf("client_credentials: %d %s", status, raw)
		}
		resp, body = call(t, "/v1/me", cc.AccessToken)
		wantStatus(t, "a client's own token", resp, body, http.StatusUnauthorized)
	})

	t.Run("a revoked device's token is refused", func(t *testing.T) {
		second := e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
		if err := second.RevokeDevice(context.Background(), e.app.Enrollment().DeviceID); err != nil {
			t.Fatal(err)
		}
		// The API rechecks a token's revocation at most a second apart.
		deadline := time.Now().Add(1500 * time.Millisecond)
		resp, body := call(t, "/v1/me", tok)
		for resp.StatusCode == http.StatusOK && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			resp, body = call(t, "/v1/me", tok)
		}
		wantStatus(t, "revoked device", resp, body, http.StatusUnauthorized)
	})
}

// Closing right after Run must not hang: fasthttp's shutdown ignores a
// listener it has not started serving yet.
func TestMobileAPI_CloseRightAfterRun(t *testing.T) {
	for range 20 {
		m := NewMain()
		m.Config.IDPAddr, m.Config.APIAddr, m.Config.Issuer = "127.0.0.1:0", "127.0.0.1:0", ""
		m.Config.DataDir = t.TempDir()
		m.Config.ShutdownDelay = 0
		if err := m.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- m.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("close: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Close right after Run did not return")
		}
		if c, err := net.Dial("tcp", m.APIAddr); err == nil {
			c.Close()
			t.Fatal("the API still accepts connections after Close")
		}
	}
}
