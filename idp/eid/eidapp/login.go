package eidapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/dpop"
	"github.com/onedoor/onedoor/idp/eid"
)

// The app's own public OIDC client, created by the IdP's migrations. It
// obtains tokens only with the JWT-bearer grant.
const (
	ClientID = idp.EIDAppClientID
	Scope    = "openid profile eid"
)

// Tokens are the app's own tokens, kept in tokens.json. There is no refresh
// token: the app signs a new assertion with its device key instead.
type Tokens struct {
	AccessToken string    `json:"access_token"`
	IDToken     string    `json:"id_token"`
	TokenType   string    `json:"token_type"`
	Scope       string    `json:"scope,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	Subject     string    `json:"subject"` // sub of the verified ID token
}

type discovery struct {
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
	JWKSURI       string `json:"jwks_uri"`
}

// Login obtains the app's own tokens with the RFC 7523 JWT-bearer grant: an
// assertion (typ eid-grant+jwt) signed by the device key, for the token
// endpoint, answered with an access token bound to the device key and an ID
// token. No browser is involved: nobody can start this login for the app.
// It verifies the ID token and saves tokens.json.
func (a *App) Login(ctx context.Context) (*Tokens, error) {
	d, err := a.device()
	if err != nil {
		return nil, err
	}
	disc, err := a.discover(ctx, d.IDP)
	if err != nil {
		return nil, err
	}
	tr, err := a.grant(ctx, d, disc, url.Values{"scope": {Scope}})
	if err != nil {
		return nil, err
	}
	sub, err := a.verifyIDToken(ctx, disc, tr.IDToken, "")
	if err != nil {
		return nil, err
	}
	t := &Tokens{
		AccessToken: tr.AccessToken, IDToken: tr.IDToken, TokenType: tr.TokenType, Scope: tr.Scope,
		ExpiresAt: a.now().Add(time.Duration(tr.ExpiresIn) * time.Second).UTC(), Subject: sub,
	}
	b, err := json.MarshalIndent(t, "", "  ") //nolint:gosec // tokens.json is where the tokens live, mode 0600
	if err != nil {
		return nil, fmt.Errorf("encode tokens: %w", err)
	}
	if err := writePrivate(filepath.Join(a.Home, TokensFile), b); err != nil {
		return nil, err
	}
	return t, nil
}

// tokenResponse is the token endpoint's answer to the JWT-bearer grant.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	IDToken     string `json:"id_token"`
}

// grant redeems a fresh assertion signed by the device key at the token
// endpoint (the JWT-bearer grant); params add scope or resource.
func (a *App) grant(ctx context.Context, d *device, disc *discovery, params url.Values) (*tokenResponse, error) {
	c := eid.GrantClaims{RegisteredClaims: a.registered(d, disc.TokenEndpoint)}
	c.Subject = d.DeviceID
	assertion, err := d.sign(eid.TypeGrant, c)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type": {idp.GrantTypeJWTBearer},
		"assertion":  {assertion},
		"client_id":  {ClientID},
	}
	for k, v := range params {
		form[k] = v
	}
	var tr tokenResponse
	if err := a.postToken(ctx, d, disc.TokenEndpoint, form, &tr); err != nil {
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	switch {
	case tr.AccessToken == "":
		return nil, errors.New("token endpoint: no access_token")
	case !strings.EqualFold(tr.TokenType, "DPoP"):
		return nil, fmt.Errorf("token endpoint: token_type %q, want DPoP", printable(tr.TokenType))
	case tr.ExpiresIn <= 0:
		return nil, errors.New("token endpoint: no expires_in")
	}
	return &tr, nil
}

// postToken sends a token request with a DPoP proof signed by the device key
// (RFC 9449), so the tokens are bound to it and of type DPoP, and decodes
// the JSON answer. A use_dpop_nonce answer is retried once with the
// DPoP-Nonce it carries.
func (a *App) postToken(ctx context.Context, d *device, u string, form url.Values, out any) error {
	nonce := ""
	for try := 0; ; try++ {
		proof, err := a.dpopProof(d, http.MethodPost, u, "", nonce)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
		if err != nil {
			return fmt.Errorf("POST %s: %w", u, err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("DPoP", proof)
		resp, err := a.client().Do(req)
		if err != nil {
			return fmt.Errorf("POST %s: %w", u, err)
		}
		err = decode(resp, out, http.StatusOK)
		resp.Body.Close()
		var e *Error
		if n := resp.Header.Get("DPoP-Nonce"); try == 0 && n != "" && errors.As(err, &e) && e.Code == "use_dpop_nonce" {
			nonce = n
			continue
		}
		return err
	}
}

// dpopProof signs a DPoP proof with the device key for a request to u (its
// query and fragment are not part of htu) carrying token, if any.
func (a *App) dpopProof(d *device, method, u, token, nonce string) (string, error) {
	htu, _, _ := strings.Cut(u, "#")
	htu, _, _ = strings.Cut(htu, "?")
	p, err := dpop.NewProof(d.key, dpop.ProofRequest{Method: method, URL: htu, AccessToken: token, Nonce: nonce, Now: a.now()})
	if err != nil {
		return "", fmt.Errorf("DPoP proof: %w", err)
	}
	return p, nil
}

// Tokens loads tokens.json.
func (a *App) Tokens() (*Tokens, error) {
	b, err := os.ReadFile(filepath.Join(a.Home, TokensFile))
	if err != nil {
		return nil, fmt.Errorf("eid app tokens: %w", err)
	}
	var t Tokens
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("eid app tokens: %w", err)
	}
	return &t, nil
}

func (a *App) discover(ctx context.Context, issuer string) (*discovery, error) {
	var disc discovery
	if err := call(ctx, a.client(), http.MethodGet, issuer+"/.well-known/openid-configuration", "", nil, &disc, http.StatusOK); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	// issuer lost any trailing slash in baseURL; disc.Issuer stays as published
	// and is what iss must equal from here on.
	if strings.TrimSuffix(disc.Issuer, "/") != issuer {
		return nil, fmt.Errorf("discovery: issuer %q, want %q", printable(disc.Issuer), issuer)
	}
	if disc.TokenEndpoint == "" || disc.JWKSURI == "" {
		return nil, errors.New("discovery: token_endpoint and jwks_uri required")
	}
	// The assertion names the token endpoint as its audience: it must be the
	// enrolled IdP's own.
	if err := sameOrigin(disc.TokenEndpoint, issuer); err != nil {
		return nil, fmt.Errorf("discovery: token_endpoint: %w", err)
	}
	return &disc, nil
}

// sameOrigin insists that u is an absolute URL on the issuer's origin.
func sameOrigin(u, issuer string) error {
	pu, err := url.Parse(u)
	if err != nil {
		return err
	}
	iu, err := url.Parse(issuer)
	if err != nil {
		return err
	}
	if pu.Scheme != iu.Scheme || pu.Host != iu.Host {
		return fmt.Errorf("%s is not on %s://%s", pu.Redacted(), iu.Scheme, iu.Host)
	}
	return nil
}

// verifyIDToken checks the ID token against the IdP's JWKS, the issuer, the
// app's client ID and the nonce, and returns its subject.
func (a *App) verifyIDToken(ctx context.Context, disc *discovery, raw, nonce string) (string, error) {
	if raw == "" {
		return "", errors.New("token endpoint: no id_token")
	}
	var set jose.JSONWebKeySet
	if err := call(ctx, a.client(), http.MethodGet, disc.JWKSURI, "", nil, &set, http.StatusOK); err != nil {
		return "", fmt.Errorf("jwks: %w", err)
	}
	var c struct {
		jwt.RegisteredClaims
		Nonce string `json:"nonce"`
		AZP   string `json:"azp"`
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"ES256", "RS256"}),
		jwt.WithIssuer(disc.Issuer),
		jwt.WithAudience(ClientID),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(a.now),
	)
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		keys := set.Key(kid)
		if len(keys) != 1 {
			return nil, fmt.Errorf("kid %q: %d keys in JWKS", printable(kid), len(keys))
		}
		pub := keys[0].Public()
		if !pub.Valid() {
			return nil, errors.New("JWKS key unusable")
		}
		return pub.Key, nil
	})
	if err != nil {
		return "", fmt.Errorf("id_token: %w", err)
	}
	if c.Nonce != nonce {
		return "", errors.New("id_token: nonce does not match")
	}
	if c.AZP != "" && c.AZP != ClientID {
		return "", fmt.Errorf("id_token: azp %q", printable(c.AZP))
	}
	if c.Subject == "" {
		return "", errors.New("id_token: no sub")
	}
	return c.Subject, nil
}
