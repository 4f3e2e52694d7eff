package web

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/onedoor/onedoor/idp/eid"
)

// AppLinks configures the https app link: the apps that may claim it and
// the stores the fallback page points to. Zero means no app claims it: the
// link always shows the fallback page and the well-known files are 404.
type AppLinks struct {
	// IOSAppIDs are the iOS apps ("TEAMID.bundle.id") listed in
	// /.well-known/apple-app-site-association.
	IOSAppIDs []string
	// AndroidPackage and AndroidCertSHA256 (colon-separated hex, as
	// keytool prints it) make /.well-known/assetlinks.json.
	AndroidPackage    string
	AndroidCertSHA256 []string
	// AppStoreURL and PlayStoreURL are the app's store pages; an empty one
	// is not shown.
	AppStoreURL, PlayStoreURL string
}

// Paths of the app link files. The operating systems fetch them from the
// host's root, whatever the issuer's path.
const (
	PathAppLogin         = eid.AppLinkPath
	PathAppleAssociation = "/.well-known/apple-app-site-association"
	PathAssetLinks       = "/.well-known/assetlinks.json"
)

func (s *Server) appLinkRoutes(m *prefixMux) {
	m.HandleFunc("GET "+PathAppLogin, s.appLogin)
	cfg := s.cfg.AppLinks
	if len(cfg.IOSAppIDs) > 0 {
		body := appleAssociation(cfg.IOSAppIDs, s.base+PathAppLogin)
		s.mux.HandleFunc("GET "+PathAppleAssociation, func(w http.ResponseWriter, _ *http.Request) { writeAppLinkFile(w, body) })
	}
	if cfg.AndroidPackage != "" {
		body := assetLinks(cfg.AndroidPackage, cfg.AndroidCertSHA256)
		s.mux.HandleFunc("GET "+PathAssetLinks, func(w http.ResponseWriter, _ *http.Request) { writeAppLinkFile(w, body) })
	}
}

// appleAssociation is the apple-app-site-association document: the apps
// may open the app link's path, and nothing else on the host.
func appleAssociation(appIDs []string, path string) []byte {
	type component struct {
		Path    string `json:"/"`
		Comment string `json:"comment"`
	}
	doc := map[string]any{"applinks": map[string]any{"details": []any{map[string]any{
		"appIDs":     appIDs,
		"components": []component{{Path: path, Comment: "OneDoor login requests (same-device button)"}},
	}}}}
	b, _ := json.Marshal(doc)
	return b
}

// assetLinks is the Digital Asset Links statement that lets the Android
// app verify its App Link intent filter for this host.
func assetLinks(pkg string, certs []string) []byte {
	upper := make([]string, len(certs))
	for i, c := range certs {
		upper[i] = strings.ToUpper(c) // the form Android compares
	}
	certs = upper
	b, _ := json.Marshal([]any{map[string]any{
		"relation": []string{"delegate_permission/common.handle_all_urls"},
		"target":   map[string]any{"namespace": "android_app", "package_name": pkg, "sha256_cert_fingerprints": certs},
	}})
	return b
}

// writeAppLinkFile serves a well-known file as JSON, without redirect, as
// both operating systems require; it changes only with the configuration.
func writeAppLinkFile(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(body)
}

type appLinkPage struct {
	T            map[string]string
	Brand        brandView
	Lang         string
	OtherLang    string
	OtherLangURL string
	// OpenURL is the custom-scheme payload in its same-device form, for a
	// phone whose app is installed but did not claim the https link (iOS
	// keeps a link to the page's own domain in the browser).
	OpenURL      template.URL
	AppStoreURL  string
	PlayStoreURL string
	LoginURL     string
	// StatusURL is the login's status, polled so that the page moves on
	// by itself once the app has answered: on iOS this page is where a
	// same-device login waits, app installed or not.
	StatusURL string
	Nonce     string
}

