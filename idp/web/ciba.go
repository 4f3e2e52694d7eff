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
	"unicode"
	"unicode/utf8"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/oidc"
)

// PathBCAuthorize is the CIBA backchannel authentication endpoint.
const PathBCAuthorize = "/bc-authorize"

// CIBA bounds.
const (
	// cibaInterval is the least time between two polls of one request.
	cibaInterval = 5 * time.Second
	// cibaGrace keeps a request's record after it expires, so a late poll
	// is told expired_token rather than invalid_grant.
	cibaGrace = 10 * time.Minute
	// maxBindingMessage is OneDoor's bound on binding_message, in
	// characters: it must fit the app's line and a clerk must read it out.
	maxBindingMessage = 40
	// maxRequestedExpiry bounds requested_expiry; the request lives no
	// longer than a login request in any case (eid.MaxLoginTTL).
	maxRequestedExpiry = 600
)

// errInvalidBindingMessage is CIBA Core 1.0 section 13's error for a
// binding_message OneDoor does not accept. (unknown_user_id is never sent:
// see bcAuthorize; login_hint_token is unsupported, so
// expired_login_hint_token never arises.)
var (
	errInvalidBindingMessage = &fosite.RFC6749Error{ErrorField: "invalid_binding_message", CodeField: http.StatusBadRequest,
		DescriptionField: "The binding_message is invalid or unacceptable."}
)

// bcRequest is a parsed backchannel authentication request.
type bcRequest struct {
	Scopes            []string
	LoginHint         string // a personal id
	IDTokenHint       string
	BindingMessage    string
	Expiry            time.Duration // 0: the default
	ACRValues         string
	NotificationToken string
}

// parseBCRequest checks the form of a backchannel authentication request
// (CIBA Core 1.0 section 7.1) and OneDoor's rules: openid in scope, exactly
// one hint (login_hint_token is not supported), a short printable binding
// message, a bounded requested_expiry. It reads no store.
func parseBCRequest(form url.Values) (*bcRequest, error) {
	for k, v := range form {
		if len(v) > 1 {
			return nil, fosite.ErrInvalidRequest.WithHintf("The %q parameter is repeated.", k)
		}
	}
	for _, p := range []string{"request", "request_uri", "user_code"} {
		if form.Has(p) {
			return nil, fosite.ErrInvalidRequest.WithHintf("The %q parameter is not supported.", p)
		}
	}
	req := &bcRequest{
		Scopes:            strings.Fields(form.Get("scope")),
		LoginHint:         form.Get("login_hint"),
		IDTokenHint:       form.Get("id_token_hint"),
		BindingMessage:    form.Get("binding_message"),
		ACRValues:         form.Get("acr_values"),
		NotificationToken: form.Get("client_notification_token"),
	}
	if !slices.Contains(req.Scopes, ScopeOpenID) {
		return nil, fosite.ErrInvalidScope.WithHint("The openid scope is required.")
	}
	hints := 0
	for _, h := range []string{"login_hint", "id_token_hint", "login_hint_token"} {
		if form.Get(h) != "" {
			hints++
		}
	}
	if hints != 1 {
		return nil, fosite.ErrInvalidRequest.WithHint("Send exactly one of login_hint, id_token_hint or login_hint_token.")
	}
	if form.Get("login_hint_token") != "" {
		return nil, fosite.ErrInvalidRequest.WithHint("login_hint_token is not supported: send login_hint (a personal id) or id_token_hint.")
	}
	if req.LoginHint != "" && !idp.ValidPersonalID(req.LoginHint) {
		return nil, fosite.ErrInvalidRequest.WithHint("login_hint must be a 12-digit personal id.")
	}
	if len(req.IDTokenHint) > 8192 {
		return nil, fosite.ErrInvalidRequest.WithHint("id_token_hint is too long.")
	}
	if err := checkBindingMessage(req.BindingMessage); err != nil {
		return nil, err
	}
	if v := form.Get("requested_expiry"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxRequestedExpiry {
			return nil, fosite.ErrInvalidRequest.WithHintf("requested_expiry must be a whole number of seconds from 1 to %d.", maxRequestedExpiry)
		}
		req.Expiry = time.Duration(n) * time.Second
	}
	if len(req.ACRValues) > 256 {
		return nil, fosite.ErrInvalidRequest.WithHint("acr_values is too long.")
	}
	if len(req.NotificationToken) > 1024 || strings.ContainsFunc(req.NotificationToken, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return nil, fosite.ErrInvalidRequest.WithHint("client_notification_token must be at most 1024 printable ASCII characters.")
	}
	return req, nil
}

