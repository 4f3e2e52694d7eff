package eidapp

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

const devicesPath = "/eid/v1/devices"

// DeviceInfo is one of the citizen's enrolled devices as the IdP lists it.
type DeviceInfo struct {
	ID         string     `json:"device_id"`
	Name       string     `json:"name"`
	Platform   string     `json:"platform,omitempty"`
	Model      string     `json:"model,omitempty"`
	Level      string     `json:"level"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Current    bool       `json:"current"`
}

// Devices lists the citizen's devices, this one marked Current.
func (a *App) Devices(ctx context.Context) ([]DeviceInfo, error) {
	d, err := a.device()
	if err != nil {
		return nil, err
	}
	auth, err := a.authorization(d, d.IDP)
	if err != nil {
		return nil, err
	}
	var out struct {
		Devices []DeviceInfo `json:"devices"`
	}
	if err := call(ctx, a.client(), http.MethodGet, d.IDP+devicesPath, auth, nil, &out, http.StatusOK); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out.Devices, nil
}

// RevokeDevice revokes one of the citizen's devices, such as a lost phone.
func (a *App) RevokeDevice(ctx context.Context, deviceID string) error {
	d, err := a.device()
	if err != nil {
		return err
	}
	auth, err := a.authorization(d, d.IDP)
	if err != nil {
		return err
	}
	if err := call(ctx, a.client(), http.MethodDelete, d.IDP+devicesPath+"/"+url.PathEscape(deviceID), auth, nil, nil, http.StatusNoContent); err != nil {
		return fmt.Errorf("revoke device: %w", err)
	}
	return nil
}
