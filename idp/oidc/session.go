package oidc

import (
	"encoding/json"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is the fosite session of every OneDoor grant. It embeds the OpenID
// session (ID token claims) and carries what the login established.
type Session struct {
	*openid.DefaultSession
	// Released lists the claim names the citizen agreed to release.
	Released []string `json:"released,omitempty"`
	// DeviceID is the eID app installation that approved the login.
	DeviceID string `json:"device_id,omitempty"`
	// ConsentID is the citizen's consent record the release rests on: the
	// code, the refresh family and every access token carry it, and its
	// withdrawal ends them.
	ConsentID string `json:"consent_id,omitempty"`
	// AuthorizationDetails are the RFC 9396 authorization details granted
	// (a JSON array), returned with every token response of the grant.
	AuthorizationDetails json.RawMessage `json:"authorization_details,omitempty"`
	// KeyThumbprint is the RFC 7638 SHA-256 thumbprint (base64url) of the key
	// the tokens are bound to (cnf.jkt): the eID app's device key for its
	// own tokens.
	KeyThumbprint string `json:"jkt,omitempty"`
	// ClientID is kept for client_credentials grants, whose subject is the client.
	ClientID string `json:"client_id,omitempty"`
}

// NewSession returns an empty session ready for fosite to fill or decode into.
func NewSession() *Session {
	return &Session{DefaultSession: &openid.DefaultSession{
		Claims:    &jwt.IDTokenClaims{Extra: map[string]any{}},
		Headers:   &jwt.Headers{Extra: map[string]any{}},
		ExpiresAt: map[fosite.TokenType]time.Time{},
	}}
}

// Clone implements fosite.Session.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.DefaultSession != nil {
		c.DefaultSession = s.DefaultSession.Clone().(*openid.DefaultSession)
	}
	c.Released = append([]string(nil), s.Released...)
	c.AuthorizationDetails = append(json.RawMessage(nil), s.AuthorizationDetails...)
	return &c
}
