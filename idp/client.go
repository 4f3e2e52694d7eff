package idp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/onedoor/onedoor/consent"
)

// GrantTypeJWTBearer is the RFC 7523 JWT-bearer grant. Only the eID app's
// own client (EIDAppClientID) may register it: its assertions are signed by
// an enrolled device key and answered with the device owner's tokens, which
// no agency client may obtain.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer" //nolint:gosec // a grant type name, not a credential

// GrantTypes are the grant types a client may register and the token
// endpoint serves.
var GrantTypes = []string{"authorization_code", "refresh_token", "client_credentials", GrantTypeJWTBearer, GrantTypeCIBA}

// GrantTypeCIBA is OpenID Connect Client-Initiated Backchannel
// Authentication (CIBA Core 1.0): an agency's counter or call centre asks
// the citizen's eID app to approve a login, and redeems the approval at the
// token endpoint.
const GrantTypeCIBA = "urn:openid:params:grant-type:ciba"

// CIBA token delivery modes OneDoor serves (push is not: tokens never go to
// a client endpoint).
const (
	CIBAModePoll = "poll"
	CIBAModePing = "ping"
)

var scopeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9:._/-]{0,63}$`)

// BuiltinScopes are the scopes the IdP itself gives a meaning to: the OIDC
// ones discovery lists and the agency scope.
var BuiltinScopes = []string{ScopeOpenID, ScopeProfile, ScopeAddress, ScopePhone, ScopeEID, ScopeOffline, ScopeAgency, ScopeRepresentation}

// ScopeRule says which scopes a client may register, for flag help and errors.
var ScopeRule = "accepted are " + strings.Join(BuiltinScopes, ", ") +
	", and a resource server's own API scope named with a dot, colon or slash (e.g. registry.read); email is not offered (the registry holds no e-mail address)"

// KnownScope reports whether a client may register s: one of BuiltinScopes,
// or an API scope a resource server defines and checks itself (OneDoor only
// carries it in the token's scope). API scopes must be namespaced, so that
// a mistyped or assumed OIDC scope ("profil", "email") is refused rather
// than registered as a meaningless API scope.
func KnownScope(s string) bool {
	return slices.Contains(BuiltinScopes, s) || (scopeRE.MatchString(s) && strings.ContainsAny(s, ".:/"))
}

// agencyCodeRE is the form of an agency's code (the mobile API's contract).
var agencyCodeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidAgencyCode reports whether code has the form of an agency's code.
func ValidAgencyCode(code string) bool { return agencyCodeRE.MatchString(code) }

// Validate reports every problem with a client registration at once.
func (c *Client) Validate() error {
	var probs []string
	add := func(format string, a ...any) { probs = append(probs, fmt.Sprintf(format, a...)) }
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > 100 {
		add("name is required (at most 100 characters)")
	}
	if c.ID == "" || len(c.ID) > 64 || !scopeRE.MatchString(strings.ToLower(c.ID)) {
		add("client id must be 1-64 characters of letters, digits and :._/-")
	}
	if len(c.GrantTypes) == 0 {
		add("at least one grant type is required")
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(GrantTypes, g) {
			add("grant type %q is not supported (%s)", g, strings.Join(GrantTypes, ", "))
		}
	}
	if slices.Contains(c.GrantTypes, GrantTypeJWTBearer) {
		if c.ID != EIDAppClientID {
			add("the JWT-bearer grant is reserved to the eID app's client %s", EIDAppClientID)
		}
		if len(c.GrantTypes) != 1 || c.AuthMethod != AuthNone {
			add("the eID app's client uses the JWT-bearer grant alone, as a public client")
		}
	}
	code := slices.Contains(c.GrantTypes, "authorization_code")
	if slices.Contains(c.GrantTypes, "refresh_token") && !code && !slices.Contains(c.GrantTypes, GrantTypeCIBA) {
		// A refresh token comes from a code or a CIBA approval.
		add("refresh_token requires authorization_code or %s", GrantTypeCIBA)
	}
	if code && len(c.RedirectURIs) == 0 {
		add("authorization_code requires at least one redirect URI")
	}
	if !code && len(c.RedirectURIs) > 0 {
		// A client without the code grant never sends a browser back: a
		// redirect URI on it is a mistake in the registration.
		add("redirect URIs are only for clients with the authorization_code grant (this one has %s)", strings.Join(c.GrantTypes, ", "))
	}
	if !code && len(c.PostLogoutRedirectURIs) > 0 {
		// Nobody logs in through it, so nobody logs out through it either.
		add("post-logout redirect URIs are only for clients with the authorization_code grant (this one has %s)", strings.Join(c.GrantTypes, ", "))
	}
	for _, u := range c.RedirectURIs {
		if err := ValidRedirectURI(u); err != nil {
			add("redirect URI %q: %v", u, err)
		}
	}
	for _, u := range c.PostLogoutRedirectURIs {
		if err := ValidRedirectURI(u); err != nil {
			add("post-logout redirect URI %q: %v", u, err)
		}
	}
	for _, s := range c.Scopes {
		switch {
		case !scopeRE.MatchString(s):
			add("scope %q is not a valid scope token", s)
		case !KnownScope(s):
			add("scope %q is unknown: %s", s, ScopeRule)
		}
	}
	if c.Agency != "" && !ValidAgencyCode(c.Agency) {
		add("agency must be an agency code: 1-64 letters, digits and ._- starting with a letter or digit")
	}
	if slices.Contains(c.Scopes, ScopeAgency) {
		// The scope stands for the agency's own access; a citizen's token
		// (a code or refresh grant) must never carry it.
		if c.Agency == "" {
			add("the %s scope needs a client bound to an agency (--agency)", ScopeAgency)
		}
		if len(c.GrantTypes) != 1 || c.GrantTypes[0] != "client_credentials" {
			add("the %s scope is granted only by client_credentials: register it on a client with that grant type alone", ScopeAgency)
		}
	}
	for i, p := range c.Purposes {
		if err := ValidPurpose(p); err != nil {
			add("purpose %q: %v", p.Code, err)
		}
		if slices.ContainsFunc(c.Purposes[:i], func(q consent.Purpose) bool { return q.Code == p.Code }) {
			add("purpose %q is registered twice", p.Code)
		}
	}
	if len(c.Purposes) > maxPurposes {
		add("at most %d purposes", maxPurposes)
	}
	for i, name := range c.Claims {
		if !KnownClaim(name) {
			add("claim %q is not a registry claim (%s)", name, strings.Join(KnownClaims, ", "))
		} else if slices.Contains(c.Claims[:i], name) {
			add("claim %q is listed twice", name)
		}
	}
	switch c.AuthMethod {
	case AuthSecretBasic, AuthSecretPost:
		if len(c.SecretHash) == 0 {
			add("a secret client needs a secret")
		}
	case AuthPrivateKeyJWT:
		if (c.JWKS == "") == (c.JWKSURI == "") {
			add("private_key_jwt needs exactly one of a JWKS document or a JWKS URI")
		}
		if c.JWKSURI != "" {
			if ValidJWKSURI(c.JWKSURI) != nil {
				add("JWKS URI must be an https URL without user name or password")
			}
		}
	case AuthNone:
		if slices.Contains(c.GrantTypes, "client_credentials") {
			add("a public client (auth method none) cannot use client_credentials")
		}
	default:
		add("auth method %q is not supported (client_secret_basic, client_secret_post, private_key_jwt, none)", c.AuthMethod)
	}
	if c.BackchannelLogoutURI != "" {
		if !code {
			add("a back-channel logout URI is only for clients with the authorization_code grant")
		}
		if err := ValidBackchannelLogoutURI(c.BackchannelLogoutURI); err != nil {
			add("back-channel logout URI %q: %v", c.BackchannelLogoutURI, err)
		}
	} else if c.BackchannelLogoutSessionRequired {
		add("backchannel_logout_session_required needs a back-channel logout URI")
	}
	c.validateCIBA(add)
	if c.IDTokenAlg != "ES256" && c.IDTokenAlg != "RS256" {
		add("ID token algorithm must be ES256 or RS256")
	}
	switch c.Profile {
	case "":
	case ProfileFAPI2:
		for _, p := range fapi2Problems(c) {
			add("profile fapi2: %s", p)
		}
	default:
		add("profile %q is not supported (%s, or none)", c.Profile, ProfileFAPI2)
	}
	if len(probs) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(probs, "; "), ErrInvalid)
	}
	return nil
}

// maxPurposes bounds a client's catalog of purposes.
const maxPurposes = 32

var purposeCodeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidPurpose checks one entry of a client's catalog: a code of lower-case
// letters, digits and ._- (it travels in requests and the access log) and a
// text of 1-300 printable characters (shown to the citizen as the reason).
func ValidPurpose(p consent.Purpose) error {
	if !purposeCodeRE.MatchString(p.Code) {
		return fmt.Errorf("code must be 1-64 lower-case letters, digits and ._- starting with a letter or digit: %w", ErrInvalid)
	}
	if strings.TrimSpace(p.Text) == "" || !cleanText(p.Text) {
		return fmt.Errorf("text must be 1-300 bytes of printable UTF-8: %w", ErrInvalid)
	}
	return nil
}

// ParsePurpose reads CODE:TEXT, as given to `onedoor client create
// --purpose`.
func ParsePurpose(s string) (consent.Purpose, error) {
	code, text, ok := strings.Cut(s, ":")
	p := consent.Purpose{Code: strings.TrimSpace(code), Text: strings.TrimSpace(text)}
	if !ok {
		return p, fmt.Errorf("purpose %q: want CODE:TEXT: %w", s, ErrInvalid)
	}
	if err := ValidPurpose(p); err != nil {
		return p, fmt.Errorf("purpose %q: %w", p.Code, err)
	}
	return p, nil
}

