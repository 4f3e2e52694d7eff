package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/onedoor/onedoor/idp"

	"golang.org/x/oauth2"
)

// Request objects are not supported (discovery says
// request_parameter_supported false): an unsigned one (alg none) must not be
// merged into the request at /authorize or /par, and a request_uri that the
// PAR endpoint did not issue is refused.
func TestRequestObjectsRefused(t *testing.T) {
	e := startMain(t)
	// A client with registered keys: fosite accepts alg none request objects
	// from such a client and would fetch its request_uri.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	id, _ := e.client(ClientSpec{Scope: "openid profile eid", AuthMethod: idp.AuthPrivateKeyJWT, JWKSFile: jwks})
	r := e.rp(id, "", "openid")
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	verifier := oauth2.GenerateVerifier()
	unsigned := enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(map[string]any{
		"client_id": id, "response_type": "code", "redirect_uri": r.conf.RedirectURL, "scope": "openid eid",
		"state": "state-123456", "nonce": "nonce-123456", "code_challenge": oauth2.S256ChallengeFromVerifier(verifier),
		"code_challenge_method": "S256",
	}) + "."
	var fetched atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetched.Add(1)
		_, _ = io.WriteString(w, unsigned)
	}))
	defer srv.Close()

	for _, tc := range []struct{ name, param, value, code string }{
		{"unsigned request object", "request", unsigned, "request_not_supported"},
		{"request_uri of another server", "request_uri", srv.URL + "/req.jwt", "request_uri_not_supported"},
	} {
		u, _, _, _ := authorizeURL(r, oauth2.SetAuthURLParam(tc.param, tc.value))
		resp, err := newBrowser().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.code) || strings.Contains(string(body), `id="eid-qr"`) {
			t.Errorf("%s: %d, Location %q; want a 400 page naming %s", tc.name, resp.StatusCode, resp.Header.Get("Location"), tc.code)
		}
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("the IdP fetched a request_uri %d times", n)
	}

	form := url.Values{"client_id": {id}, "request": {unsigned}}
	resp, err := http.PostForm(e.issuer+"/par", form)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || got.Error != "invalid_request" {
		t.Errorf("par with a request object: %d %q, want 400 invalid_request", resp.StatusCode, got.Error)
	}
}
