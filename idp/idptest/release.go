package idptest

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/keyset"
)

// ConsentService returns the consent service the IdP runs with: over cs (a
// consent store beside s, in the same database), receipts signed with the
// platform key kept in s, withdrawals denying the consent's access tokens
// on s's deny list.
func ConsentService(t *testing.T, s idp.Store, cs consent.Store) *consent.Service {
	t.Helper()
	sealer, err := keyset.NewSealer(make([]byte, 32))
	mustNil(t, err, "sealer")
	keys := keyset.New(s, sealer, keyset.Options{})
	mustNil(t, keys.Ensure(t.Context()), "signing keys")
	return &consent.Service{Store: cs, Signer: keyset.JWSSigner{Keys: keys}, Issuer: "https://id.onedoor.test",
		Deny: func(ctx context.Context, id string) error { return accesstoken.DenyConsent(ctx, s, id, time.Now()) }}
}

// RunReleasePolicyTests checks idp.ConsentPolicy over a durable store and a
// consent store against the abuse cases of issues #3 and #7: nothing a
// client may not receive is shown, released silently or released later,
// whatever the request or the stored consent says; a remembered consent
// counts for its own client and purpose only, and asks again for new
// claims; a withdrawn consent, or one of another client, releases nothing;
// and what the citizen agreed is recorded with its evidence.
//
// newEnv returns a fresh migrated durable store and a consent service beside
// it (ConsentService).
func RunReleasePolicyTests(t *testing.T, newEnv func(t *testing.T) (idp.Store, *consent.Service)) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, s idp.Store, cs *consent.Service, p idp.ReleasePolicy)
	}{
		{"PlanShowsOnlyAllowedClaims", testPlanAllowed},
		{"AuthorizationDetailsOnlyNarrow", testPlanDetails},
		{"SilentNeedsConsentOfClientAndPurpose", testSilent},
		{"ReleasedFollowsConsentAndRegistrationNow", testReleasedNow},
		{"RecordKeepsEvidenceWithinAllowance", testRecord},
		{"ConsentCountsOnlyForWhoGaveIt", testGivenBy},
		{"BoundedRepresentativeReleasesNothing", testBoundedRepresentative},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, cs := newEnv(t)
			t.Cleanup(func() { s.Close() })
			withTimeout(subtestTimeout, func() { tt.run(t, s, cs, &idp.ConsentPolicy{Clients: s, Consent: cs}) })
		})
	}
}

func policyClient(t *testing.T, s idp.Store, id string, scopes, claims []string, purposes ...consent.Purpose) *idp.Client {
	t.Helper()
	c := &idp.Client{ID: id, Name: "Agency " + id, AuthMethod: idp.AuthNone, GrantTypes: []string{"authorization_code"},
		RedirectURIs: []string{"https://agency.example/cb"}, Scopes: scopes, Claims: claims, IDTokenAlg: "ES256",
		Purposes: purposes, CreatedAt: base}
	if err := s.DeleteClient(t.Context(), id); err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	mustNil(t, s.CreateClient(t.Context(), c), "create client "+id)
	return c
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, idp.ErrNotFound) }

func names(cs []idp.ClaimRequest) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

var (
	purposeTax     = consent.Purpose{Code: "tax", Text: "Tax declaration"}
	purposeBenefit = consent.Purpose{Code: "benefit", Text: "Benefit application"}
)

