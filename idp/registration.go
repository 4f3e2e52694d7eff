package idp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Agency self-registration (RFC 7591 Dynamic Client Registration, RFC 7592
// management): an operator issues an agency an initial access token; a
// client registered with it is bound to that agency and stays pending,
// unusable, until an operator approves it (possibly with fewer scopes and
// claims than it asked for).

// Client statuses. An operator's client, and a registered one once
// approved, is active (the empty status).
const (
	ClientActive   = ""
	ClientPending  = "pending"
	ClientRejected = "rejected"
)

// ClientRegistration is what self-registration adds to a client.
type ClientRegistration struct {
	// Status is ClientActive, ClientPending or ClientRejected. Only an
	// active client may authorize, get tokens, push requests or introspect.
	Status string
	// TokenHash is the keyed hash (HashRegistrationToken) of the client's
	// registration access token (RFC 7592); empty for an operator's client,
	// which cannot be managed over HTTP.
	TokenHash []byte
	// InitialTokenID is the initial access token it was registered with.
	InitialTokenID string
	// ApprovedBy and ApprovedAt record the operator's last approval (or
	// rejection).
	ApprovedBy string
	ApprovedAt *time.Time
}

// Active reports whether the client may be used at all: registered
// clients must be approved first.
func (c *Client) Active() bool { return c.Registration.Status == ClientActive }

// Registered reports whether the client was registered over HTTP and can
// be managed with its registration access token.
func (c *Client) Registered() bool { return len(c.Registration.TokenHash) > 0 }

// InitialToken is an operator's initial access token (RFC 7591 section 3):
// it lets one agency register up to MaxUses clients until ExpiresAt. Only
// its keyed hash is stored; the value is shown once.
type InitialToken struct {
	ID        string // public handle, for list and revoke
	Hash      []byte
	Agency    string
	MaxUses   int
	Uses      int
	ExpiresAt time.Time
	RevokedAt *time.Time
	CreatedBy string
	CreatedAt time.Time
}

// Usable reports whether the token may register another client at now.
func (t *InitialToken) Usable(now time.Time) bool {
	return t.RevokedAt == nil && now.Before(t.ExpiresAt) && t.Uses < t.MaxUses
}

// Kinds of registration bearer token, which HashRegistrationToken keeps
// apart: an initial access token is never a registration access token.
const (
	TokenInitial      = "initial-access"
	TokenRegistration = "registration-access"
)

// NewRegistrationToken returns a fresh bearer token (256 random bits,
// base64url), shown once.
func NewRegistrationToken() string { return randomString(32) }

// HashRegistrationToken is the stored form of a registration bearer token
// of the kind: HMAC-SHA256 under the client-secret key, like client secrets
// (the tokens are 256-bit random values, so a keyed hash suffices).
func HashRegistrationToken(key []byte, kind, token string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("onedoor registration\x00" + kind + "\x00" + token))
	return m.Sum(nil)
}

// ReviewChanges lists what next may do that prev could not and an operator
// has not reviewed: new redirect or post-logout URIs, scopes, claims, grant
// types or purposes (a purpose's text included, citizens read it), another
// name (citizens see it at login) or another auth method. A key rotation
// (jwks, jwks_uri) or ID token algorithm is not a widening.
func ReviewChanges(prev, next *Client) []string {
	var out []string
	added := func(what string, p, n []string) {
		for _, v := range n {
			if !slices.Contains(p, v) {
				out = append(out, fmt.Sprintf("%s %s", what, v))
			}
		}
	}
	added("redirect_uri", prev.RedirectURIs, next.RedirectURIs)
	added("post_logout_redirect_uri", prev.PostLogoutRedirectURIs, next.PostLogoutRedirectURIs)
	added("scope", prev.Scopes, next.Scopes)
	added("claim", prev.Claims, next.Claims)
	added("grant_type", prev.GrantTypes, next.GrantTypes)
	for _, p := range next.Purposes {
		if !slices.Contains(prev.Purposes, p) {
			out = append(out, "purpose "+p.Code)
		}
	}
	if prev.Name != next.Name {
		out = append(out, "client_name")
	}
	if prev.AuthMethod != next.AuthMethod {
		out = append(out, "token_endpoint_auth_method")
	}
	// The IdP posts to a notification endpoint: a new one is reviewed as a
	// new redirect URI is.
	if next.BackchannelClientNotificationEndpoint != "" && next.BackchannelClientNotificationEndpoint != prev.BackchannelClientNotificationEndpoint {
		out = append(out, "backchannel_client_notification_endpoint "+next.BackchannelClientNotificationEndpoint)
	}
	if prev.Profile != "" && next.Profile != prev.Profile {
		// Leaving a security profile loosens every rule it held.
		out = append(out, "onedoor_profile")
	}
	return out
}

// Narrow keeps only the given scopes and claims of those the client asked
// for: an operator's approval may remove, never add. Nil keeps all.
func (c *Client) Narrow(scopes, claims []string) error {
	var probs []string
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			probs = append(probs, fmt.Sprintf("scope %q was not requested", s))
		}
	}
	for _, s := range claims {
		if !slices.Contains(c.Claims, s) {
			probs = append(probs, fmt.Sprintf("claim %q was not requested", s))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("approval may only narrow what the client requested: %s: %w", strings.Join(probs, "; "), ErrInvalid)
	}
	if scopes != nil {
		c.Scopes = slices.Clone(scopes)
	}
	if claims != nil {
		c.Claims = slices.Clone(claims)
		if len(c.Claims) == 0 {
			c.Claims = nil
		}
	}
	return nil
}

// ReviewDigest fingerprints everything an operator reviews of a client (all
// its metadata, none of its secrets). `client show` prints it and `client
// approve --digest` must repeat it, so that an agency's PUT between the
// operator's look and the approval is never approved unseen.
func ReviewDigest(c *Client) string {
	v := []any{c.ID, c.Name, c.RedirectURIs, c.PostLogoutRedirectURIs, c.GrantTypes, c.Scopes, c.Claims,
		c.AuthMethod, c.JWKS, c.JWKSURI, c.PARRequired, c.IDTokenAlg, c.Agency, c.Purposes, c.Profile}
	if c.BackchannelTokenDeliveryMode != "" || c.BackchannelClientNotificationEndpoint != "" {
		// Only for CIBA clients: every other client's digest is as before.
		v = append(v, c.BackchannelTokenDeliveryMode, c.BackchannelClientNotificationEndpoint)
	}
	b, _ := json.Marshal(v) // plain values: cannot fail
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}
