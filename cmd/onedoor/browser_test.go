package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/onedoor/onedoor/idp/eid"
)

// These tests drive a real headless Chromium through the demo agency site and
// the IdP's login page: the page's own JavaScript polls the status URL under
// the page's Content-Security-Policy, and the eID app approves from Go.

// Texts of the login page the tests look for (idp/web/pages.go).
const (
	viTitle   = "Đăng nhập bằng ứng dụng định danh điện tử"
	viWaiting = "Đang chờ bạn chấp thuận trên ứng dụng…"
	viDenied  = "Bạn đã từ chối đăng nhập trên ứng dụng."
	enTitle   = "Log in with your eID app"
	enWaiting = "Waiting for your approval in the app…"
)

// browserStep bounds each phase of a browser test; the whole file stays well
// under its 40-second budget when everything works.
const browserStep = 15 * time.Second

var matchNumberRE = regexp.MustCompile(`^[0-9]{2}$`)

// chromiumPath returns the Chromium to drive, or skips (fails when CI=true)
// when there is none.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("ONEDOOR_TEST_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but Chromium is not usable at %s (set ONEDOOR_TEST_CHROMIUM): %v", p, err)
		}
		t.Skipf("no Chromium at %s (set ONEDOOR_TEST_CHROMIUM): %v", p, err)
	}
	return p
}

// newTab starts the headless Chromium at path chromium with a fresh profile
// and returns the context of its tab. acceptLang sets the browser's
// Accept-Language; empty keeps Chromium's own (en-US,en;q=0.9). The context
// has no deadline: it owns the browser, so tests derive their timeouts from it.
func newTab(t *testing.T, chromium, acceptLang string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	if acceptLang != "" {
		opts = append(opts, chromedp.Flag("accept-lang", acceptLang))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	// Registered after t.TempDir, so it runs first: the browser is gone
	// before its profile directory is removed.
	t.Cleanup(func() {
		cancel()
		acancel()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser, no timeout
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// startDemoSite serves the demo agency site on 127.0.0.1:0 under
// http://localhost:PORT and returns that base URL.
func startDemoSite(t *testing.T, env *testEnv) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://localhost:" + port
	secret, _, err := env.m.seedDemo(context.Background(), base)
	if err != nil {
		_ = ln.Close()
		t.Fatalf("seed demo: %v", err)
	}
	env.m.serve(ln, newDemoRP(env.issuer, base, demoSiteClient, secret))
	return base
}

// consoleWatch records what the tab writes to its console: console API calls,
// uncaught exceptions and browser log entries such as CSP violations.
type consoleWatch struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func watchConsole(ctx context.Context, t *testing.T) *consoleWatch {
	t.Helper()
	cctx, cancel := context.WithCancel(ctx)
	w := &consoleWatch{}
	msgs := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			w.mu.Lock()
			w.msgs = append(w.msgs, m)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func (w *consoleWatch) messages() []chromedp.ConsoleMessage {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), w.msgs...)
}

func isCSPMessage(m chromedp.ConsoleMessage) bool {
	return strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Content-Security-Policy")
}

// checkClean fails on any CSP report, uncaught exception or script error.
// Failed loads ("network" entries: the demo site's missing favicon, its 400
// error page) are not script errors.
func (w *consoleWatch) checkClean(t *testing.T) {
	t.Helper()
	for _, m := range w.messages() {
		if isCSPMessage(m) || m.IsException() || m.Type == chromedp.ConsoleError && m.Source != "network" {
			t.Errorf("console %s (%s:%d): %s", m.Type, m.URL, m.Line+1, m.Text)
		}
	}
}

// waitFor waits until a recorded message satisfies ok.
func (w *consoleWatch) waitFor(d time.Duration, ok func(chromedp.ConsoleMessage) bool) (chromedp.ConsoleMessage, bool) {
	for end := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		for _, m := range w.messages() {
			if ok(m) {
				return m, true
			}
		}
		if time.Now().After(end) {
			return chromedp.ConsoleMessage{}, false
		}
	}
}

// loginPage is what the tests read from the IdP's login page.
type loginPage struct {
	URL, Lang, Title, Status, Payload, MatchNumber, ClientName string
}

// openLogin clicks "Log in with OneDoor" on the demo site's home page (already
// loaded) and reads the login page.
func openLogin(ctx context.Context, t *testing.T) loginPage {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("login")), chromedp.WaitVisible(chromedp.ID("eid-qr"))); err != nil {
		t.Fatalf("open the login page: %v", err)
	}
	return readLogin(ctx, t)
}