// checkBindingMessage: required (the citizen has no other way to tell this
// request from another), at most maxBindingMessage characters of printable
// text, without control or bidirectional formatting characters that could
// make the app show something else than the clerk reads.
func checkBindingMessage(m string) error {
	if strings.TrimSpace(m) == "" {
		return errInvalidBindingMessage.WithHint("binding_message is required: a short text the clerk shows and the citizen's app shows too.")
	}
	if !utf8.ValidString(m) || utf8.RuneCountInString(m) > maxBindingMessage {
		return errInvalidBindingMessage.WithHintf("binding_message must be at most %d characters of UTF-8.", maxBindingMessage)
	}
	for _, r := range m {
		if !unicode.IsPrint(r) || unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Cf, r) {
			return errInvalidBindingMessage.WithHint("binding_message must be printable text, without control or formatting characters.")
		}
	}
	return nil
}

// cibaRecord is a backchannel authentication request as the token endpoint
// and the ping need it, kept in the ephemeral store under the hash of its
// auth_req_id.
type cibaRecord struct {
	ClientID  string        `json:"client_id"`
	LoginID   string        `json:"login_id"`
	Scopes    []string      `json:"scopes"`
	ExpiresAt time.Time     `json:"expires_at"`
	Interval  time.Duration `json:"interval"`
	// Ping mode: a ping is held in the durable delivery queue, with the
	// client_notification_token (kept there only, until it is sent).
	Ping bool `json:"ping,omitempty"`
}

// CIBAPingSID is the delivery-queue SID of the ping of a request: the
// auth_req_id's hash, which is what the queue is searched by.
func CIBAPingSID(authReqID string) string { return idp.CIBAPingKey(hashHex(authReqID)) }

func cibaKey(authReqID string) string     { return "web:ciba:" + hashHex(authReqID) }
func cibaPollKey(authReqID string) string { return "web:ciba:poll:" + hashHex(authReqID) }
func cibaDoneKey(authReqID string) string { return "web:ciba:done:" + hashHex(authReqID) }
func cibaLoginKey(loginID string) string  { return "web:ciba:login:" + hashHex(loginID) }

