// Package urlclean sanitises URL-valued event properties before they are
// stored: it drops fragments, userinfo and query parameters that are not
// allow-listed, replaces identifier-like path segments with ":id", and
// reduces referrers to their host.
//
// The package is pure: no I/O, no logging, no package-level mutable state.
// Every function is safe for concurrent use and never panics, whatever the
// input.
//
// # Decisions
//
//   - Input is trimmed of leading and trailing ASCII whitespace and control
//     bytes (as browsers do); the output is trimmed too.
//   - Scheme and host are lower-cased (ASCII; a host with non-ASCII bytes is
//     lower-cased with Unicode rules, with no punycode conversion). Port,
//     path and the kept query parameters keep their case and encoding
//     byte for byte; nothing is decoded and re-encoded.
//   - http and https URLs keep scheme, host, port, templated path and the
//     allow-listed query parameters, in their original order, repeats
//     included. An empty query ("?") and empty pairs ("&&") are dropped
//     silently. A URL with an empty or malformed host or port is
//     Unparseable and becomes "".
//   - Any other scheme (mailto:, javascript:, data:, file:, tel:, ...) is
//     reduced to the scheme alone: "mailto:alice@example.com" → "mailto:".
//     "name:1234" (a colon followed by at most five digits) is read as
//     host:port, not as a scheme.
//   - Input without a scheme is a relative reference: "//host/path",
//     "/path?query" and "?query" are cleaned the same way, keeping their
//     relative form (mixpanel-browser's current_url_search is "?query").
//   - Input longer than MaxLen bytes is Unparseable.
//
// # Path templating
//
// Path segments are split on '/' (and '\\', which browsers treat alike).
// A segment is percent-decoded for the test (never for the output) and
// replaced whole by ":id" when it is:
//
//   - a number of any length ("/orders/42", years too: "/blog/2024" →
//     "/blog/:id"; a number cannot be told apart from an id);
//   - digits with separators (-.+_() and space) holding at least 9 digits
//     (phone and card numbers); shorter ones such as dates stay;
//   - an IPv4 or IPv6 address;
//   - a UUID of any version (36 chars with dashes; 32 hex digits are
//     covered by the hex rule);
//   - anything containing '@' (e-mail addresses and @handles);
//   - a prefixed id: letters, '_', letters..., then a final part of at
//     least 4 letters/digits with a digit ("sk_abc123", "user_12345",
//     "sk_live_51H8x"), or at least 12 in mixed case ("cus_NffrFeUfNV2Hib");
//     or letters, '-', and 6+ letters/digits with at least 2 digits that
//     alternate with letters ("key-8f3a9c2b");
//   - base64url data starting with "eyJ" (JWTs, encoded JSON), 16+ chars;
//   - random-looking: counting letters and digits only, 16+ of them with
//     both letters and digits and at least one change of character class
//     (lower/upper/digit, an Upper followed by lower is one word) per three
//     characters: ULIDs, base64url and similar tokens;
//   - a word (maximal run of ASCII letters and digits) inside the segment
//     that is a number of 5+ digits ("shoe-123456"), 12+ hex digits with a
//     digit ("post-8f3a2b1c9d0e"), or random-looking as above (16+ chars,
//     one class change per three; or 10 to 15 chars, one per two).
//
// Plain words, slugs, short version-like segments and file names stay:
// "pricing", "getting-started-with-the-api", "v1", "v2", "x86_64",
// "oauth2", "iphone-15-pro", "2024-05-01", "1.2.3", "index.html".
// The rules are heuristics: short random tokens (under 10 characters)
// and identifiers made of plain words (usernames) are not recognised.
package urlclean

import (
	"net/netip"
	"strings"
)

// MaxLen is the longest input Clean and Referrer accept, in bytes; longer
// input is Unparseable.
const MaxLen = 32 << 10

