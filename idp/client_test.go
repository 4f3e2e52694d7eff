package idp

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestValidRedirectURI(t *testing.T) {
	for _, tt := range []struct {
		uri string
		ok  bool
	}{
		{"https://agency.gov.vn/callback", true},
		{"http://localhost:8090/callback", true},
		{"http://127.0.0.1:9/cb", true},
		{"http://[::1]/cb", true},
		{"vn.onedoor.eid:/callback", true},
		{"http://agency.gov.vn/callback", false},
		{"https://agency.gov.vn/cb#frag", false},
		{"https://*.gov.vn/cb", false},
		{"myapp:/cb", false},
		{"/relative", false},
		{"javascript:alert(1)", false},
		{"https:///nohost", false},
		{"https://user:pass@agency.gov.vn/cb", false},
		{"https://user@agency.gov.vn/cb", false},
		{"http://user:pass@127.0.0.1:9/cb", false},
	} {
		if err := ValidRedirectURI(tt.uri); (err == nil) != tt.ok {
			t.Errorf("ValidRedirectURI(%q) = %v, want ok=%v", tt.uri, err, tt.ok)
		}
	}
}

func TestClient_RedirectURIAllowed(t *testing.T) {
	registered := []string{"https://agency.gov.vn/cb", "http://127.0.0.1:9/cb", "http://[::1]/cb?x=1", "http://localhost:8080/cb", "vn.agency.app:/cb"}
	confidential := Client{AuthMethod: AuthSecretBasic, RedirectURIs: registered}
	public := Client{AuthMethod: AuthNone, RedirectURIs: append(registered, "http://user:pw@127.0.0.1/legacy")}
	for _, tt := range []struct {
		uri                  string
		confidential, public bool
	}{
		{"https://agency.gov.vn/cb", true, true},
		{"http://127.0.0.1:9/cb", true, true},
		{"vn.agency.app:/cb", true, true},
		// The loopback port exception is for public native clients only.
		{"http://127.0.0.1:54321/cb", false, true},
		{"http://127.0.0.1/cb", false, true},
		{"http://[::1]:4000/cb?x=1", false, true},
		{"http://[::1]:4000/cb?x=2", false, false},
		{"http://127.0.0.1:54321/other", false, false},
		{"http://127.0.0.2:9/cb", false, false},
		// localhost is a name, not a loopback IP literal (RFC 8252 8.3).
		{"http://localhost:8081/cb", false, false},
		{"https://agency.gov.vn:8443/cb", false, false},
		{"https://agency.gov.vn/cb/", false, false},
		{"https://AGENCY.gov.vn/cb", false, false},
		{"https://agency.gov.vn/cb?x=1", false, false},
		// Never userinfo, registered or not.
		{"https://user:pass@agency.gov.vn/cb", false, false},
		{"http://user:pass@127.0.0.1:9/cb", false, false},
		{"http://user:pw@127.0.0.1/legacy", false, false},
		{"http://127.0.0.1:5555/legacy", false, false},
		{"https://agency.gov.vn/cb#x", false, false},
	} {
		if got := confidential.RedirectURIAllowed(tt.uri); got != tt.confidential {
			t.Errorf("confidential client, %q: allowed = %v, want %v", tt.uri, got, tt.confidential)
		}
		if got := public.RedirectURIAllowed(tt.uri); got != tt.public {
			t.Errorf("public client, %q: allowed = %v, want %v", tt.uri, got, tt.public)
		}
	}
}

// FuzzValidRedirectURI: an accepted URI is absolute, has no fragment and is
// https, loopback http or a reverse-domain private scheme.
func FuzzValidRedirectURI(f *testing.F) {
	for _, s := range []string{"https://a.example/cb", "http://localhost/cb", "vn.app:/cb", "http://127.0.0.1.evil.example/", "https://a.example/cb#x", "HTTP://LOCALHOST/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidRedirectURI(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(raw, "#") || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		switch u.Scheme {
		case "https":
			if u.Host == "" {
				t.Fatalf("accepted https without host: %q", raw)
			}
		case "http":
			if !Loopback(u.Hostname()) {
				t.Fatalf("accepted non-loopback http: %q", raw)
			}
		default:
			if !strings.Contains(u.Scheme, ".") {
				t.Fatalf("accepted scheme %q", u.Scheme)
			}
		}
	})
}

