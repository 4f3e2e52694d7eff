package eid

import (
	"context"
	"fmt"
	"strings"

	"github.com/onedoor/onedoor/idp"
)

// DeviceAuthScheme is the HTTP authentication scheme with which the eID app
// presents a device token: "Authorization: DeviceJWT <token>".
const DeviceAuthScheme = "DeviceJWT"

// ErrNoDeviceToken means a request carried no device token at all; it wraps
// ErrDeviceAuth. Transports answer it without an error code in
// WWW-Authenticate (RFC 6750 3.1).
var ErrNoDeviceToken = fmt.Errorf("no device token: %w", ErrDeviceAuth)

// DeviceTokenFromHeader reads the device token from an Authorization header
// value. The scheme is case-insensitive (RFC 9110 11.1).
func DeviceTokenFromHeader(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, DeviceAuthScheme) {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// AuthenticateHeader authenticates a request of the eID app by its
// Authorization header value: ErrNoDeviceToken when it holds no device
// token, otherwise what AuthenticateDevice returns. It is the one entry
// point for every transport (the IdP's eID API, the mobile API).
func (s *Service) AuthenticateHeader(ctx context.Context, authorization, audience string) (*idp.Device, error) {
	tok, ok := DeviceTokenFromHeader(authorization)
	if !ok {
		return nil, ErrNoDeviceToken
	}
	return s.AuthenticateDevice(ctx, tok, audience)
}
