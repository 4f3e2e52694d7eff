package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// The citizen's account page (issue 7): their consents, each with its
// receipts and, while active, a withdraw button. It reads the single
// sign-on session only; without one, the citizen signs in to the page itself
// with the eID app, through the same login request, QR page, browser binding
// and device checks as a login to a relying party.
const (
	PathAccount         = "/account"
	PathAccountLogin    = "/account/login"
	PathAccountWithdraw = "/account/consents/{id}/withdraw"
	PathAccountReceipt  = "/account/receipts/{id}"
)

// AccountClientID is the recipient a first-party login to the account page
// names (in the login request and the approval the app signs). The space
// keeps it out of the registered client ids (letters, digits and :._/-), so
// no relying party can be mistaken for it or it for one.
const AccountClientID = "onedoor account"

// accountPurpose is what the first-party login asks for; it releases no
// data, so it records no consent.
const accountPurpose = "account"

// accountPageSize is how many consents one page shows.
const accountPageSize = 10

func (s *Server) accountRoutes(m *prefixMux) {
	m.HandleFunc("GET "+PathAccount, s.account)
	m.HandleFunc("POST "+PathAccountLogin, s.accountLogin)
	m.HandleFunc("POST "+PathAccountWithdraw, s.accountWithdraw)
	m.HandleFunc("GET "+PathAccountReceipt, s.accountReceipt)
	s.accountSessionRoutes(m)
}

type accountPage struct {
	T         map[string]string
	Brand     brandView
	Lang      string
	OtherLang string
	SignedIn  bool
	LoginURL  string
	CSRF      string
	Notice    string
	Consents  []consentView
	NextURL   string
	FirstURL  string
	// Passkeys is the passkey block (passkey.go); nil when off. Nonce is
	// its script's.
	Passkeys *accountPasskeys
	Nonce    string
	// Security is the devices, sessions and lock sections (sessions.go).
	Security securityView
}

type consentView struct {
	ID        string
	Recipient string
	Purpose   string
	Items     []string
	Declined  []string
	GrantedAt string
	GrantedVN string
	ExpiresAt string
	ExpiresVN string
	Withdrawn string // the withdrawal time in Vietnam, when withdrawn
	Active    bool
	Expired   bool
	Action    string
	Receipts  []receiptView
}

type receiptView struct {
	Kind string
	URL  string
	Name string
}

// account shows the citizen's consents, newest first.
func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	lang := pickLang(r)
	t := s.t(lang)
	p := accountPage{T: t, Lang: lang, OtherLang: otherLang(lang), Brand: s.cfg.Brand.view(lang)}
	sess, err := s.browserSession(ctx, r)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if sess == nil {
		p.LoginURL = s.cfg.Issuer + PathAccountLogin
		s.renderHTML(w, http.StatusOK, "account.html", p, "")
		return
	}
	p.SignedIn = true
	p.CSRF = s.accountCSRF(r)
	if p.Security, err = s.security(ctx, r, sess, t); err != nil {
		s.unavailable(w, "store", err)
		return
	}
	// The confirmation names the record and is shown only when it really is
	// this citizen's and withdrawn: a crafted link cannot fake one.
	if id := r.URL.Query().Get("withdrawn"); id != "" {
		rec, err := s.consent.Store.GetRecord(ctx, sess.CitizenID, id)
		switch {
		case err == nil && rec.WithdrawnAt != nil:
			p.Notice = t["account.withdrawn_notice"] + " " + rec.Recipient
		case err != nil && !errors.Is(err, consent.ErrNotFound) && !errors.Is(err, consent.ErrInvalid):
			s.unavailable(w, "consent store", consentOutage(err))
			return
		}
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 200 {
		cursor = "x" // malformed; the store refuses it below
	}
	recs, next, err := s.consent.Store.ListRecords(ctx, consent.RecordQuery{CitizenID: sess.CitizenID, Page: consent.Page{Cursor: cursor, Limit: accountPageSize}})
	if errors.Is(err, consent.ErrInvalid) {
		s.renderMessage(w, r, http.StatusBadRequest, msgAccountBadPage)
		return
	}
	if err != nil {
		s.unavailable(w, "consent store", consentOutage(err))
		return
	}
	now := s.cfg.Now()
	for _, rec := range recs {
		v := consentView{
			ID:        rec.ID,
			Recipient: rec.Recipient,
			Purpose:   rec.Purpose.Text,
			Items:     claimLabels(t, rec.Items),
			Declined:  claimLabels(t, rec.Declined),
			GrantedAt: rec.GrantedAt.UTC().Format(time.RFC3339),
			GrantedVN: rec.GrantedAt.In(vietnam).Format("02/01/2006 15:04"),
			ExpiresAt: rec.ExpiresAt.UTC().Format(time.RFC3339),
			ExpiresVN: rec.ExpiresAt.In(vietnam).Format("02/01/2006 15:04"),
			Active:    rec.Active(now),
			Expired:   rec.WithdrawnAt == nil && !rec.Active(now),
			Action:    s.cfg.Issuer + "/account/consents/" + url.PathEscape(rec.ID) + "/withdraw",
		}
		if v.Recipient == "" {
			v.Recipient = rec.ClientID
		}
		if rec.WithdrawnAt != nil {
			v.Withdrawn = rec.WithdrawnAt.In(vietnam).Format("02/01/2006 15:04")
		}
		rs, err := s.consent.Store.Receipts(ctx, sess.CitizenID, rec.ID)
		if err != nil {
			s.unavailable(w, "consent store", consentOutage(err))
			return
		}
		for _, rc := range rs {
			v.Receipts = append(v.Receipts, receiptView{Kind: t["account.receipt."+string(rc.Kind)],
				URL: s.cfg.Issuer + "/account/receipts/" + url.PathEscape(rc.ID), Name: rc.ID + ".jws"})
		}
		p.Consents = append(p.Consents, v)
	}
	if next != "" {
		p.NextURL = s.cfg.Issuer + PathAccount + "?cursor=" + url.QueryEscape(next) + "&lang=" + lang
	}
	if cursor != "" {
		p.FirstURL = s.cfg.Issuer + PathAccount + "?lang=" + lang
	}
	if p.Passkeys, err = s.accountPasskeyBlock(ctx, r, sess, t); err != nil {
		s.unavailable(w, "passkey store", err)
		return
	}
	if p.Passkeys != nil {
		p.Nonce = randomToken()[:22]
	}
	s.renderHTML(w, http.StatusOK, "account.html", p, p.Nonce)
}

