package main

// login_hint: the IdP sends the login to the citizen's devices instead of
// showing a QR code, lists it to their app only, and tells nothing about
// whether the personal id is registered.

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/onedoor/onedoor/idp"
	"github.com/onedoor/onedoor/idp/eid/eidapp"
	"github.com/onedoor/onedoor/idp/web"
	"github.com/onedoor/onedoor/push"
)

var (
	pushPageRE = regexp.MustCompile(`id="eid-push" data-status-url="([^"]+)"`)
	showQRRE   = regexp.MustCompile(`id="show-qr" href="([^"]+)"`)
	// volatile are the parts of a login page that differ per request.
	volatile = regexp.MustCompile(`[A-Za-z0-9_%-]{16,}|\d`)
)

type hintedPage struct {
	body, statusURL, match, showQR string
	push, qr                       bool
}

func openHinted(t *testing.T, b *browser, r *rp, params ...oauth2.AuthCodeOption) hintedPage {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("nonce", randomString(12))}, params...)
	resp, err := b.Get(r.conf.AuthCodeURL(randomString(12), opts...))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %d %.300s", resp.StatusCode, body)
	}
	p := hintedPage{body: string(body), qr: qrRE.Match(body)}
	if m := pushPageRE.FindSubmatch(body); m != nil {
		p.push, p.statusURL = true, html.UnescapeString(string(m[1]))
	}
	if m := matchRE.FindSubmatch(body); m != nil {
		p.match = string(m[1])
	}
	if m := showQRRE.FindSubmatch(body); m != nil {
		p.showQR = html.UnescapeString(string(m[1]))
	}
	return p
}

func pendingIDs(t *testing.T, app *eidapp.App) map[string]string {
	t.Helper()
	vs, err := app.Pending(context.Background())
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	out := map[string]string{}
	for _, v := range vs {
		out[v.RequestID] = strings.Join(v.MatchChoices, " ")
	}
	return out
}

