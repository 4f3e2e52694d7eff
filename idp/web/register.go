package web

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/oidc"
)

// Agency self-registration: RFC 7591 Dynamic Client Registration at
// POST /register with an operator's initial access token, and RFC 7592
// management at /register/{client_id} with the client's registration access
// token. A registered client is bound to the initial token's agency and is
// pending (unusable: see oidc.Storage.GetClient) until an operator runs
// `onedoor client approve`. A PUT that widens an approved client (new
// redirect URIs, scopes, claims, grant types, purposes, name or auth
// method) returns it to pending for a new review.

// PathRegister is the registration endpoint.
const PathRegister = "/register"

// RegistrationStore is what the registration endpoints need.
type RegistrationStore interface {
	idp.ClientStore
	idp.RegistrationStore
}

// Registration enables the registration endpoints.
type Registration struct {
	Store RegistrationStore
	// SecretKey keys the hashes of client secrets and registration
	// tokens (the client-secret key the token endpoint checks with).
	SecretKey []byte
}

// maxRegisterBody bounds a registration request: metadata with a JWKS of a
// few keys is a few KB.
const maxRegisterBody = 64 << 10

// Extension members of OneDoor's client metadata.
const (
	// memberPurposes is the client's catalog of purposes, [{"code","text"}]
	// (`client create --purpose`).
	memberPurposes = "onedoor_purposes"
	// memberClaims are registry claims asked for beyond the scopes'
	// (`client create --claims`).
	memberClaims = "onedoor_claims"
	// memberProfile is the client's security profile, "fapi2" or absent
	// (`client create --profile`).
	memberProfile = "onedoor_profile"
)

// ClientMetadata is the client metadata a registration request carries
// (RFC 7591 section 2, OpenID Connect Dynamic Client Registration 1.0 and
// RFC 9126 for PAR), with OneDoor's extension members.
type ClientMetadata struct {
	RedirectURIs            []string          `json:"redirect_uris"`
	ClientName              string            `json:"client_name"`
	GrantTypes              []string          `json:"grant_types"`
	ResponseTypes           []string          `json:"response_types"`
	TokenEndpointAuthMethod string            `json:"token_endpoint_auth_method"`
	JWKS                    json.RawMessage   `json:"jwks,omitempty"`
	JWKSURI                 string            `json:"jwks_uri,omitempty"`
	Scope                   string            `json:"scope"`
	PostLogoutRedirectURIs  []string          `json:"post_logout_redirect_uris"`
	IDTokenAlg              string            `json:"id_token_signed_response_alg"`
	RequirePAR              bool              `json:"require_pushed_authorization_requests"`
	Purposes                []consent.Purpose `json:"onedoor_purposes"`
	Claims                  []string          `json:"onedoor_claims"`
	Profile                 string            `json:"onedoor_profile,omitempty"`
	// OpenID CIBA Core 1.0 section 4 (registration): poll or ping; the
	// notification endpoint in ping mode. Signed authentication requests
	// and user codes are not supported: their members are accepted only
	// absent or empty (false).
	BackchannelTokenDeliveryMode          string `json:"backchannel_token_delivery_mode,omitempty"`
	BackchannelClientNotificationEndpoint string `json:"backchannel_client_notification_endpoint,omitempty"`
	BackchannelAuthRequestSigningAlg      string `json:"backchannel_authentication_request_signing_alg,omitempty"`
	BackchannelUserCodeParameter          bool   `json:"backchannel_user_code_parameter,omitempty"`
	// ClientID is only read on a PUT, where it must name the client.
	ClientID string `json:"-"`
}

// Bounds on list members, so that a request cannot make a huge client.
const (
	maxMetadataURIs  = 20
	maxMetadataScope = 1024
	maxIgnoredNames  = 20
)

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// metadataError is an RFC 7591 section 3.2.2 error.
type metadataError struct {
	code, desc string
}

func (e *metadataError) Error() string { return e.code + ": " + e.desc }

