package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/mobileapi/fiberapi"
)

// apiEnv is an IdP, the mobile API and an echoing resource server, with an
// enrolled eidsim home.
type apiEnv struct {
	*idpEnv
	home string
	api  string // the mobile API (fiberapi), serving GET /v1/me
	echo string // a resource server that verifies the token and echoes the request
}

// echoed is what the echoing resource server saw.
type echoed struct {
	Method      string              `json:"method"`
	Path        string              `json:"path"`
	ContentType []string            `json:"content_type"`
	Headers     map[string][]string `json:"headers"` // X-* headers
	Body        []byte              `json:"body"`
	Subject     string              `json:"sub"`
}

func startAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiURL := "http://" + ln.Addr().String()
	var verify func(ctx context.Context, tok string) (*accesstoken.Claims, error)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The app sends its device-bound token with a DPoP proof.
		scheme, tok := dpop.Authorization(r.Header.Get("Authorization"))
		ok := scheme == "DPoP" && r.Header.Get("DPoP") != ""
		c, err := verify(r.Context(), tok)
		if !ok || err != nil {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"status":401}`)
			return
		}
		body, _ := io.ReadAll(r.Body)
		e := echoed{Method: r.Method, Path: r.URL.RequestURI(), ContentType: r.Header.Values("Content-Type"), Headers: map[string][]string{}, Body: body, Subject: c.Subject}
		for k, v := range r.Header {
			if strings.HasPrefix(k, "X-") {
				e.Headers[k] = v
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", "yes")
		_ = json.NewEncoder(w).Encode(e)
	}))
	t.Cleanup(echo.Close)

	p := startIDPFor(t, apiURL, echo.URL)
	verify = func(ctx context.Context, tok string) (*accesstoken.Claims, error) {
		return p.provider.Verifier.VerifyFor(ctx, tok, accesstoken.Expect{Audience: echo.URL, Kind: accesstoken.KindCitizen})
	}
	srv := fiberapi.New(fiberapi.Config{APIURL: apiURL, Verifier: p.provider.Verifier, Citizens: p.store, DPoP: dpop.New(dpop.Config{}, p.store),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	code, _, err := p.svc.Activate(context.Background(), "001099012345", idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	var out, errOut bytes.Buffer
	if c := run(context.Background(), []string{"enroll", "--home", home, "--idp", p.issuer, "--personal-id", "001099012345", "--activation-code", code}, &out, &errOut); c != 0 {
		t.Fatalf("enroll: exit %d: %s", c, errOut.String())
	}
	return &apiEnv{idpEnv: p, home: home, api: apiURL, echo: echo.URL}
}

// eidsim runs eidsim api against the env's home.
func (e *apiEnv) eidsim(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"api", "--home", e.home}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// cached reads api-tokens.json.
func (e *apiEnv) cached(t *testing.T) map[string]*eidapp.APIToken {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.home, eidapp.APITokensFile)) //nolint:gosec // the test's own temporary directory
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*eidapp.APIToken{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *apiEnv) setCached(t *testing.T, api string, tok *eidapp.APIToken) {
	t.Helper()
	m := e.cached(t)
	m[api] = tok
	b, _ := json.Marshal(m) //nolint:gosec // a test's token cache
	if err := os.WriteFile(filepath.Join(e.home, eidapp.APITokensFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRun_API: eidsim api calls the mobile API with a token minted for it
// by the device key, cached in the home until it expires.
func TestRun_API(t *testing.T) {
	e := startAPIEnv(t)

	code, out, errs := e.eidsim(t, "--api", e.api+"/", "GET", "/v1/me")
	if code != 0 || !strings.Contains(out, `"personal_id":"001099012345"`) {
		t.Fatalf("GET /v1/me: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if e.grants.Load() != 1 {
		t.Errorf("%d token requests, want 1", e.grants.Load())
	}
	fi, err := os.Stat(filepath.Join(e.home, eidapp.APITokensFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v, %v; want mode 0600", eidapp.APITokensFile, fi, err)
	}
	first := e.cached(t)[e.api]
	if first == nil || first.ExpiresAt.Before(time.Now()) {
		t.Fatalf("cached token for %s: %+v", e.api, first)
	}

	t.Run("--include, flags after the arguments, the cached token", func(t *testing.T) {
		code, out, errs := e.eidsim(t, "GET", "/v1/me", "--include", "--api", e.api)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		head, body, ok := strings.Cut(out, "\n\n")
		if !ok || !strings.HasPrefix(head, "HTTP/1.1 200 OK\n") || !strings.Contains(head, "\nContent-Type: application/json") || !strings.Contains(head, "\nEtag: ") {
			t.Errorf("head %q", head)
		}
		if !strings.HasPrefix(body, "{") || !strings.Contains(body, `"personal_id"`) {
			t.Errorf("body %q", body)
		}
		if e.grants.Load() != 1 {
			t.Errorf("the cached token was not used: %d token requests", e.grants.Load())
		}
	})

	t.Run("a non-2xx answer exits 1 after printing it", func(t *testing.T) {
		code, out, errs := e.eidsim(t, "--api", e.api, "GET", "/v1/no-such-route")
		if code != 1 || !strings.Contains(out, `"status":404`) || !strings.Contains(errs, "GET /v1/no-such-route: 404 Not Found") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if strings.Contains(errs, "usage:") {
			t.Error("a failed call printed the usage")
		}
	})

	t.Run("an expired token is replaced", func(t *testing.T) {
		before := e.grants.Load()
		old := *e.cached(t)[e.api]
		old.ExpiresAt = time.Now().Add(-time.Minute)
		e.setCached(t, e.api, &old)
		if code, out, errs := e.eidsim(t, "--api", e.api, "GET", "/v1/me"); code != 0 {
			t.Fatalf("exit %d: %s %s", code, out, errs)
		}
		now := e.cached(t)[e.api]
		if e.grants.Load() != before+1 || now.AccessToken == old.AccessToken || !now.ExpiresAt.After(time.Now()) {
			t.Errorf("after expiry: %d new token requests, token replaced %v, expires %v", e.grants.Load()-before, now.AccessToken != old.AccessToken, now.ExpiresAt)
		}
		// About to expire counts as expired.
		old = *now
		old.ExpiresAt = time.Now().Add(10 * time.Second)
		e.setCached(t, e.api, &old)
		if code, _, errs := e.eidsim(t, "--api", e.api, "GET", "/v1/me"); code != 0 || e.grants.Load() != before+2 {
			t.Errorf("a token 10 s from expiry was used: exit %d, %d token requests: %s", code, e.grants.Load()-before, errs)
		}
	})

	t.Run("EIDSIM_API is the default API", func(t *testing.T) {
		t.Setenv("EIDSIM_API", e.api)
		if code, out, errs := e.eidsim(t, "GET", "/v1/me"); code != 0 || !strings.Contains(out, `"personal_id"`) {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})

	t.Run("bodies and headers", func(t *testing.T) {
		call := func(t *testing.T, args ...string) echoed {
			t.Helper()
			code, out, errs := e.eidsim(t, append([]string{"--api", e.echo}, args...)...)
			var got echoed
			if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
				t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
			}
			if got.Subject != "c-1" {
				t.Errorf("token subject %q, want c-1", got.Subject)
			}
			return got
		}
		got := call(t, "post", "/v1/things?x=1", `{"a":1}`)
		if got.Method != "POST" || got.Path != "/v1/things?x=1" || strings.Join(got.ContentType, ",") != "application/json" || string(got.Body) != `{"a":1}` {
			t.Errorf("POST inline: %+v", got)
		}
		got = call(t, "PATCH", "/v1/things/1", `{"a":null}`)
		if strings.Join(got.ContentType, ",") != "application/merge-patch+json" || string(got.Body) != `{"a":null}` {
			t.Errorf("PATCH: %+v", got)
		}
		got = call(t, "GET", "/v1/things")
		if len(got.ContentType) != 0 || len(got.Body) != 0 {
			t.Errorf("GET without a body: %+v", got)
		}

		// A multipart upload: @FILE sent as it is, Content-Type replaced.
		multipart := []byte("--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\r\n\x00\x01\xff\r\n--X--\r\n")
		file := filepath.Join(t.TempDir(), "body.bin")
		if err := os.WriteFile(file, multipart, 0o600); err != nil {
			t.Fatal(err)
		}
		got = call(t, "-H", "Content-Type: multipart/form-data; boundary=X", "POST", "/v1/things/1/attachments", "@"+file, "-H", "X-Trace: 1", "--header", "x-trace: 2")
		if strings.Join(got.ContentType, ",") != "multipart/form-data; boundary=X" || !bytes.Equal(got.Body, multipart) {
			t.Errorf("multipart upload: content type %v, body %q", got.ContentType, got.Body)
		}
		if strings.Join(got.Headers["X-Trace"], ",") != "1,2" {
			t.Errorf("repeated -H: %v", got.Headers)
		}
		got = call(t, "-H", "Content-Type:", "PUT", "/v1/things/1", "{}")
		if len(got.ContentType) != 0 || string(got.Body) != "{}" {
			t.Errorf("-H 'Content-Type:' kept it: %+v", got)
		}
		stdin = strings.NewReader(`{"from":"stdin"}`)
		t.Cleanup(func() { stdin = os.Stdin })
		got = call(t, "POST", "/v1/things", "@-")
		if string(got.Body) != `{"from":"stdin"}` {
			t.Errorf("@-: %+v", got)
		}
		if code, _, errs := e.eidsim(t, "--api", e.echo, "POST", "/v1/things", "@"+filepath.Join(t.TempDir(), "missing.json")); code != 1 || !strings.Contains(errs, "read the body") {
			t.Errorf("missing @FILE: exit %d: %s", code, errs)
		}

		// One token per API: the echo server's is not the mobile API's.
		if c := e.cached(t); c[e.echo] == nil || c[e.api] == nil || c[e.echo].AccessToken == c[e.api].AccessToken {
			t.Errorf("cache %v: want one token for each API", c)
		}
	})

	t.Run("a refused cached token is replaced and the request sent again", func(t *testing.T) {
		before := e.grants.Load()
		e.setCached(t, e.echo, &eidapp.APIToken{AccessToken: "not-a-token", ExpiresAt: time.Now().Add(time.Hour)})
		code, out, errs := e.eidsim(t, "--api", e.echo, "POST", "/v1/things", `{"again":true}`)
		var got echoed
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || string(got.Body) != `{"again":true}` {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if e.grants.Load() != before+1 || e.cached(t)[e.echo].AccessToken == "not-a-token" {
			t.Errorf("%d token requests; cache %+v", e.grants.Load()-before, e.cached(t)[e.echo])
		}
	})

	t.Run("a revoked device gets no token", func(t *testing.T) {
		var dev struct {
			DeviceID string `json:"device_id"`
		}
		raw, _ := os.ReadFile(filepath.Join(e.home, eidapp.DeviceFile)) //nolint:gosec // the test's own temporary directory
		_ = json.Unmarshal(raw, &dev)
		if err := e.svc.RevokeDevice(context.Background(), "c-1", dev.DeviceID); err != nil {
			t.Fatal(err)
		}
		// The cached token is denied with its device, and no new one is
		// granted.
		code, out, errs := e.eidsim(t, "--api", e.api, "GET", "/v1/me")
		if code != 1 || !strings.Contains(errs, "invalid_grant") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
}

func TestRun_APIRefusesAnotherOrigin(t *testing.T) {
	home := writeDevice(t, "https://id.onedoor.test")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"api", "--home", home, "--api", "https://api.onedoor.test/mobile", "GET", "/../other"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "not beneath the API URL") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	if code := run(context.Background(), []string{"api", "--home", home, "--api", "ftp://api.onedoor.test", "GET", "/v1/me"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "http(s)") {
		t.Errorf("ftp API: exit %d: %s", code, errOut.String())
	}
}
