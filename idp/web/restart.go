package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// Starting again (WCAG 2.2.1, timing adjustable): a login request lives two
// minutes, and a citizen who needs longer gets a fresh one for the same
// authorization request without going back to the agency's site. What is
// restarted is kept on the server (the resolved request, as the login's
// continuation), so nothing in the restart can change a parameter, and only
// the browser holding the original request's binding cookie can restart it:
// a restarted request is that browser's login, never another's (whose code
// would land with the victim's state and PKCE).

// restartWindow is how long after the first login request of an
// authorization request expires it can still be started again; restarts do
// not extend it, so one authorization request (and the personal hints it
// may carry) is kept at most this long past its first login.
const restartWindow = 10 * time.Minute

const restartPrefix = "web:restart:"

type restartRecord struct {
	ClientID     string `json:"client_id"`
	BrowserKey   []byte `json:"browser_key"`
	Continuation []byte `json:"continuation"`
	UsedPAR      bool   `json:"used_par,omitempty"`
	// Until closes the window: the first login's expiry plus
	// restartWindow, kept across restarts.
	Until time.Time `json:"until"`
}

// bindingLifetime is how long the binding cookie of lr lives: until the
// restart window closes.
func (s *Server) bindingLifetime(lr *eid.LoginRequest) time.Duration {
	return lr.ExpiresAt.Sub(s.cfg.Now()) + restartWindow
}

func (s *Server) saveRestart(ctx context.Context, lr *eid.LoginRequest, usedPAR bool) error {
	return s.saveRestartUntil(ctx, lr, usedPAR, lr.ExpiresAt.Add(restartWindow))
}

// saveRestartUntil keeps lr's restart record until the window closes at
// until (or drops it when it already has).
func (s *Server) saveRestartUntil(ctx context.Context, lr *eid.LoginRequest, usedPAR bool, until time.Time) error {
	ttl := until.Sub(s.cfg.Now())
	if ttl <= 0 {
		s.dropRestart(ctx, lr.ID)
		return nil
	}
	v, err := json.Marshal(restartRecord{ClientID: lr.ClientID, BrowserKey: lr.BrowserKey, Continuation: lr.Continuation,
		UsedPAR: usedPAR, Until: until})
	if err != nil {
		return err
	}
	return s.eph.Set(ctx, restartPrefix+lr.ID, v, ttl)
}

// dropRestart forgets how to restart a login that has been answered.
func (s *Server) dropRestart(ctx context.Context, id string) {
	if err := s.eph.Delete(ctx, restartPrefix+id); err != nil && !errors.Is(err, idp.ErrNotFound) {
		s.log.Warn("forget login restart", "err", err.Error())
	}
}

// restartFor is the restart record of login request id when this browser
// made it; nil otherwise.
func (s *Server) restartFor(ctx context.Context, r *http.Request, id string) (*restartRecord, error) {
	if id == "" || len(id) > 128 {
		return nil, nil
	}
	v, err := s.eph.Get(ctx, restartPrefix+id)
	if errors.Is(err, idp.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec restartRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, nil
	}
	c, err := r.Cookie(s.bindingCookie(id))
	if err != nil || subtle.ConstantTimeCompare(hashToken(c.Value), rec.BrowserKey) != 1 {
		return nil, nil
	}
	return &rec, nil
}

func (s *Server) restartURL(id, lang string) string {
	return s.cfg.Issuer + PathRestart + "?" + url.Values{"id": {id}, "lang": {lang}}.Encode()
}

// renderExpired says login request id has expired, offering to start it
// again when this browser made it.
func (s *Server) renderExpired(w http.ResponseWriter, r *http.Request, id string) {
	rec, err := s.restartFor(r.Context(), r, id)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	lang := pickLang(r)
	p := s.messagePage(lang)
	p.Title, p.Message, p.Expired = p.T["msg.expired.title"], p.T["msg.expired"], true
	if rec != nil {
		p.StartAgainURL = s.restartURL(id, lang)
	} else {
		p.HomeURL = s.cfg.Issuer + "/?lang=" + lang
	}
	s.renderHTML(w, http.StatusGone, "message.html", p, "")
}