func testPlanAllowed(t *testing.T, s idp.Store, _ *consent.Service, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "profile-only", []string{"openid", "profile"}, nil)
	// A client registered for openid profile asks for the personal id as
	// essential, in userinfo and in the ID token, and for scopes it did not
	// register (fosite refuses those first; the policy does not rely on it).
	req, err := idp.ParseClaimsRequest([]string{"openid", "profile", "eid", "phone"},
		`{"userinfo":{"personal_id":{"essential":true},"name":{"essential":true}},"id_token":{"personal_id":{"essential":true},"address":null,"birthdate":null}}`)
	mustNil(t, err, "parse claims request")
	plan, err := p.Plan(ctx, c, req)
	mustNil(t, err, "plan")
	for _, cr := range plan.Claims {
		if !slices.Contains(c.AllowedClaims(), cr.Name) {
			t.Errorf("plan shows %q, which the client may not receive", cr.Name)
		}
		if cr.Name == "name" && cr.Optional {
			t.Error("an essential, allowed claim is optional")
		}
	}
	if !slices.Contains(names(plan.Claims), "name") {
		t.Errorf("plan %v lacks the allowed, requested name", names(plan.Claims))
	}
	equal(t, plan.IDToken, []string{"birthdate"}, "ID token claims")
	// A client without purposes asks for the login purpose; the recipient
	// is its name.
	equal(t, plan.Purpose, consent.LoginPurpose, "purpose of a client without a catalog")
	equal(t, plan.Recipient, "Agency profile-only", "recipient")

	// An explicit allowance lets the claims parameter ask; it asks nothing itself.
	x := policyClient(t, s, "explicit", []string{"openid"}, []string{"personal_id"}, purposeTax, purposeBenefit)
	plan, err = p.Plan(ctx, x, idp.ClaimsRequest{Scopes: []string{"openid"}})
	mustNil(t, err, "plan without claims")
	equal(t, names(plan.Claims), []string{}, "claims asked without a request")
	equal(t, plan.Purpose, purposeTax, "purpose: the client's first")
	plan, err = p.Plan(ctx, x, idp.ClaimsRequest{Scopes: []string{"openid"}, UserInfo: map[string]bool{"personal_id": true, "name": false}})
	mustNil(t, err, "plan with claims")
	equal(t, plan.Claims, []idp.ClaimRequest{{Name: "personal_id"}}, "claims asked with a request")
}

func testPlanDetails(t *testing.T, s idp.Store, _ *consent.Service, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "site", []string{"openid", "profile", "phone"}, nil, purposeTax, purposeBenefit)
	req, err := idp.ParseClaimsRequest([]string{"openid", "profile", "phone"}, `{"id_token":{"birthdate":null,"name":null}}`)
	mustNil(t, err, "parse claims request")
	req.Details, err = idp.ParseAuthorizationDetails(`[{"type":"onedoor_personal_data","purpose":"benefit","items":["birthdate","family_name"]}]`, c)
	mustNil(t, err, "parse authorization details")
	plan, err := p.Plan(ctx, c, req)
	mustNil(t, err, "plan")
	// Narrowed to the items, all required; the ID token keeps only those.
	equal(t, plan.Claims, []idp.ClaimRequest{{Name: "family_name"}, {Name: "birthdate"}}, "claims")
	equal(t, plan.IDToken, []string{"birthdate"}, "ID token claims")
	equal(t, plan.Purpose, purposeBenefit, "purpose")

	for _, tt := range []struct{ name, raw string }{
		{"widening beyond the registration", `[{"type":"onedoor_personal_data","items":["personal_id"]}]`},
		{"an unknown claim", `[{"type":"onedoor_personal_data","items":["salary"]}]`},
		{"an unregistered purpose", `[{"type":"onedoor_personal_data","purpose":"marketing","items":["name"]}]`},
		{"the login purpose of a client with a catalog", `[{"type":"onedoor_personal_data","purpose":"login","items":["name"]}]`},
		{"an unknown type", `[{"type":"payment_initiation","items":["name"]}]`},
		{"a second object", `[{"type":"onedoor_personal_data","items":["name"]},{"type":"onedoor_personal_data","items":["gender"]}]`},
		{"no items", `[{"type":"onedoor_personal_data","items":[]}]`},
		{"a repeated item", `[{"type":"onedoor_personal_data","items":["name","name"]}]`},
		{"an unknown member", `[{"type":"onedoor_personal_data","items":["name"],"actions":["read"]}]`},
		{"not an array", `{"type":"onedoor_personal_data","items":["name"]}`},
		{"no type", `[{"items":["name"]}]`},
		{"an empty array", `[]`},
	} {
		if _, err := idp.ParseAuthorizationDetails(tt.raw, c); !errors.Is(err, idp.ErrInvalidAuthorizationDetails) {
			t.Errorf("%s: err = %v, want ErrInvalidAuthorizationDetails", tt.name, err)
		}
	}
	// Checked again at planning, against the registration as it is now.
	d, err := idp.ParseAuthorizationDetails(`[{"type":"onedoor_personal_data","items":["phone_number"]}]`, c)
	mustNil(t, err, "parse")
	c = policyClient(t, s, "site", []string{"openid", "profile"}, nil, purposeTax)
	if _, err := p.Plan(ctx, c, idp.ClaimsRequest{Details: d}); !errors.Is(err, idp.ErrInvalidAuthorizationDetails) {
		t.Errorf("plan after the client was narrowed: err = %v, want ErrInvalidAuthorizationDetails", err)
	}
}