func TestClientValidate(t *testing.T) {
	ok := Client{ID: "agency-1", Name: "Agency", RedirectURIs: []string{"https://a.example/cb"}, GrantTypes: []string{"authorization_code"},
		Scopes: []string{"openid"}, AuthMethod: AuthSecretBasic, SecretHash: []byte{1}, IDTokenAlg: "ES256"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid client: %v", err)
	}
	bad := ok
	bad.AuthMethod = AuthNone
	bad.GrantTypes = []string{"client_credentials"}
	bad.IDTokenAlg = "HS256"
	err := bad.Validate()
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "public client") || !strings.Contains(err.Error(), "ES256 or RS256") {
		t.Errorf("Validate = %v; want every problem", err)
	}
	pkj := ok
	pkj.AuthMethod, pkj.SecretHash = AuthPrivateKeyJWT, nil
	if err := pkj.Validate(); err == nil {
		t.Error("private_key_jwt without keys accepted")
	}
	for uri, valid := range map[string]bool{
		"https://agency.example/jwks.json":           true,
		"http://127.0.0.1:8080/jwks.json":            true,
		"http://agency.example/jwks.json":            false,
		"https://user:pass@agency.example/jwks.json": false,
		"ftp://agency.example/jwks.json":             false,
	} {
		pkj.JWKSURI = uri
		if err := pkj.Validate(); (err == nil) != valid {
			t.Errorf("JWKS URI %q: Validate = %v, want valid=%v", uri, err, valid)
		}
	}
}