// DefaultPurpose is the purpose of a login that names none: the client's
// first registered purpose, else consent.LoginPurpose.
func (c *Client) DefaultPurpose() consent.Purpose {
	if len(c.Purposes) > 0 {
		return c.Purposes[0]
	}
	return consent.LoginPurpose
}

// Purpose returns the registered purpose with the code. A client that
// registered none has consent.LoginPurpose alone.
func (c *Client) Purpose(code string) (consent.Purpose, bool) {
	if len(c.Purposes) == 0 {
		return consent.LoginPurpose, code == consent.LoginPurpose.Code
	}
	for _, p := range c.Purposes {
		if p.Code == code {
			return p, true
		}
	}
	return consent.Purpose{}, false
}

// ValidRedirectURI accepts https URLs, http on loopback (native apps, RFC
// 8252 7.3) and private-use schemes in reverse-domain form (RFC 8252 7.1).
// Redirect URIs are matched exactly, so no wildcards or fragments.
func ValidRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("must be an absolute URI")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("must not contain a fragment")
	}
	if strings.Contains(raw, "*") {
		return fmt.Errorf("must not contain wildcards")
	}
	if u.User != nil {
		return fmt.Errorf("must not contain a user name or password")
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("needs a host")
		}
	case "http":
		if !Loopback(u.Hostname()) {
			return fmt.Errorf("http is allowed only on localhost or a loopback address")
		}
	default:
		if !strings.Contains(u.Scheme, ".") {
			return fmt.Errorf("a private-use scheme must be in reverse-domain form (e.g. vn.gov.agency.app)")
		}
	}
	return nil
}

