package main

import (
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/onedoor/onedoor/consent"
	"github.com/onedoor/onedoor/push"
)

// /metrics is served on its own listener with the push queue's depth and
// the sends by outcome; the API's listener does not serve it.
func TestMetrics(t *testing.T) {
	wpub, _, _ := ed25519.GenerateKey(nil)
	wit, err := consent.NewWitness("witness.example/metrics", wpub, "http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	e := startMain(t, func(c *Config) {
		c.MetricsAddr = "127.0.0.1:0"
		c.AuditWitnesses = []string{wit.String() + "@" + wit.URL}
	})
	if e.m.MetricsAddr == "" {
		t.Fatal("no metrics address")
	}
	// Sends are recorded through the dispatcher's hook.
	e.m.Dispatcher.Observe(push.SendResult{Platform: push.FCM, Duration: 20 * time.Millisecond})
	e.m.Dispatcher.Observe(push.SendResult{Platform: push.APNs, Err: &push.ProviderError{Platform: push.APNs, StatusCode: 410, Reason: "Unregistered", Unregistered: true}})
	e.m.Dispatcher.Observe(push.SendResult{Platform: push.WebPush, Err: &push.ProviderError{Platform: push.WebPush, StatusCode: 500, Reason: "a reason with spaces", Retryable: true}})
	e.m.Dispatcher.Observe(push.SendResult{Platform: push.FCM, Err: errors.New("dial tcp: refused")})
	// A Web Push service picks its own reasons: they must not become series.
	e.m.Dispatcher.Observe(push.SendResult{Platform: push.WebPush, Err: &push.ProviderError{Platform: push.WebPush, StatusCode: 400, Reason: "attacker_chosen_1"}})
	e.m.Dispatcher.Finished(push.StateDead)
	// A malformed DPoP proof at the token endpoint is counted.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("DPoP", "not.a.proof")
	id, secret := e.client(ClientSpec{Name: "Metrics RP", GrantTypes: []string{"client_credentials"}})
	req.SetBasicAuth(id, secret)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a malformed DPoP proof: %d, want 400", resp.StatusCode)
		}
	}
	resp, err := http.Get("http://" + e.m.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"onedoor_push_queue_depth 0",
		`onedoor_push_sends_total{outcome="ok",platform="fcm",reason=""} 1`,
		`onedoor_push_sends_total{outcome="unregistered",platform="apns",reason="Unregistered"} 1`,
		`onedoor_push_sends_total{outcome="retryable",platform="webpush",reason="other"} 1`,
		`onedoor_push_sends_total{outcome="transport",platform="fcm",reason=""} 1`,
		"onedoor_push_send_seconds_bucket",
		"go_goroutines",
		`onedoor_push_messages_total{state="dead"} 1`,
		`onedoor_push_sends_total{outcome="permanent",platform="webpush",reason="other"} 1`,
		`onedoor_dpop_refusals_total{endpoint="token",reason="invalid"} 1`,
		"onedoor_passkey_clone_suspected_total 0",
		"onedoor_login_prompts_suppressed_total 0",
		"onedoor_login_status_waits 0",
		"onedoor_backchannel_logout_queue_depth 0",
		`onedoor_audit_witness_cosigned_size{witness="witness.example/metrics"} 0`,
		`onedoor_audit_witness_cosigned_timestamp_seconds{witness="witness.example/metrics"} 0`,
		`onedoor_audit_witness_failures{witness="witness.example/metrics"} `,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if resp, err := http.Get("http://" + e.m.APIAddr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the public API listener serves /metrics")
		}
	}
}

func TestMetrics_NoChosenReasonBecomesALabel(t *testing.T) {
	if knownReasons["attacker_chosen_1"] || !knownReasons["UNREGISTERED"] || !knownReasons["Unregistered"] {
		t.Fatal("allowlist")
	}
}
