package main

import (
	"net/http"
	"slices"
	"testing"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/web"
)

// TestRegistration_CIBA: an agency registers a CIBA client at /register
// (RFC 7591 with CIBA Core 1.0 section 4's metadata), reads and updates it
// (RFC 7592); the client stays pending until an operator approves it; every
// metadata OneDoor does not support is refused with invalid_client_metadata
// and a description that says why.
func TestRegistration_CIBA(t *testing.T) {
	e := newRegEnv(t, manyRegistrations)
	tok := issue(t, e, "AG-A", 100)
	md := func(extra map[string]any) map[string]any {
		m := map[string]any{"client_name": "Counter", "grant_types": []string{idp.GrantTypeCIBA}, "redirect_uris": []string{},
			"token_endpoint_auth_method": "client_secret_basic", "scope": "openid profile",
			"backchannel_token_delivery_mode": "ping", "backchannel_client_notification_endpoint": "https://counter.example/ciba"}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}

	t.Run("discovery matches what registration accepts", func(t *testing.T) {
		d := getJSON(t, e.issuer+"/.well-known/openid-configuration")
		if !slices.Equal(toStrings(d["backchannel_token_delivery_modes_supported"]), []string{"poll", "ping"}) ||
			d["backchannel_user_code_parameter_supported"] != false || d["backchannel_authentication_endpoint"] != e.issuer+web.PathBCAuthorize ||
			!slices.Contains(toStrings(d["grant_types_supported"]), idp.GrantTypeCIBA) {
			t.Errorf("discovery: modes %v, user code %v, endpoint %v, grants %v", d["backchannel_token_delivery_modes_supported"],
				d["backchannel_user_code_parameter_supported"], d["backchannel_authentication_endpoint"], d["grant_types_supported"])
		}
		if _, ok := d["backchannel_authentication_request_signing_alg_values_supported"]; ok {
			t.Error("discovery advertises signed authentication requests, which are not supported")
		}
	})

	t.Run("ping client registered, read, updated to poll; pending until approved", func(t *testing.T) {
		r := register(t, e, tok, md(map[string]any{"backchannel_user_code_parameter": false}))
		if r.body["backchannel_token_delivery_mode"] != "ping" || r.body["backchannel_client_notification_endpoint"] != "https://counter.example/ciba" ||
			!slices.Contains(toStrings(r.body["grant_types"]), idp.GrantTypeCIBA) || r.secret == "" {
			t.Errorf("registration response %v", r.body)
		}
		st, body := regCall(t, http.MethodGet, r.uri, r.token, nil)
		if st != http.StatusOK || body["backchannel_token_delivery_mode"] != "ping" || body["backchannel_client_notification_endpoint"] != "https://counter.example/ciba" {
			t.Errorf("read: %d %v", st, body)
		}
		// Pending: no backchannel request.
		c := &cibaClient{e: e, id: r.id, secret: r.secret}
		st, out := c.start(demoCitizens[0].PersonalID, "Quầy 1", "client_notification_token", "x")
		if st != http.StatusUnauthorized || out["error"] != "invalid_client" {
			t.Errorf("pending client at bc-authorize: %d %v, want 401 invalid_client", st, out)
		}
		upd := md(map[string]any{"client_id": r.id, "backchannel_token_delivery_mode": "poll", "backchannel_client_notification_endpoint": nil})
		st, body = regCall(t, http.MethodPut, r.uri, r.token, upd)
		if st != http.StatusOK || body["backchannel_token_delivery_mode"] != "poll" || body["backchannel_client_notification_endpoint"] != nil {
			t.Errorf("update to poll: %d %v", st, body)
		}
		got, err := e.m.Store.GetClient(t.Context(), r.id)
		if err != nil || got.BackchannelTokenDeliveryMode != idp.CIBAModePoll || got.BackchannelClientNotificationEndpoint != "" ||
			got.Registration.Status == idp.ClientActive {
			t.Errorf("stored client %+v %v", got, err)
		}
	})

	t.Run("refresh tokens: the refresh_token grant beside CIBA", func(t *testing.T) {
		r := register(t, e, tok, md(map[string]any{"grant_types": []string{idp.GrantTypeCIBA, "refresh_token"}, "scope": "openid offline_access"}))
		if !slices.Contains(toStrings(r.body["grant_types"]), "refresh_token") {
			t.Errorf("registration response %v", r.body)
		}
	})

	bad := []struct {
		name  string
		extra map[string]any
	}{
		{"push mode", map[string]any{"backchannel_token_delivery_mode": "push"}},
		{"unknown mode", map[string]any{"backchannel_token_delivery_mode": "carrier-pigeon"}},
		{"mode of the wrong type", map[string]any{"backchannel_token_delivery_mode": 1}},
		{"CIBA grant without a mode", map[string]any{"backchannel_token_delivery_mode": nil, "backchannel_client_notification_endpoint": nil}},
		{"mode without the CIBA grant", map[string]any{"grant_types": []string{"client_credentials"}}},
		{"ping without an endpoint", map[string]any{"backchannel_client_notification_endpoint": nil}},
		{"poll with an endpoint", map[string]any{"backchannel_token_delivery_mode": "poll"}},
		{"http endpoint off loopback", map[string]any{"backchannel_client_notification_endpoint": "http://counter.example/ciba"}},
		{"endpoint with a fragment", map[string]any{"backchannel_client_notification_endpoint": "https://counter.example/ciba#x"}},
		{"endpoint with credentials", map[string]any{"backchannel_client_notification_endpoint": "https://u:p@counter.example/ciba"}},
		{"relative endpoint", map[string]any{"backchannel_client_notification_endpoint": "/ciba"}},
		{"signed requests", map[string]any{"backchannel_authentication_request_signing_alg": "PS256"}},
		{"user code", map[string]any{"backchannel_user_code_parameter": true}},
		{"public CIBA client", map[string]any{"token_endpoint_auth_method": "none"}},
	}
	for _, b := range bad {
		t.Run("refused: "+b.name, func(t *testing.T) {
			st, body := regCall(t, http.MethodPost, e.issuer+"/register", tok, md(b.extra))
			desc, _ := body["error_description"].(string)
			t.Logf("%s: %s", b.name, desc)
			if st != http.StatusBadRequest || body["error"] != "invalid_client_metadata" || desc == "" || desc == "The client metadata is invalid." {
				t.Errorf("%d %v, want 400 invalid_client_metadata with a description", st, body)
			}
		})
	}
}
