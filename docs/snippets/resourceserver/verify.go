// Package resourceserver shows how an agency's API validates OneDoor's
// access tokens (RFC 9068 JWTs) locally, with the keys OneDoor publishes. It
// is the example of docs/agency-integration.md, run against a real OneDoor
// by cmd/onedoor's TestGuide_ResourceServer.
package resourceserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// Claims are the access token's claims a resource server decides on.
type Claims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"` // the citizen (kind citizen) or the calling client (kind client)
	Audience  audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	IssuedAt  int64    `json:"iat"`
	ClientID  string   `json:"client_id"` // the agency site the token was issued to
	Scope     string   `json:"scope"`
	Kind      string   `json:"kind"` // "citizen" or "client"
	ACR       string   `json:"acr"`  // citizen tokens: the level of assurance of the login
	Agency    string   `json:"agency"`
	TokenID   string   `json:"jti"`
	GrantID   string   `json:"gid"`
	DeviceID  string   `json:"did"`
	Confirmed *struct {
		JKT string `json:"jkt"`
	} `json:"cnf"`
}

// audience is a string or an array of strings (RFC 7519 section 4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// Verifier checks OneDoor's access tokens for one resource server.
type Verifier struct {
	issuer   string
	audience string // this API's URL, as listed in OneDoor's --resources
	keys     *oidc.RemoteKeySet
	now      func() time.Time
}

// NewVerifier reads OneDoor's discovery document for its jwks_uri. The key
// set is cached and refetched when a token names an unknown kid (a rotation).
func NewVerifier(ctx context.Context, issuer, audience string) (*Verifier, error) {
	p, err := oidc.NewProvider(ctx, issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, err
	}
	return &Verifier{issuer: issuer, audience: audience, keys: oidc.NewRemoteKeySet(ctx, meta.JWKSURI), now: time.Now}, nil
}

// Verify checks a bearer token: header typ at+jwt and alg ES256, the
// signature against OneDoor's JWKS, iss, aud (this API), exp and iat. The
// caller then decides on Kind, Scope and ClientID.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errors.New("not an ES256 JWS")
	}
	// typ distinguishes an access token from an ID token, which is signed by
	// the same keys (RFC 9068 section 4).
	typ, _ := jws.Signatures[0].Protected.ExtraHeaders["typ"].(string)
	if !strings.EqualFold(typ, "at+jwt") && !strings.EqualFold(typ, "application/at+jwt") {
		return nil, errors.New("not an access token (typ)")
	}
	payload, err := v.keys.VerifySignature(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errors.New("claims are not JSON")
	}
	now := v.now().Unix()
	const leeway = 30 // seconds of clock skew
	switch {
	case c.Issuer != v.issuer:
		return nil, errors.New("wrong issuer")
	case !slices.Contains(c.Audience, v.audience):
		return nil, errors.New("the token was minted for another audience")
	case c.Expiry == 0 || now > c.Expiry+leeway:
		return nil, errors.New("expired")
	case c.IssuedAt > now+leeway:
		return nil, errors.New("issued in the future")
	case c.Kind != "citizen" && c.Kind != "client":
		return nil, errors.New("unknown token kind")
	case c.ClientID == "" || c.Subject == "":
		return nil, errors.New("no client_id or sub")
	}
	return &c, nil
}

// CitizenOnly is middleware for an API that serves citizens: it accepts
// only citizen tokens for this audience and passes their claims on.
func (v *Verifier) CitizenOnly(next func(http.ResponseWriter, *http.Request, *Claims)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, err := v.Verify(r.Context(), raw)
		if !ok || err != nil || c.Kind != "citizen" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		next(w, r, c)
	})
}
