// Package clientaddr finds the address of the client behind a request, for
// rate limits and audit. X-Forwarded-For and Forwarded (RFC 7239) are
// honoured only when the connection comes from a trusted proxy; without
// trusted proxies the peer address counts and the headers are ignored.
//
// It imports only the standard library, so every transport (idp/web on
// net/http, the mobile API on fiber) resolves addresses the same way.
package clientaddr

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// maxHops bounds how many entries of a forwarding chain are read, from the
// right: a longer chain is a client stuffing the header.
const maxHops = 32

// Resolver resolves client addresses. The zero value and a nil *Resolver
// trust no proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a resolver that trusts the given proxy ranges.
func New(trusted []netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		r.trusted = append(r.trusted, normalizePrefix(p))
	}
	return r
}

// ParsePrefixes parses a comma-separated list of CIDRs ("10.0.0.0/8,
// 2001:db8::/32"); a bare address stands for itself (/32 or /128). Empty
// items are skipped, so "" is no proxies. Every bad item is reported.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var (
		out []netip.Prefix
		bad []string
	)
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(item, "/") {
			p, err = netip.ParsePrefix(item)
			if err == nil && p != p.Masked() {
				err = fmt.Errorf("host bits set (did you mean %s?)", p.Masked())
			}
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(item); err == nil {
				if a.Zone() != "" {
					err = fmt.Errorf("zones are not allowed")
				} else {
					p = netip.PrefixFrom(a, a.BitLen())
				}
			}
		}
		if err != nil {
			bad = append(bad, fmt.Sprintf("%q", item))
			continue
		}
		out = append(out, normalizePrefix(p))
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("not a CIDR or IP address: %s", strings.Join(bad, ", "))
	}
	return out, nil
}

// normalizePrefix turns an IPv4-mapped IPv6 range into its IPv4 range, since
// addresses are unmapped before they are compared.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil || !a.IsValid() {
		return false
	}
	a = normalize(a)
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Peer parses a connection's remote address ("ip:port", as net/http's
// Request.RemoteAddr, or a bare ip); the zero Addr when it is neither.
func Peer(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return normalize(ap.Addr())
	}
	if a, err := netip.ParseAddr(remoteAddr); err == nil {
		return normalize(a)
	}
	return netip.Addr{}
}

// Request resolves the client address of an HTTP request.
func (r *Resolver) Request(req *http.Request) netip.Addr {
	return r.Client(Peer(req.RemoteAddr), req.Header.Values("X-Forwarded-For"), req.Header.Values("Forwarded"))
}

// Client resolves the client address from the connection's peer and the
// values of the X-Forwarded-For and Forwarded header lines, in order.
//
// An untrusted peer is the client, whatever the headers say. A trusted peer
// forwarded the request: each header is walked from the right, skipping
// trusted hops, to the first untrusted address (the one the last trusted
// proxy saw). When a hop is unreadable ("unknown", an obfuscated name,
// garbage) the walk stops at the proxy that wrote it. When both headers are
// present they must agree; otherwise one of them came from the client, and
// the peer is the answer. The result is always the peer or an address read
// from a header that a trusted proxy wrote.
func (r *Resolver) Client(peer netip.Addr, forwardedFor, forwarded []string) netip.Addr {
	peer = normalize(peer)
	if !r.Trusted(peer) {
		return peer
	}
	hasXFF, hasFwd := nonEmpty(forwardedFor), nonEmpty(forwarded)
	switch {
	case hasXFF && hasFwd:
		a, b := r.walk(peer, xffHops(forwardedFor)), r.walk(peer, forwardedHops(forwarded))
		if a == b {
			return a
		}
		return peer
	case hasXFF:
		return r.walk(peer, xffHops(forwardedFor))
	case hasFwd:
		return r.walk(peer, forwardedHops(forwarded))
	}
	return peer
}

// walk goes from the right of the chain (nearest hop first) to the first
// hop that is not a trusted proxy. hops holds at most maxHops entries, the
// rightmost ones, nearest last; an invalid Addr marks an unreadable hop.
func (r *Resolver) walk(peer netip.Addr, hops []netip.Addr) netip.Addr {
	last := peer // the nearest trusted proxy reached so far
	for i := len(hops) - 1; i >= 0; i-- {
		h := hops[i]
		if !h.IsValid() {
			return last
		}
		if !r.Trusted(h) {
			return h
		}
		last = h
	}
	// Every hop is a trusted address: the client sits inside a trusted range.
	return last
}

func nonEmpty(vs []string) bool {
	for _, v := range vs {
		if strings.TrimSpace(v) != "" {
			return true
		}
	}
	return false
}

// xffHops reads X-Forwarded-For lines ("client, proxy1, proxy2").
func xffHops(lines []string) []netip.Addr {
	var items []string
	for i := len(lines) - 1; i >= 0 && len(items) < maxHops; i-- {
		parts := strings.Split(lines[i], ",")
		for j := len(parts) - 1; j >= 0 && len(items) < maxHops; j-- {
			items = append(items, parts[j])
		}
	}
	hops := make([]netip.Addr, len(items))
	for i, it := range items { // items are nearest first; hops nearest last
		hops[len(items)-1-i] = parseNode(strings.TrimSpace(it))
	}
	return hops
}

// forwardedHops reads the for= parameter of each Forwarded element
// (RFC 7239 section 4): elements separated by commas, pairs by semicolons,
// values tokens or quoted strings. An element without for= is unreadable.
func forwardedHops(lines []string) []netip.Addr {
	var hops []netip.Addr
	for _, line := range lines {
		for _, el := range splitQuoted(line, ',') {
			if strings.TrimSpace(el) == "" {
				continue
			}
			node := netip.Addr{}
			for _, pair := range splitQuoted(el, ';') {
				k, v, ok := strings.Cut(pair, "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
					continue
				}
				node = parseNode(unquote(strings.TrimSpace(v)))
				break
			}
			hops = append(hops, node)
			if len(hops) > maxHops {
				hops = hops[1:]
			}
		}
	}
	return hops
}

// splitQuoted splits s at sep outside double-quoted strings.
func splitQuoted(s string, sep byte) []string {
	var (
		out     []string
		start   int
		quoted  bool
		escaped bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// unquote removes the quotes of a quoted-string and its backslash escapes.
func unquote(v string) string {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	v = v[1 : len(v)-1]
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// parseNode reads one hop: "192.0.2.1", "192.0.2.1:443", "2001:db8::1",
// "[2001:db8::1]" or "[2001:db8::1]:443". Anything else ("unknown",
// "_hidden", a zone, garbage) is the invalid Addr.
func parseNode(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if ap.Addr().Zone() != "" {
			return netip.Addr{}
		}
		return normalize(ap.Addr())
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() && a.Zone() == "" {
			return normalize(a)
		}
		return netip.Addr{}
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return normalize(a)
	}
	return netip.Addr{}
}

// normalize unmaps IPv4-mapped IPv6 addresses and drops zones.
func normalize(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

// Key is the rate-limit key of an address: an IPv4 address counts alone, an
// IPv6 address by its /64 (one subscriber's allocation, inside which the
// client picks addresses at will). The invalid Addr is "unknown".
func Key(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = normalize(a)
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
