package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
)

// signer is a client's private key with the kid it is published under.
type signer struct {
	kid string
	key any // *ecdsa.PrivateKey or *rsa.PrivateKey
}

// assertion builds a client assertion as a client library would.
type assertion struct {
	method   jwt.SigningMethod
	key      any
	kid      string
	clientID string
	aud      string
	exp      time.Time
	jti      string
}

func (a assertion) sign(t *testing.T) string {
	t.Helper()
	now := time.Now()
	if a.exp.IsZero() {
		a.exp = now.Add(time.Minute)
	}
	if a.jti == "" {
		a.jti = randomString(16)
	}
	tok := jwt.NewWithClaims(a.method, jwt.RegisteredClaims{
		Issuer: a.clientID, Subject: a.clientID, Audience: jwt.ClaimStrings{a.aud}, ID: a.jti,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(a.exp),
	})
	if a.kid != "" {
		tok.Header["kid"] = a.kid
	}
	s, err := tok.SignedString(a.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenWithAssertion asks for a client_credentials token with a client
// assertion and returns the status and body.
func tokenWithAssertion(t *testing.T, issuer, clientID, a string) (int, string) {
	t.Helper()
	return postForm(t, issuer+"/token", url.Values{
		"grant_type": {"client_credentials"}, "scope": {"registry.read"}, "client_id": {clientID},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a},
	})
}

func wantToken(t *testing.T, what string, status int, body string) {
	t.Helper()
	if status != http.StatusOK || !strings.Contains(body, "access_token") {
		t.Errorf("%s: status %d %s, want a token", what, status, body)
	}
}

func wantInvalidClient(t *testing.T, what string, status int, body string) {
	t.Helper()
	if status != http.StatusUnauthorized || !strings.Contains(body, `"invalid_client"`) {
		t.Errorf("%s: status %d %s, want 401 invalid_client", what, status, body)
	}
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// publicJWKS is the key set document a client publishes. Keys carry kid
// only, no use and no alg, as many client libraries write them.
func publicJWKS(t *testing.T, keys ...signer) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	for _, k := range keys {
		var pub any
		switch pk := k.key.(type) {
		case *ecdsa.PrivateKey:
			pub = &pk.PublicKey
		case *rsa.PrivateKey:
			pub = &pk.PublicKey
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: k.kid})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sigJWKS is publicJWKS with use=sig and alg on every key, as the most
// conservative client libraries write them.
func sigJWKS(t *testing.T, keys ...signer) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(publicJWKS(t, keys...), &set); err != nil {
		t.Fatal(err)
	}
	for i := range set.Keys {
		set.Keys[i].Use, set.Keys[i].Algorithm = "sig", "ES256"
		if _, ok := set.Keys[i].Key.(*rsa.PublicKey); ok {
			set.Keys[i].Algorithm = "RS256"
		}
	}
	b, _ := json.Marshal(set)
	return b
}

// jwksHost serves a client's key set and counts the fetches.
type jwksHost struct {
	*httptest.Server
	doc   atomic.Value // []byte
	hits  atomic.Int32
	state atomic.Int32 // 0 serve, 1 error status, 2 redirect, 3 huge
}

func newJWKSHost(t *testing.T, doc []byte) *jwksHost {
	h := &jwksHost{}
	h.doc.Store(doc)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		switch h.state.Load() {
		case 1:
			http.Error(w, "down", http.StatusInternalServerError)
		case 2:
			http.Redirect(w, r, "http://127.0.0.1:9/keys", http.StatusFound)
		case 3:
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 1<<20) + `"}`))
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(h.doc.Load().([]byte))
		}
	}))
	t.Cleanup(h.Close)
	return h
}

