package keyset

import (
	"errors"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// A key that stops being active never signs again in a process that
// decrypted it while it was: with the active key withdrawn by hand (as an
// operator would a compromised one), a long-running process must not fall
// back to the previously retired key, and agrees with a fresh process.
func TestManager_RetiredKeyNeverSignsAgain(t *testing.T) {
	st, clk := newMemStore(), newClock()
	admin, server := newManager(t, st, clk), newManager(t, st, clk)
	ctx := t.Context()
	if err := admin.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := server.SigningKey(ctx, ES256); err != nil { // the server decrypts the first key
		t.Fatal(err)
	}
	promoted, err := admin.Rotate(ctx, ES256, true) // old → retired
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(server.opts.Refresh)
	if k, _ := server.SigningKey(ctx, ES256); k.ID != promoted.ID {
		t.Fatalf("after rotate: server signs with %s, want %s", k.ID, promoted.ID)
	}
	// Withdraw the promoted key (compromised): retired and no longer published.
	if err := st.UpdateKey(ctx, promoted.ID, func(k *idp.SigningKey) error {
		now := clk.Now()
		k.State = idp.KeyRetired
		k.RetiredAt = &now
		k.PublishUntil = &now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clk.Add(server.opts.Refresh + time.Second)
	k, err := server.SigningKey(ctx, ES256)
	if err == nil {
		t.Errorf("long-running process signs with %s (state %s), want no ES256 signing key", k.ID, st.get(k.ID).State)
	}
	fresh := newManager(t, st, clk)
	if _, ferr := fresh.SigningKey(ctx, ES256); !errors.Is(ferr, idp.ErrNotFound) || !errors.Is(err, idp.ErrNotFound) {
		t.Errorf("long-running process: %v; fresh process: %v; want both to find no ES256 key", err, ferr)
	}
}
