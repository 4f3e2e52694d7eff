package eidapp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/sqlite"
	"github.com/onedoor/onedoor/idp/sqlstore"
)

var citizen = idp.Citizen{ID: "sub-0001", PersonalID: "001099012345", FamilyName: "Trần", GivenName: "Thị Bình"}

// fakeIDP implements the client side's HTTP contract minimally, on a real
// eid.Service: the eID API, discovery, an authorize endpoint with the
// eid-qr login page, status polling, the redirect back and the token
// endpoint. The knobs let tests break one step at a time.
type fakeIDP struct {
	*httptest.Server
	svc   *eid.Service
	store *sqlstore.Store
	key   *ecdsa.PrivateKey // ID token signing key

	mu    sync.Mutex
	codes map[string]authRequest

	callbackParams func(q url.Values)       // edits the redirect to the app
	idTokenClaims  func(c jwt.MapClaims)    // edits the ID token
	pageHTML       func(p loginPage) string // replaces the login page
	down           bool                     // every eID API call answers 503
}

type authRequest struct {
	RedirectURI, State, Nonce, Challenge, Subject string
}

type loginPage struct {
	Payload, StatusURL, Match string
}

var page = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="vi"><head><title>Đăng nhập</title></head><body>
<p data-payload="decoy">Quét mã bằng ứng dụng eID</p>
<div class="qr" id="eid-qr" data-payload="{{.Payload}}" data-status-url="{{.StatusURL}}"><img alt="QR"></div>
<p>Số đối chiếu: <b>{{.Match}}</b></p>
</body></html>`))

func newFakeIDP(t *testing.T) *fakeIDP {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The stores are real: SQLite on a temporary file.
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "idp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store := sqlite.New(db)
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := citizen
	if err := store.CreateCitizens(context.Background(), []*idp.Citizen{&c}); err != nil {
		t.Fatal(err)
	}
	f := &fakeIDP{
		store: store,
		key:   k,
		codes: map[string]authRequest{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /eid/v1/enrollments", f.enroll)
	mux.HandleFunc("GET /eid/v1/login-requests/{id}", f.loginRequest)
	mux.HandleFunc("POST /eid/v1/login-requests/{id}/decision", f.decision)
	mux.HandleFunc("GET /.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("GET /jwks", f.jwks)
	mux.HandleFunc("GET /authorize", f.authorize)
	mux.HandleFunc("GET /login/eid/status", f.status)
	mux.HandleFunc("GET /login/eid/finish", f.finish)
	mux.HandleFunc("POST /token", f.token)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	f.svc = eid.New(f.store, f.store, eid.Config{Issuer: f.URL, CodeKey: make([]byte, 32)})
	return f
}

func (f *fakeIDP) activate(t *testing.T) string {
	t.Helper()
	code, _, err := f.svc.Activate(context.Background(), citizen.PersonalID, idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client reports a broken answer
}

func writeErr(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "server_error"
	switch {
	case errors.Is(err, idp.ErrUnavailable):
		status, code = http.StatusServiceUnavailable, "temporarily_unavailable"
	case errors.Is(err, eid.ErrDeviceAuth):
		status, code = http.StatusUnauthorized, "invalid_token"
	case errors.Is(err, idp.ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, idp.ErrConflict):
		status, code = http.StatusConflict, "already_decided"
	case errors.Is(err, idp.ErrInvalid):
		status, code = http.StatusBadRequest, "invalid_request"
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": err.Error()})
}

func (f *fakeIDP) enroll(w http.ResponseWriter, r *http.Request) {
	var req eid.EnrollRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, idp.ErrInvalid)
		return
	}
	d, err := f.svc.Enroll(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"device_id": d.ID, "level": string(d.Level)})
}

// device authenticates the request with its "DeviceJWT" token.
func (f *fakeIDP) device(r *http.Request) (*idp.Device, error) {
	if f.down {
		return nil, idp.ErrUnavailable
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DeviceJWT ")
	if !ok {
		return nil, eid.ErrDeviceAuth
	}
	return f.svc.AuthenticateDevice(r.Context(), tok, f.URL)
}

func (f *fakeIDP) loginRequest(w http.ResponseWriter, r *http.Request) {
	if _, err := f.device(r); err != nil {
		writeErr(w, err)
		return
	}
	lr, err := f.svc.Login(r.Context(), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, f.svc.AppView(lr))
}

func (f *fakeIDP) decision(w http.ResponseWriter, r *http.Request) {
	dev, err := f.device(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	var body struct {
		Approval string `json:"approval"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, idp.ErrInvalid)
		return
	}
	d, err := f.svc.Decide(r.Context(), r.PathValue("id"), dev, body.Approval)
	if err != nil {
		writeErr(w, err)
		return
	}
	st := eid.StatusDenied
	if d.Approved {
		st = eid.StatusApproved
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": string(st)})
}

