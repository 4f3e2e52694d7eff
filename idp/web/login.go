package web

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/represent"
)

// startLogin creates a login request for the eID app and shows the QR page.
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, plan *idp.ReleasePlan, required idp.Level, usedPAR bool, target *loginTarget) {
	if lr, ok := s.newLogin(w, r, ar, plan, required, usedPAR, target); ok {
		s.renderLogin(w, r, lr)
	}
}

// newLogin creates a login request for the authorization request ar, bound
// to this browser, and keeps what is needed to start it again; on failure it
// has answered. With a target (login_hint) it is sent to that citizen's
// devices; a restart (target nil) is a QR login.
func (s *Server) newLogin(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, plan *idp.ReleasePlan, required idp.Level, usedPAR bool, target *loginTarget) (*eid.LoginRequest, bool) {
	ctx := r.Context()
	form := url.Values{}
	for k, v := range ar.GetRequestForm() {
		if k != "request_uri" { // a PAR request_uri is single use; keep what it resolved to
			form[k] = v
		}
	}
	binding := randomToken()
	// The purpose shown is the one from the client's catalog the consent
	// is recorded for: a free-text purpose parameter is not shown (anyone
	// relaying the request could write it).
	lr := &eid.LoginRequest{
		ClientID:     ar.GetClient().GetID(),
		ClientName:   plan.Recipient,
		Claims:       plan.Claims,
		PurposeCode:  plan.Purpose.Code,
		Purpose:      plan.Purpose.Text,
		Level:        required,
		BrowserKey:   hashToken(binding),
		Continuation: []byte(form.Encode()),
		// The app offers the parties the citizen may act for.
		Representation: wantsRepresentation(ar.GetRequestedScopes()),
	}
	if target != nil {
		lr.Target = target.citizenID
	}
	if err := s.eid.NewLogin(ctx, lr); err != nil {
		if errors.Is(err, idp.ErrUnavailable) {
			s.unavailable(w, "ephemeral store", err)
			return nil, false
		}
		s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return nil, false
	}
	if err := s.saveRestart(ctx, lr, usedPAR); err != nil {
		s.unavailable(w, "ephemeral store", err)
		return nil, false
	}
	s.setCookie(w, s.bindingCookie(lr.ID), binding, s.bindingLifetime(lr))
	if target != nil {
		s.prompt(ctx, lr, target)
	}
	return lr, true
}

// bindingCookie names the cookie that binds one login request to the browser
// that started it; one per request so two tabs do not clash.
func (s *Server) bindingCookie(id string) string {
	if len(id) > 12 {
		id = id[:12]
	}
	return s.loginCookieName() + "-" + id
}

func (s *Server) boundToBrowser(r *http.Request, lr *eid.LoginRequest) bool {
	c, err := r.Cookie(s.bindingCookie(lr.ID))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(hashToken(c.Value), lr.BrowserKey) == 1
}

// statusResponse is the body of the login status URL.
type statusResponse struct {
	Status     string `json:"status"`
	RedirectTo string `json:"redirect_to,omitempty"`
}

