package web

import (
	"context"
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/passkey"
)

// Passkeys (WebAuthn discoverable credentials, user verification required).
//
// A citizen adds them on the account page, only from a session that an
// eID-app login started less than passkeyAddWindow ago (a passkey cannot
// vouch for another passkey). On the login page a passkey stands in for the
// app when the request needs at most substantial and no new consent: it
// authenticates, it cannot agree. The release decision is the one single
// sign-on takes (ReleasePolicy.Silent): if the client asks for claims the
// citizen has not agreed to share with it, or prompt=consent, the page says
// so and the app is needed. A passkey session records the passkey; it ends
// when the passkey is removed.
const (
	PathPasskeyLoginBegin  = "/login/passkey/begin"  // #nosec G101 -- a route, not a credential
	PathPasskeyLoginFinish = "/login/passkey/finish" // #nosec G101 -- a route, not a credential
	PathPasskeyAddBegin    = "/account/passkeys/begin"
	PathPasskeyAddFinish   = "/account/passkeys/finish"
	PathPasskeyRename      = "/account/passkeys/{id}/rename"
	PathPasskeyDelete      = "/account/passkeys/{id}/delete"
)

// passkeyAddWindow is how recent the eID-app login must be to add a passkey.
const passkeyAddWindow = 10 * time.Minute

// passkeyAMR are the methods a passkey login stands for (RFC 8176): a
// key held by the authenticator (hwk), the user's presence (user) and,
// since the authenticator verified the user (PIN or biometric, which it does
// not tell), a second factor (mfa).
var passkeyAMR = []string{"hwk", "user", "mfa"}

func (s *Server) passkeyRoutes(m *prefixMux) {
	if s.cfg.Passkeys == nil {
		return
	}
	m.HandleFunc("POST "+PathPasskeyLoginBegin, s.passkeyLoginBegin)
	m.HandleFunc("POST "+PathPasskeyLoginFinish, s.passkeyLoginFinish)
	m.HandleFunc("POST "+PathPasskeyAddBegin, s.passkeyAddBegin)
	m.HandleFunc("POST "+PathPasskeyAddFinish, s.passkeyAddFinish)
	m.HandleFunc("POST "+PathPasskeyRename, s.passkeyRename)
	m.HandleFunc("POST "+PathPasskeyDelete, s.passkeyDelete)
}

func (s *Server) passkeyCookieName() string { return s.cookiePrefix() + "onedoor-passkey" }

// startCeremony sets the cookie whose value names the ceremony: only this
// browser can finish it.
func (s *Server) startCeremony(w http.ResponseWriter) string {
	h := randomToken()
	s.setCookie(w, s.passkeyCookieName(), h, passkey.CeremonyTTL)
	return h
}

func (s *Server) ceremonyHandle(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(s.passkeyCookieName())
	s.clearCookie(w, s.passkeyCookieName())
	if err != nil || len(c.Value) > 64 {
		return ""
	}
	return c.Value
}

// passkeySession checks that the passkey behind a session is still the
// citizen's; a removed passkey ends the sessions it started.
func (s *Server) passkeySession(ctx context.Context, bs *browserSession) (*browserSession, error) {
	if s.cfg.PasskeyStore == nil {
		_ = s.eph.Delete(ctx, bs.key)
		return nil, nil
	}
	p, err := s.cfg.PasskeyStore.GetPasskey(ctx, bs.PasskeyID)
	if err != nil && !errors.Is(err, idp.ErrNotFound) {
		return nil, err
	}
	if err != nil || p.CitizenID != bs.CitizenID {
		_ = s.eph.Delete(ctx, bs.key)
		return nil, nil
	}
	return bs, nil
}

// passkeyOffer is the login page's passkey block.
type passkeyOffer struct {
	BeginURL  string
	FinishURL string
	RequestID string
	// Notice is why the last passkey attempt did not log in.
	Notice string
}

// offerPasskey says whether the login request may be finished with a
// passkey: the feature is on, the level needed is at most substantial, and
// the request does not insist on asking for consent.
func (s *Server) offerPasskey(r *http.Request, lr *eid.LoginRequest) *passkeyOffer {
	if s.cfg.Passkeys == nil || lr.Level.Rank() > idp.LevelSubstantial.Rank() || lr.Representation {
		// A passkey cannot say whom the citizen acts for: only the app.
		return nil
	}
	if q, err := url.ParseQuery(string(lr.Continuation)); err != nil || slices.Contains(strings.Fields(q.Get("prompt")), "consent") {
		return nil
	}
	o := &passkeyOffer{BeginURL: s.cfg.Issuer + PathPasskeyLoginBegin + "?id=" + url.QueryEscape(lr.ID),
		FinishURL: s.cfg.Issuer + PathPasskeyLoginFinish, RequestID: lr.ID}
	switch r.URL.Query().Get("passkey") {
	case "failed":
		o.Notice = "passkey.failed"
	case "consent":
		o.Notice = "passkey.consent"
	case "level":
		o.Notice = "passkey.level"
	}
	return o
}