func invalidMetadata(format string, a ...any) error {
	return &metadataError{code: "invalid_client_metadata", desc: fmt.Sprintf(format, a...)}
}

// ParseClientMetadata reads a registration request's JSON object with
// strict types: a member of the wrong type is invalid_client_metadata.
// Members it does not know are ignored (RFC 7591 section 2) and returned,
// sorted, so that the caller can say which.
func ParseClientMetadata(body []byte) (*ClientMetadata, []string, error) {
	var members map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&members); err != nil || members == nil {
		return nil, nil, invalidMetadata("the body must be one JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, invalidMetadata("the body must be one JSON object")
	}
	var m ClientMetadata
	targets := map[string]any{
		"redirect_uris": &m.RedirectURIs, "client_name": &m.ClientName, "grant_types": &m.GrantTypes,
		"response_types": &m.ResponseTypes, "token_endpoint_auth_method": &m.TokenEndpointAuthMethod,
		"jwks_uri": &m.JWKSURI, "scope": &m.Scope, "post_logout_redirect_uris": &m.PostLogoutRedirectURIs,
		"id_token_signed_response_alg": &m.IDTokenAlg, "require_pushed_authorization_requests": &m.RequirePAR,
		memberPurposes: &m.Purposes, memberClaims: &m.Claims, memberProfile: &m.Profile, "client_id": &m.ClientID,
		"backchannel_token_delivery_mode":                &m.BackchannelTokenDeliveryMode,
		"backchannel_client_notification_endpoint":       &m.BackchannelClientNotificationEndpoint,
		"backchannel_authentication_request_signing_alg": &m.BackchannelAuthRequestSigningAlg,
		"backchannel_user_code_parameter":                &m.BackchannelUserCodeParameter,
	}
	var ignored []string
	for name, raw := range members {
		if name == "jwks" {
			if t := bytes.TrimSpace(raw); !bytes.Equal(t, []byte("null")) {
				if len(t) == 0 || t[0] != '{' {
					return nil, nil, invalidMetadata("jwks must be a JSON Web Key Set object")
				}
				m.JWKS = t
			}
			continue
		}
		dst, ok := targets[name]
		if !ok {
			// Named back to the caller and in the log: bounded.
			if len(ignored) < maxIgnoredNames {
				ignored = append(ignored, truncate(name, 64))
			}
			continue
		}
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields() // inside a purpose object
		if err := d.Decode(dst); err != nil {
			return nil, nil, invalidMetadata("%s has the wrong type", name)
		}
	}
	slices.Sort(ignored)
	switch {
	case len(m.RedirectURIs) > maxMetadataURIs || len(m.PostLogoutRedirectURIs) > maxMetadataURIs:
		return nil, nil, &metadataError{code: "invalid_redirect_uri", desc: fmt.Sprintf("at most %d redirect URIs of each kind", maxMetadataURIs)}
	case len(m.Scope) > maxMetadataScope:
		return nil, nil, invalidMetadata("scope is longer than %d bytes", maxMetadataScope)
	case len(m.GrantTypes) > len(idp.GrantTypes) || len(m.ResponseTypes) > 4:
		return nil, nil, invalidMetadata("too many grant or response types")
	}
	return &m, ignored, nil
}

