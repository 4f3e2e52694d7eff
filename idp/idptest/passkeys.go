package idptest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// RunPasskeyStoreTests runs the idp.PasskeyStore suite. newStore returns a
// fresh, migrated store.
func RunPasskeyStoreTests(t *testing.T, newStore func(t *testing.T) idp.PasskeyStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s idp.PasskeyStore)
	}{
		{"UserHandleStableAndOpaque", testPasskeyUserHandle},
		{"CreateGetList", testPasskeyCreateGetList},
		{"CredentialIDRegisteredOnce", testPasskeyDuplicateCredential},
		{"RenameDeleteOnlyOwn", testPasskeyOwnOnly},
		{"CounterMustAdvance", testPasskeyCounter},
		{"ConcurrentUseOneWins", testPasskeyConcurrentUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			withTimeout(subtestTimeout, func() { tt.run(t, s) })
		})
	}
}

func passkeyFor(citizen, id string, cred byte) *idp.Passkey {
	return &idp.Passkey{ID: id, CitizenID: citizen, CredentialID: []byte{cred, 1, 2, 3}, PublicKey: []byte{0xa5, 1, 2},
		AAGUID: make([]byte, 16), BackupEligible: true, Transports: []string{"internal"}, Level: idp.LevelSubstantial,
		Name: "Laptop", CreatedAt: at(time.Duration(cred) * time.Minute)}
}

func testPasskeyUserHandle(t *testing.T, s idp.PasskeyStore) {
	ctx := context.Background()
	h, err := s.PasskeyUserHandle(ctx, "cit_a", []byte("handle-a-0000000"))
	mustNil(t, err, "first handle")
	equal(t, h, []byte("handle-a-0000000"), "first handle")
	// A second call keeps the first handle: every passkey of a citizen
	// shares it.
	h2, err := s.PasskeyUserHandle(ctx, "cit_a", []byte("handle-a-1111111"))
	mustNil(t, err, "second handle")
	equal(t, h2, h, "second handle")
	id, err := s.CitizenByUserHandle(ctx, h)
	mustNil(t, err, "citizen by handle")
	if id != "cit_a" {
		t.Errorf("citizen by handle = %q, want cit_a", id)
	}
	_, err = s.CitizenByUserHandle(ctx, []byte("handle-a-1111111"))
	mustBe(t, err, idp.ErrNotFound, "citizen by an unused handle")
	_, err = s.PasskeyUserHandle(ctx, "cit_b", h)
	mustBe(t, err, idp.ErrConflict, "another citizen's handle")
}

func testPasskeyCreateGetList(t *testing.T, s idp.PasskeyStore) {
	ctx := context.Background()
	a1, a2, b1 := passkeyFor("cit_a", "pk_a1", 1), passkeyFor("cit_a", "pk_a2", 2), passkeyFor("cit_b", "pk_b1", 3)
	a2.BackupEligible, a2.Transports, a2.AAGUID = false, []string{"usb", "nfc"}, nil
	for _, p := range []*idp.Passkey{a1, a2, b1} {
		mustNil(t, s.CreatePasskey(ctx, p), "create "+p.ID)
	}
	got, err := s.GetPasskey(ctx, "pk_a2")
	mustNil(t, err, "get")
	equal(t, got, a2, "get")
	got, err = s.GetPasskeyByCredentialID(ctx, b1.CredentialID)
	mustNil(t, err, "get by credential id")
	equal(t, got, b1, "get by credential id")
	list, err := s.ListPasskeys(ctx, "cit_a")
	mustNil(t, err, "list")
	equal(t, list, []*idp.Passkey{a1, a2}, "list")
	list, err = s.ListPasskeys(ctx, "cit_none")
	mustNil(t, err, "list none")
	if len(list) != 0 {
		t.Errorf("list of a citizen without passkeys = %d", len(list))
	}
	_, err = s.GetPasskey(ctx, "pk_none")
	mustBe(t, err, idp.ErrNotFound, "get absent")
	_, err = s.GetPasskeyByCredentialID(ctx, []byte{9, 9})
	mustBe(t, err, idp.ErrNotFound, "get absent credential")
}

