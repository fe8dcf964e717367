package pii

import (
	"bytes"
	"strings"
)

// JWT: three base64url segments joined by '.', the first two starting "eyJ"
// (base64 of `{"`), the first decoding to a JSON object with an "alg" member.
// The signature may be empty (alg "none"). JWE compact tokens (whose second
// segment is an encrypted key, not "eyJ") are not matched: their payload is
// encrypted.

const maxJWTHeader = 1024 // base64 characters of the header that are decoded

// jwtAt returns the end of a JWT starting at s[i] ('e'), or -1.
func jwtAt(s string, i int) int {
	if !strings.HasPrefix(s[i:], "eyJ") || i > 0 && chars[s[i-1]]&cB64URL != 0 {
		return -1
	}
	h := b64urlRun(s, i)
	if h-i < 16 || h+4 > len(s) || s[h] != '.' || !strings.HasPrefix(s[h+1:], "eyJ") {
		return -1
	}
	p := b64urlRun(s, h+1)
	if p >= len(s) || s[p] != '.' {
		return -1
	}
	e := b64urlRun(s, p+1)
	// Padding is not part of the compact form but is seen in the wild.
	for k := 0; k < 2 && e < len(s) && s[e] == '='; k++ {
		e++
	}
	if e < len(s) && (chars[s[e]]&cB64URL != 0 || s[e] == '.' && e+1 < len(s) && chars[s[e+1]]&cB64URL != 0) {
		return -1
	}
	if !jwtHeader(s[i:h]) {
		return -1
	}
	return e
}

func b64urlRun(s string, i int) int {
	for i < len(s) && chars[s[i]]&cB64URL != 0 {
		i++
	}
	return i
}

// jwtHeader reports whether the base64url text h decodes to something that
// starts like a JSON object and names "alg". Only a prefix is decoded.
func jwtHeader(h string) bool {
	if len(h) > maxJWTHeader {
		h = h[:maxJWTHeader]
	}
	h = h[:len(h)&^3] // whole quanta only: no padding questions
	var buf [maxJWTHeader / 4 * 3]byte
	n, ok := decodeBase64(buf[:], h, true)
	if !ok {
		return false
	}
	d := buf[:n]
	k := 0
	for k < len(d) && (d[k] == ' ' || d[k] == '\t' || d[k] == '\r' || d[k] == '\n') {
		k++
	}
	if k == len(d) || d[k] != '{' {
		return false
	}
	return bytes.Contains(d, []byte(`"alg"`))
}

// Bearer and Basic credentials: "Bearer" or "Basic" (any case) at a word
// start, one or more blanks, and a token of at least 16 RFC 6750 b64token
// characters. The match covers the token only, so a redaction reads
// "Authorization: Bearer [bearer_token]".
//
// "Bearer" is an English word, so outside an "Authorization" header (the
// word "authorization" shortly before) the token must also hold a letter, a
// digit and 3 bits per character of entropy. A Basic token must be base64
// of "user:password".

const minBearer = 16

// bearerAt returns the token of a bearer or basic credential whose scheme
// word starts at s[i], or (0, -1).
func bearerAt(s string, i int) (int, int) {
	var basic bool
	j := i
	switch {
	case hasPrefixFold(s[i:], "bearer"):
		j += len("bearer")
	case hasPrefixFold(s[i:], "basic"):
		j += len("basic")
		basic = true
	default:
		return 0, -1
	}
	ws := j
	for j < len(s) && j-ws < 8 && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j == ws {
		return 0, -1
	}
	ts := j
	for j < len(s) && chars[s[j]]&cToken != 0 {
		j++
	}
	for j < len(s) && s[j] == '=' {
		j++
	}
	te := j
	if te-ts < minBearer || te < len(s) && (isAlnum(s[te]) || s[te] == '_') {
		return 0, -1
	}
	tok := s[ts:te]
	if basic {
		if !basicCredential(tok) {
			return 0, -1
		}
		return ts, te
	}
	if !authorizationBefore(s, i) {
		var letter, digit bool
		for k := 0; k < len(tok); k++ {
			c := chars[tok[k]]
			letter = letter || c&(cUpper|cLower) != 0
			digit = digit || c&cDigit != 0
		}
		if !letter || !digit || entropy(tok) < 3 {
			return 0, -1
		}
	}
	return ts, te
}

// authorizationBefore reports whether the word "authorization" ends within
// a few bytes before s[i] ("Authorization: Bearer", "authorization=Bearer").
func authorizationBefore(s string, i int) bool {
	const w = "authorization"
	lo := max(i-len(w)-4, 0)
	for j := i - len(w); j >= lo; j-- {
		if hasPrefixFold(s[j:], w) {
			return true
		}
	}
	return false
}

