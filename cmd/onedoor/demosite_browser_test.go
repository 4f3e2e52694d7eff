package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// checkFits fails when the page is wider than a phone screen (a long token,
// id or URL that does not wrap makes the citizen scroll sideways), or when
// axe-core finds a serious or critical problem on it, on the phone or on a
// desktop screen.
func checkFits(ctx context.Context, t *testing.T, page string) {
	t.Helper()
	w, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	if w > phoneWidth {
		t.Errorf("%s is %d px wide on a %d px screen", page, w, phoneWidth)
	}
	checkAxe(ctx, t, fmt.Sprintf("%s (%d px)", page, phoneWidth))
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(desktopWidth, 900)); err != nil {
		t.Fatal(err)
	}
	checkAxe(ctx, t, fmt.Sprintf("%s (%d px)", page, desktopWidth))
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(phoneWidth, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
}

// demoPageText reads what the tests compare on a demo site page.
type demoPageText struct{ Lang, H1, Claims string }

func readDemoPage(ctx context.Context, t *testing.T) demoPageText {
	t.Helper()
	var p demoPageText
	var err error
	get := func(a chromedp.Action[string], into *string) {
		if err == nil {
			*into, err = chromedp.Run(ctx, a)
		}
	}
	get(chromedp.Evaluate[string](`document.documentElement.lang`), &p.Lang)
	get(chromedp.Text(chromedp.CSS("main h1")), &p.H1)
	get(chromedp.Evaluate[string](`(document.getElementById("claims") || {}).innerText || ""`), &p.Claims)
	if err != nil {
		t.Fatalf("read the demo site's page: %v", err)
	}
	return p
}

// TestBrowser_DemoSite logs the demo citizen in on a phone-sized screen and
// reads the site in both languages: every page fits the screen, the claims
// read as an address and dates, not as data.
func TestBrowser_DemoSite(t *testing.T) {
	chromium := chromiumPath(t)
	env := startMain(t)
	site := startDemoSite(t, env)
	tab := newTab(t, chromium, "vi-VN,vi")
	console := watchConsole(tab, t)
	ctx, cancel := context.WithTimeout(tab, browserStep)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(phoneWidth, 844, chromedp.EmulateMobile),
		chromedp.Navigate(site+"/"), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("demo site: %v", err)
	}
	if home := readDemoPage(ctx, t); home.Lang != "vi" || home.H1 != demoTexts["vi"]["home_title"] {
		t.Errorf("home page: %+v", home)
	}
	checkFits(ctx, t, "the home page")

	p := openLogin(ctx, t)
	p.checkLang(t, "vi") // the site asks the IdP for its own language
	if _, err := env.app.Approve(ctx, p.Payload, p.MatchNumber, false, nil); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("welcome"))); err != nil {
		t.Fatalf("waiting for the welcome after approval: %v", err)
	}

	c := demoCitizens[0]
	for _, tc := range []struct {
		lang string
		want []string
	}{
		{"vi", []string{"Địa chỉ", c.Address, "Ngày sinh", "15/01/1990", "Giới tính", "Nam", "Số định danh cá nhân", c.PersonalID, "Cao"}},
		{"en", []string{"Address", c.Address, "Date of birth", "15 January 1990", "Gender", "Male", "Personal identification number", c.PersonalID, "High"}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			if tc.lang != "vi" {
				if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("lang-switch")),
					chromedp.WaitVisible(chromedp.CSS(`html[lang="`+tc.lang+`"] #welcome`))); err != nil {
					t.Fatalf("switch language: %v", err)
				}
			}
			page := readDemoPage(ctx, t)
			if want := demoTexts[tc.lang]["welcome"] + " " + c.FamilyName + " " + c.GivenName; page.Lang != tc.lang || page.H1 != want {
				t.Errorf("lang %q, h1 %q; want %q, %q", page.Lang, page.H1, tc.lang, want)
			}
			for _, s := range tc.want {
				if !strings.Contains(page.Claims, s) {
					t.Errorf("claims lack %q:\n%s", s, page.Claims)
				}
			}
			for _, bad := range []string{"map[", "{", "formatted", "1990-01-15"} {
				if strings.Contains(page.Claims, bad) {
					t.Errorf("claims show %q:\n%s", bad, page.Claims)
				}
			}
			checkFits(ctx, t, "the signed-in page ("+tc.lang+")")
			// The developer's box holds the ID token, the longest unbroken text.
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#developer summary")), chromedp.WaitVisible(chromedp.ID("id-token"))); err != nil {
				t.Fatalf("open the developer's box: %v", err)
			}
			checkFits(ctx, t, "the signed-in page with the ID token ("+tc.lang+")")
			screenshot(ctx, t, filepath.Join(t.TempDir(), "demosite-"+tc.lang+".png"))
		})
	}

	t.Run("error page", func(t *testing.T) {
		// A callback this browser did not start; the language chosen above
		// (English) is remembered.
		if err := chromedp.Do(ctx, chromedp.Navigate(site+"/callback?state=forged&error=interaction_required_"+strings.Repeat("x", 40)),
			chromedp.WaitVisible(chromedp.ID("rp-error"))); err != nil {
			t.Fatal(err)
		}
		if page := readDemoPage(ctx, t); page.Lang != "en" || page.H1 != demoTexts["en"]["problem.start_again.title"] {
			t.Errorf("error page: %+v", page)
		}
		checkFits(ctx, t, "the error page")
		// A long error code from the IdP, shown as a reference.
		if err := chromedp.Do(ctx, chromedp.Navigate(site+"/problem?reason=idp&code="+strings.Repeat("invalid_request_object_", 2)+"x"),
			chromedp.WaitVisible(chromedp.ID("error-code"))); err != nil {
			t.Fatal(err)
		}
		checkFits(ctx, t, "the error page with a code")
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="vi"] #error-code`))); err != nil {
			t.Fatalf("switch the error page to Vietnamese: %v", err)
		}
		if page := readDemoPage(ctx, t); page.H1 != demoTexts["vi"]["problem.idp.title"] {
			t.Errorf("error page: %+v", page)
		}
		checkFits(ctx, t, "the Vietnamese error page")
		screenshot(ctx, t, filepath.Join(t.TempDir(), "demosite-error.png"))
	})
	console.checkClean(t)
}