// RedirectURIAllowed reports whether raw, the redirect_uri of an
// authorization request, may receive this client's responses. It must equal
// a registered redirect URI exactly (RFC 9700 section 2.1). The one exception
// is RFC 8252 section 7.3, and only for a public native client (auth method
// none): a registered http URI on a loopback IP literal matches the same URI
// on any port, because the app listens on whatever port it gets. A
// confidential client's loopback URI on another port is unregistered. A URI
// with a user name or password is never allowed, even if registered before
// ValidRedirectURI refused them.
func (c *Client) RedirectURIAllowed(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return false
	}
	if slices.Contains(c.RedirectURIs, raw) {
		return true
	}
	if c.AuthMethod != AuthNone || u.Scheme != "http" || u.Opaque != "" {
		return false
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return false
	}
	for _, reg := range c.RedirectURIs {
		r, err := url.Parse(reg)
		if err != nil || r.User != nil || r.Scheme != "http" || r.Opaque != "" {
			continue
		}
		if r.Hostname() == u.Hostname() && r.EscapedPath() == u.EscapedPath() && r.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

// Loopback reports whether host is localhost or a loopback address: the one
// place plain http is allowed (native apps, tests, the demo).
func Loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ApplyDefaults fills what an operator left out of a registration: a random
// client id, client_secret_basic, ES256 ID tokens, the scopes "openid
// profile", and the authorization code grant (with refresh tokens when
// offline_access is registered), or client_credentials when the agency scope
// is registered.
func (c *Client) ApplyDefaults() {
	if c.ID == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		c.ID = hex.EncodeToString(b)
	}
	if c.Profile == ProfileFAPI2 {
		// The profile's one authentication method; PAR is not optional.
		if c.AuthMethod == "" {
			c.AuthMethod = AuthPrivateKeyJWT
		}
		c.PARRequired = true
	}
	if c.AuthMethod == "" {
		c.AuthMethod = AuthSecretBasic
	}
	if c.IDTokenAlg == "" {
		c.IDTokenAlg = "ES256"
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{ScopeOpenID, ScopeProfile}
	}
	if len(c.GrantTypes) == 0 && slices.Contains(c.Scopes, ScopeAgency) {
		c.GrantTypes = []string{"client_credentials"}
	}
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{"authorization_code"}
		if slices.Contains(c.Scopes, ScopeOffline) {
			c.GrantTypes = append(c.GrantTypes, "refresh_token")
		}
	}
}

