package eid

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// A targeted login (the relying party sent login_hint) is sent to one
// citizen's devices instead of being scanned: the request names its target,
// only that citizen's devices may read or answer it, and each device can
// list the requests waiting for its citizen. A citizen gets at most a few
// prompts per window (push-fatigue protection); beyond that the login falls
// back to the QR code.

// Unmatched is the Target of a request hinted at a personal id no citizen
// has: no device matches it, so it answers exactly as a registered
// citizen's request would to anyone else's device.
const Unmatched = "unmatched"

// For reports whether dev may see and answer r.
func (r *LoginRequest) For(dev *idp.Device) bool {
	if r.Target == "" {
		return true
	}
	return dev != nil && subtle.ConstantTimeCompare([]byte(r.Target), []byte(dev.CitizenID)) == 1
}

func promptsKey(key string, window time.Time) string {
	return "eid:prompts:" + key + ":" + strconv.FormatInt(window.Unix(), 10)
}

func slotKey(citizenID string, window time.Time, n int64) string {
	return "eid:target:" + citizenID + ":" + strconv.FormatInt(window.Unix(), 10) + ":" + strconv.FormatInt(n, 10)
}

// Prompt is a reserved approval prompt for one citizen in one window.
type Prompt struct {
	window time.Time
	n      int64
}

// ReservePrompt counts an approval prompt against key (an opaque subject
// key: the same for a personal id whether or not a citizen has it) and
// reports whether it is within limit per window. Counting is one atomic
// increment in the ephemeral store.
func (s *Service) ReservePrompt(ctx context.Context, key string, limit int, window time.Duration) (*Prompt, bool, error) {
	w := s.now().Truncate(window)
	n, err := s.eph.Incr(ctx, promptsKey(key, w), window+time.Second)
	if err != nil {
		return nil, false, fmt.Errorf("count approval prompts: %w", err)
	}
	if n > int64(limit) {
		return nil, false, nil
	}
	return &Prompt{window: w, n: n}, true, nil
}

// Index makes r, targeted at a citizen, listed by PendingFor for as long
// as it lives. p is the prompt ReservePrompt gave for that citizen.
func (s *Service) Index(ctx context.Context, r *LoginRequest, p *Prompt) error {
	if r.Target == "" || p == nil {
		return nil
	}
	if err := s.eph.Set(ctx, slotKey(r.Target, p.window, p.n), []byte(r.ID), s.cfg.LoginTTL); err != nil {
		return fmt.Errorf("index targeted login: %w", err)
	}
	return nil
}

// PendingFor returns the pending login requests targeted at citizenID,
// oldest first. It reads the prompt slots of this window and the last
// (at most 2*limit reads; a request lives less than a window).
func (s *Service) PendingFor(ctx context.Context, citizenID string, limit int, window time.Duration) ([]*LoginRequest, error) {
	w := s.now().Truncate(window)
	var out []*LoginRequest
	for _, win := range []time.Time{w.Add(-window), w} {
		for n := int64(1); n <= int64(limit); n++ {
			id, err := s.eph.Get(ctx, slotKey(citizenID, win, n))
			if errors.Is(err, idp.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("targeted logins: %w", err)
			}
			r, st, err := s.Lookup(ctx, string(id))
			if err != nil {
				return nil, err
			}
			if st != StatusPending {
				continue
			}
			if r.Target == citizenID {
				out = append(out, r)
			}
		}
	}
	return out, nil
}