// approve records the citizen's approval of plan, sharing shared.
func approve(t *testing.T, p idp.ReleasePolicy, citizen string, c *idp.Client, plan *idp.ReleasePlan, shared ...string) string {
	t.Helper()
	a, err := p.Record(t.Context(), &idp.Approval{CitizenID: citizen, Client: c, Plan: plan, Shared: shared, Evidence: "aGVh.cGF5.c2ln"})
	mustNil(t, err, "record")
	return a.ConsentID
}

func plan(c *idp.Client, purpose consent.Purpose, claims ...idp.ClaimRequest) *idp.ReleasePlan {
	return &idp.ReleasePlan{Purpose: purpose, Recipient: c.Name, Claims: claims}
}

func testSilent(t *testing.T, s idp.Store, _ *consent.Service, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "site", []string{"openid", "profile", "eid"}, nil, purposeTax, purposeBenefit)
	asked := plan(c, purposeTax, idp.ClaimRequest{Name: "name", Optional: true}, idp.ClaimRequest{Name: "birthdate", Optional: true}, idp.ClaimRequest{Name: "personal_id"})

	a, err := p.Silent(ctx, "sub-1", c, asked)
	mustNil(t, err, "silent without a consent")
	if len(a.Agreed) != 0 || a.Covered || a.ConsentID != "" {
		t.Errorf("without a consent: %+v; want nothing, not covered", a)
	}
	// The citizen shares name and the personal id, declines birthdate.
	id := approve(t, p, "sub-1", c, asked, "name", "personal_id")
	a, err = p.Silent(ctx, "sub-1", c, asked)
	mustNil(t, err, "silent")
	equal(t, a.Agreed, []string{"name", "personal_id"}, "agreed")
	if !a.Covered || a.ConsentID != id {
		t.Errorf("same client, purpose and claims: %+v; want covered by %s", a, id)
	}
	// Another citizen, another client, another purpose: nothing.
	other := policyClient(t, s, "other", []string{"openid", "profile", "eid"}, nil, purposeTax)
	for _, tt := range []struct {
		name    string
		citizen string
		client  *idp.Client
		plan    *idp.ReleasePlan
	}{
		{"another citizen", "sub-2", c, asked},
		{"another client", "sub-1", other, plan(other, purposeTax, asked.Claims...)},
		{"another purpose", "sub-1", c, plan(c, purposeBenefit, asked.Claims...)},
	} {
		a, err := p.Silent(ctx, tt.citizen, tt.client, tt.plan)
		mustNil(t, err, tt.name)
		if len(a.Agreed) != 0 || a.Covered {
			t.Errorf("%s: %+v; want nothing, not covered", tt.name, a)
		}
	}
	// A claim the citizen was never asked about is asked again, optional
	// or not.
	wider := plan(c, purposeTax, append(slices.Clone(asked.Claims), idp.ClaimRequest{Name: "gender", Optional: true})...)
	if a, _ := p.Silent(ctx, "sub-1", c, wider); a.Covered {
		t.Errorf("a new optional claim is covered: %+v", a)
	}
	// The operator narrows the client: a remembered consent cannot carry on.
	c = policyClient(t, s, "site", []string{"openid", "profile"}, nil, purposeTax, purposeBenefit)
	a, err = p.Silent(ctx, "sub-1", c, asked)
	mustNil(t, err, "silent after narrowing")
	equal(t, a.Agreed, []string{"name"}, "agreed after narrowing")
	if a.Covered {
		t.Error("an essential claim the client may no longer receive is covered")
	}
}