// Options configures Clean. A nil *Options, or a nil AllowParams, means
// the default allow-list.
type Options struct {
	// AllowParams are the query parameter names kept, compared
	// case-insensitively (ASCII) after percent-decoding; a name ending in
	// '*' is a prefix. Default: "utm_*", "ref", "source". A non-nil empty
	// slice keeps no parameter.
	AllowParams []string
}

// Change is the set of changes Clean or Referrer made, for counting; it
// never carries a value. Cosmetic normalisation (case of scheme and host,
// surrounding whitespace, an empty "?" or "&&", an empty port) is not
// reported.
type Change uint8

// The changes, one bit each.
const (
	FragmentRemoved Change = 1 << iota // a '#' and what followed were removed
	QueryRemoved                       // at least one query parameter was dropped
	UserinfoRemoved                    // "user:password@" was removed
	PathTemplated                      // at least one path segment became ":id"
	ReducedToHost                      // a referrer was reduced to its host
	ReducedToScheme                    // a non-http(s) URL was reduced to "scheme:"
	Unparseable                        // the value could not be parsed and became ""
)

// Reasons names the changes in c, in the order of the constants above:
// "fragment_removed", "query_removed", "userinfo_removed",
// "path_templated", "reduced_to_host", "reduced_to_scheme", "unparseable".
func (c Change) Reasons() []string {
	if c == 0 {
		return nil
	}
	out := make([]string, 0, 2)
	for bit := Change(1); bit != 0 && bit <= Unparseable; bit <<= 1 {
		if c&bit != 0 {
			out = append(out, reasonName(bit))
		}
	}
	return out
}

func reasonName(bit Change) string {
	switch bit {
	case FragmentRemoved:
		return "fragment_removed"
	case QueryRemoved:
		return "query_removed"
	case UserinfoRemoved:
		return "userinfo_removed"
	case PathTemplated:
		return "path_templated"
	case ReducedToHost:
		return "reduced_to_host"
	case ReducedToScheme:
		return "reduced_to_scheme"
	case Unparseable:
		return "unparseable"
	}
	return ""
}

// Clean returns the sanitised URL and what changed. It keeps scheme, host
// (lower-cased), port, the path with id-like segments templated, and only
// the allow-listed query parameters (original order, bytes as sent). It
// removes the fragment and userinfo. See the package documentation for
// the rules and edge cases. Clean(Clean(x)) == Clean(x).
func Clean(raw string, o *Options) (string, Change) {
	s := trimSpace(raw)
	if s == "" {
		return "", 0
	}
	if len(s) > MaxLen {
		return "", Unparseable
	}
	var ch Change
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = trimSpace(s[:i])
		ch |= FragmentRemoved
	}

	var arr [256]byte
	buf := arr[:0]

	scheme, rest, hasScheme := splitScheme(s)
	switch {
	case hasScheme && isHTTP(scheme):
		buf = appendLowerASCII(buf, scheme)
		buf = append(buf, "://"...)
		rest = trimSlashes(rest)
		var ok bool
		if buf, rest, ok = appendAuthority(buf, rest, &ch); !ok {
			return "", Unparseable
		}
	case hasScheme:
		if rest != "" {
			ch |= ReducedToScheme
		}
		buf = appendLowerASCII(buf, scheme)
		buf = append(buf, ':')
		return finish(s, buf), ch
	case strings.HasPrefix(s, "//"):
		buf = append(buf, "//"...)
		var ok bool
		if buf, rest, ok = appendAuthority(buf, s[2:], &ch); !ok {
			return "", Unparseable
		}
	default:
		rest = s
	}

	path, query := rest, ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		path, query = rest[:i], rest[i+1:]
	}
	buf = appendPath(buf, path, &ch)
	buf = appendQuery(buf, query, o, &ch)
	return finish(s, buf), ch
}

// finish returns buf as a string, trimmed, reusing s when equal.
func finish(s string, buf []byte) string {
	// Trailing whitespace can only come from a piece that was followed by
	// something removed; leading whitespace cannot occur.
	for len(buf) > 0 && buf[len(buf)-1] <= ' ' {
		buf = buf[:len(buf)-1]
	}
	if string(buf) == s {
		return s
	}
	return string(buf)
}