// bcAuthorize is the backchannel authentication endpoint (CIBA Core 1.0
// section 7). It authenticates the client as the token endpoint does.
//
// No oracle: an unknown personal id, or a citizen without a device, is
// answered exactly as a known one (same response, same prompt counting,
// the same background steps); the request is simply never approved and
// expires. unknown_user_id is never returned: it would let any agency
// client enumerate citizens.
func (s *Server) bcAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.allow(ctx, w, s.loginLimit(), s.clientKey(r)) {
		return
	}
	if err := r.ParseForm(); err != nil || len(r.PostForm) > 64 {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The request could not be parsed.")
		return
	}
	c := s.authenticateClient(w, r, "bc-authorize")
	if c == nil {
		return
	}
	client := c.Record
	if !slices.Contains(client.GrantTypes, idp.GrantTypeCIBA) {
		s.bcError(w, fosite.ErrUnauthorizedClient.WithHint("The client is not registered for the CIBA grant."))
		return
	}
	form := url.Values{}
	for k, v := range r.PostForm {
		switch k {
		case "client_id", "client_secret", "client_assertion", "client_assertion_type":
		default:
			form[k] = v
		}
	}
	req, err := parseBCRequest(form)
	if err != nil {
		s.bcError(w, err)
		return
	}
	for _, sc := range req.Scopes {
		if sc == ScopeOffline && !slices.Contains(client.GrantTypes, "refresh_token") {
			// As the code flow, offline_access yields a refresh token only
			// to a client registered for the refresh_token grant; CIBA says
			// so rather than ignore it.
			s.bcError(w, fosite.ErrInvalidScope.WithHint("offline_access needs a client registered for the refresh_token grant."))
			return
		}
		if sc == idp.ScopeAgency || sc == ScopeRepresentation {
			// Representation is chosen in the app during a browser login;
			// a clerk's backchannel request cannot carry the choice.
			s.bcError(w, fosite.ErrInvalidScope.WithHintf("The scope %q is not granted by CIBA.", sc))
			return
		}
		if !slices.Contains(client.Scopes, sc) {
			s.bcError(w, fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope %q.", sc))
			return
		}
	}
	if client.BackchannelTokenDeliveryMode == idp.CIBAModePing {
		if req.NotificationToken == "" {
			s.bcError(w, fosite.ErrInvalidRequest.WithHint("client_notification_token is required in ping mode."))
			return
		}
		if s.cfg.Pings == nil {
			s.bcError(w, fosite.ErrUnauthorizedClient.WithHint("Ping mode is not available on this server; register the client for poll mode."))
			return
		}
	}
	target, err := s.cibaTarget(ctx, c, req)
	if err != nil {
		s.bcError(w, err)
		return
	}
	plan, err := s.release.Plan(ctx, client, idp.ClaimsRequest{Scopes: req.Scopes})
	if err != nil {
		s.bcError(w, fosite.ErrServerError.WithWrap(err))
		return
	}
	lr := &eid.LoginRequest{
		ClientID: client.ID, ClientName: plan.Recipient, Claims: plan.Claims,
		PurposeCode: plan.Purpose.Code, Purpose: plan.Purpose.Text,
		Level: levelFromACRValues(req.ACRValues), Target: target.citizenID, BindingMessage: req.BindingMessage,
	}
	if err := s.eid.NewLogin(ctx, lr); err != nil {
		s.bcError(w, err)
		return
	}
	expires := lr.ExpiresAt
	if req.Expiry > 0 && lr.CreatedAt.Add(req.Expiry).Before(expires) {
		expires = lr.CreatedAt.Add(req.Expiry)
	}
	id := randomToken()
	rec := cibaRecord{ClientID: client.ID, LoginID: lr.ID, Scopes: req.Scopes, ExpiresAt: expires, Interval: cibaInterval}
	if client.BackchannelTokenDeliveryMode == idp.CIBAModePing {
		// Held until the citizen answers, durably: a restart or another
		// replica still pings.
		rec.Ping = true
		if err := s.cfg.Pings.EnqueueDelivery(ctx, &idp.Delivery{
			Kind: idp.DeliveryCIBAPing, ClientID: client.ID, SID: CIBAPingSID(id),
			Payload: id, Secret: req.NotificationToken, ExpiresAt: &expires, State: idp.DeliveryHeld, NextAttemptAt: expires,
		}); err != nil {
			s.bcError(w, err)
			return
		}
	}
	if err := s.saveCIBA(ctx, id, &rec, true); err != nil {
		s.bcError(w, err)
		return
	}
	if rec.Ping {
		// The app lists a request from NewLogin on: an answer given before
		// the record above was saved found no ping to release.
		if st, _, err := s.eid.Status(ctx, lr.ID); err == nil && st != eid.StatusPending {
			s.cibaDecided(ctx, lr.ID)
		}
	}
	// A poll before the first interval is too fast as well.
	_ = s.eph.Create(ctx, cibaPollKey(id), []byte{1}, rec.Interval)
	s.prompt(ctx, lr, target)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"auth_req_id": id,
		"expires_in":  int((expires.Sub(s.cfg.Now()) + time.Second - 1) / time.Second),
		"interval":    int(rec.Interval / time.Second),
	})
}

// saveCIBA stores rec under id; with index, also the login request's link
// back to it, for the ping.
func (s *Server) saveCIBA(ctx context.Context, id string, rec *cibaRecord, index bool) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ttl := time.Until(rec.ExpiresAt) + cibaGrace
	if index {
		if err := s.eph.Set(ctx, cibaLoginKey(rec.LoginID), []byte(id), ttl); err != nil {
			return err
		}
	}
	return s.eph.Set(ctx, cibaKey(id), b, ttl)
}

// cibaTarget finds whom the request goes to, counting the prompt against
// the citizen's limit (push fatigue, the login_hint's counter). As
// hintTarget, an unknown personal id gets a target no device matches and
// the same answer.
func (s *Server) cibaTarget(ctx context.Context, c *oidc.Client, req *bcRequest) (*loginTarget, error) {
	var citizenID, key string
	if req.LoginHint != "" {
		key = s.subjectKey("personal-id", req.LoginHint)
		cit, err := s.store.GetCitizenByPersonalID(ctx, req.LoginHint)
		switch {
		case err == nil:
			citizenID = cit.ID
		case errors.Is(err, idp.ErrNotFound):
			citizenID = eid.Unmatched
		default:
			return nil, err
		}
	} else {
		sub, aud, _, err := s.provider.VerifyIDTokenHint(ctx, req.IDTokenHint)
		if err != nil || !slices.Contains(aud, c.GetID()) {
			return nil, fosite.ErrInvalidRequest.WithHint("The id_token_hint is not an ID token this provider issued to this client.")
		}
		cit, err := s.store.GetCitizen(ctx, sub)
		switch {
		case err == nil:
			citizenID, key = cit.ID, s.subjectKey("personal-id", cit.PersonalID)
		case errors.Is(err, idp.ErrNotFound):
			citizenID, key = eid.Unmatched, s.subjectKey("citizen", sub)
		default:
			return nil, err
		}
	}
	p, ok, err := s.eid.ReservePrompt(ctx, key, s.cfg.Limits.PromptsPerCitizen, promptWindow)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Push fatigue. Counted alike for unknown personal ids, so this
		// says nothing about whether the person exists.
		return nil, fosite.ErrAccessDenied.WithHint("Too many authentication requests for this person; try again later.")
	}
	return &loginTarget{citizenID: citizenID, prompt: p}, nil
}

