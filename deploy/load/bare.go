package main

// The bare baseline: a plain net/http token endpoint doing the least a
// client_credentials answer needs, to measure OneDoor against on the same
// machine in the same run (docs/benchmarks.md, "Speed kept"). It checks HTTP
// Basic against a stored keyed hash of one client's secret, signs one ES256
// JWT of an access token's shape with golang-jwt (the library OneDoor signs
// with) and answers JSON. Nothing is stored, logged or looked up.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// bareServer is the baseline's token endpoint.
type bareServer struct {
	issuer     string
	clientID   string
	hashKey    []byte
	secretHash []byte // HMAC-SHA256(hashKey, secret), as OneDoor stores it
	key        *ecdsa.PrivateKey
	kid        string
}

func newBareServer(issuer, clientID, secret string) (*bareServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s := &bareServer{issuer: issuer, clientID: clientID, hashKey: make([]byte, 32), key: key, kid: "bare-1"}
	_, _ = rand.Read(s.hashKey)
	s.secretHash = s.hash(secret)
	return s, nil
}

func (s *bareServer) hash(secret string) []byte {
	m := hmac.New(sha256.New, s.hashKey)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// bareClaims has the fields of OneDoor's client access token.
type bareClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
}

func (s *bareServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		bareError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if err := r.ParseForm(); err != nil {
		bareError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		bareError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	if !ok || id != s.clientID || !hmac.Equal(s.hash(secret), s.secretHash) {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		bareError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	now := time.Now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	const life = time.Hour
	t := jwt.NewWithClaims(jwt.SigningMethodES256, &bareClaims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: s.issuer, Subject: id, Audience: jwt.ClaimStrings{s.issuer + "/userinfo"},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(life)),
			ID: base64.RawURLEncoding.EncodeToString(jti[:])},
		ClientID: id, Scope: r.PostForm.Get("scope"),
	})
	t.Header["typ"] = "at+jwt"
	t.Header["kid"] = s.kid
	tok, err := t.SignedString(s.key)
	if err != nil {
		bareError(w, http.StatusInternalServerError, "server_error")
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "token_type": "bearer", "expires_in": int(life.Seconds()), "scope": r.PostForm.Get("scope"),
	})
}

func bareError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":%q}`, code)
}

// serveBare serves the baseline on addr (loopback only) until ctx ends.
func serveBare(ctx context.Context, addr, clientID, secret string) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-serve-bare %q: want a loopback ip:port", addr)
	}
	if clientID == "" || secret == "" {
		return errors.New("-serve-bare needs -client-id and -secret")
	}
	bs, err := newBareServer("http://"+strings.TrimSuffix(addr, "/"), clientID, secret)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The timeouts of OneDoor's own server (cmd/onedoor serve).
	srv := &http.Server{Handler: bs, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second}
	go func() {
		<-ctx.Done()
		// ctx is already done; shutting down gets its own deadline.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
