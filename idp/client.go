package idp

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Grant types a client may register.
var grantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}

var scopeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9:._/-]{0,63}$`)

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
		if !slices.Contains(grantTypes, g) {
			add("grant type %q is not supported (authorization_code, refresh_token, client_credentials)", g)
		}
	}
	code := slices.Contains(c.GrantTypes, "authorization_code")
	if slices.Contains(c.GrantTypes, "refresh_token") && !code {
		add("refresh_token requires authorization_code")
	}
	if code && len(c.RedirectURIs) == 0 {
		add("authorization_code requires at least one redirect URI")
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
		if !scopeRE.MatchString(s) {
			add("scope %q is not a valid scope token", s)
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
			if u, err := url.Parse(c.JWKSURI); err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
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
	if c.IDTokenAlg != "ES256" && c.IDTokenAlg != "RS256" {
		add("ID token algorithm must be ES256 or RS256")
	}
	if len(probs) > 0 {
		return fmt.Errorf("%s: %w", strings.Join(probs, "; "), ErrInvalid)
	}
	return nil
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
		if !loopback(u.Hostname()) {
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

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
