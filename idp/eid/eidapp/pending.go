package eidapp

import (
	"context"
	"fmt"
	"net/http"

	"github.com/onedoor/onedoor/idp/eid"
)

const pendingPath = "/eid/v1/login-requests?pending"

// Pending lists the login requests the IdP sent to this citizen's devices
// (a relying party's login_hint), oldest first, as the app shows them.
func (a *App) Pending(ctx context.Context) ([]eid.AppView, error) {
	d, err := a.device()
	if err != nil {
		return nil, err
	}
	auth, err := a.authorization(d, d.IDP)
	if err != nil {
		return nil, err
	}
	var out struct {
		LoginRequests []eid.AppView `json:"login_requests"`
	}
	if err := call(ctx, a.client(), http.MethodGet, d.IDP+pendingPath, auth, nil, &out, http.StatusOK); err != nil {
		return nil, fmt.Errorf("list pending login requests: %w", err)
	}
	return out.LoginRequests, nil
}

// RequestPayload is the payload Approve takes for a login request known by
// its id (as Pending lists it) at this app's IdP.
func (a *App) RequestPayload(requestID string) (string, error) {
	d, err := a.device()
	if err != nil {
		return "", err
	}
	return eid.Payload(d.IDP, requestID), nil
}

// IsRequestID reports whether s is a bare login request id rather than a
// payload.
func IsRequestID(s string) bool { return eid.ValidRequestID(s) }
