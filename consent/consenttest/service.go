package consenttest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// RunService runs consent.Service over a real store: grants and their
// receipts, withdrawal and the deny hook, decisions on consent and on
// legal bases, and the broker's log entries. newStore returns an empty,
// migrated store; each subtest gets its own.
func RunService(t *testing.T, newStore func(t *testing.T) consent.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s *consent.Service, sg *jwsSigner)
	}{
		{"GrantReceiptAndRegrant", svcGrant},
		{"WithdrawDeniesTokensFirst", svcWithdraw},
		{"DecideAndFetch", svcDecideAndFetch},
		{"BasisVersionAndNamesInEntries", svcBasisVersionAndNames},
		{"BasisRevokedWhileReading", svcRevokedWhileReading},
		{"BasisAmendedWhileReading", svcAmendedWhileReading},
		{"ConsentWithdrawnWhileReading", svcWithdrawnWhileReading},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sg := &jwsSigner{}
			tc.fn(t, &consent.Service{Store: newStore(t), Signer: sg, Issuer: "https://id.example"}, sg)
		})
	}
}

// jwsSigner is a stand-in for the platform key: it makes a compact JWS
// whose payload the test can read (the signature is not checked here; the
// IdP's key manager is tested where it lives).
type jwsSigner struct {
	mu   sync.Mutex
	fail error
}

func (j *jwsSigner) SignJWS(_ context.Context, typ string, claims map[string]any) (string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fail != nil {
		return "", j.fail
	}
	h, _ := json.Marshal(map[string]string{"alg": "none-test", "typ": typ})
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + ".sig", nil
}

func payload(t *testing.T, jws string) map[string]any {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", jws)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func grantReq(citizen, client, purpose string, items ...string) *consent.Record {
	return &consent.Record{CitizenID: citizen, ClientID: client, Agency: "BYT", Recipient: "Bệnh viện Demo",
		Purpose: consent.Purpose{Code: purpose, Text: "Khám bệnh"}, Items: items, Notice: "v1",
		Method: consent.MethodEIDApp, Evidence: "device.signed.approval"}
}

