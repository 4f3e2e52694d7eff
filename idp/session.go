package idp

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"
)

// Session is the durable record of a single sign-on session. The session
// itself (what the browser's cookie finds) lives in the ephemeral store
// under Key, a hash of the cookie; this record indexes it by citizen and
// device, so that a lock or a device revocation can find and end it, and
// lists the clients it logged in to, which receive a back-channel logout
// when it ends.
type Session struct {
	SID       string
	CitizenID string
	DeviceID  string
	Level     Level
	Key       string // the ephemeral store key
	// Ephemeral names the store holding Key: "" for the durable database's
	// own ephemeral table, "redis:<prefix>" for Redis (sso.Service).
	Ephemeral string
	AuthTime  time.Time
	ExpiresAt time.Time
	EndedAt   *time.Time
	Clients   []string // in the order the session first logged in to them
}

// SessionFilter selects sessions; the set fields must all match and at least
// one of them must be set.
type SessionFilter struct {
	SID       string
	CitizenID string
	DeviceID  string
}

// Empty reports whether the filter selects nothing in particular.
func (f SessionFilter) Empty() bool { return f.SID == "" && f.CitizenID == "" && f.DeviceID == "" }

// SessionStore keeps the durable index of single sign-on sessions.
type SessionStore interface {
	// CreateSession records a new session; ErrConflict when its SID exists.
	CreateSession(ctx context.Context, s *Session) error
	// TouchSession records that the session logged in to the client;
	// ErrNotFound when the session is absent, ErrExpired when it has ended
	// or expired.
	TouchSession(ctx context.Context, sid, clientID string, at time.Time) error
	// ListSessions returns the citizen's live sessions at now, newest first,
	// with their clients.
	ListSessions(ctx context.Context, citizenID string, now time.Time) ([]*Session, error)
	// EndSessions ends the live sessions f selects and, in the same
	// transaction, queues a back-channel logout for every client they
	// logged in to that registered a back-channel logout URI. Only the call
	// that ends a session queues its logouts, so ending twice sends nothing
	// twice. It returns the sessions it ended.
	EndSessions(ctx context.Context, f SessionFilter, at time.Time) ([]*Session, error)
}

// SubjectRefreshRevoker revokes every refresh-token family of a citizen.
type SubjectRefreshRevoker interface {
	// RevokeSubjectRefreshTokens deactivates the subject's families and
	// returns the request IDs of its unexpired ones, revoked now or before
	// (the grants whose access tokens are to be denied too; a retry after a
	// failure denies them all again).
	RevokeSubjectRefreshTokens(ctx context.Context, subject string) ([]string, error)
}

// ValidBackchannelLogoutURI accepts an absolute https URL without
// credentials or fragment, or http on loopback (OIDC Back-Channel Logout
// 1.0 section 2.2; loopback for tests and the demo).
func ValidBackchannelLogoutURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errors.New("must be an absolute URL")
	}
	if u.User != nil {
		return errors.New("must not contain a user name or password")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return errors.New("must not contain a fragment")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && Loopback(u.Hostname())) {
		return errors.New("must use https (http only on loopback)")
	}
	return nil
}
