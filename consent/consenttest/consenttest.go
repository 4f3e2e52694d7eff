// Package consenttest holds the conformance suites every implementation of
// consent's stores passes, whatever its engine. Only tests import it.
package consenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
)

// Run runs the conformance suite of consent.Store. newStore returns an
// empty, migrated store; each subtest gets its own. The store stamps
// with the real clock.
func Run(t *testing.T, newStore func(t *testing.T) consent.Store) {
	for _, tc := range []struct {
		name string
		fn   func(e *env)
	}{
		{"GrantAndRegrant", recGrantAndRegrant},
		{"ConcurrentGrantsOneLiveRecord", recConcurrentGrants},
		{"WithdrawOnce", recWithdrawOnce},
		{"CitizenIsolation", recCitizenIsolation},
		{"SignFailureStoresNothing", recSignFailure},
		{"LegalBases", recLegalBases},
		{"ListRecordsPagination", recListPagination},
		{"AppendChain", logAppendChain},
		{"ConcurrentAppendsOneChain", logConcurrentAppends},
		{"DuplicateEntryID", logDuplicateID},
		{"ListEntriesPagination", logPagination},
		{"FlagOnce", logFlagOnce},
		{"OnBehalf", onBehalf},
		{"BadInput", badInput},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(&env{t: t, ctx: t.Context(), s: newStore(t)})
		})
	}
}