func TestCitizenNormalize(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"0912345678", "+84912345678"},
		{"0912 345 678", "+84912345678"},
		{"84912345678", "+84912345678"},
		{"+84912345678", "+84912345678"},
		{"(028) 3822-1234", "+842838221234"},
		{"12345", "12345"},
		{"", ""},
	} {
		if got := NormalizePhone(tt.in); got != tt.want {
			t.Errorf("NormalizePhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	c := Citizen{PersonalID: " 000000000001 ", FamilyName: " Lê", GivenName: "Văn Demo ", Birthdate: "1990-01-01", Gender: "Nam", PhoneNumber: "0912345678"}
	c.Normalize()
	if err := c.Validate(); err != nil || c.Gender != "male" || c.FamilyName != "Lê" {
		t.Errorf("normalised %+v: %v", c, err)
	}
}

// The JWT-bearer grant answers a device assertion with the device owner's
// tokens: an agency client that registered it could mint citizens' tokens.
func TestClientValidate_JWTBearerOnlyForTheEIDApp(t *testing.T) {
	app := Client{ID: EIDAppClientID, Name: "OneDoor eID app", GrantTypes: []string{GrantTypeJWTBearer},
		Scopes: []string{"openid"}, AuthMethod: AuthNone, IDTokenAlg: "ES256"}
	if err := app.Validate(); err != nil {
		t.Fatalf("the eID app's client: %v", err)
	}
	for name, mod := range map[string]func(c *Client){
		"agency client": func(c *Client) { c.ID = "agency-1" },
		"with authorization_code": func(c *Client) {
			c.GrantTypes = append(c.GrantTypes, "authorization_code")
			c.RedirectURIs = []string{"vn.onedoor.eid:/callback"}
		},
		"confidential": func(c *Client) { c.AuthMethod, c.SecretHash = AuthSecretBasic, []byte{1} },
	} {
		c := app
		c.GrantTypes = append([]string(nil), app.GrantTypes...)
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "JWT-bearer") {
			t.Errorf("%s: Validate = %v, want a JWT-bearer refusal", name, err)
		}
	}
}

func TestClient_ApplyDefaults(t *testing.T) {
	c := &Client{Name: "Agency", Scopes: []string{"openid", "offline_access"}, RedirectURIs: []string{"https://a.example/cb"}}
	c.ApplyDefaults()
	if len(c.ID) != 24 || c.AuthMethod != AuthSecretBasic || c.IDTokenAlg != "ES256" || strings.Join(c.GrantTypes, " ") != "authorization_code refresh_token" {
		t.Errorf("defaults: %+v", c)
	}
	d := &Client{}
	d.ApplyDefaults()
	if strings.Join(d.Scopes, " ") != "openid profile" || strings.Join(d.GrantTypes, " ") != "authorization_code" || d.ID == c.ID {
		t.Errorf("defaults of an empty registration: %+v", d)
	}
	set := &Client{ID: "x", AuthMethod: AuthNone, IDTokenAlg: "RS256", Scopes: []string{"registry.read"}, GrantTypes: []string{"client_credentials"}}
	set.ApplyDefaults()
	if set.ID != "x" || set.AuthMethod != AuthNone || set.IDTokenAlg != "RS256" || len(set.Scopes) != 1 || len(set.GrantTypes) != 1 {
		t.Errorf("defaults overwrote what the operator set: %+v", set)
	}
}

func TestClientSecret(t *testing.T) {
	a, b := NewClientSecret(), NewClientSecret()
	if len(a) != 43 || a == b {
		t.Errorf("secrets %q, %q: want two distinct 256-bit base64url values", a, b)
	}
	key := []byte("k1")
	if h := HashClientSecret(key, a); len(h) != 32 || string(h) != string(HashClientSecret(key, a)) ||
		string(h) == string(HashClientSecret([]byte("k2"), a)) || string(h) == string(HashClientSecret(key, b)) {
		t.Error("HashClientSecret is not a keyed, deterministic 256-bit hash")
	}
}

func TestClient_ValidateClaims(t *testing.T) {
	base := Client{ID: "c", Name: "C", AuthMethod: AuthNone, IDTokenAlg: "ES256", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://a.example/cb"}}
	for _, tt := range []struct {
		claims []string
		want   string
	}{
		{[]string{"name", "phone_number", "personal_id"}, ""},
		{[]string{"salary"}, `claim "salary" is not a registry claim`},
		{[]string{"name", "name"}, `claim "name" is listed twice`},
		{[]string{"sub"}, `claim "sub" is not a registry claim`},
	} {
		c := base
		c.Claims = tt.claims
		err := c.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("claims %v: got %v, want %q", tt.claims, err, tt.want)
		}
	}
	if got := ParseClaimList("name, phone_number,,personal_id"); strings.Join(got, " ") != "name phone_number personal_id" {
		t.Errorf("ParseClaimList = %q", got)
	}
}

// The agency scope is an agency's own access: only a client bound to an
// agency may register it, and only for client_credentials, so no citizen's
// token (a code or refresh grant) can carry it.
func TestClientValidate_Agency(t *testing.T) {
	base := Client{ID: "hn-backend", Name: "Hoan Kiem back end", GrantTypes: []string{"client_credentials"}, Scopes: []string{ScopeAgency},
		AuthMethod: AuthSecretBasic, SecretHash: []byte{1}, IDTokenAlg: "ES256", Agency: "HN-HOANKIEM"}
	for _, tt := range []struct {
		name string
		mod  func(c *Client)
		want string // "" valid
	}{
		{"bound, client_credentials", func(*Client) {}, ""},
		{"bound, other scopes too", func(c *Client) { c.Scopes = []string{ScopeAgency, "registry.read"} }, ""},
		{"bound without the scope", func(c *Client) { c.Scopes = []string{"registry.read"} }, ""},
		{"bound, logging citizens in", func(c *Client) {
			c.Scopes, c.GrantTypes, c.RedirectURIs = []string{"openid"}, []string{"authorization_code", "client_credentials"}, []string{"https://a.example/cb"}
		}, ""},
		{"short code", func(c *Client) { c.Agency = "B" }, ""},
		{"the scope without an agency", func(c *Client) { c.Agency = "" }, "agency scope needs a client bound to an agency"},
		{"the scope with authorization_code", func(c *Client) {
			c.GrantTypes, c.RedirectURIs = []string{"client_credentials", "authorization_code"}, []string{"https://a.example/cb"}
		}, "granted only by client_credentials"},
		{"the scope with authorization_code alone", func(c *Client) {
			c.GrantTypes, c.RedirectURIs = []string{"authorization_code"}, []string{"https://a.example/cb"}
		}, "granted only by client_credentials"},
		{"malformed code", func(c *Client) { c.Agency = "-HN" }, "agency must be an agency code"},
		{"code with a space", func(c *Client) { c.Agency = "HN HK" }, "agency must be an agency code"},
		{"code too long", func(c *Client) { c.Agency = strings.Repeat("A", 65) }, "agency must be an agency code"},
	} {
		c := base
		tt.mod(&c)
		err := c.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Validate = %v, want %q", tt.name, err, tt.want)
		}
	}
	// Registering only the agency scope defaults to client_credentials.
	d := &Client{Name: "X", Scopes: []string{ScopeAgency}, Agency: "BTP"}
	d.ApplyDefaults()
	if strings.Join(d.GrantTypes, " ") != "client_credentials" {
		t.Errorf("default grant types for scope agency: %v", d.GrantTypes)
	}
	if !ValidAgencyCode("HN-HOANKIEM") || !ValidAgencyCode("btp.01_x") || ValidAgencyCode("") || ValidAgencyCode("ä") {
		t.Error("ValidAgencyCode")
	}
}

