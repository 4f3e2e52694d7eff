package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/accesstoken"
	"github.com/onedoor/onedoor/idp/sso"
)

// newSessions builds the session service over the served ephemeral store
// and the worker of the IdP's durable delivery queue (back-channel logouts
// and CIBA pings). Every replica runs a worker; they share the queue, each
// claiming rows under a lease.
func (m *Main) newSessions() {
	m.Sessions = sso.New(m.Store, m.Eph, m.Now)
	m.Sessions.SetEphemeral(m.ephemeralName())
	m.Deliveries = &sso.Worker{Store: m.Store, Keys: m.Keys, Issuer: m.Issuer, Now: m.Now, Logger: m.Logger}
	m.Sessions.SetNotify(m.Deliveries.Notify)
}

// runDeliveries works the IdP's delivery queue (idp_deliveries:
// back-channel logouts and CIBA pings) until ctx ends.
func (m *Main) runDeliveries(ctx context.Context) {
	defer m.wg.Done()
	if err := m.Deliveries.Run(ctx); err != nil {
		m.Logger.Error("delivery worker stopped", "err", err)
	}
}

// endDeviceSessions ends the sessions a revoked device approved, however it
// was revoked (the app, the account page, an operator): their clients
// receive back-channel logouts.
func (m *Main) endDeviceSessions(ctx context.Context, deviceID string) error {
	if m.Sessions == nil {
		return nil
	}
	_, err := m.Sessions.End(ctx, idp.SessionFilter{DeviceID: deviceID})
	return err
}

// passkeyRemoved revokes what a removed passkey yielded, as a revoked
// device's: its refresh families, its access tokens (the did deny list) and
// its sessions, whose clients receive back-channel logouts.
func (m *Main) passkeyRemoved(ctx context.Context, passkeyID string) error {
	auth := idp.PasskeyAuthenticator(passkeyID)
	if err := m.Store.RevokeDeviceRefreshTokens(ctx, auth); err != nil {
		return err
	}
	if err := accesstoken.DenyDevice(ctx, m.Store, auth, m.Now()); err != nil {
		return err
	}
	return m.endDeviceSessions(ctx, auth)
}

// useRedis points an admin command's session service at the server's
// ephemeral store when --redis-url (or ONEDOOR_REDIS_URL) is set: Redis must
// answer, or the command fails before it changes anything.
func (m *Main) useRedis(ctx context.Context) error {
	if m.Config.RedisURL == "" {
		return nil
	}
	if err := m.openEphemeral(ctx); err != nil {
		return fmt.Errorf("%w (citizen lock ends the sessions held there; nothing was changed)", err)
	}
	if err := m.readStoreID(ctx); err != nil {
		return fmt.Errorf("lock: %w; nothing was changed", err)
	}
	m.Sessions = sso.New(m.Store, m.Eph, m.Now)
	m.Sessions.SetEphemeral(m.ephemeralName())
	return nil
}

// LockResult is what `citizen lock` did.
type LockResult struct {
	Subject         string   `json:"sub"`
	RevokedDevices  []string `json:"revoked_devices"`
	EndedSessions   int      `json:"ended_sessions"`
	RevokedGrants   int      `json:"revoked_refresh_token_families"`
	PushInstallsDel int      `json:"push_installations_deleted"`
}

// LockCitizen locks a citizen's account, as for a lost phone: every device
// is revoked with what derives from it (refresh tokens, access tokens, push
// installations), every passkey is removed, every session ends with
// back-channel logouts to the clients it logged in to, and every refresh-token family is revoked with
// its access tokens. Each step is idempotent: after a failure, run it again.
func (m *Main) LockCitizen(ctx context.Context, citizenID string) (*LockResult, error) {
	res := &LockResult{Subject: citizenID, RevokedDevices: []string{}}
	// Sessions held where this process cannot reach (the server's Redis,
	// from a command run without --redis-url) would stay signed in to
	// OneDoor: refuse before anything changes.
	if err := m.Sessions.Reachable(ctx, citizenID); err != nil {
		if errors.Is(err, sso.ErrUnreachable) {
			return nil, fmt.Errorf("lock: %w; run the command with the server's --redis-url and --redis-prefix (or %s and %s); nothing was changed",
				err, EnvName("redis-url"), EnvName("redis-prefix"))
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	devs, err := m.EID.Devices(ctx, citizenID)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for _, d := range devs {
		if d.RevokedAt != nil {
			continue
		}
		if err := m.EID.RevokeDevice(ctx, citizenID, d.ID); err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		n, err := m.PushStore.DeleteDeviceInstallations(ctx, d.ID)
		if err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		res.PushInstallsDel += n
		res.RevokedDevices = append(res.RevokedDevices, d.ID)
	}
	// A passkey would log in again whoever holds it.
	ids, err := idp.DeleteCitizenPasskeys(ctx, m.Store, citizenID)
	for _, id := range ids {
		if err != nil {
			break
		}
		err = m.passkeyRemoved(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	ended, err := m.Sessions.End(ctx, idp.SessionFilter{CitizenID: citizenID})
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	res.EndedSessions = len(ended)
	if res.RevokedGrants, err = m.Sessions.RevokeGrants(ctx, citizenID); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return res, nil
}
