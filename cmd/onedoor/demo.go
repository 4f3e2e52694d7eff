package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/keyset"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/mobileapi/democatalog"
	"github.com/onedoor/onedoor/represent"
)

// Demo data. Every person and agency here is fake: personal ids start with
// 000 (no such province code) and names carry "Demo".
var demoCitizens = []citizenRecord{
	{PersonalID: "000000000001", FamilyName: "Nguyễn", GivenName: "Văn Demo", Birthdate: "1990-01-15", Gender: "male", Address: "1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)", PhoneNumber: "+84900000001"},
	{PersonalID: "000000000002", FamilyName: "Trần", GivenName: "Thị Demo", Birthdate: "1985-06-30", Gender: "female", Address: "2 Đường Mẫu, Phường Ví Dụ, TP. Hồ Chí Minh (địa chỉ giả)", PhoneNumber: "+84900000002"},
	{PersonalID: "000000000003", FamilyName: "Lê", GivenName: "Hoàng Demo", Birthdate: "2001-11-02", Gender: "male", Address: "3 Ngõ Mẫu, Phường Kiểm Thử, Đà Nẵng (địa chỉ giả)", PhoneNumber: "+84900000003"},
	{PersonalID: "000000000004", FamilyName: "Phạm", GivenName: "Minh Demo", Birthdate: "1978-03-21", Gender: "other", Address: "4 Phố Mẫu, Phường Giả Lập, Cần Thơ (địa chỉ giả)", PhoneNumber: "+84900000004"},
}

// demoHousehold is a family for representation: the first demo citizen,
// a second parent and their child, ten years old when the demo data is
// first seeded (the birthdate counts back from now), so the parents act
// for the child as its registry guardians for years of demos.
func demoHousehold(now time.Time) []citizenRecord {
	return []citizenRecord{
		{PersonalID: "000000000005", FamilyName: "Vũ", GivenName: "Thị Demo", Birthdate: "1992-09-09", Gender: "female", Address: demoCitizens[0].Address, PhoneNumber: "+84900000005"},
		{PersonalID: "000000000006", FamilyName: "Nguyễn", GivenName: "Bé Demo", Birthdate: now.In(represent.Zone).AddDate(-10, 0, 0).Format("2006-01-02"),
			Gender: "female", Address: demoCitizens[0].Address, Guardians: []string{demoCitizens[0].PersonalID, "000000000005"}},
	}
}

// demoOrganisations are fake companies (tax codes of 0100000000x, names
// saying Demo) whose legal representatives are demo citizens.
var demoOrganisations = []represent.OrganisationRecord{
	{TaxCode: "0100000001", Name: "Công ty TNHH Demo Một", NameEn: "DEMO ONE LLC", Address: "1 Phố Mẫu, Phường Thử Nghiệm, Hà Nội (địa chỉ giả)",
		LegalRepresentative: demoCitizens[0].PersonalID, Status: represent.OrgActive},
	{TaxCode: "0100000002", Name: "Công ty Cổ phần Demo Hai", NameEn: "DEMO TWO JSC", Address: "2 Đường Mẫu, Phường Ví Dụ, TP. Hồ Chí Minh (địa chỉ giả)",
		LegalRepresentative: demoCitizens[1].PersonalID, Status: represent.OrgActive},
}

// seedRepresentation adds the demo household and companies that are
// missing and leaves the rest as they are.
func (m *Main) seedRepresentation(ctx context.Context) error {
	for _, r := range demoHousehold(m.Now()) {
		if _, err := m.Store.GetCitizenByPersonalID(ctx, r.PersonalID); errors.Is(err, idp.ErrNotFound) {
			if err := m.ImportCitizens(ctx, []citizenRecord{r}); err != nil {
				return fmt.Errorf("demo household: %w", err)
			}
		} else if err != nil {
			return err
		}
	}
	var missing []*represent.Organisation
	for _, r := range demoOrganisations {
		if _, err := m.RepStore.GetOrganisation(ctx, r.TaxCode); errors.Is(err, represent.ErrNotFound) {
			missing = append(missing, &represent.Organisation{TaxCode: r.TaxCode, Name: r.Name, NameEn: r.NameEn, Address: r.Address,
				LegalRepresentative: r.LegalRepresentative, Status: r.Status})
		} else if err != nil {
			return err
		}
	}
	if _, err := m.RepStore.PutOrganisations(ctx, missing); err != nil {
		return fmt.Errorf("demo organisations: %w", err)
	}
	return nil
}

