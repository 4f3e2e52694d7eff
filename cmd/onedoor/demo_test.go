package main

import (
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// demoGet asks the demo site rp for target (under its registered host)
// with the given request headers.
func demoGet(t *testing.T, rp *demoRP, target string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Host = "localhost:1"
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, req)
	return rec
}

func newTestDemoRP() *demoRP {
	return newDemoRP("http://127.0.0.1:1", "http://localhost:1", "demo", "secret")
}

// esc is how html/template writes s as text.
var esc = template.HTMLEscapeString

var htmlLangRE = regexp.MustCompile(`<html lang="([a-z]+)">`)

func pageLang(body string) string {
	if m := htmlLangRE.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

// The demo site refuses a callback whose state was not issued to this
// browser (login CSRF), before it looks at anything else.
func TestDemoRP_CallbackNeedsThisBrowsersState(t *testing.T) {
	rp := newTestDemoRP()
	for name, cookie := range map[string]string{"forged state": "demo-rp-state=mine", "no state cookie": ""} {
		t.Run(name, func(t *testing.T) {
			rec := demoGet(t, rp, "/callback?state=forged&code=x", map[string]string{"Cookie": cookie, "Accept-Language": "en"})
			body := rec.Body.String()
			if rec.Code != http.StatusBadRequest || !strings.Contains(body, esc(demoTexts["en"]["problem.start_again"])) || !strings.Contains(body, `id="retry" href="/login"`) {
				t.Errorf("forged callback: %d %.300s", rec.Code, body)
			}
		})
	}
	t.Run("state already used", func(t *testing.T) {
		rec := demoGet(t, rp, "/callback?state=mine&code=x", map[string]string{"Cookie": "demo-rp-state=mine"})
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), demoTexts["vi"]["problem.start_again"]) {
			t.Errorf("unknown state: %d %.300s", rec.Code, rec.Body.String())
		}
	})
}

// Opened at 127.0.0.1, the demo site first moves the browser to the host its
// callback uses, so the login's state cookie comes back with it.
func TestDemoRP_MovesTheBrowserToItsRegisteredHost(t *testing.T) {
	rp := newDemoRP("http://localhost:1", "http://localhost:8090", "demo", "secret")
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8090/login?x=1", nil)
	rec := httptest.NewRecorder()
	rp.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound || rec.Header().Get("Location") != "http://localhost:8090/" {
		t.Fatalf("got %d to %q", rec.Code, rec.Header().Get("Location"))
	}
}

// The site speaks Vietnamese unless ?lang=, the remembered choice or the
// browser's Accept-Language says English.
func TestDemoRP_Language(t *testing.T) {
	rp := newTestDemoRP()
	for _, tc := range []struct {
		name, target, acceptLang, cookie string
		want                             string
		remembers                        bool
	}{
		{name: "nothing said", target: "/", want: "vi"},
		{name: "English browser", target: "/", acceptLang: "en-US,en;q=0.9", want: "en"},
		{name: "Vietnamese browser", target: "/", acceptLang: "vi-VN,vi;q=0.9,en;q=0.5", want: "vi"},
		{name: "first known language wins", target: "/", acceptLang: "fr-FR, en;q=0.5, vi;q=0.4", want: "en"},
		{name: "q=0 refuses a language", target: "/", acceptLang: "en;q=0, vi;q=0.5", want: "vi"},
		{name: "neither", target: "/", acceptLang: "fr-FR,fr", want: "vi"},
		{name: "not a prefix match", target: "/", acceptLang: "eng", want: "vi"},
		{name: "query", target: "/?lang=en", acceptLang: "vi", want: "en", remembers: true},
		{name: "query over cookie", target: "/?lang=vi", acceptLang: "en", cookie: "demo-rp-lang=en", want: "vi", remembers: true},
		{name: "cookie over Accept-Language", target: "/", acceptLang: "vi", cookie: "demo-rp-lang=en", want: "en"},
		{name: "unknown query value", target: "/?lang=fr", acceptLang: "en", want: "en"},
		{name: "unknown cookie value", target: "/", cookie: "demo-rp-lang=xx", want: "vi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := demoGet(t, rp, tc.target, map[string]string{"Accept-Language": tc.acceptLang, "Cookie": tc.cookie})
			body := rec.Body.String()
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d", rec.Code)
			}
			other := otherDemoLang(tc.want)
			if got := pageLang(body); got != tc.want {
				t.Errorf("html lang = %q, want %q", got, tc.want)
			}
			if got := rec.Header().Get("Content-Language"); got != tc.want {
				t.Errorf("Content-Language = %q, want %q", got, tc.want)
			}
			for _, s := range []string{esc(demoTexts[tc.want]["login"]), esc(demoTexts[tc.want]["home_intro"]),
				`id="lang-switch" href="/?lang=` + other + `" hreflang="` + other + `" lang="` + other + `">` + demoTexts[tc.want]["lang_switch"] + `</a>`} {
				if !strings.Contains(body, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			if strings.Contains(body, demoTexts[other]["login"]) {
				t.Errorf("page also has the %s login button", other)
			}
			set := rec.Header().Get("Set-Cookie")
			if tc.remembers != strings.HasPrefix(set, "demo-rp-lang="+tc.want+";") {
				t.Errorf("Set-Cookie = %q, remembers %v", set, tc.remembers)
			}
		})
	}
}

