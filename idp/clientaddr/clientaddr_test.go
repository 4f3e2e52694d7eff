package clientaddr

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func mustResolver(t testing.TB, list string) *Resolver {
	t.Helper()
	ps, err := ParsePrefixes(list)
	if err != nil {
		t.Fatal(err)
	}
	return New(ps)
}

func TestParsePrefixes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // joined prefixes, or "error"
	}{
		{"", ""},
		{" , ", ""},
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.0.0.0/8, 2001:db8::/32", "10.0.0.0/8 2001:db8::/32"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"10.0.0.1/8", "error"}, // host bits set: probably a typo
		{"10.0.0.0/33", "error"},
		{"proxy.internal", "error"},
		{"10.0.0.0/8,nonsense", "error"},
		{"fe80::1%eth0", "error"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ps, err := ParsePrefixes(tc.in)
			if tc.want == "error" {
				if err == nil {
					t.Fatalf("ParsePrefixes(%q) = %v, want an error", tc.in, ps)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePrefixes(%q): %v", tc.in, err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != tc.want {
				t.Fatalf("ParsePrefixes(%q) = %v, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestParsePrefixes_ReportsEveryBadItem(t *testing.T) {
	_, err := ParsePrefixes("bad1, 10.0.0.0/8, bad2")
	if err == nil || !strings.Contains(err.Error(), "bad1") || !strings.Contains(err.Error(), "bad2") {
		t.Fatalf("err = %v, want both bad items named", err)
	}
}

func TestResolver_Client(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8, 2001:db8:ffff::/48")
	for _, tc := range []struct {
		name     string
		peer     string
		xff, fwd []string
		want     string
	}{
		{name: "untrusted peer ignores X-Forwarded-For", peer: "203.0.113.9:5555", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "untrusted peer ignores Forwarded", peer: "203.0.113.9:5555", fwd: []string{"for=198.51.100.1"}, want: "203.0.113.9"},
		{name: "trusted peer without headers", peer: "10.1.2.3:80", want: "10.1.2.3"},
		{name: "one proxy", peer: "10.1.2.3:80", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "client-supplied entry left of the real one", peer: "10.1.2.3:80", xff: []string{"6.6.6.6, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "two trusted proxies", peer: "10.1.2.3:80", xff: []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "several header lines are one list", peer: "10.1.2.3:80", xff: []string{"6.6.6.6", "198.51.100.1, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "unreadable hop stops at the proxy that wrote it", peer: "10.1.2.3:80", xff: []string{"198.51.100.1, unknown, 10.9.9.9"}, want: "10.9.9.9"},
		{name: "everything trusted: leftmost", peer: "10.1.2.3:80", xff: []string{"10.7.7.7, 10.9.9.9"}, want: "10.7.7.7"},
		{name: "address with port", peer: "10.1.2.3:80", xff: []string{"198.51.100.1:4711"}, want: "198.51.100.1"},
		{name: "mapped IPv6 is IPv4", peer: "[::ffff:10.1.2.3]:80", xff: []string{"::ffff:198.51.100.1"}, want: "198.51.100.1"},
		{name: "Forwarded", peer: "10.1.2.3:80", fwd: []string{`for=6.6.6.6, for=198.51.100.1;proto=https;by=10.1.2.3`}, want: "198.51.100.1"},
		{name: "Forwarded quoted IPv6 with port", peer: "10.1.2.3:80", fwd: []string{`for="[2001:db8:cafe::17]:4711"`}, want: "2001:db8:cafe::17"},
		{name: "Forwarded case and spaces", peer: "10.1.2.3:80", fwd: []string{`For = 198.51.100.1`}, want: "198.51.100.1"},
		{name: "Forwarded FOR", peer: "10.1.2.3:80", fwd: []string{`FOR=198.51.100.1`}, want: "198.51.100.1"},
		{name: "Forwarded obfuscated", peer: "10.1.2.3:80", fwd: []string{`for=_hidden`}, want: "10.1.2.3"},
		{name: "Forwarded quoted comma", peer: "10.1.2.3:80", fwd: []string{`for="6.6.6.6,7.7.7.7", for=198.51.100.1`}, want: "198.51.100.1"},
		{name: "headers agree", peer: "10.1.2.3:80", xff: []string{"198.51.100.1"}, fwd: []string{"for=198.51.100.1"}, want: "198.51.100.1"},
		{name: "headers disagree: one came from the client", peer: "10.1.2.3:80", xff: []string{"198.51.100.1"}, fwd: []string{"for=6.6.6.6"}, want: "10.1.2.3"},
		{name: "trusted IPv6 proxy", peer: "[2001:db8:ffff:1::5]:443", xff: []string{"2001:db8:1:2::99"}, want: "2001:db8:1:2::99"},
		{name: "zone in header is unreadable", peer: "10.1.2.3:80", xff: []string{"fe80::1%eth0"}, want: "10.1.2.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Client(Peer(tc.peer), tc.xff, tc.fwd)
			if got.String() != tc.want {
				t.Fatalf("Client(%s, %q, %q) = %s, want %s", tc.peer, tc.xff, tc.fwd, got, tc.want)
			}
		})
	}
}

func TestResolver_NoTrustedProxiesIgnoresHeaders(t *testing.T) {
	for _, r := range []*Resolver{nil, New(nil), mustResolver(t, "")} {
		req, _ := http.NewRequest(http.MethodGet, "http://idp.test/", nil)
		req.RemoteAddr = "10.1.2.3:80"
		req.Header.Set("X-Forwarded-For", "198.51.100.1")
		req.Header.Set("Forwarded", "for=198.51.100.1")
		if got := r.Request(req); got.String() != "10.1.2.3" {
			t.Fatalf("Request = %s, want the peer", got)
		}
	}
}

func TestKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"198.51.100.1", "198.51.100.1"},
		{"::ffff:198.51.100.1", "198.51.100.1"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
	} {
		if got := Key(netip.MustParseAddr(tc.in)); got != tc.want {
			t.Errorf("Key(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	if got := Key(netip.Addr{}); got != "unknown" {
		t.Errorf("Key(invalid) = %s", got)
	}
}

// An IPv6 client that rotates through its /64 stays one client.
func TestKey_IPv6ClientsArePerSlash64(t *testing.T) {
	a := Key(Peer("[2001:db8:1:2::1]:1"))
	b := Key(Peer("[2001:db8:1:2:ffff:ffff:ffff:ffff]:1"))
	if a != b {
		t.Fatalf("%s != %s: addresses in one /64 must share a key", a, b)
	}
}

func FuzzClient(f *testing.F) {
	f.Add("10.1.2.3:80", "198.51.100.1, 10.9.9.9", "for=198.51.100.1")
	f.Add("203.0.113.9:1", "6.6.6.6", "")
	f.Add("[2001:db8:ffff::1]:1", "", `for="[2001:db8::1]:80";by=x, for=unknown`)
	f.Add("10.0.0.1:1", `"",,,`, `for="\"`)
	r := mustResolver(f, "10.0.0.0/8, 2001:db8:ffff::/48")
	f.Fuzz(func(t *testing.T, remote, xff, fwd string) {
		peer := Peer(remote)
		xs, fs := []string{xff}, []string{fwd}
		got := r.Client(peer, xs, fs)
		if got != peer && !got.IsValid() {
			t.Fatalf("Client = %v: neither a valid address nor the peer %v", got, peer)
		}
		if got.IsValid() && (got.Zone() != "" || got.Is4In6()) {
			t.Fatalf("Client = %v: not normalised", got)
		}
		_ = Key(got)
		// From an untrusted peer the headers change nothing.
		if !r.Trusted(peer) && got != peer {
			t.Fatalf("untrusted peer %v: headers changed the result to %v", peer, got)
		}
		// A client behind one trusted proxy that appends the address it saw
		// cannot choose the result by what it put in the header.
		if r.Trusted(peer) {
			client := netip.MustParseAddr("198.51.100.7")
			viaXFF := r.Client(peer, []string{xff + ", " + client.String()}, nil)
			if viaXFF != client {
				t.Fatalf("X-Forwarded-For %q, proxy appended %s: got %v", xff, client, viaXFF)
			}
			// The client's own Forwarded header beside the proxy's
			// X-Forwarded-For either agrees or is ignored.
			both := r.Client(peer, []string{xff + ", " + client.String()}, fs)
			if both != client && both != peer {
				t.Fatalf("spoofed Forwarded %q changed the result to %v", fwd, both)
			}
		}
	})
}