func testReleasedNow(t *testing.T, s idp.Store, cs *consent.Service, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "site", []string{"openid", "profile"}, []string{"personal_id"})
	asked := plan(c, consent.LoginPurpose, idp.ClaimRequest{Name: "personal_id"}, idp.ClaimRequest{Name: "name", Optional: true}, idp.ClaimRequest{Name: "gender", Optional: true})
	id := approve(t, p, "sub-1", c, asked, "personal_id", "name")
	agreed := []string{"personal_id", "name", "gender", "phone_number", "salary"}
	tr := idp.TokenRelease{ClientID: "site", CitizenID: "sub-1", ConsentID: id, Agreed: agreed}
	got, err := p.Released(ctx, tr)
	mustNil(t, err, "released")
	// Neither the declined gender nor what the client may not receive.
	equal(t, got, &idp.Release{Claims: []string{"personal_id", "name"}, ConsentID: id, Purpose: "login"}, "released")

	// A consent for client A is worth nothing to client B (its token
	// naming A's consent), nor to another citizen.
	policyClient(t, s, "other", []string{"openid", "profile"}, []string{"personal_id"})
	for _, bad := range []idp.TokenRelease{
		{ClientID: "other", CitizenID: "sub-1", ConsentID: id, Agreed: agreed},
		{ClientID: "site", CitizenID: "sub-2", ConsentID: id, Agreed: agreed},
		{ClientID: "site", CitizenID: "sub-1", ConsentID: "cns_unknown", Agreed: agreed},
	} {
		if got, err := p.Released(ctx, bad); !errors.Is(err, idp.ErrConsentWithdrawn) || got != nil {
			t.Errorf("%+v: released %v, %v; want nothing, ErrConsentWithdrawn", bad, got, err)
		}
	}

	// The operator narrows the client: at once.
	policyClient(t, s, "site", []string{"openid"}, nil)
	got, err = p.Released(ctx, tr)
	mustNil(t, err, "released after narrowing")
	if len(got.Claims) != 0 {
		t.Errorf("after narrowing: released %v, want nothing", got.Claims)
	}
	// The citizen withdraws: nothing, and the caller learns why.
	policyClient(t, s, "site", []string{"openid", "profile"}, []string{"personal_id"})
	_, _, err = cs.Withdraw(ctx, "sub-1", id)
	mustNil(t, err, "withdraw")
	if got, err := p.Released(ctx, tr); !errors.Is(err, idp.ErrConsentWithdrawn) || got != nil {
		t.Errorf("after withdrawal: released %v, %v; want nothing, ErrConsentWithdrawn", got, err)
	}
	// A token without a consent (minted before consent records) rests on
	// the client's remembered consent; there is none now.
	if got, err := p.Released(ctx, idp.TokenRelease{ClientID: "site", CitizenID: "sub-1", Agreed: agreed}); err != nil || len(got.Claims) != 0 {
		t.Errorf("token without consent, none remembered: %v, %v; want nothing", got, err)
	}

	mustNil(t, s.DeleteClient(ctx, "site"), "delete client")
	// A deleted client receives nothing, and the caller learns it is gone
	// (userinfo then refuses the token).
	got, err = p.Released(ctx, tr)
	mustBe(t, err, idp.ErrNotFound, "released to a deleted client")
	if got != nil {
		t.Errorf("deleted client: released %v, want nothing", got)
	}
}