func (f *fakeIDP) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"issuer":                 f.URL,
		"authorization_endpoint": f.URL + "/authorize",
		"token_endpoint":         f.URL + "/token",
		"jwks_uri":               f.URL + "/jwks",
	})
}

func (f *fakeIDP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: f.key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
}

func browserKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

func (f *fakeIDP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != eidapp.ClientID || q.Get("redirect_uri") != eidapp.RedirectURI || q.Get("response_type") != "code" ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		len(q.Get("state")) < 16 || len(q.Get("nonce")) < 16 || q.Get("scope") != eidapp.Scope {
		http.Error(w, "bad authorize request: "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	ar, _ := json.Marshal(authRequest{RedirectURI: q.Get("redirect_uri"), State: q.Get("state"), Nonce: q.Get("nonce"), Challenge: q.Get("code_challenge")})
	secret := rand.Text()
	lr := &eid.LoginRequest{
		ClientID: eidapp.ClientID, ClientName: "Ứng dụng eID",
		Claims:       []eid.ClaimRequest{{Name: "name"}, {Name: "birthdate", Optional: true}},
		Purpose:      "Đăng nhập ứng dụng",
		BrowserKey:   browserKey(secret),
		Continuation: ar,
	}
	if err := f.svc.NewLogin(r.Context(), lr); err != nil {
		writeErr(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // Secure cookies do not travel over the plain-HTTP test server
		Name: "eid_browser", Value: secret, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	p := loginPage{Payload: eid.Payload(f.URL, lr.ID), StatusURL: "/login/eid/status?request=" + lr.ID, Match: lr.MatchNumber}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if f.pageHTML != nil {
		_, _ = w.Write([]byte(f.pageHTML(p)))
		return
	}
	_ = page.Execute(w, p)
}

// bound checks the browser cookie against the login request's BrowserKey.
func bound(r *http.Request, key []byte) bool {
	c, err := r.Cookie("eid_browser")
	return err == nil && subtle.ConstantTimeCompare(browserKey(c.Value), key) == 1
}

func (f *fakeIDP) status(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("request")
	if lr, err := f.svc.Login(r.Context(), id); err == nil && !bound(r, lr.BrowserKey) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "access_denied"})
		return
	}
	st, _, err := f.svc.Status(r.Context(), id)
	if err != nil {
		writeErr(w, err)
		return
	}
	out := map[string]string{"status": string(st)}
	if st == eid.StatusApproved {
		out["redirect_to"] = "/login/eid/finish?request=" + url.QueryEscape(id)
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *fakeIDP) finish(w http.ResponseWriter, r *http.Request) {
	lr, d, err := f.svc.TakeDecision(r.Context(), r.URL.Query().Get("request"))
	if err != nil {
		writeErr(w, err)
		return
	}
	if !bound(r, lr.BrowserKey) {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "access_denied"})
		return
	}
	var ar authRequest
	if err := json.Unmarshal(lr.Continuation, &ar); err != nil {
		writeErr(w, err)
		return
	}
	q := url.Values{"state": {ar.State}, "iss": {f.URL}}
	if d.Approved {
		code := rand.Text()
		ar.Subject = d.CitizenID
		f.mu.Lock()
		f.codes[code] = ar
		f.mu.Unlock()
		q.Set("code", code)
	} else {
		q.Set("error", "access_denied")
	}
	if f.callbackParams != nil {
		f.callbackParams(q)
	}
	http.Redirect(w, r, ar.RedirectURI+"?"+q.Encode(), http.StatusSeeOther)
}

func (f *fakeIDP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeErr(w, idp.ErrInvalid)
		return
	}
	f.mu.Lock()
	ar, ok := f.codes[r.PostForm.Get("code")]
	delete(f.codes, r.PostForm.Get("code"))
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("client_id") != eidapp.ClientID ||
		r.PostForm.Get("redirect_uri") != ar.RedirectURI || base64.RawURLEncoding.EncodeToString(sum[:]) != ar.Challenge ||
		r.PostForm.Has("client_secret") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "code, PKCE or client mismatch"})
		return
	}
	now := time.Now()
	c := jwt.MapClaims{
		"iss": f.URL, "aud": eidapp.ClientID, "azp": eidapp.ClientID, "sub": ar.Subject,
		"nonce": ar.Nonce, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	if f.idTokenClaims != nil {
		f.idTokenClaims(c)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = "k1"
	idt, _ := t.SignedString(f.key)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": "at-" + rand.Text(), "token_type": "Bearer", "expires_in": 300,
		"refresh_token": "rt-" + rand.Text(), "id_token": idt, "scope": eidapp.Scope,
	})
}
