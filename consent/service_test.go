package consent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/consent/sqlstore"
	"github.com/onedoor/onedoor/internal/dbtest"
	"github.com/onedoor/onedoor/internal/sqldb"
)

// es256 signs receipts with a real key, as the platform key does.
type es256 struct{ key *ecdsa.PrivateKey }

func (s es256) SignJWS(_ context.Context, typ string, claims map[string]any) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
	t.Header["typ"] = typ
	return t.SignedString(s.key)
}

type fixture struct {
	svc    *consent.Service
	key    *ecdsa.PrivateKey
	now    time.Time
	denied []string
}

func newService(t *testing.T) *fixture {
	t.Helper()
	st := sqlstore.New(dbtest.SQLite(t), sqldb.SQLite)
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &fixture{key: key, now: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}
	f.svc = &consent.Service{Store: st, Signer: es256{key}, Issuer: "https://id.example.gov.vn",
		Now:  func() time.Time { return f.now },
		Deny: func(_ context.Context, id string) error { f.denied = append(f.denied, id); return nil }}
	return f
}

func (f *fixture) grant(t *testing.T, citizen, client, purpose string, items ...string) *consent.Record {
	t.Helper()
	r, rc, err := f.svc.Grant(t.Context(), &consent.Record{CitizenID: citizen, ClientID: client, Agency: "SO-TP",
		Recipient: "Sở Tư pháp (demo)", Purpose: consent.Purpose{Code: purpose, Text: "Cấp phiếu lý lịch tư pháp"},
		Items: items, Method: consent.MethodEIDApp, Evidence: "eyJhbGciOiJFUzI1NiJ9.e30.sig"})
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if rc == nil || rc.ConsentID != r.ID || rc.Kind != consent.ReceiptGranted {
		t.Fatalf("grant receipt %+v for %s", rc, r.ID)
	}
	return r
}

