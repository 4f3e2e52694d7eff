package web

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAppleAssociation_IssuerPath: the association names the app link's
// path under the issuer's path, for the listed apps only.
func TestAppleAssociation_IssuerPath(t *testing.T) {
	var doc struct {
		AppLinks struct {
			Details []struct {
				AppIDs     []string            `json:"appIDs"`
				Components []map[string]string `json:"components"`
			} `json:"details"`
		} `json:"applinks"`
	}
	if err := json.Unmarshal(appleAssociation([]string{"A1B2C3D4E5.a.b", "Z9Y8X7W6V5.c.d"}, "/idp"+PathAppLogin), &doc); err != nil {
		t.Fatal(err)
	}
	d := doc.AppLinks.Details
	if len(d) != 1 || strings.Join(d[0].AppIDs, " ") != "A1B2C3D4E5.a.b Z9Y8X7W6V5.c.d" || len(d[0].Components) != 1 || d[0].Components[0]["/"] != "/idp/app/login" {
		t.Errorf("association = %+v", doc)
	}
}

// TestAppLinkPage_StoreLinks: each store link appears only when set, and
// the custom-scheme link survives html/template.
func TestAppLinkPage_StoreLinks(t *testing.T) {
	for _, c := range []struct {
		app, play string
		want      []string
		not       []string
	}{
		{"", "", nil, []string{"app-stores", "app-store", "play-store"}},
		{"https://apps.apple.com/x", "", []string{`id="app-store" href="https://apps.apple.com/x"`}, []string{"play-store"}},
		{"", "https://play.google.com/x", []string{`id="play-store" href="https://play.google.com/x"`}, []string{`id="app-store"`}},
	} {
		for _, lang := range []string{"vi", "en"} {
			var b strings.Builder
			p := appLinkPage{T: texts[lang], Lang: lang, OpenURL: "onedoor-eid://login?request=x&issuer=y", AppStoreURL: c.app, PlayStoreURL: c.play, LoginURL: "https://id.example/login/continue?id=x"}
			if err := pages.ExecuteTemplate(&b, "applink.html", p); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, w := range append(c.want, `id="app-open" href="onedoor-eid://login?request=x&amp;issuer=y"`, "<h1>"+texts[lang]["applink_title"]+"</h1>") {
				if !strings.Contains(out, w) {
					t.Errorf("%s page (%q, %q) lacks %s", lang, c.app, c.play, w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(out, n) {
					t.Errorf("%s page (%q, %q) has %s", lang, c.app, c.play, n)
				}
			}
		}
	}
}