// passkeyFormTargets is where the passkey form's answer may redirect: the
// client's registered redirect URI (Chromium applies form-action to the
// redirect a form post answers with).
func (s *Server) passkeyFormTargets(o *passkeyOffer, lr *eid.LoginRequest) []string {
	if o == nil || lr.ClientID == AccountClientID {
		return nil
	}
	q, err := url.ParseQuery(string(lr.Continuation))
	if err != nil {
		return nil
	}
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil
	}
	return []string{u.Scheme + "://" + u.Host}
}

// pendingBound returns the login request when it is pending and this
// browser started it.
func (s *Server) pendingBound(ctx context.Context, r *http.Request, id string) (*eid.LoginRequest, error) {
	lr, st, err := s.eid.Lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	if st != eid.StatusPending || !s.boundToBrowser(r, lr) {
		return nil, nil
	}
	return lr, nil
}

// passkeyLoginBegin answers the login page's script with the options for
// navigator.credentials.get.
func (s *Server) passkeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !sameSite(r, s.cfg.Issuer) {
		writeJSONError(w, http.StatusForbidden, "access_denied", "Cross-site request.")
		return
	}
	if !s.allow(ctx, w, s.loginLimit(), s.clientKey(r)) {
		return
	}
	lr, err := s.pendingBound(ctx, r, r.URL.Query().Get("id"))
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if lr == nil || s.offerPasskey(r, lr) == nil {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "No login request of this browser may use a passkey.")
		return
	}
	opts, err := s.cfg.Passkeys.BeginLogin(ctx, s.startCeremony(w), []byte(lr.ID))
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(opts)
}

// passkeyLoginFinish verifies the assertion the page posts and, when the
// passkey may settle the login, ends it as an approved eID login would.
func (s *Server) passkeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !sameSite(r, s.cfg.Issuer) {
		s.renderMessage(w, r, http.StatusForbidden, msgForbidden)
		return
	}
	id := r.PostFormValue("id")
	back := func(why string) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, s.cfg.Issuer+PathContinue+"?"+url.Values{"id": {id}, "passkey": {why}, "lang": {pickLang(r)}}.Encode(), http.StatusSeeOther)
	}
	pk, bind, err := s.cfg.Passkeys.FinishLogin(ctx, s.ceremonyHandle(w, r), []byte(r.PostFormValue("credential")))
	switch {
	case errors.Is(err, passkey.ErrCloned) && pk != nil:
		// Ids only: no personal data in the log.
		s.log.Warn("passkey refused: signature counter did not advance (possible cloned authenticator)", "passkey_id", pk.ID)
		s.observe().PasskeyCloneSuspected()
		back("failed")
		return
	case errors.Is(err, passkey.ErrNoCeremony), errors.Is(err, passkey.ErrRefused):
		s.log.Info("passkey login refused", "reason", err.Error())
		back("failed")
		return
	case err != nil:
		s.unavailable(w, "passkey store", err)
		return
	}
	if string(bind) != id {
		back("failed")
		return
	}
	lr, err := s.pendingBound(ctx, r, id)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if lr == nil {
		s.renderExpired(w, r, id)
		return
	}
	if s.offerPasskey(r, lr) == nil || pk.Level.Rank() < lr.Level.Rank() {
		back("level")
		return
	}
	if lr.ClientID == AccountClientID {
		if !s.concludeLogin(w, r, lr) {
			return
		}
		if _, err := s.newSession(ctx, w, r, &eid.Decision{CitizenID: pk.CitizenID, Level: pk.Level, DecidedAt: s.cfg.Now()}, withPasskey(pk)); err != nil {
			s.unavailable(w, "ephemeral store", err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, s.cfg.Issuer+PathAccount+"?lang="+pickLang(r), http.StatusSeeOther) // #nosec G710 -- our issuer; lang is "vi" or "en"
		return
	}
	ar, err := s.resumeRequest(ctx, r, lr)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	client := clientRecord(ar)
	plan, err := s.release.Plan(ctx, client, claimsRequest(ar))
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	// The same decision as single sign-on: what the citizen already agreed
	// to share with this client for this purpose. A passkey cannot agree.
	agr, err := s.release.Silent(ctx, pk.CitizenID, client, plan)
	if err != nil {
		s.unavailable(w, "durable store", err)
		return
	}
	if !agr.Covered {
		back("consent")
		return
	}
	if !s.concludeLogin(w, r, lr) {
		return
	}
	sess, err := s.newSession(ctx, w, r, &eid.Decision{CitizenID: pk.CitizenID, Level: pk.Level, DecidedAt: s.cfg.Now()}, withPasskey(pk))
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	s.finish(w, r, ar, sess, agr, lr.CreatedAt, nil)
}

