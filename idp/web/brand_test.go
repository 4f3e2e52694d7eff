package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp/eid"
)

func testServer(b Brand) *Server {
	return &Server{cfg: Config{Issuer: "https://id.example.gov.vn", Brand: b, SessionTTL: 8 * time.Hour, RefreshTokenTTL: 30 * 24 * time.Hour},
		texts: b.pageTexts()}
}

func get(lang string) *http.Request {
	return httptest.NewRequest(http.MethodGet, "https://id.example.gov.vn/x?lang="+lang, nil)
}

// TestBrand_Header: every page carries the header landmark with the
// deployment's name, help line and privacy link; the links are absent when
// not configured.
func TestBrand_Header(t *testing.T) {
	full := Brand{Name: "Cổng Dịch vụ công", Names: map[string]string{"en": "National Public Service Portal"},
		HelpURL: "https://help.example.gov.vn/", Hotline: "1900 1234", PrivacyURL: "https://example.gov.vn/privacy"}
	pages := map[string]func(s *Server, w http.ResponseWriter, r *http.Request){
		"message": func(s *Server, w http.ResponseWriter, r *http.Request) {
			s.renderMessage(w, r, http.StatusGone, msgExpired)
		},
		"error": func(s *Server, w http.ResponseWriter, r *http.Request) {
			s.renderError(w, r, http.StatusBadRequest, "invalid_scope", "The requested scope is invalid.")
		},
		"logout error": func(s *Server, w http.ResponseWriter, r *http.Request) { s.renderLogoutError(w, r) },
		"logout": func(s *Server, w http.ResponseWriter, _ *http.Request) {
			s.renderHTML(w, http.StatusOK, "logout.html", logoutPage{T: s.t("en"), Brand: s.cfg.Brand.view("en"), Lang: "en"}, "")
		},
		"account": func(s *Server, w http.ResponseWriter, _ *http.Request) {
			s.renderHTML(w, http.StatusOK, "account.html", accountPage{T: s.t("en"), Brand: s.cfg.Brand.view("en"), Lang: "en"}, "")
		},
		"login": func(s *Server, w http.ResponseWriter, _ *http.Request) {
			s.renderHTML(w, http.StatusOK, "login.html", loginPage{T: s.t("en"), Brand: s.cfg.Brand.view("en"), Lang: "en"}, "")
		},
	}
	for name, render := range pages {
		t.Run(name, func(t *testing.T) {
			w := httptest.NewRecorder()
			render(testServer(full), w, get("en"))
			out := w.Body.String()
			for _, want := range []string{
				`<header role="banner" class="brand">`,
				`id="brand-name">National Public Service Portal<`,
				`<a id="brand-help" href="https://help.example.gov.vn/">Help</a>`,
				`<li id="brand-hotline">Hotline: <a href="tel:19001234">1900 1234</a></li>`,
				`<a id="brand-privacy" href="https://example.gov.vn/privacy">Privacy policy</a>`,
				`<footer role="contentinfo">`,
				`— National Public Service Portal</title>`,
			} {
				if !strings.Contains(out, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			w = httptest.NewRecorder()
			render(testServer(Brand{}), w, get("en"))
			out = w.Body.String()
			if !strings.Contains(out, `id="brand-name">OneDoor<`) {
				t.Error("default brand name is not OneDoor")
			}
			for _, absent := range []string{"brand-help", "brand-hotline", "brand-privacy", "<nav aria-label"} {
				if strings.Contains(out, absent) {
					t.Errorf("unconfigured brand shows %s", absent)
				}
			}
		})
	}
	// The Vietnamese page takes the default name; the brand replaces
	// OneDoor in the texts.
	w := httptest.NewRecorder()
	testServer(full).renderMessage(w, get("vi"), http.StatusOK, msgLoggedOut)
	if out := w.Body.String(); !strings.Contains(out, `id="brand-name">Cổng Dịch vụ công<`) || !strings.Contains(out, "Bạn đã đăng xuất khỏi Cổng Dịch vụ công.") {
		t.Errorf("Vietnamese logged-out page:\n%s", out)
	}
}

func TestBrand_Problems(t *testing.T) {
	for _, c := range []struct {
		name string
		b    Brand
		want string
	}{
		{"relative help URL", Brand{HelpURL: "/help"}, "--brand-help-url must be an absolute http(s) URL"},
		{"javascript privacy URL", Brand{PrivacyURL: "javascript:alert(1)"}, "--brand-privacy-url must be an absolute http(s) URL"},
		{"ftp help URL", Brand{HelpURL: "ftp://example.gov.vn/"}, "--brand-help-url"},
		{"hotline with letters", Brand{Hotline: "call 1900"}, "--brand-hotline"},
		{"unknown language", Brand{Names: map[string]string{"fr": "x"}}, `language "fr"`},
	} {
		got := strings.Join(c.b.Problems(), "\n")
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: problems %q, want %q", c.name, got, c.want)
		}
	}
	ok := Brand{Name: "X", HelpURL: "https://a.example/", Hotline: "+84 (24) 1900-1234", PrivacyURL: "http://localhost:8080/p"}
	if p := ok.Problems(); len(p) > 0 {
		t.Errorf("valid brand: %v", p)
	}
}

// TestRenderError_NoFositeText: the error page explains the code in the
// citizen's language and shows the code only as a reference; the server's
// English description never reaches it.
func TestRenderError_NoFositeText(t *testing.T) {
	s := testServer(Brand{})
	for _, c := range []struct{ code, desc, key string }{
		{"invalid_request", "The request is missing a required parameter, includes an invalid parameter value. Make sure that the parameter is valid.", "err.request"},
		{"invalid_request", "The redirect_uri is not registered for this client.", "err.redirect"},
		{"invalid_client", "Client authentication failed (e.g., unknown client, no client authentication included, or unsupported authentication method).", "err.client"},
		{"unauthorized_client", "The client is not authorized to request a token using this method.", "err.client"},
		{"invalid_scope", "The requested scope is invalid, unknown, or malformed. The OAuth 2.0 Client is not allowed to request scope 'x'.", "err.scope"},
		{"unsupported_response_type", "The authorization server does not support obtaining a token using this method.", "err.request"},
		{"access_denied", "The resource owner or authorization server denied the request.", "err.denied"},
		{"server_error", "The authorization server encountered an unexpected condition: pq: relation does not exist", "err.server"},
		{"login_required", "The Authorization Server requires End-User authentication.", "err.login"},
		{"request_uri_not_supported", "Only request_uri values issued by the pushed authorization request endpoint are accepted.", "err.request"},
		{"invalid_request_uri", "The request_uri in the authorization request returns an error or contains invalid data.", "err.request"}, // an expired or used PAR request, not a relaying site
	} {
		for _, lang := range []string{"vi", "en"} {
			w := httptest.NewRecorder()
			s.renderError(w, get(lang), http.StatusBadRequest, c.code, c.desc)
			out := w.Body.String()
			if w.Code != http.StatusBadRequest {
				t.Errorf("%s: status %d", c.code, w.Code)
			}
			if want := htmlEscape(texts[lang][c.key]); !strings.Contains(out, want) {
				t.Errorf("%s (%s): page lacks %s's text %q", c.code, lang, c.key, want)
			}
			if !strings.Contains(out, `id="error-code">Mã lỗi / Error code: <code>`+c.code+`</code>`) {
				t.Errorf("%s (%s): no error code reference", c.code, lang)
			}
			if strings.Contains(out, htmlEscape(c.desc)) || strings.Contains(out, htmlEscape(c.desc[:20])) {
				t.Errorf("%s (%s): the description reached the page", c.code, lang)
			}
		}
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestLoginPage_AccessDuration: with offline_access the page states the
// refresh tokens' lifetime in days (when the client may hold refresh
// tokens); without, that access ends with the session.
func TestLoginPage_AccessDuration(t *testing.T) {
	s := testServer(Brand{})
	for _, c := range []struct {
		scope      string
		refreshes  bool
		days, hrs  int
		wantEN     string
		wantVIPart string
	}{
		{"openid profile offline_access", true, 30, 0, "for up to 30 days after it last renews it", "tối đa 30 ngày"},
		{"openid profile offline_access", false, 0, 8, "your login session ends (at most 8 hours)", "(tối đa 8 giờ)"},
		{"openid profile", true, 0, 8, "your login session ends (at most 8 hours)", "(tối đa 8 giờ)"},
	} {
		lr := &eid.LoginRequest{ClientID: "c", Continuation: []byte("scope=" + strings.ReplaceAll(c.scope, " ", "+"))}
		d, h := s.accessDuration(lr, c.refreshes)
		if d != c.days || h != c.hrs {
			t.Errorf("%s: %d days, %d hours; want %d, %d", c.scope, d, h, c.days, c.hrs)
		}
		for lang, want := range map[string]string{"en": c.wantEN, "vi": c.wantVIPart} {
			var b strings.Builder
			p := loginPage{T: s.t(lang), Lang: lang, Brand: s.cfg.Brand.view(lang), AccessDays: d, SessionHours: h, ClientName: "Cục Thuế"}
			if err := pages.ExecuteTemplate(&b, "login.html", p); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			if !strings.Contains(out, `id="access-duration"`) || !strings.Contains(out, want) {
				t.Errorf("%s (%s): access duration missing or wrong, want %q", c.scope, lang, want)
			}
		}
	}
}

// TestLoginPage_QRAlt: the QR image says what it is for and for whom.
func TestLoginPage_QRAlt(t *testing.T) {
	for lang, want := range map[string]string{
		"en": `alt="QR code: scan it with the eID app to log in to Cục Thuế"`,
		"vi": `alt="Mã QR: quét bằng ứng dụng định danh điện tử để đăng nhập vào Cục Thuế"`,
	} {
		var b strings.Builder
		if err := pages.ExecuteTemplate(&b, "login.html", loginPage{T: texts[lang], Lang: lang, ClientName: "Cục Thuế"}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%s login page lacks %s", lang, want)
		}
	}
}

// The duration of access is rounded up: the page must not understate it.
func TestAccessDuration_RoundsUp(t *testing.T) {
	s := testServer(Brand{})
	s.cfg.RefreshTokenTTL, s.cfg.SessionTTL = 36*time.Hour, 90*time.Minute
	if d, _ := s.accessDuration(&eid.LoginRequest{Continuation: []byte("scope=openid+offline_access")}, true); d != 2 {
		t.Errorf("36 h of refresh tokens = %d days, want 2", d)
	}
	if _, h := s.accessDuration(&eid.LoginRequest{Continuation: []byte("scope=openid")}, true); h != 2 {
		t.Errorf("a 90-minute session = %d hours, want 2", h)
	}
}
