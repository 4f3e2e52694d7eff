package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// The demo agency site's pages: one template, strings per language, the
// claims it received rendered for a citizen to read.

//go:embed templates/demosite.html
var demoSiteFS embed.FS

var demoPage = template.Must(template.ParseFS(demoSiteFS, "templates/demosite.html"))

// demoLangCookie remembers the language a visitor chose with ?lang=.
const demoLangCookie = "demo-rp-lang"

var demoTexts = map[string]map[string]string{
	"vi": {
		"site_name":       "Cổng Dịch vụ công Demo",
		"demo_banner":     "DEMO — mọi dữ liệu trên trang này đều là giả",
		"lang_switch":     "English",
		"home_title":      "Cổng Dịch vụ công Demo",
		"home_intro":      "Đăng nhập để sử dụng các dịch vụ công trực tuyến của cơ quan.",
		"home_help":       "Bạn sẽ xác nhận đăng nhập bằng ứng dụng định danh điện tử trên điện thoại. Cơ quan chỉ nhận những thông tin bạn đồng ý chia sẻ.",
		"login":           "Đăng nhập với OneDoor",
		"welcome":         "Xin chào,",
		"signed_in_intro": "Bạn đã đăng nhập bằng OneDoor.",
		"claims_title":    "Thông tin cơ quan đã nhận",
		"logout":          "Đăng xuất",
		"dev_title":       "Dành cho nhà phát triển",
		"dev_intro":       "Dữ liệu gốc mà trang này nhận được từ OneDoor.",
		"dev_claims":      "Claims (JSON, từ UserInfo và ID token)",
		"dev_id_token":    "ID token",
		"footer":          "Trang mô phỏng của một cơ quan, đăng nhập bằng OneDoor.",
		"reference":       "Mã tham chiếu",
		"back_home":       "Về trang chủ",
		"retry":           "Thử lại",
		"start_again":     "Đăng nhập lại",
		"unknown":         "(không rõ)",
		"yes":             "Có",
		"no":              "Không",
		"verified":        "đã xác minh",
		"vietnam_time":    "giờ Việt Nam",

		"problem.declined.title":    "Đăng nhập không được chấp thuận",
		"problem.declined":          "Yêu cầu đăng nhập đã bị từ chối: bạn đã từ chối trên ứng dụng định danh điện tử, hoặc thiết bị của bạn không còn được dùng để đăng nhập. Cơ quan không nhận được thông tin nào của bạn. Bạn có thể thử lại.",
		"problem.idp.title":         "Đăng nhập không thành công",
		"problem.idp":               "OneDoor không thể hoàn tất việc đăng nhập. Vui lòng thử lại; nếu vẫn không được, hãy liên hệ bộ phận hỗ trợ của cơ quan và cung cấp mã tham chiếu bên dưới.",
		"problem.unavailable.title": "Dịch vụ đăng nhập tạm thời gián đoạn",
		"problem.unavailable":       "Hiện không kết nối được với dịch vụ đăng nhập OneDoor. Vui lòng thử lại sau ít phút.",
		"problem.failed.title":      "Đăng nhập không thành công",
		"problem.failed":            "Trang này không thể xác minh kết quả đăng nhập nhận được từ OneDoor, nên bạn chưa được đăng nhập. Vui lòng thử lại.",
		"problem.start_again.title": "Vui lòng bắt đầu lại",
		"problem.start_again":       "Lượt đăng nhập này không được bắt đầu trên trình duyệt này, hoặc đã hết hạn hay đã được sử dụng. Để bảo vệ bạn, hãy bắt đầu đăng nhập lại từ trang này.",

		"claim.sub":                   "Mã người dùng (sub)",
		"claim.name":                  "Họ và tên",
		"claim.family_name":           "Họ",
		"claim.given_name":            "Tên",
		"claim.middle_name":           "Tên đệm",
		"claim.birthdate":             "Ngày sinh",
		"claim.gender":                "Giới tính",
		"claim.address":               "Địa chỉ",
		"claim.phone_number":          "Số điện thoại",
		"claim.phone_number_verified": "Số điện thoại đã xác minh",
		"claim.email":                 "Thư điện tử",
		"claim.email_verified":        "Thư điện tử đã xác minh",
		"claim.personal_id":           "Số định danh cá nhân",
		"claim.acr":                   "Mức độ bảo đảm đăng nhập",
		"claim.updated_at":            "Cập nhật lúc",
		"claim.auth_time":             "Xác thực lúc",
		"claim.locale":                "Ngôn ngữ",
		"claim.zoneinfo":              "Múi giờ",

		"gender.male":   "Nam",
		"gender.female": "Nữ",
		"gender.other":  "Khác",

		"level.low":         "Thấp",
		"level.substantial": "Đáng kể",
		"level.high":        "Cao",

		"country.VN": "Việt Nam",
	},
	"en": {
		"site_name":       "Demo Public Service Portal",
		"demo_banner":     "DEMO — all data on this site is fake",
		"lang_switch":     "Tiếng Việt",
		"home_title":      "Demo Public Service Portal",
		"home_intro":      "Log in to use the agency's online public services.",
		"home_help":       "You confirm the login with the eID app on your phone. The agency receives only the information you agree to share.",
		"login":           "Log in with OneDoor",
		"welcome":         "Welcome,",
		"signed_in_intro": "You are logged in with OneDoor.",
		"claims_title":    "Information the agency received",
		"logout":          "Log out",
		"dev_title":       "For developers",
		"dev_intro":       "The raw data this site received from OneDoor.",
		"dev_claims":      "Claims (JSON, from UserInfo and the ID token)",
		"dev_id_token":    "ID token",
		"footer":          "An agency's demo site that logs citizens in with OneDoor.",
		"reference":       "Reference",
		"back_home":       "Back to the home page",
		"retry":           "Try again",
		"start_again":     "Start again",
		"unknown":         "(unknown)",
		"yes":             "Yes",
		"no":              "No",
		"verified":        "verified",
		"vietnam_time":    "Vietnam time",

		"problem.declined.title":    "The login was not approved",
		"problem.declined":          "The login request was refused: you declined it in your eID app, or your device can no longer be used to log in. The agency received none of your information. You can try again.",
		"problem.idp.title":         "The login did not succeed",
		"problem.idp":               "OneDoor could not complete the login. Please try again; if it keeps failing, contact the agency's help desk and quote the reference below.",
		"problem.unavailable.title": "The login service is temporarily unavailable",
		"problem.unavailable":       "The OneDoor login service cannot be reached right now. Please try again in a few minutes.",
		"problem.failed.title":      "The login did not succeed",
		"problem.failed":            "This site could not verify the login result it received from OneDoor, so you are not logged in. Please try again.",
		"problem.start_again.title": "Please start again",
		"problem.start_again":       "This login was not started in this browser, or it has expired or was already used. To keep you safe, please start the login again from this site.",

		"claim.sub":                   "User identifier (sub)",
		"claim.name":                  "Full name",
		"claim.family_name":           "Family name",
		"claim.given_name":            "Given name",
		"claim.middle_name":           "Middle name",
		"claim.birthdate":             "Date of birth",
		"claim.gender":                "Gender",
		"claim.address":               "Address",
		"claim.phone_number":          "Phone number",
		"claim.phone_number_verified": "Phone number verified",
		"claim.email":                 "Email",
		"claim.email_verified":        "Email verified",
		"claim.personal_id":           "Personal identification number",
		"claim.acr":                   "Login assurance level",
		"claim.updated_at":            "Updated at",
		"claim.auth_time":             "Authenticated at",
		"claim.locale":                "Language",
		"claim.zoneinfo":              "Time zone",

		"gender.male":   "Male",
		"gender.female": "Female",
		"gender.other":  "Other",

		"level.low":         "Low",
		"level.substantial": "Substantial",
		"level.high":        "High",

		"country.VN": "Vietnam",
	},
}

