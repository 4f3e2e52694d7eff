package main

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
)

// The account page tells the citizen which device is which and whether one
// was used lately, the two things they need to spot a stolen phone: the
// platform and model the app declared, and its last use (an approval or a
// token grant), in Vietnamese and English, with stable element ids and a
// revoke button that names the device for a screen reader and is reached
// with Tab.
func TestBrowser_AccountDevicesPlatformLastUsed(t *testing.T) {
	chromium := chromiumPath(t)
	e := startMain(t)
	ctx0 := context.Background()
	pid := demoCitizens[0].PersonalID
	// A phone that declares itself and obtains tokens of its own (a grant
	// it signs), and one that never did anything.
	code, _, err := e.m.EID.Activate(ctx0, pid, idp.LevelHigh)
	if err != nil {
		t.Fatal(err)
	}
	phone, err := eidapp.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	phone.Platform, phone.Model = "ios", "iPhone 16"
	if _, err := phone.Enroll(ctx0, e.issuer, pid, code, "Điện thoại của Lan"); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.Login(ctx0); err != nil {
		t.Fatal(err)
	}
	idle := e.enroll(pid, idp.LevelSubstantial)
	phoneID, idleID, mainID := phone.Enrollment().DeviceID, idle.Enrollment().DeviceID, e.app.Enrollment().DeviceID

	tab := newTab(t, chromium, "vi-VN,vi")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, 6*browserStep)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " " + document.body.innerText`))
			t.Fatalf("%s: %v; page %.400q", what, err, page)
		}
	}
	// text is the visible text of the element with the given id ("" when
	// absent); device ids may start with a digit, so no CSS selector.
	text := func(id string) string {
		t.Helper()
		q, _ := json.Marshal(id)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(function(){var el=document.getElementById(`+string(q)+`);return el?el.innerText.trim():""})()`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	attr := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	run("account sign-in", chromedp.Navigate(e.issuer+"/account?lang=vi"), chromedp.WaitVisible(chromedp.ID("account-login")),
		chromedp.Click(chromedp.ID("account-login")), chromedp.WaitVisible(chromedp.ID("eid-qr")))
	payload, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("eid-qr"), "data-payload"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.app.Approve(ctx, payload.Value, shownNumber(ctx, t), false, nil); err != nil {
		t.Fatalf("approve: %v", err)
	}
	run("account page", chromedp.WaitVisible(chromedp.ID("devices")))
	checkAxe(ctx, t, "account devices")

	vnTime := regexp.MustCompile(`^[0-9]{2}/[0-9]{2}/[0-9]{4} [0-9]{2}:[0-9]{2}$`)
	if got := text("device-" + phoneID + "-platform"); got != "iOS · iPhone 16" {
		t.Errorf("phone's platform: %q, want %q", got, "iOS · iPhone 16")
	}
	if got := text("device-" + idleID + "-platform"); got != "không rõ" {
		t.Errorf("undeclared platform in Vietnamese: %q", got)
	}
	// The phone's grant and the approval of this very sign-in are uses.
	for _, id := range []string{phoneID, mainID} {
		if got := text("device-" + id + "-last-used"); !vnTime.MatchString(got) {
			t.Errorf("device %s last used: %q, want a Vietnam time", id, got)
		}
		q, _ := json.Marshal("device-" + id + "-last-used")
		if dt := attr(`document.getElementById(` + string(q) + `).querySelector("time").getAttribute("datetime")`); !strings.HasSuffix(dt, "Z") {
			t.Errorf("device %s last used datetime=%q, want RFC 3339 UTC", id, dt)
		}
	}
	if got := text("device-" + idleID + "-last-used"); got != "chưa dùng" {
		t.Errorf("never-used device in Vietnamese: %q", got)
	}

	// Tab reaches the phone's revoke button, which names it.
	reached := false
	for range 60 {
		run("tab", chromedp.KeyEvent("\t"))
		label := attr(`document.activeElement ? (document.activeElement.getAttribute("aria-label") || "") : ""`)
		if strings.Contains(label, "Điện thoại của Lan") {
			if !strings.Contains(label, "iOS · iPhone 16") {
				t.Errorf("the phone's revoke button is labelled %q, without its platform and model", label)
			}
			reached = true
			break
		}
	}
	if !reached {
		t.Error("the phone's revoke button is not reachable with Tab")
	}

	run("english", chromedp.Navigate(e.issuer+"/account?lang=en"), chromedp.WaitVisible(chromedp.ID("devices")))
	if got := text("device-" + idleID + "-platform"); got != "unknown" {
		t.Errorf("undeclared platform in English: %q", got)
	}
	if got := text("device-" + idleID + "-last-used"); got != "never" {
		t.Errorf("never-used device in English: %q", got)
	}
	if body := attr(`document.getElementById("devices").innerText`); !strings.Contains(body, "Platform, model") || !strings.Contains(body, "Last used") {
		t.Errorf("English device labels missing: %.300q", body)
	}
	console.checkClean(t)
}