// RunTwoPools checks that appends through two stores over separate
// connection pools on one database (two processes) keep one valid chain
// per citizen. newPair returns two migrated stores on the same, empty
// database.
func RunTwoPools(t *testing.T, newPair func(t *testing.T) (consent.Store, consent.Store)) {
	a, b := newPair(t)
	const workers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for _, s := range []consent.Store{a, b} {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					for _, c := range []string{"cit_shared", fmt.Sprintf("cit_own_%d", w%2)} {
						if err := s.Append(t.Context(), entry(c, fmt.Sprintf("w%d.%d", w, i))); err != nil {
							errs <- err
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("append: %v", err)
	}
	checkChain(t, a, "cit_shared", 2*workers*each)
	checkChain(t, b, "cit_own_0", workers*each)
	checkChain(t, a, "cit_own_1", workers*each)
}

type env struct {
	t   *testing.T
	ctx context.Context
	s   consent.Store
}

// signer returns a sign callback that makes a receipt of the kind and
// counts its calls.
type signer struct {
	mu    sync.Mutex
	calls int
	fail  error
}

func (sg *signer) sign(r *consent.Record) (*consent.Receipt, error) {
	sg.mu.Lock()
	defer sg.mu.Unlock()
	sg.calls++
	if sg.fail != nil {
		return nil, sg.fail
	}
	kind := consent.ReceiptGranted
	if r.WithdrawnAt != nil {
		kind = consent.ReceiptWithdrawn
	}
	return &consent.Receipt{ID: consent.NewID("rcpt"), Kind: kind, JWS: fmt.Sprintf("jws.%s.v%d.%s", r.ID, r.Version, kind)}, nil
}

func record(citizen, client, purpose string, items ...string) *consent.Record {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return &consent.Record{
		ID: consent.NewID("cns"), CitizenID: citizen, ClientID: client, Agency: "BOYTE", Recipient: "Cổng dịch vụ",
		Purpose: consent.Purpose{Code: purpose, Text: "Mục đích " + purpose}, Items: items, Declined: []string{"phone_number"},
		Basis: consent.BasisConsent, Notice: "v1", Method: consent.MethodEIDApp, Evidence: "eyJhbGciOiJFUzI1NiJ9.e.s",
		GrantedAt: now, UpdatedAt: now, ExpiresAt: now.Add(365 * 24 * time.Hour),
	}
}

func entry(citizen, note string) *consent.Entry {
	return &consent.Entry{
		ID: consent.NewID("log"), CitizenID: citizen, At: time.Now().UTC(),
		Actor:   consent.Actor{Agency: "BOYTE", ClientID: "client-" + note},
		Channel: consent.ChannelBroker, Items: []string{"name", "birthdate"}, Purpose: "kham-benh",
		Basis: consent.BasisCitizenRequest, Outcome: consent.OutcomeReleased,
	}
}

func (e *env) put(r *consent.Record, sg *signer) *consent.Record {
	e.t.Helper()
	if sg == nil {
		sg = &signer{}
	}
	if err := e.s.PutRecord(e.ctx, r, sg.sign); err != nil {
		e.t.Fatalf("PutRecord: %v", err)
	}
	return r
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func sameTime(a, b time.Time) bool { return a.UnixMilli() == b.UnixMilli() }

func recGrantAndRegrant(e *env) {
	t := e.t
	sg := &signer{}
	r := record("cit_a", "client1", "login", "name", "birthdate")
	wantID := r.ID
	e.put(r, sg)
	if r.ID != wantID || r.Version != 1 || r.Basis != consent.BasisConsent || r.WithdrawnAt != nil {
		t.Fatalf("new record: got id %s version %d basis %s, want %s 1 consent", r.ID, r.Version, r.Basis, wantID)
	}
	got, err := e.s.LiveRecord(e.ctx, "cit_a", "client1", "login")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || !slices.Equal(got.Items, r.Items) || !slices.Equal(got.Declined, r.Declined) || got.Recipient != r.Recipient ||
		got.Purpose != r.Purpose || got.Agency != r.Agency || got.Evidence != r.Evidence || got.Method != r.Method || got.Notice != r.Notice ||
		!sameTime(got.GrantedAt, r.GrantedAt) || !sameTime(got.ExpiresAt, r.ExpiresAt) || got.GrantedAt.Location() != time.UTC {
		t.Fatalf("LiveRecord: got %+v, want %+v", got, r)
	}

	again := record("cit_a", "client1", "login", "name", "address")
	again.GrantedAt = r.GrantedAt.Add(time.Minute)
	again.UpdatedAt = again.GrantedAt
	again.Notice, again.Evidence, again.Recipient = "v2", "evidence-2", "Cổng mới"
	e.put(again, sg)
	if again.ID != r.ID || again.Version != 2 || !sameTime(again.GrantedAt, r.GrantedAt) {
		t.Fatalf("re-grant: got id %s version %d granted %v, want %s 2 %v", again.ID, again.Version, again.GrantedAt, r.ID, r.GrantedAt)
	}
	got, err = e.s.GetRecord(e.ctx, "cit_a", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Items, []string{"name", "address"}) || got.Version != 2 || got.Notice != "v2" || got.Evidence != "evidence-2" ||
		got.Recipient != "Cổng mới" || !sameTime(got.UpdatedAt, again.UpdatedAt) || !sameTime(got.GrantedAt, r.GrantedAt) {
		t.Fatalf("after re-grant: got %+v", got)
	}
	rcs, err := e.s.Receipts(e.ctx, "cit_a", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 2 || rcs[0].Version != 1 || rcs[1].Version != 2 || rcs[0].Kind != consent.ReceiptGranted ||
		rcs[1].ConsentID != r.ID || rcs[1].CitizenID != "cit_a" || rcs[1].JWS == "" {
		t.Fatalf("receipts: got %+v", rcs)
	}
	one, err := e.s.GetReceipt(e.ctx, "cit_a", rcs[1].ID)
	if err != nil || one.JWS != rcs[1].JWS {
		t.Fatalf("GetReceipt: got %+v, %v", one, err)
	}
	// Another purpose or client is another record.
	other := e.put(record("cit_a", "client1", "tax", "name"), sg)
	third := e.put(record("cit_a", "client2", "login", "name"), sg)
	if other.ID == r.ID || third.ID == r.ID || other.Version != 1 || third.Version != 1 {
		t.Fatalf("other purpose/client: got %s v%d and %s v%d", other.ID, other.Version, third.ID, third.Version)
	}
	if sg.calls != 4 {
		t.Errorf("sign calls: got %d, want 4", sg.calls)
	}
	_, err = e.s.LiveRecord(e.ctx, "cit_a", "client3", "login")
	wantErr(t, "LiveRecord of nothing", err, consent.ErrNotFound)
}

func recConcurrentGrants(e *env) {
	t := e.t
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			r := record("cit_c", "client1", "login", "name", fmt.Sprintf("item%d", i))
			if err := e.s.PutRecord(e.ctx, r, (&signer{}).sign); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent PutRecord: %v", err)
	}
	recs, _, err := e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: "cit_c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Version != n {
		t.Fatalf("after %d concurrent grants: got %d records (first version %d), want 1 at version %d", n, len(recs), recs[0].Version, n)
	}
	rcs, err := e.s.Receipts(e.ctx, "cit_c", recs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != n {
		t.Fatalf("receipts: got %d, want %d", len(rcs), n)
	}
}

func recWithdrawOnce(e *env) {
	t := e.t
	sg := &signer{}
	r := e.put(record("cit_w", "client1", "login", "name"), sg)
	at := time.Now().UTC().Truncate(time.Millisecond)
	got, err := e.s.WithdrawRecord(e.ctx, "cit_w", r.ID, at, sg.sign)
	if err != nil {
		t.Fatal(err)
	}
	if got.WithdrawnAt == nil || !sameTime(*got.WithdrawnAt, at) || got.Active(time.Now()) {
		t.Fatalf("withdrawn: got %+v", got)
	}
	got, err = e.s.WithdrawRecord(e.ctx, "cit_w", r.ID, at.Add(time.Hour), sg.sign)
	wantErr(t, "second withdrawal", err, consent.ErrWithdrawn)
	if got == nil || got.WithdrawnAt == nil || !sameTime(*got.WithdrawnAt, at) {
		t.Fatalf("second withdrawal returned %+v, want the first withdrawal kept", got)
	}
	stored, err := e.s.GetRecord(e.ctx, "", r.ID)
	if err != nil || stored.WithdrawnAt == nil || !sameTime(*stored.WithdrawnAt, at) {
		t.Fatalf("stored after second withdrawal: %+v, %v", stored, err)
	}
	rcs, err := e.s.Receipts(e.ctx, "cit_w", r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 2 || rcs[1].Kind != consent.ReceiptWithdrawn || rcs[0].Kind != consent.ReceiptGranted {
		t.Fatalf("receipts after withdrawal: got %+v", rcs)
	}
	if sg.calls != 2 {
		t.Errorf("sign calls: got %d, want 2 (none for the refused second withdrawal)", sg.calls)
	}
	_, err = e.s.LiveRecord(e.ctx, "cit_w", "client1", "login")
	wantErr(t, "LiveRecord after withdrawal", err, consent.ErrNotFound)
	// A new grant starts a new record; the withdrawn one stays final.
	n := e.put(record("cit_w", "client1", "login", "name"), sg)
	if n.ID == r.ID || n.Version != 1 {
		t.Fatalf("grant after withdrawal: got %s v%d, want a new record", n.ID, n.Version)
	}
	old, err := e.s.GetRecord(e.ctx, "cit_w", r.ID)
	if err != nil || old.WithdrawnAt == nil {
		t.Fatalf("withdrawn record after a new grant: %+v, %v", old, err)
	}
	_, err = e.s.WithdrawRecord(e.ctx, "cit_w", "cns_nonexistent", at, sg.sign)
	wantErr(t, "withdraw unknown", err, consent.ErrNotFound)
}

func recCitizenIsolation(e *env) {
	t := e.t
	sg := &signer{}
	r := e.put(record("cit_a", "client1", "login", "name"), sg)
	rcs, err := e.s.Receipts(e.ctx, "cit_a", r.ID)
	if err != nil || len(rcs) != 1 {
		t.Fatalf("receipts: %v, %v", rcs, err)
	}
	ent := entry("cit_a", "x")
	if err := e.s.Append(e.ctx, ent); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.GetRecord(e.ctx, "cit_b", r.ID)
	wantErr(t, "another citizen's record", err, consent.ErrNotFound)
	_, err = e.s.WithdrawRecord(e.ctx, "cit_b", r.ID, time.Now(), sg.sign)
	wantErr(t, "withdraw another citizen's record", err, consent.ErrNotFound)
	_, err = e.s.Receipts(e.ctx, "cit_b", r.ID)
	wantErr(t, "another citizen's receipts", err, consent.ErrNotFound)
	_, err = e.s.GetReceipt(e.ctx, "cit_b", rcs[0].ID)
	wantErr(t, "another citizen's receipt", err, consent.ErrNotFound)
	_, err = e.s.GetEntry(e.ctx, "cit_b", ent.ID)
	wantErr(t, "another citizen's entry", err, consent.ErrNotFound)
	_, err = e.s.FlagEntry(e.ctx, "cit_b", ent.ID, "not me", time.Now())
	wantErr(t, "flag another citizen's entry", err, consent.ErrNotFound)
	_, err = e.s.LiveRecord(e.ctx, "cit_b", "client1", "login")
	wantErr(t, "another citizen's live record", err, consent.ErrNotFound)
	recs, _, err := e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: "cit_b"})
	if err != nil || len(recs) != 0 {
		t.Fatalf("cit_b's records: got %d, %v", len(recs), err)
	}
	ents, _, err := e.s.ListEntries(e.ctx, consent.EntryQuery{CitizenID: "cit_b"})
	if err != nil || len(ents) != 0 {
		t.Fatalf("cit_b's entries: got %d, %v", len(ents), err)
	}
	if got, err := e.s.GetEntry(e.ctx, "cit_a", ent.ID); err != nil || got.FlaggedAt != nil {
		t.Fatalf("cit_a's entry after cit_b's flag: %+v, %v", got, err)
	}
	// Operators and token checks look up by id alone.
	if _, err := e.s.GetRecord(e.ctx, "", r.ID); err != nil {
		t.Errorf("GetRecord with no citizen: %v", err)
	}
	if _, err := e.s.GetReceipt(e.ctx, "", rcs[0].ID); err != nil {
		t.Errorf("GetReceipt with no citizen: %v", err)
	}
	_, err = e.s.GetRecord(e.ctx, "", "cns_unknown")
	wantErr(t, "unknown record", err, consent.ErrNotFound)
}

func recSignFailure(e *env) {
	t := e.t
	boom := errors.New("hsm offline")
	bad := &signer{fail: boom}
	err := e.s.PutRecord(e.ctx, record("cit_s", "client1", "login", "name"), bad.sign)
	if !errors.Is(err, boom) {
		t.Fatalf("PutRecord with a failing signer: got %v, want the signer's error", err)
	}
	_, err = e.s.LiveRecord(e.ctx, "cit_s", "client1", "login")
	wantErr(t, "record after a failed grant", err, consent.ErrNotFound)
	recs, _, err := e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: "cit_s"})
	if err != nil || len(recs) != 0 {
		t.Fatalf("records after a failed grant: %d, %v", len(recs), err)
	}
	// A failed re-grant keeps the record as it was.
	r := e.put(record("cit_s", "client1", "login", "name"), nil)
	err = e.s.PutRecord(e.ctx, record("cit_s", "client1", "login", "name", "address"), bad.sign)
	if !errors.Is(err, boom) {
		t.Fatalf("re-grant with a failing signer: got %v", err)
	}
	got, err := e.s.GetRecord(e.ctx, "cit_s", r.ID)
	if err != nil || got.Version != 1 || !slices.Equal(got.Items, []string{"name"}) {
		t.Fatalf("record after a failed re-grant: %+v, %v", got, err)
	}
	// A failed withdrawal leaves it live.
	_, err = e.s.WithdrawRecord(e.ctx, "cit_s", r.ID, time.Now(), bad.sign)
	if !errors.Is(err, boom) {
		t.Fatalf("withdraw with a failing signer: got %v", err)
	}
	if got, err := e.s.LiveRecord(e.ctx, "cit_s", "client1", "login"); err != nil || got.WithdrawnAt != nil {
		t.Fatalf("record after a failed withdrawal: %+v, %v", got, err)
	}
	if rcs, err := e.s.Receipts(e.ctx, "cit_s", r.ID); err != nil || len(rcs) != 1 {
		t.Fatalf("receipts after failures: %d, %v", len(rcs), err)
	}
	// A signer that returns no receipt is refused too.
	err = e.s.PutRecord(e.ctx, record("cit_s", "client9", "login", "name"), func(*consent.Record) (*consent.Receipt, error) { return nil, nil })
	wantErr(t, "signer returning no receipt", err, consent.ErrInvalid)
	_, err = e.s.LiveRecord(e.ctx, "cit_s", "client9", "login")
	wantErr(t, "record after a nil receipt", err, consent.ErrNotFound)
}

