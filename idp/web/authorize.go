package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/oidc"
	"github.com/onedoor/onedoor/represent"
)

// authorize is the authorization endpoint. A request that cannot succeed is
// refused before the citizen is asked anything.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// Request objects are not supported (discovery says so), and checked
	// before fosite sees the request: it would merge an unsigned one
	// (alg none) into the request, and fetch a request_uri from anywhere.
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The request could not be parsed.")
		return
	}
	if r.Form.Get("request") != "" {
		s.renderError(w, r, http.StatusBadRequest, "request_not_supported", "Request objects are not supported; use a pushed authorization request.")
		return
	}
	if u := r.Form.Get("request_uri"); u != "" && !strings.HasPrefix(u, "urn:ietf:params:oauth:request_uri:") {
		s.renderError(w, r, http.StatusBadRequest, "request_uri_not_supported", "Only request_uri values issued by the pushed authorization request endpoint are accepted.")
		return
	}
	if u := r.Form.Get("request_uri"); u != "" {
		// RFC 9126 section 4: with a pushed request, only what was pushed
		// counts; fosite would merge in anything else the front channel
		// carries (a relayed URL could add a purpose, claims, prompt...).
		r.Form = url.Values{"client_id": r.Form["client_id"], "request_uri": {u}}
	}
	ar, err := s.provider.NewAuthorizeRequest(ctx, r)
	if rerr := checkRedirectURI(ar); rerr != nil {
		// Before anything can redirect, even an error.
		err = rerr
	}
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	usedPAR := strings.HasPrefix(r.Form.Get("request_uri"), "urn:ietf:params:oauth:request_uri:")
	if p := repeatedParam(r.Form); p != "" {
		// RFC 6749 section 3.1: parameters must not be repeated.
		s.authorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHintf("The %q parameter is repeated.", p))
		return
	}
	if err := s.validateAuthorize(ar, usedPAR); err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	form := ar.GetRequestForm()
	required, err := requiredLevel(form)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	client := clientRecord(ar)
	// What the citizen is asked (and may ever be released) is bounded by the
	// client's registration, whatever the request says.
	plan, err := s.release.Plan(ctx, client, claimsRequest(ar))
	if errors.Is(err, idp.ErrInvalidAuthorizationDetails) {
		s.authorizeError(w, r, ar, errInvalidAuthorizationDetails.WithHint(publicReason(err)))
		return
	}
	if err != nil {
		s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	prompt := strings.Fields(form.Get("prompt"))

	sess, err := s.browserSession(ctx, r)
	if err != nil {
		s.unavailable(w, "ephemeral store", err)
		return
	}
	// prompt=login and prompt=consent both ask the citizen again in the app.
	ask := slices.Contains(prompt, "login") || slices.Contains(prompt, "consent")
	if wantsRepresentation(ar.GetRequestedScopes()) {
		// Whom the citizen acts for is chosen in the app at each login:
		// single sign-on never answers it silently.
		ask = true
		if slices.Contains(prompt, "none") {
			s.authorizeError(w, r, ar, fosite.ErrInteractionRequired.WithHint("A login with representation is always approved in the eID app."))
			return
		}
	}
	if sess != nil && !ask && s.sessionSatisfies(sess, form, required) {
		// Silent single sign-on releases only what the citizen already agreed
		// to share with this client; an essential claim they have not agreed
		// to needs the app.
		agr, err := s.release.Silent(ctx, sess.CitizenID, client, plan)
		if err != nil {
			s.unavailable(w, "durable store", err)
			return
		}
		if agr.Covered {
			s.finish(w, r, ar, sess, agr, s.cfg.Now(), nil)
			return
		}
		if slices.Contains(prompt, "none") {
			s.authorizeError(w, r, ar, fosite.ErrConsentRequired.WithHint("The citizen has not agreed to share the requested claims."))
			return
		}
	} else if slices.Contains(prompt, "none") {
		s.authorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("No single sign-on session satisfies the request."))
		return
	}
	if !s.allow(ctx, w, s.loginLimit(), s.clientKey(r)) || !s.allow(ctx, w, s.limitLoginTotal(), "all") {
		return
	}
	s.startLogin(w, r, ar, plan, required, usedPAR, s.hintTarget(ctx, ar))
}

