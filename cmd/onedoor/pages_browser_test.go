package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/internal/a11ytest"
)

// Widths the IdP's pages are checked at: a desktop and a phone.
const (
	desktopWidth = 1280
	phoneWidth   = 390
)

// setWidth emulates a desktop with a mouse, or a phone with touch, width
// CSS pixels wide.
func setWidth(ctx context.Context, t *testing.T, width int64) {
	t.Helper()
	phone := width < 600
	height := int64(900)
	if phone {
		height = 844
	}
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: width, Height: height, DeviceScaleFactor: 1, Mobile: phone}); err != nil {
		t.Fatal(err)
	}
	points := int64(0)
	if phone {
		points = 5
	}
	if _, err := chromedp.Call(ctx, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{Enabled: phone, MaxTouchPoints: points}); err != nil {
		t.Fatal(err)
	}
}

// pagesClient registers the client whose login page the tests show.
func pagesClient(e *testEnv) *rp {
	id, secret := e.client(ClientSpec{Name: "Cục Thuế", Scope: "openid profile offline_access",
		GrantTypes: []string{"authorization_code", "refresh_token"}, Purposes: []consent.Purpose{purposeTax}})
	return e.rp(id, secret, gooidc.ScopeOpenID, "profile", gooidc.ScopeOfflineAccess)
}

// pageVisit is called on each page walkPages shows, once it is ready.
type pageVisit func(name string)

// walkPages shows every kind of IdP page in lang: the login page, pending
// and expired, the expired message, an error, the account page signed out
// and in, the logout confirmation and the logged-out page. The server's
// login requests must be short-lived (shortLogin).
func walkPages(ctx context.Context, t *testing.T, e *testEnv, r *rp, lang string, width int64, visit pageVisit) {
	t.Helper()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s (%s, %d px): %v", what, lang, width, err)
		}
	}
	authURL, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("ui_locales", lang))
	run("login page", chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("eid-qr")))
	p := readLogin(ctx, t)
	if p.Lang != lang {
		t.Errorf("login page in %q, want %q", p.Lang, lang)
	}
	// The same-device link is for phones only.
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(function () { var a = document.getElementById("eid-app-link"); return a.offsetParent !== null && a.getBoundingClientRect().height > 0; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if want := width < 600; shown != want {
		t.Errorf("%d px: #eid-app-link visible %v, want %v", width, shown, want)
	}
	visit("login")
	statusURL, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-qr"), "data-status-url"))
	if err != nil {
		t.Fatal(err)
	}
	run("expired state", chromedp.WaitVisible(chromedp.ID("start-again")))
	visit("login-expired")
	su, _ := url.Parse(statusURL.Value)
	run("expired page", chromedp.Navigate(e.issuer+"/login/continue?id="+url.QueryEscape(su.Query().Get("id"))+"&lang="+lang),
		chromedp.WaitVisible(chromedp.ID("start-again")))
	visit("expired")
	run("error page", chromedp.Navigate(e.issuer+"/authorize?client_id=no-such-client&response_type=code&ui_locales="+lang),
		chromedp.WaitVisible(chromedp.ID("error-code")))
	visit("error")
	run("account sign-in", chromedp.Navigate(e.issuer+"/account?lang="+lang), chromedp.WaitVisible(chromedp.ID("account-login")))
	visit("account-signin")
	run("account login", chromedp.Click(chromedp.ID("account-login")), chromedp.WaitVisible(chromedp.ID("eid-qr")))
	payload, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-qr"), "data-payload"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Approve(ctx, payload.Value, shownNumber(ctx, t), false, nil); err != nil {
		t.Fatalf("approve the account login: %v", err)
	}
	run("account page", chromedp.WaitVisible(chromedp.ID("account-title")))
	visit("account")
	run("logout confirmation", chromedp.Navigate(e.issuer+"/logout?ui_locales="+lang), chromedp.WaitVisible(chromedp.ID("logout-confirm")))
	visit("logout")
	run("logged-out page", chromedp.Click(chromedp.ID("logout-confirm")), chromedp.WaitVisible(chromedp.ID("message-title")))
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`)); got != lang {
		t.Errorf("logged-out page in %q, want %q", got, lang)
	}
	visit("logged-out")
}

func brandOption(c *Config) {
	c.BrandName = "Cổng Dịch vụ công Quốc gia (demo)"
	c.BrandHelpURL = "https://dichvucong.example.gov.vn/help"
	c.BrandHotline = "1900 0000"
	c.BrandPrivacyURL = "https://dichvucong.example.gov.vn/privacy"
}

// TestBrowser_A11y runs axe-core on every IdP page at desktop and phone
// widths in both languages and fails on serious or critical findings.
func TestBrowser_A11y(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t, shortLogin, brandOption)
	r := pagesClient(e)
	tab := newTab(t, chromium, "")
	console := watchConsole(tab, t)
	for _, width := range []int64{desktopWidth, phoneWidth} {
		for _, lang := range []string{"vi", "en"} {
			ctx, cancel := context.WithTimeout(tab, 4*browserStep)
			setWidth(ctx, t, width)
			walkPages(ctx, t, e, r, lang, width, func(name string) {
				checkAxe(ctx, t, fmt.Sprintf("%s (%s, %d px)", name, lang, width))
			})
			cancel()
		}
	}
	console.checkClean(t)
}

// TestBrowser_StartAgain: when the login request expires, the page offers
// to start again; that gives a new request (new QR payload and match
// number) for the same authorization request, and the login completes.
func TestBrowser_StartAgain(t *testing.T) {
	chromium := chromiumPath(t)
	// Long enough to read the new page and approve before it expires too.
	env := startMain(t, func(c *Config) { c.LoginTTL = 4 * time.Second })
	site := startDemoSite(t, env)
	tab := newTab(t, chromium, "en-US,en")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 2*browserStep)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("demo site: %v", err)
	}
	old := openLogin(ctx, t)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("start-again"))); err != nil {
		t.Fatalf("the expired page offers no start again: %v", err)
	}
	focused, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.id`))
	if err != nil || focused != "start-again" {
		t.Errorf("focus on %q after expiry, want start-again", focused)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("start-again"))); err != nil {
		t.Fatalf("start again: %v", err)
	}
	// The new page is the one whose QR code carries another request (the
	// check is retried while the navigation replaces the page).
	newPage := `(function () { var q = document.getElementById("eid-qr"); return !!q && document.readyState === "complete" && q.dataset.payload !== ` + jsString(old.Payload) + `; })()`
	for {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](newPage)); err == nil && ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("waiting for the new login page: %v", ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := readLogin(ctx, t)
	p.checkLang(t, "en")
	if p.Payload == old.Payload {
		t.Fatal("start again showed the expired request")
	}
	res, err := env.app.Approve(ctx, p.Payload, p.MatchNumber, false, nil)
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if !contains(res.MatchChoices, p.MatchNumber) {
		t.Errorf("the app offers %v, the page shows %q", res.MatchChoices, p.MatchNumber)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("welcome"))); err != nil {
		t.Fatalf("waiting for the demo site's welcome after the restarted login: %v", err)
	}
	console.checkClean(t)
}

