package eidapp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
// eid.Service and SQLite store: the eID API, discovery and a token endpoint
// serving the JWT-bearer grant. The knobs let tests break one step at a time.
type fakeIDP struct {
	*httptest.Server
	svc   *eid.Service
	store *sqlstore.Store
	key   *ecdsa.PrivateKey // ID token signing key

	idTokenClaims func(c jwt.MapClaims)     // edits the ID token
	discoveryDoc  func(d map[string]string) // edits the discovery document
	down          bool                      // every eID API call answers 503
}

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
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /eid/v1/enrollments", f.enroll)
	mux.HandleFunc("GET /eid/v1/login-requests/{id}", f.loginRequest)
	mux.HandleFunc("POST /eid/v1/login-requests/{id}/decision", f.decision)
	mux.HandleFunc("GET /.well-known/openid-configuration", f.discovery)
	mux.HandleFunc("GET /jwks", f.jwks)
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
	return f.svc.AuthenticateHeader(r.Context(), r.Header.Get("Authorization"), f.URL)
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
	out := map[string]string{"status": string(st)}
	if d.Reason != "" {
		out["reason"] = d.Reason
	}
	if d.ReturnCode != "" {
		out["return_url"] = "http://" + r.Host + "/login/continue?id=" + r.PathValue("id") + "&code=" + d.ReturnCode
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *fakeIDP) discovery(w http.ResponseWriter, _ *http.Request) {
	d := map[string]string{
		"issuer":         f.URL,
		"token_endpoint": f.URL + "/token",
		"jwks_uri":       f.URL + "/jwks",
	}
	if f.discoveryDoc != nil {
		f.discoveryDoc(d)
	}
	writeJSON(w, http.StatusOK, d)
}

func (f *fakeIDP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: f.key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
}

// token serves the JWT-bearer grant the way OneDoor does: the assertion is
// checked by the real eid.Service.AuthenticateGrant.
func (f *fakeIDP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeErr(w, idp.ErrInvalid)
		return
	}
	if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" || r.PostForm.Get("client_id") != eidapp.ClientID ||
		r.PostForm.Get("scope") != eidapp.Scope || r.PostForm.Has("client_secret") || r.PostForm.Has("code") {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "not the eID app's JWT-bearer grant"})
		return
	}
	dev, _, err := f.svc.AuthenticateGrant(r.Context(), r.PostForm.Get("assertion"), f.URL+"/token")
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant", "error_description": "The assertion is not valid."})
		return
	}
	now := time.Now()
	c := jwt.MapClaims{
		"iss": f.URL, "aud": eidapp.ClientID, "azp": eidapp.ClientID, "sub": dev.CitizenID,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "acr": string(dev.Level), "amr": []string{"hwk"},
	}
	if f.idTokenClaims != nil {
		f.idTokenClaims(c)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = "k1"
	idt, _ := t.SignedString(f.key)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": "at-" + rand.Text(), "token_type": "DPoP", "expires_in": 300,
		"id_token": idt, "scope": eidapp.Scope,
	})
}