var demoMonthsEN = [...]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}

// demoLang picks the page language: ?lang= (remembered in a cookie), then
// the cookie, then Accept-Language; Vietnamese when nothing says otherwise.
func demoLang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "vi" || l == "en" {
		http.SetCookie(w, &http.Cookie{Name: demoLangCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode}) // #nosec G124 -- demo on http://localhost
		return l
	}
	if c, err := r.Cookie(demoLangCookie); err == nil && (c.Value == "vi" || c.Value == "en") {
		return c.Value
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(part, ";")
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				continue // q=0: "not this one"
			}
		}
		tag = strings.ToLower(strings.TrimSpace(tag))
		switch {
		case tag == "vi" || strings.HasPrefix(tag, "vi-"):
			return "vi"
		case tag == "en" || strings.HasPrefix(tag, "en-"):
			return "en"
		}
	}
	return "vi"
}

func otherDemoLang(lang string) string {
	if lang == "en" {
		return "vi"
	}
	return "en"
}

// demoView is what the page template reads.
type demoView struct {
	Lang, OtherLang string
	T               map[string]string
	PageTitle       string
	// SwitchURL shows the same page in the other language.
	SwitchURL string

	Signed    bool
	Name      string
	Claims    []demoClaim
	RawClaims string
	IDToken   string

	Problem *demoProblemView
}

// demoClaim is one claim as the citizen reads it.
type demoClaim struct {
	Name, Label string
	Lines       []string
	Note        string // beside the value, e.g. "verified"
	Code        string // the raw value a developer may look for, e.g. an acr URN
}

type demoProblemView struct {
	Title, Message, Code, Retry string
}

