package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// Every text a template uses exists in both languages.
func TestTemplateTexts(t *testing.T) {
	re := regexp.MustCompile(`\.T\.([a-z_]+)|index \$?\.T "([a-z_.]+)"`)
	files, _ := fs.Glob(templateFS, "templates/*.html")
	for _, f := range files {
		b, _ := fs.ReadFile(templateFS, f)
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			key := m[1] + m[2]
			for lang, tx := range texts {
				if tx[key] == "" {
					t.Errorf("%s uses %q, missing in %s", f, key, lang)
				}
			}
		}
	}
	for key := range texts["vi"] {
		if texts["en"][key] == "" {
			t.Errorf("%q has no English text", key)
		}
	}
}

// TestLoginPage_ShowsConsent: the page names the recipient and the purpose
// and marks every claim required or optional, as the app does; text from a
// registration is escaped.
func TestLoginPage_ShowsConsent(t *testing.T) {
	var b strings.Builder
	p := loginPage{T: texts["en"], Lang: "en", ClientName: "Cục <Thuế>", Purpose: "Tax & benefits",
		Claims: []claimView{{Name: "birthdate", Label: "Date of birth"}, {Name: "name", Label: "Full name", Optional: true}}}
	if err := pages.ExecuteTemplate(&b, "login.html", p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`id="client-name">Cục &lt;Thuế&gt;<`,
		`id="purpose">Tax &amp; benefits<`,
		`<li data-claim="birthdate">Date of birth <strong class="required">(required)</strong></li>`,
		`<li data-claim="name">Full name <span class="muted">(optional)</span></li>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
}