func recLegalBases(e *env) {
	t := e.t
	b := &consent.LegalBasis{Agency: "BOYTE", Purpose: "kham-benh", Items: []string{"name", "birthdate"},
		Basis: consent.BasisLegalObligation, Law: "Luật Khám bệnh, chữa bệnh 2023, Điều 10"}
	if err := e.s.PutLegalBasis(e.ctx, b, TestChange); err != nil {
		t.Fatal(err)
	}
	if b.ID == "" || b.CreatedAt.IsZero() {
		t.Fatalf("PutLegalBasis did not set id and time: %+v", b)
	}
	dup := &consent.LegalBasis{Agency: "BOYTE", Purpose: "kham-benh", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "x"}
	wantErr(t, "second live basis for the agency and purpose", e.s.PutLegalBasis(e.ctx, dup, TestChange), consent.ErrConflict)
	other := &consent.LegalBasis{Agency: "BOYTE", Purpose: "tiem-chung", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "Luật Phòng bệnh"}
	if err := e.s.PutLegalBasis(e.ctx, other, TestChange); err != nil {
		t.Fatal(err)
	}
	third := &consent.LegalBasis{Agency: "BOTAICHINH", Purpose: "kham-benh", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "Luật Thuế"}
	if err := e.s.PutLegalBasis(e.ctx, third, TestChange); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.LegalBases(e.ctx, "BOYTE", "kham-benh")
	if err != nil || len(got) != 1 || got[0].ID != b.ID || !slices.Equal(got[0].Items, b.Items) || got[0].Basis != b.Basis || got[0].Law != b.Law {
		t.Fatalf("LegalBases(BOYTE, kham-benh): %+v, %v", got, err)
	}
	if got, err := e.s.LegalBases(e.ctx, "BOYTE", ""); err != nil || len(got) != 2 {
		t.Fatalf("LegalBases(BOYTE, every purpose): %d, %v", len(got), err)
	}
	if got, err := e.s.LegalBases(e.ctx, "", ""); err != nil || len(got) != 3 {
		t.Fatalf("LegalBases(every agency): %d, %v", len(got), err)
	}
	if err := e.s.RevokeLegalBasis(e.ctx, b.ID, TestChange); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "revoke twice", e.s.RevokeLegalBasis(e.ctx, b.ID, TestChange), consent.ErrNotFound)
	wantErr(t, "revoke unknown", e.s.RevokeLegalBasis(e.ctx, "lb_unknown", TestChange), consent.ErrNotFound)
	if got, err := e.s.LegalBases(e.ctx, "BOYTE", "kham-benh"); err != nil || len(got) != 0 {
		t.Fatalf("after revoke: %d, %v", len(got), err)
	}
	if err := e.s.PutLegalBasis(e.ctx, dup, TestChange); err != nil {
		t.Fatalf("a new basis after revoking the old: %v", err)
	}
	for _, bad := range []*consent.LegalBasis{
		{Agency: "BOYTE", Purpose: "p1", Items: []string{"name"}, Basis: consent.BasisConsent, Law: "x"},
		{Agency: "BOYTE", Purpose: "p2", Items: nil, Basis: consent.BasisPublicTask, Law: "x"},
		{Agency: "BOYTE", Purpose: "p3", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: ""},
		{Agency: "", Purpose: "p4", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "x"},
		{Agency: "BOYTE", Purpose: "p5", Items: []string{""}, Basis: consent.BasisPublicTask, Law: "x"},
	} {
		wantErr(t, fmt.Sprintf("PutLegalBasis(%+v)", bad), e.s.PutLegalBasis(e.ctx, bad, TestChange), consent.ErrInvalid)
	}
}

