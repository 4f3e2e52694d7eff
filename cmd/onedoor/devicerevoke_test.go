package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/idp"
)

// A lost phone: revoking a device revokes at once everything it approved or
// holds — agencies' refresh-token families and access tokens, the browser's
// single sign-on session, the eID app's own tokens — and nothing another
// device of the same citizen approved.
func TestDeviceRevocationRevokesWhatItApproved_SQLite(t *testing.T) {
	e := startMain(t)
	runDeviceRevocationCascade(t, e, "--data-dir", e.m.Config.DataDir)
}

func TestDeviceRevocationRevokesWhatItApproved_PostgresRedis(t *testing.T) {
	e := startMain(t, scaleOption(t))
	runDeviceRevocationCascade(t, e, "--postgres-dsn", e.m.Config.PostgresDSN, "--master-key-file", e.m.Config.MasterKeyFile)
}

// approved is what one device approved or holds.
type approved struct {
	refresh, access, appAccess string
	browser                    *browser
	appKey                     *dpopClient // the device key the app's token is bound to
}

func runDeviceRevocationCascade(t *testing.T, e *testEnv, storage ...string) {
	ctx := context.Background()
	pid := demoCitizens[0].PersonalID
	second := e.enroll(pid, idp.LevelHigh)
	id, secret := e.client(ClientSpec{Scope: "openid profile eid offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	r := e.rp(id, secret)

	collect := func(t *testing.T, which string) approved {
		t.Helper()
		app := e.app
		if which == "second" {
			app = second
		}
		b := newBrowser()
		tok, _ := e.codeFlow(r, b, app)
		if tok.RefreshToken == "" {
			t.Fatal("no refresh token for offline_access")
		}
		own, err := app.Login(ctx)
		if err != nil {
			t.Fatalf("the app's own tokens: %v", err)
		}
		_, key := deviceKey(t, app)
		return approved{refresh: tok.RefreshToken, access: tok.AccessToken, appAccess: own.AccessToken, browser: b, appKey: &dpopClient{key: key}}
	}
	lost, kept := collect(t, "first"), collect(t, "second")

	alive := func(t *testing.T, what string, a *approved, want bool) {
		t.Helper()
		mustUserinfo(t, e.issuer, a.access, want, what+": the agency's access token")
		// The app's own token is bound to the device key: sent with DPoP.
		st, _, body := userinfoWith(t, e.issuer, "DPoP", a.appAccess, a.appKey)
		if (want && st != http.StatusOK) || (!want && (st != http.StatusUnauthorized || body["error"] != "invalid_token")) {
			t.Errorf("%s: the eID app's own access token: userinfo %d %v, want ok=%v", what, st, body, want)
		}
		if got := introspect(t, e.issuer, id, secret, a.access)["active"] == true; got != want {
			t.Errorf("%s: introspection active = %v, want %v", what, got, want)
		}
		u, _, _, _ := authorizeURL(r)
		if asks := a.browser.showsLoginPage(t, u); asks == want {
			t.Errorf("%s: next /authorize in the browser asks again = %v, want %v", what, asks, !want)
		}
		next, err := refreshErr(r, a.refresh)
		switch {
		case want && err != nil:
			t.Errorf("%s: refresh: %v", what, err)
		case want:
			a.refresh = next.RefreshToken
		case err == nil || !strings.Contains(err.Error(), "invalid_grant"):
			t.Errorf("%s: refresh after revocation = %v, want invalid_grant", what, err)
		}
	}
	alive(t, "before revocation", &lost, true)

	// The citizen revokes the lost phone from the other one.
	if err := second.RevokeDevice(ctx, e.app.Enrollment().DeviceID); err != nil {
		t.Fatalf("revoke from the app: %v", err)
	}
	alive(t, "revoked device", &lost, false)
	if _, err := e.app.Login(ctx); err == nil {
		t.Error("a revoked device obtained new tokens")
	}
	// What the other device approved is untouched (refresh rotates, so take
	// fresh tokens for the second round).
	kept = collect(t, "second")
	alive(t, "other device", &kept, true)

	// An operator revokes the second phone with the admin command: the same
	// cascade, from another process's point of view.
	kept = collect(t, "second")
	args := append([]string{"citizen", "revoke-device"}, storage...)
	args = append(args, "--id", pid, "--device", second.Enrollment().DeviceID)
	if code, _, errs := cli(t, nil, args...); code != 0 {
		t.Fatalf("revoke-device: %s", errs)
	}
	alive(t, "device revoked by the operator", &kept, false)
}

// Security events leave a trace an operator can act on, with ids only: a
// refresh token presented again after the grace window (its family is
// revoked) and a device revoked by the citizen.
func TestSecurityEventsAreLogged(t *testing.T) {
	var logs syncBuffer
	m := newTestMainLogging(t, &logs, slog.LevelInfo, func(c *Config) { c.RefreshGrace = time.Millisecond })
	e := &testEnv{t: t, m: m, issuer: m.Issuer}
	if err := m.ImportCitizens(context.Background(), demoCitizens[:1]); err != nil {
		t.Fatal(err)
	}
	e.app = e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	second := e.enroll(demoCitizens[0].PersonalID, idp.LevelHigh)
	id, secret := e.client(ClientSpec{Scope: "openid profile offline_access", GrantTypes: []string{"authorization_code", "refresh_token"}})
	r := e.rp(id, secret, "openid", "profile", "offline_access")
	tok, _ := e.codeFlow(r, newBrowser(), e.app)
	refresh(t, r, tok.RefreshToken)
	time.Sleep(10 * time.Millisecond) // past the grace window
	if _, err := refreshErr(r, tok.RefreshToken); err == nil {
		t.Fatal("a rotated refresh token was redeemed after the grace window")
	}
	if err := second.RevokeDevice(context.Background(), e.app.Enrollment().DeviceID); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{
		`msg="refresh token reuse: family revoked" client_id=` + id,
		`msg="device revoked by the citizen" device=` + e.app.Enrollment().DeviceID,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(out, tok.RefreshToken) || strings.Contains(out, demoCitizens[0].PersonalID) {
		t.Error("the log carries a token or a personal id")
	}
}
