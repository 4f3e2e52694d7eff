package oidc

import (
	"encoding/json"
	"fmt"
	"slices"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/onedoor/onedoor/idp"
)

// Client adapts an idp.Client to fosite's client interfaces.
type Client struct {
	fosite.DefaultOpenIDConnectClient
	Record *idp.Client
}

var (
	_ fosite.OpenIDConnectClient = (*Client)(nil)
	_ fosite.ResponseModeClient  = (*Client)(nil)
)

// newClient converts a stored client. A stored JWKS that does not parse makes
// the client unusable for private_key_jwt but not for anything else.
func newClient(c *idp.Client) *Client {
	fc := &Client{Record: c}
	fc.DefaultClient = &fosite.DefaultClient{
		ID:           c.ID,
		Secret:       c.SecretHash,
		RedirectURIs: c.RedirectURIs,
		GrantTypes:   c.GrantTypes,
		Scopes:       c.Scopes,
		Public:       c.AuthMethod == idp.AuthNone,
	}
	if slices.Contains(c.GrantTypes, "authorization_code") {
		fc.ResponseTypes = []string{"code"}
	}
	fc.TokenEndpointAuthMethod = c.AuthMethod
	fc.JSONWebKeysURI = c.JWKSURI
	if c.JWKS != "" {
		if set, err := parseKeySet([]byte(c.JWKS), JWKSMaxKeys); err == nil {
			fc.JSONWebKeys = set
		}
	}
	return fc
}

// GetResponseTypes implements fosite.Client. Only a code-flow client may start
// at /authorize: the eID app's client (JWT-bearer grant only) and service
// clients get none, where fosite's default would be "code".
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) == 0 {
		return fosite.Arguments{}
	}
	return c.ResponseTypes
}

// GetResponseModes implements fosite.ResponseModeClient: an explicit
// response_mode=query, which discovery advertises, is accepted; without this
// fosite refuses any explicit response_mode. Other modes stay refused.
func (c *Client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeQuery}
}

// ValidateJWKS checks a client's key set document: public keys only, usable
// for signatures.
func ValidateJWKS(doc string) error {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(doc), &set); err != nil {
		return fmt.Errorf("jwks: %v: %w", err, idp.ErrInvalid)
	}
	if len(set.Keys) == 0 {
		return fmt.Errorf("jwks has no keys: %w", idp.ErrInvalid)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return fmt.Errorf("jwks key %q contains private key material: %w", k.KeyID, idp.ErrInvalid)
		}
		if !k.Valid() {
			return fmt.Errorf("jwks key %q is not valid: %w", k.KeyID, idp.ErrInvalid)
		}
	}
	return nil
}
