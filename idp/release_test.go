package idp

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/onedoor/onedoor/consent"
)

// planString renders a plan as "name[?] ... | idtoken ...", ? marking optional.
func planString(p *ReleasePlan) string {
	var got []string
	for _, c := range p.Claims {
		s := c.Name
		if c.Optional {
			s += "?"
		}
		got = append(got, s)
	}
	out := strings.Join(got, " ")
	if len(p.IDToken) > 0 {
		out += " | " + strings.Join(p.IDToken, " ")
	}
	return out
}

func TestConsentPolicy_Plan(t *testing.T) {
	all := &Client{Scopes: []string{"openid", "profile", "address", "phone", "eid"}}
	profileOnly := &Client{Scopes: []string{"openid", "profile"}}
	withClaims := &Client{Scopes: []string{"openid"}, Claims: []string{"phone_number", "birthdate"}}
	tests := []struct {
		name   string
		client *Client
		scopes []string
		param  string
		want   string
	}{
		{"openid only", all, []string{"openid"}, "", ""},
		{"profile is voluntary", all, []string{"openid", "profile"}, "", "name? family_name? given_name? birthdate? gender?"},
		{"eid releases the personal id as essential", all, []string{"openid", "eid"}, "", "personal_id"},
		{"claims parameter marks essential", all, []string{"openid", "phone"}, `{"userinfo":{"phone_number":{"essential":true}}}`, "phone_number"},
		{"claims parameter adds a voluntary claim", all, []string{"openid"}, `{"userinfo":{"birthdate":null}}`, "birthdate?"},
		{"id_token member goes to the ID token", all, []string{"openid"}, `{"id_token":{"birthdate":{"essential":true},"name":null}}`, "name? birthdate | name birthdate"},
		{"unknown claims are ignored", all, []string{"openid"}, `{"userinfo":{"salary":{"essential":true}},"id_token":{"salary":null}}`, ""},
		// The abuse cases: the claims parameter cannot widen what the
		// client may receive, essential or not (OIDC Core 5.5.1: a claim that
		// is not available is no error).
		{"essential personal_id outside the allowance is dropped", profileOnly, []string{"openid", "profile"},
			`{"userinfo":{"personal_id":{"essential":true}}}`, "name? family_name? given_name? birthdate? gender?"},
		{"id_token request outside the allowance is dropped", profileOnly, []string{"openid"},
			`{"id_token":{"personal_id":{"essential":true},"phone_number":null,"name":null}}`, "name? | name"},
		{"scopes the client did not register imply nothing", profileOnly, []string{"openid", "eid", "phone"}, "", ""},
		{"explicit claims are allowed but not asked unrequested", withClaims, []string{"openid"}, "", ""},
		{"explicit claims can be requested", withClaims, []string{"openid"},
			`{"userinfo":{"phone_number":{"essential":true},"name":null},"id_token":{"birthdate":null}}`, "birthdate? phone_number | birthdate"},
	}
	p := &ConsentPolicy{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseClaimsRequest(tt.scopes, tt.param)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := p.Plan(t.Context(), tt.client, req)
			if err != nil {
				t.Fatal(err)
			}
			if g := planString(plan); g != tt.want {
				t.Errorf("got %q, want %q", g, tt.want)
			}
		})
	}
}

func TestClient_AllowedClaims(t *testing.T) {
	for _, tt := range []struct {
		c    Client
		want string
	}{
		{Client{Scopes: []string{"openid", "profile"}}, "name family_name given_name birthdate gender"},
		{Client{Scopes: []string{"openid", "eid", "phone"}}, "phone_number personal_id"},
		{Client{Scopes: []string{"registry.read"}}, ""},
		{Client{Scopes: []string{"openid"}, Claims: []string{"personal_id", "name"}}, "name personal_id"},
		{Client{Scopes: []string{"openid", "address"}, Claims: []string{"address", "salary"}}, "address"},
	} {
		if got := strings.Join(tt.c.AllowedClaims(), " "); got != tt.want {
			t.Errorf("scopes %v claims %v: got %q, want %q", tt.c.Scopes, tt.c.Claims, got, tt.want)
		}
	}
}