// A client that cannot send a browser anywhere (no authorization_code) may
// not register redirect URIs: they would be a mistake nobody notices.
func TestClientValidate_RedirectURIsNeedTheCodeGrant(t *testing.T) {
	c := &Client{ID: "svc", Name: "Service", GrantTypes: []string{"client_credentials"}, AuthMethod: AuthSecretBasic,
		RedirectURIs: []string{"https://agency.example/cb"}, SecretHash: []byte("h"), IDTokenAlg: "ES256"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "redirect URIs are only for clients with the authorization_code grant") {
		t.Fatalf("redirect URI on a client_credentials client: %v", err)
	}
	c.RedirectURIs = nil
	if err := c.Validate(); err != nil {
		t.Fatalf("plain client_credentials client: %v", err)
	}
}

// Only the IdP's scopes and namespaced API scopes may be registered: a
// mistyped or assumed OIDC scope is refused with the rule.
func TestClientValidate_UnknownScopes(t *testing.T) {
	for scope, known := range map[string]bool{
		"openid": true, "profile": true, "address": true, "phone": true, "eid": true, "offline_access": true, "agency": true,
		"registry.read": true, "records:write": true, "https://api.example.gov.vn/records": true,
		"email": false, "profil": false, "admin": false, "registry": false,
	} {
		c := &Client{ID: "svc", Name: "Service", GrantTypes: []string{"client_credentials"}, AuthMethod: AuthSecretBasic,
			SecretHash: []byte("h"), IDTokenAlg: "ES256", Scopes: []string{scope}}
		if scope == ScopeAgency {
			c.Agency = "BTP"
		}
		err := c.Validate()
		if known && err != nil {
			t.Errorf("scope %q refused: %v", scope, err)
		}
		if !known && (err == nil || !strings.Contains(err.Error(), "registry.read")) {
			t.Errorf("scope %q: Validate = %v, want a refusal naming the accepted scopes", scope, err)
		}
	}
}

func TestClientValidate_PostLogoutURIsNeedTheCodeGrant(t *testing.T) {
	c := &Client{ID: "svc", Name: "Service", GrantTypes: []string{"client_credentials"}, AuthMethod: AuthSecretBasic,
		PostLogoutRedirectURIs: []string{"https://agency.example/"}, SecretHash: []byte("h"), IDTokenAlg: "ES256"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "post-logout redirect URIs are only for clients with the authorization_code grant") {
		t.Fatalf("post-logout redirect URI on a client_credentials client: %v", err)
	}
}

func TestClientValidate_CIBA(t *testing.T) {
	base := Client{ID: "counter", Name: "Counter", GrantTypes: []string{GrantTypeCIBA}, Scopes: []string{"openid"},
		AuthMethod: AuthSecretBasic, SecretHash: []byte{1}, IDTokenAlg: "ES256", BackchannelTokenDeliveryMode: CIBAModePoll}
	if err := base.Validate(); err != nil {
		t.Fatalf("poll client: %v", err)
	}
	ping := base
	ping.BackchannelTokenDeliveryMode, ping.BackchannelClientNotificationEndpoint = CIBAModePing, "http://127.0.0.1:8080/ciba"
	if err := ping.Validate(); err != nil {
		t.Fatalf("ping client on loopback: %v", err)
	}
	for name, mod := range map[string]func(c *Client){
		"public":                func(c *Client) { c.AuthMethod, c.SecretHash = AuthNone, nil },
		"no mode":               func(c *Client) { c.BackchannelTokenDeliveryMode = "" },
		"push mode":             func(c *Client) { c.BackchannelTokenDeliveryMode = "push" },
		"ping without endpoint": func(c *Client) { c.BackchannelTokenDeliveryMode = CIBAModePing },
		"ping over plain http": func(c *Client) {
			c.BackchannelTokenDeliveryMode, c.BackchannelClientNotificationEndpoint = CIBAModePing, "http://counter.example/ciba"
		},
		"endpoint in poll mode":  func(c *Client) { c.BackchannelClientNotificationEndpoint = "https://counter.example/ciba" },
		"mode without the grant": func(c *Client) { c.GrantTypes = []string{"client_credentials"} },
	} {
		c := base
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
}