func testRecord(t *testing.T, s idp.Store, cs *consent.Service, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "site", []string{"openid", "profile"}, nil, purposeBenefit)
	c.Agency = "" // bound to none
	asked := plan(c, purposeBenefit, idp.ClaimRequest{Name: "name"}, idp.ClaimRequest{Name: "gender", Optional: true}, idp.ClaimRequest{Name: "birthdate", Optional: true})
	// personal_id is not asked and not allowed: never recorded.
	a, err := p.Record(ctx, &idp.Approval{CitizenID: "sub-1", Client: c, Plan: asked, Shared: []string{"name", "birthdate", "personal_id"}, Evidence: "aGVh.cGF5.c2ln"})
	mustNil(t, err, "record")
	r, err := cs.Active(ctx, a.ConsentID)
	mustNil(t, err, "recorded consent")
	equal(t, r.Items, []string{"name", "birthdate"}, "items")
	equal(t, r.Declined, []string{"gender"}, "declined")
	if r.CitizenID != "sub-1" || r.ClientID != "site" || r.Purpose != purposeBenefit || r.Recipient != "Agency site" ||
		r.Method != consent.MethodEIDApp || r.Evidence != "aGVh.cGF5.c2ln" || r.Basis != consent.BasisConsent || r.Notice != idp.ConsentNotice {
		t.Errorf("recorded consent: %+v", r)
	}
	rs, err := cs.Store.Receipts(ctx, "sub-1", r.ID)
	mustNil(t, err, "receipts")
	if len(rs) != 1 || rs[0].Kind != consent.ReceiptGranted || rs[0].JWS == "" {
		t.Errorf("receipts: %+v, want one signed grant receipt", rs)
	}
}