// TestScreenshots saves PNGs of the login, error, expired and logged-out
// pages at desktop and phone widths into $ONEDOOR_SCREENSHOTS (the docs
// keep them in docs/screenshots/); skipped unless it is set.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("ONEDOOR_SCREENSHOTS")
	if dir == "" {
		t.Skip("set ONEDOOR_SCREENSHOTS=dir to save screenshots of the IdP's pages")
	}
	chromium := chromiumPath(t)
	if err := os.MkdirAll(dir, 0o750); err != nil { // #nosec G703 -- the developer's own ONEDOOR_SCREENSHOTS
		t.Fatal(err)
	}
	e := startMain(t, shortLogin, brandOption)
	r := pagesClient(e)
	tab := newTab(t, chromium, "")
	want := map[string]bool{"login": true, "error": true, "expired": true, "logged-out": true}
	for _, width := range []int64{desktopWidth, phoneWidth} {
		ctx, cancel := context.WithTimeout(tab, 4*browserStep)
		setWidth(ctx, t, width)
		walkPages(ctx, t, e, r, "vi", width, func(name string) {
			if !want[name] {
				return
			}
			// The match number and expiry time change every run; the
			// picture is of the layout.
			screenshot(ctx, t, filepath.Join(dir, name+"-"+widthName(width)+".png"))
		})
		cancel()
	}
}

func widthName(w int64) string {
	if w < 600 {
		return "390"
	}
	return "1280"
}

// checkAxe runs axe-core on the tab's page and fails on serious or
// critical findings (the others are logged).
func checkAxe(ctx context.Context, t *testing.T, page string) {
	t.Helper()
	vs, err := a11ytest.Check(ctx)
	if err != nil {
		t.Fatalf("axe on %s: %v", page, err)
	}
	for _, v := range vs {
		if v.Severe() {
			t.Errorf("%s: %s", page, v)
		} else {
			t.Logf("%s: %s", page, v)
		}
	}
}

// TestBrowser_PushLogin: a login sent to the citizen's devices
// (login_hint) shows the match number without a QR code, passes axe in
// both languages, keeps the QR code a keyboard press away, and the page
// leaves as soon as the app approves (the long poll is woken).
func TestBrowser_PushLogin(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t, brandOption)
	r := pagesClient(e)
	tab := newTab(t, chromium, "")
	run := func(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for _, lang := range []string{"vi", "en"} {
		ctx, cancel := context.WithTimeout(tab, 2*browserStep)
		authURL, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("ui_locales", lang), oauth2.SetAuthURLParam("login_hint", demoCitizens[0].PersonalID))
		run(ctx, "push page", chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("match-number")))
		if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#eid-qr").length`)); n != 0 {
			t.Errorf("%s: push page shows a QR code", lang)
		}
		checkAxe(ctx, t, "push login ("+lang+")")
		run(ctx, "show the QR code", chromedp.Focus(chromedp.ID("show-qr")), chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.ID("eid-qr")))
		cancel()
	}

	ctx, cancel := context.WithTimeout(tab, 2*browserStep)
	defer cancel()
	authURL, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam("login_hint", demoCitizens[0].PersonalID))
	run(ctx, "push page", chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("match-number")))
	var id string
	eventually(t, "the request listed to the app", func() bool {
		vs, err := e.app.Pending(ctx)
		if err != nil || len(vs) == 0 {
			return false
		}
		id = vs[len(vs)-1].RequestID
		return true
	})
	time.Sleep(500 * time.Millisecond) // the page's long poll is waiting
	payload, _ := e.app.RequestPayload(id)
	shown := shownNumber(ctx, t)
	start := time.Now()
	if _, err := e.app.Approve(ctx, payload, shown, false, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the page leaves for the continuation", func() bool {
		href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
		return err == nil && !strings.Contains(href, "/authorize")
	})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the page left %v after the approval, want at once", d)
	}
}