func readLogin(ctx context.Context, t *testing.T) loginPage {
	t.Helper()
	var p loginPage
	var err error
	get := func(a chromedp.Action[string], into *string) {
		if err == nil {
			*into, err = chromedp.Run(ctx, a)
		}
	}
	get(chromedp.Location(), &p.URL)
	get(chromedp.Evaluate[string](`document.documentElement.lang`), &p.Lang)
	get(chromedp.Text(chromedp.CSS("h1")), &p.Title)
	get(chromedp.Text(chromedp.ID("status")), &p.Status)
	get(chromedp.Text(chromedp.ID("match-number")), &p.MatchNumber)
	get(chromedp.Text(chromedp.ID("client-name")), &p.ClientName)
	if err != nil {
		t.Fatalf("read the login page: %v", err)
	}
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-qr"), "data-payload"))
	if err != nil || !attr.Exists {
		t.Fatalf("eid-qr data-payload: exists %v, %v", attr.Exists, err)
	}
	p.Payload = attr.Value
	if !strings.HasPrefix(p.Payload, "onedoor-eid://login?") {
		t.Errorf("QR payload = %q", p.Payload)
	}
	if !matchNumberRE.MatchString(p.MatchNumber) {
		t.Errorf("match number = %q, want two digits", p.MatchNumber)
	}
	// Same-device login: the https app link names the same request of the
	// same issuer as the QR payload.
	link, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-app-link"), "href"))
	qrIssuer, qrID, qrErr := eid.ParsePayload(p.Payload)
	if linkIssuer, linkID, lerr := eid.ParsePayload(link.Value); err != nil || qrErr != nil || lerr != nil ||
		!strings.HasPrefix(link.Value, "https://") && !strings.HasPrefix(link.Value, "http://") || linkIssuer != qrIssuer || linkID != qrID {
		t.Errorf("app link href = %q (%v), want the https app link of the QR payload's request", link.Value, err)
	}
	if summary, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("details summary"))); err != nil || strings.TrimSpace(summary) == "" {
		t.Errorf("the payload box has no label (%v)", err)
	}
	return p
}

// shownNumber reads the match number the login page in the tab shows, as
// the citizen does before picking it in the app.
func shownNumber(ctx context.Context, t *testing.T) string {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("match-number")))
	if err != nil || !matchNumberRE.MatchString(n) {
		t.Fatalf("match number on the page = %q, %v", n, err)
	}
	return n
}

func (p loginPage) checkLang(t *testing.T, lang string) {
	t.Helper()
	title, waiting := viTitle, viWaiting
	if lang == "en" {
		title, waiting = enTitle, enWaiting
	}
	if p.Lang != lang || p.Title != title || p.Status != waiting {
		t.Errorf("login page: lang %q, h1 %q, status %q; want %q, %q, %q", p.Lang, p.Title, p.Status, lang, title, waiting)
	}
}

