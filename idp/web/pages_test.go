package web

import (
	"io/fs"
	"regexp"
	"testing"
)

// Every text a template uses exists in both languages.
func TestTemplateTexts(t *testing.T) {
	re := regexp.MustCompile(`\.T\.([a-z_]+)|index \.T "([a-z_.]+)"`)
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