// bcError writes a backchannel authentication error (CIBA Core 1.0
// section 13): 401 for client authentication, 503 for an outage.
func (s *Server) bcError(w http.ResponseWriter, err error) {
	if errors.Is(err, idp.ErrUnavailable) {
		s.unavailable(w, "store", err)
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == "error" {
		rfc = fosite.ErrorToRFC6749Error(fosite.ErrServerError.WithWrap(err))
	}
	s.logServerError("bc-authorize", rfc)
	status := rfc.CodeField
	if rfc.ErrorField == fosite.ErrAccessDenied.ErrorField || rfc.ErrorField == fosite.ErrUnauthorizedClient.ErrorField {
		status = http.StatusBadRequest
		if rfc.ErrorField == fosite.ErrAccessDenied.ErrorField {
			status = http.StatusForbidden
		}
	}
	if status < 400 || status > 599 {
		status = http.StatusBadRequest
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSONError(w, status, rfc.ErrorField, rfc.GetDescription())
}

// RedeemCIBA is the token endpoint's CIBA grant (oidc.CIBAResolver): the
// request's client only, paced by its interval, once. An approval becomes
// a consent record and a session exactly as a code-flow login's does.
func (s *Server) RedeemCIBA(ctx context.Context, ar fosite.AccessRequester, authReqID string) error {
	invalid := fosite.ErrInvalidGrant.WithHint("The auth_req_id is unknown, was issued to another client, or has already been used.")
	if len(authReqID) > 128 {
		return invalid
	}
	b, err := s.eph.Get(ctx, cibaKey(authReqID))
	if errors.Is(err, idp.ErrNotFound) {
		return invalid
	}
	if err != nil {
		return err
	}
	var rec cibaRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return invalid
	}
	if rec.ClientID != ar.GetClient().GetID() {
		return invalid
	}
	if _, err := s.eph.Get(ctx, cibaDoneKey(authReqID)); err == nil {
		return invalid
	} else if !errors.Is(err, idp.ErrNotFound) {
		return err
	}
	if !s.cfg.Now().Before(rec.ExpiresAt) {
		return oidc.ErrExpiredToken
	}
	if err := s.eph.Create(ctx, cibaPollKey(authReqID), []byte{1}, rec.Interval); err != nil {
		if !errors.Is(err, idp.ErrConflict) {
			return err
		}
		// RFC 8628 section 3.5: the client adds 5 s; so does the record.
		rec.Interval += 5 * time.Second
		if err := s.saveCIBA(ctx, authReqID, &rec, false); err != nil {
			return err
		}
		return oidc.ErrSlowDown
	}
	st, _, err := s.eid.Status(ctx, rec.LoginID)
	if err != nil {
		return err
	}
	switch st {
	case eid.StatusPending:
		return oidc.ErrAuthorizationPending
	case eid.StatusExpired:
		return oidc.ErrExpiredToken
	}
	// The request's DPoP proof is spent before the decision is taken: a
	// replayed proof, or a replay store that is down, leaves the approval
	// for the client's next poll.
	if err := s.spendPending(ctx); err != nil {
		return err
	}
	lr, dec, err := s.eid.TakeDecision(ctx, rec.LoginID)
	if errors.Is(err, idp.ErrNotFound) {
		return invalid // another redemption took it
	}
	if err != nil {
		return err
	}
	if err := s.eph.Create(ctx, cibaDoneKey(authReqID), []byte{1}, time.Until(rec.ExpiresAt)+cibaGrace); err != nil && !errors.Is(err, idp.ErrConflict) {
		return err
	}
	if !dec.Approved {
		return fosite.ErrAccessDenied.WithHint("The citizen declined the request in the eID app.")
	}
	return s.cibaSession(ctx, ar, &rec, lr, dec)
}

// cibaSession records the consent the approval signed and fills the
// grant's session as finish does for the code flow.
func (s *Server) cibaSession(ctx context.Context, ar fosite.AccessRequester, rec *cibaRecord, lr *eid.LoginRequest, dec *eid.Decision) error {
	if _, err := s.eid.ActiveDevice(ctx, dec.DeviceID); err != nil {
		if errors.Is(err, idp.ErrNotFound) {
			return fosite.ErrAccessDenied.WithHint("The eID device that approved the request has been revoked.")
		}
		return err
	}
	client := clientRecord(ar)
	plan := &idp.ReleasePlan{Purpose: consent.Purpose{Code: lr.PurposeCode, Text: lr.Purpose}, Recipient: lr.ClientName, Claims: lr.Claims}
	agr, err := s.release.Record(ctx, &idp.Approval{CitizenID: dec.CitizenID, Client: client, Plan: plan, Shared: dec.Claims, Evidence: dec.Approval})
	if err != nil {
		return err
	}
	rel, err := s.release.Released(ctx, idp.TokenRelease{ClientID: client.ID, CitizenID: dec.CitizenID, ConsentID: agr.ConsentID, Agreed: agr.Agreed})
	switch {
	case errors.Is(err, idp.ErrNotFound):
		return fosite.ErrAccessDenied.WithHint("The client no longer exists.")
	case errors.Is(err, idp.ErrConsentWithdrawn):
		return fosite.ErrAccessDenied.WithHint("The citizen withdrew the consent.")
	case err != nil:
		return err
	}
	extra := map[string]any{"azp": client.ID}
	idPlan, err := s.release.Plan(ctx, client, idp.ClaimsRequest{Scopes: rec.Scopes})
	if err != nil {
		return err
	}
	var inIDToken []string
	for _, name := range idPlan.IDToken {
		if slices.Contains(rel.Claims, name) {
			inIDToken = append(inIDToken, name)
		}
	}
	if len(inIDToken) > 0 {
		cit, err := s.store.GetCitizen(ctx, dec.CitizenID)
		if err != nil {
			return err
		}
		for k, v := range citizenClaims(cit, inIDToken) {
			if k != "sub" {
				extra[k] = v
			}
		}
	}
	for _, sc := range rec.Scopes {
		ar.GrantScope(sc)
	}
	ar.GrantAudience(s.provider.DefaultAudience())
	os, ok := ar.GetSession().(*oidc.Session)
	if !ok {
		return fosite.ErrServerError.WithDebug("The session is not a OneDoor session.")
	}
	os.Subject = dec.CitizenID
	os.Released = rel.Claims
	os.DeviceID = dec.DeviceID
	os.ConsentID = rel.ConsentID
	os.Claims = &jwt.IDTokenClaims{
		Subject:                             dec.CitizenID,
		Issuer:                              s.cfg.Issuer,
		AuthTime:                            dec.DecidedAt.UTC(),
		RequestedAt:                         lr.CreatedAt.UTC(),
		AuthenticationContextClassReference: string(dec.Level),
		AuthenticationMethodsReferences:     []string{"hwk", "user"},
		Extra:                               extra,
	}
	return nil
}

// cibaDecided makes the ping of a ping-mode client's request due once the
// citizen answered it (CIBA Core 1.0 section 10.2): the durable delivery
// queue sends it, retried with backoff until it is acknowledged or the
// request expires. The caller has recorded the decision; a failure here
// leaves the ping held (the client can still poll) and is logged.
func (s *Server) cibaDecided(ctx context.Context, loginID string) {
	idb, err := s.eph.Get(ctx, cibaLoginKey(loginID))
	if err != nil {
		return // not a CIBA request
	}
	b, err := s.eph.Get(ctx, cibaKey(string(idb)))
	if err != nil {
		return
	}
	var rec cibaRecord
	if json.Unmarshal(b, &rec) != nil || !rec.Ping || s.cfg.Pings == nil {
		return
	}
	err = s.cfg.Pings.ReleaseDelivery(ctx, rec.ClientID, CIBAPingSID(string(idb)), s.cfg.Now())
	if err != nil {
		s.log.Warn("ciba ping not queued", "client_id", rec.ClientID, "err", err.Error())
		return
	}
	if s.cfg.OnPingQueued != nil {
		s.cfg.OnPingQueued()
	}
}