// validateAuthorize checks what fosite only checks after login: PKCE with
// S256, the code response type, per-client PAR, the claims parameter.
func (s *Server) validateAuthorize(ar fosite.AuthorizeRequester, usedPAR bool) error {
	if err := checkRedirectURI(ar); err != nil {
		return err
	}
	form := ar.GetRequestForm()
	if !ar.GetResponseTypes().ExactOne("code") {
		return fosite.ErrUnsupportedResponseType.WithHint("Only the authorization code flow (response_type=code) is supported.")
	}
	if m := form.Get("response_mode"); m != "" && m != "query" {
		return fosite.ErrInvalidRequest.WithHint("Only response_mode=query is supported.")
	}
	if c, ok := ar.GetClient().(*oidc.Client); ok && c.Record.PARRequired && !usedPAR {
		return fosite.ErrInvalidRequest.WithHint("This client must use a pushed authorization request (RFC 9126).")
	}
	if wantsRepresentation(ar.GetRequestedScopes()) && s.cfg.Represent == nil {
		// No silent downgrade to a login as the citizen themselves.
		return fosite.ErrInvalidScope.WithHint("Representation is not offered by this provider.")
	}
	if slices.Contains(ar.GetRequestedScopes(), idp.ScopeAgency) {
		// An agency's own scope: a citizen's token never carries it.
		return fosite.ErrInvalidScope.WithHint("The agency scope is granted only by client_credentials.")
	}
	if form.Get("code_challenge") == "" {
		return fosite.ErrInvalidRequest.WithHint("PKCE is required: send code_challenge with code_challenge_method=S256.")
	}
	if form.Get("code_challenge_method") != "S256" {
		return fosite.ErrInvalidRequest.WithHint("Only the S256 code_challenge_method is accepted.")
	}
	if _, err := idp.ParseClaimsRequest(nil, form.Get("claims")); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The claims parameter is not a valid JSON object (OIDC Core 5.5).")
	}
	// RFC 9396: one OneDoor object naming a registered purpose and claims
	// the client may receive; it narrows the request, never widens it.
	if _, err := idp.ParseAuthorizationDetails(form.Get("authorization_details"), clientRecord(ar)); err != nil {
		return errInvalidAuthorizationDetails.WithHint(publicReason(err))
	}
	if ma := form.Get("max_age"); ma != "" {
		if n, err := strconv.Atoi(ma); err != nil || n < 0 {
			return fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative integer.")
		}
	}
	if len(form.Get("purpose")) > 300 {
		return fosite.ErrInvalidRequest.WithHint("purpose is longer than 300 characters.")
	}
	prompt := strings.Fields(form.Get("prompt"))
	for _, p := range prompt {
		if p != "none" && p != "login" && p != "consent" && p != "select_account" {
			return fosite.ErrInvalidRequest.WithHintf("Unsupported prompt value %q.", p)
		}
	}
	if slices.Contains(prompt, "none") && len(prompt) > 1 {
		return fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values.")
	}
	if _, err := s.provider.Resources(form); err != nil {
		return err
	}
	return checkDPoPJKT(form, nil)
}

// checkRedirectURI matches the redirect URI exactly (idp.Client.
// RedirectURIAllowed): fosite lets every client move a loopback redirect URI
// to another port and ignores a userinfo component there. A refused URI is
// removed from the request, so the error is rendered as a page and nothing
// is sent to that URI.
func checkRedirectURI(ar fosite.AuthorizeRequester) error {
	if ar == nil || ar.GetRedirectURI() == nil {
		return nil
	}
	c, ok := ar.GetClient().(*oidc.Client)
	if !ok {
		return nil
	}
	raw := ar.GetRequestForm().Get("redirect_uri")
	if raw == "" {
		raw = ar.GetRedirectURI().String()
	}
	if c.Record.RedirectURIAllowed(raw) {
		return nil
	}
	if r, ok := ar.(*fosite.AuthorizeRequest); ok {
		r.RedirectURI = nil
	}
	return fosite.ErrInvalidRequest.WithHint("The redirect_uri is not registered for this client.")
}