func testPasskeyDuplicateCredential(t *testing.T, s idp.PasskeyStore) {
	ctx := context.Background()
	mustNil(t, s.CreatePasskey(ctx, passkeyFor("cit_a", "pk_1", 1)), "create")
	// The same authenticator credential for another citizen, or again.
	mustBe(t, s.CreatePasskey(ctx, passkeyFor("cit_b", "pk_2", 1)), idp.ErrConflict, "same credential, other citizen")
	mustBe(t, s.CreatePasskey(ctx, passkeyFor("cit_a", "pk_3", 1)), idp.ErrConflict, "same credential again")
	mustBe(t, s.CreatePasskey(ctx, passkeyFor("cit_a", "pk_1", 2)), idp.ErrConflict, "same id")
}

func testPasskeyOwnOnly(t *testing.T, s idp.PasskeyStore) {
	ctx := context.Background()
	mustNil(t, s.CreatePasskey(ctx, passkeyFor("cit_a", "pk_a", 1)), "create")
	mustBe(t, s.RenamePasskey(ctx, "cit_b", "pk_a", "Mine now"), idp.ErrNotFound, "rename another's")
	mustBe(t, s.DeletePasskey(ctx, "cit_b", "pk_a"), idp.ErrNotFound, "delete another's")
	mustNil(t, s.RenamePasskey(ctx, "cit_a", "pk_a", "Điện thoại"), "rename own")
	got, err := s.GetPasskey(ctx, "pk_a")
	mustNil(t, err, "get")
	if got.Name != "Điện thoại" {
		t.Errorf("name = %q after rename", got.Name)
	}
	mustNil(t, s.DeletePasskey(ctx, "cit_a", "pk_a"), "delete own")
	_, err = s.GetPasskey(ctx, "pk_a")
	mustBe(t, err, idp.ErrNotFound, "get deleted")
	mustBe(t, s.DeletePasskey(ctx, "cit_a", "pk_a"), idp.ErrNotFound, "delete twice")
	mustBe(t, s.UsePasskey(ctx, "pk_a", 1, at(time.Hour)), idp.ErrNotFound, "use deleted")
}

func testPasskeyCounter(t *testing.T, s idp.PasskeyStore) {
	ctx := context.Background()
	zero := passkeyFor("cit_a", "pk_zero", 1)
	zero.SignCount = 0
	counted := passkeyFor("cit_a", "pk_counted", 2)
	counted.SignCount = 5
	mustNil(t, s.CreatePasskey(ctx, zero), "create")
	mustNil(t, s.CreatePasskey(ctx, counted), "create")
	// An authenticator that keeps no counter always says 0.
	mustNil(t, s.UsePasskey(ctx, "pk_zero", 0, at(time.Hour)), "zero stays zero")
	mustNil(t, s.UsePasskey(ctx, "pk_counted", 6, at(time.Hour)), "advance")
	for _, c := range []uint32{6, 3, 0} {
		mustBe(t, s.UsePasskey(ctx, "pk_counted", c, at(2*time.Hour)), idp.ErrConflict, fmt.Sprintf("counter %d after 6", c))
	}
	got, err := s.GetPasskey(ctx, "pk_counted")
	mustNil(t, err, "get")
	if got.SignCount != 6 || got.LastUsedAt == nil || !got.LastUsedAt.Equal(at(time.Hour)) {
		t.Errorf("after refused uses: count %d, last used %v; want 6 at %v", got.SignCount, got.LastUsedAt, at(time.Hour))
	}
	mustNil(t, s.UsePasskey(ctx, "pk_counted", 1<<32-1, at(3*time.Hour)), "largest counter")
	got, err = s.GetPasskey(ctx, "pk_counted")
	mustNil(t, err, "get")
	if got.SignCount != 1<<32-1 {
		t.Errorf("count = %d, want %d", got.SignCount, uint32(1<<32-1))
	}
}

func testPasskeyConcurrentUse(t *testing.T, s idp.PasskeyStore) {
	ctx := context.Background()
	mustNil(t, s.CreatePasskey(ctx, passkeyFor("cit_a", "pk_a", 1)), "create")
	// Two replicas verifying the same assertion (counter 7): one wins.
	errs := runConcurrently(8, func(int) error { return s.UsePasskey(ctx, "pk_a", 7, at(time.Hour)) })
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !isConflict(err):
			t.Errorf("concurrent use: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of 8 concurrent uses of one counter value succeeded, want 1", won)
	}
}

func isConflict(err error) bool { return err != nil && errors.Is(err, idp.ErrConflict) }
