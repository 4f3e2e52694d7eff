package eid

import (
	"context"
	"errors"
	"fmt"

	"github.com/onedoor/onedoor/idp"
)

// Conclude ends a pending login request that the browser finished another
// way (a passkey): it is marked taken, so a decision the app makes at the
// same moment can never be taken too, and removed, so the app can no longer
// answer it. idp.ErrNotFound when it was already taken or is gone.
func (s *Service) Conclude(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("conclude login: %w", idp.ErrNotFound)
	}
	if err := s.eph.Create(ctx, takenKey(id), []byte{1}, s.cfg.LoginTTL); err != nil {
		if errors.Is(err, idp.ErrConflict) {
			return fmt.Errorf("login request already taken: %w", idp.ErrNotFound)
		}
		return fmt.Errorf("conclude login: %w", err)
	}
	if _, err := s.Login(ctx, id); err != nil {
		return err
	}
	return s.eph.Delete(ctx, loginKey(id))
}
