package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/onedoor/onedoor/mobileapi"
)

// A citizen's withdrawal reaches the recipient's agency as a signed
// consent.withdrawn webhook event carrying the withdrawal receipt, which
// verifies against the IdP's keys and names the consent; a webhook
// subscribed to "all" (the application events) does not get it, and the
// agency's lease queue stays empty.
func runConsentWithdrawnWebhook(t *testing.T, e *testEnv) {
	seedAgencies(t, e.m)
	cit := e.citizenAPI(t, e.app)
	me := e.citizenID(t, demoCitizens[0].PersonalID)
	_, clientID := e.brokerAPI(t, "T-UBND-HN")
	hanoi := e.agencyAPI(t, "T-UBND-HN")

	hook := newHookReceiver(t, e.issuer)
	wh := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/webhooks",
		[]byte(`{"url":"`+hook.srv.URL+`/hook","events":["consent.withdrawn"]}`)).json(t)
	hook.id = wh["id"].(string)
	if ev := wh["events"].([]any); len(ev) != 1 || ev[0] != "consent.withdrawn" {
		t.Errorf("registered events: %v", ev)
	}
	allHook := newHookReceiver(t, e.issuer)
	all := hanoi.must(http.StatusCreated, http.MethodPost, "/agency/v1/webhooks", []byte(`{"url":"`+allHook.srv.URL+`/hook"}`)).json(t)
	allHook.id = all["id"].(string)
	hanoi.must(http.StatusUnprocessableEntity, http.MethodPost, "/agency/v1/webhooks", []byte(`{"url":"`+hook.srv.URL+`/x","events":["consent.granted"]}`))

	rec := e.grant(t, me, clientID, "T-UBND-HN", "benefit-check", "name")
	wd := cit.must(http.StatusOK, http.MethodDelete, "/v1/consents/"+rec.ID, nil).json(t)
	jws := wd["receipt"].(map[string]any)["jws"].(string)

	got := hook.wait(t, 1)
	ev := got[0]
	if ev.Type != mobileapi.EventConsentWithdrawn || ev.AgencyCode != "T-UBND-HN" || ev.ID == "" || ev.ApplicationID != "" || ev.Href != "" ||
		ev.Consent == nil || ev.Consent.ID != rec.ID || ev.Consent.ClientID != clientID || ev.Consent.Purpose != "benefit-check" || ev.Consent.Receipt != jws {
		t.Fatalf("event = %+v, consent %+v", ev, ev.Consent)
	}
	claims := verifyReceipt(t, e.issuer, ev.Consent.Receipt)
	if claims["sub"] != me || claims["event"] != "withdrawn" || claims["consent"].(map[string]any)["id"] != rec.ID {
		t.Errorf("receipt claims: %v", claims)
	}

	// The delivery log shows it (validated against the contract), the
	// "all" webhook has none (both were decided in the withdrawal's
	// transaction), and the lease queue holds nothing.
	var items []any
	for range 100 {
		items = hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/webhooks/"+hook.id+"/deliveries", nil).json(t)["items"].([]any)
		if len(items) == 1 && items[0].(map[string]any)["state"] == "succeeded" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(items) != 1 || items[0].(map[string]any)["state"] != "succeeded" {
		t.Fatalf("deliveries: %v", items)
	}
	if c := items[0].(map[string]any)["event"].(map[string]any)["consent"].(map[string]any); c["id"] != rec.ID || c["receipt"] != jws {
		t.Errorf("listed event consent: %v", c)
	}
	if ls := hanoi.must(http.StatusOK, http.MethodGet, "/agency/v1/webhooks/"+allHook.id+"/deliveries", nil).json(t)["items"].([]any); len(ls) != 0 {
		t.Errorf("the webhook subscribed to all (application) events got %v", ls)
	}
	if r := hanoi.must(http.StatusOK, http.MethodPost, "/agency/v1/queue/leases", []byte(`{}`)).json(t); len(r["items"].([]any)) != 0 {
		t.Errorf("the lease queue holds %v", r)
	}
	if n, err := e.m.APIStore.Lease(context.Background(), "T-UBND-HN", 10, time.Second); err != nil || len(n) != 0 {
		t.Errorf("store lease: %v, %v", n, err)
	}
}

func TestConsentWithdrawnWebhook_SQLite(t *testing.T) {
	runConsentWithdrawnWebhook(t, startMain(t, allowPrivateWebhooks))
}

func TestConsentWithdrawnWebhook_PostgresRedis(t *testing.T) {
	runConsentWithdrawnWebhook(t, startMain(t, scaleOption(t), allowPrivateWebhooks))
}