func location(ctx context.Context, t *testing.T) *url.URL {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestBrowser_LoginWithEIDApp(t *testing.T) {
	chromium := chromiumPath(t)
	env := startMain(t)
	site := startDemoSite(t, env)
	tab := newTab(t, chromium, "vi-VN,vi,en-US;q=0.5")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, browserStep)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("demo site: %v", err)
	}
	p := openLogin(ctx, t)
	if !strings.HasPrefix(p.URL, env.issuer+"/authorize?") {
		t.Errorf("login page at %s, want the IdP's authorization endpoint", p.URL)
	}
	p.checkLang(t, "vi")
	if p.ClientName != "Cổng Dịch vụ công Demo (demo agency site)" {
		t.Errorf("client name = %q", p.ClientName)
	}

	res, err := env.app.Approve(ctx, p.Payload, p.MatchNumber, false, nil)
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if !contains(res.MatchChoices, p.MatchNumber) {
		t.Errorf("the app offers %v, the page shows %q", res.MatchChoices, p.MatchNumber)
	}
	// The page's script sees the approval and takes the browser back to the site.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("welcome"))); err != nil {
		t.Fatalf("waiting for the demo site's welcome after approval: %v", err)
	}
	if u := location(ctx, t); u.String() != site+"/" {
		t.Errorf("after login at %s, want %s/", u, site)
	}
	name, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("user-name")))
	if err != nil || name != "Nguyễn Văn Demo" {
		t.Errorf("user name = %q (%v), want Nguyễn Văn Demo", name, err)
	}
	claims, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("claims")))
	if err != nil || !strings.Contains(claims, demoCitizens[0].PersonalID) || !strings.Contains(claims, "high") {
		t.Errorf("claims table lacks personal_id or acr: %q (%v)", claims, err)
	}

	t.Run("logout", func(t *testing.T) {
		// The site sends id_token_hint, so the IdP logs out without asking.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
			t.Fatalf("logout: %v", err)
		}
		if u := location(ctx, t); u.Scheme+"://"+u.Host+u.Path != site+"/" || u.Query().Get("state") == "" {
			t.Errorf("after logout at %s, want %s/?state=...", u, site)
		}
		// The IdP session is gone: a new login asks the app again instead of
		// returning straight to the site.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("login")), chromedp.WaitVisible(chromedp.CSS("#eid-qr, #welcome"))); err != nil {
			t.Fatalf("login after logout: %v", err)
		}
		if u := location(ctx, t); !strings.HasPrefix(u.String(), env.issuer+"/authorize?") {
			t.Errorf("login after logout went to %s, want the IdP's login page (SSO session not ended?)", u)
		}
	})
	console.checkClean(t)
}

func TestBrowser_DeniedLogin(t *testing.T) {
	chromium := chromiumPath(t)
	env := startMain(t)
	site := startDemoSite(t, env)
	tab := newTab(t, chromium, "vi-VN,vi")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, browserStep)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("demo site: %v", err)
	}
	p := openLogin(ctx, t)
	if _, err := env.app.Approve(ctx, p.Payload, p.MatchNumber, true, nil); err != nil {
		t.Fatalf("deny: %v", err)
	}
	// The page says so for a moment before it continues.
	status, err := chromedp.Run(ctx, chromedp.Poll[string](
		`(function () { var s = document.getElementById("status"); return s && s.textContent !== `+jsString(viWaiting)+` ? s.textContent : null; })()`,
		chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		t.Fatalf("waiting for the denial message: %v", err)
	}
	if status != viDenied {
		t.Errorf("status after denial = %q, want %q", status, viDenied)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("rp-error"))); err != nil {
		t.Fatalf("waiting for the demo site's error: %v", err)
	}
	u := location(ctx, t)
	if u.Scheme+"://"+u.Host+u.Path != site+"/callback" || u.Query().Get("error") != "access_denied" || u.Query().Get("state") == "" {
		t.Errorf("after denial at %s, want %s/callback?error=access_denied&state=...", u, site)
	}
	if q := u.Query(); q.Has("code") || q.Get("iss") != env.issuer {
		t.Errorf("denial response: code present %v, iss %q (want %q)", q.Has("code"), q.Get("iss"), env.issuer)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("rp-error")))
	if err != nil || msg != demoTexts["vi"]["problem.declined"] {
		t.Errorf("site error = %q (%v), want %q", msg, err, demoTexts["vi"]["problem.declined"])
	}
	if retry, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("retry"), "href")); err != nil || retry.Value != "/login" {
		t.Errorf("try-again link = %q (%v)", retry.Value, err)
	}
	console.checkClean(t)
}

