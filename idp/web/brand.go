package web

import (
	"fmt"
	"html/template"
	"net/url"
	"strings"
)

// Brand is the deployment's identity in the header of every page: the
// platform's name, where citizens find help and the privacy policy. Empty
// fields are not shown (a page never carries a dead link).
type Brand struct {
	// Name is the platform's name; "OneDoor" when empty.
	Name string `json:"name"`
	// Names are the name per language ("vi", "en"), overriding Name.
	Names      map[string]string `json:"names,omitempty"`
	HelpURL    string            `json:"help_url,omitempty"`
	Hotline    string            `json:"hotline,omitempty"`
	PrivacyURL string            `json:"privacy_url,omitempty"`
}

// DefaultBrandName is the platform's name when a deployment names none.
const DefaultBrandName = "OneDoor"

// Problems lists what is wrong with b, each naming the flag (or file field)
// prefix, as config errors do.
func (b Brand) Problems() []string {
	var probs []string
	for _, u := range []struct{ flag, v string }{{"--brand-help-url", b.HelpURL}, {"--brand-privacy-url", b.PrivacyURL}} {
		if u.v != "" && !absoluteHTTP(u.v) {
			probs = append(probs, fmt.Sprintf("%s must be an absolute http(s) URL (got %q)", u.flag, u.v))
		}
	}
	if b.Hotline != "" && !validHotline(b.Hotline) {
		probs = append(probs, fmt.Sprintf("--brand-hotline may hold only digits, spaces and + - . ( ), with at least 3 digits and at most 32 characters (got %q)", b.Hotline))
	}
	for lang, n := range b.Names {
		if lang != "vi" && lang != "en" {
			probs = append(probs, fmt.Sprintf("brand names: language %q is not vi or en", lang))
		}
		if len(n) > 100 {
			probs = append(probs, fmt.Sprintf("brand name for %s is longer than 100 bytes", lang))
		}
	}
	if len(b.Name) > 100 {
		probs = append(probs, "--brand-name is longer than 100 bytes")
	}
	return probs
}

func absoluteHTTP(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil
}

func validHotline(s string) bool {
	digits := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case strings.ContainsRune(" +-.()", c):
		default:
			return false
		}
	}
	return digits >= 3 && len(s) <= 32
}

// brandView is the header's data in one language.
type brandView struct {
	Name       string
	HelpURL    string
	Hotline    string
	TelURL     template.URL
	PrivacyURL string
}

func (b Brand) view(lang string) brandView {
	v := brandView{Name: b.Names[lang], HelpURL: b.HelpURL, Hotline: b.Hotline, PrivacyURL: b.PrivacyURL}
	if v.Name == "" {
		v.Name = b.Name
	}
	if v.Name == "" {
		v.Name = DefaultBrandName
	}
	if b.Hotline != "" && validHotline(b.Hotline) {
		tel := strings.Map(func(c rune) rune {
			if c == '+' || c >= '0' && c <= '9' {
				return c
			}
			return -1
		}, b.Hotline)
		v.TelURL = template.URL("tel:" + tel) // #nosec G203 -- digits and + only
	}
	return v
}

// pageTexts are the page strings of one language with the platform's name
// in place of OneDoor's.
func (b Brand) pageTexts() map[string]map[string]string {
	out := make(map[string]map[string]string, len(texts))
	for lang, t := range texts {
		name := b.view(lang).Name
		m := make(map[string]string, len(t))
		for k, v := range t {
			if name != DefaultBrandName {
				v = strings.ReplaceAll(v, DefaultBrandName, name)
			}
			m[k] = v
		}
		out[lang] = m
	}
	return out
}