// jwtClientWith registers a private_key_jwt client whose keys are a stored
// document (uri == "") or published at uri.
func (e *testEnv) jwtClientWith(doc []byte, uri string) string {
	e.t.Helper()
	spec := ClientSpec{GrantTypes: []string{"client_credentials"}, Scope: "registry.read", AuthMethod: idp.AuthPrivateKeyJWT, JWKSURI: uri}
	if uri == "" {
		spec.JWKSFile = filepath.Join(e.t.TempDir(), "jwks.json")
		if err := os.WriteFile(spec.JWKSFile, doc, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	id, _ := e.client(spec)
	return id
}

// RS256 and PS256 work as ES256 does, from a stored key set and from a
// jwks_uri, and a key set may mix key types: the assertion's alg must fit
// the key its kid names. Today's code binds each client to one algorithm
// guessed from a stored key set (ES256 for every jwks_uri), and fosite skips
// keys without use=sig.
func TestPrivateKeyJWT_Algorithms(t *testing.T) {
	e := startMain(t)
	aud := e.issuer + "/token"
	ec, rsaKey := signer{"ec-1", newECKey(t)}, signer{"rsa-1", newRSAKey(t)}
	for _, tc := range []struct {
		name   string
		keys   []signer
		method jwt.SigningMethod
		key    signer
	}{
		{"ES256", []signer{ec}, jwt.SigningMethodES256, ec},
		{"RS256", []signer{rsaKey}, jwt.SigningMethodRS256, rsaKey},
		{"PS256", []signer{rsaKey}, jwt.SigningMethodPS256, rsaKey},
		{"mixed set, ES256", []signer{rsaKey, ec}, jwt.SigningMethodES256, ec},
		{"mixed set, RS256", []signer{ec, rsaKey}, jwt.SigningMethodRS256, rsaKey},
		{"mixed set, PS256", []signer{ec, rsaKey}, jwt.SigningMethodPS256, rsaKey},
	} {
		doc := publicJWKS(t, tc.keys...)
		for _, where := range []string{"jwks document", "jwks_uri"} {
			t.Run(tc.name+" from a "+where, func(t *testing.T) {
				uri := ""
				if where == "jwks_uri" {
					uri = newJWKSHost(t, doc).URL + "/jwks.json"
				}
				id := e.jwtClientWith(doc, uri)
				a := assertion{method: tc.method, key: tc.key.key, kid: tc.key.kid, clientID: id, aud: aud}
				status, body := tokenWithAssertion(t, e.issuer, id, a.sign(t))
				wantToken(t, tc.name, status, body)
				// Without a kid the key type still picks the key.
				a.kid = ""
				status, body = tokenWithAssertion(t, e.issuer, id, a.sign(t))
				wantToken(t, tc.name+" without kid", status, body)
			})
		}
	}
}

// Algorithm confusion: an attacker who knows the client's public keys tries
// to make the server verify with the wrong algorithm or none.
func TestPrivateKeyJWT_AlgorithmConfusion(t *testing.T) {
	e := startMain(t)
	aud := e.issuer + "/token"
	ec, rsaKey := signer{"ec-1", newECKey(t)}, signer{"rsa-1", newRSAKey(t)}
	doc := publicJWKS(t, ec, rsaKey)
	pinned := signer{"rsa-pinned", newRSAKey(t)}
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(publicJWKS(t, ec, rsaKey, pinned), &set)
	set.Keys[2].Algorithm = "RS256"
	pinnedDoc, _ := json.Marshal(set)
	for _, where := range []string{"jwks document", "jwks_uri"} {
		t.Run(where, func(t *testing.T) {
			uri, pinnedURI := "", ""
			if where == "jwks_uri" {
				uri = newJWKSHost(t, doc).URL
				pinnedURI = newJWKSHost(t, pinnedDoc).URL
			}
			id := e.jwtClientWith(doc, uri)
			pinnedID := e.jwtClientWith(pinnedDoc, pinnedURI)
			rsaPEM, _ := x509.MarshalPKIXPublicKey(&rsaKey.key.(*rsa.PrivateKey).PublicKey)
			ecPEM, _ := x509.MarshalPKIXPublicKey(&ec.key.(*ecdsa.PrivateKey).PublicKey)
			for _, tc := range []struct {
				name string
				a    assertion
			}{
				{"HS256 keyed with the RSA public key (PEM)", assertion{method: jwt.SigningMethodHS256, kid: rsaKey.kid,
					key: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPEM})}},
				{"HS256 keyed with the EC public key (DER)", assertion{method: jwt.SigningMethodHS256, kid: ec.kid, key: ecPEM}},
				{"HS256 keyed with the JWKS document", assertion{method: jwt.SigningMethodHS256, key: doc}},
				{"alg none", assertion{method: jwt.SigningMethodNone, kid: ec.kid, key: jwt.UnsafeAllowNoneSignatureType}},
				{"RS256 header naming the EC key", assertion{method: jwt.SigningMethodRS256, kid: ec.kid, key: rsaKey.key}},
				{"ES256 header naming the RSA key", assertion{method: jwt.SigningMethodES256, kid: rsaKey.kid, key: ec.key}},
				{"RS384 (not accepted)", assertion{method: jwt.SigningMethodRS384, kid: rsaKey.kid, key: rsaKey.key}},
				{"a key the client does not have, under its kid", assertion{method: jwt.SigningMethodES256, kid: ec.kid, key: newECKey(t)}},
			} {
				tc.a.clientID, tc.a.aud = id, aud
				status, body := tokenWithAssertion(t, e.issuer, id, tc.a.sign(t))
				wantInvalidClient(t, tc.name, status, body)
			}
			// A key that declares alg RS256 is not used for PS256.
			a := assertion{method: jwt.SigningMethodPS256, kid: pinned.kid, key: pinned.key, clientID: pinnedID, aud: aud}
			status, body := tokenWithAssertion(t, e.issuer, pinnedID, a.sign(t))
			wantInvalidClient(t, "PS256 with a key declared RS256", status, body)
			a.method = jwt.SigningMethodRS256
			status, body = tokenWithAssertion(t, e.issuer, pinnedID, a.sign(t))
			wantToken(t, "RS256 with a key declared RS256", status, body)
		})
	}
}

