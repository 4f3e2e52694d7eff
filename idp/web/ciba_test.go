package web

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ory/fosite"
)

func TestParseBCRequest(t *testing.T) {
	ok := func() url.Values {
		return url.Values{"scope": {"openid profile"}, "login_hint": {"001099012345"}, "binding_message": {"Quầy 3 · 4711"}}
	}
	if r, err := parseBCRequest(ok()); err != nil || r.BindingMessage != "Quầy 3 · 4711" || r.Expiry != 0 {
		t.Fatalf("valid request: %+v %v", r, err)
	}
	for name, tc := range map[string]struct {
		mod  func(url.Values)
		code string
	}{
		"no openid":          {func(f url.Values) { f.Set("scope", "profile") }, "invalid_scope"},
		"no hint":            {func(f url.Values) { f.Del("login_hint") }, "invalid_request"},
		"two hints":          {func(f url.Values) { f.Set("id_token_hint", "a.b.c") }, "invalid_request"},
		"login_hint_token":   {func(f url.Values) { f.Del("login_hint"); f.Set("login_hint_token", "x") }, "invalid_request"},
		"hint not an id":     {func(f url.Values) { f.Set("login_hint", "alice@example.com") }, "invalid_request"},
		"no message":         {func(f url.Values) { f.Del("binding_message") }, "invalid_binding_message"},
		"blank message":      {func(f url.Values) { f.Set("binding_message", "   ") }, "invalid_binding_message"},
		"long message":       {func(f url.Values) { f.Set("binding_message", strings.Repeat("ầ", 41)) }, "invalid_binding_message"},
		"bidi override":      {func(f url.Values) { f.Set("binding_message", "Quầy \u202e3") }, "invalid_binding_message"},
		"zero width":         {func(f url.Values) { f.Set("binding_message", "Quầy\u200b3") }, "invalid_binding_message"},
		"control":            {func(f url.Values) { f.Set("binding_message", "Quầy\t3") }, "invalid_binding_message"},
		"bad utf-8":          {func(f url.Values) { f.Set("binding_message", "Qu\xffy") }, "invalid_binding_message"},
		"expiry zero":        {func(f url.Values) { f.Set("requested_expiry", "0") }, "invalid_request"},
		"expiry huge":        {func(f url.Values) { f.Set("requested_expiry", "86400") }, "invalid_request"},
		"expiry not number":  {func(f url.Values) { f.Set("requested_expiry", "1e3") }, "invalid_request"},
		"repeated":           {func(f url.Values) { f["scope"] = []string{"openid", "openid"} }, "invalid_request"},
		"user_code":          {func(f url.Values) { f.Set("user_code", "1234") }, "invalid_request"},
		"request object":     {func(f url.Values) { f.Set("request", "a.b.c") }, "invalid_request"},
		"notification space": {func(f url.Values) { f.Set("client_notification_token", "a b") }, "invalid_request"},
	} {
		f := ok()
		tc.mod(f)
		_, err := parseBCRequest(f)
		if got := fosite.ErrorToRFC6749Error(err).ErrorField; err == nil || got != tc.code {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	// 40 characters (not bytes) fit.
	f := ok()
	f.Set("binding_message", strings.Repeat("ầ", 40))
	if _, err := parseBCRequest(f); err != nil {
		t.Errorf("40 characters: %v", err)
	}
}

// FuzzParseBCRequest: any form is either refused with an OAuth error or
// yields a request with openid, one valid hint and a clean message.
func FuzzParseBCRequest(f *testing.F) {
	f.Add("openid profile", "001099012345", "", "Quầy 3", "120", "")
	f.Add("openid", "", "a.b.c", "x", "", "tok")
	f.Add("openid", "001099012345", "", "\u202e", "-1", "")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, scope, hint, idHint, msg, expiry, notify string) {
		form := url.Values{}
		for k, v := range map[string]string{"scope": scope, "login_hint": hint, "id_token_hint": idHint,
			"binding_message": msg, "requested_expiry": expiry, "client_notification_token": notify} {
			if v != "" {
				form.Set(k, v)
			}
		}
		r, err := parseBCRequest(form)
		if err != nil {
			if fosite.ErrorToRFC6749Error(err).CodeField != 400 {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if !utf8.ValidString(r.BindingMessage) || utf8.RuneCountInString(r.BindingMessage) > maxBindingMessage || r.BindingMessage == "" {
			t.Fatalf("message %q accepted", r.BindingMessage)
		}
		if (r.LoginHint == "") == (r.IDTokenHint == "") {
			t.Fatalf("hints %q %q accepted", r.LoginHint, r.IDTokenHint)
		}
		if r.Expiry < 0 || r.Expiry > maxRequestedExpiry*1e9 {
			t.Fatalf("expiry %v accepted", r.Expiry)
		}
	})
}
