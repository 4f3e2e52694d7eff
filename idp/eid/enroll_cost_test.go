package eid_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/sqlite"
)

// countingStore records the eid.Store calls made through it, in order, and
// passes them on to the real store.
type countingStore struct {
	eid.Store
	mu    sync.Mutex
	calls []string
}

func (s *countingStore) record(name string) {
	s.mu.Lock()
	s.calls = append(s.calls, name)
	s.mu.Unlock()
}

func (s *countingStore) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func (s *countingStore) GetCitizenByPersonalID(ctx context.Context, pid string) (*idp.Citizen, error) {
	s.record("GetCitizenByPersonalID")
	return s.Store.GetCitizenByPersonalID(ctx, pid)
}

func (s *countingStore) PutActivation(ctx context.Context, a *idp.Activation) error {
	s.record("PutActivation")
	return s.Store.PutActivation(ctx, a)
}

func (s *countingStore) UpdateActivation(ctx context.Context, citizenID string, fn func(a *idp.Activation) error) error {
	s.record("UpdateActivation")
	return s.Store.UpdateActivation(ctx, citizenID, fn)
}

func (s *countingStore) CreateDevice(ctx context.Context, d *idp.Device) error {
	s.record("CreateDevice")
	return s.Store.CreateDevice(ctx, d)
}

func (s *countingStore) GetDevice(ctx context.Context, id string) (*idp.Device, error) {
	s.record("GetDevice")
	return s.Store.GetDevice(ctx, id)
}

func (s *countingStore) ListDevices(ctx context.Context, citizenID string) ([]*idp.Device, error) {
	s.record("ListDevices")
	return s.Store.ListDevices(ctx, citizenID)
}

func (s *countingStore) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	s.record("RevokeDevice")
	return s.Store.RevokeDevice(ctx, id, at)
}

// An enrollment for a personal id no citizen has costs what a wrong code for
// an existing citizen costs: the same store calls in the same order and the
// same number of keyed hashes, on the real SQLite store. (Proven by counting,
// not by timing.)
func TestService_Enroll_UnknownPersonalIDCostsTheSame(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "onedoor.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	sqlStore := sqlite.New(db)
	if err := sqlStore.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	withCode, withoutCode := testCitizen, testCitizen
	withoutCode.ID, withoutCode.PersonalID = "c-0002", "001099054321"
	if err := sqlStore.CreateCitizens(ctx, []*idp.Citizen{&withCode, &withoutCode}); err != nil {
		t.Fatal(err)
	}
	store := &countingStore{Store: sqlStore}
	svc := eid.New(store, sqlStore, eid.Config{Issuer: testIssuer, CodeKey: []byte("0123456789abcdef0123456789abcdef")})
	var hashes int
	eid.OnCodeHash(svc, func() { hashes++ })
	if _, _, err := svc.Activate(ctx, withCode.PersonalID, idp.LevelHigh); err != nil {
		t.Fatal(err)
	}

	key := publicJWK(t, newKey(t).Public())
	attempt := func(pid string) ([]string, int) {
		t.Helper()
		store.take()
		hashes = 0
		_, err := svc.Enroll(ctx, eid.EnrollRequest{PersonalID: pid, ActivationCode: "AAAAA-AAAAA", PublicKey: key})
		if !errors.Is(err, eid.ErrEnrollmentFailed) || err.Error() != eid.ErrEnrollmentFailed.Error() {
			t.Fatalf("enroll %s: err = %v, want the bare ErrEnrollmentFailed", pid, err)
		}
		return store.take(), hashes
	}
	wrongCode, wrongHashes := attempt(withCode.PersonalID)
	unknown, unknownHashes := attempt("009999999999")
	noActivation, noActivationHashes := attempt(withoutCode.PersonalID)

	if len(wrongCode) == 0 || wrongHashes == 0 {
		t.Fatalf("wrong code: calls %v, %d hashes: the attempt did no work", wrongCode, wrongHashes)
	}
	if !slices.Equal(unknown, wrongCode) || unknownHashes != wrongHashes {
		t.Errorf("unknown personal id: calls %v, %d hashes; wrong code: calls %v, %d hashes", unknown, unknownHashes, wrongCode, wrongHashes)
	}
	if !slices.Equal(noActivation, wrongCode) || noActivationHashes != wrongHashes {
		t.Errorf("citizen without activation: calls %v, %d hashes; wrong code: calls %v, %d hashes", noActivation, noActivationHashes, wrongCode, wrongHashes)
	}
	// The wrong code was counted against the real activation only.
	a, err := sqlStore.GetActivation(ctx, withCode.ID)
	if err != nil || a.Attempts != 1 {
		t.Fatalf("activation after one wrong code: %+v, %v", a, err)
	}
}