// concludeLogin ends the login request so the app can no longer answer it;
// on failure it has answered.
func (s *Server) concludeLogin(w http.ResponseWriter, r *http.Request, lr *eid.LoginRequest) bool {
	if err := s.eid.Conclude(r.Context(), lr.ID); err != nil {
		if errors.Is(err, idp.ErrNotFound) {
			s.renderExpired(w, r, lr.ID)
			return false
		}
		s.unavailable(w, "ephemeral store", err)
		return false
	}
	s.clearCookie(w, s.bindingCookie(lr.ID))
	s.dropRestart(r.Context(), lr.ID)
	return true
}

func withPasskey(p *idp.Passkey) func(*browserSession) {
	return func(bs *browserSession) {
		bs.PasskeyID = p.ID
		// What this session yields (tokens, refresh families, the session
		// index) names the passkey as its authenticator, so removing the
		// passkey revokes it all (Config.OnPasskeyRemoved).
		bs.DeviceID = idp.PasskeyAuthenticator(p.ID)
		bs.AMR = passkeyAMR
	}
}

// accountPasskeys is the account page's passkey block.
type accountPasskeys struct {
	List []passkeyView
	// CanAdd: the session came from the eID app recently enough.
	CanAdd    bool
	BeginURL  string
	FinishURL string
	Notice    string
}

type passkeyView struct {
	ID         string
	Name       string
	CreatedAt  string
	CreatedVN  string
	LastUsedVN string
	RenameURL  string
	DeleteURL  string
}

// canAddPasskey: an eID-app session (not a passkey one) from a login less
// than passkeyAddWindow ago.
func (s *Server) canAddPasskey(sess *browserSession) bool {
	return sess.PasskeyID == "" && sess.DeviceID != "" && s.cfg.Now().Sub(sess.AuthTime) <= passkeyAddWindow
}

// accountPasskeyBlock fills the account page's passkey block; nil when
// passkeys are off.
func (s *Server) accountPasskeyBlock(ctx context.Context, r *http.Request, sess *browserSession, t map[string]string) (*accountPasskeys, error) {
	if s.cfg.Passkeys == nil || s.cfg.PasskeyStore == nil {
		return nil, nil
	}
	ps, err := s.cfg.PasskeyStore.ListPasskeys(ctx, sess.CitizenID)
	if err != nil {
		return nil, err
	}
	b := &accountPasskeys{CanAdd: s.canAddPasskey(sess), BeginURL: s.cfg.Issuer + PathPasskeyAddBegin, FinishURL: s.cfg.Issuer + PathPasskeyAddFinish}
	for _, p := range ps {
		v := passkeyView{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339), CreatedVN: p.CreatedAt.In(vietnam).Format("02/01/2006 15:04"),
			RenameURL: s.cfg.Issuer + "/account/passkeys/" + url.PathEscape(p.ID) + "/rename",
			DeleteURL: s.cfg.Issuer + "/account/passkeys/" + url.PathEscape(p.ID) + "/delete"}
		if p.LastUsedAt != nil {
			v.LastUsedVN = p.LastUsedAt.In(vietnam).Format("02/01/2006 15:04")
		}
		b.List = append(b.List, v)
	}
	switch r.URL.Query().Get("passkey") {
	case "added", "renamed", "removed", "failed", "duplicate":
		b.Notice = t["passkey.notice."+r.URL.Query().Get("passkey")]
	}
	return b, nil
}

// accountForm checks what every account form needs: the page's own origin,
// a session and its CSRF token. On failure it has answered.
func (s *Server) accountForm(w http.ResponseWriter, r *http.Request, csrf string) (*browserSession, bool) {
	if !sameSite(r, s.cfg.Issuer) {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountForbidden)
		return nil, false
	}
	sess, err := s.browserSession(r.Context(), r)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return nil, false
	}
	if sess == nil {
		s.renderMessage(w, r, http.StatusUnauthorized, msgAccountSignedOut)
		return nil, false
	}
	if csrf == "" || !hmac.Equal([]byte(csrf), []byte(s.accountCSRF(r))) {
		s.renderMessage(w, r, http.StatusForbidden, msgAccountForbidden)
		return nil, false
	}
	return sess, true
}

