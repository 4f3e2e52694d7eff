// Package sso ends single sign-on sessions and tells the relying parties:
// the durable session index (idp.SessionStore) and the ephemeral entries the
// browsers' cookies find are ended together, and every client a session
// logged in to that registered a back-channel logout URI receives an OIDC
// Back-Channel Logout 1.0 logout token, delivered by Worker from the IdP's
// one durable delivery queue (idp.DeliveryStore) with retries. The same
// worker sends the queue's CIBA pings.
package sso

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
)

// Store is what the Service needs of the durable store.
type Store interface {
	idp.SessionStore
	idp.SubjectRefreshRevoker
	idp.RevocationStore
}

// ErrUnreachable means a session's ephemeral entry lives in another store
// than this Service's (an operator command run without the server's Redis):
// ending only its index would leave the entry behind.
var ErrUnreachable = errors.New("session held in an ephemeral store this process does not reach")

// Service starts, lists and ends sessions.
type Service struct {
	store  Store
	eph    idp.Ephemeral
	where  string // names eph in the index (idp.Session.Ephemeral)
	now    func() time.Time
	notify func()
}

// New returns a Service; now defaults to time.Now.
func New(store Store, eph idp.Ephemeral, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, eph: eph, now: now, notify: func() {}}
}

// SetEphemeral names the ephemeral store ("database" for the durable
// database's own table, "redis:<prefix>" for Redis): sessions started here
// record it, and End refuses, with ErrUnreachable, sessions recorded in
// another one. Sessions recorded without a name (started before names were
// kept) are ended in this Service's store.
func (s *Service) SetEphemeral(name string) { s.where = name }

// Reachable returns an error wrapping ErrUnreachable when one of the
// citizen's live sessions is held in an ephemeral store other than this
// Service's, so a caller can refuse before it changes anything.
func (s *Service) Reachable(ctx context.Context, citizenID string) error {
	live, err := s.store.ListSessions(ctx, citizenID, s.now())
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	return s.reachable(live)
}

func (s *Service) reachable(ss []*idp.Session) error {
	n, where := 0, ""
	for _, x := range ss {
		if x.Ephemeral != "" && x.Ephemeral != s.where {
			n, where = n+1, x.Ephemeral
		}
	}
	if n > 0 {
		here := s.where
		if here == "" {
			here = "none named"
		}
		return fmt.Errorf("%d live session(s) are held in %q, this process's store is %q: %w", n, where, here, ErrUnreachable)
	}
	return nil
}

// SetNotify installs what wakes the delivery worker after logouts were
// queued (Worker.Notify in this process; other replicas poll).
func (s *Service) SetNotify(f func()) { s.notify = f }

// Start records a new session. The caller stores the ephemeral entry after
// it, so that no live session is missing from the index.
func (s *Service) Start(ctx context.Context, ss *idp.Session) error {
	ss.Ephemeral = s.where
	return s.store.CreateSession(ctx, ss)
}

// Touch records that the session logged in to the client; an error wrapping
// idp.ErrExpired when the session has ended, idp.ErrNotFound when it is not
// indexed.
func (s *Service) Touch(ctx context.Context, sid, clientID string) error {
	return s.store.TouchSession(ctx, sid, clientID, s.now())
}

// List returns the citizen's live sessions, newest first.
func (s *Service) List(ctx context.Context, citizenID string) ([]*idp.Session, error) {
	return s.store.ListSessions(ctx, citizenID, s.now())
}

// End ends the sessions f selects: their ephemeral entries (no browser is
// signed in by them any more, on any replica) and their durable records,
// which queues the back-channel logouts. When f names the citizen, the
// entries are deleted before the records are ended, so a failure leaves the
// sessions listed and a retry ends them; otherwise (a device's sessions,
// whose device is already revoked and so signs no browser in) after.
func (s *Service) End(ctx context.Context, f idp.SessionFilter) ([]*idp.Session, error) {
	if f.Empty() {
		return nil, fmt.Errorf("end sessions: no filter: %w", idp.ErrInvalid)
	}
	if f.CitizenID != "" {
		live, err := s.store.ListSessions(ctx, f.CitizenID, s.now())
		if err != nil {
			return nil, fmt.Errorf("end sessions: %w", err)
		}
		var sel []*idp.Session
		for _, ss := range live {
			if (f.SID == "" || f.SID == ss.SID) && (f.DeviceID == "" || f.DeviceID == ss.DeviceID) {
				sel = append(sel, ss)
			}
		}
		// Nothing is ended unless every entry can be: the index would
		// otherwise no longer list sessions whose entries still sign in.
		if err := s.reachable(sel); err != nil {
			return nil, fmt.Errorf("end sessions: %w", err)
		}
		for _, ss := range live {
			if (f.SID == "" || f.SID == ss.SID) && (f.DeviceID == "" || f.DeviceID == ss.DeviceID) {
				if err := s.eph.Delete(ctx, ss.Key); err != nil {
					return nil, fmt.Errorf("end sessions: %w", err)
				}
			}
		}
	}
	ended, err := s.store.EndSessions(ctx, f, s.now())
	if err != nil {
		return nil, fmt.Errorf("end sessions: %w", err)
	}
	errs := []error{s.reachable(ended)}
	for _, ss := range ended {
		if ss.Ephemeral != "" && ss.Ephemeral != s.where {
			continue
		}
		if err := s.eph.Delete(ctx, ss.Key); err != nil {
			errs = append(errs, err)
		}
	}
	if len(ended) > 0 {
		s.notify()
	}
	if err := errors.Join(errs...); err != nil {
		return ended, fmt.Errorf("end sessions: %w", err)
	}
	return ended, nil
}

// RevokeGrants revokes every refresh-token family of the citizen and denies
// the access tokens of those grants, on every replica.
func (s *Service) RevokeGrants(ctx context.Context, citizenID string) (int, error) {
	ids, err := s.store.RevokeSubjectRefreshTokens(ctx, citizenID)
	if err != nil {
		return 0, fmt.Errorf("revoke the citizen's refresh tokens: %w", err)
	}
	until := s.now().Add(accesstoken.MaxLifetime + denyMargin)
	for _, id := range ids {
		if err := s.store.Revoke(ctx, accesstoken.GrantKey(id), until); err != nil {
			return 0, fmt.Errorf("deny the citizen's access tokens: %w", err)
		}
	}
	return len(ids), nil
}

// denyMargin outlasts any verifier's clock skew, as accesstoken's does.
const denyMargin = 5 * time.Minute