// appLogin is the https app link seen in a browser: the app did not claim
// it (not installed, or the browser kept it). The page offers the app's
// stores, the custom-scheme link and the way back to the login page. It
// carries nothing but the request's public id, which the QR code shows
// anyway: opening it approves nothing and binds nothing.
func (s *Server) appLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("request")
	if len(q["request"]) != 1 || !eid.ValidRequestID(id) {
		s.renderMessage(w, r, http.StatusBadRequest, msgBadAppLink)
		return
	}
	lr, st, err := s.eid.Lookup(r.Context(), id)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if st == eid.StatusExpired || lr == nil {
		s.renderMessage(w, r, http.StatusGone, msgExpired)
		return
	}
	lang := pickLang(r)
	continueURL := s.cfg.Issuer + PathContinue + "?id=" + url.QueryEscape(lr.ID) + "&lang=" + lang
	if st != eid.StatusPending {
		// The app has answered: the continuation finishes the login in the
		// browser that started it (and refuses any other).
		http.Redirect(w, r, continueURL, http.StatusSeeOther) // #nosec G710 -- the issuer, a checked request id and vi/en
		return
	}
	p := appLinkPage{
		T:         s.t(lang),
		Brand:     s.cfg.Brand.view(lang),
		Lang:      lang,
		OtherLang: "en",
		// The same-device form: the app approves it with a return code,
		// as it does the https link it stands in for.
		OpenURL:      template.URL(eid.SameDevicePayload(s.cfg.Issuer, lr.ID)), // #nosec G203 -- built by eid.SameDevicePayload from the issuer and a server-made id
		AppStoreURL:  s.cfg.AppLinks.AppStoreURL,
		PlayStoreURL: s.cfg.AppLinks.PlayStoreURL,
		// The continuation shows the login page again in the browser
		// that started it, and says so in any other.
		LoginURL:  continueURL,
		StatusURL: s.cfg.Issuer + PathStatus + "?id=" + url.QueryEscape(lr.ID),
		Nonce:     randomToken()[:22],
	}
	if lang == "en" {
		p.OtherLang = "vi"
	}
	p.OtherLangURL = s.cfg.Issuer + PathAppLogin + "?request=" + url.QueryEscape(lr.ID) + "&lang=" + p.OtherLang
	s.renderHTML(w, http.StatusOK, "applink.html", p, p.Nonce)
}

var msgBadAppLink = message{"msg.bad_app_link"}

// appLinkTexts are the app link pages' strings, merged into texts.
var appLinkTexts = map[string]map[string]string{
	"vi": {
		"applink_title":          "Cần ứng dụng định danh điện tử",
		"applink_intro":          "Liên kết này mở ứng dụng định danh điện tử để bạn chấp thuận đăng nhập. Ứng dụng chưa mở: có thể thiết bị này chưa cài ứng dụng.",
		"applink_install":        "Cài ứng dụng:",
		"applink_app_store":      "Tải trên App Store",
		"applink_play_store":     "Tải trên Google Play",
		"applink_open":           "Mở ứng dụng",
		"applink_open_help":      "Nếu đã cài ứng dụng, bấm nút này để mở.",
		"applink_back":           "Quay lại trang đăng nhập",
		"applink_back_help":      "Hoặc quay lại trang đăng nhập và quét mã QR bằng ứng dụng trên một điện thoại khác.",
		"msg.bad_app_link.title": "Liên kết không hợp lệ",
		"msg.bad_app_link":       "Liên kết mở ứng dụng này không hợp lệ. Hãy quay lại trang của cơ quan và đăng nhập lại.",
	},
	"en": {
		"applink_title":          "The eID app is needed",
		"applink_intro":          "This link opens the eID app so that you can approve the login. The app did not open: it may not be installed on this device.",
		"applink_install":        "Install the app:",
		"applink_app_store":      "Download on the App Store",
		"applink_play_store":     "Get it on Google Play",
		"applink_open":           "Open the app",
		"applink_open_help":      "If the app is installed, press this button to open it.",
		"applink_back":           "Back to the login page",
		"applink_back_help":      "Or go back to the login page and scan the QR code with the app on another phone.",
		"msg.bad_app_link.title": "Invalid link",
		"msg.bad_app_link":       "This app link is not valid. Go back to the agency's site and log in again.",
	},
}

func init() {
	for lang, tx := range appLinkTexts {
		for k, v := range tx {
			texts[lang][k] = v
		}
	}
}