// basicCredential reports whether tok is standard base64 of printable
// "user:password".
func basicCredential(tok string) bool {
	if len(tok) > 1024 {
		return false
	}
	var buf [768]byte
	n, ok := decodeBase64(buf[:], tok, false)
	if !ok || n < 3 {
		return false
	}
	colon := false
	for _, c := range buf[:n] {
		if c < ' ' || c == 0x7f {
			return false
		}
		colon = colon || c == ':'
	}
	return colon
}

// Secret keys: well-known API key formats, anchored at a word start (the
// byte before is not an ASCII letter or digit, so "task-123" and
// "desk-lamp" hold no "sk-"), each with its body alphabet and length:
//
//	OpenAI       sk-[proj-|svcacct-|admin-]... holding "T3BlbkFJ", or any
//	             sk-... whose body is 20+ characters with an alphanumeric
//	             run of 16+, a digit, and 3.5 bits/char of entropy
//	             (this also catches other vendors' sk- keys)
//	Anthropic    sk-ant-... 32+ characters, 3 bits/char
//	AWS key id   AKIA|ASIA|ABIA|ACCA|A3T? + 16 [A-Z0-9], not ending
//	             "EXAMPLE", 3 bits/char
//	GitHub       ghp_|gho_|ghu_|ghs_|ghr_ + exactly 36 alphanumerics;
//	             github_pat_ + 60-100 [A-Za-z0-9_]
//	Slack        xox[abposr]- + 15+ [A-Za-z0-9-] with a digit; xapp- + 20+
//	(loose bodies are at most 255 characters)
//	Stripe       sk_|rk_|pk_ + live_|test_ + 16+ alphanumerics
//	             (publishable pk_ keys included: see doc.go)
//	Google       AIza + exactly 35 [A-Za-z0-9_-]
//	Private key  -----BEGIN ...PRIVATE KEY...----- through the matching
//	             -----END ...----- line, or to the end of the value.

// secretAt returns the end of a secret key starting at s[i], or -1.
func secretAt(s string, i int) int {
	r := s[i:]
	if len(r) < 20 {
		return -1
	}
	switch r[0] {
	case 's':
		if strings.HasPrefix(r, "sk-") {
			return openAIKey(s, i)
		}
		return stripeKey(s, i)
	case 'r', 'p':
		return stripeKey(s, i)
	case 'g':
		if r[1] == 'h' && r[3] == '_' && strings.IndexByte("pousr", r[2]) >= 0 {
			e, ok := run(s, i+4, cAlnum, 36)
			if ok && e-(i+4) == 36 && (e == len(s) || s[e] != '_' && s[e] != '-') {
				return e
			}
			return -1
		}
		if strings.HasPrefix(r, "github_pat_") {
			b := i + len("github_pat_")
			if e, ok := run(s, b, cWord, 100); ok && e-b >= 60 {
				return e
			}
		}
		return -1
	case 'x':
		if strings.HasPrefix(r, "xox") && r[4] == '-' && strings.IndexByte("abposr", r[3]) >= 0 {
			e, ok := run(s, i+5, cKeyBody, maxKeyBody)
			if ok && e-i-5 >= 15 && strings.IndexAny(s[i+5:e], "0123456789") >= 0 && strings.IndexByte(s[i+5:e], '_') < 0 {
				return e
			}
			return -1
		}
		if strings.HasPrefix(r, "xapp-") {
			e, ok := run(s, i+5, cKeyBody, maxKeyBody)
			if ok && e-i-5 >= 20 && strings.IndexByte(s[i+5:e], '_') < 0 {
				return e
			}
		}
		return -1
	case 'A':
		return awsOrGoogleKey(s, i)
	case '-':
		return privateKey(s, i)
	}
	return -1
}

// maxKeyBody bounds the body of a loosely specified key (OpenAI project
// keys run to about 160 characters). A longer run is not a key, and the
// bound keeps the scan linear when key prefixes repeat ("sk-sk-sk-…").
const maxKeyBody = 255

// run returns the end of the run of bytes of class class starting at s[i],
// and false if the run is longer than limit bytes.
func run(s string, i int, class byteClass, limit int) (int, bool) {
	j := i
	for j < len(s) && chars[s[j]]&class != 0 {
		if j-i == limit {
			return j, false
		}
		j++
	}
	return j, true
}

