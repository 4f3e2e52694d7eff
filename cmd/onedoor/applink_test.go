package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/web"
)

const (
	testAppStore = "https://apps.apple.com/vn/app/onedoor-eid/id0000000000"
	testPlay     = "https://play.google.com/store/apps/details?id=vn.gov.onedoor.eid"
	testCert     = "14:6d:e9:83:c5:73:06:50:d8:ee:b9:95:2f:34:fc:64:16:a0:83:42:e6:1d:be:a8:8a:04:96:b2:3f:cf:44:e5"
)

func withAppLinks(c *Config) {
	c.IOSAppIDs = []string{"A1B2C3D4E5.vn.gov.onedoor.eid"}
	c.AndroidApp = "vn.gov.onedoor.eid"
	c.AndroidCertSHA256 = []string{testCert}
	c.AppStoreURL, c.PlayStoreURL = testAppStore, testPlay
}

// getPage fetches u with the given Accept-Language in b.
func (b *browser) getPage(t *testing.T, u, lang string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lang != "" {
		req.Header.Set("Accept-Language", lang)
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func attr(t *testing.T, body, id, name string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + id + `"[^>]*\s` + name + `="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestAppLink_FallbackPage: the login page's same-device button is the
// https app link; in a browser (no app claimed it) it shows the fallback
// page in Vietnamese or English, with the stores, the custom-scheme link
// and the way back to the login page; the app approving through the same
// link sends the browser on to the client.
func TestAppLink_FallbackPage(t *testing.T) {
	e := startMain(t, withAppLinks)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, "openid", "profile")
	u, _, _, _ := authorizeURL(r)
	b := newBrowser()
	resp, login := b.getPage(t, u, "vi")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	payload := html.UnescapeString(qrRE.FindStringSubmatch(login)[1])
	issuer, reqID, err := eid.ParsePayload(payload)
	if err != nil || issuer != e.issuer {
		t.Fatalf("QR payload %q: %v", payload, err)
	}
	link := attr(t, login, "eid-app-link", "href")
	if link != e.issuer+"/app/login?request="+reqID {
		t.Fatalf("#eid-app-link href = %q, want the https app link", link)
	}

	for _, c := range []struct{ lang, url, title, store string }{
		{"vi", link, "Cần ứng dụng định danh điện tử", "Tải trên App Store"},
		{"en-GB,en;q=0.8", link, "The eID app is needed", "Download on the App Store"},
		{"vi", link + "&lang=en", "The eID app is needed", "Download on the App Store"},
	} {
		resp, page := b.getPage(t, c.url, c.lang)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s (%s): %d %s", c.url, c.lang, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(page, `id="app-needed"`) || !strings.Contains(page, "<h1>"+c.title+"</h1>") || !strings.Contains(page, c.store) {
			t.Errorf("%s (%s): fallback page lacks %q / %q:\n%s", c.url, c.lang, c.title, c.store, page)
		}
		if got := attr(t, page, "app-store", "href"); got != testAppStore {
			t.Errorf("App Store link = %q", got)
		}
		if got := attr(t, page, "play-store", "href"); got != testPlay {
			t.Errorf("Google Play link = %q", got)
		}
		if got := attr(t, page, "app-open", "href"); got != eid.SameDevicePayload(e.issuer, reqID) {
			t.Errorf("open-the-app link = %q, want the same-device payload of %q", got, payload)
		}
	}

	// Back to the login page: the same request, in the browser that started it.
	_, fallback := b.getPage(t, link, "")
	back := attr(t, fallback, "back-login", "href")
	if !strings.HasPrefix(back, e.issuer+web.PathContinue+"?id="+url.QueryEscape(reqID)) {
		t.Fatalf("back link = %q", back)
	}
	resp, again := b.getPage(t, back, "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(again, `id="match-number"`) || html.UnescapeString(qrRE.FindStringSubmatch(again)[1]) != payload {
		t.Fatalf("back to the login page: %d\n%.400s", resp.StatusCode, again)
	}
	// Another browser holding the link learns nothing and continues nothing.
	if resp, _ := newBrowser().getPage(t, back, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("back link in another browser: %d, want 403", resp.StatusCode)
	}

	// The app opened by the link approves on the same device, without a
	// pick; the browser that started the login continues through the
	// return URL the app opens, and not through its polling alone.
	res, err := e.app.Approve(context.Background(), link, "", false, nil)
	if err != nil || res.ReturnURL == "" {
		t.Fatalf("approve through the app link: %+v, %v", res, err)
	}
	statusURL := html.UnescapeString(qrRE.FindStringSubmatch(login)[2])
	st, next := b.status(t, statusURL)
	if st != "approved" {
		t.Fatalf("status after approval = %q", st)
	}
	if resp, page := b.getPage(t, next, "en"); resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "Continue from the app") {
		t.Errorf("continuation without the return code: %d\n%.300s", resp.StatusCode, page)
	}
	if loc := b.follow(t, res.ReturnURL); loc.Query().Get("code") == "" {
		t.Errorf("continuation went to %s, want the client's redirect with a code", loc)
	}
	// Once answered, the link leads to the continuation, which refuses to
	// finish the login twice.
	if loc := b.follow(t, link); loc.Path != web.PathContinue || loc.Query().Get("id") != reqID {
		t.Errorf("app link of an answered request goes to %s, want the continuation", loc)
	} else if resp, _ := b.getPage(t, loc.String(), "en"); resp.StatusCode != http.StatusGone && resp.StatusCode != http.StatusForbidden {
		t.Errorf("continuation of a finished request: %d, want a refusal", resp.StatusCode)
	}
}

// TestAppLink_ReturnCode: the attacks on a same-device approval. The
// attacker starts a login in their own browser and sends the app link to a
// citizen, whose app approves it on the citizen's phone.
func TestAppLink_ReturnCode(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, "openid", "profile")
	start := func() (*browser, string, string) {
		u, _, _, _ := authorizeURL(r)
		b := newBrowser()
		payload, statusURL := b.loginPage(t, u)
		_, reqID, _ := eid.ParsePayload(payload)
		return b, eid.AppLink(e.issuer, reqID), statusURL
	}
	approve := func(link string) string {
		t.Helper()
		res, err := e.app.Approve(context.Background(), link, "", false, nil)
		if err != nil || res.Status != "approved" || res.ReturnURL == "" {
			t.Fatalf("same-device approval: %+v, %v", res, err)
		}
		return res.ReturnURL
	}
	refused := func(b *browser, u string, want int) {
		t.Helper()
		if resp, page := b.getPage(t, u, "en"); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d\n%.300s", u, resp.StatusCode, want, page)
		}
	}

	t.Run("the starting browser needs the code", func(t *testing.T) {
		attacker, link, statusURL := start()
		ret := approve(link)
		st, next := attacker.status(t, statusURL)
		if st != "approved" {
			t.Fatalf("status = %s", st)
		}
		refused(attacker, next, http.StatusForbidden)
		refused(attacker, next+"&code=", http.StatusForbidden)
		refused(attacker, next+"&code=AAAAAAAAAAAAAAAAAAAAAA", http.StatusForbidden)
		// The citizen's phone browser opens the return URL: not the
		// browser that started the login, so the login ends there.
		refused(newBrowser(), ret, http.StatusForbidden)
		// Forwarded afterwards, the code continues nothing.
		resp, _ := attacker.getPage(t, ret, "en")
		if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
			t.Fatalf("the starting browser continued with a code a citizen forwarded: %s", resp.Header.Get("Location"))
		}
	})

	t.Run("single use", func(t *testing.T) {
		b, link, _ := start()
		ret := approve(link)
		if loc := b.follow(t, ret); loc.Query().Get("code") == "" {
			t.Fatalf("return URL went to %s", loc)
		}
		resp, _ := b.getPage(t, ret, "en")
		if resp.StatusCode != http.StatusGone && resp.StatusCode != http.StatusForbidden {
			t.Errorf("return URL used twice: %d", resp.StatusCode)
		}
	})

	t.Run("bound to its request", func(t *testing.T) {
		b1, link1, _ := start()
		ret1 := approve(link1)
		b2, link2, _ := start()
		ret2 := approve(link2)
		u1, _ := url.Parse(ret1)
		u2, _ := url.Parse(ret2)
		swapped := e.issuer + web.PathContinue + "?id=" + url.QueryEscape(u2.Query().Get("id")) + "&code=" + url.QueryEscape(u1.Query().Get("code"))
		refused(b2, swapped, http.StatusForbidden)
		if loc := b2.follow(t, ret2); loc.Query().Get("code") == "" {
			t.Errorf("request 2 after a swapped code: %s", loc)
		}
		if loc := b1.follow(t, ret1); loc.Query().Get("code") == "" {
			t.Errorf("request 1: %s", loc)
		}
	})

	t.Run("a QR code approval needs no code", func(t *testing.T) {
		u, _, _, _ := authorizeURL(r)
		b := newBrowser()
		if loc := e.login(b, u, e.app, nil); loc.Query().Get("code") == "" {
			t.Errorf("cross-device login went to %s", loc)
		}
	})
}

// TestLogin_WrongPick: the app, opened from a QR code that someone else's
// browser shows, picks a number that is not the page's: the login is
// denied for good, and the browser's continuation says so to the client.
func TestLogin_WrongPick(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid profile"})
	r := e.rp(id, secret, "openid", "profile")
	u, _, _, _ := authorizeURL(r)
	b := newBrowser()
	payload, statusURL := b.loginPage(t, u)
	v, err := e.app.Fetch(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	wrong := ""
	for _, c := range v.MatchChoices {
		if c != pick(payload) {
			wrong = c
		}
	}
	res, err := e.app.Approve(context.Background(), payload, wrong, false, nil)
	if !errors.Is(err, eidapp.ErrWrongMatch) || res.Status != "denied" {
		t.Fatalf("wrong pick: %+v, %v", res, err)
	}
	if _, err := e.app.Approve(context.Background(), payload, pick(payload), false, nil); err == nil {
		t.Error("the right pick was taken after a wrong one")
	}
	st, next := b.status(t, statusURL)
	if st != "denied" {
		t.Fatalf("status = %s, want denied", st)
	}
	if loc := b.follow(t, next); loc.Query().Get("error") != "access_denied" {
		t.Errorf("continuation went to %s, want access_denied", loc)
	}
}

// TestAppLink_Unconfigured: without stores the page shows no store links;
// without apps the well-known files are 404.
func TestAppLink_Unconfigured(t *testing.T) {
	e := startMain(t)
	id, secret := e.client(ClientSpec{Scope: "openid"})
	u, _, _, _ := authorizeURL(e.rp(id, secret, "openid"))
	b := newBrowser()
	payload, _ := b.loginPage(t, u)
	_, reqID, _ := eid.ParsePayload(payload)
	resp, body := b.getPage(t, eid.AppLink(e.issuer, reqID), "en")
	if resp.StatusCode != http.StatusOK || strings.Contains(body, "app-stores") || strings.Contains(body, "App Store") || !strings.Contains(body, `id="app-open"`) {
		t.Errorf("fallback page without stores: %d\n%s", resp.StatusCode, body)
	}
	for _, p := range []string{web.PathAppleAssociation, web.PathAssetLinks} {
		if resp, _ := b.getPage(t, e.issuer+p, ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s unconfigured: %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestAppLink_BadParameters: a malformed link is a 400 page, an unknown
// request a 410 page, never a 500.
func TestAppLink_BadParameters(t *testing.T) {
	e := startMain(t)
	b := newBrowser()
	ok := "AbCdEfGhIjKlMnOpQrStUv"
	for q, want := range map[string]int{
		"":                                     http.StatusBadRequest,
		"?request=":                            http.StatusBadRequest,
		"?request=short":                       http.StatusBadRequest,
		"?request=" + ok + "&request=" + ok:    http.StatusBadRequest,
		"?request=" + strings.Repeat("A", 300): http.StatusBadRequest,
		"?request=%zz":                         http.StatusBadRequest,
		"?request=" + ok:                       http.StatusGone,
	} {
		resp, body := b.getPage(t, e.issuer+"/app/login"+q, "en")
		if resp.StatusCode != want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `id="message"`) {
			t.Errorf("/app/login%s: %d %s, want a %d page\n%.300s", q, resp.StatusCode, resp.Header.Get("Content-Type"), want, body)
		}
	}
	if resp, _ := b.getPage(t, e.issuer+"/app/login?request=short", "vi"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad link in Vietnamese: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/app/login", nil)
	if resp, err := b.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /app/login: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestAppLink_WellKnownFiles: configured apps are published as the
// operating systems read them, as JSON.
func TestAppLink_WellKnownFiles(t *testing.T) {
	e := startMain(t, withAppLinks)
	b := newBrowser()
	resp, body := b.getPage(t, e.issuer+web.PathAppleAssociation, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("apple-app-site-association: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var aasa struct {
		AppLinks struct {
			Details []struct {
				AppIDs     []string            `json:"appIDs"`
				Components []map[string]string `json:"components"`
			} `json:"details"`
		} `json:"applinks"`
	}
	if err := json.Unmarshal([]byte(body), &aasa); err != nil || len(aasa.AppLinks.Details) != 1 ||
		strings.Join(aasa.AppLinks.Details[0].AppIDs, ",") != "A1B2C3D4E5.vn.gov.onedoor.eid" ||
		len(aasa.AppLinks.Details[0].Components) != 1 || aasa.AppLinks.Details[0].Components[0]["/"] != "/app/login" {
		t.Errorf("apple-app-site-association = %s (%v)", body, err)
	}
	resp, body = b.getPage(t, e.issuer+web.PathAssetLinks, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("assetlinks.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var links []struct {
		Relation []string `json:"relation"`
		Target   struct {
			Namespace    string   `json:"namespace"`
			Package      string   `json:"package_name"`
			Fingerprints []string `json:"sha256_cert_fingerprints"`
		} `json:"target"`
	}
	if err := json.Unmarshal([]byte(body), &links); err != nil || len(links) != 1 || links[0].Relation[0] != "delegate_permission/common.handle_all_urls" ||
		links[0].Target.Namespace != "android_app" || links[0].Target.Package != "vn.gov.onedoor.eid" ||
		len(links[0].Target.Fingerprints) != 1 || links[0].Target.Fingerprints[0] != strings.ToUpper(testCert) {
		t.Errorf("assetlinks.json = %s (%v)", body, err)
	}
}

// TestConfig_AppLinkFlags: the app link flags are checked at start, all
// problems at once.
func TestConfig_AppLinkFlags(t *testing.T) {
	c := DefaultConfig()
	withAppLinks(&c)
	if err := c.Validate(true); err != nil {
		t.Fatalf("valid app link flags: %v", err)
	}
	c.IOSAppIDs = []string{"vn.gov.onedoor.eid"}
	c.AndroidApp = "onedoor"
	c.AndroidCertSHA256 = []string{"14:6D"}
	c.AppStoreURL = "http://apps.apple.com/x"
	c.PlayStoreURL = "javascript:alert(1)"
	err := c.Validate(true)
	for _, want := range []string{"--ios-app-id", "--android-app \"onedoor\"", "--android-cert-sha256", "--app-store-url", "--play-store-url"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want a problem with %s", err, want)
		}
	}
	c.Issuer = "http://localhost:8080"
	if w := strings.Join(c.Warnings(), "\n"); !strings.Contains(w, "over https only") {
		t.Errorf("no warning about app links on an http issuer: %q", w)
	}
	c = DefaultConfig()
	c.AndroidApp = "vn.gov.onedoor.eid"
	if err := c.Validate(true); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("--android-app without a certificate: %v", err)
	}
	// The flags reach the config (and the environment works for them).
	c = DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.serveFlags(fs)
	if err := parseFlags(fs, []string{"--ios-app-id", "A1B2C3D4E5.a.b,Z9Y8X7W6V5.c.d"}, func(k string) string {
		if k == "ONEDOOR_PLAY_STORE_URL" {
			return testPlay
		}
		return ""
	}); err != nil || len(c.IOSAppIDs) != 2 || c.PlayStoreURL != testPlay {
		t.Errorf("parse: %v, %v, %q", err, c.IOSAppIDs, c.PlayStoreURL)
	}
}

// A list flag given twice adds up (two signing certificates during a key
// rotation) instead of keeping only the last; its first use replaces the
// default.
func TestConfig_ListFlagsAddUp(t *testing.T) {
	c := DefaultConfig()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.serveFlags(fs)
	if err := fs.Parse([]string{"--android-cert-sha256", "AA:BB", "--android-cert-sha256", "CC:DD,EE:FF", "--webpush-hosts", "push.example"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.AndroidCertSHA256, " "); got != "AA:BB CC:DD EE:FF" {
		t.Errorf("--android-cert-sha256 twice = %q, want all three", got)
	}
	if got := strings.Join(c.WebPushHosts, " "); got != "push.example" {
		t.Errorf("--webpush-hosts = %q, want the default replaced", got)
	}
}