// Every string of the site exists in both languages.
func TestDemoRP_TextsInBothLanguages(t *testing.T) {
	for key, vi := range demoTexts["vi"] {
		if en := demoTexts["en"][key]; en == "" || vi == "" {
			t.Errorf("%s: vi %q, en %q", key, vi, en)
		}
	}
	for key := range demoTexts["en"] {
		if _, ok := demoTexts["vi"][key]; !ok {
			t.Errorf("%s has no Vietnamese text", key)
		}
	}
}

// signIn gives rp a session holding claims and returns its cookie.
func signIn(rp *demoRP, claims map[string]any) string {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	rp.sessions["sid"] = &rpSession{Claims: claims, IDToken: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig"}
	return "demo-rp=sid"
}

var claimsDL = regexp.MustCompile(`(?s)<dl class="claims" id="claims"[^>]*>(.*?)</dl>`)

// claimsHTML is the claims list of a signed-in page.
func claimsHTML(t *testing.T, body string) string {
	t.Helper()
	m := claimsDL.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no claims list in %.500s", body)
	}
	return m[1]
}

// The claims read as a citizen expects: labels in the page's language, the
// address as an address, dates as dates, never Go or JSON syntax.
func TestDemoRP_ClaimsRendering(t *testing.T) {
	claims := func(address any) map[string]any {
		return map[string]any{
			"sub": "c7b1a0e2", "name": "Nguyễn Văn Demo", "family_name": "Nguyễn", "given_name": "Văn Demo",
			"birthdate": "1990-01-15", "gender": "male", "personal_id": "000000000001",
			"phone_number": "+84900000001", "phone_number_verified": true,
			"address": address, "acr": "urn:onedoor:loa:high", "updated_at": float64(time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC).Unix()),
			"x_custom": map[string]any{"b": true, "a": "z"},
		}
	}
	formatted := map[string]any{"formatted": "1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)", "country": "VN"}
	parts := map[string]any{"street_address": "12 Ngõ Mẫu\nTòa B", "locality": "Phường Thử Nghiệm", "region": "Hà Nội", "postal_code": "100000", "country": "VN"}
	for _, tc := range []struct {
		name, lang string
		address    any
		want       []string
	}{
		{"formatted, vi", "vi", formatted, []string{
			"<dt>Địa chỉ</dt>", ">1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)</dd>",
			"<dt>Ngày sinh</dt>", ">15/01/1990</dd>", "<dt>Giới tính</dt>", ">Nam</dd>",
			"<dt>Số định danh cá nhân</dt>", ">000000000001</dd>",
			`>&#43;84900000001 <span class="note">(đã xác minh)</span></dd>`,
			">Cao <code>urn:onedoor:loa:high</code></dd>", ">10:04 02/01/2026 (giờ Việt Nam)</dd>",
			"<dt>x_custom</dt>", ">a: z<br>b: Có</dd>",
		}},
		{"formatted, en", "en", formatted, []string{
			"<dt>Address</dt>", ">1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)</dd>",
			"<dt>Date of birth</dt>", ">15 January 1990</dd>", "<dt>Gender</dt>", ">Male</dd>",
			`>&#43;84900000001 <span class="note">(verified)</span></dd>`,
			">High <code>urn:onedoor:loa:high</code></dd>", ">2 January 2026, 10:04 (Vietnam time)</dd>",
		}},
		{"parts, vi", "vi", parts, []string{">12 Ngõ Mẫu<br>Tòa B<br>Phường Thử Nghiệm, Hà Nội, 100000<br>Việt Nam</dd>"}},
		{"parts, en", "en", parts, []string{">12 Ngõ Mẫu<br>Tòa B<br>Phường Thử Nghiệm, Hà Nội, 100000<br>Vietnam</dd>"}},
		{"country only", "en", map[string]any{"country": "FR"}, []string{`data-claim="address">FR</dd>`}},
		{"not an object", "en", "5 Phố Mẫu", []string{`data-claim="address">5 Phố Mẫu</dd>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := newTestDemoRP()
			rec := demoGet(t, rp, "/?lang="+tc.lang, map[string]string{"Cookie": signIn(rp, claims(tc.address))})
			body := rec.Body.String()
			if rec.Code != http.StatusOK || pageLang(body) != tc.lang {
				t.Fatalf("status %d, lang %q", rec.Code, pageLang(body))
			}
			if !strings.Contains(body, `<h1 id="welcome">`+demoTexts[tc.lang]["welcome"]+` <span id="user-name">Nguyễn Văn Demo</span></h1>`) {
				t.Errorf("no welcome heading in %.800s", body)
			}
			list := claimsHTML(t, body)
			for _, s := range tc.want {
				if !strings.Contains(list, s) {
					t.Errorf("claims lack %q:\n%s", s, list)
				}
			}
			for _, bad := range []string{"map[", "{", "}", "&#34;", "formatted", "phone_number_verified"} {
				if strings.Contains(list, bad) {
					t.Errorf("claims contain %q:\n%s", bad, list)
				}
			}
			// The citizen's name comes first, the opaque sub last of the known ones.
			if i, j := strings.Index(list, "Nguyễn Văn Demo"), strings.Index(list, "c7b1a0e2"); i < 0 || j < i {
				t.Errorf("claims order: name at %d, sub at %d", i, j)
			}
		})
	}
}

// The birthdate forms OIDC allows.
func TestDemoRP_Birthdate(t *testing.T) {
	for _, tc := range []struct{ in, vi, en string }{
		{"1990-01-15", "15/01/1990", "15 January 1990"},
		{"0000-06-30", "30/06", "30 June"},
		{"1985", "1985", "1985"},
		{"15/01/1990", "15/01/1990", "15/01/1990"},
	} {
		if got := demoDate(tc.in, "vi"); got != tc.vi {
			t.Errorf("demoDate(%q, vi) = %q, want %q", tc.in, got, tc.vi)
		}
		if got := demoDate(tc.in, "en"); got != tc.en {
			t.Errorf("demoDate(%q, en) = %q, want %q", tc.in, got, tc.en)
		}
	}
}

// The IdP's error answers become pages in the citizen's language:
// declining is not a failure, other codes are a reference for the help
// desk, and error_description, which anyone can write, never reaches the
// page.
func TestDemoRP_CallbackErrors(t *testing.T) {
	const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	for _, tc := range []struct {
		name, lang, errCode string
		status              int
		page, shownCode     string
	}{
		{"declined, vi", "vi", "access_denied", http.StatusForbidden, problemDeclined, ""},
		{"declined, en", "en", "access_denied", http.StatusForbidden, problemDeclined, ""},
		{"other code, vi", "vi", "invalid_scope", http.StatusBadRequest, problemIDP, "invalid_scope"},
		{"other code, en", "en", "login_required", http.StatusBadRequest, problemIDP, "login_required"},
		{"IdP down", "en", "temporarily_unavailable", http.StatusServiceUnavailable, problemUnavailable, "temporarily_unavailable"},
		{"IdP failed", "vi", "server_error", http.StatusBadGateway, problemUnavailable, "server_error"},
		{"hostile code", "en", hostile, http.StatusBadRequest, problemIDP, ""},
		{"long code", "en", strings.Repeat("a", 65), http.StatusBadRequest, problemIDP, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rp := newTestDemoRP()
			rp.pending["st"] = pendingLogin{nonce: "n", verifier: "v", at: time.Now()}
			q := url.Values{"state": {"st"}, "error": {tc.errCode}, "error_description": {hostile + " description-marker"}, "iss": {rp.issuer}}
			rec := demoGet(t, rp, "/callback?"+q.Encode(), map[string]string{"Cookie": "demo-rp-state=st", "Accept-Language": tc.lang})
			body := rec.Body.String()
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			texts := demoTexts[tc.lang]
			if pageLang(body) != tc.lang || !strings.Contains(body, `<p id="rp-error">`+esc(texts["problem."+tc.page])+`</p>`) ||
				!strings.Contains(body, "<h1>"+esc(texts["problem."+tc.page+".title"])+"</h1>") {
				t.Errorf("page is not the %s %q page: %.1000s", tc.lang, tc.page, body)
			}
			if !strings.Contains(body, `<a class="btn" id="retry" href="/login">`+texts["retry"]+`</a>`) {
				t.Errorf("no try-again link")
			}
			if tc.shownCode == "" {
				if strings.Contains(body, `id="error-code"`) {
					t.Errorf("a code is shown")
				}
			} else if !strings.Contains(body, texts["reference"]+`: <code id="error-code">`+tc.shownCode+`</code>`) {
				t.Errorf("the code %q is not shown as a reference", tc.shownCode)
			}
			for _, bad := range []string{"<script", "<img", "onerror", "alert", "description-marker"} {
				if strings.Contains(body, bad) {
					t.Errorf("page contains %q", bad)
				}
			}
			if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
				t.Errorf("CSP = %q", csp)
			}
			// The callback cannot be loaded twice: the language switch shows
			// the same page from /problem.
			sw := regexp.MustCompile(`id="lang-switch" href="([^"]+)"`).FindStringSubmatch(body)
			if sw == nil || !strings.HasPrefix(sw[1], "/problem?") {
				t.Fatalf("language switch: %v", sw)
			}
			other := otherDemoLang(tc.lang)
			again := demoGet(t, rp, strings.ReplaceAll(sw[1], "&amp;", "&"), nil)
			if b := again.Body.String(); again.Code != tc.status || pageLang(b) != other ||
				!strings.Contains(b, esc(demoTexts[other]["problem."+tc.page])) || !strings.Contains(b, tc.shownCode) {
				t.Errorf("switched page: %d %.600s", again.Code, b)
			}
		})
	}
}

// /problem shows only the fixed texts, whatever it is asked for.
func TestDemoRP_ProblemPage(t *testing.T) {
	rp := newTestDemoRP()
	for _, tc := range []struct {
		target string
		status int
		page   string
	}{
		{"/problem?reason=declined&lang=en", http.StatusForbidden, problemDeclined},
		{"/problem?reason=failed&code=id_token&lang=en", http.StatusBadGateway, problemFailed},
		{"/problem?reason=failed&code=wrong_issuer&lang=en", http.StatusBadRequest, problemFailed},
		{"/problem?reason=%3Cscript%3E&lang=en", http.StatusBadRequest, problemStartAgain},
		{"/problem?lang=en", http.StatusBadRequest, problemStartAgain},
	} {
		rec := demoGet(t, rp, tc.target, nil)
		if b := rec.Body.String(); rec.Code != tc.status || !strings.Contains(b, esc(demoTexts["en"]["problem."+tc.page])) || strings.Contains(b, "<script") {
			t.Errorf("%s: %d %.400s", tc.target, rec.Code, b)
		}
	}
}