// An unauthenticated stream of assertions with random kids must not turn
// into a stream of fetches of the client's jwks_uri: at most one refetch a
// minute. Today fosite's default fetcher refetches for every unknown kid.
func TestPrivateKeyJWT_RandomKidsDoNotDriveFetches(t *testing.T) {
	e := startMain(t)
	key := signer{"k1", newECKey(t)}
	host := newJWKSHost(t, sigJWKS(t, key))
	id := e.jwtClientWith(nil, host.URL+"/jwks.json")
	aud := e.issuer + "/token"

	status, body := tokenWithAssertion(t, e.issuer, id, assertion{method: jwt.SigningMethodES256, key: key.key, kid: key.kid, clientID: id, aud: aud}.sign(t))
	wantToken(t, "valid assertion", status, body)
	if n := host.hits.Load(); n != 1 {
		t.Fatalf("%d fetches for the first assertion, want 1", n)
	}
	attacker := newECKey(t)
	others := map[string]int{}
	for range 100 {
		a := assertion{method: jwt.SigningMethodES256, key: attacker, kid: "kid-" + randomString(8), clientID: id, aud: aud}
		status, body := tokenWithAssertion(t, e.issuer, id, a.sign(t))
		if status != http.StatusUnauthorized || !strings.Contains(body, `"invalid_client"`) {
			others[fmt.Sprintf("%d %.60s", status, body)]++
		}
	}
	if len(others) > 0 {
		t.Errorf("assertions with random kids not answered 401 invalid_client: %v", others)
	}
	if n := host.hits.Load(); n > 2 {
		t.Errorf("100 assertions with random kids caused %d fetches of the jwks_uri, want at most 2 (one refetch)", n)
	}
	// The cached key set still serves the real client.
	status, body = tokenWithAssertion(t, e.issuer, id, assertion{method: jwt.SigningMethodES256, key: key.key, kid: key.kid, clientID: id, aud: aud}.sign(t))
	wantToken(t, "valid assertion after the flood", status, body)
	if n := host.hits.Load(); n > 2 {
		t.Errorf("%d fetches, want at most 2", n)
	}
}

// A jwks_uri that fails, redirects or answers too much is invalid_client,
// never a 500; each host is a separate client so no cache hides a failure.
func TestPrivateKeyJWT_JWKSURIFailures(t *testing.T) {
	e := startMain(t)
	key := signer{"k1", newECKey(t)}
	aud := e.issuer + "/token"
	for _, tc := range []struct {
		name  string
		state int32
	}{{"error status", 1}, {"redirect", 2}, {"body over the limit", 3}} {
		host := newJWKSHost(t, sigJWKS(t, key))
		host.state.Store(tc.state)
		id := e.jwtClientWith(nil, host.URL)
		status, body := tokenWithAssertion(t, e.issuer, id, assertion{method: jwt.SigningMethodES256, key: key.key, kid: key.kid, clientID: id, aud: aud}.sign(t))
		wantInvalidClient(t, tc.name, status, body)
	}
	// A host that is gone.
	host := newJWKSHost(t, publicJWKS(t, key))
	id := e.jwtClientWith(nil, host.URL)
	host.Close()
	status, body := tokenWithAssertion(t, e.issuer, id, assertion{method: jwt.SigningMethodES256, key: key.key, kid: key.kid, clientID: id, aud: aud}.sign(t))
	wantInvalidClient(t, "unreachable jwks_uri", status, body)
}