// authorizeError sends an error to the client's registered redirect URI with
// iss (RFC 9207) and state, or renders an error page when the redirect URI
// cannot be trusted: never a redirect to an unregistered URI.
func (s *Server) authorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	if errors.Is(err, idp.ErrUnavailable) {
		s.unavailable(w, "store", err)
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == "error" {
		// Unclassified (a permanent store failure): a standard server_error.
		rfc = fosite.ErrorToRFC6749Error(fosite.ErrServerError.WithWrap(err))
	}
	s.logServerError("authorize", rfc)
	if ar == nil || !ar.IsRedirectURIValid() || ar.GetRedirectURI() == nil {
		s.renderError(w, r, rfc.CodeField, rfc.ErrorField, rfc.GetDescription())
		return
	}
	u := *ar.GetRedirectURI()
	u.Fragment = ""
	q := u.Query()
	q.Set("error", rfc.ErrorField)
	if d := rfc.GetDescription(); d != "" {
		q.Set("error_description", d)
	}
	if st := ar.GetState(); st != "" {
		q.Set("state", st)
	}
	q.Set("iss", s.cfg.Issuer)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", u.String())
	w.WriteHeader(http.StatusSeeOther)
}

// finish issues the authorization code for a citizen whose login is settled.
// agr is what the citizen agreed to share and the consent it rests on; the
// release policy narrows it to what the client may receive now, and claims
// the request asked for in the ID token go there, read from the registry
// (OIDC Core 5.5). The code, and every token from it, carries the consent.
//
// With act (a representation login), the subject of every token is the
// party, whose claims (a ward's registry data, an organisation's) are
// released, never the acting citizen's own; a mandate (bounded to
// services) releases no registry data of a person (idp.RepresentationReleases).
// The browser session stays the citizen's.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, sess *browserSession, agr *idp.Agreement, requestedAt time.Time, act *acting) {
	ctx := r.Context()
	client := clientRecord(ar)
	subject := sess.CitizenID
	if act != nil {
		subject = act.rep.Party.ID
	}
	rel, err := s.release.Released(ctx, idp.TokenRelease{ClientID: client.ID, CitizenID: subject, ConsentID: agr.ConsentID, Agreed: agr.Agreed,
		OnBehalf: act.onBehalf(), Bounded: act.bounded()})
	switch {
	case errors.Is(err, idp.ErrNotFound): // the client was deleted during the login
		s.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The client no longer exists."))
		return
	case errors.Is(err, idp.ErrConsentWithdrawn): // withdrawn during the login
		s.authorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The citizen withdrew the consent."))
		return
	case err != nil:
		s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	released := rel.Claims
	extra := map[string]any{"sid": sess.SID, "azp": client.ID}
	plan, err := s.release.Plan(ctx, client, claimsRequest(ar))
	if errors.Is(err, idp.ErrInvalidAuthorizationDetails) { // the client was narrowed during the login
		s.authorizeError(w, r, ar, errInvalidAuthorizationDetails.WithHint(publicReason(err)))
		return
	}
	if err != nil {
		s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	var inIDToken []string
	for _, name := range plan.IDToken {
		if slices.Contains(released, name) {
			inIDToken = append(inIDToken, name)
		}
	}
	if act != nil && act.rep.Party.Type == represent.TypeOrganisation {
		inIDToken = nil // an organisation has no registry claims
	}
	if len(inIDToken) > 0 {
		cit, err := s.store.GetCitizen(ctx, subject)
		if err != nil {
			s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
		for k, v := range citizenClaims(cit, inIDToken) {
			if k != "sub" {
				extra[k] = v
			}
		}
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	// The grant's audience: the resources asked for (RFC 8707, checked in
	// validateAuthorize), or the IdP's userinfo. Kept as requested audience
	// too, which fosite copies into token requests, so the token endpoint
	// can tell which resources a code or refresh token may be exchanged for.
	aud, err := s.provider.Resources(ar.GetRequestForm())
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	if len(aud) == 0 {
		aud = []string{s.provider.DefaultAudience()}
	}
	ar.SetRequestedAudience(aud)
	for _, a := range aud {
		ar.GrantAudience(a)
	}
	os := oidc.NewSession()
	os.Subject = sess.CitizenID
	if act != nil {
		applyActing(os, act)
		more, err := s.actingClaims(ctx, os.Subject, os.Act, os.Representation)
		if err != nil {
			s.authorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
			return
		}
		for k, v := range more {
			extra[k] = v
		}
	}
	os.Released = released
	os.DeviceID = sess.DeviceID
	os.ConsentID = rel.ConsentID
	// dpop_jkt (RFC 9449 section 10): the code, and what it is exchanged
	// for, is bound to that key.
	os.KeyThumbprint = ar.GetRequestForm().Get("dpop_jkt")
	if d := claimsRequest(ar).Details; d != nil {
		// RFC 9396 section 7: the token responses return what was granted:
		// the asked items the citizen shared.
		granted := *d
		granted.Items = slices.DeleteFunc(slices.Clone(d.Items), func(it string) bool { return !slices.Contains(released, it) })
		os.AuthorizationDetails, _ = json.Marshal([]idp.AuthorizationDetail{granted}) // strings only
	}
	amr := []string{"hwk", "user"}
	if len(sess.AMR) > 0 {
		amr = sess.AMR
	}
	os.Claims = &jwt.IDTokenClaims{
		Subject:                             os.Subject,
		Issuer:                              s.cfg.Issuer,
		AuthTime:                            sess.AuthTime.UTC(),
		RequestedAt:                         requestedAt.UTC(),
		AuthenticationContextClassReference: string(sess.Level),
		// hwk: proof of possession of the device key; user: presence checked
		// by the app (RFC 8176). A passkey login says its own (passkeyAMR).
		AuthenticationMethodsReferences: amr,
		Extra:                           extra,
	}
	resp, err := s.provider.NewAuthorizeResponse(ctx, ar, os)
	if err != nil {
		s.authorizeError(w, r, ar, err)
		return
	}
	if err := s.touchSession(ctx, sess, ar.GetClient().GetID()); err != nil {
		if errors.Is(err, errSessionEnded) {
			// Ended (a logout, a lock) since it was read: the client would
			// get a session no back-channel logout covers.
			s.authorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("The single sign-on session has ended."))
			return
		}
		s.log.Warn("record client in session", "err", err)
	}
	resp.AddParameter("iss", s.cfg.Issuer)
	s.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// sessionSatisfies decides whether the SSO session is good enough for this
// request without asking the app again.
func (s *Server) sessionSatisfies(sess *browserSession, form url.Values, required idp.Level) bool {
	if sess.Level.Rank() < required.Rank() {
		return false
	}
	if ma := form.Get("max_age"); ma != "" {
		n, _ := strconv.Atoi(ma)
		if s.cfg.Now().Sub(sess.AuthTime) > time.Duration(n)*time.Second {
			return false
		}
	}
	return true
}

// browserSession is the single sign-on session behind the session cookie.
type browserSession struct {
	SID       string    `json:"sid"`
	CitizenID string    `json:"citizen_id"`
	DeviceID  string    `json:"device_id"`
	Level     idp.Level `json:"level"`
	AuthTime  time.Time `json:"auth_time"`
	Clients   []string  `json:"clients,omitempty"`
	// PasskeyID is the passkey a passkey login used (passkey.go); AMR
	// replaces the eID app's methods then.
	PasskeyID string   `json:"passkey_id,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	key       string
	ttl       time.Duration
}

const sessionPrefix = "web:session:"

func (s *Server) sessionCookieName() string { return s.cookiePrefix() + "onedoor-session" }

func (s *Server) loginCookieName() string { return s.cookiePrefix() + "onedoor-login" }

// cookiePrefix is __Host- on https at the host's root. Under an issuer path
// the cookies are scoped to that path, which __Host- forbids, so they are
// __Secure- instead.
func (s *Server) cookiePrefix() string {
	switch {
	case !s.secure:
		return ""
	case s.base == "":
		return "__Host-"
	default:
		return "__Secure-"
	}
}

// cookiePath scopes cookies to the issuer's path.
func (s *Server) cookiePath() string { return s.base + "/" }

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	// Secure follows the issuer: https always, plain http only on loopback.
	http.SetCookie(w, &http.Cookie{ // #nosec G124 -- Secure is set whenever the issuer is https
		Name:     name,
		Value:    value,
		Path:     s.cookiePath(),
		MaxAge:   int(maxAge / time.Second),
		Secure:   s.secure,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: s.cookiePath(), MaxAge: -1, // #nosec G124 -- as setCookie
		Secure: s.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// browserSession loads the SSO session; nil when there is none. The cookie is
// a random handle; only its hash is a store key.
func (s *Server) browserSession(ctx context.Context, r *http.Request) (*browserSession, error) {
	c, err := r.Cookie(s.sessionCookieName())
	if err != nil || len(c.Value) < 32 || len(c.Value) > 64 {
		return nil, nil
	}
	key := sessionPrefix + hashHex(c.Value)
	v, err := s.eph.Get(ctx, key)
	if errors.Is(err, idp.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var bs browserSession
	if err := json.Unmarshal(v, &bs); err != nil {
		return nil, nil
	}
	bs.key = key
	bs.ttl = s.cfg.SessionTTL - s.cfg.Now().Sub(bs.AuthTime)
	if bs.ttl <= 0 {
		return nil, nil
	}
	if bs.PasskeyID != "" {
		return s.passkeySession(ctx, &bs)
	}
	// A session lives no longer than the device that approved it: after the
	// device is revoked, the next /authorize in this browser asks again.
	if _, err := s.eid.ActiveDevice(ctx, bs.DeviceID); err != nil {
		if !errors.Is(err, idp.ErrNotFound) {
			return nil, err
		}
		_ = s.eph.Delete(ctx, key)
		return nil, nil
	}
	return &bs, nil
}

// newSession starts a fresh SSO session with a new identifier: the session id
// rotates at every login, so a session fixed before login is worthless.
func (s *Server) newSession(ctx context.Context, w http.ResponseWriter, r *http.Request, d *eid.Decision, opts ...func(*browserSession)) (*browserSession, error) {
	if old, err := r.Cookie(s.sessionCookieName()); err == nil {
		_ = s.eph.Delete(ctx, sessionPrefix+hashHex(old.Value))
	}
	handle := randomToken()
	bs := &browserSession{
		SID:       randomToken()[:22],
		CitizenID: d.CitizenID,
		DeviceID:  d.DeviceID,
		Level:     d.Level,
		AuthTime:  d.DecidedAt.UTC(),
		key:       sessionPrefix + hashHex(handle),
		ttl:       s.cfg.SessionTTL,
	}
	for _, o := range opts {
		o(bs)
	}
	if err := s.indexSession(ctx, bs); err != nil {
		return nil, err
	}
	if err := s.saveSession(ctx, bs); err != nil {
		return nil, err
	}
	s.setCookie(w, s.sessionCookieName(), handle, s.cfg.SessionTTL)
	return bs, nil
}

func (s *Server) saveSession(ctx context.Context, bs *browserSession) error {
	v, err := json.Marshal(bs)
	if err != nil {
		return err
	}
	return s.eph.Set(ctx, bs.key, v, bs.ttl)
}

// touchSession records which clients a session has logged in to, for logout.
func (s *Server) touchSession(ctx context.Context, bs *browserSession, clientID string) error {
	if slices.Contains(bs.Clients, clientID) {
		return nil
	}
	if err := s.touchIndex(ctx, bs, clientID); err != nil {
		return err
	}
	bs.Clients = append(bs.Clients, clientID)
	return s.saveSession(ctx, bs)
}
