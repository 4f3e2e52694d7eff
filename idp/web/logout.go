package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/onedoor/onedoor/idp"
)

type logoutPage struct {
	T      map[string]string
	Brand  brandView
	Lang   string
	Action string
	CSRF   string
	Hidden map[string]string
}

// logout is RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).
// An id_token_hint issued in this browser's current session (same citizen,
// same sid) ends the session at once. Otherwise a GET only asks the citizen
// to confirm, and the confirmation POST must carry the CSRF token: a
// cross-site link cannot log anyone out, not even with an ID token of
// another citizen or of an earlier session (which any client that received
// one could send). When the browser has no session there is nothing to end,
// and a hint is answered at once.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	hint := r.FormValue("id_token_hint")
	postURI := r.FormValue("post_logout_redirect_uri")
	clientID := r.FormValue("client_id")
	state := r.FormValue("state")
	var hintSub, hintSID string
	if hint != "" {
		sub, aud, sid, err := s.provider.VerifyIDTokenHint(ctx, hint)
		if err != nil {
			s.renderLogoutError(w, r)
			return
		}
		if clientID != "" && !slices.Contains(aud, clientID) {
			s.renderLogoutError(w, r)
			return
		}
		clientID = aud[0]
		hintSub, hintSID = sub, sid
	}
	if postURI != "" {
		if clientID == "" {
			s.renderLogoutError(w, r)
			return
		}
		c, err := s.store.GetClient(ctx, clientID)
		if err != nil {
			if errors.Is(err, idp.ErrUnavailable) {
				s.unavailable(w, "durable store", err)
				return
			}
			s.renderLogoutError(w, r)
			return
		}
		// A pending client's URIs are unreviewed: no redirect to them.
		if !c.Active() || !slices.Contains(c.PostLogoutRedirectURIs, postURI) {
			s.renderLogoutError(w, r)
			return
		}
	}
	confirmed := r.Method == http.MethodPost && s.validCSRF(r) && sameSite(r, s.cfg.Issuer)
	ask := hint == ""
	if hint != "" && !confirmed {
		sess, err := s.browserSession(ctx, r)
		if err != nil {
			s.unavailable(w, "ephemeral store", err)
			return
		}
		ask = sess != nil && (hintSID == "" || sess.SID != hintSID || sess.CitizenID != hintSub)
	}
	if ask && !confirmed {
		hidden := map[string]string{}
		for _, k := range []string{"id_token_hint", "post_logout_redirect_uri", "client_id", "state", "ui_locales"} {
			if v := r.FormValue(k); v != "" {
				hidden[k] = v
			}
		}
		lang := pickLang(r)
		// The action keeps the page's language for the logged-out page.
		var targets []string
		if u, err := url.Parse(postURI); err == nil && postURI != "" && u.Scheme != "" && u.Host != "" {
			targets = append(targets, u.Scheme+"://"+u.Host) // registered, checked above
		}
		s.renderHTML(w, http.StatusOK, "logout.html", logoutPage{T: s.t(lang), Brand: s.cfg.Brand.view(lang), Lang: lang,
			Action: s.cfg.Issuer + PathLogout + "?lang=" + lang, CSRF: s.csrfToken(r), Hidden: hidden}, "", targets...)
		return
	}
	if c, err := r.Cookie(s.sessionCookieName()); err == nil {
		// First the durable record, which queues the back-channel logouts
		// to every client the session logged in to: on a failure the
		// session is still there for the retry.
		if err := s.endIndexed(ctx, sessionPrefix+hashHex(c.Value)); err != nil {
			s.unavailable(w, "store", err)
			return
		}
		if err := s.eph.Delete(ctx, sessionPrefix+hashHex(c.Value)); err != nil {
			s.unavailable(w, "ephemeral store", err)
			return
		}
	}
	s.clearCookie(w, s.sessionCookieName())
	if postURI != "" {
		u, _ := url.Parse(postURI)
		if state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		w.Header().Set("Cache-Control", "no-store")
		// postURI matched one of the client's registered URIs exactly above.
		http.Redirect(w, r, u.String(), http.StatusSeeOther) // #nosec G710 -- exact match against registered URIs
		return
	}
	s.renderMessage(w, r, http.StatusOK, msgLoggedOut)
}

// renderLogoutError refuses a logout request the client got wrong (its
// hint, client or post-logout URI), offering a plain logout instead: the
// citizen can always end their session here.
func (s *Server) renderLogoutError(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r)
	p := s.messagePage(lang)
	p.Title, p.Message, p.Code = p.T["msg.error.title"], p.T["err.logout"], "invalid_request"
	p.LogoutURL = s.cfg.Issuer + PathLogout + "?lang=" + lang
	s.renderHTML(w, http.StatusBadRequest, "message.html", p, "")
}

// csrfToken binds the logout confirmation to the browser's session cookie.
func (s *Server) csrfToken(r *http.Request) string {
	v := "no-session"
	if c, err := r.Cookie(s.sessionCookieName()); err == nil {
		v = c.Value
	}
	m := hmac.New(sha256.New, s.cfg.CookieKey)
	m.Write([]byte("logout\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Server) validCSRF(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	return got != "" && hmac.Equal([]byte(got), []byte(s.csrfToken(r)))
}

// sameOrigin rejects cross-site form posts when the browser says where they
// came from.
func sameOrigin(r *http.Request, issuer string) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	iu, err := url.Parse(issuer)
	if err != nil {
		return false
	}
	return o == iu.Scheme+"://"+iu.Host
}