// client turns the metadata into a client with the same defaults and rules
// as `onedoor client create` (idp.Client.ApplyDefaults and Validate,
// oidc.ValidateJWKS), for the agency; prev is the client a PUT replaces
// (nil on registration). It returns the new client secret when one is
// issued.
func (m *ClientMetadata) client(secretKey []byte, agency string, prev *idp.Client, now time.Time) (*idp.Client, string, error) {
	c := &idp.Client{
		Name: m.ClientName, RedirectURIs: m.RedirectURIs, PostLogoutRedirectURIs: m.PostLogoutRedirectURIs,
		GrantTypes: m.GrantTypes, Scopes: strings.Fields(m.Scope), Claims: m.Claims, AuthMethod: m.TokenEndpointAuthMethod,
		JWKSURI: m.JWKSURI, PARRequired: m.RequirePAR, IDTokenAlg: m.IDTokenAlg, Agency: agency, Purposes: m.Purposes,
		Profile: m.Profile, CreatedAt: now,
		BackchannelTokenDeliveryMode: m.BackchannelTokenDeliveryMode, BackchannelClientNotificationEndpoint: m.BackchannelClientNotificationEndpoint,
	}
	if err := m.checkCIBA(); err != nil {
		return nil, "", err
	}
	if len(c.Claims) == 0 {
		c.Claims = nil
	}
	if len(c.Purposes) == 0 {
		c.Purposes = nil
	}
	if prev != nil {
		c.ID, c.CreatedAt, c.Registration = prev.ID, prev.CreatedAt, prev.Registration
	}
	c.ApplyDefaults()
	// Redirect URIs first, for the error code RFC 7591 gives them.
	var bad []string
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
		if err := idp.ValidRedirectURI(u); err != nil {
			bad = append(bad, fmt.Sprintf("%q: %v", u, err))
		}
	}
	if len(bad) > 0 {
		return nil, "", &metadataError{code: "invalid_redirect_uri", desc: strings.Join(bad, "; ")}
	}
	code := slices.Contains(c.GrantTypes, "authorization_code")
	for _, rt := range m.ResponseTypes {
		if rt != "code" {
			return nil, "", invalidMetadata("response type %q is not supported (code)", rt)
		}
	}
	if len(m.ResponseTypes) > 0 && !code {
		return nil, "", invalidMetadata("response type code needs the authorization_code grant")
	}
	if code && m.ResponseTypes != nil && len(m.ResponseTypes) == 0 {
		return nil, "", invalidMetadata("the authorization_code grant needs the code response type")
	}
	var jwksErr error
	if len(m.JWKS) > 0 {
		if jwksErr = oidc.ValidateJWKS(string(m.JWKS)); jwksErr == nil {
			c.JWKS = string(m.JWKS)
		}
	}
	var secret string
	if c.UsesSecret() {
		if prev != nil && prev.UsesSecret() {
			c.SecretHash = prev.SecretHash // the secret stays
		} else {
			secret = idp.NewClientSecret()
			c.SecretHash = idp.HashClientSecret(secretKey, secret)
		}
	}
	if err := errors.Join(jwksErr, c.Validate()); err != nil {
		return nil, "", invalidMetadata("%s", strings.TrimSuffix(err.Error(), ": "+idp.ErrInvalid.Error()))
	}
	return c, secret, nil
}

// checkCIBA refuses the CIBA metadata OneDoor does not support, each with
// its own description (the rest is idp.Client.Validate's: a mode needs the
// grant and the grant a mode, ping needs an endpoint, the endpoint's URL
// rules).
func (m *ClientMetadata) checkCIBA() error {
	ciba := slices.Contains(m.GrantTypes, idp.GrantTypeCIBA)
	switch m.BackchannelTokenDeliveryMode {
	case "", idp.CIBAModePoll, idp.CIBAModePing:
	case "push":
		return invalidMetadata("backchannel_token_delivery_mode push is not supported: use poll or ping")
	default:
		return invalidMetadata("backchannel_token_delivery_mode %q is unknown: use poll or ping", truncate(m.BackchannelTokenDeliveryMode, 32))
	}
	switch {
	case m.BackchannelAuthRequestSigningAlg != "":
		return invalidMetadata("signed backchannel authentication requests are not supported: omit backchannel_authentication_request_signing_alg")
	case m.BackchannelUserCodeParameter:
		return invalidMetadata("backchannel_user_code_parameter is not supported: omit it or send false")
	case ciba && m.BackchannelTokenDeliveryMode == "":
		return invalidMetadata("the %s grant needs backchannel_token_delivery_mode: poll or ping", idp.GrantTypeCIBA)
	case !ciba && (m.BackchannelTokenDeliveryMode != "" || m.BackchannelClientNotificationEndpoint != ""):
		return invalidMetadata("backchannel_token_delivery_mode and backchannel_client_notification_endpoint need the %s grant", idp.GrantTypeCIBA)
	case m.BackchannelTokenDeliveryMode == idp.CIBAModePing && m.BackchannelClientNotificationEndpoint == "":
		return invalidMetadata("the ping delivery mode needs backchannel_client_notification_endpoint")
	case m.BackchannelTokenDeliveryMode == idp.CIBAModePoll && m.BackchannelClientNotificationEndpoint != "":
		return invalidMetadata("backchannel_client_notification_endpoint is only for the ping delivery mode")
	}
	if e := m.BackchannelClientNotificationEndpoint; e != "" {
		if err := idp.ValidBackchannelLogoutURI(e); err != nil {
			return invalidMetadata("backchannel_client_notification_endpoint %s", err.Error())
		}
	}
	return nil
}