func TestParseClaimsRequest(t *testing.T) {
	for _, raw := range []string{`{"userinfo":`, `[]`, `{"userinfo":[]}`, `"x"`} {
		if _, err := ParseClaimsRequest(nil, raw); err == nil {
			t.Errorf("ParseClaimsRequest(%q) accepted a malformed parameter", raw)
		}
	}
	r, err := ParseClaimsRequest(nil, `{"userinfo":{"name":{"essential":"yes"},"gender":{"essential":true}},"id_token":{"birthdate":1},"other":{"x":null}}`)
	if err != nil || r.UserInfo["name"] || !r.UserInfo["gender"] || r.IDToken["birthdate"] {
		t.Errorf("got %+v, %v", r, err)
	}
	if _, ok := r.IDToken["birthdate"]; !ok {
		t.Error("a claim with a non-object spec is not requested")
	}
}

// FuzzPlan: whatever the client, scopes and claims parameter, the plan shows
// only claims the client may receive, once each, never marks an essential
// request optional, and puts in the ID token only claims it shows.
func FuzzPlan(f *testing.F) {
	f.Add("openid profile eid", "", "openid profile eid", `{"userinfo":{"birthdate":{"essential":true}}}`)
	f.Add("openid phone address", "name", "openid phone", `{"id_token":{"name":null},"userinfo":{"name":{"essential":false}}}`)
	f.Add("openid", "", "", `[]`)
	f.Add("openid profile", "personal_id", "eid eid profile", `{"userinfo":{"personal_id":{"essential":"yes"}},"id_token":{"personal_id":{"essential":true}}}`)
	f.Fuzz(func(t *testing.T, registered, claims, scopes, param string) {
		c := &Client{Scopes: strings.Fields(registered), Claims: strings.Fields(claims)}
		req, err := ParseClaimsRequest(strings.Fields(scopes), param)
		if err != nil {
			var v any
			if json.Unmarshal([]byte(param), &v) != nil {
				return
			}
		}
		plan, err := (&ConsentPolicy{}).Plan(t.Context(), c, req)
		if err != nil {
			t.Fatal(err)
		}
		allowed := c.AllowedClaims()
		seen := map[string]bool{}
		for _, cr := range plan.Claims {
			if !slices.Contains(allowed, cr.Name) {
				t.Fatalf("claim %q shown although the client may not receive it", cr.Name)
			}
			if seen[cr.Name] {
				t.Fatalf("claim %q twice", cr.Name)
			}
			seen[cr.Name] = true
			if cr.Optional && (req.UserInfo[cr.Name] || req.IDToken[cr.Name]) {
				t.Fatalf("essential claim %q marked optional", cr.Name)
			}
		}
		for _, n := range plan.IDToken {
			if !seen[n] {
				t.Fatalf("ID token claim %q is not shown to the citizen", n)
			}
		}
	})
}