// Demo client ids.
const (
	demoSiteClient      = "demo-agency-site"
	demoJusticeClient   = "demo-justice-dept"
	demoInsuranceClient = "demo-social-insurance"
	// demoWardClient is the back office of the ward that handles the demo
	// citizen's civil-status applications (Hà Nội, Hoàn Kiếm).
	demoWardClient = "demo-hn-hoankiem"
	demoWardAgency = "HN-HOANKIEM"
)

// seedCatalog adds the demo agencies and services that are missing and
// leaves the rest as they are (an agency may have changed its services).
func (m *Main) seedCatalog(ctx context.Context) error {
	agencies, services, err := democatalog.Load()
	if err != nil {
		return err
	}
	for _, a := range agencies { // parents come first in the file
		if err := m.APIStore.CreateAgency(ctx, a); err != nil && !errors.Is(err, idp.ErrConflict) {
			return fmt.Errorf("demo agency %s: %w", a.Code, err)
		}
	}
	for _, s := range services {
		_, err := m.APIStore.GetServiceByCode(ctx, s.Code)
		if err == nil {
			continue
		}
		if !errors.Is(err, idp.ErrNotFound) {
			return err
		}
		if _, err := m.APIStore.PutService(ctx, s, 0); err != nil {
			return fmt.Errorf("demo service %s: %w", s.Code, err)
		}
	}
	return nil
}

// seedDemo adds the demo citizens, agencies, services and clients that are
// missing and leaves the rest as they are: a second --demo on the same data
// rewrites nothing. The clients' secrets are derived from the master key, so
// every run knows them without storing them.
func (m *Main) seedDemo(ctx context.Context, rpBase string) (siteSecret, wardSecret string, err error) {
	if err := m.seedCatalog(ctx); err != nil {
		return "", "", err
	}
	for _, r := range demoCitizens {
		if _, err := m.Store.GetCitizenByPersonalID(ctx, r.PersonalID); errors.Is(err, idp.ErrNotFound) {
			if err := m.ImportCitizens(ctx, []citizenRecord{r}); err != nil {
				return "", "", err
			}
		} else if err != nil {
			return "", "", err
		}
	}
	if err := m.seedRepresentation(ctx); err != nil {
		return "", "", err
	}
	specs := []ClientSpec{
		{ID: demoSiteClient, Name: "Cổng Dịch vụ công Demo (demo agency site)", Scope: "openid profile address phone eid offline_access",
			RedirectURIs: []string{rpBase + "/callback"}, PostLogoutRedirectURIs: []string{rpBase + "/"},
			GrantTypes: []string{"authorization_code", "refresh_token"}},
		{ID: demoJusticeClient, Name: "Sở Tư pháp Demo (demo justice department)", Scope: "registry.read", GrantTypes: []string{"client_credentials"}},
		{ID: demoInsuranceClient, Name: "Bảo hiểm Xã hội Demo (demo social insurance)", Scope: "registry.read", GrantTypes: []string{"client_credentials"}},
		{ID: demoWardClient, Name: "UBND phường Hoàn Kiếm Demo (demo ward back office)", Scope: "agency", Agency: demoWardAgency,
			GrantTypes: []string{"client_credentials"}},
	}
	for _, spec := range specs {
		spec.Secret = m.demoSecret(spec.ID)
		existing, err := m.Store.GetClient(ctx, spec.ID)
		switch {
		case err == nil:
			if !slices.Equal(existing.RedirectURIs, spec.RedirectURIs) {
				m.Logger.Warn("demo client kept as it is: its redirect URIs are not this demo site's; delete it to have it recreated",
					"client_id", spec.ID, "registered", existing.RedirectURIs, "demo_site", spec.RedirectURIs)
			}
		case errors.Is(err, idp.ErrNotFound):
			if _, _, err := m.CreateClient(ctx, spec); err != nil {
				return "", "", fmt.Errorf("demo client %s: %w", spec.ID, err)
			}
		default:
			return "", "", err
		}
		switch spec.ID {
		case demoSiteClient:
			siteSecret = spec.Secret
		case demoWardClient:
			wardSecret = spec.Secret
		}
	}
	return siteSecret, wardSecret, nil
}

