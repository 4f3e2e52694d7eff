package webhook

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrNotPublic is wrapped by the dial error of an address the guard refuses.
var ErrNotPublic = errors.New("not a public address")

// special are ranges beside loopback, private, link-local, multicast and
// unspecified (which netip classifies) that no agency endpoint lives in:
// they are reserved, shared with a carrier, or embed IPv4 addresses that
// could be private.
var special = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"100.64.0.0/10",   // carrier-grade NAT (RFC 6598)
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast (deprecated)
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"240.0.0.0/4",     // reserved, with the broadcast address
		"::/96",           // IPv4-compatible (deprecated)
		"::ffff:0:0:0/96", // SIIT translated
		"64:ff9b::/96",    // NAT64: embeds any IPv4 address
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard
		"2001::/23",       // IETF protocol assignments: Teredo, benchmarking, ORCHID
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds any IPv4 address
		"3fff::/20",       // documentation
		"fec0::/10",       // site-local (deprecated)
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// Public reports whether ip is a public unicast address a delivery may
// connect to.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range special {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// guard is a net.Dialer Control function: it runs on the resolved address
// of every connection, so a hostname that resolves (or re-resolves) to an
// internal address is refused as well.
func guard(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrNotPublic)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !Public(ip) {
		return fmt.Errorf("%s: %w", host, ErrNotPublic)
	}
	return nil
}

// NewHTTPClient returns the client deliveries use by default: no proxy, no
// redirects, bounded dial, handshake and header waits, TLS 1.2 or later and,
// unless allowPrivate, the guard against non-public addresses.
func NewHTTPClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = guard
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // a proxy would hide the destination from the guard
			DialContext:            d.DialContext,
			ForceAttemptHTTP2:      true,
			TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    5 * time.Second,
			ResponseHeaderTimeout:  DefaultRequestTimeout,
			MaxResponseHeaderBytes: 16 << 10,
			MaxIdleConns:           64,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        90 * time.Second,
		},
		CheckRedirect: noRedirect,
	}
}

// noRedirect hands a redirect back as the response: a receiver must answer
// at the URL it registered, and following would let it point the platform
// at an address the guard never saw in the registration.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