// testGivenBy: a consent a guardian gave for their ward (the record is the
// ward's, GivenBy the guardian) is never reused for the ward's own login,
// silently or by a token's fallback; the ward's own token whose record the
// guardian then re-granted releases nothing; the ward's own approval
// replaces it, and the guardian's token then releases nothing either.
func testGivenBy(t *testing.T, s idp.Store, _ *consent.Service, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "site", []string{"openid", "profile"}, nil)
	asked := plan(c, consent.LoginPurpose, idp.ClaimRequest{Name: "name", Optional: true}, idp.ClaimRequest{Name: "birthdate", Optional: true})
	guardian := &consent.OnBehalf{CitizenID: "sub-guardian", Basis: "guardian"}

	// The ward's own consent, and a token resting on it.
	own := approve(t, p, "sub-ward", c, asked, "name", "birthdate")
	wardToken := idp.TokenRelease{ClientID: "site", CitizenID: "sub-ward", ConsentID: own, Agreed: []string{"name", "birthdate"}}
	got, err := p.Released(ctx, wardToken)
	mustNil(t, err, "the ward's own token")
	equal(t, got.Claims, []string{"name", "birthdate"}, "the ward's own token")

	// The guardian logs in for the ward and shares the name: the same
	// record, re-granted, given by the guardian.
	a, err := p.Record(ctx, &idp.Approval{CitizenID: "sub-ward", Client: c, Plan: asked, Shared: []string{"name"}, Evidence: "aGVh.cGF5.c2ln", OnBehalf: guardian})
	mustNil(t, err, "the guardian's approval")
	guardianToken := idp.TokenRelease{ClientID: "site", CitizenID: "sub-ward", ConsentID: a.ConsentID, Agreed: []string{"name"}, OnBehalf: guardian}
	got, err = p.Released(ctx, guardianToken)
	mustNil(t, err, "the guardian's token")
	equal(t, got.Claims, []string{"name"}, "the guardian's token")

	// Nothing of it stands for the ward's own login.
	if sa, err := p.Silent(ctx, "sub-ward", c, asked); err != nil || sa.Covered || sa.ConsentID != "" || len(sa.Agreed) != 0 {
		t.Errorf("silent on the guardian's consent: %+v, %v; want nothing, not covered", sa, err)
	}
	// One record per citizen, client and purpose: the guardian's grant is
	// the ward's record, re-granted.
	if a.ConsentID != own {
		t.Fatalf("the guardian's grant is record %s, the ward's own %s; want one record", a.ConsentID, own)
	}
	if got, err := p.Released(ctx, wardToken); !errors.Is(err, idp.ErrConsentWithdrawn) || got != nil {
		t.Errorf("the ward's own token on the record the guardian re-granted: %v, %v; want ErrConsentWithdrawn", got, err)
	}
	if got, err := p.Released(ctx, idp.TokenRelease{ClientID: "site", CitizenID: "sub-ward", Agreed: []string{"name"}}); err != nil || len(got.Claims) != 0 {
		t.Errorf("the ward's token without a consent, on the guardian's: %v, %v; want nothing", got, err)
	}
	// Another representative's token (another guardian, a mandate holder)
	// on the same record, or a representative's token without a consent
	// (no fallback to what is remembered for the ward): nothing.
	other := &consent.OnBehalf{CitizenID: "sub-other", Basis: "guardian"}
	if got, err := p.Released(ctx, idp.TokenRelease{ClientID: "site", CitizenID: "sub-ward", ConsentID: a.ConsentID, Agreed: []string{"name"}, OnBehalf: other}); !errors.Is(err, idp.ErrConsentWithdrawn) || got != nil {
		t.Errorf("another representative's token: %v, %v; want ErrConsentWithdrawn", got, err)
	}
	if got, err := p.Released(ctx, idp.TokenRelease{ClientID: "site", CitizenID: "sub-ward", Agreed: []string{"name"}, OnBehalf: guardian}); err != nil || len(got.Claims) != 0 {
		t.Errorf("a representative's token without a consent: %v, %v; want nothing", got, err)
	}

	// The ward approves in the app themselves: their own consent again,
	// reused silently; the guardian's token no longer releases.
	mine := approve(t, p, "sub-ward", c, asked, "name")
	sa, err := p.Silent(ctx, "sub-ward", c, asked)
	mustNil(t, err, "silent on the ward's own consent")
	if !sa.Covered || sa.ConsentID != mine {
		t.Errorf("the ward's own approval: %+v; want covered by %s", sa, mine)
	}
	if got, err := p.Released(ctx, guardianToken); !errors.Is(err, idp.ErrConsentWithdrawn) || got != nil {
		t.Errorf("the guardian's token on the ward's own re-grant (%s): %v, %v; want ErrConsentWithdrawn", mine, got, err)
	}
}

