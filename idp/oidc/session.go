package oidc

import (
	"encoding/json"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/onedoor/onedoor/idp/accesstoken"
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
	// Act is the citizen acting when the subject is a party they represent
	// (RFC 8693 act); Representation its basis, RevocationKeys the deny-list
	// keys it rests on and RepresentedUntil when it ends by itself (a
	// ward's majority), which caps every access token. The device (DeviceID)
	// stays the acting citizen's.
	Act              *accesstoken.Actor          `json:"act,omitempty"`
	Representation   *accesstoken.Representation `json:"representation,omitempty"`
	RevocationKeys   []string                    `json:"rk,omitempty"`
	RepresentedUntil time.Time                   `json:"represented_until,omitzero"`
}

// Actor is the citizen who acts in the grant: Act's subject when the
// subject is represented, the subject otherwise.
func (s *Session) Actor() string {
	if s.Act != nil {
		return s.Act.Subject
	}
	return s.Subject
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
	c.RevocationKeys = append([]string(nil), s.RevocationKeys...)
	if s.Act != nil {
		a := *s.Act
		c.Act = &a
	}
	if s.Representation != nil {
		r := *s.Representation
		r.Services = append([]string(nil), s.Representation.Services...)
		r.Categories = append([]string(nil), s.Representation.Categories...)
		c.Representation = &r
	}
	return &c
}
