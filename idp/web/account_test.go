package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestSameSite: the account page's posts are refused when the browser says
// another site made them, whatever Origin says; Origin "null" passes only
// with Sec-Fetch-Site same-origin (Chromium under Referrer-Policy
// no-referrer).
func TestSameSite(t *testing.T) {
	const issuer = "https://id.example.gov.vn/idp"
	for _, c := range []struct {
		origin, site string
		ok           bool
	}{
		{"", "", true}, // not a browser
		{"https://id.example.gov.vn", "", true},
		{"https://id.example.gov.vn", "same-origin", true},
		{"null", "same-origin", true},
		{"", "same-origin", true},
		{"null", "", false},
		{"https://evil.example", "", false},
		{"https://evil.example", "same-origin", false},
		{"https://id.example.gov.vn", "same-site", false},
		{"https://id.example.gov.vn", "cross-site", false},
		{"null", "cross-site", false},
		{"", "none", false},
		{"http://id.example.gov.vn", "same-origin", false},
	} {
		r := httptest.NewRequest(http.MethodPost, issuer+"/account/login", nil)
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if c.site != "" {
			r.Header.Set("Sec-Fetch-Site", c.site)
		}
		if got := sameSite(r, issuer); got != c.ok {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: %v, want %v", c.origin, c.site, got, c.ok)
		}
	}
}

// TestAccountCSRF: the token is bound to the session cookie: another
// session's, no session's and the logout form's token differ.
func TestAccountCSRF(t *testing.T) {
	s := &Server{cfg: Config{CookieKey: []byte(strings.Repeat("k", 32))}}
	req := func(cookie string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/account", nil)
		if cookie != "" {
			r.AddCookie(&http.Cookie{Name: s.sessionCookieName(), Value: cookie, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		}
		return r
	}
	a, b, none := s.accountCSRF(req(strings.Repeat("a", 43))), s.accountCSRF(req(strings.Repeat("b", 43))), s.accountCSRF(req(""))
	if a == b || a == none || b == none {
		t.Error("account CSRF tokens of different sessions collide")
	}
	if a != s.accountCSRF(req(strings.Repeat("a", 43))) {
		t.Error("the token is not stable within a session")
	}
	if a == s.csrfToken(req(strings.Repeat("a", 43))) {
		t.Error("the account token equals the logout token")
	}
}

// TestAccountPage: names from registrations are escaped, a withdrawn
// consent has no withdraw button, and each button is labelled with its
// recipient.
func TestAccountPage(t *testing.T) {
	var b strings.Builder
	p := accountPage{T: texts["vi"], Lang: "vi", OtherLang: "en", SignedIn: true, CSRF: "tok",
		Consents: []consentView{
			{ID: "cns_a", Recipient: "Cục <Thuế>", Purpose: "Thuế & phí", Items: []string{"Họ và tên", "Ngày sinh"}, Active: true, Action: "https://id/account/consents/cns_a/withdraw",
				Receipts: []receiptView{{Kind: "Biên nhận đồng ý", URL: "https://id/account/receipts/rcpt_1", Name: "rcpt_1.jws"}}},
			{ID: "cns_b", Recipient: "Sở Y tế", Withdrawn: "01/12/2026 04:20"},
		}}
	if err := pages.ExecuteTemplate(&b, "account.html", p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`<h2>Cục &lt;Thuế&gt;</h2>`,
		`<span class="purpose">Thuế &amp; phí</span>`,
		`<dd class="items">Họ và tên, Ngày sinh</dd>`,
		`aria-label="Rút lại sự đồng ý với Cục &lt;Thuế&gt;"`,
		`<a href="https://id/account/receipts/rcpt_1" download="rcpt_1.jws">Biên nhận đồng ý</a>`,
		`Đã rút lại lúc 01/12/2026 04:20`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("account page lacks %s", want)
		}
	}
	if n := strings.Count(out, `class="btn withdraw"`); n != 1 {
		t.Errorf("%d withdraw buttons, want 1 (the active consent's)", n)
	}
}
