package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/represent"
	"github.com/onedoor/onedoor/represent/evidence"
)

// mandateEnv is three citizens with the eID app, an organisation whose
// legal representative is the first, and a service in the catalog.
type mandateEnv struct {
	*testEnv
	org     string // the organisation's tax code
	service string // a catalog service code, of category civil_status
	// until ends every mandate the tests grant: a sub-mandate may last
	// as long as its parent, not a second longer.
	until                      time.Time
	alice, bob, carol          *apiClient
	aliceApp, bobApp, carolApp *eidapp.App
}

func startMandateEnv(t *testing.T, opts ...envOption) *mandateEnv {
	t.Helper()
	e := startMain(t, opts...)
	ctx := context.Background()
	if err := e.m.ImportCitizens(ctx, demoCitizens[2:3]); err != nil && !errors.Is(err, idp.ErrConflict) {
		t.Fatalf("import: %v", err)
	}
	seedAgencies(t, e.m)
	e.agencyAPI(t, "T-BTP").must(http.StatusCreated, http.MethodPut, "/agency/v1/services/T-MDT.1", []byte(birthService))
	me := &mandateEnv{testEnv: e, org: "0109990001", service: "T-MDT.1", until: time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second).UTC()}
	if _, err := e.m.Represent.Store.PutOrganisations(ctx, []*represent.Organisation{{TaxCode: me.org, Name: "Công ty TNHH Mẫu Ủy Quyền (demo)",
		LegalRepresentative: demoCitizens[0].PersonalID, Status: represent.OrgActive}}); err != nil {
		t.Fatalf("organisation: %v", err)
	}
	me.aliceApp, me.bobApp, me.carolApp = e.app, e.enroll(demoCitizens[1].PersonalID, idp.LevelHigh), e.enroll(demoCitizens[2].PersonalID, idp.LevelHigh)
	me.alice, me.bob, me.carol = e.citizenAPI(t, me.aliceApp), e.citizenAPI(t, me.bobApp), e.citizenAPI(t, me.carolApp)
	return me
}

// grantBody is a POST /v1/mandates body whose terms are t, signed by the
// app's device key with claims changed by mut.
func (e *mandateEnv) grantBody(t *testing.T, app *eidapp.App, terms evidence.Terms, mut func(*evidence.Claims)) []byte {
	t.Helper()
	_, key := deviceKey(t, app)
	c := evidence.Claims{Issuer: app.Enrollment().DeviceID, Audience: e.m.APIURL, IssuedAt: time.Now().Unix(), ID: rand.Text(), Mandate: terms}
	if mut != nil {
		mut(&c)
	}
	jws, err := evidence.Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return mandateJSON(t, terms, jws)
}

func mandateJSON(t *testing.T, terms evidence.Terms, jws string) []byte {
	t.Helper()
	b, err := json.Marshal(struct {
		evidence.Terms
		Signature string `json:"signature"`
	}{terms, jws})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *mandateEnv) terms(grantee string) evidence.Terms {
	return evidence.Terms{Organisation: e.org, Grantee: grantee, Services: []string{e.service}, Categories: []string{},
		ValidUntil: e.until}
}