// UsesSecret reports whether the client authenticates with a shared secret.
func (c *Client) UsesSecret() bool {
	return c.AuthMethod == AuthSecretBasic || c.AuthMethod == AuthSecretPost
}

// NewClientSecret returns a fresh client secret: 256 random bits,
// base64url. It is shown once; only HashClientSecret of it is stored.
func NewClientSecret() string { return randomString(32) }

// HashClientSecret is the stored form of a client secret: HMAC-SHA256 under
// the deployment's client-secret key. Secrets are 256-bit random values made
// by NewClientSecret, so a keyed hash is as strong as a password hash against
// guessing and costs microseconds at the token endpoint.
func HashClientSecret(key []byte, secret string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// ParseClaimList reads a comma- or space-separated list of claim names, as
// given to `onedoor client create --claims`.
func ParseClaimList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

// ValidJWKSURI accepts an absolute https URL without credentials, or http on
// loopback: where a client's keys may be fetched from.
func ValidJWKSURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("jwks_uri is not an absolute URL: %w", ErrInvalid)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && Loopback(u.Hostname())) {
		return fmt.Errorf("jwks_uri must use https: %w", ErrInvalid)
	}
	return nil
}

// validateCIBA checks the CIBA registration: a confidential client (the
// request is made from the agency's back end, authenticated), a delivery
// mode, and a notification endpoint exactly in ping mode.
func (c *Client) validateCIBA(add func(string, ...any)) {
	if !slices.Contains(c.GrantTypes, GrantTypeCIBA) {
		if c.BackchannelTokenDeliveryMode != "" || c.BackchannelClientNotificationEndpoint != "" {
			add("a backchannel token delivery mode or notification endpoint needs the %s grant", GrantTypeCIBA)
		}
		return
	}
	if c.AuthMethod == AuthNone {
		add("the CIBA grant is for confidential clients (a secret or private_key_jwt)")
	}
	switch c.BackchannelTokenDeliveryMode {
	case CIBAModePoll:
		if c.BackchannelClientNotificationEndpoint != "" {
			add("a client notification endpoint is only for the ping delivery mode")
		}
	case CIBAModePing:
		if c.BackchannelClientNotificationEndpoint == "" {
			add("the ping delivery mode needs a client notification endpoint")
		} else if err := ValidBackchannelLogoutURI(c.BackchannelClientNotificationEndpoint); err != nil {
			add("client notification endpoint %q: %v", c.BackchannelClientNotificationEndpoint, err)
		}
	default:
		add("the CIBA grant needs a backchannel token delivery mode: poll or ping")
	}
}
