package eidapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// APITokensFile caches, in the app's home (mode 0600), the access tokens
// minted for resource servers such as the mobile API, by resource.
const APITokensFile = "api-tokens.json" //nolint:gosec // a file name, not a credential

// apiTokenMargin is how long before its expiry a cached token is replaced,
// so a request never leaves with a token that expires on the way.
const apiTokenMargin = 30 * time.Second

// APIToken is an access token minted for one resource server alone.
type APIToken struct {
	AccessToken string    `json:"access_token"`
	Scope       string    `json:"scope,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// APIToken returns an access token of the device's citizen minted for the
// resource server api alone (RFC 8707 resource), with every scope the app's
// client registered. A cached token is used until shortly before it
// expires; then the app signs a new grant assertion and caches the answer.
func (a *App) APIToken(ctx context.Context, api string) (*APIToken, error) {
	t, _, err := a.apiToken(ctx, api)
	return t, err
}

// apiToken is APIToken, telling whether the token came from the cache.
func (a *App) apiToken(ctx context.Context, api string) (*APIToken, bool, error) {
	api, err := resourceURL(api)
	if err != nil {
		return nil, false, err
	}
	cache, err := a.apiTokens()
	if err != nil {
		return nil, false, err
	}
	if t, ok := cache[api]; ok && t.AccessToken != "" && a.now().Add(apiTokenMargin).Before(t.ExpiresAt) {
		return t, true, nil
	}
	t, err := a.newAPIToken(ctx, api, cache)
	return t, false, err
}

// ForgetAPIToken drops the cached token of api, so the next APIToken mints
// a new one (after the API refused it: a revoked grant, rotated keys).
func (a *App) ForgetAPIToken(api string) error {
	api, err := resourceURL(api)
	if err != nil {
		return err
	}
	cache, err := a.apiTokens()
	if err != nil {
		return err
	}
	if _, ok := cache[api]; !ok {
		return nil
	}
	delete(cache, api)
	return a.saveAPITokens(cache)
}

func (a *App) newAPIToken(ctx context.Context, api string, cache map[string]*APIToken) (*APIToken, error) {
	d, err := a.device()
	if err != nil {
		return nil, err
	}
	disc, err := a.discover(ctx, d.IDP)
	if err != nil {
		return nil, err
	}
	start := a.now() // the token's lifetime counts from before the request
	tr, err := a.grant(ctx, d, disc, url.Values{"resource": {api}})
	if err != nil {
		return nil, err
	}
	t := &APIToken{AccessToken: tr.AccessToken, Scope: tr.Scope, ExpiresAt: start.Add(time.Duration(tr.ExpiresIn) * time.Second).UTC()}
	cache[api] = t
	if err := a.saveAPITokens(cache); err != nil {
		return nil, err
	}
	return t, nil
}

// apiTokens loads api-tokens.json; no file is an empty cache.
func (a *App) apiTokens() (map[string]*APIToken, error) {
	b, err := os.ReadFile(filepath.Join(a.Home, APITokensFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*APIToken{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("eid app API tokens: %w", err)
	}
	cache := map[string]*APIToken{}
	if err := json.Unmarshal(b, &cache); err != nil {
		// A cache is worth nothing once damaged: start afresh.
		return map[string]*APIToken{}, nil //nolint:nilerr // see above
	}
	return cache, nil
}

func (a *App) saveAPITokens(cache map[string]*APIToken) error {
	b, err := json.MarshalIndent(cache, "", "  ") //nolint:gosec // api-tokens.json is where these tokens live, mode 0600
	if err != nil {
		return fmt.Errorf("encode API tokens: %w", err)
	}
	return writePrivate(filepath.Join(a.Home, APITokensFile), b)
}

// DoAPI sends req to the resource server api with the citizen's access token
// for it (APIToken), unless req already carries an Authorization header.
// When the server answers 401 to a cached token, the token is dropped and
// the request sent once more with a new one; that needs req.GetBody for a
// request with a body (http.NewRequest sets it for in-memory bodies).
func (a *App) DoAPI(ctx context.Context, api string, req *http.Request) (*http.Response, error) {
	if err := underAPI(api, req.URL); err != nil {
		return nil, err
	}
	if req.Header.Get("Authorization") != "" {
		return a.client().Do(req.WithContext(ctx)) //nolint:gosec // checked to be beneath the API URL above
	}
	tok, cached, err := a.apiToken(ctx, api)
	if err != nil {
		return nil, err
	}
	resp, err := a.sendWith(ctx, req, tok.AccessToken)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !cached || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	// The API refused a token the cache still deemed valid (its grant or
	// device revoked, the IdP's keys replaced): mint another and send the
	// request once more.
	resp.Body.Close()
	if err := a.ForgetAPIToken(api); err != nil {
		return nil, err
	}
	if tok, err = a.APIToken(ctx, api); err != nil {
		return nil, err
	}
	retry := req.Clone(ctx)
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
		}
	}
	return a.sendWith(ctx, retry, tok.AccessToken)
}

// sendWith sends req with the device-bound token and a DPoP proof by the
// device key for this request and token (RFC 9449 section 7). When the
// server asks for a nonce of its own in the proof (use_dpop_nonce with a
// DPoP-Nonce header, as OneDoor's embedded default does right after a
// restart), the request is sent once more with a proof carrying it; that
// needs req.GetBody for a request with a body.
func (a *App) sendWith(ctx context.Context, req *http.Request, token string) (*http.Response, error) {
	d, err := a.device()
	if err != nil {
		return nil, err
	}
	nonce := ""
	for try := 0; ; try++ {
		proof, err := a.dpopProof(d, req.Method, req.URL.String(), token, nonce)
		if err != nil {
			return nil, err
		}
		r := req.Clone(ctx) // the body is shared, not copied
		if try > 0 && req.GetBody != nil {
			if r.Body, err = req.GetBody(); err != nil {
				return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
			}
		}
		r.Header.Set("Authorization", "DPoP "+token)
		r.Header.Set("DPoP", proof)
		resp, err := a.client().Do(r) //nolint:gosec // DoAPI checked it is beneath the API URL
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
		}
		n := resp.Header.Get("DPoP-Nonce")
		if try > 0 || n == "" || resp.StatusCode != http.StatusUnauthorized || !asksForNonce(resp) || (req.Body != nil && req.GetBody == nil) {
			return resp, nil
		}
		resp.Body.Close()
		nonce = n
	}
}

// asksForNonce reports whether a 401 is the DPoP challenge use_dpop_nonce.
func asksForNonce(resp *http.Response) bool {
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		if strings.Contains(h, `error="use_dpop_nonce"`) {
			return true
		}
	}
	return false
}

// resourceURL checks a resource server's URL (absolute http(s), no query or
// fragment) and drops a trailing slash, as the IdP does with --api-url.
func resourceURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "#") {
		return "", fmt.Errorf("API URL %q must be an absolute http(s) URL without query", s)
	}
	return strings.TrimRight(s, "/"), nil
}

// underAPI insists that u is on api's origin and beneath its path, so the
// citizen's token goes nowhere else.
func underAPI(api string, u *url.URL) error {
	api, err := resourceURL(api)
	if err != nil {
		return err
	}
	base, _ := url.Parse(api) // parsed by resourceURL
	dots := slices.ContainsFunc(strings.Split(u.Path, "/"), func(s string) bool { return s == "." || s == ".." })
	if dots || u.Scheme != base.Scheme || u.Host != base.Host || !strings.HasPrefix(u.EscapedPath(), base.EscapedPath()+"/") {
		return fmt.Errorf("%s is not beneath the API URL %s", u.Redacted(), api)
	}
	return nil
}
