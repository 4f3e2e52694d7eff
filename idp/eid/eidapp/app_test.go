package eidapp_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

// enrolled returns an app in a fresh home, enrolled with f.
func enrolled(t *testing.T, f *fakeIDP) *eidapp.App {
	t.Helper()
	app, err := eidapp.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Enroll(context.Background(), f.URL+"/", citizen.PersonalID, f.activate(t), "eidsim"); err != nil {
		t.Fatalf("Enroll: %v", err)
	}
	return app
}

// startLogin plays the browser's part: it starts a login and returns its
// QR payload.
func startLogin(t *testing.T, f *fakeIDP, claims ...eid.ClaimRequest) *eid.LoginRequest {
	t.Helper()
	if claims == nil {
		claims = []eid.ClaimRequest{{Name: "name"}, {Name: "birthdate"}, {Name: "phone_number", Optional: true}}
	}
	r := &eid.LoginRequest{ClientID: "dvc", ClientName: "Cổng Dịch vụ công", Claims: claims, Level: idp.LevelHigh}
	if err := f.svc.NewLogin(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestApp_Enroll(t *testing.T) {
	ctx := context.Background()
	f := newFakeIDP(t)
	home := filepath.Join(t.TempDir(), "home")
	app, err := eidapp.Open(home)
	if err != nil || app.Enrollment() != nil {
		t.Fatalf("Open of an empty home = %+v, %v", app, err)
	}
	if _, err := app.Fetch(ctx, eid.Payload(f.URL, "AAAAAAAAAAAAAAAAAAAAAA")); !errors.Is(err, eidapp.ErrNotEnrolled) {
		t.Errorf("Fetch before enrolling: err = %v, want ErrNotEnrolled", err)
	}

	t.Run("wrong code surfaces the IdP's error", func(t *testing.T) {
		f.activate(t)
		_, err := app.Enroll(ctx, f.URL, citizen.PersonalID, "ZZZZZ-ZZZZZ", "eidsim")
		var e *eidapp.Error
		if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest || e.Code != "invalid_request" || !strings.Contains(e.Description, "enrollment failed") {
			t.Errorf("err = %#v", err)
		}
		if _, err := os.Stat(filepath.Join(home, eidapp.DeviceFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("failed enrollment left %s", eidapp.DeviceFile)
		}
	})

	e, err := app.Enroll(ctx, f.URL+"/", citizen.PersonalID, strings.ToLower(f.activate(t)), "Pixel 9")
	if err != nil {
		t.Fatal(err)
	}
	if e.IDP != f.URL || e.Level != string(idp.LevelHigh) || e.PersonalID != citizen.PersonalID || e.DeviceName != "Pixel 9" || e.DeviceID == "" {
		t.Errorf("Enrollment = %+v", e)
	}
	if d, err := f.store.GetDevice(ctx, e.DeviceID); err != nil || d.CitizenID != citizen.ID {
		t.Errorf("IdP device = %+v, %v", d, err)
	}
	if m := mode(t, filepath.Join(home, eidapp.DeviceFile)); m != 0o600 {
		t.Errorf("device.json mode %o, want 600", m)
	}
	if m := mode(t, home); m != 0o700 {
		t.Errorf("home mode %o, want 700", m)
	}
	if _, err := app.Enroll(ctx, f.URL, citizen.PersonalID, f.activate(t), "again"); err == nil {
		t.Error("second Enroll replaced the device")
	}

	again, err := eidapp.Open(home)
	if err != nil || *again.Enrollment() != *e {
		t.Fatalf("reopened: %+v, %v; want %+v", again.Enrollment(), err, e)
	}
	// The reopened app's key is the enrolled one: the IdP accepts its answer.
	r := startLogin(t, f)
	if _, err := again.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, false, nil); err != nil {
		t.Errorf("Approve from the reopened app: %v", err)
	}

	if err := os.Chmod(filepath.Join(home, eidapp.DeviceFile), 0o644); err != nil { //nolint:gosec // the mistake Open must catch
		t.Fatal(err)
	}
	if _, err := eidapp.Open(home); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("Open of a world-readable key: err = %v", err)
	}
}

func TestApp_Approve(t *testing.T) {
	ctx := context.Background()
	f := newFakeIDP(t)
	app := enrolled(t, f)

	t.Run("all requested claims", func(t *testing.T) {
		r := startLogin(t, f)
		v, err := app.Fetch(ctx, eid.Payload(f.URL, r.ID))
		if err != nil || v.ClientName != "Cổng Dịch vụ công" || !slices.Contains(v.MatchChoices, r.MatchNumber) || len(v.Claims) != 3 {
			t.Fatalf("Fetch = %+v, %v", v, err)
		}
		res, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := eidapp.Result{RequestID: r.ID, ClientID: "dvc", ClientName: "Cổng Dịch vụ công", Mode: eid.ModeCrossDevice,
			MatchChoices: v.MatchChoices, MatchNumber: r.MatchNumber,
			Decision: eid.DecisionApprove, Claims: []string{"name", "birthdate", "phone_number"}, Status: "approved"}
		if !reflect.DeepEqual(*res, want) {
			t.Errorf("Result = %+v, want %+v", *res, want)
		}
		st, d, _ := f.svc.Status(ctx, r.ID)
		if st != eid.StatusApproved || d.CitizenID != citizen.ID || !slices.Equal(d.Claims, want.Claims) {
			t.Errorf("IdP status = %s, %+v", st, d)
		}
	})

	// The citizen reads the number on the browser's page (r.MatchNumber
	// here: the page renders it) and picks it among the app's choices.
	t.Run("QR code without a pick", func(t *testing.T) {
		r := startLogin(t, f)
		_, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), "", false, nil)
		if !errors.Is(err, eidapp.ErrPickNeeded) || !strings.Contains(err.Error(), r.MatchNumber) {
			t.Errorf("err = %v, want ErrPickNeeded listing the choices", err)
		}
		if _, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), "1x", false, nil); !errors.Is(err, eidapp.ErrPickNeeded) {
			t.Errorf("a pick not among the choices: err = %v", err)
		}
		if st, _, _ := f.svc.Status(ctx, r.ID); st != eid.StatusPending {
			t.Errorf("IdP status = %s, want pending: nothing was sent", st)
		}
	})

	t.Run("wrong pick", func(t *testing.T) {
		r := startLogin(t, f)
		v, err := app.Fetch(ctx, eid.Payload(f.URL, r.ID))
		if err != nil {
			t.Fatal(err)
		}
		wrong := v.MatchChoices[slices.IndexFunc(v.MatchChoices, func(c string) bool { return c != r.MatchNumber })]
		res, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), wrong, false, nil)
		if !errors.Is(err, eidapp.ErrWrongMatch) || res == nil || res.Status != "denied" || res.Reason != eid.ReasonWrongMatch {
			t.Fatalf("Approve = %+v, %v; want ErrWrongMatch", res, err)
		}
		if _, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, false, nil); err == nil {
			t.Error("a second pick was taken")
		}
	})

	t.Run("same device: no pick, a return URL", func(t *testing.T) {
		for _, link := range []func(issuer, id string) string{eid.AppLink, eid.SameDevicePayload} {
			r := startLogin(t, f)
			p := link(f.URL, r.ID)
			res, err := app.Approve(ctx, p, "", false, nil)
			if err != nil || res.Mode != eid.ModeSameDevice || res.Status != "approved" || !strings.HasPrefix(res.ReturnURL, f.URL+"/login/continue?id="+r.ID+"&code=") {
				t.Fatalf("Approve(%s) = %+v, %v", p, res, err)
			}
		}
	})

	t.Run("share a subset", func(t *testing.T) {
		r := startLogin(t, f)
		res, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, false, []string{"birthdate", "name"})
		if err != nil || !slices.Equal(res.Claims, []string{"birthdate", "name"}) {
			t.Fatalf("Approve = %+v, %v", res, err)
		}
	})

	t.Run("deny", func(t *testing.T) {
		r := startLogin(t, f)
		res, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, true, []string{"name"})
		if err != nil || res.Decision != eid.DecisionDeny || res.Status != "denied" || len(res.Claims) != 0 {
			t.Fatalf("Approve(deny) = %+v, %v", res, err)
		}
		if st, _, _ := f.svc.Status(ctx, r.ID); st != eid.StatusDenied {
			t.Errorf("IdP status = %s", st)
		}
	})

	t.Run("required claim left out", func(t *testing.T) {
		r := startLogin(t, f)
		_, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, false, []string{"name"})
		var e *eidapp.Error
		if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest || !strings.Contains(e.Description, `required claim "birthdate"`) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("answered twice", func(t *testing.T) {
		r := startLogin(t, f)
		if _, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, false, nil); err != nil {
			t.Fatal(err)
		}
		_, err := app.Approve(ctx, eid.Payload(f.URL, r.ID), r.MatchNumber, true, nil)
		if e, ok := errors.AsType[*eidapp.Error](err); !ok || e.StatusCode != http.StatusConflict {
			t.Errorf("err = %v, want a 409", err)
		}
	})

	t.Run("QR code for another IdP", func(t *testing.T) {
		r := startLogin(t, f)
		_, err := app.Approve(ctx, eid.Payload("https://evil.test", r.ID), r.MatchNumber, false, nil)
		if err == nil || !strings.Contains(err.Error(), "enrolled with") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("unknown request", func(t *testing.T) {
		_, err := app.Fetch(ctx, eid.Payload(f.URL, "AAAAAAAAAAAAAAAAAAAAAA"))
		if e, ok := errors.AsType[*eidapp.Error](err); !ok || e.StatusCode != http.StatusNotFound {
			t.Errorf("err = %v, want a 404", err)
		}
	})

	t.Run("not a payload", func(t *testing.T) {
		if _, err := app.Fetch(ctx, "https://example.test/?request=x"); !errors.Is(err, idp.ErrInvalid) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("IdP unavailable", func(t *testing.T) {
		r := startLogin(t, f)
		f.down = true
		defer func() { f.down = false }()
		_, err := app.Fetch(ctx, eid.Payload(f.URL, r.ID))
		if e, ok := errors.AsType[*eidapp.Error](err); !ok || e.StatusCode != http.StatusServiceUnavailable || e.Code != "temporarily_unavailable" {
			t.Errorf("err = %v, want a 503", err)
		}
	})

	t.Run("revoked device", func(t *testing.T) {
		r := startLogin(t, f)
		if err := f.svc.RevokeDevice(ctx, citizen.ID, app.Enrollment().DeviceID); err != nil {
			t.Fatal(err)
		}
		_, err := app.Fetch(ctx, eid.Payload(f.URL, r.ID))
		if e, ok := errors.AsType[*eidapp.Error](err); !ok || e.StatusCode != http.StatusUnauthorized || e.Code != "invalid_token" {
			t.Errorf("err = %v, want a 401", err)
		}
	})
}

func TestApp_Login(t *testing.T) {
	ctx := context.Background()

	t.Run("tokens obtained with the device key and stored", func(t *testing.T) {
		f := newFakeIDP(t)
		app := enrolled(t, f)
		tok, err := app.Login(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Subject != citizen.ID || !strings.HasPrefix(tok.AccessToken, "at-") ||
			tok.IDToken == "" || tok.Scope != eidapp.Scope || tok.ExpiresAt.IsZero() {
			t.Errorf("Tokens = %+v", tok)
		}
		stored, err := app.Tokens()
		if err != nil || *stored != *tok {
			t.Errorf("stored tokens = %+v, %v", stored, err)
		}
		if m := mode(t, filepath.Join(app.Home, eidapp.TokensFile)); m != 0o600 {
			t.Errorf("tokens.json mode %o, want 600", m)
		}
		raw, _ := os.ReadFile(filepath.Join(app.Home, eidapp.TokensFile))
		if strings.Contains(string(raw), "refresh_token") {
			t.Errorf("tokens.json holds a refresh token: %s", raw)
		}
		// Each login signs a fresh assertion (its jti is spent at the IdP).
		if _, err := app.Login(ctx); err != nil {
			t.Errorf("second login: %v", err)
		}
	})

	t.Run("revoked device obtains nothing", func(t *testing.T) {
		f := newFakeIDP(t)
		app := enrolled(t, f)
		if err := f.svc.RevokeDevice(ctx, citizen.ID, app.Enrollment().DeviceID); err != nil {
			t.Fatal(err)
		}
		_, err := app.Login(ctx)
		if e, ok := errors.AsType[*eidapp.Error](err); !ok || e.Code != "invalid_grant" {
			t.Fatalf("err = %v, want invalid_grant", err)
		}
	})

	refused := []struct {
		name string
		set  func(f *fakeIDP)
		want string
	}{
		{"ID token for another client", func(f *fakeIDP) { f.idTokenClaims = func(c jwt.MapClaims) { c["aud"] = "dvc" } }, "audience"},
		{"ID token with a nonce", func(f *fakeIDP) { f.idTokenClaims = func(c jwt.MapClaims) { c["nonce"] = "injected" } }, "nonce"},
		{"ID token without sub", func(f *fakeIDP) { f.idTokenClaims = func(c jwt.MapClaims) { delete(c, "sub") } }, "sub"},
		{"token endpoint on another origin", func(f *fakeIDP) {
			f.discoveryDoc = func(d map[string]string) { d["token_endpoint"] = "https://evil.test/token" }
		}, "not on"},
		{"issuer of another IdP", func(f *fakeIDP) {
			f.discoveryDoc = func(d map[string]string) { d["issuer"] = "https://evil.test" }
		}, "issuer"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIDP(t)
			app := enrolled(t, f)
			tt.set(f)
			_, err := app.Login(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one about %q", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(app.Home, eidapp.TokensFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused login stored tokens")
			}
		})
	}

	t.Run("not enrolled", func(t *testing.T) {
		app, _ := eidapp.Open(t.TempDir())
		if _, err := app.Login(ctx); !errors.Is(err, eidapp.ErrNotEnrolled) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestApp_PushState: the push token is made once and kept, the last event
// id is saved beside it, both in a 0600 file that survives reopening.
func TestApp_PushState(t *testing.T) {
	home := t.TempDir()
	app, err := eidapp.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := app.LastEventID(); n != "" || err != nil {
		t.Fatalf("LastEventID of a fresh home = %q, %v", n, err)
	}
	tok, err := app.PushToken()
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 43 || strings.ContainsFunc(tok, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		t.Errorf("token %q: want 43 base64url characters", tok)
	}
	if err := app.SetLastEventID("c1.opaque"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(home, eidapp.PushFile)
	if m := mode(t, path); m != 0o600 {
		t.Errorf("%s mode %o, want 600", eidapp.PushFile, m)
	}
	again, err := eidapp.Open(home)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.PushToken(); got != tok || err != nil {
		t.Errorf("PushToken after reopening = %q, %v; want the same token", got, err)
	}
	if n, err := again.LastEventID(); n != "c1.opaque" || err != nil {
		t.Errorf("LastEventID after reopening = %q, %v; want c1.opaque", n, err)
	}
	// A home written before the API sealed its ids holds a number.
	if err := os.WriteFile(path, []byte(`{"token":"`+tok+`","last_event_id":42}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, err := again.LastEventID(); n != "42" || err != nil {
		t.Errorf("a legacy numeric LastEventID = %q, %v; want 42", n, err)
	}
	other, err := eidapp.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := other.PushToken(); o == tok {
		t.Error("two homes got the same token")
	}

	// A damaged file is an error, not a new installation.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := again.PushToken(); err == nil || !strings.Contains(err.Error(), eidapp.PushFile) {
		t.Errorf("PushToken over a damaged file: %v", err)
	}
}
