package eidapp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
)

// The app's own public OIDC client, created by the IdP's migrations.
const (
	ClientID    = idp.EIDAppClientID
	RedirectURI = appScheme + ":/callback"
	Scope       = "openid profile eid offline_access"

	appScheme = "vn.onedoor.eid"
)

// How long Login waits for the IdP to see its own approval.
var (
	pollInterval = 200 * time.Millisecond
	pollTimeout  = 10 * time.Second
)

// Tokens are the app's own tokens, kept in tokens.json.
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	IDToken      string    `json:"id_token"`
	TokenType    string    `json:"token_type"`
	Scope        string    `json:"scope,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	Subject      string    `json:"subject"` // sub of the verified ID token
}

type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

// Login obtains the app's own tokens the way a citizen's browser would: it
// opens the authorization endpoint (code flow, PKCE S256, state, nonce),
// reads the QR payload off the login page, approves it with the device key,
// polls the page's status URL, follows the redirect to the app's redirect
// URI, checks state and iss, redeems the code, verifies the ID token and
// saves tokens.json.
func (a *App) Login(ctx context.Context) (*Tokens, error) {
	d, err := a.device()
	if err != nil {
		return nil, err
	}
	disc, err := a.discover(ctx, d.IDP)
	if err != nil {
		return nil, err
	}
	cfg := oauth2.Config{
		ClientID:    ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: disc.AuthorizationEndpoint, TokenURL: disc.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: RedirectURI,
		Scopes:      strings.Fields(Scope),
	}
	verifier, state, nonce := oauth2.GenerateVerifier(), rand.Text(), rand.Text()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))

	browser, err := a.browser()
	if err != nil {
		return nil, err
	}
	payload, statusURL, err := a.loginPage(ctx, browser, authURL, d.IDP)
	if err != nil {
		return nil, err
	}
	if _, err := a.Approve(ctx, payload, false, nil); err != nil {
		return nil, err
	}
	next, err := a.poll(ctx, browser, statusURL, d.IDP)
	if err != nil {
		return nil, err
	}
	code, err := a.callback(ctx, browser, next, state, disc.Issuer)
	if err != nil {
		return nil, err
	}

	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, a.client()), code, oauth2.VerifierOption(verifier))
	if err != nil {
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
			e := &Error{Code: printable(re.ErrorCode), Description: printable(re.ErrorDescription)}
			if re.Response != nil {
				e.StatusCode = re.Response.StatusCode
			}
			return nil, fmt.Errorf("token endpoint: %w", e)
		}
		return nil, fmt.Errorf("token endpoint: %w", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	sub, err := a.verifyIDToken(ctx, disc, rawID, nonce)
	if err != nil {
		return nil, err
	}
	scope, _ := tok.Extra("scope").(string)
	t := &Tokens{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, IDToken: rawID,
		TokenType: tok.TokenType, Scope: scope, ExpiresAt: tok.Expiry.UTC(), Subject: sub,
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
	if disc.AuthorizationEndpoint == "" {
		disc.AuthorizationEndpoint = issuer + "/authorize"
	}
	if disc.TokenEndpoint == "" || disc.JWKSURI == "" {
		return nil, errors.New("discovery: token_endpoint and jwks_uri required")
	}
	return &disc, nil
}

// browser is a client with its own cookie jar that stops at the app's
// redirect URI instead of trying to fetch it.
func (a *App) browser() (*http.Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	c := *a.client()
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme == appScheme {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c, nil
}

// loginPage loads the authorization endpoint and reads the eid-qr element of
// the login page it ends on.
func (a *App) loginPage(ctx context.Context, browser *http.Client, authURL, issuer string) (payload, statusURL string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", "", fmt.Errorf("authorize: %w", err)
	}
	req.Header.Set("Accept", "text/html")
	resp, err := browser.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("authorize: %w", err)
	}
	defer resp.Body.Close()
	if isRedirect(resp.StatusCode) { // straight back to the app: an OAuth error
		_, err := callbackCode(resp, "", "")
		return "", "", fmt.Errorf("authorize: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return "", "", fmt.Errorf("authorize: %w", errorFrom(resp.StatusCode, b))
	}
	payload, ref, err := findQR(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", "", fmt.Errorf("login page %s: %w", resp.Request.URL, err)
	}
	u, err := sameOrigin(resp.Request.URL, ref, issuer)
	if err != nil {
		return "", "", fmt.Errorf("login page status URL: %w", err)
	}
	return payload, u, nil
}

// findQR finds the element with id eid-qr and returns its data-payload and
// data-status-url attributes, unescaped.
func findQR(r io.Reader) (payload, statusURL string, err error) {
	z := html.NewTokenizer(r)
	for {
		switch z.Next() {
		case html.ErrorToken:
			if errors.Is(z.Err(), io.EOF) {
				return "", "", errors.New(`no element with id "eid-qr"`)
			}
			return "", "", z.Err()
		case html.StartTagToken, html.SelfClosingTagToken:
			var id string
			t := z.Token()
			for _, at := range t.Attr {
				switch at.Key {
				case "id":
					id = at.Val
				case "data-payload":
					payload = at.Val
				case "data-status-url":
					statusURL = at.Val
				}
			}
			if id != "eid-qr" {
				payload, statusURL = "", ""
				continue
			}
			if payload == "" || statusURL == "" {
				return "", "", errors.New(`element "eid-qr" lacks data-payload or data-status-url`)
			}
			return payload, statusURL, nil
		}
	}
}

// sameOrigin resolves ref against base and insists it stays on the issuer's
// origin: the cookie jar and the flow must not wander off.
func sameOrigin(base *url.URL, ref, issuer string) (string, error) {
	u, err := base.Parse(ref)
	if err != nil {
		return "", err
	}
	iu, err := url.Parse(issuer)
	if err != nil {
		return "", err
	}
	if u.Scheme != iu.Scheme || u.Host != iu.Host {
		return "", fmt.Errorf("%s is not on %s://%s", u.Redacted(), iu.Scheme, iu.Host)
	}
	return u.String(), nil
}

// poll asks the status URL until the login is approved and returns where
// to go next.
func (a *App) poll(ctx context.Context, browser *http.Client, statusURL, issuer string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, pollTimeout)
	defer cancel()
	base, err := url.Parse(statusURL)
	if err != nil {
		return "", err
	}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		var st struct {
			Status     string `json:"status"`
			RedirectTo string `json:"redirect_to"`
		}
		if err := call(ctx, browser, http.MethodGet, statusURL, "", nil, &st, http.StatusOK); err != nil {
			return "", fmt.Errorf("login status: %w", err)
		}
		switch eid.Status(st.Status) {
		case eid.StatusApproved:
			if st.RedirectTo == "" {
				return "", errors.New("login status: approved without redirect_to")
			}
			next, err := sameOrigin(base, st.RedirectTo, issuer)
			if err != nil {
				return "", fmt.Errorf("login status redirect_to: %w", err)
			}
			return next, nil
		case eid.StatusDenied, eid.StatusExpired:
			return "", fmt.Errorf("login %s", st.Status)
		case eid.StatusPending:
		default:
			return "", fmt.Errorf("login status %q unknown", printable(st.Status))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("login still pending after %s: %w", pollTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// callback follows next to the redirect to the app's redirect URI and
// returns the authorization code.
func (a *App) callback(ctx context.Context, browser *http.Client, next, state, issuer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, next, nil)
	if err != nil {
		return "", fmt.Errorf("finish login: %w", err)
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", fmt.Errorf("finish login: %w", err)
	}
	defer resp.Body.Close()
	if !isRedirect(resp.StatusCode) {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return "", fmt.Errorf("finish login: want a redirect to %s: %w", RedirectURI, errorFrom(resp.StatusCode, b))
	}
	code, err := callbackCode(resp, state, issuer)
	if err != nil {
		return "", fmt.Errorf("finish login: %w", err)
	}
	return code, nil
}

func isRedirect(status int) bool {
	return status == http.StatusFound || status == http.StatusSeeOther
}

// callbackCode reads the redirect to the app's redirect URI: an OAuth error,
// or a code with the expected state and iss (RFC 9207).
func callbackCode(resp *http.Response, state, issuer string) (string, error) {
	cb, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || cb.Scheme != appScheme || cb.Path != "/callback" || cb.Opaque != "" {
		return "", fmt.Errorf("redirect to %q, want %s", printable(resp.Header.Get("Location")), RedirectURI)
	}
	q := cb.Query()
	if e := q.Get("error"); e != "" {
		return "", &Error{Code: printable(e), Description: printable(q.Get("error_description"))}
	}
	switch {
	case q.Get("state") != state:
		return "", errors.New("callback state does not match the request's")
	case q.Get("iss") != issuer:
		return "", fmt.Errorf("callback iss %q, want %q", printable(q.Get("iss")), issuer)
	case q.Get("code") == "":
		return "", errors.New("callback without code")
	}
	return q.Get("code"), nil
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