// registrationResponse is the client information response (RFC 7591
// section 3.2.1, RFC 7592 section 3).
type registrationResponse struct {
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	RegistrationToken     string `json:"registration_access_token,omitempty"`
	RegistrationURI       string `json:"registration_client_uri"`
	ClientMetadata
	// Status is pending until an operator approves the client, then
	// active (or rejected).
	Status string `json:"onedoor_status"`
	Agency string `json:"onedoor_agency"`
	// Review lists the changes of this PUT that returned the client to
	// review.
	Review []string `json:"onedoor_review,omitempty"`
	// Ignored names the request's members that were ignored.
	Ignored []string `json:"onedoor_ignored_members,omitempty"`
}

func (s *Server) registrationResponse(c *idp.Client) registrationResponse {
	md := ClientMetadata{
		RedirectURIs: nonNilList(c.RedirectURIs), ClientName: c.Name, GrantTypes: c.GrantTypes,
		ResponseTypes: []string{}, TokenEndpointAuthMethod: c.AuthMethod, JWKSURI: c.JWKSURI,
		Scope: strings.Join(c.Scopes, " "), PostLogoutRedirectURIs: nonNilList(c.PostLogoutRedirectURIs),
		IDTokenAlg: c.IDTokenAlg, RequirePAR: c.PARRequired, Purposes: c.Purposes, Claims: nonNilList(c.Claims),
		Profile: c.Profile, BackchannelTokenDeliveryMode: c.BackchannelTokenDeliveryMode,
		BackchannelClientNotificationEndpoint: c.BackchannelClientNotificationEndpoint,
	}
	if md.Purposes == nil {
		md.Purposes = []consent.Purpose{}
	}
	if c.JWKS != "" {
		md.JWKS = json.RawMessage(c.JWKS)
	}
	if slices.Contains(c.GrantTypes, "authorization_code") {
		md.ResponseTypes = []string{"code"}
	}
	status := c.Registration.Status
	if status == idp.ClientActive {
		status = "active"
	}
	return registrationResponse{
		ClientID: c.ID, ClientIDIssuedAt: c.CreatedAt.Unix(), RegistrationURI: s.cfg.Issuer + PathRegister + "/" + c.ID,
		ClientMetadata: md, Status: status, Agency: c.Agency,
	}
}

func nonNilList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func (s *Server) registrationRoutes(m *prefixMux) {
	if s.cfg.Registration == nil {
		return
	}
	m.HandleFunc("POST "+PathRegister, s.register)
	m.HandleFunc("GET "+PathRegister+"/{id}", s.manageClient)
	m.HandleFunc("PUT "+PathRegister+"/{id}", s.manageClient)
	m.HandleFunc("DELETE "+PathRegister+"/{id}", s.manageClient)
}