// appendAuthority parses the authority at the start of rest (up to '/',
// '\\', '?' or the end), appends the lower-cased host and port to buf and
// returns the remainder of rest. ok is false when the host is empty or
// malformed.
func appendAuthority(buf []byte, rest string, ch *Change) ([]byte, string, bool) {
	end := authorityEnd(rest)
	host, port, userinfo, ok := parseAuthority(rest[:end])
	if !ok {
		return buf, "", false
	}
	if userinfo {
		*ch |= UserinfoRemoved
	}
	buf = appendHost(buf, host)
	if port != "" {
		buf = append(buf, ':')
		buf = append(buf, port...)
	}
	return buf, rest[end:], true
}

func authorityEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/', '\\', '?', '#':
			return i
		}
	}
	return len(s)
}

// parseAuthority splits "userinfo@host:port". The userinfo is dropped
// (the last '@' ends it). ok is false for an empty or malformed host or a
// port that is not at most five digits; an empty port is fine.
func parseAuthority(a string) (host, port string, userinfo, ok bool) {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		a, userinfo = a[i+1:], true
	}
	if a == "" {
		return "", "", userinfo, false
	}
	if a[0] == '[' {
		j := strings.IndexByte(a, ']')
		if j < 2 {
			return "", "", userinfo, false
		}
		for k := 1; k < j; k++ {
			c := a[k]
			if !isAlnum(c) && c != ':' && c != '.' && c != '%' && c != '-' && c != '_' && c != '~' {
				return "", "", userinfo, false
			}
		}
		host = a[:j+1]
		switch r := a[j+1:]; {
		case r == "":
		case r[0] == ':':
			port = r[1:]
		default:
			return "", "", userinfo, false
		}
	} else {
		host = a
		if j := strings.LastIndexByte(a, ':'); j >= 0 {
			host, port = a[:j], a[j+1:]
		}
		if !hostLike(host) {
			return "", "", userinfo, false
		}
	}
	if len(port) > 5 || !allDigits(port) {
		return "", "", userinfo, false
	}
	return host, port, userinfo, true
}

// hostLike reports whether h is a plausible registered name: ASCII
// letters, digits, '-', '.', '_', '~', '%' or non-ASCII bytes.
func hostLike(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isAlnum(c) && c != '-' && c != '.' && c != '_' && c != '~' && c != '%' && c < 0x80 {
			return false
		}
	}
	return true
}

func appendHost(buf []byte, host string) []byte {
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return append(buf, strings.ToLower(host)...)
		}
	}
	return appendLowerASCII(buf, host)
}

func appendLowerASCII(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf
}

// appendPath appends p with id-like segments replaced by ":id".
func appendPath(buf []byte, p string, ch *Change) []byte {
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' && p[i] != '\\' {
			continue
		}
		seg := p[start:i]
		if segmentIsID(seg) {
			buf = append(buf, ":id"...)
			*ch |= PathTemplated
		} else {
			buf = append(buf, seg...)
		}
		if i < len(p) {
			buf = append(buf, p[i])
		}
		start = i + 1
	}
	return buf
}

// appendQuery appends '?' and the allow-listed pairs of q, in order.
func appendQuery(buf []byte, q string, o *Options, ch *Change) []byte {
	first := true
	for q != "" {
		pair := q
		if i := strings.IndexByte(q, '&'); i >= 0 {
			pair, q = q[:i], q[i+1:]
		} else {
			q = ""
		}
		if pair == "" {
			continue
		}
		name := pair
		if i := strings.IndexByte(pair, '='); i >= 0 {
			name = pair[:i]
		}
		if !paramAllowed(name, o) {
			*ch |= QueryRemoved
			continue
		}
		if first {
			buf = append(buf, '?')
			first = false
		} else {
			buf = append(buf, '&')
		}
		buf = append(buf, pair...)
	}
	return buf
}