func recListPagination(e *env) {
	t := e.t
	base := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	var ids []string
	for i := range 7 {
		r := record("cit_p", "client1", fmt.Sprintf("purpose%d", i), "name")
		r.GrantedAt = base.Add(time.Duration(i/2) * time.Minute) // pairs share a time: the id breaks the tie
		r.UpdatedAt = r.GrantedAt
		e.put(r, nil)
		ids = append(ids, r.ID)
	}
	e.put(record("cit_other", "client1", "purpose0", "name"), nil)
	var seen []*consent.Record
	cursor := ""
	for range 10 {
		page, next, err := e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: "cit_p", Page: consent.Page{Cursor: cursor, Limit: 3}})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d, want at most 3", len(page))
		}
		seen = append(seen, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 7 {
		t.Fatalf("paged %d records, want 7", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		a, b := seen[i-1], seen[i]
		if a.GrantedAt.Before(b.GrantedAt) || (a.GrantedAt.Equal(b.GrantedAt) && a.ID <= b.ID) {
			t.Fatalf("records not newest first at %d: %v %s then %v %s", i, a.GrantedAt, a.ID, b.GrantedAt, b.ID)
		}
	}
	seenIDs := map[string]bool{}
	for _, r := range seen {
		seenIDs[r.ID] = true
	}
	for _, id := range ids {
		if !seenIDs[id] {
			t.Fatalf("record %s missing from the pages", id)
		}
	}
	// Active leaves out the withdrawn and the expired.
	if _, err := e.s.WithdrawRecord(e.ctx, "cit_p", ids[0], time.Now(), (&signer{}).sign); err != nil {
		t.Fatal(err)
	}
	exp := record("cit_p", "client1", "expired", "name")
	exp.ExpiresAt = time.Now().Add(-time.Minute)
	e.put(exp, nil)
	all, _, err := e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: "cit_p", Page: consent.Page{Limit: 100}})
	if err != nil || len(all) != 8 {
		t.Fatalf("all records: %d, %v", len(all), err)
	}
	active, _, err := e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: "cit_p", Active: true, Now: time.Now(), Page: consent.Page{Limit: 100}})
	if err != nil || len(active) != 6 {
		t.Fatalf("active records: %d, %v, want 6", len(active), err)
	}
	for _, c := range []string{"!!!", "bm90LWEtY3Vyc29y", "MTIz"} {
		_, _, err := e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: "cit_p", Page: consent.Page{Cursor: c}})
		wantErr(t, "malformed cursor "+c, err, consent.ErrInvalid)
	}
}