// FuzzParseAuthorizationDetails: whatever the parameter, accepted details
// name one registered purpose and only claims the client may receive, once
// each: authorization_details can only narrow.
func FuzzParseAuthorizationDetails(f *testing.F) {
	f.Add(`[{"type":"onedoor_personal_data","purpose":"tax","items":["name","gender"]}]`)
	f.Add(`[{"type":"onedoor_personal_data","items":["personal_id"]}]`)
	f.Add(`[{"type":"onedoor_personal_data","purpose":"login","items":["name"]},{"type":"x"}]`)
	f.Add(`[{"type":"onedoor_personal_data","items":["name"],"purpose":null}]`)
	f.Add(`{}`)
	c := &Client{Scopes: []string{"openid", "profile"}, Purposes: []consent.Purpose{{Code: "tax", Text: "Tax"}, {Code: "benefit", Text: "Benefit"}}}
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := ParseAuthorizationDetails(raw, c)
		if err != nil {
			if !errors.Is(err, ErrInvalidAuthorizationDetails) {
				t.Fatalf("error %v is not ErrInvalidAuthorizationDetails", err)
			}
			return
		}
		if raw == "" {
			if d != nil {
				t.Fatal("details from an empty parameter")
			}
			return
		}
		if _, ok := c.Purpose(d.Purpose); !ok {
			t.Fatalf("purpose %q is not registered", d.Purpose)
		}
		if len(d.Items) == 0 {
			t.Fatal("no items")
		}
		for i, it := range d.Items {
			if !slices.Contains(c.AllowedClaims(), it) || slices.Contains(d.Items[:i], it) {
				t.Fatalf("item %q outside the allowance or repeated", it)
			}
		}
		plan, err := (&ConsentPolicy{}).Plan(t.Context(), c, ClaimsRequest{Scopes: []string{"openid", "profile", "eid"}, Details: d})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Claims) != len(d.Items) {
			t.Fatalf("plan %v is not the items %v", plan.Claims, d.Items)
		}
	})
}

func TestClient_Purposes(t *testing.T) {
	c := &Client{}
	if c.DefaultPurpose() != consent.LoginPurpose {
		t.Errorf("default purpose of a client without a catalog: %v", c.DefaultPurpose())
	}
	if _, ok := c.Purpose("login"); !ok {
		t.Error("a client without a catalog has no login purpose")
	}
	for _, bad := range []string{"tax", "Tax:Khai thuế", ":text", "tax:", "tax:\x1b[2J", "a b:text"} {
		if _, err := ParsePurpose(bad); err == nil {
			t.Errorf("ParsePurpose(%q) accepted", bad)
		}
	}
	p, err := ParsePurpose(" tax : Khai thuế: năm 2026 ")
	if err != nil || p != (consent.Purpose{Code: "tax", Text: "Khai thuế: năm 2026"}) {
		t.Errorf("ParsePurpose = %+v, %v", p, err)
	}
	c = &Client{ID: "x", Name: "X", GrantTypes: []string{"authorization_code"}, RedirectURIs: []string{"https://x.example/cb"},
		AuthMethod: AuthNone, IDTokenAlg: "ES256", Purposes: []consent.Purpose{p, p}}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "registered twice") {
		t.Errorf("a purpose registered twice: %v", err)
	}
	c.Purposes = c.Purposes[:1]
	if err := c.Validate(); err != nil {
		t.Errorf("a valid purpose refused: %v", err)
	}
	if _, ok := c.Purpose("login"); ok {
		t.Error("a client with a catalog answers to the login purpose")
	}
}

func TestRepresentationReleases(t *testing.T) {
	rep := &consent.OnBehalf{CitizenID: "sub-a", Basis: "guardian"}
	for _, tt := range []struct {
		name     string
		onBehalf *consent.OnBehalf
		bounded  bool
		want     bool
	}{
		{"own login", nil, false, true},
		{"unbounded representative", rep, false, true},
		{"mandate bounded to services", rep, true, false},
	} {
		if got := RepresentationReleases(tt.onBehalf, tt.bounded); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSameGiver(t *testing.T) {
	g := &consent.OnBehalf{CitizenID: "sub-g", Basis: "guardian"}
	for _, tt := range []struct {
		name            string
		givenBy, acting *consent.OnBehalf
		want            bool
	}{
		{"the citizen, for themselves", nil, nil, true},
		{"a guardian's consent, the citizen's own login", g, nil, false},
		{"the citizen's consent, a guardian's token", nil, g, false},
		{"the same guardian", g, &consent.OnBehalf{CitizenID: "sub-g", Basis: "guardian"}, true},
		{"another guardian", g, &consent.OnBehalf{CitizenID: "sub-h", Basis: "guardian"}, false},
		{"the same citizen under a mandate", g, &consent.OnBehalf{CitizenID: "sub-g", Basis: "mandate", MandateID: "mdt_1"}, false},
	} {
		if got := SameGiver(tt.givenBy, tt.acting); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