// paramAllowed reports whether the (raw, possibly encoded) parameter name
// is on the allow-list.
func paramAllowed(raw string, o *Options) bool {
	if strings.IndexByte(raw, '%') >= 0 || strings.IndexByte(raw, '+') >= 0 {
		var arr [64]byte
		d := decode(arr[:0], raw, true)
		return nameAllowed(d, o)
	}
	return nameAllowed(raw, o)
}

func nameAllowed[T ~string | ~[]byte](name T, o *Options) bool {
	if o == nil || o.AllowParams == nil {
		return hasPrefixFold(name, "utm_") || equalFold(name, "ref") || equalFold(name, "source")
	}
	for _, a := range o.AllowParams {
		if strings.HasSuffix(a, "*") {
			if hasPrefixFold(name, a[:len(a)-1]) {
				return true
			}
		} else if equalFold(name, a) {
			return true
		}
	}
	return false
}

func equalFold[T ~string | ~[]byte](s T, t string) bool {
	return len(s) == len(t) && hasPrefixFold(s, t)
}

func hasPrefixFold[T ~string | ~[]byte](s T, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerASCII(s[i]) != lowerASCII(prefix[i]) {
			return false
		}
	}
	return true
}

// decode appends the percent-decoding of s to buf; invalid escapes stay
// literal. plus turns '+' into ' ' (query names).
func decode(buf []byte, s string, plus bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			c = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		case c == '+' && plus:
			c = ' '
		}
		buf = append(buf, c)
	}
	return buf
}

// Referrer reduces a referrer URL to its host, without userinfo or port:
// "https://www.google.com/search?q=x" → "www.google.com". Mixpanel's
// "$direct" and "" pass through unchanged, as does a bare host. A scheme
// other than http(s) keeps its authority ("android-app://com.example.app/x"
// → "android-app://com.example.app") or is reduced to "scheme:". Anything
// else (a relative path, an e-mail address, garbage) is Unparseable and
// becomes "". Referrer(Referrer(x)) == Referrer(x).
func Referrer(raw string) (string, Change) {
	if raw == "" || raw == "$direct" {
		return raw, 0
	}
	s := trimSpace(raw)
	if s == "" {
		return "", 0
	}
	if len(s) > MaxLen {
		return "", Unparseable
	}
	var arr [128]byte
	buf := arr[:0]

	scheme, rest, hasScheme := splitScheme(s)
	switch {
	case hasScheme && isHTTP(scheme):
		return referrerHost(s, buf, trimSlashes(rest), true, true)
	case hasScheme && strings.HasPrefix(rest, "//"):
		buf = appendLowerASCII(buf, scheme)
		buf = append(buf, "://"...)
		if out, ch := referrerHost(s, buf, rest[2:], false, true); ch&Unparseable == 0 {
			return out, ch
		}
		fallthrough
	case hasScheme:
		var ch Change
		if rest != "" {
			ch |= ReducedToScheme
		}
		buf = appendLowerASCII(buf[:0], scheme)
		buf = append(buf, ':')
		return finish(s, buf), ch
	case strings.HasPrefix(s, "//"):
		return referrerHost(s, buf, s[2:], true, true)
	default:
		return referrerHost(s, buf, s, false, false)
	}
}

// referrerHost appends the host of the authority at the start of rest to
// buf. reduced says something before the authority was removed already;
// userinfoOK whether "user@" may precede the host (not for a bare host,
// where it would be an e-mail address).
func referrerHost(s string, buf []byte, rest string, reduced, userinfoOK bool) (string, Change) {
	end := authorityEnd(rest)
	host, port, userinfo, ok := parseAuthority(rest[:end])
	if !ok || (userinfo && !userinfoOK) {
		return "", Unparseable
	}
	var ch Change
	if userinfo {
		ch |= UserinfoRemoved
	}
	if reduced || port != "" || end < len(rest) {
		ch |= ReducedToHost
	}
	return finish(s, appendHost(buf, host)), ch
}

