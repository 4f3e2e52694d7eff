package idp

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzValidBackchannelLogoutURI: whatever is accepted is an absolute URL
// without credentials or fragment, https or http on loopback; a logout
// token is never sent anywhere else.
func FuzzValidBackchannelLogoutURI(f *testing.F) {
	for _, s := range []string{"https://rp.example/bcl", "http://127.0.0.1:8080/bcl", "http://localhost/x", "http://rp.example/bcl",
		"https://u:p@rp.example/", "https://rp.example/#f", "https://rp.example/#", "//rp.example/x", "https:rp.example", "javascript:alert(1)",
		"http://[::1]:9/x", "http://127.0.0.1.nip.io/x", "HTTPS://RP.EXAMPLE/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if ValidBackchannelLogoutURI(raw) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.User != nil || strings.Contains(raw, "#") {
			t.Fatalf("accepted %q", raw)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && Loopback(u.Hostname())) {
			t.Fatalf("accepted %q with scheme %q host %q", raw, u.Scheme, u.Hostname())
		}
	})
}