// checkChain reads the citizen's whole chain, newest first through every
// page, and checks it: n entries, Seq n..1, each Hash recomputed, each
// Prev the previous Hash.
func checkChain(t *testing.T, s consent.Store, citizen string, n int) []*consent.Entry {
	t.Helper()
	var all []*consent.Entry
	cursor := ""
	for {
		page, next, err := s.ListEntries(t.Context(), consent.EntryQuery{CitizenID: citizen, Page: consent.Page{Cursor: cursor, Limit: consent.MaxLimit}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != n {
		t.Fatalf("chain of %s: %d entries, want %d", citizen, len(all), n)
	}
	slices.Reverse(all)
	for i, e := range all {
		if e.CitizenID != citizen || e.Seq != int64(i+1) {
			t.Fatalf("entry %d: citizen %s seq %d", i, e.CitizenID, e.Seq)
		}
		if !bytes.Equal(e.ComputeHash(), e.Hash) {
			t.Fatalf("entry seq %d: stored hash does not match its fields", e.Seq)
		}
		if i == 0 && e.Prev != nil {
			t.Fatalf("first entry has Prev %x", e.Prev)
		}
		if i > 0 && !bytes.Equal(e.Prev, all[i-1].Hash) {
			t.Fatalf("entry seq %d: Prev is not the previous entry's hash", e.Seq)
		}
	}
	return all
}

func logAppendChain(e *env) {
	t := e.t
	var appended []*consent.Entry
	for i := range 5 {
		en := entry("cit_l", fmt.Sprint(i))
		en.At = time.Now().Add(time.Duration(i) * time.Second) // local zone, sub-millisecond: stored as UTC milliseconds
		if i == 2 {
			en.Outcome, en.Reason, en.Basis, en.ConsentID = consent.OutcomeRefused, "consent: refused: address: no basis", "", ""
			en.Items = nil
		}
		if err := e.s.Append(e.ctx, en); err != nil {
			t.Fatal(err)
		}
		if en.Seq != int64(i+1) || len(en.Hash) != 32 || (i == 0) != (en.Prev == nil) {
			t.Fatalf("append %d: seq %d hash %x prev %x", i, en.Seq, en.Hash, en.Prev)
		}
		appended = append(appended, en)
	}
	if err := e.s.Append(e.ctx, entry("cit_l2", "y")); err != nil {
		t.Fatal(err)
	}
	chain := checkChain(t, e.s, "cit_l", 5)
	for i, got := range chain {
		want := appended[i]
		if got.ID != want.ID || !bytes.Equal(got.Hash, want.Hash) || !sameTime(got.At, want.At) || got.Actor != want.Actor ||
			got.Channel != want.Channel || got.Purpose != want.Purpose || got.Outcome != want.Outcome || got.Reason != want.Reason ||
			len(got.Items) != len(want.Items) || got.FlaggedAt != nil {
			t.Fatalf("entry %d read back: got %+v, want %+v", i, got, want)
		}
	}
	one, err := e.s.GetEntry(e.ctx, "cit_l", appended[3].ID)
	if err != nil || !bytes.Equal(one.Hash, appended[3].Hash) || one.Seq != 4 {
		t.Fatalf("GetEntry: %+v, %v", one, err)
	}
	checkChain(t, e.s, "cit_l2", 1)
}

func logConcurrentAppends(e *env) {
	t := e.t
	const workers, each = 8, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := e.s.Append(e.ctx, entry("cit_busy", fmt.Sprintf("%d.%d", w, i))); err != nil {
					errs <- err
				}
				if w%2 == 0 {
					if err := e.s.Append(e.ctx, entry(fmt.Sprintf("cit_side%d", w), fmt.Sprint(i))); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent append: %v", err)
	}
	checkChain(t, e.s, "cit_busy", workers*each)
	checkChain(t, e.s, "cit_side0", each)
	checkChain(t, e.s, "cit_side6", each)
}

func logDuplicateID(e *env) {
	t := e.t
	first := entry("cit_d", "a")
	if err := e.s.Append(e.ctx, first); err != nil {
		t.Fatal(err)
	}
	dup := entry("cit_d", "b")
	dup.ID = first.ID
	wantErr(t, "append with a used id", e.s.Append(e.ctx, dup), consent.ErrConflict)
	next := entry("cit_d", "c")
	if err := e.s.Append(e.ctx, next); err != nil {
		t.Fatal(err)
	}
	if next.Seq != 2 {
		t.Fatalf("append after a refused one: seq %d, want 2", next.Seq)
	}
	checkChain(t, e.s, "cit_d", 2)
}

func logPagination(e *env) {
	t := e.t
	for i := range 25 {
		if err := e.s.Append(e.ctx, entry("cit_pg", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	var seqs []int64
	cursor := ""
	for range 10 {
		page, next, err := e.s.ListEntries(e.ctx, consent.EntryQuery{CitizenID: "cit_pg", Page: consent.Page{Cursor: cursor, Limit: 10}})
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(page))
		for _, en := range page {
			seqs = append(seqs, en.Seq)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(sizes, []int{10, 10, 5}) {
		t.Fatalf("page sizes: got %v, want [10 10 5]", sizes)
	}
	for i, s := range seqs {
		if s != int64(25-i) {
			t.Fatalf("seq at %d: got %d, want %d (newest first)", i, s, 25-i)
		}
	}
	page, _, err := e.s.ListEntries(e.ctx, consent.EntryQuery{CitizenID: "cit_pg"})
	if err != nil || len(page) != consent.DefaultLimit {
		t.Fatalf("default page: %d, %v", len(page), err)
	}
	for _, c := range []string{"%%%", "YWJj", "MS4y"} {
		_, _, err := e.s.ListEntries(e.ctx, consent.EntryQuery{CitizenID: "cit_pg", Page: consent.Page{Cursor: c}})
		wantErr(t, "malformed cursor "+c, err, consent.ErrInvalid)
	}
	_, _, err = e.s.ListEntries(e.ctx, consent.EntryQuery{})
	wantErr(t, "entries of no citizen", err, consent.ErrInvalid)
}

func logFlagOnce(e *env) {
	t := e.t
	var ents []*consent.Entry
	for _, c := range []string{"cit_f1", "cit_f1", "cit_f2"} {
		en := entry(c, "x")
		if err := e.s.Append(e.ctx, en); err != nil {
			t.Fatal(err)
		}
		ents = append(ents, en)
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	got, err := e.s.FlagEntry(e.ctx, "cit_f1", ents[0].ID, "Tôi không dùng dịch vụ này", at)
	if err != nil {
		t.Fatal(err)
	}
	if got.FlaggedAt == nil || !sameTime(*got.FlaggedAt, at) || got.FlagNote != "Tôi không dùng dịch vụ này" || !bytes.Equal(got.Hash, ents[0].Hash) {
		t.Fatalf("flagged: %+v", got)
	}
	got, err = e.s.FlagEntry(e.ctx, "cit_f1", ents[0].ID, "second", at.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !sameTime(*got.FlaggedAt, at) || got.FlagNote != "Tôi không dùng dịch vụ này" {
		t.Fatalf("second flag replaced the first: %+v", got)
	}
	if _, err := e.s.FlagEntry(e.ctx, "cit_f2", ents[2].ID, "", at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.FlagEntry(e.ctx, "cit_f1", "log_unknown", "", at)
	wantErr(t, "flag unknown entry", err, consent.ErrNotFound)
	flagged, _, err := e.s.ListEntries(e.ctx, consent.EntryQuery{Flagged: true})
	if err != nil || len(flagged) != 2 || flagged[0].ID != ents[2].ID || flagged[1].ID != ents[0].ID {
		t.Fatalf("flagged entries (newest flag first): %+v, %v", flagged, err)
	}
	page, next, err := e.s.ListEntries(e.ctx, consent.EntryQuery{Flagged: true, Page: consent.Page{Limit: 1}})
	if err != nil || len(page) != 1 || next == "" {
		t.Fatalf("first flagged page: %d %q %v", len(page), next, err)
	}
	page, next, err = e.s.ListEntries(e.ctx, consent.EntryQuery{Flagged: true, Page: consent.Page{Limit: 1, Cursor: next}})
	if err != nil || len(page) != 1 || page[0].ID != ents[0].ID || next != "" {
		t.Fatalf("second flagged page: %+v %q %v", page, next, err)
	}
	mine, _, err := e.s.ListEntries(e.ctx, consent.EntryQuery{CitizenID: "cit_f1", Flagged: true})
	if err != nil || len(mine) != 1 || mine[0].ID != ents[0].ID {
		t.Fatalf("cit_f1's flagged entries: %+v, %v", mine, err)
	}
	checkChain(t, e.s, "cit_f1", 2) // the flag is outside the hash
}

func badInput(e *env) {
	t := e.t
	sg := &signer{}
	nul, bad := "cit\x00x", "cit\xff\xfe"
	e.put(record("cit_ok", "client1", "login", "name"), sg)
	okEntry := entry("cit_ok", "x")
	if err := e.s.Append(e.ctx, okEntry); err != nil {
		t.Fatal(err)
	}
	mod := func(f func(r *consent.Record)) *consent.Record {
		r := record("cit_bad", "client1", "login", "name")
		f(r)
		return r
	}
	for name, r := range map[string]*consent.Record{
		"nul citizen":     mod(func(r *consent.Record) { r.CitizenID = nul }),
		"utf8 citizen":    mod(func(r *consent.Record) { r.CitizenID = bad }),
		"empty citizen":   mod(func(r *consent.Record) { r.CitizenID = "" }),
		"empty client":    mod(func(r *consent.Record) { r.ClientID = "" }),
		"empty purpose":   mod(func(r *consent.Record) { r.Purpose.Code = "" }),
		"empty id":        mod(func(r *consent.Record) { r.ID = "" }),
		"nul item":        mod(func(r *consent.Record) { r.Items = []string{"name", "a\x00b"} }),
		"utf8 item":       mod(func(r *consent.Record) { r.Items = []string{"\xc3\x28"} }),
		"empty item":      mod(func(r *consent.Record) { r.Items = []string{""} }),
		"no items":        mod(func(r *consent.Record) { r.Items, r.Declined = nil, nil }),
		"nul evidence":    mod(func(r *consent.Record) { r.Evidence = "a\x00" }),
		"utf8 recipient":  mod(func(r *consent.Record) { r.Recipient = "\xff" }),
		"utf8 notice":     mod(func(r *consent.Record) { r.Notice = "\xff" }),
		"utf8 purpose":    mod(func(r *consent.Record) { r.Purpose.Text = "\xff" }),
		"bad method":      mod(func(r *consent.Record) { r.Method = "telepathy" }),
		"legal basis":     mod(func(r *consent.Record) { r.Basis = consent.BasisPublicTask }),
		"no expiry":       mod(func(r *consent.Record) { r.ExpiresAt = time.Time{} }),
		"nul declined":    mod(func(r *consent.Record) { r.Declined = []string{"\x00"} }),
		"nul client":      mod(func(r *consent.Record) { r.ClientID = "c\x00" }),
		"utf8 agency":     mod(func(r *consent.Record) { r.Agency = "\xff" }),
		"huge evidence":   mod(func(r *consent.Record) { r.Evidence = string(make([]byte, 1<<20)) }),
		"nul purpose":     mod(func(r *consent.Record) { r.Purpose.Code = "p\x00" }),
		"utf8 record id":  mod(func(r *consent.Record) { r.ID = "cns_\xff" }),
		"nul record id":   mod(func(r *consent.Record) { r.ID = "cns_\x00" }),
		"utf8 client id":  mod(func(r *consent.Record) { r.ClientID = "\xff" }),
		"utf8 declined":   mod(func(r *consent.Record) { r.Declined = []string{"\xff"} }),
		"utf8 purpose id": mod(func(r *consent.Record) { r.Purpose.Code = "\xff" }),
	} {
		wantErr(t, "PutRecord "+name, e.s.PutRecord(e.ctx, r, sg.sign), consent.ErrInvalid)
	}
	wantErr(t, "PutRecord nil", e.s.PutRecord(e.ctx, nil, sg.sign), consent.ErrInvalid)
	for _, id := range []string{nul, bad, ""} {
		_, err := e.s.LiveRecord(e.ctx, id, "client1", "login")
		wantErr(t, fmt.Sprintf("LiveRecord(%q)", id), err, consent.ErrInvalid)
		_, err = e.s.LiveRecord(e.ctx, "cit_ok", id, "login")
		wantErr(t, fmt.Sprintf("LiveRecord client %q", id), err, consent.ErrInvalid)
		_, err = e.s.GetRecord(e.ctx, "cit_ok", id)
		wantErr(t, fmt.Sprintf("GetRecord(%q)", id), err, consent.ErrInvalid)
		_, err = e.s.WithdrawRecord(e.ctx, "cit_ok", id, time.Now(), sg.sign)
		wantErr(t, fmt.Sprintf("WithdrawRecord(%q)", id), err, consent.ErrInvalid)
		_, err = e.s.Receipts(e.ctx, "cit_ok", id)
		wantErr(t, fmt.Sprintf("Receipts(%q)", id), err, consent.ErrInvalid)
		_, err = e.s.GetReceipt(e.ctx, "cit_ok", id)
		wantErr(t, fmt.Sprintf("GetReceipt(%q)", id), err, consent.ErrInvalid)
		_, err = e.s.GetEntry(e.ctx, "cit_ok", id)
		wantErr(t, fmt.Sprintf("GetEntry(%q)", id), err, consent.ErrInvalid)
		_, err = e.s.FlagEntry(e.ctx, "cit_ok", id, "", time.Now())
		wantErr(t, fmt.Sprintf("FlagEntry(%q)", id), err, consent.ErrInvalid)
		_, err = e.s.FlagEntry(e.ctx, id, okEntry.ID, "", time.Now())
		wantErr(t, fmt.Sprintf("FlagEntry citizen %q", id), err, consent.ErrInvalid)
		wantErr(t, fmt.Sprintf("RevokeLegalBasis(%q)", id), e.s.RevokeLegalBasis(e.ctx, id, TestChange), consent.ErrInvalid)
		_, _, err = e.s.ListRecords(e.ctx, consent.RecordQuery{CitizenID: id})
		wantErr(t, fmt.Sprintf("ListRecords(%q)", id), err, consent.ErrInvalid)
		if id != "" {
			_, err = e.s.GetRecord(e.ctx, id, "cns_x")
			wantErr(t, fmt.Sprintf("GetRecord citizen %q", id), err, consent.ErrInvalid)
			_, _, err = e.s.ListEntries(e.ctx, consent.EntryQuery{CitizenID: id})
			wantErr(t, fmt.Sprintf("ListEntries(%q)", id), err, consent.ErrInvalid)
			_, err = e.s.LegalBases(e.ctx, id, "")
			wantErr(t, fmt.Sprintf("LegalBases(%q)", id), err, consent.ErrInvalid)
		}
	}
	_, err := e.s.FlagEntry(e.ctx, "cit_ok", okEntry.ID, "note\x00", time.Now())
	wantErr(t, "FlagEntry NUL note", err, consent.ErrInvalid)
	_, err = e.s.FlagEntry(e.ctx, "cit_ok", okEntry.ID, "\xff", time.Now())
	wantErr(t, "FlagEntry invalid UTF-8 note", err, consent.ErrInvalid)

	emod := func(f func(en *consent.Entry)) *consent.Entry {
		en := entry("cit_bad", "x")
		f(en)
		return en
	}
	for name, en := range map[string]*consent.Entry{
		"nil":           nil,
		"empty id":      emod(func(en *consent.Entry) { en.ID = "" }),
		"empty citizen": emod(func(en *consent.Entry) { en.CitizenID = "" }),
		"nul citizen":   emod(func(en *consent.Entry) { en.CitizenID = nul }),
		"utf8 citizen":  emod(func(en *consent.Entry) { en.CitizenID = bad }),
		"nul item":      emod(func(en *consent.Entry) { en.Items = []string{"a\x00"} }),
		"utf8 item":     emod(func(en *consent.Entry) { en.Items = []string{"\xff"} }),
		"empty item":    emod(func(en *consent.Entry) { en.Items = []string{""} }),
		"nul reason":    emod(func(en *consent.Entry) { en.Reason = "\x00" }),
		"utf8 law":      emod(func(en *consent.Entry) { en.Law = "\xff" }),
		"utf8 operator": emod(func(en *consent.Entry) { en.Actor.Operator = "\xff" }),
		"nul purpose":   emod(func(en *consent.Entry) { en.Purpose = "\x00" }),
		"no time":       emod(func(en *consent.Entry) { en.At = time.Time{} }),
		"no channel":    emod(func(en *consent.Entry) { en.Channel = "" }),
		"bad outcome":   emod(func(en *consent.Entry) { en.Outcome = "maybe" }),
		"bad basis":     emod(func(en *consent.Entry) { en.Basis = "whim" }),
	} {
		wantErr(t, "Append "+name, e.s.Append(e.ctx, en), consent.ErrInvalid)
	}
	checkChain(t, e.s, "cit_ok", 1)
	for _, b := range []*consent.LegalBasis{
		{Agency: nul, Purpose: "p", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "x"},
		{Agency: "A", Purpose: bad, Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "x"},
		{Agency: "A", Purpose: "p", Items: []string{"n\x00"}, Basis: consent.BasisPublicTask, Law: "x"},
		{Agency: "A", Purpose: "p", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "\xff"},
		{Agency: "A", Purpose: "p", Items: []string{"name"}, Basis: consent.BasisPublicTask, Law: "x\x00"},
	} {
		wantErr(t, fmt.Sprintf("PutLegalBasis(%q)", b.Agency+"/"+b.Purpose+"/"+b.Law), e.s.PutLegalBasis(e.ctx, b, TestChange), consent.ErrInvalid)
	}
	if got, err := e.s.LegalBases(e.ctx, "", ""); err != nil || len(got) != 0 {
		t.Fatalf("legal bases after bad input: %d, %v", len(got), err)
	}
}

// onBehalf: a consent given, and a release made, by a representative for
// the citizen read back with who acted; the entry's hash covers it, and an
// entry without one hashes as entries did before representation existed.
func onBehalf(e *env) {
	t := e.t
	by := &consent.OnBehalf{CitizenID: "cit_guardian", Basis: "guardian"}
	r := record("cit_ward", "client-w", "p1", "name")
	r.GivenBy = by
	e.put(r, nil)
	got, err := e.s.GetRecord(e.ctx, "cit_ward", r.ID)
	if err != nil || got.GivenBy == nil || *got.GivenBy != *by {
		t.Fatalf("record given by a guardian read back as %+v, %v", got, err)
	}
	plain := e.put(record("cit_ward", "client-x", "p1", "name"), nil)
	if got, err := e.s.GetRecord(e.ctx, "cit_ward", plain.ID); err != nil || got.GivenBy != nil {
		t.Fatalf("record given by the citizen read back as %+v, %v", got, err)
	}
	en := entry("cit_ward", "rep")
	en.OnBehalf = &consent.OnBehalf{CitizenID: "cit_employee", Basis: "mandate", MandateID: "mdt_1"}
	if err := e.s.Append(e.ctx, en); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Append(e.ctx, entry("cit_ward", "own")); err != nil {
		t.Fatal(err)
	}
	chain := checkChain(t, e.s, "cit_ward", 2)
	if chain[0].OnBehalf == nil || *chain[0].OnBehalf != *en.OnBehalf || chain[1].OnBehalf != nil {
		t.Fatalf("entries read back with representatives %+v and %+v", chain[0].OnBehalf, chain[1].OnBehalf)
	}
	forged := *chain[0]
	forged.OnBehalf = nil
	if bytes.Equal(forged.ComputeHash(), chain[0].Hash) {
		t.Fatal("the hash does not cover the representative")
	}
	bad := entry("cit_ward", "bad")
	bad.OnBehalf = &consent.OnBehalf{Basis: "guardian"}
	wantErr(t, "representative without a citizen", e.s.Append(e.ctx, bad), consent.ErrInvalid)
}

// TestChange is the operator and reason the suites change legal bases
// with.
var TestChange = consent.BasisChange{Operator: "op.test", Reason: "conformance suite"}