func otherLang(lang string) string {
	if lang == "en" {
		return "vi"
	}
	return "en"
}

func claimLabels(t map[string]string, names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if l := t["claim."+n]; l != "" {
			out = append(out, l)
		} else {
			out = append(out, n)
		}
	}
	return out
}

// accountLogin starts a first-party login whose continuation is the account
// page. Only the page's own form starts one (a cross-site post is refused);
// it is rate limited like any login.
func (s *Server) accountLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !sameSite(r, s.cfg.Issuer) {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountForbidden)
		return
	}
	if !s.allow(ctx, w, s.loginLimit(), s.clientKey(r)) || !s.allow(ctx, w, s.limitLoginTotal(), "all") {
		return
	}
	lr, ok := s.newAccountLogin(w, r, pickLang(r))
	if ok {
		s.renderLogin(w, r, lr)
	}
}

// newAccountLogin creates a first-party login request in language lang and
// binds it to this browser; on failure it has answered.
func (s *Server) newAccountLogin(w http.ResponseWriter, r *http.Request, lang string) (*eid.LoginRequest, bool) {
	ctx := r.Context()
	binding := randomToken()
	lr := &eid.LoginRequest{
		ClientID:    AccountClientID,
		ClientName:  s.cfg.Brand.view(lang).Name,
		PurposeCode: accountPurpose,
		Purpose:     s.t(lang)["account.purpose"],
		Level:       idp.LevelSubstantial,
		BrowserKey:  hashToken(binding),
		// The continuation keeps only the page's language.
		Continuation: []byte(url.Values{"lang": {lang}}.Encode()),
	}
	if err := s.eid.NewLogin(ctx, lr); err != nil {
		if errors.Is(err, idp.ErrUnavailable) {
			s.unavailable(w, "ephemeral store", err)
			return nil, false
		}
		s.internalError(w, "ephemeral store", err)
		return nil, false
	}
	if err := s.saveRestart(ctx, lr, false); err != nil {
		s.unavailable(w, "ephemeral store", err)
		return nil, false
	}
	s.setCookie(w, s.bindingCookie(lr.ID), binding, s.bindingLifetime(lr))
	return lr, true
}