func TestBrowser_LoginPageEnglish(t *testing.T) {
	chromium := chromiumPath(t)
	env := startMain(t)
	site := startDemoSite(t, env)
	tab := newTab(t, chromium, "") // Chromium's own Accept-Language: en-US,en;q=0.9
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, browserStep)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("demo site: %v", err)
	}
	en := openLogin(ctx, t)
	en.checkLang(t, "en")
	shot := screenshot(ctx, t, filepath.Join(t.TempDir(), "login-en.png"))

	t.Run("language switch", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("a.lang")), chromedp.WaitVisible(chromedp.CSS(`html[lang="vi"] #eid-qr`))); err != nil {
			t.Fatalf("switch to Vietnamese: %v", err)
		}
		vi := readLogin(ctx, t)
		vi.checkLang(t, "vi")
		if u, _ := url.Parse(vi.URL); u.Query().Get("lang") != "vi" {
			t.Errorf("switched page at %s, want lang=vi", vi.URL)
		}
		if vi.Payload != en.Payload {
			t.Error("switching language started another login request")
		}
		if b := screenshot(ctx, t, "/tmp/onedoor-login.png"); bytes.Equal(b, shot) {
			t.Error("the Vietnamese and English screenshots are identical")
		}
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("a.lang")), chromedp.WaitVisible(chromedp.CSS(`html[lang="en"] #eid-qr`))); err != nil {
			t.Fatalf("switch back to English (?lang=en): %v", err)
		}
		readLogin(ctx, t).checkLang(t, "en")
	})

	t.Run("Vietnamese when the browser prefers neither", func(t *testing.T) {
		ua, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.userAgent`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: "fr-FR,fr"}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
			t.Fatalf("demo site: %v", err)
		}
		openLogin(ctx, t).checkLang(t, "vi")
	})
	console.checkClean(t)
}

// TestBrowser_LoginPageCSP checks that the login page's script runs under the
// page's Content-Security-Policy (it polls the status URL) and that the policy
// is really enforced: an injected inline script without the nonce is refused
// and reported on the console, which the other tests watch for.
func TestBrowser_LoginPageCSP(t *testing.T) {
	chromium := chromiumPath(t)
	env := startMain(t)
	site := startDemoSite(t, env)
	tab := newTab(t, chromium, "vi-VN,vi")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, browserStep)
	defer cancel()

	responses := chromedp.Events(ctx, network.ResponseReceived)
	// The page's status request is a long poll, answered when the login is
	// decided or after 25 s: what shows that the CSP lets it through is
	// that it is sent, and no console error.
	requests := chromedp.Events(ctx, network.RequestWillBeSent)
	if err := chromedp.Do(ctx, chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("demo site: %v", err)
	}
	openLogin(ctx, t)

	var csp string
	for ev, err := range responses {
		if err != nil {
			t.Fatalf("waiting for the login page: %v", err)
		}
		if strings.HasPrefix(ev.Response.URL, env.issuer+"/authorize?") && ev.Type == network.ResourceTypeDocument {
			csp = headerValue(ev.Response.Headers, "Content-Security-Policy")
			break
		}
	}
	for ev, err := range requests {
		if err != nil {
			t.Fatalf("waiting for the page to poll its status URL: %v", err)
		}
		if u := ev.Request.URL; strings.HasPrefix(u, env.issuer+"/login/status?") {
			if !strings.Contains(u, "wait=25") {
				t.Errorf("status URL %q is not a long poll (wait=25)", u)
			}
			break
		}
	}
	if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("login page CSP = %q, want a script nonce and connect-src 'self'", csp)
	}
	console.checkClean(t)

	ran, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(function () {
		var s = document.createElement("script");
		s.textContent = "window.__injected = true";
		document.body.appendChild(s);
		return window.__injected === true;
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Error("an inline script without the nonce ran: the CSP is not enforced")
	}
	if _, ok := console.waitFor(5*time.Second, isCSPMessage); !ok {
		t.Errorf("no CSP violation on the console for the injected script; console: %v", console.messages())
	}
}

func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// screenshot saves a PNG of the whole page to path and returns it.
func screenshot(ctx context.Context, t *testing.T, path string) []byte {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(b) < 1000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(b))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil { // #nosec G703 -- a test's temp dir or the developer's ONEDOOR_SCREENSHOTS
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(b))
	return b
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestBrowser_AppLinkFallback: on a device without the app, the login
// page's "open the app" button shows the fallback page (no app claims the
// https link), which leads back to the same login request.
func TestBrowser_AppLinkFallback(t *testing.T) {
	chromium := chromiumPath(t)
	env := startMain(t, func(c *Config) { c.PlayStoreURL = "https://play.google.com/store/apps/details?id=vn.gov.onedoor.eid" })
	site := startDemoSite(t, env)
	tab := newTab(t, chromium, "")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, browserStep)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("demo site: %v", err)
	}
	setWidth(ctx, t, 390) // the same-device link is shown on phones only
	first := openLogin(ctx, t)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("eid-app-link")), chromedp.WaitVisible(chromedp.ID("app-needed"))); err != nil {
		t.Fatalf("open the app link: %v", err)
	}
	checkAxe(ctx, t, "the app-link fallback page (390 px)")
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil || title != "The eID app is needed" {
		t.Errorf("fallback page title = %q (%v)", title, err)
	}
	open, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("app-open"), "href"))
	if issuer, id, perr := eid.ParsePayload(first.Payload); err != nil || perr != nil || open.Value != eid.SameDevicePayload(issuer, id) {
		t.Errorf("open-the-app href = %q (%v), want the same-device form of the QR payload %q", open.Value, err, first.Payload)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#play-store").length + 10*document.querySelectorAll("#app-store").length`)); err != nil || n != 1 {
		t.Errorf("store links: %d (%v), want Google Play alone", n, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("back-login")), chromedp.WaitVisible(chromedp.ID("eid-qr"))); err != nil {
		t.Fatalf("back to the login page: %v", err)
	}
	if again := readLogin(ctx, t); again.Payload != first.Payload || again.MatchNumber != first.MatchNumber {
		t.Errorf("back to another login request: %+v, want %+v", again, first)
	}
	// On iOS the fallback page is where a same-device login waits (the
	// link to the page's own domain stays in the browser). Its button
	// opens the app in the same-device mode: no pick; the page, polling,
	// learns of the approval but cannot finish without the return code;
	// the return URL the app opens in this browser does.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("eid-app-link")), chromedp.WaitVisible(chromedp.ID("app-needed"))); err != nil {
		t.Fatalf("open the app link again: %v", err)
	}
	res, err := env.app.Approve(ctx, open.Value, "", false, nil)
	if err != nil || res.ReturnURL == "" {
		t.Fatalf("same-device approve: %+v, %v", res, err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("message"))); err != nil {
		t.Fatalf("the fallback page did not move on after the approval: %v", err)
	}
	if msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); err != nil || msg != "Continue from the app" {
		t.Errorf("the polling page without the return code shows %q (%v)", msg, err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(res.ReturnURL), chromedp.WaitVisible(chromedp.ID("welcome"))); err != nil {
		t.Fatalf("the return URL did not lead to the agency's site: %v", err)
	}
	console.checkClean(t)
}