// headerBearer returns the Authorization header's Bearer token ("" when
// none): registration tokens are never read from a body.
func headerBearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// invalidToken answers 401 for a missing, unknown, expired, revoked or
// used-up token, alike (RFC 6750 section 3).
func invalidToken(w http.ResponseWriter, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeJSONError(w, http.StatusUnauthorized, "invalid_token", desc)
}

// readMetadata reads and parses a JSON body of at most maxRegisterBody.
func readMetadata(w http.ResponseWriter, r *http.Request) (*ClientMetadata, []string, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "The body must be application/json.")
		return nil, nil, false
	}
	if r.ContentLength > maxRegisterBody {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "invalid_client_metadata", "Client metadata is limited to 64 KB.")
		return nil, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRegisterBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "invalid_client_metadata", "Client metadata is limited to 64 KB.")
			return nil, nil, false
		}
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "The body could not be read.")
		return nil, nil, false
	}
	md, ignored, err := ParseClientMetadata(body)
	if err != nil {
		writeMetadataError(w, err)
		return nil, nil, false
	}
	return md, ignored, true
}

func writeMetadataError(w http.ResponseWriter, err error) {
	var me *metadataError
	if errors.As(err, &me) {
		writeJSONError(w, http.StatusBadRequest, me.code, me.desc)
		return
	}
	writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "The client metadata is invalid.")
}

// register is RFC 7591's registration endpoint.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reg := s.cfg.Registration
	if !s.allow(ctx, w, s.limitRegisterAddr(), s.clientKey(r)) {
		return
	}
	tok := headerBearer(r)
	if tok == "" {
		invalidToken(w, "An initial access token is required (Authorization: Bearer).")
		return
	}
	// Counted per token presented, known or not, before the store is read.
	if !s.allow(ctx, w, s.limitRegisterToken(), s.subjectKey("register-token", tok)) {
		return
	}
	it, err := reg.Store.GetInitialToken(ctx, idp.HashRegistrationToken(reg.SecretKey, idp.TokenInitial, tok))
	now := s.cfg.Now()
	if errors.Is(err, idp.ErrNotFound) || (err == nil && !it.Usable(now)) {
		invalidToken(w, "The initial access token is unknown, expired, revoked or used up.")
		return
	}
	if err != nil {
		s.unavailable(w, "durable store", err)
		return
	}
	md, ignored, ok := readMetadata(w, r)
	if !ok {
		return
	}
	c, secret, err := md.client(reg.SecretKey, it.Agency, nil, now.UTC())
	if err != nil {
		writeMetadataError(w, err)
		return
	}
	rat := idp.NewRegistrationToken()
	c.Registration = idp.ClientRegistration{Status: idp.ClientPending, InitialTokenID: it.ID,
		TokenHash: idp.HashRegistrationToken(reg.SecretKey, idp.TokenRegistration, rat)}
	if err := reg.Store.RegisterClient(ctx, it.ID, now, c); err != nil {
		if errors.Is(err, idp.ErrNotFound) { // used up by a concurrent registration
			invalidToken(w, "The initial access token is unknown, expired, revoked or used up.")
			return
		}
		s.unavailable(w, "durable store", err)
		return
	}
	s.log.Info("client registered", "client_id", c.ID, "agency", c.Agency, "initial_token", it.ID, "ignored_members", ignored)
	resp := s.registrationResponse(c)
	resp.RegistrationToken, resp.Ignored = rat, ignored
	if secret != "" {
		never := int64(0)
		resp.ClientSecret, resp.ClientSecretExpiresAt = secret, &never
	}
	w.Header().Set("Location", resp.RegistrationURI)
	writeJSON(w, http.StatusCreated, resp)
}