func loginApprovals(t *testing.T, m *Main, citizenID string) int {
	t.Helper()
	ms, err := m.PushStore.MessagesAfter(context.Background(), citizenID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, msg := range ms {
		if msg.Kind == push.KindLoginApproval {
			n++
			if msg.Title.VI != "" || msg.Body != "" {
				t.Errorf("login approval push carries its own text %q %q: want the generic text", msg.Title.VI, msg.Body)
			}
		}
	}
	return n
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLoginHint_SQLite(t *testing.T) {
	runLoginHint(t, startMain(t, func(c *Config) { c.Limits = web.Limits{PromptsPerCitizen: 3} }))
}

func TestLoginHint_PostgresRedis(t *testing.T) {
	runLoginHint(t, startMain(t, scaleOption(t), func(c *Config) { c.Limits = web.Limits{PromptsPerCitizen: 3} }))
}

func runLoginHint(t *testing.T, e *testEnv) {
	ctx := context.Background()
	alice := demoCitizens[0].PersonalID // e.app is hers
	bob := demoCitizens[1].PersonalID
	bobApp := e.enroll(bob, idp.LevelHigh)
	aliceCit, err := e.m.Store.GetCitizenByPersonalID(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	id, secret := e.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
	r := e.rp(id, secret, "openid", "profile")
	hint := func(pid string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam("login_hint", pid) }

	t.Run("the login goes to the citizen's devices and is approved by id", func(t *testing.T) {
		b := newBrowser()
		p := openHinted(t, b, r, hint(alice))
		if !p.push || p.qr || p.match == "" || p.showQR == "" {
			t.Fatalf("page: push %v, QR %v, match %q, show QR %q; want the match number and no QR", p.push, p.qr, p.match, p.showQR)
		}
		eventually(t, "login approval pushed", func() bool { return loginApprovals(t, e.m, aliceCit.ID) == 1 })
		pending := pendingIDs(t, e.app)
		if len(pending) != 1 {
			t.Fatalf("pending = %v, want the one request", pending)
		}
		if got := pendingIDs(t, bobApp); len(got) != 0 {
			t.Errorf("another citizen's app lists %v", got)
		}
		var reqID string
		for k, m := range pending {
			reqID = k
			if !slices.Contains(strings.Fields(m), p.match) {
				t.Errorf("app offers %s, page shows %s", m, p.match)
			}
		}
		// Another citizen's device can neither read nor answer it.
		bobPayload, _ := bobApp.RequestPayload(reqID)
		if _, err := bobApp.Fetch(ctx, bobPayload); err == nil {
			t.Error("another citizen's device read the targeted request")
		}
		if _, err := bobApp.Approve(ctx, bobPayload, p.match, false, nil); err == nil {
			t.Error("another citizen's device approved the targeted request")
		}
		ans := waitAsync(t, p.statusURL, "25", "")
		payload, _ := e.app.RequestPayload(reqID)
		if _, err := e.app.Approve(ctx, payload, p.match, false, nil); err != nil {
			t.Fatalf("approve by id: %v", err)
		}
		if got := <-ans; got.status != "approved" {
			t.Fatalf("status = %+v", got)
		}
		if got := pendingIDs(t, e.app); len(got) != 0 {
			t.Errorf("decided request still pending: %v", got)
		}
	})

	t.Run("the QR code stays one click away", func(t *testing.T) {
		b := newBrowser()
		p := openHinted(t, b, r, hint(alice))
		resp, err := b.Get(p.showQR)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := qrRE.FindSubmatch(body)
		if resp.StatusCode != http.StatusOK || m == nil {
			t.Fatalf("show QR: %d, QR present %v", resp.StatusCode, m != nil)
		}
		shown := matchRE.FindSubmatch(body)
		if shown == nil {
			t.Fatal("QR page without a match number")
		}
		if _, err := bobApp.Approve(ctx, html.UnescapeString(string(m[1])), string(shown[1]), false, nil); err == nil {
			t.Error("another citizen scanned the targeted request's QR code and approved it")
		}
		if _, err := e.app.Approve(ctx, html.UnescapeString(string(m[1])), "", true, nil); err != nil {
			t.Errorf("the citizen's own device could not answer through the QR code: %v", err)
		}
	})

	t.Run("an unregistered personal id looks the same", func(t *testing.T) {
		known := openHinted(t, newBrowser(), r, hint(bob))
		unknown := openHinted(t, newBrowser(), r, hint("099999999999"))
		if !unknown.push || unknown.qr {
			t.Fatalf("unknown personal id: push %v, QR %v; want the same waiting page", unknown.push, unknown.qr)
		}
		if a, b := volatile.ReplaceAllString(known.body, "X"), volatile.ReplaceAllString(unknown.body, "X"); a != b {
			t.Errorf("pages differ beyond per-request values:\n%s\n---\n%s", a, b)
		}
	})

	t.Run("prompts per citizen are limited, then the QR code", func(t *testing.T) {
		// Alice had two prompts above; the limit is 3 per window.
		before := loginApprovals(t, e.m, aliceCit.ID)
		if p := openHinted(t, newBrowser(), r, hint(alice)); !p.push {
			t.Fatal("third prompt: want the push page")
		}
		eventually(t, "third push", func() bool { return loginApprovals(t, e.m, aliceCit.ID) == before+1 })
		p := openHinted(t, newBrowser(), r, hint(alice))
		if p.push || !p.qr {
			t.Errorf("fourth prompt: push %v, QR %v; want the QR page", p.push, p.qr)
		}
		time.Sleep(300 * time.Millisecond)
		if n := loginApprovals(t, e.m, aliceCit.ID); n != before+1 {
			t.Errorf("%d login pushes after the limit, want %d", n, before+1)
		}
	})

	t.Run("id_token_hint names the citizen only for its audience", func(t *testing.T) {
		other, otherSecret := e.client(ClientSpec{Scope: "openid profile", GrantTypes: []string{"authorization_code"}})
		or := e.rp(other, otherSecret, "openid", "profile")
		tok, _ := e.codeFlow(r, newBrowser(), bobApp)
		raw, _ := tok.Extra("id_token").(string)
		b := newBrowser()
		p := openHinted(t, b, r, oauth2.SetAuthURLParam("id_token_hint", raw))
		if !p.push {
			t.Fatal("id_token_hint for this client: want the push page")
		}
		// Bob may have other requests pending (an earlier subtest hinted
		// him): this page's is the one its status URL names.
		su, err := url.Parse(p.statusURL)
		if err != nil {
			t.Fatal(err)
		}
		reqID := su.Query().Get("id")
		eventually(t, "bob's request listed", func() bool {
			_, ok := pendingIDs(t, bobApp)[reqID]
			return ok
		})
		// The login completes: the hint's subject is the citizen who approved.
		payload, _ := bobApp.RequestPayload(reqID)
		if _, err := bobApp.Approve(ctx, payload, p.match, false, nil); err != nil {
			t.Fatal(err)
		}
		st, next := b.status(t, p.statusURL)
		if st != "approved" {
			t.Fatalf("status %q", st)
		}
		if loc := b.follow(t, next); loc.Query().Get("code") == "" {
			t.Errorf("hinted login ended at %s, want a code", loc)
		}
		if p := openHinted(t, newBrowser(), or, oauth2.SetAuthURLParam("id_token_hint", raw)); p.push || !p.qr {
			t.Error("id_token_hint issued to another client: want the plain QR page")
		}
		forged := raw[:len(raw)-4] + "AAAA"
		if p := openHinted(t, newBrowser(), r, oauth2.SetAuthURLParam("id_token_hint", forged)); p.push {
			t.Error("forged id_token_hint: want the plain QR page")
		}
	})

	t.Run("a malformed login_hint is a plain QR login", func(t *testing.T) {
		for _, h := range []string{"12345", "alice@example.com", "00000000000a", ""} {
			if p := openHinted(t, newBrowser(), r, hint(h)); p.push || !p.qr {
				t.Errorf("login_hint=%q: push %v, QR %v", h, p.push, p.qr)
			}
		}
	})

	t.Run("pending needs a device and ?pending", func(t *testing.T) {
		resp, err := http.Get(e.issuer + "/eid/v1/login-requests?pending")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("without a device token: %d, want 401", resp.StatusCode)
		}
	})
}

// The pending list's answers match docs/eid-api.openapi.json.
func TestEIDAPI_ContractPending(t *testing.T) {
	v := eidContract(t)
	e := startMain(t)
	pid := demoCitizens[1].PersonalID
	d := enrollRaw(t, e, v, pid, idp.LevelSubstantial)
	if r := d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests?pending", d.auth(), nil); len(r.body["login_requests"].([]any)) != 0 {
		t.Errorf("nothing sent yet: %v", r.body)
	}
	site, _ := e.client(ClientSpec{Scope: "openid profile eid"})
	a := newAuthRequest(e.issuer, site, "openid profile eid")
	resp, err := newBrowser().Get(a.url + "&login_hint=" + pid)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var items []any
	eventually(t, "the hinted request listed", func() bool {
		items, _ = d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests?pending", d.auth(), nil).body["login_requests"].([]any)
		return len(items) == 1
	})
	view := items[0].(map[string]any)
	if view["client_id"] != site || view["match_number"] == "" {
		t.Errorf("listed view: %v", view)
	}
	d.must(http.StatusOK, http.MethodGet, "/eid/v1/login-requests/"+view["request_id"].(string), d.auth(), nil)
	for _, q := range []string{"", "?pending&all=1", "?state=pending"} {
		if r := d.must(http.StatusBadRequest, http.MethodGet, "/eid/v1/login-requests"+q, d.auth(), nil); r.err() != "invalid_request" {
			t.Errorf("GET login-requests%s: %v", q, r.body)
		}
	}
	d.must(http.StatusUnauthorized, http.MethodGet, "/eid/v1/login-requests?pending", "", nil)
}
