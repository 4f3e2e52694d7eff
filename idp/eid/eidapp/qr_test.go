package eidapp

import (
	"net/url"
	"strings"
	"testing"
)

func TestFindQR(t *testing.T) {
	tests := []struct {
		name, html      string
		payload, status string
		err             string
	}{
		{"escaped ampersand", `<div id="eid-qr" data-payload="onedoor-eid://login?request=a&amp;issuer=b" data-status-url="/s?r=a&amp;x=1"></div>`,
			"onedoor-eid://login?request=a&issuer=b", "/s?r=a&x=1", ""},
		{"raw ampersand, single quotes, attribute order", `<canvas data-status-url='/s' data-payload='p&q' id='eid-qr'/>`, "p&q", "/s", ""},
		{"upper-case attribute names", `<DIV ID="eid-qr" DATA-PAYLOAD="p" DATA-STATUS-URL="/s">`, "p", "/s", ""},
		{"decoys before", `<p data-payload="decoy" data-status-url="/decoy">x</p><!-- <div id="eid-qr" data-payload="c" data-status-url="/c"> --><div id="eid-qr" data-payload="p" data-status-url="/s">`, "p", "/s", ""},
		{"inside a script is not an element", `<script>var s = '<div id="eid-qr" data-payload="x" data-status-url="/x">';</script>`, "", "", "no element"},
		{"missing", `<html><body>nothing</body></html>`, "", "", "no element"},
		{"no status URL", `<div id="eid-qr" data-payload="p"></div>`, "", "", "lacks"},
		{"empty", ``, "", "", "no element"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, s, err := findQR(strings.NewReader(tt.html))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || p != tt.payload || s != tt.status {
				t.Errorf("findQR = %q, %q, %v; want %q, %q", p, s, err, tt.payload, tt.status)
			}
		})
	}
}

func TestSameOrigin(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8080/authorize?x=1")
	tests := []struct {
		ref, want string
		ok        bool
	}{
		{"/login/eid/status?request=a", "http://127.0.0.1:8080/login/eid/status?request=a", true},
		{"status", "http://127.0.0.1:8080/status", true},
		{"http://127.0.0.1:8080/s", "http://127.0.0.1:8080/s", true},
		{"//evil.test/s", "", false},
		{"https://127.0.0.1:8080/s", "", false},
		{"http://localhost:8080/s", "", false},
	}
	for _, tt := range tests {
		got, err := sameOrigin(base, tt.ref, "http://127.0.0.1:8080")
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("sameOrigin(%q) = %q, %v; want %q, ok %v", tt.ref, got, err, tt.want, tt.ok)
		}
	}
}