// manageClient is RFC 7592's client configuration endpoint.
func (s *Server) manageClient(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	reg := s.cfg.Registration
	if !s.allow(ctx, w, s.limitRegisterAddr(), s.clientKey(r)) {
		return
	}
	id, tok := r.PathValue("id"), headerBearer(r)
	if tok == "" {
		invalidToken(w, "The registration access token is required (Authorization: Bearer).")
		return
	}
	hash := idp.HashRegistrationToken(reg.SecretKey, idp.TokenRegistration, tok)
	// Whether the client is absent or the token is not its own, the
	// answer is the same 401 (RFC 7592 section 2): no client ids are
	// learnt with a token.
	owns := func(c *idp.Client) bool {
		return c.Registered() && hmac.Equal(c.Registration.TokenHash, hash)
	}
	c, err := reg.Store.GetClient(ctx, id)
	if err != nil && !errors.Is(err, idp.ErrNotFound) {
		s.unavailable(w, "durable store", err)
		return
	}
	if err != nil || !owns(c) {
		invalidToken(w, "The registration access token is not valid for this client.")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, s.registrationResponse(c))
	case http.MethodDelete:
		// As `onedoor client delete`: its refresh tokens go with it.
		if err := reg.Store.DeleteClient(ctx, id); err != nil && !errors.Is(err, idp.ErrNotFound) {
			s.unavailable(w, "durable store", err)
			return
		}
		s.log.Info("registered client deleted", "client_id", id, "agency", c.Agency)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodPut:
		s.updateRegistration(ctx, w, r, c, hash)
	}
}

// updateRegistration replaces a registered client's metadata (RFC 7592
// section 2.2) and rotates its registration access token.
func (s *Server) updateRegistration(ctx context.Context, w http.ResponseWriter, r *http.Request, cur *idp.Client, hash []byte) {
	reg := s.cfg.Registration
	md, ignored, ok := readMetadata(w, r)
	if !ok {
		return
	}
	if md.ClientID != cur.ID {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "client_id must name the client being updated.")
		return
	}
	if cur.Registration.Status == idp.ClientRejected {
		writeJSONError(w, http.StatusBadRequest, "invalid_client_metadata", "An operator rejected this client: delete it and register anew with a new initial access token.")
		return
	}
	rat := idp.NewRegistrationToken()
	var (
		out    *idp.Client
		secret string
		review []string
		stale  bool
	)
	err := reg.Store.UpdateClient(ctx, cur.ID, func(c *idp.Client) error {
		// Checked again in the transaction: of two PUTs with one token
		// only the first rotates it.
		if !c.Registered() || !hmac.Equal(c.Registration.TokenHash, hash) {
			stale = true
			return idp.ErrNotFound
		}
		next, sec, err := md.client(reg.SecretKey, c.Agency, c, s.cfg.Now().UTC())
		if err != nil {
			return err
		}
		review = idp.ReviewChanges(c, next)
		if len(review) > 0 && c.Registration.Status == idp.ClientActive {
			// A widening an operator has not seen: back to review as a
			// whole, so nothing unreviewed is ever usable.
			next.Registration.Status = idp.ClientPending
		}
		next.Registration.TokenHash = idp.HashRegistrationToken(reg.SecretKey, idp.TokenRegistration, rat)
		*c = *next
		out, secret = next, sec
		return nil
	})
	var me *metadataError
	switch {
	case errors.As(err, &me):
		writeMetadataError(w, err)
		return
	case stale || errors.Is(err, idp.ErrNotFound):
		invalidToken(w, "The registration access token is not valid for this client.")
		return
	case err != nil:
		s.unavailable(w, "durable store", err)
		return
	}
	if cur.Active() && !out.Active() {
		s.log.Info("registered client returned to review", "client_id", out.ID, "agency", out.Agency, "changes", len(review))
	}
	resp := s.registrationResponse(out)
	resp.RegistrationToken, resp.Ignored = rat, ignored
	if cur.Active() && !out.Active() {
		resp.Review = review
	}
	if secret != "" {
		never := int64(0)
		resp.ClientSecret, resp.ClientSecretExpiresAt = secret, &never
	}
	writeJSON(w, http.StatusOK, resp)
}