func openAIKey(s string, i int) int {
	e, ok := run(s, i+3, cKeyBody, maxKeyBody)
	if !ok {
		return -1
	}
	body := s[i+3 : e]
	if strings.HasPrefix(body, "ant-") {
		if len(body)-4 >= 32 && entropy(body[4:]) >= 3 {
			return e
		}
		return -1
	}
	if len(body) < 20 {
		return -1
	}
	if strings.Contains(body, "T3BlbkFJ") {
		return e
	}
	for _, p := range [...]string{"proj-", "svcacct-", "admin-"} {
		if strings.HasPrefix(body, p) {
			body = body[len(p):]
			break
		}
	}
	if len(body) < 20 || entropy(body) < 3.5 {
		return -1
	}
	run, longest, digit := 0, 0, false
	for k := 0; k < len(body); k++ {
		if isAlnum(body[k]) {
			run++
			longest = max(longest, run)
			digit = digit || isDigit(body[k])
		} else {
			run = 0
		}
	}
	if longest < 16 || !digit {
		return -1
	}
	return e
}

func stripeKey(s string, i int) int {
	r := s[i:]
	if r[1] != 'k' || r[2] != '_' || !(strings.HasPrefix(r[3:], "live_") || strings.HasPrefix(r[3:], "test_")) {
		return -1
	}
	b := i + 8
	e, ok := run(s, b, cAlnum, maxKeyBody)
	if !ok || e-b < 16 || e < len(s) && (s[e] == '_' || s[e] == '-') {
		return -1
	}
	return e
}

func awsOrGoogleKey(s string, i int) int {
	r := s[i:]
	if strings.HasPrefix(r, "AIza") {
		e, ok := run(s, i+4, cKeyBody, 35)
		if ok && e-i-4 == 35 {
			return e
		}
		return -1
	}
	switch r[:4] {
	case "AKIA", "ASIA", "ABIA", "ACCA":
	default:
		if r[1] != '3' || r[2] != 'T' || chars[r[3]]&(cUpper|cDigit) == 0 {
			return -1
		}
	}
	for k := 4; k < 20; k++ {
		if chars[r[k]]&(cUpper|cDigit) == 0 {
			return -1
		}
	}
	if len(r) > 20 && (isAlnum(r[20]) || r[20] == '_') {
		return -1
	}
	if strings.HasSuffix(r[:20], "EXAMPLE") || entropy(r[:20]) < 3 {
		return -1
	}
	return i + 20
}

// privateKey returns the end of a PEM private key block starting at s[i]
// ("-----BEGIN"), or -1.
func privateKey(s string, i int) int {
	const begin, dashes = "-----BEGIN ", "-----"
	if i > 0 && s[i-1] == '-' || !strings.HasPrefix(s[i:], begin) {
		return -1
	}
	h := i + len(begin)
	k := strings.Index(s[h:min(len(s), h+64)], dashes)
	if k < 0 || !strings.Contains(s[h:h+k], "PRIVATE KEY") {
		return -1
	}
	body := h + k + len(dashes)
	end := strings.Index(s[body:], "-----END ")
	if end < 0 {
		return len(s)
	}
	t := body + end + len("-----END ")
	k = strings.Index(s[t:min(len(s), t+64)], dashes)
	if k < 0 {
		return len(s)
	}
	return t + k + len(dashes)
}

// b64val maps a base64 character (standard or URL alphabet) to its value,
// or 0xff.
var b64val = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := 0; i < len(std); i++ {
		t[std[i]] = byte(i)
	}
	return t
}()

// decodeBase64 decodes src into dst, which must hold len(src)*3/4 bytes.
// The alphabet is base64url when url is set (no padding expected), the
// standard one otherwise (padding allowed at the end). It does not allocate,
// unlike encoding/base64 with a string source.
func decodeBase64(dst []byte, src string, url bool) (int, bool) {
	c62, c63 := byte('+'), byte('/')
	if url {
		c62, c63 = '-', '_'
	}
	if !url {
		for len(src) > 0 && src[len(src)-1] == '=' {
			src = src[:len(src)-1]
		}
	}
	if len(src)%4 == 1 {
		return 0, false
	}
	n := 0
	var acc uint32
	bits := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		var v byte
		switch c {
		case c62:
			v = 62
		case c63:
			v = 63
		default:
			v = b64val[c]
			if v == 0xff {
				return 0, false
			}
		}
		acc = acc<<6 | uint32(v)
		bits += 6
		if bits >= 8 {
			bits -= 8
			dst[n] = byte(acc >> bits)
			n++
		}
	}
	return n, true
}
