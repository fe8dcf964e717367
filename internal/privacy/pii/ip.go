package pii

import (
	"net/netip"
	"strings"
)

// IPv4: four dotted decimal octets 0-255 without leading zeros, standing
// alone. Not a match when joined to a longer dotted run ("1.2.3.4.5"), to a
// letter or '_' ("v1.2.3.4"), to a slash other than a URL's "//"
// ("Chrome/120.0.0.1", "/1.2.3.4"), to a following "-word" ("1.2.3.4-beta"),
// or when the word before it is "version", "ver", "v", "build", "release" or
// "rev" ("version 1.2.3.4", "v=1.2.3.4").

// ipv4At returns the end of an IPv4 address starting at the digit s[i], or
// -1. The caller has checked that s[i-1] is not a letter or digit. Unlike
// other numbers an address may follow a comma directly ("1.2.3.4,5.6.7.8"
// in X-Forwarded-For).
func ipv4At(s string, i int) int {
	if i > 0 {
		switch s[i-1] {
		case '.':
			return -1
		case '/':
			if i < 2 || s[i-2] != '/' {
				return -1
			}
		case ':':
			if i >= 2 && isDigit(s[i-2]) {
				return -1
			}
		case '-', '_', '+':
			if i >= 2 && isAlnum(s[i-2]) {
				return -1
			}
		}
	}
	j := i
	for part := 0; part < 4; part++ {
		if part > 0 {
			if j >= len(s) || s[j] != '.' {
				return -1
			}
			j++
		}
		k, v := j, 0
		for k < len(s) && isDigit(s[k]) && k-j < 4 {
			v = v*10 + int(s[k]-'0')
			k++
		}
		if n := k - j; n == 0 || n > 3 || v > 255 || n > 1 && s[j] == '0' {
			return -1
		}
		j = k
	}
	if j < len(s) {
		c := s[j]
		if isAlnum(c) || c == '_' {
			return -1
		}
		if (c == '.' || c == '-') && j+1 < len(s) && isAlnum(s[j+1]) {
			return -1
		}
	}
	switch w := prevWord(s, i); {
	case w == "":
	case equalFold(w, "v"), equalFold(w, "ver"), equalFold(w, "version"),
		equalFold(w, "build"), equalFold(w, "release"), equalFold(w, "rev"):
		return -1
	}
	return j
}

// IPv6: a maximal run of hex digits, ':' and '.' holding at least two ':'
// and a hex digit, standing alone (not joined to a letter, digit or '_'),
// that net/netip parses as an IPv6 address: full, compressed and
// IPv4-mapped forms. A trailing single ':' or '.' is sentence punctuation
// and is left out. Zones ("%eth0") are not part of the match.
//
// Not matched: "::" alone, times ("12:30:45"), ratios ("16:9"), and MAC
// addresses ("00:1a:2b:3c:4d:5e"): six groups without "::" are not an IPv6
// text form, and a MAC is not one of the classes (it identifies a device,
// not a person's traffic; see doc.go).

const maxIPv6Text = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")

func findIPv6(dst []Match, s string) []Match {
	for off := 0; off < len(s); {
		k := strings.IndexByte(s[off:], ':')
		if k < 0 {
			break
		}
		c := off + k
		// Expand to the maximal run of hex digits, ':' and '.'.
		a := c
		for a > 0 && c-a <= maxIPv6Text && (chars[s[a-1]]&cHex != 0 || s[a-1] == ':' || s[a-1] == '.') {
			a--
		}
		e := c + 1
		for e < len(s) && e-a <= maxIPv6Text+1 && (chars[s[e]]&cHex != 0 || s[e] == ':' || s[e] == '.') {
			e++
		}
		off = e
		if e-a > maxIPv6Text+1 || e < len(s) && (isAlnum(s[e]) || s[e] == '_') {
			continue
		}
		// Trim punctuation: a trailing '.' or single ':' ends a sentence or
		// a label, a leading single ':' joins the address to a label
		// ("ip:2001:db8::1").
		for e > a && s[e-1] == '.' {
			e--
		}
		if e-a >= 2 && s[e-1] == ':' && s[e-2] != ':' {
			e--
		}
		if e-a >= 2 && s[a] == ':' && s[a+1] != ':' {
			a++
		} else if a > 0 && (isAlnum(s[a-1]) || s[a-1] == '_') {
			continue
		}
		if e-a < 3 || e-a > maxIPv6Text {
			continue
		}
		t := s[a:e]
		// ipv6Shape rejects most non-addresses without the allocation of a
		// netip parse error; netip has the last word.
		if !ipv6Shape(t) {
			continue
		}
		if ip, err := netip.ParseAddr(t); err != nil || !ip.Is6() {
			continue
		}
		dst = append(dst, Match{IPv6, a, e})
	}
	return dst
}

// ipv6Shape reports whether t looks like an IPv6 address: 1-4 hex digit
// groups separated by ':', at most one "::", eight groups (or fewer with
// "::"), where a dotted quad at the end counts as two groups.
func ipv6Shape(t string) bool {
	groups, double, hex := 0, false, false
	for i := 0; i < len(t); {
		if t[i] == ':' {
			if i+1 < len(t) && t[i+1] == ':' {
				if double {
					return false
				}
				double = true
				i += 2
				continue
			}
			if i == 0 || i+1 == len(t) {
				return false
			}
			i++
			continue
		}
		j := i
		dot := false
		for j < len(t) && t[j] != ':' {
			if t[j] == '.' {
				dot = true
			}
			j++
		}
		if dot {
			if j != len(t) || ipv4At(t, i) != len(t) {
				return false
			}
			groups += 2
		} else {
			if j-i > 4 {
				return false
			}
			groups++
		}
		hex = true
		i = j
	}
	return hex && (groups == 8 && !double || groups < 8 && double)
}
