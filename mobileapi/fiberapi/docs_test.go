package fiberapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/onedoor/onedoor/mobileapi/docs"
)

// get runs one request without a token through a server with no stores:
// the docs need none.
func get(t *testing.T, s *Server, target string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := s.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

func TestDocs(t *testing.T) {
	s := New(Config{APIURL: "https://api.onedoor.test"})

	res, body := get(t, s, "/v1/docs")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/docs: %d %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := res.Header.Get("Content-Security-Policy"); csp != docs.ContentSecurityPolicy {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if !strings.Contains(string(body), docs.AssetPrefix+"redoc.standalone.js") {
		t.Errorf("page does not load Redoc:\n%s", body)
	}
	etag := res.Header.Get("ETag")
	if res, _ := get(t, s, "/v1/docs", "If-None-Match", etag); etag == "" || res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %q: %d, want 304", etag, res.StatusCode)
	}

	for name, want := range map[string]string{
		"redoc.standalone.js":             "text/javascript; charset=utf-8",
		"init.js":                         "text/javascript; charset=utf-8",
		"docs.css":                        "text/css; charset=utf-8",
		"redoc.LICENSE":                   "text/plain; charset=utf-8",
		"redoc.standalone.js.LICENSE.txt": "text/plain; charset=utf-8",
	} {
		res, body := get(t, s, docs.AssetPrefix+name)
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", name, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != want {
			t.Errorf("%s: Content-Type %q, want %q", name, ct, want)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", name)
		}
		if len(body) == 0 {
			t.Errorf("%s: empty", name)
		}
	}
	for _, p := range []string{"missing.js", "..%2fdocs.go", "%2e%2e"} {
		if res, body := get(t, s, docs.AssetPrefix+p); res.StatusCode != http.StatusNotFound {
			t.Errorf("%q: %d %s, want 404", p, res.StatusCode, body)
		}
	}
}

// TestDocsInChromium renders /v1/docs in headless Chromium under the
// page's policy and waits for an operation's summary from the contract.
// It runs when ONEDOOR_TEST_CHROMIUM names the browser.
func TestDocsInChromium(t *testing.T) {
	chromium := os.Getenv("ONEDOOR_TEST_CHROMIUM")
	if chromium == "" {
		t.Skip("set ONEDOOR_TEST_CHROMIUM to render the docs in Chromium")
	}
	if _, err := exec.LookPath(chromium); err != nil {
		t.Fatalf("ONEDOOR_TEST_CHROMIUM=%s: %v", chromium, err)
	}
	s := New(Config{APIURL: "https://api.onedoor.test"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })

	actx, acancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()))...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	var msgs []chromedp.ConsoleMessage
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range chromedp.Console(cctx) {
			if err != nil {
				return
			}
			msgs = append(msgs, m)
		}
	}()

	tctx, tcancel := context.WithTimeout(ctx, 30*time.Second)
	defer tcancel()
	const summary = "Search the catalog" // searchServices in openapi.json
	err = chromedp.Do(tctx,
		chromedp.Navigate("http://"+ln.Addr().String()+"/v1/docs"),
		chromedp.WaitVisible(`//h2[contains(., "`+summary+`")]`), // an XPath search
	)
	if err != nil {
		stop()
		<-done
		t.Fatalf("render /v1/docs: %v", err)
	}
	title, err := chromedp.Run(tctx, chromedp.Title())
	stop()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if title != "OneDoor mobile API reference" {
		t.Errorf("title %q", title)
	}
	for _, m := range msgs {
		t.Logf("console %s (%s): %.200s", m.Type, m.Source, m.Text)
		// Redoc's footer logo comes from its CDN: the policy blocks it, as
		// it should, and the logo hides itself.
		if strings.Contains(m.Text, "cdn.redoc.ly") {
			continue
		}
		if m.IsException() || m.Type == chromedp.ConsoleError || strings.Contains(m.Text, "Content Security Policy") {
			t.Errorf("console %s (%s:%d): %s", m.Type, m.URL, m.Line+1, m.Text)
		}
	}
}
