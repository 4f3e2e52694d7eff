// Package agencyrp is an agency site that logs a citizen in with OneDoor,
// using github.com/coreos/go-oidc/v3 and golang.org/x/oauth2. It is the Go
// example of docs/agency-integration.md, run against a real OneDoor by
// cmd/onedoor's TestGuide_GoOIDC.
package agencyrp

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Config is what the operator's `onedoor client create` gave the agency.
type Config struct {
	Issuer       string // OneDoor's issuer, such as https://id.example.gov.vn
	ClientID     string
	ClientSecret string
	RedirectURL  string // registered exactly, such as https://agency.example/oidc/callback
}

// New discovers OneDoor and returns the site's handler: /login starts a
// login, the redirect URL's path finishes it.
func New(ctx context.Context, cfg Config) (http.Handler, error) {
	provider, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, err
	}
	endpoint := provider.Endpoint()
	// client_secret_basic, as registered (the default of `client create`).
	endpoint.AuthStyle = oauth2.AuthStyleInHeader
	rp := &site{
		issuer:   cfg.Issuer,
		secure:   strings.HasPrefix(cfg.RedirectURL, "https://"), // http only on loopback, for development
		provider: provider,
		oauth: &oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: endpoint,
			RedirectURL: cfg.RedirectURL, Scopes: []string{oidc.ScopeOpenID, "profile", "eid"},
		},
		// ES256 by default; RS256 for a client registered with --id-token-alg RS256.
		verifier: provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, SupportedSigningAlgs: []string{"ES256", "RS256"}}),
		pending:  map[string]login{},
	}
	callback, err := pathOf(cfg.RedirectURL)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", rp.login)
	mux.HandleFunc("GET "+callback, rp.callback)
	return mux, nil
}

type site struct {
	issuer   string
	secure   bool
	provider *oidc.Provider
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier

	mu      sync.Mutex
	pending map[string]login // a real site keeps these in its session store
}

type login struct {
	state, nonce, verifier string
	expires                time.Time
}

func (s *site) login(w http.ResponseWriter, r *http.Request) {
	l := login{state: rand.Text(), nonce: rand.Text(), verifier: oauth2.GenerateVerifier(), expires: time.Now().Add(5 * time.Minute)}
	id := rand.Text()
	s.mu.Lock()
	s.pending[id] = l
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "login", Value: id, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode, MaxAge: 300}) // #nosec G124 -- Secure whenever the site is https
	// PKCE S256, state and nonce are all required by OneDoor.
	http.Redirect(w, r, s.oauth.AuthCodeURL(l.state, oidc.Nonce(l.nonce), oauth2.S256ChallengeOption(l.verifier)), http.StatusFound)
}

func (s *site) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, err := r.Cookie("login")
	if err != nil {
		http.Error(w, "no login in progress", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	l, ok := s.pending[c.Value]
	delete(s.pending, c.Value)
	s.mu.Unlock()
	q := r.URL.Query()
	switch {
	case !ok || time.Now().After(l.expires) || q.Get("state") != l.state:
		http.Error(w, "unknown or expired login", http.StatusBadRequest)
		return
	case q.Get("iss") != s.issuer: // RFC 9207: the answer comes from OneDoor
		http.Error(w, "wrong issuer", http.StatusBadRequest)
		return
	case q.Get("error") != "": // access_denied when the citizen refused
		http.Error(w, "login failed: "+q.Get("error"), http.StatusForbidden)
		return
	}
	tok, err := s.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.verifier))
	if err != nil {
		http.Error(w, "code exchange failed", http.StatusBadGateway)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := s.verifier.Verify(ctx, raw) // signature, iss, aud, exp
	if err != nil || idt.Nonce != l.nonce {
		http.Error(w, "invalid ID token", http.StatusBadGateway)
		return
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil { // at_hash
		http.Error(w, "invalid access token", http.StatusBadGateway)
		return
	}
	var idClaims, info map[string]any
	ui, err := s.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err == nil {
		err = ui.Claims(&info) // name, birthdate, personal_id... as the citizen agreed
	}
	if err == nil {
		err = idt.Claims(&idClaims)
	}
	if err != nil {
		http.Error(w, "userinfo failed", http.StatusBadGateway)
		return
	}
	// A real site starts its own session for idt.Subject here.
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id_token": idClaims, "userinfo": info})
}

func pathOf(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || p.Path == "" {
		return "", errors.New("the redirect URL needs a path")
	}
	return p.Path, nil
}