// field is the problem's message for a body member, "" when not listed.
func problemField(t *testing.T, r apiResp, pointer string) string {
	t.Helper()
	var p struct {
		Errors []struct {
			Pointer string `json:"pointer"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem: %s", r.body)
	}
	for _, f := range p.Errors {
		if f.Pointer == pointer {
			return f.Message
		}
	}
	return ""
}

func representations(t *testing.T, c *apiClient) []map[string]any {
	t.Helper()
	var out struct {
		Items []map[string]any `json:"items"`
	}
	r := c.must(http.StatusOK, http.MethodGet, "/v1/representations", nil)
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Items
}

// representsBy returns the basis on which the list includes the party
// (by tax code), "" when it does not.
func representsBy(items []map[string]any, taxCode string) string {
	for _, it := range items {
		if p, _ := it["party"].(map[string]any); p != nil && p["tax_code"] == taxCode {
			b, _ := it["basis"].(string)
			return b
		}
	}
	return ""
}

func runMandateAPI(t *testing.T, e *mandateEnv) {
	bobPID, carolPID := demoCitizens[1].PersonalID, demoCitizens[2].PersonalID

	t.Run("the legal representative grants, the grantee accepts, acts, and the grantor revokes", func(t *testing.T) {
		if got := representsBy(representations(t, e.alice), e.org); got != "legal_representative" {
			t.Fatalf("alice represents the organisation as %q", got)
		}
		if got := representsBy(representations(t, e.bob), e.org); got != "" {
			t.Fatalf("bob represents the organisation before any mandate, as %q", got)
		}
		terms := e.terms(bobPID)
		body := e.grantBody(t, e.aliceApp, terms, nil)
		key := "mdt-" + rand.Text()
		r := e.alice.must(http.StatusCreated, http.MethodPost, "/v1/mandates", body, "Idempotency-Key", key)
		m := r.json(t)
		id, _ := m["id"].(string)
		if r.header.Get("Location") != "/v1/mandates/"+id || m["state"] != "pending" || m["direction"] != "granted" {
			t.Fatalf("granted: Location %q, %s", r.header.Get("Location"), r.body)
		}
		if g, _ := m["grantee"].(map[string]any); g["personal_id"] != bobPID {
			t.Errorf("grantee %v", m["grantee"])
		}
		ev, _ := m["evidence"].(string)
		if _, err := evidence.Parse(ev); err != nil {
			t.Errorf("the evidence kept is not the signature: %v", err)
		}
		stored, err := e.m.Represent.Store.GetMandate(context.Background(), id)
		if err != nil || stored.EvidenceDevice != e.aliceApp.Enrollment().DeviceID || stored.Evidence != ev {
			t.Errorf("stored evidence: device %q, %v", stored.EvidenceDevice, err)
		}
		// A retry with the key answers the same mandate; without it the
		// signature is spent.
		again := e.alice.must(http.StatusCreated, http.MethodPost, "/v1/mandates", body, "Idempotency-Key", key)
		if again.json(t)["id"] != id || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry: %s", again.body)
		}
		r = e.alice.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/mandates", body)
		if msg := problemField(t, r, "/signature"); !strings.Contains(msg, "already used") {
			t.Errorf("replayed signature: %s", r.body)
		}

		list := e.bob.must(http.StatusOK, http.MethodGet, "/v1/mandates", nil).json(t)
		items, _ := list["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["direction"] != "received" || items[0].(map[string]any)["state"] != "pending" {
			t.Fatalf("bob's mandates: %v", list)
		}
		if got := representsBy(representations(t, e.bob), e.org); got != "" {
			t.Errorf("a pending mandate represents: %q", got)
		}
		r = e.alice.must(http.StatusForbidden, http.MethodPost, "/v1/mandates/"+id+"/accept", nil)
		_ = r
		r = e.bob.must(http.StatusOK, http.MethodPost, "/v1/mandates/"+id+"/accept", nil)
		if m := r.json(t); m["state"] != "active" || m["accepted_at"] == nil {
			t.Errorf("accepted: %s", r.body)
		}
		e.bob.must(http.StatusConflict, http.MethodPost, "/v1/mandates/"+id+"/accept", nil)

		reps := representations(t, e.bob)
		if got := representsBy(reps, e.org); got != "mandate" {
			t.Fatalf("bob represents the organisation as %q: %v", got, reps)
		}
		for _, it := range reps {
			if it["mandate_id"] == id {
				if svcs, _ := it["services"].([]any); len(svcs) != 1 || svcs[0] != e.service {
					t.Errorf("services %v", it["services"])
				}
				if g, _ := it["grantor"].(map[string]any); g["personal_id"] != demoCitizens[0].PersonalID {
					t.Errorf("grantor %v", it["grantor"])
				}
			}
		}

		// A third citizen learns nothing of it.
		e.carol.must(http.StatusNotFound, http.MethodGet, "/v1/mandates/"+id, nil)
		e.carol.must(http.StatusNotFound, http.MethodPost, "/v1/mandates/"+id+"/accept", nil)
		e.carol.must(http.StatusNotFound, http.MethodDelete, "/v1/mandates/"+id, nil)
		if l := e.carol.must(http.StatusOK, http.MethodGet, "/v1/mandates", nil).json(t); len(l["items"].([]any)) != 0 {
			t.Errorf("carol's mandates: %v", l)
		}

		r = e.alice.must(http.StatusOK, http.MethodDelete, "/v1/mandates/"+id, nil)
		if m := r.json(t); m["state"] != "revoked" || m["revoked_by"] != "grantor" {
			t.Errorf("revoked: %s", r.body)
		}
		e.alice.must(http.StatusConflict, http.MethodDelete, "/v1/mandates/"+id, nil)
		if got := representsBy(representations(t, e.bob), e.org); got != "" {
			t.Errorf("bob still represents the organisation as %q after the revocation", got)
		}
		if m := e.bob.must(http.StatusOK, http.MethodGet, "/v1/mandates/"+id, nil).json(t); m["state"] != "revoked" {
			t.Errorf("bob's view: %v", m)
		}
	})

	t.Run("the evidence must be the token's device's, for this API, now, over these terms", func(t *testing.T) {
		terms := e.terms(bobPID)
		cases := []struct {
			name string
			body []byte
			want string
		}{
			{"another device's key", e.grantBody(t, e.carolApp, terms, nil), "not by the device key"},
			{"aud of another API", e.grantBody(t, e.aliceApp, terms, func(c *evidence.Claims) { c.Audience = "https://api.other.example" }), "aud"},
			{"another device id", e.grantBody(t, e.aliceApp, terms, func(c *evidence.Claims) { c.Issuer = "dev_other" }), "iss"},
			{"signed an hour ago", e.grantBody(t, e.aliceApp, terms, func(c *evidence.Claims) { c.IssuedAt = time.Now().Add(-time.Hour).Unix() }), "iat"},
			{"the body asks more than was signed", func() []byte {
				signed := e.grantBody(t, e.aliceApp, terms, nil)
				var m map[string]any
				_ = json.Unmarshal(signed, &m)
				m["may_delegate"] = true
				m["valid_until"] = terms.ValidUntil.Add(24 * time.Hour).Format(time.RFC3339)
				b, _ := json.Marshal(m)
				return b
			}(), "may_delegate"},
			{"not a JWS", mandateJSON(t, terms, "not-a-jws"), "compact JWS"},
		}
		for _, tc := range cases {
			r := e.alice.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/mandates", tc.body)
			if msg := problemField(t, r, "/signature"); !strings.Contains(msg, tc.want) {
				t.Errorf("%s: %s, want /signature mentioning %q", tc.name, r.body, tc.want)
			}
		}
	})

	t.Run("bad terms are listed, each", func(t *testing.T) {
		bad := func(name string, mut func(*evidence.Terms), pointers ...string) {
			t.Helper()
			terms := e.terms(bobPID)
			mut(&terms)
			r := e.alice.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/mandates", e.grantBody(t, e.aliceApp, terms, nil))
			for _, p := range pointers {
				if problemField(t, r, p) == "" {
					t.Errorf("%s: %s does not list %s", name, r.body, p)
				}
			}
		}
		bad("unknown tax code", func(x *evidence.Terms) { x.Organisation = "0109999999" }, "/organisation")
		bad("grantee oneself", func(x *evidence.Terms) { x.Grantee = demoCitizens[0].PersonalID }, "/grantee")
		bad("grantee unknown", func(x *evidence.Terms) { x.Grantee = "000000009999" }, "/grantee")
		bad("expired", func(x *evidence.Terms) { x.ValidUntil = time.Now().Add(-time.Hour).Truncate(time.Second) }, "/valid_until")
		bad("unknown service and category", func(x *evidence.Terms) {
			x.Services = []string{e.service, "9.999999"}
			x.Categories = []string{"no_such_category"}
		}, "/services/1", "/categories/0")
		bad("nothing covered", func(x *evidence.Terms) { x.Services = []string{} }, "/services")

		// Several bad fields of the body itself, listed together.
		r := e.alice.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/mandates",
			[]byte(`{"organisation":"`+e.org+`","grantee":"`+bobPID+`","services":["9.999999"],"valid_from":"tomorrow","valid_until":"2027-13-01"}`))
		for _, p := range []string{"/services/0", "/valid_from", "/valid_until", "/signature"} {
			if problemField(t, r, p) == "" {
				t.Errorf("%s not listed: %s", p, r.body)
			}
		}
		e.alice.must(http.StatusBadRequest, http.MethodPost, "/v1/mandates", []byte(`{"organisation":"`+e.org+`","grantee":"`+bobPID+`","everything":true}`))
		e.alice.must(http.StatusBadRequest, http.MethodPost, "/v1/mandates", []byte(`{"grantee":"a","grantee":"b"}`))
		e.alice.must(http.StatusRequestEntityTooLarge, http.MethodPost, "/v1/mandates",
			[]byte(`{"organisation":"`+e.org+`","signature":"`+strings.Repeat("a", 70<<10)+`"}`))
	})

	t.Run("only a representative grants", func(t *testing.T) {
		r := e.carol.must(http.StatusForbidden, http.MethodPost, "/v1/mandates", e.grantBody(t, e.carolApp, e.terms(bobPID), nil))
		if !strings.Contains(string(r.body), "represent") {
			t.Errorf("403 without a clear reason: %s", r.body)
		}
	})

	t.Run("sub-delegation: within the parent, never circular, falls with it", func(t *testing.T) {
		terms := e.terms(bobPID)
		terms.MayDelegate = true
		parent := e.alice.must(http.StatusCreated, http.MethodPost, "/v1/mandates", e.grantBody(t, e.aliceApp, terms, nil)).json(t)["id"].(string)
		e.bob.must(http.StatusOK, http.MethodPost, "/v1/mandates/"+parent+"/accept", nil)

		// Back to the legal representative: circular.
		back := e.terms(demoCitizens[0].PersonalID)
		r := e.bob.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/mandates", e.grantBody(t, e.bobApp, back, nil))
		if !strings.Contains(problemField(t, r, "/grantee"), "circular") {
			t.Errorf("mandate back to the grantor: %s", r.body)
		}
		// Longer than the parent: not represented for that long.
		longer := e.terms(carolPID)
		longer.ValidUntil = terms.ValidUntil.Add(24 * time.Hour)
		e.bob.must(http.StatusForbidden, http.MethodPost, "/v1/mandates", e.grantBody(t, e.bobApp, longer, nil))

		sub := e.terms(carolPID)
		sub.MayDelegate = true
		child := e.bob.must(http.StatusCreated, http.MethodPost, "/v1/mandates", e.grantBody(t, e.bobApp, sub, nil)).json(t)
		if child["parent_id"] != parent {
			t.Errorf("sub-mandate parent %v, want %s", child["parent_id"], parent)
		}
		childID := child["id"].(string)
		e.carol.must(http.StatusOK, http.MethodPost, "/v1/mandates/"+childID+"/accept", nil)
		if got := representsBy(representations(t, e.carol), e.org); got != "mandate" {
			t.Fatalf("carol represents the organisation as %q", got)
		}
		// Carol back to Bob: he is in the chain.
		r = e.carol.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/mandates", e.grantBody(t, e.carolApp, e.terms(bobPID), nil))
		if !strings.Contains(problemField(t, r, "/grantee"), "circular") {
			t.Errorf("mandate back up the chain: %s", r.body)
		}

		// The grantee ends the parent: the sub-mandate falls with it.
		if m := e.bob.must(http.StatusOK, http.MethodDelete, "/v1/mandates/"+parent, nil).json(t); m["revoked_by"] != "grantee" {
			t.Errorf("revoked by %v", m["revoked_by"])
		}
		if m := e.carol.must(http.StatusOK, http.MethodGet, "/v1/mandates/"+childID, nil).json(t); m["state"] != "revoked" || m["revoked_by"] != "parent" {
			t.Errorf("the sub-mandate after its parent's revocation: %v", m)
		}
		if got := representsBy(representations(t, e.carol), e.org); got != "" {
			t.Errorf("carol still represents the organisation as %q", got)
		}
	})

	t.Run("a guardian grants a mandate for the ward", func(t *testing.T) {
		ctx := context.Background()
		ward := demoCitizens[3]
		if err := e.m.ImportCitizens(ctx, demoCitizens[3:4]); err != nil && !errors.Is(err, idp.ErrConflict) {
			t.Fatalf("import: %v", err)
		}
		if err := e.m.Store.AddGuardianship(ctx, represent.Guardianship{WardID: e.citizenID(t, ward.PersonalID), GuardianID: e.citizenID(t, demoCitizens[0].PersonalID),
			Source: represent.GuardianCourt}); err != nil {
			t.Fatalf("guardianship: %v", err)
		}
		terms := e.terms(bobPID)
		terms.Organisation, terms.Person = "", ward.PersonalID
		// The ward cannot hold a mandate to act for themselves.
		self := terms
		self.Grantee = ward.PersonalID
		r := e.alice.must(http.StatusUnprocessableEntity, http.MethodPost, "/v1/mandates", e.grantBody(t, e.aliceApp, self, nil))
		if problemField(t, r, "/grantee") == "" {
			t.Errorf("a mandate to the ward: %s", r.body)
		}
		m := e.alice.must(http.StatusCreated, http.MethodPost, "/v1/mandates", e.grantBody(t, e.aliceApp, terms, nil)).json(t)
		if p, _ := m["party"].(map[string]any); p["type"] != "person" || p["personal_id"] != ward.PersonalID || p["tax_code"] != nil {
			t.Errorf("party %v", m["party"])
		}
		e.bob.must(http.StatusOK, http.MethodPost, "/v1/mandates/"+m["id"].(string)+"/accept", nil)
		found := false
		for _, it := range representations(t, e.bob) {
			if p, _ := it["party"].(map[string]any); p["personal_id"] == ward.PersonalID && it["basis"] == "mandate" {
				found = true
			}
		}
		if !found {
			t.Error("bob does not represent the ward under the mandate")
		}
		e.bob.must(http.StatusOK, http.MethodDelete, "/v1/mandates/"+m["id"].(string), nil)
	})

	t.Run("the list is paged", func(t *testing.T) {
		all := e.alice.must(http.StatusOK, http.MethodGet, "/v1/mandates", nil).json(t)["items"].([]any)
		if len(all) < 2 {
			t.Fatalf("%d mandates", len(all))
		}
		var ids []any
		cursor := ""
		for range len(all) + 1 {
			path := "/v1/mandates?limit=1"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			p := e.alice.must(http.StatusOK, http.MethodGet, path, nil).json(t)
			for _, it := range p["items"].([]any) {
				ids = append(ids, it.(map[string]any)["id"])
			}
			next, _ := p["next_cursor"].(string)
			if next == "" {
				break
			}
			cursor = next
		}
		want := make([]any, 0, len(all))
		for _, it := range all {
			want = append(want, it.(map[string]any)["id"])
		}
		if !slices.Equal(ids, want) {
			t.Errorf("paged %v, want %v", ids, want)
		}
		e.alice.must(http.StatusBadRequest, http.MethodGet, "/v1/mandates?cursor=mdt_nosuch", nil)
		r := e.alice.must(http.StatusOK, http.MethodGet, "/v1/mandates", nil)
		e.alice.must(http.StatusNotModified, http.MethodGet, "/v1/mandates", nil, "If-None-Match", r.header.Get("ETag"))
	})

	t.Run("the reference eID app", func(t *testing.T) {
		ctx := context.Background()
		api := e.m.APIURL
		m, err := e.aliceApp.GrantMandate(ctx, api, eidapp.MandateTerms{Organisation: e.org, Grantee: carolPID, Categories: []string{"civil_status"},
			ValidUntil: time.Now().Add(48 * time.Hour)})
		if err != nil {
			t.Fatalf("grant: %v", err)
		}
		if m.State != "pending" || m.Direction != "granted" {
			t.Errorf("granted %+v", m)
		}
		ms, err := e.carolApp.Mandates(ctx, api)
		if err != nil || !slices.ContainsFunc(ms, func(x eidapp.Mandate) bool { return x.ID == m.ID && x.Direction == "received" }) {
			t.Fatalf("carol's mandates: %v %v", ms, err)
		}
		if _, err := e.carolApp.AcceptMandate(ctx, api, m.ID); err != nil {
			t.Fatalf("accept: %v", err)
		}
		reps, err := e.carolApp.Representations(ctx, api)
		if err != nil || !slices.ContainsFunc(reps, func(r eidapp.Representation) bool {
			return r.Basis == "mandate" && r.MandateID != nil && *r.MandateID == m.ID
		}) {
			t.Fatalf("carol's representations: %+v %v", reps, err)
		}
		if r, err := e.carolApp.RevokeMandate(ctx, api, m.ID); err != nil || r.State != "revoked" {
			t.Fatalf("revoke: %+v %v", r, err)
		}
		_, err = e.aliceApp.GrantMandate(ctx, api, eidapp.MandateTerms{Organisation: e.org, Grantee: carolPID, Services: []string{"9.999999"},
			ValidUntil: time.Now().Add(48 * time.Hour)})
		var pe *eidapp.ProblemError
		if !errors.As(err, &pe) || pe.StatusCode != http.StatusUnprocessableEntity || len(pe.Fields) != 1 || pe.Fields[0].Pointer != "/services/0" {
			t.Errorf("an unknown service: %v", err)
		}
	})
}

func TestMandateAPI_SQLite(t *testing.T) {
	t.Parallel()
	runMandateAPI(t, startMandateEnv(t))
}

// The reference CLI: eidsim's mandate commands on the homes the tests'
// apps enrolled, against the running API.
func TestMandateAPI_Eidsim(t *testing.T) {
	t.Parallel()
	e := startMandateEnv(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "eidsim")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, "../eidsim").CombinedOutput(); err != nil {
		t.Fatalf("go build eidsim: %v\n%s", err, out)
	}
	eidsim := func(app *eidapp.App, args ...string) (string, error) {
		t.Helper()
		cmd := exec.CommandContext(ctx, bin, append(args, "--home", app.Home, "--api", e.m.APIURL)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return string(out) + stderr.String(), err
		}
		return string(out), nil
	}
	var m eidapp.Mandate
	out, err := eidsim(e.aliceApp, "mandate", "grant", "--organisation", e.org, "--grantee", demoCitizens[1].PersonalID,
		"--service", e.service, "--category", "civil_status", "--valid-until", e.until.In(time.FixedZone("ICT", 7*3600)).Format(time.DateOnly))
	if err != nil || json.Unmarshal([]byte(out), &m) != nil || m.State != "pending" {
		t.Fatalf("mandate grant: %v\n%s", err, out)
	}
	if out, err := eidsim(e.bobApp, "mandate", "list"); err != nil || !strings.Contains(out, m.ID) || !strings.Contains(out, `"direction": "received"`) {
		t.Fatalf("mandate list: %v\n%s", err, out)
	}
	if out, err := eidsim(e.bobApp, "mandate", "accept", m.ID); err != nil || !strings.Contains(out, `"state": "active"`) {
		t.Fatalf("mandate accept: %v\n%s", err, out)
	}
	if out, err := eidsim(e.bobApp, "representations"); err != nil || !strings.Contains(out, `"basis": "mandate"`) || !strings.Contains(out, e.org) {
		t.Fatalf("representations: %v\n%s", err, out)
	}
	if out, err := eidsim(e.aliceApp, "mandate", "revoke", m.ID); err != nil || !strings.Contains(out, `"state": "revoked"`) {
		t.Fatalf("mandate revoke: %v\n%s", err, out)
	}
	if out, err := eidsim(e.bobApp, "representations"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("representations after the revocation: %v\n%s", err, out)
	}
	// A refusal exits 1 and lists the bad fields.
	out, err = eidsim(e.carolApp, "mandate", "grant", "--organisation", e.org, "--grantee", demoCitizens[0].PersonalID,
		"--service", "9.999999", "--valid-until", "2030-01-01")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "/services/0") {
		t.Errorf("a refused grant: %v\n%s", err, out)
	}
}

func TestMandateAPI_PostgresRedis(t *testing.T) {
	t.Parallel()
	runMandateAPI(t, startMandateEnv(t, scaleOption(t)))
}