// jtis are remembered per client: two clients may use the same one. An
// assertion whose exp is far ahead is refused (today it is accepted and its
// jti pinned in the replay cache for as long).
func TestPrivateKeyJWT_JTIPerClientAndBoundedExp(t *testing.T) {
	e := startMain(t)
	aud := e.issuer + "/token"
	k1, k2 := signer{"k1", newECKey(t)}, signer{"k1", newECKey(t)}
	id1, id2 := e.jwtClientWith(sigJWKS(t, k1), ""), e.jwtClientWith(sigJWKS(t, k2), "")
	jti := "shared-" + randomString(8)

	a1 := assertion{method: jwt.SigningMethodES256, key: k1.key, kid: k1.kid, clientID: id1, aud: aud, jti: jti}
	a2 := assertion{method: jwt.SigningMethodES256, key: k2.key, kid: k2.kid, clientID: id2, aud: aud, jti: jti}
	status, body := tokenWithAssertion(t, e.issuer, id1, a1.sign(t))
	wantToken(t, "client 1", status, body)
	status, body = tokenWithAssertion(t, e.issuer, id2, a2.sign(t))
	wantToken(t, "client 2, same jti", status, body)
	// A fresh assertion of client 1 that reuses its own jti is a replay.
	status, body = tokenWithAssertion(t, e.issuer, id1, a1.sign(t))
	wantInvalidClient(t, "client 1 reusing its jti", status, body)

	far := a1
	far.jti, far.exp = "", time.Now().Add(time.Hour)
	status, body = tokenWithAssertion(t, e.issuer, id1, far.sign(t))
	wantInvalidClient(t, "exp an hour ahead", status, body)
	far.exp = time.Now().Add(11 * time.Minute)
	status, body = tokenWithAssertion(t, e.issuer, id1, far.sign(t))
	wantInvalidClient(t, "exp 11 minutes ahead", status, body)
	near := a1
	near.jti, near.exp = "", time.Now().Add(9*time.Minute)
	status, body = tokenWithAssertion(t, e.issuer, id1, near.sign(t))
	wantToken(t, "exp 9 minutes ahead", status, body)

	// Without client_id the assertion's sub names the client.
	a1.jti = ""
	status, body = postForm(t, e.issuer+"/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"registry.read"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a1.sign(t)}})
	wantToken(t, "no client_id", status, body)

	// An assertion for client 1 presented as client 2 is refused.
	a1.jti = ""
	status, body = tokenWithAssertion(t, e.issuer, id2, a1.sign(t))
	wantInvalidClient(t, "client 1's assertion under client 2's id", status, body)
	// Basic authentication and an assertion together: one method only.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(url.Values{
		"grant_type": {"client_credentials"}, "client_id": {id1},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a1.sign(t)},
	}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id1, "whatever")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("two authentication methods: status %d", resp.StatusCode)
	}
}

// Every claim of an assertion is checked; each failure is invalid_client.
func TestPrivateKeyJWT_ClaimsChecked(t *testing.T) {
	e := startMain(t)
	key := signer{"k1", newECKey(t)}
	id := e.jwtClientWith(publicJWKS(t, key), "")
	aud := e.issuer + "/token"
	now := time.Now()
	sign := func(claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
		tok.Header["kid"] = key.kid
		s, err := tok.SignedString(key.key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": id, "sub": id, "aud": aud, "jti": randomString(16), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	status, body := tokenWithAssertion(t, e.issuer, id, sign(valid()))
	wantToken(t, "valid", status, body)
	for _, tc := range []struct {
		name   string
		change func(c jwt.MapClaims)
	}{
		{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }},
		{"expired", func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }},
		{"exp a day ahead", func(c jwt.MapClaims) { c["exp"] = now.Add(24 * time.Hour).Unix() }},
		{"nbf in the future", func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() }},
		{"iat in the future", func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() }},
		{"no jti", func(c jwt.MapClaims) { delete(c, "jti") }},
		{"jti too long", func(c jwt.MapClaims) { c["jti"] = strings.Repeat("j", 300) }},
		{"iss another client", func(c jwt.MapClaims) { c["iss"] = "other" }},
		{"sub another client", func(c jwt.MapClaims) { c["sub"] = "other" }},
		{"aud another server", func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example/token" }},
		{"aud the userinfo endpoint", func(c jwt.MapClaims) { c["aud"] = e.issuer + "/userinfo" }},
		{"exp not a number", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }},
	} {
		c := valid()
		tc.change(c)
		status, body := tokenWithAssertion(t, e.issuer, id, sign(c))
		wantInvalidClient(t, tc.name, status, body)
	}
	status, body = tokenWithAssertion(t, e.issuer, id, strings.Repeat("a", 9000))
	wantInvalidClient(t, "oversized assertion", status, body)
}