// loginContinue resumes the authorization request once the app has answered.
func (s *Server) loginContinue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	lr, st, err := s.eid.Lookup(ctx, id)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if st == eid.StatusExpired {
		s.renderExpired(w, r, id)
		return
	}
	if !s.checkReturn(w, r, lr, st) {
		return
	}
	if st == eid.StatusPending {
		s.renderLogin(w, r, lr)
		return
	}
	lr, dec, err := s.eid.TakeDecision(ctx, id)
	if err != nil {
		if errors.Is(err, idp.ErrUnavailable) {
			s.unavailable(w, "ephemeral store", err)
			return
		}
		s.renderExpired(w, r, id)
		return
	}
	s.clearCookie(w, s.bindingCookie(lr.ID))
	s.dropRestart(ctx, lr.ID)
	if lr.ClientID == AccountClientID {
		s.accountLoginDone(w, r, lr, dec)
		return
	}
	ar, err := s.resumeRequest(ctx, r, lr)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	if !dec.Approved {
		s.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The citizen declined the login in the eID app."))
		return
	}
	// The device may have been revoked (a lost phone) between its approval
	// and this continuation: nothing it approved may start a session.
	if _, err := s.eid.ActiveDevice(ctx, dec.DeviceID); err != nil {
		if !errors.Is(err, idp.ErrNotFound) {
			s.unavailable(w, "durable store", err)
			return
		}
		s.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The eID device that approved the login has been revoked."))
		return
	}
	var act *acting
	if dec.ActAs != nil {
		// Checked again now: a mandate revoked since the approval ends
		// the login here.
		act, err = s.representation(ctx, dec.CitizenID, dec.ActAs.ID)
		if errors.Is(err, represent.ErrNotRepresented) || (err == nil && !wantsRepresentation(ar.GetRequestedScopes())) {
			s.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The citizen no longer represents the party chosen in the eID app."))
			return
		}
		if err != nil {
			s.unavailable(w, "representation store", err)
			return
		}
	}
	// The browser's single sign-on session is the citizen's own, whomever
	// they act for in this login.
	sess, err := s.newSession(ctx, w, r, dec)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	// The consent is what the request showed (the list, purpose and
	// recipient the approval signed), with the signed approval as evidence.
	// A guardian shares their ward's data: the consent is the ward's (the
	// subject of the data), its evidence the guardian's approval, which
	// names the ward in act_as. An organisation has no registry data: no
	// consent. Nor does a representative bounded to services (a mandate):
	// the policy records nothing and releases nothing of the person
	// (idp.RepresentationReleases).
	plan := &idp.ReleasePlan{Purpose: consent.Purpose{Code: lr.PurposeCode, Text: lr.Purpose}, Recipient: lr.ClientName, Claims: lr.Claims}
	owner := dec.CitizenID
	agr := &idp.Agreement{Covered: true}
	if act != nil {
		owner = act.rep.Party.ID
	}
	if act == nil || act.rep.Party.Type == represent.TypePerson {
		agr, err = s.release.Record(ctx, &idp.Approval{CitizenID: owner, Client: clientRecord(ar), Plan: plan,
			Shared: dec.Claims, Evidence: dec.Approval, OnBehalf: act.onBehalf(), Bounded: act.bounded()})
		if err != nil {
			s.unavailable(w, "consent store", err)
			return
		}
	}
	s.finish(w, r, ar, sess, agr, lr.CreatedAt, act)
}

// checkReturn lets the continuation go on only in the browser that started
// the login and, after a same-device approval, with the return code the app
// opened it with; on refusal it has answered. An attacker who started the
// login in their own browser and sent the app link to a citizen has the
// binding but not the code: the code went to the citizen's phone. A code
// presented by another browser (a citizen talked into forwarding the page
// the app opened, or an app that returned to another browser) ends the login
// at once, so it cannot be carried to the starting browser afterwards.
func (s *Server) checkReturn(w http.ResponseWriter, r *http.Request, lr *eid.LoginRequest, st eid.Status) bool {
	ctx := r.Context()
	bound := s.boundToBrowser(r, lr)
	var dec *eid.Decision
	if st == eid.StatusApproved {
		var err error
		if _, dec, err = s.eid.Status(ctx, lr.ID); err != nil {
			s.unavailable(w, "ephemeral store", err)
			return false
		}
	}
	code := r.URL.Query().Get("code")
	needs := dec != nil && dec.NeedsReturnCode()
	switch {
	case !bound:
		if needs && dec.ReturnCodeMatches(code) {
			if _, _, err := s.eid.TakeDecision(ctx, lr.ID); err != nil && errors.Is(err, idp.ErrUnavailable) {
				s.unavailable(w, "ephemeral store", err)
				return false
			}
			s.dropRestart(ctx, lr.ID)
			s.log.Warn("same-device return code presented by another browser: login ended",
				"request_hash", hashHex(lr.ID)[:16], "client_id", lr.ClientID)
		}
		s.renderMessage(w, r, http.StatusForbidden, msgOtherBrowser)
		return false
	case needs && !dec.ReturnCodeMatches(code):
		s.renderMessage(w, r, http.StatusForbidden, msgReturnCode)
		return false
	}
	return true
}

// resumeRequest re-validates the stored authorization request: the client,
// its redirect URIs and scopes are checked again as they are now.
func (s *Server) resumeRequest(ctx context.Context, r *http.Request, lr *eid.LoginRequest) (fosite.AuthorizeRequester, error) {
	q, err := url.ParseQuery(string(lr.Continuation))
	if err != nil {
		return nil, fosite.ErrInvalidRequest.WithWrap(err)
	}
	r2 := r.Clone(ctx)
	r2.Method = http.MethodGet
	r2.URL = &url.URL{Path: PathAuthorize, RawQuery: q.Encode()}
	r2.Form, r2.PostForm, r2.Body = nil, nil, http.NoBody
	ar, err := s.provider.NewAuthorizeRequest(ctx, r2)
	if rerr := checkRedirectURI(ar); rerr != nil {
		err = rerr
	}
	if err != nil {
		return ar, err
	}
	if far, ok := ar.(*fosite.AuthorizeRequest); ok {
		far.RequestedAt = lr.CreatedAt
	}
	return ar, nil
}