func (s *Server) backToAccount(w http.ResponseWriter, r *http.Request, notice string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.cfg.Issuer+PathAccount+"?"+url.Values{"passkey": {notice}, "lang": {pickLang(r)}}.Encode(), http.StatusSeeOther)
}

// passkeyAddBegin answers the account page's script with the options for
// navigator.credentials.create.
func (s *Server) passkeyAddBegin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, ok := s.accountForm(w, r, r.Header.Get("X-CSRF-Token"))
	if !ok {
		return
	}
	if !s.canAddPasskey(sess) {
		s.renderMessage(w, r, http.StatusForbidden, msgPasskeyNeedsApp)
		return
	}
	cit, err := s.store.GetCitizen(ctx, sess.CitizenID)
	if err != nil {
		s.unavailable(w, "durable store", err)
		return
	}
	// The name the authenticator shows: the citizen's name, never the
	// personal ID.
	opts, err := s.cfg.Passkeys.BeginRegistration(ctx, s.startCeremony(w), sess.CitizenID, cit.Name(), sess.Level)
	if err != nil {
		s.unavailable(w, "passkey store", err)
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(opts)
}

// passkeyAddFinish stores the passkey the page's script created.
func (s *Server) passkeyAddFinish(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.accountForm(w, r, r.PostFormValue("csrf"))
	if !ok {
		return
	}
	handle := s.ceremonyHandle(w, r)
	if !s.canAddPasskey(sess) {
		s.renderMessage(w, r, http.StatusForbidden, msgPasskeyNeedsApp)
		return
	}
	name, err := idp.CleanPasskeyName(r.PostFormValue("name"))
	if err != nil {
		name = s.t(pickLang(r))["passkey.default_name"]
	}
	_, err = s.cfg.Passkeys.FinishRegistration(r.Context(), handle, sess.CitizenID, []byte(r.PostFormValue("credential")), name)
	switch {
	case errors.Is(err, passkey.ErrDuplicate):
		s.backToAccount(w, r, "duplicate")
	case errors.Is(err, passkey.ErrNoCeremony), errors.Is(err, passkey.ErrRefused):
		s.log.Info("passkey registration refused", "reason", err.Error())
		s.backToAccount(w, r, "failed")
	case err != nil:
		s.unavailable(w, "passkey store", err)
	default:
		s.backToAccount(w, r, "added")
	}
}

// passkeyRename renames one of the session's citizen's passkeys.
func (s *Server) passkeyRename(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.accountForm(w, r, r.PostFormValue("csrf"))
	if !ok || s.cfg.PasskeyStore == nil {
		return
	}
	name, err := idp.CleanPasskeyName(r.PostFormValue("name"))
	if err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, msgPasskeyBadName)
		return
	}
	s.passkeyChanged(w, r, s.cfg.PasskeyStore.RenamePasskey(r.Context(), sess.CitizenID, r.PathValue("id"), name), "renamed")
}

// passkeyDelete removes one of the session's citizen's passkeys and what it
// yielded: its sessions end (with back-channel logouts), its access tokens
// are denied and its refresh families revoked (Config.OnPasskeyRemoved); a
// session that is not in the index ends at its next use (passkeySession).
func (s *Server) passkeyDelete(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.accountForm(w, r, r.PostFormValue("csrf"))
	if !ok || s.cfg.PasskeyStore == nil {
		return
	}
	id := r.PathValue("id")
	err := s.cfg.PasskeyStore.DeletePasskey(r.Context(), sess.CitizenID, id)
	if err == nil && s.cfg.OnPasskeyRemoved != nil {
		err = s.cfg.OnPasskeyRemoved(r.Context(), id)
	}
	s.passkeyChanged(w, r, err, "removed")
}

func (s *Server) passkeyChanged(w http.ResponseWriter, r *http.Request, err error, notice string) {
	switch {
	case errors.Is(err, idp.ErrNotFound):
		// Another citizen's passkey looks exactly like none at all.
		s.renderMessage(w, r, http.StatusNotFound, msgPasskeyNotFound)
	case err != nil:
		s.unavailable(w, "passkey store", err)
	default:
		s.backToAccount(w, r, notice)
	}
}

var (
	msgPasskeyNeedsApp = message{"msg.account_passkey_app"}
	msgPasskeyNotFound = message{"msg.account_passkey_not_found"}
	msgPasskeyBadName  = message{"msg.account_passkey_name"}
)