// A receipt is a JWS of the platform key naming the consent, its version,
// the recipient, purpose and items, and only a hash of the evidence.
func TestGrant_ReceiptIsSignedAndOmitsTheEvidence(t *testing.T) {
	f := newService(t)
	r, rc, err := f.svc.Grant(t.Context(), &consent.Record{CitizenID: "sub-1", ClientID: "rp", Purpose: consent.Purpose{Code: "p1", Text: "t"},
		Items: []string{"name"}, Declined: []string{"address"}, Method: consent.MethodEIDApp, Evidence: "the-device-signed-approval"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(rc.JWS, func(*jwt.Token) (any, error) { return &f.key.PublicKey, nil }, jwt.WithValidMethods([]string{"ES256"}))
	if err != nil {
		t.Fatalf("receipt does not verify: %v", err)
	}
	if tok.Header["typ"] != consent.ReceiptType {
		t.Errorf("typ = %v", tok.Header["typ"])
	}
	c := tok.Claims.(jwt.MapClaims)
	body := c["consent"].(map[string]any)
	if c["sub"] != "sub-1" || c["event"] != "granted" || body["id"] != r.ID || body["version"] != float64(1) {
		t.Errorf("receipt claims %v", c)
	}
	if strings.Contains(rc.JWS, "the-device-signed-approval") || body["evidence_hash"] == "" {
		t.Errorf("the receipt must carry a hash of the evidence, not the evidence")
	}
}

// A second grant for the same client and purpose replaces the items of
// the one live record (a new version); another purpose is another record.
func TestGrant_SameClientAndPurposeIsOneRecord(t *testing.T) {
	f := newService(t)
	a := f.grant(t, "sub-1", "rp", "p1", "name")
	b := f.grant(t, "sub-1", "rp", "p1", "name", "address")
	if a.ID != b.ID || b.Version != 2 || !slices.Equal(b.Items, []string{"name", "address"}) {
		t.Fatalf("re-grant: %+v then %+v", a, b)
	}
	c := f.grant(t, "sub-1", "rp", "p2", "name")
	if c.ID == a.ID {
		t.Fatal("another purpose reused the record")
	}
	got, err := f.svc.Remembered(t.Context(), "sub-1", "rp", "p1")
	if err != nil || got == nil || got.ID != a.ID {
		t.Fatalf("remembered: %v %v", got, err)
	}
	// Another client never inherits it (SECURITY 37).
	if got, _ := f.svc.Remembered(t.Context(), "sub-1", "other-rp", "p1"); got != nil {
		t.Fatalf("client B got client A's consent: %+v", got)
	}
}

// Withdrawal denies derived tokens first, then ends the record with a
// receipt; a second withdrawal and another citizen's attempt fail; the
// record no longer decides anything.
func TestWithdraw(t *testing.T) {
	f := newService(t)
	r := f.grant(t, "sub-1", "rp", "p1", "name")
	if _, _, err := f.svc.Withdraw(t.Context(), "sub-2", r.ID); !errors.Is(err, consent.ErrNotFound) {
		t.Fatalf("another citizen withdrew: %v", err)
	}
	if len(f.denied) != 0 {
		t.Fatalf("another citizen's attempt denied tokens: %v", f.denied)
	}
	w, rc, err := f.svc.Withdraw(t.Context(), "sub-1", r.ID)
	if err != nil || w.WithdrawnAt == nil || rc == nil || rc.Kind != consent.ReceiptWithdrawn {
		t.Fatalf("withdraw: %+v %+v %v", w, rc, err)
	}
	if !slices.Equal(f.denied, []string{r.ID}) {
		t.Fatalf("denied %v, want the consent id", f.denied)
	}
	if _, _, err := f.svc.Withdraw(t.Context(), "sub-1", r.ID); !errors.Is(err, consent.ErrWithdrawn) {
		t.Fatalf("second withdrawal: %v", err)
	}
	if _, err := f.svc.Active(t.Context(), r.ID); !errors.Is(err, consent.ErrWithdrawn) {
		t.Fatalf("active after withdrawal: %v", err)
	}
	d, err := f.svc.Decide(t.Context(), consent.Request{CitizenID: "sub-1", ConsentID: r.ID, Items: []string{"name"}})
	if err != nil || d.Allowed() {
		t.Fatalf("a withdrawn consent still decides: %+v %v", d, err)
	}
	// Granting again starts a new record.
	if n := f.grant(t, "sub-1", "rp", "p1", "name"); n.ID == r.ID {
		t.Fatal("a withdrawn record came back")
	}
}

// A consent expires after its lifetime.
func TestActive_Expiry(t *testing.T) {
	f := newService(t)
	f.svc.Lifetime = time.Hour
	r := f.grant(t, "sub-1", "rp", "p1", "name")
	f.now = f.now.Add(time.Hour + time.Second)
	if _, err := f.svc.Active(t.Context(), r.ID); !errors.Is(err, consent.ErrWithdrawn) {
		t.Fatalf("expired consent: %v", err)
	}
	if got, _ := f.svc.Remembered(t.Context(), "sub-1", "rp", "p1"); got != nil {
		t.Fatal("an expired consent is remembered")
	}
}

// The broker's decisions: the client's own consent for the purpose covering
// every item, or a legal basis of the agency for the purpose covering every
// item; otherwise each item is named with what it lacked.
func TestDecide(t *testing.T) {
	f := newService(t)
	ctx := t.Context()
	r := f.grant(t, "sub-1", "rp", "p1", "name", "address")
	if err := f.svc.Store.PutLegalBasis(ctx, &consent.LegalBasis{ID: consent.NewID("lb"), Agency: "BHXH", Purpose: "insurance",
		Items: []string{"name", "birthdate"}, Basis: consent.BasisLegalObligation, Law: "Luật Bảo hiểm xã hội 2024, Điều 18"}, consent.BasisChange{Operator: "op", Reason: "test", At: f.now}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		req     consent.Request
		allowed bool
		basis   consent.Basis
		missing []string
	}{
		{"own consent covers", consent.Request{Actor: consent.Actor{ClientID: "rp", Agency: "SO-TP"}, Purpose: "p1", Items: []string{"address"}}, true, consent.BasisConsent, nil},
		{"consent does not cover every item", consent.Request{Actor: consent.Actor{ClientID: "rp", Agency: "SO-TP"}, Purpose: "p1", Items: []string{"name", "phone_number"}}, false, "", []string{"name", "phone_number"}},
		{"consent for another purpose", consent.Request{Actor: consent.Actor{ClientID: "rp", Agency: "SO-TP"}, Purpose: "p2", Items: []string{"name"}}, false, "", []string{"name"}},
		{"another client's consent", consent.Request{Actor: consent.Actor{ClientID: "rp-b", Agency: "SO-TP"}, Purpose: "p1", Items: []string{"name"}}, false, "", []string{"name"}},
		{"legal basis covers", consent.Request{Actor: consent.Actor{ClientID: "bhxh-app", Agency: "BHXH"}, Purpose: "insurance", Items: []string{"birthdate"}}, true, consent.BasisLegalObligation, nil},
		{"legal basis of another agency", consent.Request{Actor: consent.Actor{ClientID: "x", Agency: "THUE"}, Purpose: "insurance", Items: []string{"name"}}, false, "", []string{"name"}},
		{"legal basis lacks an item", consent.Request{Actor: consent.Actor{ClientID: "bhxh-app", Agency: "BHXH"}, Purpose: "insurance", Items: []string{"address"}}, false, "", []string{"address"}},
		{"citizen's own request", consent.Request{Actor: consent.Actor{Agency: "SO-TP"}, Purpose: "svc", Items: []string{"address"}, OwnRequest: true}, true, consent.BasisCitizenRequest, nil},
		{"client re-bound to another agency", consent.Request{Actor: consent.Actor{ClientID: "rp", Agency: "THUE"}, Purpose: "p1", Items: []string{"name"}}, false, "", []string{"name"}},
		{"token's consent narrows", consent.Request{ConsentID: r.ID, Items: []string{"name", "birthdate"}}, false, "", []string{"birthdate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.CitizenID = "sub-1"
			d, err := f.svc.Decide(ctx, c.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed() != c.allowed || (c.allowed && d.Basis != c.basis) {
				t.Fatalf("decision %+v, want allowed=%v basis=%s", d, c.allowed, c.basis)
			}
			var missing []string
			for it := range d.Missing {
				missing = append(missing, it)
			}
			slices.Sort(missing)
			if !slices.Equal(missing, c.missing) {
				t.Fatalf("missing %v, want %v", missing, c.missing)
			}
		})
	}
	// A consent id of another citizen decides nothing for this one.
	if d, _ := f.svc.Decide(ctx, consent.Request{CitizenID: "sub-2", ConsentID: r.ID, Items: []string{"name"}}); d.Allowed() {
		t.Fatal("another citizen's consent id released data")
	}
}

type registry map[string]consent.Value

func (r registry) Read(_ context.Context, citizenID string, items []string) (map[string]consent.Value, error) {
	if citizenID != "sub-1" {
		return nil, consent.ErrNotFound
	}
	out := map[string]consent.Value{}
	for _, it := range items {
		if v, ok := r[it]; ok {
			out[it] = v
		}
	}
	return out, nil
}

// Fetch logs before it returns: a release has its entry, a refusal is
// logged as refused and returned as a RefusedError naming the item.
func TestFetch_LogsEveryOutcome(t *testing.T) {
	f := newService(t)
	ctx := t.Context()
	f.grant(t, "sub-1", "rp", "p1", "name")
	reg := registry{"name": {Value: "Nguyễn Văn Demo", Source: "CSDLQG về dân cư (demo)", UpdatedAt: f.now}}
	vals, e, err := f.svc.Fetch(ctx, reg, consent.Request{CitizenID: "sub-1", Actor: consent.Actor{ClientID: "rp", Agency: "SO-TP"},
		Channel: consent.ChannelBroker, Purpose: "p1", Items: []string{"name"}})
	if err != nil || vals["name"].Value != "Nguyễn Văn Demo" || e == nil || e.Outcome != consent.OutcomeReleased || e.Seq != 1 {
		t.Fatalf("fetch: %v %+v %v", vals, e, err)
	}
	_, _, err = f.svc.Fetch(ctx, reg, consent.Request{CitizenID: "sub-1", Actor: consent.Actor{ClientID: "rp", Agency: "SO-TP"},
		Channel: consent.ChannelBroker, Purpose: "p1", Items: []string{"address"}})
	var re *consent.RefusedError
	if !errors.As(err, &re) || re.Missing["address"] == "" {
		t.Fatalf("refusal: %v", err)
	}
	f.svc.Drain() // refusals are logged after the answer
	got, _, err := f.svc.Store.ListEntries(ctx, consent.EntryQuery{CitizenID: "sub-1"})
	if err != nil || len(got) != 2 || got[0].Outcome != consent.OutcomeRefused || got[0].Reason == "" || got[1].Outcome != consent.OutcomeReleased {
		t.Fatalf("log: %+v %v", got, err)
	}
	if !slices.Equal(got[0].Prev, got[1].Hash) {
		t.Fatal("the two entries are not chained")
	}
}

// Declining every optional item is a decision worth remembering: the record
// holds no item, only the declined ones.
func TestGrant_EverythingDeclinedIsARecord(t *testing.T) {
	f := newService(t)
	r, _, err := f.svc.Grant(t.Context(), &consent.Record{CitizenID: "sub-1", ClientID: "rp", Purpose: consent.Purpose{Code: "p1", Text: "t"},
		Declined: []string{"address"}, Method: consent.MethodEIDApp, Evidence: "jws"})
	if err != nil || len(r.Items) != 0 || !slices.Equal(r.Declined, []string{"address"}) {
		t.Fatalf("all declined: %+v %v", r, err)
	}
	if _, _, err := f.svc.Grant(t.Context(), &consent.Record{CitizenID: "sub-1", ClientID: "rp", Purpose: consent.Purpose{Code: "p2", Text: "t"},
		Method: consent.MethodEIDApp, Evidence: "jws"}); !errors.Is(err, consent.ErrInvalid) {
		t.Fatalf("a record about nothing: %v", err)
	}
}

// Refusals are logged off the request path and at most once per window for
// the same actor, citizen and purpose, so an agency can neither time the
// answer to learn who is registered nor flood a citizen's log.
func TestFetch_RefusalsAreCoalesced(t *testing.T) {
	f := newService(t)
	ctx := t.Context()
	seen := map[string]bool{}
	var mu sync.Mutex
	f.svc.Once = func(_ context.Context, key string, _ time.Duration) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		first := !seen[key]
		seen[key] = true
		return first, nil
	}
	req := consent.Request{CitizenID: "sub-1", Actor: consent.Actor{ClientID: "curious", Agency: "X"}, Channel: consent.ChannelBroker,
		Purpose: "p1", Items: []string{"name"}}
	for range 50 {
		if _, _, err := f.svc.Fetch(ctx, registry{}, req); err == nil {
			t.Fatal("released without a basis")
		}
	}
	other := req
	other.Purpose = "p2"
	if _, _, err := f.svc.Fetch(ctx, registry{}, other); err == nil {
		t.Fatal("released without a basis")
	}
	f.svc.Drain()
	got, _, err := f.svc.Store.ListEntries(ctx, consent.EntryQuery{CitizenID: "sub-1"})
	if err != nil || len(got) != 2 {
		t.Fatalf("%d entries (%v), want one per purpose", len(got), err)
	}
	// Purposes are the agency's to choose: past RefusalPurposes of them,
	// the actor's refusals are no longer logged
	// (TestReview_RefusalFloodByInventedPurposes); another client is
	// another actor.
	for i := range 10 {
		more := req
		more.Purpose = fmt.Sprint("p", 3+i)
		if _, _, err := f.svc.Fetch(ctx, registry{}, more); err == nil {
			t.Fatal("released without a basis")
		}
	}
	third := req
	third.Actor.ClientID = "nosy"
	if _, _, err := f.svc.Fetch(ctx, registry{}, third); err == nil {
		t.Fatal("released without a basis")
	}
	f.svc.Drain()
	if got, _, err := f.svc.Store.ListEntries(ctx, consent.EntryQuery{CitizenID: "sub-1"}); err != nil || len(got) != consent.RefusalPurposes+1 {
		t.Fatalf("%d entries (%v), want %d", len(got), err, consent.RefusalPurposes+1)
	}
}
