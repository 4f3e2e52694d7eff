package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// deviceKey reads the enrolled device's ID and private key from the app's
// device.json, to sign assertions the way the app does (and the ways it
// must not).
func deviceKey(t testing.TB, app *eidapp.App) (string, *ecdsa.PrivateKey) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(app.Home, eidapp.DeviceFile))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		DeviceID   string `json:"device_id"`
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode([]byte(d.PrivateKey))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return d.DeviceID, k.(*ecdsa.PrivateKey)
}

// assertion signs a grant assertion with app's device key; mod edits it.
func deviceAssertion(t testing.TB, app *eidapp.App, aud string, mod func(h map[string]any, c jwt.MapClaims)) string {
	t.Helper()
	id, key := deviceKey(t, app)
	now := time.Now()
	c := jwt.MapClaims{"iss": id, "sub": id, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": randomString(16)}
	h := map[string]any{"alg": "ES256", "typ": eid.TypeGrant, "kid": id}
	if mod != nil {
		mod(h, c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header = h
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type tokenAnswer struct {
	status int
	body   map[string]any
}

func (a tokenAnswer) errorCode() string { s, _ := a.body["error"].(string); return s }

// postGrant posts form to the token endpoint, with Basic authentication
// (basic: id, secret) and, when pop is set, a DPoP proof signed by it (the
// eID app's grant needs one, by the device key: appKey); a use_dpop_nonce
// answer is retried once with its nonce. An access token issued with a
// proof is remembered (appTokens), so the helpers that send it to the API
// sign proofs for it.
func postGrant(t testing.TB, issuer string, form url.Values, pop crypto.Signer, basic ...string) tokenAnswer {
	t.Helper()
	c := &dpopClient{key: pop} // per call: the nonce is this exchange's
	for try := 0; ; try++ {
		req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if len(basic) == 2 {
			req.SetBasicAuth(basic[0], basic[1])
		}
		if pop != nil {
			req.Header.Set("DPoP", c.proof(t, http.MethodPost, issuer+"/token", ""))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("token answer %d is not JSON: %.300s", resp.StatusCode, b)
		}
		a := tokenAnswer{resp.StatusCode, m}
		if pop != nil && a.errorCode() == "use_dpop_nonce" && try == 0 {
			c.nonce = resp.Header.Get("DPoP-Nonce")
			continue
		}
		if tok, _ := m["access_token"].(string); pop != nil && tok != "" {
			api := ""
			if r := form["resource"]; len(r) == 1 && !strings.HasPrefix(r[0], issuer) {
				api = r[0]
			}
			appTokens.Store(tok, appProof{key: pop, apiURL: api})
		}
		return a
	}
}

// appKey is the device key of app, which signs its DPoP proofs.
func appKey(t testing.TB, app *eidapp.App) crypto.Signer {
	t.Helper()
	_, k := deviceKey(t, app)
	return k
}

// appTokens remembers, for each access token postGrant obtained with a
// proof (the eID app's, bound to its device key), the key and the API URL
// its proofs name, so authorize can present it as the app does.
var appTokens sync.Map // access token → appProof

type appProof struct {
	key    crypto.Signer
	apiURL string // the resource the token was minted for ("": the request's own URL)
}

// authorize sets req's Authorization for token: a token postGrant obtained
// with a DPoP proof goes with the DPoP scheme and a fresh proof by its key
// for this request (htu: the API's public URL --api-url and the path),
// anything else as a Bearer token.
func authorize(t testing.TB, req *http.Request, token string) {
	t.Helper()
	if err := authorizeReq(req, token); err != nil {
		t.Fatal(err)
	}
}

// authorizeReq is authorize for callers without a testing.TB.
func authorizeReq(req *http.Request, token string) error {
	if token == "" {
		return nil
	}
	v, ok := appTokens.Load(token)
	if !ok {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
	p := v.(appProof)
	base := p.apiURL
	if base == "" {
		base = req.URL.Scheme + "://" + req.URL.Host
	}
	proof, err := (&dpopClient{key: p.key}).sign(req.Method, base+req.URL.EscapedPath(), token)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "DPoP "+token)
	req.Header.Set("DPoP", proof)
	return nil
}

func grantForm(a string) url.Values {
	return url.Values{"grant_type": {jwtBearer}, "assertion": {a}, "client_id": {idp.EIDAppClientID}, "scope": {"openid profile eid"}}
}

func thumbprint(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	sum, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// TestEIDAppGrant: the eID app obtains its own tokens with an assertion
// signed by its device key; nobody can obtain them through a browser.
func TestEIDAppGrant(t *testing.T) {
	ctx := context.Background()
	e := startMain(t)
	tokenURL := e.issuer + "/token"
	// A device enrolled at substantial: the tokens carry the device's level.
	app := e.enroll(demoCitizens[1].PersonalID, idp.LevelSubstantial)

	t.Run("eidsim login obtains tokens for the device's citizen", func(t *testing.T) {
		toks, err := app.Login(ctx)
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		devID, key := deviceKey(t, app)
		at := jsonPart(t, toks.AccessToken, 1)
		if at["sub"] != toks.Subject || at["client_id"] != idp.EIDAppClientID || at["acr"] != string(idp.LevelSubstantial) {
			t.Errorf("access token claims = %v", at)
		}
		// The token is bound to the device key (cnf.jkt) and names the device
		// (did), so revoking the device denies it.
		if cnf, _ := at["cnf"].(map[string]any); cnf == nil || cnf["jkt"] != thumbprint(t, key) {
			t.Errorf("cnf = %v, want jkt %s", at["cnf"], thumbprint(t, key))
		}
		if at["did"] != devID || at["kind"] != "citizen" {
			t.Errorf("did, kind = %v, %v, want %s, citizen", at["did"], at["kind"], devID)
		}
		idt := jsonPart(t, toks.IDToken, 1)
		amr, _ := idt["amr"].([]any)
		aud, _ := idt["aud"].([]any)
		if idt["acr"] != string(idp.LevelSubstantial) || !slices.Contains(amr, any("hwk")) || !slices.Equal(aud, []any{idp.EIDAppClientID}) {
			t.Errorf("ID token claims = %v", idt)
		}

		// A device-bound token: userinfo wants it with a DPoP proof by the
		// device key (RFC 9449 section 7).
		status, _, ui := userinfoWith(t, e.issuer, "DPoP", toks.AccessToken, &dpopClient{key: key})
		if status != http.StatusOK || ui["sub"] != toks.Subject || ui["personal_id"] != demoCitizens[1].PersonalID || ui["family_name"] != demoCitizens[1].FamilyName {
			t.Errorf("userinfo = %d %v", status, ui)
		}
	})

	t.Run("no refresh token; a replayed assertion is invalid_grant", func(t *testing.T) {
		a := deviceAssertion(t, app, tokenURL, nil)
		got := postGrant(t, e.issuer, grantForm(a), appKey(t, app))
		if got.status != http.StatusOK || got.body["access_token"] == nil || got.body["id_token"] == nil {
			t.Fatalf("grant = %d %v", got.status, got.body)
		}
		if _, ok := got.body["refresh_token"]; ok {
			t.Errorf("the grant issued a refresh token")
		}
		if got := postGrant(t, e.issuer, grantForm(a), appKey(t, app)); got.status != http.StatusBadRequest || got.errorCode() != "invalid_grant" {
			t.Errorf("replay = %d %v, want invalid_grant", got.status, got.body)
		}
	})

	// No unbound app token exists: the grant needs a proof by the device
	// key, checked before the assertion is spent.
	t.Run("a grant without a DPoP proof is refused", func(t *testing.T) {
		a := deviceAssertion(t, app, tokenURL, nil)
		got := postGrant(t, e.issuer, grantForm(a), nil)
		if got.status != http.StatusBadRequest || got.errorCode() != "invalid_dpop_proof" || got.body["access_token"] != nil {
			t.Fatalf("grant without a proof = %d %v, want 400 invalid_dpop_proof", got.status, got.body)
		}
		if got := postGrant(t, e.issuer, grantForm(a), appKey(t, app)); got.status != http.StatusOK || got.body["token_type"] != "DPoP" {
			t.Errorf("the same assertion with a proof = %d %v, want 200 DPoP", got.status, got.body)
		} else if cnfOf(t, got.body["access_token"].(string)) != thumbprint(t, appKey(t, app).(*ecdsa.PrivateKey)) {
			t.Errorf("the app's token is not bound to the device key")
		}
	})
	t.Run("a proof by another key than the device's is refused", func(t *testing.T) {
		got := postGrant(t, e.issuer, grantForm(deviceAssertion(t, app, tokenURL, nil)), newDPoPClient(t).key)
		if got.status != http.StatusBadRequest || got.errorCode() != "invalid_dpop_proof" || got.body["access_token"] != nil {
			t.Errorf("grant with another key's proof = %d %v, want 400 invalid_dpop_proof", got.status, got.body)
		}
	})

	agencyID, agencySecret := e.client(ClientSpec{GrantTypes: []string{"authorization_code"}, Scope: "openid profile"})
	refused := []struct {
		name  string
		form  func() url.Values
		basic []string
		want  string
	}{
		{"aud is the issuer", func() url.Values { return grantForm(deviceAssertion(t, app, e.issuer, nil)) }, nil, "invalid_grant"},
		{"aud of another server", func() url.Values { return grantForm(deviceAssertion(t, app, "https://evil.test/token", nil)) }, nil, "invalid_grant"},
		{"device token typ", func() url.Values {
			return grantForm(deviceAssertion(t, app, tokenURL, func(h map[string]any, _ jwt.MapClaims) { h["typ"] = eid.TypeDeviceToken }))
		}, nil, "invalid_grant"},
		{"approval typ", func() url.Values {
			return grantForm(deviceAssertion(t, app, tokenURL, func(h map[string]any, _ jwt.MapClaims) { h["typ"] = eid.TypeApproval }))
		}, nil, "invalid_grant"},
		{"expired", func() url.Values {
			return grantForm(deviceAssertion(t, app, tokenURL, func(_ map[string]any, c jwt.MapClaims) {
				c["iat"], c["exp"] = time.Now().Add(-3*time.Minute).Unix(), time.Now().Add(-2*time.Minute).Unix()
			}))
		}, nil, "invalid_grant"},
		{"lifetime over two minutes", func() url.Values {
			return grantForm(deviceAssertion(t, app, tokenURL, func(_ map[string]any, c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() }))
		}, nil, "invalid_grant"},
		{"ES384 header", func() url.Values {
			return grantForm(deviceAssertion(t, app, tokenURL, func(h map[string]any, _ jwt.MapClaims) { h["alg"] = "ES384" }))
		}, nil, "invalid_grant"},
		{"unknown device", func() url.Values {
			return grantForm(deviceAssertion(t, app, tokenURL, func(h map[string]any, c jwt.MapClaims) {
				h["kid"], c["iss"], c["sub"] = "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA"
			}))
		}, nil, "invalid_grant"},
		{"garbage assertion", func() url.Values { return grantForm("a.b.c") }, nil, "invalid_grant"},
		{"no assertion", func() url.Values { f := grantForm(""); f.Del("assertion"); return f }, nil, "invalid_request"},
		{"offline_access", func() url.Values {
			f := grantForm(deviceAssertion(t, app, tokenURL, nil))
			f.Set("scope", "openid offline_access")
			return f
		}, nil, "invalid_scope"},
		{"scope the app's client did not register", func() url.Values {
			f := grantForm(deviceAssertion(t, app, tokenURL, nil))
			f.Set("scope", "openid registry.read")
			return f
		}, nil, "invalid_scope"},
		{"no client_id", func() url.Values {
			f := grantForm(deviceAssertion(t, app, tokenURL, nil))
			f.Del("client_id")
			return f
		}, nil, "invalid_client"},
		{"an agency client", func() url.Values {
			f := grantForm(deviceAssertion(t, app, tokenURL, nil))
			f.Del("client_id")
			return f
		}, []string{agencyID, agencySecret}, "unauthorized_client"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			got := postGrant(t, e.issuer, tt.form(), appKey(t, app), tt.basic...)
			if got.status >= 500 || got.errorCode() != tt.want {
				t.Errorf("answer = %d %v, want %s", got.status, got.body, tt.want)
			}
		})
	}

	t.Run("a revoked device obtains nothing", func(t *testing.T) {
		// Enrolled at the level of the device that revokes it: a device may
		// not revoke a better-proven one.
		lost := e.enroll(demoCitizens[1].PersonalID, idp.LevelSubstantial)
		presigned := deviceAssertion(t, lost, tokenURL, nil)
		if _, err := lost.Login(ctx); err != nil {
			t.Fatalf("login before revocation: %v", err)
		}
		// The citizen revokes the lost phone from another device.
		if err := app.RevokeDevice(ctx, lost.Enrollment().DeviceID); err != nil {
			t.Fatal(err)
		}
		_, err := lost.Login(ctx)
		if ae, ok := errors.AsType[*eidapp.Error](err); !ok || ae.Code != "invalid_grant" {
			t.Errorf("login after revocation: %v, want invalid_grant", err)
		}
		if got := postGrant(t, e.issuer, grantForm(presigned), appKey(t, lost)); got.errorCode() != "invalid_grant" {
			t.Errorf("assertion signed before the revocation = %d %v, want invalid_grant", got.status, got.body)
		}
	})

	t.Run("authorize for the app's client is refused", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := url.Values{
			"client_id": {idp.EIDAppClientID}, "response_type": {"code"}, "scope": {"openid profile eid"},
			"state": {randomString(12)}, "nonce": {randomString(12)},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
		}
		for _, redirect := range []string{"vn.onedoor.eid:/callback", "https://evil.test/cb", ""} {
			q := cloneValues(q)
			if redirect != "" {
				q.Set("redirect_uri", redirect)
			}
			resp, err := newBrowser().Get(e.issuer + "/authorize?" + q.Encode())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode >= 500 || strings.Contains(string(body), `id="eid-qr"`) {
				t.Errorf("redirect_uri %q: status %d, body %.200s; want an error, never a QR page", redirect, resp.StatusCode, body)
			}
			if loc := resp.Header.Get("Location"); loc != "" {
				t.Errorf("redirect_uri %q: redirected to %q", redirect, loc)
			}
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "invalid_request") {
				t.Errorf("redirect_uri %q: status %d, want 400 invalid_request; body %.300s", redirect, resp.StatusCode, body)
			}
		}
		// Nor through a pushed request.
		form := cloneValues(q)
		form.Set("redirect_uri", "vn.onedoor.eid:/callback")
		resp, err := http.PostForm(e.issuer+"/par", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("PAR for the app's client: status %d, want 400", resp.StatusCode)
		}
	})

	t.Run("refresh tokens issued before the migration stop working", func(t *testing.T) {
		migrated, err := e.m.Store.GetClient(ctx, idp.EIDAppClientID)
		if err != nil {
			t.Fatal(err)
		}
		// The client as migration 0001 created it, and a refresh token it
		// obtained through the browser flow.
		old := *migrated
		old.GrantTypes = []string{"authorization_code", "refresh_token"}
		old.RedirectURIs = []string{"vn.onedoor.eid:/callback"}
		old.Scopes = []string{"openid", "profile", "eid", "offline_access", "phone", "address"}
		setClient(t, e, &old)
		conf := &oauth2.Config{ClientID: idp.EIDAppClientID, RedirectURL: "vn.onedoor.eid:/callback", Scopes: []string{"openid", "offline_access"},
			Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/authorize", TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}}
		state, verifier := randomString(12), oauth2.GenerateVerifier()
		loc := e.login(newBrowser(), conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", randomString(12))), app, nil)
		// A public client's refresh token is DPoP-bound: the exchange
		// carries a proof.
		pop := newDPoPClient(t)
		form := codeForm(loc.Query().Get("code"), verifier)
		form.Set("redirect_uri", conf.RedirectURL)
		form.Set("client_id", idp.EIDAppClientID)
		tok := dpopToken(t, e.issuer, "", "", form, pop)
		if tok.status != http.StatusOK || tok.str("refresh_token") == "" {
			t.Fatalf("old browser flow: %d %v", tok.status, tok.body)
		}
		setClient(t, e, migrated) // what migration 0004 leaves
		got := dpopToken(t, e.issuer, "", "", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {idp.EIDAppClientID}}, pop)
		if got.status != http.StatusBadRequest || (got.str("error") != "unauthorized_client" && got.str("error") != "invalid_grant") {
			t.Errorf("refresh after the migration = %d %v, want refused", got.status, got.body)
		}
	})
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

func setClient(t *testing.T, e *testEnv, c *idp.Client) {
	t.Helper()
	ctx := context.Background()
	if err := e.m.Store.DeleteClient(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Store.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// The eID app obtains tokens for the mobile API (RFC 8707 resource = the
// API's URL, a known resource by default): they are minted for that
// audience alone, so the API accepts them and the IdP's userinfo does not.
func TestEIDAppGrant_ForTheMobileAPI(t *testing.T) {
	e := startMain(t)
	api := e.m.APIURL
	tokenURL := e.issuer + "/token"
	grant := func(resources ...string) tokenAnswer {
		form := grantForm(deviceAssertion(t, e.app, tokenURL, nil))
		form["resource"] = resources
		return postGrant(t, e.issuer, form, appKey(t, e.app))
	}
	a := grant(api)
	tok, _ := a.body["access_token"].(string)
	if tok == "" {
		t.Fatalf("grant for the API: %v", a.body)
	}
	if aud := audOf(t, tok); !slices.Equal(aud, []string{api}) {
		t.Errorf("aud = %v, want [%s]", aud, api)
	}
	if _, err := e.m.Provider.Verifier.VerifyFor(context.Background(), tok, accesstoken.Expect{Audience: api, Kind: accesstoken.KindCitizen}); err != nil {
		t.Errorf("the API's verifier refuses its own token: %v", err)
	}
	mustUserinfo(t, e.issuer, tok, false, "a token minted for the API")

	a = grant(api, e.issuer+"/userinfo")
	tok, _ = a.body["access_token"].(string)
	if aud := audOf(t, tok); len(aud) != 2 {
		t.Errorf("two resources: aud = %v", aud)
	}
	// The device-bound token, with a proof by the device key.
	_, key := deviceKey(t, e.app)
	if st, _, body := userinfoWith(t, e.issuer, "DPoP", tok, &dpopClient{key: key}); st != http.StatusOK {
		t.Errorf("a token minted for the API and userinfo: userinfo %d %v, want 200", st, body)
	}

	if a := grant("https://evil.example/api"); a.errorCode() != "invalid_target" {
		t.Errorf("unknown resource: %v, want invalid_target", a.body)
	}
}