func newDemoView(lang string) demoView {
	return demoView{Lang: lang, OtherLang: otherDemoLang(lang), T: demoTexts[lang], SwitchURL: "/?lang=" + otherDemoLang(lang)}
}

// render writes a page of the demo site with the given status.
func (rp *demoRP) render(w http.ResponseWriter, status int, v demoView) {
	var buf bytes.Buffer
	if err := demoPage.Execute(&buf, v); err != nil {
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Language", v.Lang)
	h.Set("Vary", "Accept-Language, Cookie")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// The logout form's redirect goes on to the IdP: form-action must allow it.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self' "+origin(rp.issuer)+"; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// Why a login did not end with a session. Each is a page; the code, when
// there is one, is shown as a small reference for the help desk.
const (
	problemDeclined    = "declined"    // the citizen said no in the app
	problemIDP         = "idp"         // the IdP redirected back with an error code
	problemUnavailable = "unavailable" // the IdP cannot be reached or says it is down
	problemFailed      = "failed"      // the IdP's answer did not verify
	problemStartAgain  = "start_again" // state missing, forged, expired or used
)

// demoErrorCodeRE is what the site shows of an error code: RFC 6749 allows
// more characters, but real codes are snake_case words and anything else
// is not worth echoing.
var demoErrorCodeRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// demoProblem says which page a (reason, code) pair gets and its status.
// Unknown reasons become "start again": the page is reachable by anyone.
func demoProblem(reason, code string) (page, shownCode string, status int) {
	if !demoErrorCodeRE.MatchString(code) {
		code = ""
	}
	switch reason {
	case problemIDP:
		switch code {
		case "access_denied":
			return problemDeclined, "", http.StatusForbidden
		case "temporarily_unavailable":
			return problemUnavailable, code, http.StatusServiceUnavailable
		case "server_error":
			return problemUnavailable, code, http.StatusBadGateway
		}
		return problemIDP, code, http.StatusBadRequest
	case problemDeclined:
		return problemDeclined, "", http.StatusForbidden
	case problemUnavailable:
		return problemUnavailable, code, http.StatusBadGateway
	case problemFailed:
		if code == "wrong_issuer" || code == "missing_code" { // the response itself is wrong
			return problemFailed, code, http.StatusBadRequest
		}
		return problemFailed, code, http.StatusBadGateway // the IdP's answers did not verify
	}
	return problemStartAgain, "", http.StatusBadRequest
}

// renderProblem shows why the login did not happen, in the visitor's
// language. Nothing else the IdP or the browser sent (error_description
// above all: anyone can put text there) reaches the page.
func (rp *demoRP) problem(w http.ResponseWriter, r *http.Request, reason, code string) {
	lang := demoLang(w, r)
	if !demoErrorCodeRE.MatchString(code) {
		code = ""
	}
	page, shown, status := demoProblem(reason, code)
	v := newDemoView(lang)
	t := v.T
	v.Problem = &demoProblemView{Title: t["problem."+page+".title"], Message: t["problem."+page], Code: shown, Retry: t["retry"]}
	if page == problemStartAgain {
		v.Problem.Retry = t["start_again"]
		reason = page // not whatever /problem was asked for
	}
	v.PageTitle = v.Problem.Title
	q := url.Values{"reason": {reason}, "lang": {v.OtherLang}}
	if code != "" {
		q.Set("code", code)
	}
	v.SwitchURL = "/problem?" + q.Encode()
	rp.render(w, status, v)
}

// problemPage shows a problem page again, in the language asked for: the
// callback URL it first appeared at cannot be loaded twice.
func (rp *demoRP) problemPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rp.problem(w, r, q.Get("reason"), q.Get("code"))
}

// demoClaimOrder puts the claims a citizen recognises first.
var demoClaimOrder = []string{"name", "family_name", "middle_name", "given_name", "birthdate", "gender", idp.ClaimPersonalID,
	"phone_number", "email", "address", "acr", "auth_time", "updated_at", "sub"}

// demoTimeClaims hold seconds since the epoch.
var demoTimeClaims = map[string]bool{"updated_at": true, "auth_time": true, "iat": true, "exp": true, "nbf": true}

// demoClaims turns the claims into labelled, readable rows in lang.
func demoClaims(claims map[string]any, lang string) []demoClaim {
	t := demoTexts[lang]
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	rank := func(n string) int {
		if i := slices.Index(demoClaimOrder, n); i >= 0 {
			return i
		}
		return len(demoClaimOrder)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	var out []demoClaim
	for _, n := range names {
		v := claims[n]
		if v == nil {
			continue
		}
		c := demoClaim{Name: n, Label: t["claim."+n]}
		if c.Label == "" {
			c.Label = n
		}
		switch n {
		case "phone_number_verified", "email_verified":
			base := strings.TrimSuffix(n, "_verified")
			if _, ok := claims[base]; ok {
				continue // a note beside the number or address
			}
		case "phone_number", "email":
			if ok, _ := claims[n+"_verified"].(bool); ok {
				c.Note = t["verified"]
			}
		}
		switch {
		case n == "address":
			c.Lines = demoAddress(v, lang)
		case n == "birthdate":
			c.Lines = []string{demoDate(demoString(v), lang)}
		case n == "gender":
			s := demoString(v)
			if l := t["gender."+s]; l != "" {
				s = l
			}
			c.Lines = []string{s}
		case n == "acr":
			s := demoString(v)
			if l := t["level."+strings.TrimPrefix(s, "urn:onedoor:loa:")]; l != "" && strings.HasPrefix(s, "urn:onedoor:loa:") {
				c.Lines, c.Code = []string{l}, s
			} else {
				c.Lines = []string{s}
			}
		case demoTimeClaims[n]:
			if f, ok := v.(float64); ok {
				c.Lines = []string{demoTime(time.Unix(int64(f), 0), lang)}
			} else {
				c.Lines = []string{demoValue(v, lang)}
			}
		default:
			c.Lines = demoLines(v, lang)
		}
		out = append(out, c)
	}
	return out
}

// demoAddress renders an OIDC address claim (OIDC Core 5.1.1): the
// formatted address when there is one, else its parts, one line each.
func demoAddress(v any, lang string) []string {
	a, ok := v.(map[string]any)
	if !ok {
		return demoLines(v, lang)
	}
	if f := strings.TrimSpace(demoString(a["formatted"])); f != "" {
		return demoSplitLines(f)
	}
	var lines []string
	lines = append(lines, demoSplitLines(demoString(a["street_address"]))...)
	var town []string
	for _, k := range []string{"locality", "region", "postal_code"} {
		if s := strings.TrimSpace(demoString(a[k])); s != "" {
			town = append(town, s)
		}
	}
	if len(town) > 0 {
		lines = append(lines, strings.Join(town, ", "))
	}
	if c := strings.TrimSpace(demoString(a["country"])); c != "" {
		if name := demoTexts[lang]["country."+strings.ToUpper(c)]; name != "" {
			c = name
		}
		lines = append(lines, c)
	}
	if len(lines) == 0 {
		return []string{demoTexts[lang]["unknown"]}
	}
	return lines
}

func demoSplitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// demoDate renders an OIDC birthdate: YYYY-MM-DD, 0000-MM-DD when the year
// is withheld, or YYYY alone.
func demoDate(s, lang string) string {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return s
	}
	withYear := !strings.HasPrefix(s, "0000-")
	if lang == "en" {
		out := strconv.Itoa(d.Day()) + " " + demoMonthsEN[d.Month()-1]
		if withYear {
			out += " " + strconv.Itoa(d.Year())
		}
		return out
	}
	if withYear {
		return d.Format("02/01/2006")
	}
	return d.Format("02/01")
}

// demoTime renders an instant in Vietnam's time zone.
func demoTime(at time.Time, lang string) string {
	at = at.In(time.FixedZone("ICT", 7*3600))
	if lang == "en" {
		return demoDate(at.Format(time.DateOnly), lang) + ", " + at.Format("15:04") + " (" + demoTexts[lang]["vietnam_time"] + ")"
	}
	return at.Format("15:04 02/01/2006") + " (" + demoTexts[lang]["vietnam_time"] + ")"
}

// origin is the scheme and host of an absolute URL.
func origin(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func demoString(v any) string {
	s, _ := v.(string)
	return s
}

// demoLines renders a claim of no known shape: objects one "key: value"
// line per member, lists joined.
func demoLines(v any, lang string) []string {
	m, ok := v.(map[string]any)
	if !ok {
		return []string{demoValue(v, lang)}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, k+": "+demoValue(m[k], lang))
	}
	return lines
}

func demoValue(v any, lang string) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return demoTexts[lang]["yes"]
		}
		return demoTexts[lang]["no"]
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, demoValue(e, lang))
		}
		return strings.Join(parts, ", ")
	case nil:
		return demoTexts[lang]["unknown"]
	}
	b, _ := json.Marshal(v) // nested objects: rare, and readable enough
	return string(b)
}

// signedInView is the page of a logged-in citizen.
func signedInView(lang string, s *rpSession) demoView {
	v := newDemoView(lang)
	v.Signed = true
	v.Name = demoString(s.Claims["name"])
	if v.Name == "" {
		v.Name = demoString(s.Claims["given_name"])
	}
	v.Claims = demoClaims(s.Claims, lang)
	raw, _ := json.MarshalIndent(s.Claims, "", "  ")
	v.RawClaims = string(raw)
	v.IDToken = s.IDToken
	return v
}
