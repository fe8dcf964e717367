package pii

import "math"

// Byte classes, one table for every test the detectors make per byte. The
// table is computed once at package initialisation and never written again.
type byteClass uint32

const (
	cDigit    byteClass = 1 << iota // 0-9
	cUpper                          // A-Z
	cLower                          // a-z
	cHex                            // 0-9 A-F a-f
	cB64URL                         // base64url alphabet: A-Z a-z 0-9 - _
	cToken                          // RFC 6750 b64token: A-Z a-z 0-9 - . _ ~ + /
	cParamKey                       // query parameter names: A-Z a-z 0-9 - . _
	cLocal                          // e-mail local part, ASCII subset: A-Z a-z 0-9 . _ % + -
	cAuthStop                       // ends a URL authority
	cValStop                        // ends a query parameter value
	cStart                          // may begin a token some detector anchors on
	cKeyBody                        // secret key body: A-Z a-z 0-9 - _
	cAt                             // '@': e-mail
	cColon                          // ':': IPv6, URL userinfo
	cIntro                          // '?', '&', '#', ';': may introduce a query parameter
	cWord                           // A-Z a-z 0-9 _
	cAN                             // A-Z a-z 0-9, as one bit: tests four bytes at once

	// fV6 is no byte's class: scanWords sets it in its result when a ':'
	// touches a hex digit or another ':', so an IPv6 address may be there.
	fV6
)

const cAlnum = cDigit | cUpper | cLower

var chars = func() (t [256]byteClass) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cHex
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= cLower
	}
	for c := 'A'; c <= 'F'; c++ {
		t[c] |= cHex
		t[c+'a'-'A'] |= cHex
	}
	for c := 0; c < 256; c++ {
		if t[c]&cAlnum != 0 {
			t[c] |= cB64URL | cToken | cParamKey | cLocal | cKeyBody | cAN
		}
		if c <= ' ' || c == 0x7f {
			t[c] |= cAuthStop | cValStop
		}
	}
	for c := 0; c < 256; c++ {
		if t[c]&cAlnum != 0 {
			t[c] |= cWord
		}
	}
	t['_'] |= cWord
	for _, c := range "-_" {
		t[c] |= cB64URL | cKeyBody
	}
	for _, c := range "-._~+/" {
		t[c] |= cToken
	}
	for _, c := range "-._" {
		t[c] |= cParamKey
	}
	for _, c := range "._%+-" {
		t[c] |= cLocal
	}
	for _, c := range "/?#[]\"'<>`\\{}|^" {
		t[c] |= cAuthStop
	}
	for _, c := range "&#;\"'<>[]`\\{}|^" {
		t[c] |= cValStop
	}
	// Anchors of the word-start scan: digits (phone, card, IPv4), upper
	// case (IBAN, AWS, Google), and the first letters of key prefixes.
	for c := 0; c < 256; c++ {
		if t[c]&(cDigit|cUpper) != 0 {
			t[c] |= cStart
		}
	}
	for _, c := range "srpgxbBe+(-" {
		t[c] |= cStart
	}
	t['@'] |= cAt
	t[':'] |= cColon
	for _, c := range "?&#;" {
		t[c] |= cIntro
	}
	return t
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlnum(c byte) bool { return chars[c]&cAlnum != 0 }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// entropy is the Shannon entropy of s in bits per byte.
func entropy(s string) float64 {
	if len(s) == 0 {
		return 0
	}
	var n [256]uint32
	for i := 0; i < len(s); i++ {
		n[s[i]]++
	}
	l := float64(len(s))
	h := 0.0
	for _, k := range n {
		if k != 0 {
			p := float64(k) / l
			h -= p * math.Log2(p)
		}
	}
	return h
}

// prevWord returns the word (ASCII letters) that ends just before i,
// skipping up to four blanks, ':' or '=' in between. It returns "" when that
// word is longer than 16 letters: no caller looks for such words.
func prevWord(s string, i int) string {
	j := i
	for j > 0 && i-j < 4 && (s[j-1] == ' ' || s[j-1] == ':' || s[j-1] == '=' || s[j-1] == '\t') {
		j--
	}
	e := j
	for j > 0 && e-j <= 16 && chars[s[j-1]]&(cUpper|cLower) != 0 {
		j--
	}
	if e-j > 16 {
		return ""
	}
	return s[j:e]
}