// testBoundedRepresentative: a mandate holder (a representation bounded to
// services) acting for a person records no consent and releases nothing of
// the person, whatever the token says it agreed; an unbounded one (a
// guardian) does.
func testBoundedRepresentative(t *testing.T, s idp.Store, cs *consent.Service, p idp.ReleasePolicy) {
	ctx := t.Context()
	c := policyClient(t, s, "site", []string{"openid", "profile"}, nil)
	asked := plan(c, consent.LoginPurpose, idp.ClaimRequest{Name: "name", Optional: true}, idp.ClaimRequest{Name: "birthdate", Optional: true})
	holder := &consent.OnBehalf{CitizenID: "sub-holder", Basis: "mandate", MandateID: "mdt_1"}

	a, err := p.Record(ctx, &idp.Approval{CitizenID: "sub-ward", Client: c, Plan: asked, Shared: []string{"name", "birthdate"},
		Evidence: "aGVh.cGF5.c2ln", OnBehalf: holder, Bounded: true})
	mustNil(t, err, "the mandate holder's approval")
	if a.ConsentID != "" || len(a.Agreed) != 0 || !a.Covered {
		t.Errorf("the mandate holder's approval: %+v; want no consent, nothing agreed", a)
	}
	if r, err := cs.Remembered(ctx, "sub-ward", "site", consent.LoginPurpose.Code); err != nil || r != nil {
		t.Errorf("a consent was recorded for the ward: %+v, %v", r, err)
	}
	// The ward's own consent exists: still nothing on the holder's token.
	own := approve(t, p, "sub-ward", c, asked, "name", "birthdate")
	for _, tr := range []idp.TokenRelease{
		{ClientID: "site", CitizenID: "sub-ward", Agreed: []string{"name", "birthdate"}, OnBehalf: holder, Bounded: true},
		{ClientID: "site", CitizenID: "sub-ward", ConsentID: own, Agreed: []string{"name", "birthdate"}, OnBehalf: holder, Bounded: true},
	} {
		if got, err := p.Released(ctx, tr); err != nil || len(got.Claims) != 0 || got.ConsentID != "" {
			t.Errorf("the mandate holder's token %+v: %v, %v; want nothing", tr, got, err)
		}
	}
	// A guardian (unbounded) records and releases under the consent rules.
	guardian := &consent.OnBehalf{CitizenID: "sub-guardian", Basis: "guardian"}
	a, err = p.Record(ctx, &idp.Approval{CitizenID: "sub-ward", Client: c, Plan: asked, Shared: []string{"name"}, Evidence: "aGVh.cGF5.c2ln", OnBehalf: guardian})
	mustNil(t, err, "the guardian's approval")
	got, err := p.Released(ctx, idp.TokenRelease{ClientID: "site", CitizenID: "sub-ward", ConsentID: a.ConsentID, Agreed: []string{"name", "birthdate"}, OnBehalf: guardian})
	mustNil(t, err, "the guardian's token")
	equal(t, got.Claims, []string{"name"}, "the guardian's token")
}

// RunMoveGrantsTests checks idp.MoveGrants: the grants rows written before
// consent records (schema 0009) become consent records once, for the
// client's first purpose (or login) with their evidence, narrowed to what
// the client may receive; a second run moves nothing, and a row left behind
// by a run interrupted after recording is only removed. db is a fresh,
// empty database; store returns a store over it; newConsent a migrated consent
// service beside it (ConsentService).
func RunMoveGrantsTests(t *testing.T, db *sql.DB, store func() Migrator, newConsent func(t *testing.T, s idp.Store) *consent.Service) {
	ctx := context.Background()
	s := store()
	type migrateTo interface {
		MigrateTo(ctx context.Context, version int) error
	}
	mt, ok := s.(migrateTo)
	if !ok {
		t.Fatal("store cannot migrate to a version")
	}
	mustNil(t, mt.MigrateTo(ctx, 9), "migrate to 0009")
	for _, q := range []string{
		`INSERT INTO idp_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes,
			auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at, claims, agency)
			VALUES ('old', 'Old agency', NULL, '["https://old.example/cb"]', '[]', '["authorization_code"]', '["openid","profile"]',
			'none', '', '', false, 'ES256', 1740823200123, '[]', '')`,
		`INSERT INTO idp_grants (citizen_id, client_id, claims, evidence, updated_at) VALUES ('sub-1', 'old', '["name","personal_id"]', 'aGVh.cGF5.c2ln', 1740823200123)`,
		`INSERT INTO idp_grants (citizen_id, client_id, claims, evidence, updated_at) VALUES ('sub-2', 'old', '["gender"]', '', 1740823200123)`,
		`INSERT INTO idp_grants (citizen_id, client_id, claims, evidence, updated_at) VALUES ('sub-1', 'gone', '["name"]', '', 1740823200123)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("seed at 0009: %v", err)
		}
	}
	mustNil(t, s.Migrate(ctx), "migrate")
	c, err := s.GetClient(ctx, "old")
	mustNil(t, err, "get old client")
	if c.Purposes != nil || c.DefaultPurpose() != consent.LoginPurpose {
		t.Errorf("old client after 0010: purposes %v", c.Purposes)
	}
	cs := newConsent(t, s)
	n, err := idp.MoveGrants(ctx, s, s, cs)
	mustNil(t, err, "move grants")
	if n != 2 {
		t.Errorf("moved %d grants, want 2 (the deleted client's is dropped)", n)
	}
	r, err := cs.Remembered(ctx, "sub-1", "old", consent.LoginPurpose.Code)
	mustNil(t, err, "remembered")
	if r == nil {
		t.Fatal("no consent for the moved grant")
	}
	// personal_id was never the client's to receive.
	equal(t, r.Items, []string{"name"}, "moved items")
	if r.Evidence != "aGVh.cGF5.c2ln" || r.Method != consent.MethodEIDApp || r.Recipient != "Old agency" || r.Version != 1 {
		t.Errorf("moved consent: %+v", r)
	}
	left, err := s.LegacyGrants(ctx, 10)
	mustNil(t, err, "legacy grants")
	if len(left) != 0 {
		t.Errorf("%d grants left after the move", len(left))
	}
	// Idempotent: a second run moves nothing; a row an interrupted run left
	// behind after recording its consent is removed without a second grant.
	n, err = idp.MoveGrants(ctx, s, s, cs)
	mustNil(t, err, "move again")
	if n != 0 {
		t.Errorf("second run moved %d", n)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO idp_grants (citizen_id, client_id, claims, evidence, updated_at)
		VALUES ('sub-1', 'old', '["name"]', 'aGVh.cGF5.c2ln', 1740823200123)`); err != nil {
		t.Fatal(err)
	}
	n, err = idp.MoveGrants(ctx, s, s, cs)
	mustNil(t, err, "move after an interruption")
	r2, err := cs.Remembered(ctx, "sub-1", "old", consent.LoginPurpose.Code)
	mustNil(t, err, "remembered after rerun")
	if n != 0 || r2.ID != r.ID || r2.Version != 1 {
		t.Errorf("rerun recorded again: moved %d, record %s v%d", n, r2.ID, r2.Version)
	}
	left, _ = s.LegacyGrants(ctx, 10)
	if len(left) != 0 {
		t.Errorf("%d grants left after the rerun", len(left))
	}
}