// LooksLikeURL reports whether s is an absolute http(s) URL worth
// cleaning: it starts with "http://" or "https://" (any case), a host
// byte follows, it holds no whitespace or control bytes, and it is at
// most MaxLen bytes long. Strings that merely contain a URL are the PII
// scanner's business.
func LooksLikeURL(s string) bool {
	if len(s) > MaxLen {
		return false
	}
	var rest string
	switch {
	case hasPrefixFold(s, "https://"):
		rest = s[len("https://"):]
	case hasPrefixFold(s, "http://"):
		rest = s[len("http://"):]
	default:
		return false
	}
	if rest == "" {
		return false
	}
	switch rest[0] {
	case '/', '\\', '?', '#', '@', ':':
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// splitScheme splits "scheme:rest". A leading name followed by ':' and one
// to five digits, then the end or '/', '\\', '?' or '#', is host:port and
// not a scheme.
func splitScheme(s string) (scheme, rest string, ok bool) {
	if s == "" || !isAlpha(s[0]) {
		return "", "", false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case isAlnum(c) || c == '+' || c == '-' || c == '.':
		case c == ':':
			if isPortThenEnd(s[i+1:]) {
				return "", "", false
			}
			return s[:i], s[i+1:], true
		default:
			return "", "", false
		}
	}
	return "", "", false
}

func isPortThenEnd(s string) bool {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	if n == 0 || n > 5 {
		return false
	}
	if n == len(s) {
		return true
	}
	switch s[n] {
	case '/', '\\', '?', '#':
		return true
	}
	return false
}

func isHTTP(scheme string) bool {
	return equalFold(scheme, "http") || equalFold(scheme, "https")
}

// trimSlashes removes the slashes after "http(s):"; browsers accept any
// number of them, and backslashes too.
func trimSlashes(s string) string {
	for s != "" && (s[0] == '/' || s[0] == '\\') {
		s = s[1:]
	}
	return s
}

// trimSpace removes leading and trailing ASCII whitespace and control
// bytes (<= 0x20).
func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && s[i] <= ' ' {
		i++
	}
	for j > i && s[j-1] <= ' ' {
		j--
	}
	return s[i:j]
}

// segmentIsID decodes seg when needed and classifies it.
func segmentIsID(seg string) bool {
	if seg == "" {
		return false
	}
	if strings.IndexByte(seg, '%') < 0 {
		return isIDLike(seg)
	}
	var arr [128]byte
	return isIDLike(decode(arr[:0], seg, false))
}

// isIDLike is the path segment classifier described in the package
// documentation.
func isIDLike[T ~string | ~[]byte](s T) bool {
	// Surrounding whitespace does not count (it is trimmed from the
	// output when it ends up last).
	for len(s) > 0 && s[0] <= ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] <= ' ' {
		s = s[:len(s)-1]
	}
	n := len(s)
	if n == 0 {
		return false
	}
	var digits, letters, upper, dots, colons int
	phoneish, b64, ipish := true, true, true
	for i := 0; i < n; i++ {
		c := s[i]
		switch {
		case isDigit(c):
			digits++
		case isAlpha(c):
			letters++
			if c <= 'Z' {
				upper++
			}
			phoneish = false
			if !isHex(c) {
				ipish = false
			}
		case c == '@':
			return true
		case c == '.':
			dots++
		case c == ':':
			colons++
			phoneish, b64 = false, false
		case c == '-' || c == '_' || c == '~' || c == '=':
			ipish = false
		case c == '+' || c == '(' || c == ')' || c == ' ':
			b64, ipish = false, false
		default:
			phoneish, b64, ipish = false, false, false
		}
	}
	if digits == n || (phoneish && digits >= 9) {
		return true
	}
	if ipish && (dots == 3 && colons == 0 && isIPv4(s) || colons >= 2 && isIPv6(s)) {
		return true
	}
	if n == 36 && isUUID(s) {
		return true
	}
	if digits == 0 && upper == 0 {
		// Lower-case words and slugs: no remaining rule can match.
		return false
	}
	if !b64 {
		return wordsAreIDs(s)
	}
	if n >= 16 && s[0] == 'e' && s[1] == 'y' && s[2] == 'J' {
		return true
	}
	if prefixedID(s) {
		return true
	}
	if st := stats(s); st.alnum >= 16 && st.digits > 0 && st.letters > 0 && 3*st.runs >= st.alnum {
		return true
	}
	return wordsAreIDs(s)
}