// accountLoginDone ends a first-party login (loginContinue has checked the
// browser binding and taken the decision): the session starts as after any
// login, and the browser goes to the account page.
func (s *Server) accountLoginDone(w http.ResponseWriter, r *http.Request, lr *eid.LoginRequest, dec *eid.Decision) {
	ctx := r.Context()
	if !dec.Approved {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountDeclined)
		return
	}
	if _, err := s.eid.ActiveDevice(ctx, dec.DeviceID); err != nil {
		if !errors.Is(err, idp.ErrNotFound) {
			s.unavailable(w, "durable store", err)
			return
		}
		s.renderMessage(w, r, http.StatusForbidden, msgAccountDeclined)
		return
	}
	if _, err := s.newSession(ctx, w, r, dec); err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	lang := pickLang(r)
	if q, err := url.ParseQuery(string(lr.Continuation)); err == nil && (q.Get("lang") == "en" || q.Get("lang") == "vi") {
		lang = q.Get("lang")
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.cfg.Issuer+PathAccount+"?lang="+lang, http.StatusSeeOther) // #nosec G710 -- our issuer; lang is "vi" or "en"
}

// accountWithdraw withdraws one of the session's citizen's consents through
// the consent service, which puts it on the deny list first, so every token
// derived from it dies on every replica.
func (s *Server) accountWithdraw(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !sameSite(r, s.cfg.Issuer) {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountForbidden)
		return
	}
	sess, err := s.browserSession(ctx, r)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if sess == nil {
		s.renderMessage(w, r, http.StatusUnauthorized, msgAccountSignedOut)
		return
	}
	got := r.PostFormValue("csrf")
	if got == "" || !hmac.Equal([]byte(got), []byte(s.accountCSRF(r))) {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountForbidden)
		return
	}
	id := r.PathValue("id")
	_, _, err = s.consent.Withdraw(ctx, sess.CitizenID, id)
	switch {
	case errors.Is(err, consent.ErrNotFound), errors.Is(err, consent.ErrInvalid):
		// Another citizen's consent looks exactly like none at all.
		s.renderMessage(w, r, http.StatusNotFound, msgAccountNotFound)
		return
	case errors.Is(err, consent.ErrWithdrawn):
		s.renderMessage(w, r, http.StatusConflict, msgAccountAlready)
		return
	case err != nil:
		s.unavailable(w, "consent store", consentOutage(err))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.cfg.Issuer+PathAccount+"?"+url.Values{"withdrawn": {id}, "lang": {pickLang(r)}}.Encode(), http.StatusSeeOther)
}

// accountReceipt downloads one of the session's citizen's receipts: the JWS
// as signed, verifiable against the JWKS.
func (s *Server) accountReceipt(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, err := s.browserSession(ctx, r)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if sess == nil {
		s.renderMessage(w, r, http.StatusUnauthorized, msgAccountSignedOut)
		return
	}
	rc, err := s.consent.Store.GetReceipt(ctx, sess.CitizenID, r.PathValue("id"))
	switch {
	case errors.Is(err, consent.ErrNotFound), errors.Is(err, consent.ErrInvalid):
		s.renderMessage(w, r, http.StatusNotFound, msgAccountNotFound)
		return
	case err != nil:
		s.unavailable(w, "consent store", consentOutage(err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jose")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="`+safeFilename(rc.ID)+`.jws"`)
	_, _ = w.Write([]byte(rc.JWS)) // #nosec G705 -- a JWS we signed, served as application/jose with nosniff, as an attachment
}

// safeFilename keeps the characters a receipt id is made of.
func safeFilename(id string) string {
	b := []byte(id)
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// accountCSRF binds the account page's forms to the session cookie: a
// token from one session (or none) is worthless in another.
func (s *Server) accountCSRF(r *http.Request) string {
	v := "no-session"
	if c, err := r.Cookie(s.sessionCookieName()); err == nil {
		v = c.Value
	}
	m := hmac.New(sha256.New, s.cfg.CookieKey)
	m.Write([]byte("account\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameSite refuses a form post another site made. A browser that sends
// Sec-Fetch-Site (which no page script can set) must say same-origin; then
// Origin may be "null", as Chromium sends it under our Referrer-Policy
// no-referrer, but not another origin. Without Sec-Fetch-Site, Origin must
// be the issuer's or absent (a non-browser client).
func sameSite(r *http.Request, issuer string) bool {
	sfs := r.Header.Get("Sec-Fetch-Site")
	if sfs == "" {
		return sameOrigin(r, issuer)
	}
	if sfs != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o == "null" {
		return true
	}
	return sameOrigin(r, issuer)
}

var (
	msgAccountSignedOut = message{"msg.account_signed_out"}
	msgAccountForbidden = message{"msg.account_forbidden"}
	msgAccountNotFound  = message{"msg.account_not_found"}
	msgAccountAlready   = message{"msg.account_already"}
	msgAccountDeclined  = message{"msg.account_declined"}
	msgAccountBadPage   = message{"msg.account_bad_page"}
)