// RunMigration0005Tests checks that migration 0005 keeps the clients and
// grants written under 0001: clients gain no claims, grants no evidence.
// db is a fresh, empty database; init is 0001's SQL for its dialect; store
// returns a store over db.
func RunMigration0005Tests(t *testing.T, db *sql.DB, init string, store func() Migrator) {
	ctx := context.Background()
	for _, q := range []string{init,
		`CREATE TABLE IF NOT EXISTS idp_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
		`INSERT INTO idp_schema_migrations (version, name, applied_at) VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO idp_clients (id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, scopes,
			auth_method, jwks, jwks_uri, par_required, id_token_alg, created_at)
			VALUES ('old', 'Old agency', NULL, '["https://old.example/cb"]', '[]', '["authorization_code"]', '["openid","profile"]',
			'none', '', '', false, 'ES256', 1740823200123)`,
		`INSERT INTO idp_grants (citizen_id, client_id, claims, updated_at) VALUES ('sub-1', 'old', '["name"]', 1740823200123)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("seed before 0005: %v", err)
		}
	}
	s := store()
	mustNil(t, s.Migrate(ctx), "migrate")
	c, err := s.GetClient(ctx, "old")
	mustNil(t, err, "get old client")
	if c.Name != "Old agency" || c.Claims != nil || !slices.Equal(c.AllowedClaims(), idp.ScopeClaims(idp.ScopeProfile)) {
		t.Errorf("old client after 0005: %+v", c)
	}
	gs, err := s.LegacyGrants(ctx, 10)
	mustNil(t, err, "old grants")
	equal(t, gs, []*idp.LegacyGrant{{CitizenID: "sub-1", ClientID: "old", Claims: []string{"name"}, UpdatedAt: base}}, "old grant after 0005")
}