// demoSecret is a demo client's secret: derived from the master key, so it
// is the same on every run over the same data and differs between
// deployments.
func (m *Main) demoSecret(clientID string) string {
	return base64.RawURLEncoding.EncodeToString(keyset.DeriveKey(m.master, "demo-client-secret:"+clientID))
}

// holdsDemoData reports whether the database was seeded by --demo, so a
// server started without it can say that its citizens are fake.
func (m *Main) holdsDemoData(ctx context.Context) bool {
	_, err := m.Store.GetClient(ctx, demoSiteClient)
	return err == nil
}

// startDemo seeds the demo data, serves the demo agency site and prints what
// a newcomer can try next.
func (m *Main) startDemo(ctx context.Context, out io.Writer) error {
	ln, err := net.Listen("tcp", m.Config.DemoRPAddr)
	if err != nil {
		return fmt.Errorf("demo site: listen %s: %w", m.Config.DemoRPAddr, err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	rpBase := "http://localhost:" + port
	secret, wardSecret, err := m.seedDemo(ctx, rpBase)
	if err != nil {
		_ = ln.Close()
		return err
	}
	code, _, err := m.EID.Activate(ctx, demoCitizens[0].PersonalID, idp.LevelHigh)
	if err != nil {
		_ = ln.Close()
		return err
	}
	rp := newDemoRP(m.Issuer, rpBase, demoSiteClient, secret)
	m.serve(ln, rp)
	home := filepath.Join(m.Config.DataDir, "eidsim")
	fmt.Fprintf(out, `
OneDoor is running with DEMO data: every citizen and agency here is fake.

  Identity provider  %[1]s   (discovery: %[1]s%[2]s)
  Demo agency site   %[3]s
  Mobile API         %[10]s   (contract: %[10]s/v1/openapi.json)

Try a whole login:
  1. Enroll the reference eID app for the demo citizen %[4]s %[5]s (personal id %[6]s),
     with the activation code an authority's desk would hand out (valid 15 minutes):

       go run ./cmd/eidsim enroll --home %[7]s --idp %[1]s --personal-id %[6]s --activation-code %[8]s

  2. Open %[3]s in a browser and click "Đăng nhập với OneDoor" (Log in with OneDoor).
     The login page shows a QR code and a match number. Copy the QR payload
     (under "Can't scan the code?" on the page), then approve it:

       go run ./cmd/eidsim approve --home %[7]s 'onedoor-eid://login?...'

     The browser continues to the demo site, which shows the claims it received.
  3. Log in to the app itself (its own tokens, from an assertion signed by the device key):

       go run ./cmd/eidsim login --home %[7]s

Apply for a public service through the mobile API, as the citizen's app does:

       go run ./cmd/eidsim api --home %[7]s --api %[10]s GET '/v1/services?q=dang+ky+khai+sinh'
       go run ./cmd/eidsim api --home %[7]s --api %[10]s POST /v1/applications '{"service_id":"SERVICE_ID"}'

  The ward that handles it (%[11]s) works through the agency side with its
  back-office client %[12]s (secret: %[13]s):

       curl -s -u %[12]s:%[13]s -d grant_type=client_credentials -d scope=agency %[1]s/token
       curl -s -H "Authorization: Bearer TOKEN" -X POST %[10]s/agency/v1/queue/leases -H 'Content-Type: application/json' -d '{}'

Representation (fake too): %[4]s %[5]s is the legal representative of %[14]s (tax code %[15]s)
and, with %[16]s, a guardian of their child %[17]s (personal id %[18]s):
       go run ./cmd/onedoor org list --data-dir %[9]s

A new activation code: go run ./cmd/onedoor citizen activate --id %[6]s --level high --data-dir %[9]s
Press Ctrl-C to stop.
`, m.Issuer, web.PathDiscovery, rpBase, demoCitizens[0].FamilyName, demoCitizens[0].GivenName, demoCitizens[0].PersonalID, home, code, m.Config.DataDir, m.APIURL,
		demoWardAgency, demoWardClient, wardSecret,
		demoOrganisations[0].Name, demoOrganisations[0].TaxCode, "Vũ Thị Demo", "Nguyễn Bé Demo", "000000000006")
	return nil
}

// demoRP is a small agency site that logs citizens in with OneDoor, as an
// agency would: coreos/go-oidc and golang.org/x/oauth2, code flow with PKCE.
type demoRP struct {
	issuer, base, clientID, secret string

	mu       sync.Mutex
	provider *gooidc.Provider
	pending  map[string]pendingLogin // by state
	sessions map[string]*rpSession   // by cookie
	mux      *http.ServeMux
}

type pendingLogin struct {
	nonce, verifier string
	at              time.Time
}

type rpSession struct {
	Claims  map[string]any
	IDToken string
}

func newDemoRP(issuer, base, clientID, secret string) *demoRP {
	rp := &demoRP{issuer: issuer, base: base, clientID: clientID, secret: secret,
		pending: map[string]pendingLogin{}, sessions: map[string]*rpSession{}, mux: http.NewServeMux()}
	rp.mux.HandleFunc("GET /{$}", rp.home)
	rp.mux.HandleFunc("GET /login", rp.login)
	rp.mux.HandleFunc("GET /callback", rp.callback)
	rp.mux.HandleFunc("POST /logout", rp.logout)
	rp.mux.HandleFunc("GET /problem", rp.problemPage)
	return rp
}

// ServeHTTP sends a browser that opened the site under another host name
// (127.0.0.1 for localhost) to the registered one first: the login's state
// cookie is set for the host the callback returns to, or it would be lost on
// the way back.
func (rp *demoRP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, err := url.Parse(rp.base); err == nil && r.Host != u.Host && r.Method == http.MethodGet {
		// To the home page, not the path asked for: nothing the browser
		// sent goes into the Location.
		http.Redirect(w, r, rp.base+"/", http.StatusFound)
		return
	}
	rp.mux.ServeHTTP(w, r)
}

func (rp *demoRP) oauth(ctx context.Context) (*oauth2.Config, *gooidc.Provider, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.provider == nil {
		p, err := gooidc.NewProvider(ctx, rp.issuer)
		if err != nil {
			return nil, nil, err
		}
		rp.provider = p
	}
	return &oauth2.Config{
		ClientID: rp.clientID, ClientSecret: rp.secret, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rp.base + "/callback", Scopes: []string{gooidc.ScopeOpenID, "profile", "address", "phone", "eid"},
	}, rp.provider, nil
}

func (rp *demoRP) session(r *http.Request) (string, *rpSession) {
	c, err := r.Cookie("demo-rp")
	if err != nil {
		return "", nil
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return c.Value, rp.sessions[c.Value]
}

func (rp *demoRP) home(w http.ResponseWriter, r *http.Request) {
	_, s := rp.session(r)
	lang := demoLang(w, r)
	if s == nil {
		rp.render(w, http.StatusOK, newDemoView(lang))
		return
	}
	rp.render(w, http.StatusOK, signedInView(lang, s))
}

func (rp *demoRP) login(w http.ResponseWriter, r *http.Request) {
	conf, _, err := rp.oauth(r.Context())
	if err != nil {
		rp.problem(w, r, problemUnavailable, "idp_unreachable")
		return
	}
	state, nonce, verifier := randomString(16), randomString(16), oauth2.GenerateVerifier()
	rp.mu.Lock()
	for k, p := range rp.pending { // forget abandoned logins
		if time.Since(p.at) > 10*time.Minute {
			delete(rp.pending, k)
		}
	}
	rp.pending[state] = pendingLogin{nonce: nonce, verifier: verifier, at: time.Now()}
	rp.mu.Unlock()
	// state is bound to this browser: a callback carrying another browser's
	// state (login CSRF) is refused.
	http.SetCookie(w, &http.Cookie{Name: "demo-rp-state", Value: state, Path: "/callback", MaxAge: 600, HttpOnly: true, SameSite: http.SameSiteLaxMode}) // #nosec G124 -- demo on http://localhost
	// ui_locales: the IdP's login page speaks the language this site does.
	// A constant, not the value demoLang read from the request.
	uiLocales := "vi"
	if demoLang(w, r) == "en" {
		uiLocales = "en"
	}
	http.Redirect(w, r, conf.AuthCodeURL(state, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("ui_locales", uiLocales)), http.StatusFound)
}

func (rp *demoRP) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	if c, err := r.Cookie("demo-rp-state"); err != nil || c.Value != q.Get("state") {
		rp.problem(w, r, problemStartAgain, "")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "demo-rp-state", Value: "", Path: "/callback", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode}) // #nosec G124 -- demo on http://localhost
	rp.mu.Lock()
	p, ok := rp.pending[q.Get("state")]
	delete(rp.pending, q.Get("state"))
	rp.mu.Unlock()
	if !ok {
		rp.problem(w, r, problemStartAgain, "")
		return
	}
	if e := q.Get("error"); e != "" {
		rp.problem(w, r, problemIDP, e) // error_description is not shown: anyone can write it
		return
	}
	if q.Get("iss") != rp.issuer { // RFC 9207 mix-up defence
		rp.problem(w, r, problemFailed, "wrong_issuer")
		return
	}
	if q.Get("code") == "" {
		rp.problem(w, r, problemFailed, "missing_code")
		return
	}
	conf, provider, err := rp.oauth(ctx)
	if err != nil {
		rp.problem(w, r, problemUnavailable, "idp_unreachable")
		return
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		rp.problem(w, r, problemFailed, "code_exchange")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&gooidc.Config{ClientID: rp.clientID, SupportedSigningAlgs: []string{"ES256", "RS256"}}).Verify(ctx, raw)
	if err != nil || idt.Nonce != p.nonce {
		rp.problem(w, r, problemFailed, "id_token")
		return
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		rp.problem(w, r, problemFailed, "at_hash")
		return
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		rp.problem(w, r, problemFailed, "userinfo")
		return
	}
	claims := map[string]any{}
	_ = ui.Claims(&claims)
	var idc map[string]any
	_ = idt.Claims(&idc)
	claims["acr"] = idc["acr"]
	id := randomString(24)
	rp.mu.Lock()
	rp.sessions[id] = &rpSession{Claims: claims, IDToken: raw}
	rp.mu.Unlock()
	// The demo site runs on http://localhost only, so the cookie cannot be Secure.
	http.SetCookie(w, &http.Cookie{Name: "demo-rp", Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}) // #nosec G124 -- demo on http://localhost
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (rp *demoRP) logout(w http.ResponseWriter, r *http.Request) {
	id, s := rp.session(r)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	rp.mu.Lock()
	delete(rp.sessions, id)
	rp.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "demo-rp", Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode}) // #nosec G124 -- demo on http://localhost
	u := rp.issuer + web.PathLogout + "?" + url.Values{
		"id_token_hint": {s.IDToken}, "post_logout_redirect_uri": {rp.base + "/"}, "state": {randomString(12)},
	}.Encode()
	http.Redirect(w, r, u, http.StatusSeeOther)
}