// loginRestart starts the authorization request of an expired (or pending)
// login request again, as a new login request with a new match number, and
// shows its page. The request is checked again as it is now: client,
// redirect URI, scopes, release plan.
func (s *Server) loginRestart(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !sameSite(r, s.cfg.Issuer) {
		s.renderMessage(w, r, http.StatusForbidden, msgForbidden)
		return
	}
	id := r.URL.Query().Get("id")
	rec, err := s.restartFor(ctx, r, id)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	if rec == nil {
		// Unknown, answered, past the window, or another browser's.
		s.renderMessage(w, r, http.StatusGone, msgExpired)
		return
	}
	lang := pickLang(r)
	// Only an expired request is started again: a pending one is still
	// good (its page is shown again), an answered one is over. Two live
	// requests for one authorization request would give two codes.
	_, st, err := s.eid.Lookup(ctx, id)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	switch st {
	case eid.StatusExpired:
	case eid.StatusPending:
		http.Redirect(w, r, s.cfg.Issuer+PathContinue+"?"+url.Values{"id": {id}, "lang": {lang}}.Encode(), http.StatusSeeOther) // #nosec G710 -- our issuer and a checked id
		return
	default:
		s.dropRestart(ctx, id)
		s.renderMessage(w, r, http.StatusGone, msgExpired)
		return
	}
	if !s.allowPage(w, r, s.loginLimit(), s.clientKey(r)) || !s.allowPage(w, r, s.limitLoginTotal(), "all") {
		return
	}
	// Single use, even between two restarts racing in this browser: the
	// record is taken, not read.
	if _, err := s.eph.Take(ctx, restartPrefix+id); errors.Is(err, idp.ErrNotFound) {
		s.renderMessage(w, r, http.StatusGone, msgExpired)
		return
	} else if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	var lr *eid.LoginRequest
	var ok bool
	if rec.ClientID == AccountClientID {
		lr, ok = s.newAccountLogin(w, r, lang)
	} else {
		lr, ok = s.restartAuthorize(w, r, rec)
	}
	if !ok {
		return
	}
	// The new login request carries the restart, within the first one's
	// window; the old request's binding cookie has served.
	if err := s.saveRestartUntil(ctx, lr, rec.UsedPAR, rec.Until); err != nil {
		s.log.Warn("keep login restart", "err", err.Error())
	}
	s.clearCookie(w, s.bindingCookie(id))
	w.Header().Set("Cache-Control", "no-store")
	// Show the new request through its continuation (which checks the
	// binding), so reloading the page does not post again.
	http.Redirect(w, r, s.cfg.Issuer+PathContinue+"?"+url.Values{"id": {lr.ID}, "lang": {lang}}.Encode(), http.StatusSeeOther) // #nosec G710 -- our issuer and a server-made id
}

// restartAuthorize validates the kept authorization request again and
// creates its new login request; on failure it has answered.
func (s *Server) restartAuthorize(w http.ResponseWriter, r *http.Request, rec *restartRecord) (*eid.LoginRequest, bool) {
	ctx := r.Context()
	ar, err := s.resumeRequest(ctx, r, &eid.LoginRequest{Continuation: rec.Continuation, CreatedAt: s.cfg.Now()})
	if err == nil && ar.GetClient().GetID() != rec.ClientID {
		err = fosite.ErrInvalidRequest.WithHint("The restarted request names another client.")
	}
	if err == nil {
		err = s.validateAuthorize(ar, rec.UsedPAR)
	}
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return nil, false
	}
	form := ar.GetRequestForm()
	plan, err := s.release.Plan(ctx, clientRecord(ar), claimsRequest(ar))
	if errors.Is(err, idp.ErrInvalidAuthorizationDetails) {
		s.authorizeError(w, r, ar, errInvalidAuthorizationDetails.WithHint(publicReason(err)))
		return nil, false
	}
	if err != nil {
		s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return nil, false
	}
	required, err := requiredLevel(form)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return nil, false
	}
	return s.newLogin(w, r, ar, plan, required, rec.UsedPAR, nil)
}

// accessDuration is what the login page says about how long the site keeps
// access: the refresh tokens' lifetime in days when it asks offline_access
// and may hold refresh tokens (fosite issues one only then), else the
// session's lifetime in hours.
func (s *Server) accessDuration(lr *eid.LoginRequest, refreshes bool) (days, hours int) {
	q, _ := url.ParseQuery(string(lr.Continuation))
	if refreshes && slices.Contains(strings.Fields(q.Get("scope")), "offline_access") && s.cfg.RefreshTokenTTL > 0 {
		return ceilDiv(s.cfg.RefreshTokenTTL, 24*time.Hour), 0
	}
	return 0, ceilDiv(s.cfg.SessionTTL, time.Hour)
}

// clientRefreshes reports whether a client is registered for refresh
// tokens; when the store cannot say, the page errs on the side of the
// longer access.
func (s *Server) clientRefreshes(ctx context.Context, clientID string) bool {
	c, err := s.store.GetClient(ctx, clientID)
	if err != nil {
		return true
	}
	return slices.Contains(c.GrantTypes, "refresh_token")
}

// ceilDiv is d in whole units, rounded up: the page must not understate
// how long access lasts.
func ceilDiv(d, unit time.Duration) int {
	return max(1, int((d+unit-1)/unit))
}