type loginPage struct {
	T            map[string]string
	Brand        brandView
	Lang         string
	OtherLang    string
	OtherLangURL string
	ClientName   string
	Purpose      string
	Claims       []claimView
	MatchNumber  string
	Payload      string
	// AppLink is the https app link (eid.AppLink): the app opens it where
	// installed, the browser shows the fallback page elsewhere.
	AppLink     string
	StatusURL   string
	ContinueURL string
	QR          template.URL
	ExpiresAt   string
	ExpiresAtVN string
	Nonce       string
	// StartAgainURL restarts the same authorization request once this one
	// has expired.
	StartAgainURL string
	// Push: the login was sent to the citizen's devices (login_hint); the
	// page shows the match number and waits, with QRURL to show the QR
	// code instead.
	Push  bool
	QRURL string
	// AccessDays is how long a site granted offline_access may keep it;
	// SessionHours how long the single sign-on session lasts otherwise.
	AccessDays   int
	SessionHours int
	// Passkey offers a passkey beside the app (passkey.go); nil when not.
	Passkey *passkeyOffer
}

type claimView struct {
	Name     string
	Label    string
	Optional bool
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, lr *eid.LoginRequest) {
	lang := pickLang(r)
	payload := eid.Payload(s.cfg.Issuer, lr.ID)
	png, err := qrcode.Encode(payload, qrcode.Medium, 256)
	if err != nil {
		s.renderMessage(w, r, http.StatusInternalServerError, msgError)
		return
	}
	t := s.t(lang)
	p := loginPage{
		T:           t,
		Brand:       s.cfg.Brand.view(lang),
		Lang:        lang,
		ClientName:  lr.ClientName,
		Purpose:     lr.Purpose,
		MatchNumber: lr.MatchNumber,
		Payload:     payload,
		AppLink:     eid.AppLink(s.cfg.Issuer, lr.ID),
		StatusURL:   s.cfg.Issuer + PathStatus + "?id=" + url.QueryEscape(lr.ID),
		ContinueURL: s.cfg.Issuer + PathContinue + "?id=" + url.QueryEscape(lr.ID),
		QR:          template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)), // #nosec G203 -- our own PNG, base64-encoded
		ExpiresAt:   lr.ExpiresAt.UTC().Format(time.RFC3339),
		ExpiresAtVN: lr.ExpiresAt.In(vietnam).Format("15:04:05") + " (GMT+7)",
		Nonce:       randomToken()[:22],
	}
	// The language switch shows this same login request again (through the
	// continuation, which checks the browser binding): re-running /authorize
	// would create a second request, and a pushed request_uri works once.
	p.OtherLang = "en"
	if lang == "en" {
		p.OtherLang = "vi"
	}
	p.OtherLangURL = p.ContinueURL + "&lang=" + p.OtherLang
	p.StartAgainURL = s.restartURL(lr.ID, lang)
	p.Passkey = s.offerPasskey(r, lr)
	if lr.Target != "" && r.URL.Query().Get("qr") != "1" {
		p.Push, p.QRURL = true, p.ContinueURL+"&qr=1&lang="+lang
	}
	if lr.ClientID != AccountClientID {
		p.AccessDays, p.SessionHours = s.accessDuration(lr, s.clientRefreshes(r.Context(), lr.ClientID))
	}
	for _, c := range lr.Claims {
		label := t["claim."+c.Name]
		if label == "" {
			label = c.Name
		}
		p.Claims = append(p.Claims, claimView{Name: c.Name, Label: label, Optional: c.Optional})
	}
	s.renderHTML(w, http.StatusOK, "login.html", p, p.Nonce, s.passkeyFormTargets(p.Passkey, lr)...)
}