func svcGrant(t *testing.T, s *consent.Service, sg *jwsSigner) {
	ctx := t.Context()
	r, rc, err := s.Grant(ctx, grantReq("cit_1", "his", "kham-benh", "name", "birthdate"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 || rc.Kind != consent.ReceiptGranted || rc.ConsentID != r.ID || rc.Version != 1 {
		t.Fatalf("grant: %+v, receipt %+v", r, rc)
	}
	c := payload(t, rc.JWS)
	inner, _ := c["consent"].(map[string]any)
	if c["sub"] != "cit_1" || c["event"] != "granted" || c["jti"] != rc.ID || inner["id"] != r.ID || inner["evidence_hash"] == "" {
		t.Fatalf("receipt claims: %v", c)
	}
	stored, err := s.Store.GetReceipt(ctx, "cit_1", rc.ID)
	if err != nil || stored.JWS != rc.JWS {
		t.Fatalf("stored receipt: %+v, %v", stored, err)
	}
	again, rc2, err := s.Grant(ctx, grantReq("cit_1", "his", "kham-benh", "name", "birthdate", "address"))
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != r.ID || again.Version != 2 || rc2.Version != 2 || payload(t, rc2.JWS)["consent"].(map[string]any)["version"] != float64(2) {
		t.Fatalf("re-grant: %+v, receipt %+v", again, rc2)
	}
	rem, err := s.Remembered(ctx, "cit_1", "his", "kham-benh")
	if err != nil || rem == nil || rem.ID != r.ID || !rem.Covers([]string{"address"}) {
		t.Fatalf("Remembered: %+v, %v", rem, err)
	}
	if rem, err := s.Remembered(ctx, "cit_1", "other-client", "kham-benh"); err != nil || rem != nil {
		t.Fatalf("Remembered for another client: %+v, %v", rem, err)
	}
	// A signer that fails stores nothing.
	sg.fail = errors.New("key unavailable")
	if _, _, err := s.Grant(ctx, grantReq("cit_1", "his", "tiem-chung", "name")); err == nil {
		t.Fatal("grant with a failing signer succeeded")
	}
	sg.fail = nil
	if rem, err := s.Remembered(ctx, "cit_1", "his", "tiem-chung"); err != nil || rem != nil {
		t.Fatalf("record after a failed grant: %+v, %v", rem, err)
	}
}

func svcWithdraw(t *testing.T, s *consent.Service, _ *jwsSigner) {
	ctx := t.Context()
	var denied []string
	denyErr := errors.New("deny list down")
	fail := true
	s.Deny = func(_ context.Context, id string) error {
		if fail {
			return denyErr
		}
		denied = append(denied, id)
		return nil
	}
	r, _, err := s.Grant(ctx, grantReq("cit_1", "his", "kham-benh", "name"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Withdraw(ctx, "cit_1", r.ID); !errors.Is(err, denyErr) {
		t.Fatalf("withdraw with the deny list down: %v", err)
	}
	if _, err := s.Active(ctx, r.ID); err != nil {
		t.Fatalf("a failed withdrawal ended the consent: %v", err)
	}
	fail = false
	if _, _, err := s.Withdraw(ctx, "cit_2", r.ID); !errors.Is(err, consent.ErrNotFound) {
		t.Fatalf("another citizen's withdrawal: %v", err)
	}
	w, rc, err := s.Withdraw(ctx, "cit_1", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if w.WithdrawnAt == nil || rc.Kind != consent.ReceiptWithdrawn || len(denied) != 1 || denied[0] != r.ID {
		t.Fatalf("withdraw: %+v, receipt %+v, denied %v", w, rc, denied)
	}
	if _, ok := payload(t, rc.JWS)["consent"].(map[string]any)["withdrawn_at"]; !ok {
		t.Fatal("withdrawal receipt does not say when")
	}
	if _, _, err := s.Withdraw(ctx, "cit_1", r.ID); !errors.Is(err, consent.ErrWithdrawn) {
		t.Fatalf("second withdrawal: %v", err)
	}
	if _, err := s.Active(ctx, r.ID); !errors.Is(err, consent.ErrWithdrawn) {
		t.Fatalf("Active after withdrawal: %v", err)
	}
	if rcs, err := s.Store.Receipts(ctx, "cit_1", r.ID); err != nil || len(rcs) != 2 {
		t.Fatalf("receipts: %d, %v", len(rcs), err)
	}
}

// registry is a stand-in register holding two items of one citizen.
type registry struct{ reads int }

func (r *registry) Read(_ context.Context, citizenID string, items []string) (map[string]consent.Value, error) {
	r.reads++
	if citizenID != "cit_1" {
		return nil, consent.ErrNotFound
	}
	have := map[string]any{"name": "Nguyễn Văn Demo", "birthdate": "1990-01-01"}
	out := map[string]consent.Value{}
	for _, it := range items {
		if v, ok := have[it]; ok {
			out[it] = consent.Value{Value: v, Source: "csdl-dan-cu", UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		}
	}
	return out, nil
}

func svcDecideAndFetch(t *testing.T, s *consent.Service, _ *jwsSigner) {
	ctx := t.Context()
	reg := &registry{}
	actor := consent.Actor{Agency: "BYT", ClientID: "his"}
	req := consent.Request{CitizenID: "cit_1", Actor: actor, Channel: consent.ChannelBroker, Purpose: "kham-benh", Items: []string{"name", "birthdate"}}

	// Neither consent nor a legal basis: refused, logged, nothing read.
	_, _, err := s.Fetch(ctx, reg, req)
	var refused *consent.RefusedError
	if !errors.As(err, &refused) || len(refused.Missing) != 2 || reg.reads != 0 {
		t.Fatalf("fetch without a basis: %v (reads %d)", err, reg.reads)
	}
	s.Drain() // refusals are logged after their answers

	// A consent covering one item only: still refused, saying why for
	// each item.
	r, _, err := s.Grant(ctx, grantReq("cit_1", "his", "kham-benh", "name"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Fetch(ctx, reg, req)
	if !errors.As(err, &refused) || !strings.Contains(refused.Missing["birthdate"], "no consent") || !strings.Contains(refused.Missing["name"], "not every item") {
		t.Fatalf("fetch beyond the consent: %v", err)
	}
	s.Drain()

	// Consent covering both: released, logged with the consent.
	if _, _, err := s.Grant(ctx, grantReq("cit_1", "his", "kham-benh", "name", "birthdate")); err != nil {
		t.Fatal(err)
	}
	vals, e, err := s.Fetch(ctx, reg, req)
	if err != nil {
		t.Fatal(err)
	}
	if vals["name"].Source != "csdl-dan-cu" || e.Basis != consent.BasisConsent || e.ConsentID != r.ID || e.Outcome != consent.OutcomeReleased {
		t.Fatalf("fetch under consent: %v, entry %+v", vals, e)
	}

	// Another agency's client, under a legal basis for its agency.
	other := consent.Request{CitizenID: "cit_1", Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"}, Channel: consent.ChannelBroker,
		Purpose: "bao-hiem", Items: []string{"name"}}
	b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name", "birthdate"}, Basis: consent.BasisPublicTask, Law: "Luật BHXH 2024"}
	if err := s.Store.PutLegalBasis(ctx, b, TestChange); err != nil {
		t.Fatal(err)
	}
	_, e, err = s.Fetch(ctx, reg, other)
	if err != nil || e.Basis != consent.BasisPublicTask || e.Law != "Luật BHXH 2024" || e.ConsentID != "" {
		t.Fatalf("fetch under a legal basis: entry %+v, %v", e, err)
	}
	if err := s.Store.RevokeLegalBasis(ctx, b.ID, TestChange); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Fetch(ctx, reg, other); !errors.As(err, &refused) {
		t.Fatalf("fetch after the basis was revoked: %v", err)
	}
	s.Drain()

	// The citizen's log holds every attempt, newest first, in one chain.
	ents, _, err := s.Store.ListEntries(ctx, consent.EntryQuery{CitizenID: "cit_1"})
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, e := range ents {
		outcomes = append(outcomes, string(e.Outcome))
	}
	if got := strings.Join(outcomes, ","); got != "refused,released,released,refused,refused" {
		t.Fatalf("log outcomes newest first: %s", got)
	}
	if !strings.Contains(ents[4].Reason, "birthdate") || ents[0].Actor.Agency != "BHXH" {
		t.Fatalf("log entries: %+v", ents)
	}
	checkChain(t, s.Store, "cit_1", 5)

	// A token's consent: withdrawn means refused.
	d, err := s.Decide(ctx, consent.Request{CitizenID: "cit_1", ConsentID: r.ID, Items: []string{"name"}})
	if err != nil || !d.Allowed() || d.ConsentID != r.ID {
		t.Fatalf("decide on a token's consent: %+v, %v", d, err)
	}
	d, err = s.Decide(ctx, consent.Request{CitizenID: "cit_2", ConsentID: r.ID, Items: []string{"name"}})
	if err != nil || d.Allowed() {
		t.Fatalf("another citizen's consent id: %+v, %v", d, err)
	}
	if _, _, err := s.Withdraw(ctx, "cit_1", r.ID); err != nil {
		t.Fatal(err)
	}
	d, err = s.Decide(ctx, consent.Request{CitizenID: "cit_1", ConsentID: r.ID, Items: []string{"name"}})
	if err != nil || d.Allowed() {
		t.Fatalf("decide on a withdrawn consent: %+v, %v", d, err)
	}
}

// svcBasisVersionAndNames: a release under a legal basis names the basis
// and the version it had; each entry keeps the recipient's names of the
// moment (a client renamed later leaves old entries as they were); a
// revoked basis refuses the next request at once, naming the item.
func svcBasisVersionAndNames(t *testing.T, s *consent.Service, _ *jwsSigner) {
	ctx := t.Context()
	reg := &registry{}
	clientName := "Cổng BHXH"
	s.ActorNames = func(_ context.Context, a consent.Actor) (*consent.Names, error) {
		return &consent.Names{Client: clientName, AgencyVI: "Bảo hiểm xã hội " + a.Agency, AgencyEN: "Social Security " + a.Agency}, nil
	}
	req := consent.Request{CitizenID: "cit_1", Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"}, Channel: consent.ChannelBroker,
		Purpose: "bao-hiem", Items: []string{"name"}}
	b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name"}, Basis: consent.BasisLegalObligation, Law: "Luật BHXH 2024"}
	if err := s.Store.PutLegalBasis(ctx, b, TestChange); err != nil {
		t.Fatal(err)
	}
	_, first, err := s.Fetch(ctx, reg, req)
	if err != nil || first.BasisID != b.ID || first.BasisVersion != 1 || first.V != consent.EntryVersion ||
		first.Names == nil || first.Names.Client != "Cổng BHXH" || first.Names.AgencyEN != "Social Security BHXH" {
		t.Fatalf("release under a basis: %+v, %v", first, err)
	}
	amended, err := s.Store.AmendLegalBasis(ctx, b.ID, []string{"name", "birthdate"}, "Luật BHXH 2024, Điều 18", TestChange)
	if err != nil || amended.Version != 2 {
		t.Fatalf("amend: %+v, %v", amended, err)
	}
	clientName = "Cổng BHXH (tên mới)"
	req.Items = []string{"name", "birthdate"}
	_, second, err := s.Fetch(ctx, reg, req)
	if err != nil || second.BasisVersion != 2 || second.Law != "Luật BHXH 2024, Điều 18" || second.Names.Client != "Cổng BHXH (tên mới)" {
		t.Fatalf("release under the amended basis: %+v, %v", second, err)
	}
	stored, err := s.Store.GetEntry(ctx, "cit_1", first.ID)
	if err != nil || stored.Names == nil || stored.Names.Client != "Cổng BHXH" || stored.BasisVersion != 1 || stored.V != consent.EntryVersion ||
		!bytes.Equal(stored.ComputeHash(), stored.Hash) {
		t.Fatalf("the first entry after the client was renamed: %+v, %v", stored, err)
	}
	if err := s.Store.RevokeLegalBasis(ctx, b.ID, TestChange); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Fetch(ctx, reg, req)
	var refused *consent.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Missing["birthdate"], "no legal basis") || !strings.Contains(err.Error(), "birthdate") {
		t.Fatalf("fetch after the basis was revoked: %v", err)
	}
	s.Drain()
}

// hookedRegistry is the stand-in register that runs during changes
// while it reads: a revocation, amendment or withdrawal lands between the
// decision and the release's entry, deterministically.
type hookedRegistry struct {
	registry
	during func()
}

func (r *hookedRegistry) Read(ctx context.Context, citizenID string, items []string) (map[string]consent.Value, error) {
	if r.during != nil {
		r.during()
	}
	return r.registry.Read(ctx, citizenID, items)
}

// releasedEntries returns the citizen's released entries and checks that
// every attempt left one entry.
func releasedEntries(t *testing.T, s *consent.Service, citizen string) (released, refused []*consent.Entry) {
	t.Helper()
	s.Drain()
	ents, _, err := s.Store.ListEntries(t.Context(), consent.EntryQuery{CitizenID: citizen})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Outcome == consent.OutcomeReleased {
			released = append(released, e)
		} else {
			refused = append(refused, e)
		}
	}
	return released, refused
}

// svcRevokedWhileReading: a basis revoked while the register is read
// releases nothing: the request is refused naming each item and the
// basis, the refusal is logged, and no entry claims the revoked basis.
func svcRevokedWhileReading(t *testing.T, s *consent.Service, _ *jwsSigner) {
	ctx := t.Context()
	b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name", "birthdate"}, Basis: consent.BasisPublicTask, Law: "Luật BHXH 2024"}
	if err := s.Store.PutLegalBasis(ctx, b, TestChange); err != nil {
		t.Fatal(err)
	}
	reg := &hookedRegistry{}
	reg.during = func() {
		reg.during = nil
		if err := s.Store.RevokeLegalBasis(ctx, b.ID, TestChange); err != nil {
			t.Error(err)
		}
	}
	req := consent.Request{CitizenID: "cit_1", Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"}, Channel: consent.ChannelBroker,
		Purpose: "bao-hiem", Items: []string{"name", "birthdate"}}
	vals, e, err := s.Fetch(ctx, reg, req)
	var refused *consent.RefusedError
	if !errors.As(err, &refused) || vals != nil || e != nil || reg.reads != 1 {
		t.Fatalf("fetch while the basis was revoked: %v, %v, %v (reads %d)", vals, e, err, reg.reads)
	}
	for _, it := range req.Items {
		if !strings.Contains(refused.Missing[it], b.ID) || !strings.Contains(refused.Missing[it], "revoked") {
			t.Errorf("%s: %q", it, refused.Missing[it])
		}
	}
	released, refusals := releasedEntries(t, s, "cit_1")
	if len(released) != 0 || len(refusals) != 1 || !strings.Contains(refusals[0].Reason, "revoked") || refusals[0].BasisID != "" {
		t.Fatalf("log: released %+v, refused %+v", released, refusals)
	}
	// Nothing stale is left behind: the next request is refused at once,
	// before the register is read.
	if _, _, err := s.Fetch(ctx, reg, req); !errors.As(err, &refused) || reg.reads != 1 {
		t.Fatalf("next fetch: %v (reads %d)", err, reg.reads)
	}
	s.Drain()
}

// svcAmendedWhileReading: a basis amended to drop an item while the
// register is read refuses the request: the dropped item is named as no
// longer covered, the rest as to be asked again; a request after the
// amendment is released under the new version.
func svcAmendedWhileReading(t *testing.T, s *consent.Service, _ *jwsSigner) {
	ctx := t.Context()
	b := &consent.LegalBasis{Agency: "BHXH", Purpose: "bao-hiem", Items: []string{"name", "birthdate"}, Basis: consent.BasisPublicTask, Law: "Luật BHXH 2024"}
	if err := s.Store.PutLegalBasis(ctx, b, TestChange); err != nil {
		t.Fatal(err)
	}
	reg := &hookedRegistry{}
	reg.during = func() {
		reg.during = nil
		if _, err := s.Store.AmendLegalBasis(ctx, b.ID, []string{"name"}, "Luật BHXH 2024, sửa đổi", TestChange); err != nil {
			t.Error(err)
		}
	}
	req := consent.Request{CitizenID: "cit_1", Actor: consent.Actor{Agency: "BHXH", ClientID: "bhxh-app"}, Channel: consent.ChannelBroker,
		Purpose: "bao-hiem", Items: []string{"name", "birthdate"}}
	_, _, err := s.Fetch(ctx, reg, req)
	var refused *consent.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Missing["birthdate"], "no longer covers it") ||
		!strings.Contains(refused.Missing["birthdate"], b.ID) || !strings.Contains(refused.Missing["name"], "ask again") {
		t.Fatalf("fetch while the basis was amended: %v", err)
	}
	if released, _ := releasedEntries(t, s, "cit_1"); len(released) != 0 {
		t.Fatalf("released: %+v", released)
	}
	req.Items = []string{"name"}
	_, e, err := s.Fetch(ctx, reg, req)
	if err != nil || e.BasisVersion != 2 || e.Law != "Luật BHXH 2024, sửa đổi" {
		t.Fatalf("fetch under the amended basis: %+v, %v", e, err)
	}
}

// svcWithdrawnWhileReading: a consent withdrawn while the register is
// read releases nothing, and a consent narrowed by a re-grant releases
// nothing it no longer covers.
func svcWithdrawnWhileReading(t *testing.T, s *consent.Service, _ *jwsSigner) {
	ctx := t.Context()
	r, _, err := s.Grant(ctx, grantReq("cit_1", "his", "kham-benh", "name", "birthdate"))
	if err != nil {
		t.Fatal(err)
	}
	req := consent.Request{CitizenID: "cit_1", Actor: consent.Actor{Agency: "BYT", ClientID: "his"}, Channel: consent.ChannelBroker,
		Purpose: "kham-benh", Items: []string{"name", "birthdate"}}
	reg := &hookedRegistry{}
	reg.during = func() {
		reg.during = nil
		if _, _, err := s.Grant(ctx, grantReq("cit_1", "his", "kham-benh", "name")); err != nil {
			t.Error(err)
		}
	}
	_, _, err = s.Fetch(ctx, reg, req)
	var refused *consent.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(refused.Missing["birthdate"], "no longer covers it") ||
		!strings.Contains(refused.Missing["birthdate"], r.ID) || !strings.Contains(refused.Missing["name"], "ask again") {
		t.Fatalf("fetch while the consent was narrowed: %v", err)
	}
	req.Items = []string{"name"}
	reg.during = func() {
		reg.during = nil
		if _, _, err := s.Withdraw(ctx, "cit_1", r.ID); err != nil {
			t.Error(err)
		}
	}
	_, _, err = s.Fetch(ctx, reg, req)
	if !errors.As(err, &refused) || !strings.Contains(refused.Missing["name"], "withdrew consent "+r.ID) {
		t.Fatalf("fetch while the consent was withdrawn: %v", err)
	}
	if released, refusals := releasedEntries(t, s, "cit_1"); len(released) != 0 || len(refusals) == 0 {
		t.Fatalf("log: released %+v, refused %+v", released, refusals)
	}
}