// wordsAreIDs applies the per-word rules to every maximal run of ASCII
// letters and digits in s.
func wordsAreIDs[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); {
		if !isAlnum(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isAlnum(s[j]) {
			j++
		}
		if wordIsID(s[i:j]) {
			return true
		}
		i = j
	}
	return false
}

func wordIsID[T ~string | ~[]byte](w T) bool {
	st := stats(w)
	n := st.alnum
	switch {
	case st.letters == 0:
		return n >= 5
	case n >= 12 && st.digits > 0 && allHex(w):
		return true
	case st.digits == 0:
		return false
	case n >= 16:
		return 3*st.runs >= n
	case n >= 10:
		return 2*st.runs >= n
	}
	return false
}

// prefixedID recognises "letters_..._body" and "letters-body" ids.
func prefixedID[T ~string | ~[]byte](s T) bool {
	k := 0
	for k < len(s) && isAlpha(s[k]) {
		k++
	}
	if k == 0 || k > 12 || k >= len(s)-1 {
		return false
	}
	switch s[k] {
	case '_':
		// Middle words are letters only; the last word is the body.
		last := k + 1
		for i := k + 1; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '_':
				for m := last; m < i; m++ {
					if !isAlpha(s[m]) {
						return false
					}
				}
				last = i + 1
			case !isAlnum(c):
				return false
			}
		}
		body := s[last:]
		st := stats(body)
		if st.alnum < 4 {
			return false
		}
		if st.digits > 0 {
			return true
		}
		return st.alnum >= 12 && st.upper >= 2 && st.lower >= 2 && 3*st.runs >= st.alnum
	case '-':
		body := s[k+1:]
		for i := 0; i < len(body); i++ {
			if !isAlnum(body[i]) {
				return false
			}
		}
		st := stats(body)
		return st.alnum >= 6 && st.digits >= 2 && st.letters > 0 && st.runs >= 3
	}
	return false
}

type charStats struct {
	alnum, digits, letters, upper, lower, runs int
}

// stats counts the letters and digits of s, skipping other bytes, and the
// runs of one character class (lower, upper, digit); an upper-case letter
// followed by lower-case ones is a single run ("Word").
func stats[T ~string | ~[]byte](s T) charStats {
	var st charStats
	prev := 0 // 0 none, 1 lower, 2 upper, 3 digit
	for i := 0; i < len(s); i++ {
		c := s[i]
		var cl int
		switch {
		case 'a' <= c && c <= 'z':
			cl = 1
			st.lower++
			st.letters++
		case 'A' <= c && c <= 'Z':
			cl = 2
			st.upper++
			st.letters++
		case isDigit(c):
			cl = 3
			st.digits++
		default:
			continue
		}
		st.alnum++
		if cl != prev && !(prev == 2 && cl == 1) {
			st.runs++
		}
		prev = cl
	}
	return st
}

func isUUID[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isIPv4 reports whether s is four dot-separated decimal numbers 0-255.
func isIPv4[T ~string | ~[]byte](s T) bool {
	parts, val, nd := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if nd == 0 || nd > 3 || val > 255 {
				return false
			}
			parts++
			val, nd = 0, 0
			continue
		}
		if !isDigit(s[i]) {
			return false
		}
		val = val*10 + int(s[i]-'0')
		nd++
	}
	return parts == 4
}

func isIPv6[T ~string | ~[]byte](s T) bool {
	if len(s) > 45 {
		return false
	}
	a, err := netip.ParseAddr(string(s))
	return err == nil && a.Is6()
}

func allHex[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func unhex(c byte) byte {
	switch {
	case isDigit(c):
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