// formTargets are origins beside the IdP's own that the page's form may
// lead to (a logout confirmation's 303 to the client's registered
// post-logout URI: Chromium applies form-action to the redirect too).
func (s *Server) renderHTML(w http.ResponseWriter, status int, name string, data any, nonce string, formTargets ...string) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		writeJSONError(w, http.StatusInternalServerError, "server_error", "The page could not be rendered.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	csp := "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'" + strings.Join(append([]string{""}, formTargets...), " ") +
		"; frame-ancestors 'none'; base-uri 'none'"
	if nonce != "" {
		csp += "; script-src 'nonce-" + nonce + "'; connect-src 'self'"
	}
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pickLang chooses Vietnamese unless ui_locales or Accept-Language prefer English.
func pickLang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "vi" {
		return l
	}
	for _, src := range []string{r.FormValue("ui_locales"), r.Header.Get("Accept-Language")} {
		for _, part := range strings.FieldsFunc(src, func(c rune) bool { return c == ' ' || c == ',' }) {
			tag := strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
			switch {
			case strings.HasPrefix(tag, "vi"):
				return "vi"
			case strings.HasPrefix(tag, "en"):
				return "en"
			}
		}
	}
	return "vi"
}

// vietnam is Indochina Time, fixed: Vietnam has no daylight saving time.
var vietnam = time.FixedZone("ICT", 7*60*60)

type message struct{ key string }

var (
	msgExpired      = message{"msg.expired"}
	msgOtherBrowser = message{"msg.other_browser"}
	msgReturnCode   = message{"msg.return_code"}
	msgError        = message{"msg.error"}
	msgLoggedOut    = message{"msg.logged_out"}
	msgForbidden    = message{"msg.forbidden"}
	msgSlowDown     = message{"msg.slow_down"}
)

type messagePage struct {
	T       map[string]string
	Brand   brandView
	Lang    string
	Title   string
	Message string
	Detail  string
	// Code is the OAuth error code, shown small as a reference for the
	// helpdesk; never the server's English description.
	Code string
	// BackURL leads back to the account page from its own messages.
	BackURL string
	// StartAgainURL restarts an expired login request this browser made;
	// Expired without it says to go back to the agency's site.
	StartAgainURL string
	Expired       bool
	// LogoutURL offers a plain logout after a refused logout request.
	LogoutURL string
	HomeURL   string
}

// t is the page strings in lang, with the deployment's brand name.
func (s *Server) t(lang string) map[string]string {
	if t, ok := s.texts[lang]; ok {
		return t
	}
	return texts[lang]
}

func (s *Server) messagePage(lang string) messagePage {
	return messagePage{T: s.t(lang), Brand: s.cfg.Brand.view(lang), Lang: lang}
}

func (s *Server) renderMessage(w http.ResponseWriter, r *http.Request, status int, m message) {
	lang := pickLang(r)
	p := s.messagePage(lang)
	p.Title, p.Message = p.T[m.key+".title"], p.T[m.key]
	if strings.HasPrefix(m.key, "msg.account_") {
		p.BackURL = s.cfg.Issuer + PathAccount + "?lang=" + lang
	}
	if m == msgExpired {
		p.Expired = true
		p.HomeURL = s.cfg.Issuer + "/?lang=" + lang
	}
	s.renderHTML(w, status, "message.html", p, "")
}

// renderError is the page for authorization errors that cannot be sent to a
// redirect URI. The citizen reads what the code means for them in their
// language; fosite's English description (desc) only picks among the
// explanations and is never shown.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	lang := pickLang(r)
	if status < 400 {
		status = http.StatusBadRequest
	}
	p := s.messagePage(lang)
	p.Title, p.Message, p.Code = p.T["msg.error.title"], p.T[errorText(code, desc)], code
	p.HomeURL = s.cfg.Issuer + "/?lang=" + lang
	s.renderHTML(w, status, "message.html", p, "")
}

// errorText is the key of the citizen's explanation of an OAuth error code
// (RFC 6749 4.1.2.1, OIDC Core 3.1.2.6, RFC 9126, RFC 9396, RFC 8707).
func errorText(code, desc string) string {
	switch code {
	case "invalid_client", "unauthorized_client":
		return "err.client"
	case "invalid_scope", "invalid_target", "invalid_authorization_details":
		return "err.scope"
	case "access_denied", "consent_required":
		return "err.denied"
	case "login_required", "interaction_required", "account_selection_required":
		return "err.login"
	case "server_error", "temporarily_unavailable":
		return "err.server"
	case "invalid_request":
		// The redirect URI is the one problem the citizen should be warned
		// about: someone may be relaying them to a site of their own.
		if strings.Contains(desc, "redirect_uri") || strings.Contains(desc, "redirect URI") {
			return "err.redirect"
		}
	case "invalid_redirect_uri":
		return "err.redirect"
	}
	return "err.request"
}
