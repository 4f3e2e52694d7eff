package main

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
)

// TestBrowser_StepUp: in Chromium, a citizen signed in at substantial (a
// phone enrolled at that level) visits a relying party that needs high: the
// login page asks again instead of answering from the session, the
// substantial phone cannot approve, the citizen's high phone does, and the
// new ID token says high with a new session id and a later auth_time; single
// sign-on then answers at high without asking.
func TestBrowser_StepUp(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t)
	r, codes := passkeyClient(t, e)
	// The demo citizen's second phone, enrolled at substantial only.
	low := e.enroll(demoCitizens[0].PersonalID, idp.LevelSubstantial)
	tab := newTab(t, chromium, "en-US,en")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 6*browserStep)
	defer cancel()
	type idClaims struct {
		ACR      string `json:"acr"`
		AuthTime int64  `json:"auth_time"`
		SID      string `json:"sid"`
		Sub      string `json:"sub"`
	}
	login := func(what string, extra ...oauth2.AuthCodeOption) (string, string, string, string) {
		t.Helper()
		u, state, nonce, verifier := authorizeURL(r, extra...)
		if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.ID("eid-qr"))); err != nil {
			t.Fatalf("%s: login page: %v; %s", what, err, pageText(ctx))
		}
		payload, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-qr"), "data-payload"))
		if err != nil {
			t.Fatal(err)
		}
		return payload.Value, state, nonce, verifier
	}

	// 1. Signed in at substantial.
	payload, state, nonce, verifier := login("first login")
	if _, err := low.Approve(ctx, payload, shownNumber(ctx, t), false, nil); err != nil {
		t.Fatalf("approve at substantial: %v", err)
	}
	_, idt := e.exchange(r, waitCode(ctx, t, codes), state, nonce, verifier)
	var first idClaims
	_ = idt.Claims(&first)
	if first.ACR != string(idp.LevelSubstantial) {
		t.Fatalf("first login acr = %q, want substantial", first.ACR)
	}

	// 2. The relying party needs high: the page asks again.
	payload, state, nonce, verifier = login("step-up", oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)))
	match := shownNumber(ctx, t)
	if _, err := low.Approve(ctx, payload, match, false, nil); err == nil {
		t.Fatal("the substantial phone approved a login that needs high")
	}
	if _, err := e.app.Approve(ctx, payload, match, false, nil); err != nil {
		t.Fatalf("approve with the high phone: %v", err)
	}
	_, idt = e.exchange(r, waitCode(ctx, t, codes), state, nonce, verifier)
	var stepped idClaims
	_ = idt.Claims(&stepped)
	if stepped.ACR != string(idp.LevelHigh) || stepped.Sub != first.Sub {
		t.Fatalf("step-up ID token: %+v, want high for %s", stepped, first.Sub)
	}
	if stepped.SID == first.SID || stepped.AuthTime < first.AuthTime {
		t.Errorf("step-up kept the session: sid %q → %q, auth_time %d → %d", first.SID, stepped.SID, first.AuthTime, stepped.AuthTime)
	}

	// 3. Single sign-on now answers at high without a page.
	u, state, nonce, verifier := authorizeURL(r, oauth2.SetAuthURLParam("acr_values", string(idp.LevelHigh)))
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatal(err)
	}
	_, idt = e.exchange(r, waitCode(ctx, t, codes), state, nonce, verifier)
	var sso idClaims
	_ = idt.Claims(&sso)
	if sso.ACR != string(idp.LevelHigh) || sso.SID != stepped.SID {
		t.Errorf("single sign-on after step-up: %+v, want high in session %s", sso, stepped.SID)
	}
	console.checkClean(t)
}
