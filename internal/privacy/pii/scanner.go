package pii

import (
	"slices"
	"strings"
)

// Match is one finding: s[Start:End] holds data of class Class.
type Match struct {
	Class      Class
	Start, End int // byte offsets into the scanned string
}

// Scanner finds personal data and secrets in strings. It holds only the set
// of classes it looks for, so it is safe for concurrent use; build it once
// with NewScanner. The zero Scanner finds nothing.
type Scanner struct {
	set classSet
}

// NewScanner returns a scanner for the given classes, or for every class
// when none is given. It panics on a value that is not a Class constant.
func NewScanner(classes ...Class) *Scanner {
	sc := &Scanner{}
	if len(classes) == 0 {
		sc.set = 1<<numClasses - 1
	}
	for _, c := range classes {
		if !c.Valid() {
			panic("pii: NewScanner: invalid class " + c.String())
		}
		sc.set |= 1 << c
	}
	return sc
}

// Classes returns the classes sc looks for, in order.
func (sc *Scanner) Classes() []Class { return sc.set.list() }

// Find returns the matches in s, in order and not overlapping. Where two
// candidates overlap the longer one is kept, and between two of the same
// extent the more specific (see priority).
func (sc *Scanner) Find(s string) []Match {
	var buf [8]Match
	m := sc.AppendFind(buf[:0], s)
	if len(m) == 0 {
		return nil
	}
	return slices.Clone(m)
}

// minLen is the length of the shortest possible match ("::1").
const minLen = 3

// AppendFind appends the matches in s to dst and returns the extended
// slice; it does not allocate when dst has room for the candidates. The
// appended matches are in order and do not overlap; dst[:len(dst)] as
// passed in is left alone.
func (sc *Scanner) AppendFind(dst []Match, s string) []Match {
	if len(s) < minLen || sc.set == 0 {
		return dst
	}
	base := len(dst)
	dst, f := sc.scanWords(dst, s)
	if f&cAt != 0 && sc.set.has(Email) {
		dst = findEmails(dst, s)
	}
	if f&fV6 != 0 && sc.set.has(IPv6) {
		dst = findIPv6(dst, s)
	}
	if len(dst)-base > 1 {
		dst = resolve(dst, base)
	}
	return dst
}

// scanWords is the one pass over every byte of s. It runs the detectors
// anchored at word starts (a byte whose predecessor is not an ASCII letter
// or digit), query parameters and URL userinfo, and returns the union of the
// classes of the bytes it visited one by one, plus fV6, from which
// AppendFind learns whether s may hold an e-mail or IPv6 address.
//
// Fast path: inside a run of letters and digits nothing starts, so the
// inner loop only looks for the run's end; at a word
// start a byte of look-ahead rules out most detectors before any is called.
func (sc *Scanner) scanWords(dst []Match, s string) ([]Match, byteClass) {
	set := sc.set
	var f byteClass
	ks := 0 // where a query parameter name may start; -1: none
	vs := valueScan{start: -1, end: -1}
	for i := 0; i < len(s); {
		c := s[i]
		k := chars[c]
		f |= k
		if k&cStart != 0 && i+1 < len(s) && worthChecking(c, s[i+1]) {
			n := len(dst)
			dst = sc.atWordStart(dst, s, i, c, k, set)
			if c == '-' && len(dst) > n {
				// A private key block: nothing inside it can win against
				// it, and skipping keeps the scan linear.
				i = dst[len(dst)-1].End
				ks = -1
				continue
			}
		}
		if k&cParamKey == 0 {
			// Track "name=" after '?', '&', '#', ';' or at the start: the
			// name is the run of name bytes since then.
			switch {
			case k&cIntro != 0:
				ks = i + 1
			case c == '=':
				if ks >= 0 && ks < i && set.has(URLCredential) {
					dst = paramAt(dst, s, ks, i, &vs)
				}
				ks = -1
			case c == ':':
				ks = -1
				if i > 0 && chars[s[i-1]]&cHex != 0 || i+1 < len(s) && (s[i+1] == ':' || chars[s[i+1]]&cHex != 0) {
					f |= fV6
				}
				if i+2 < len(s) && s[i+1] == '/' && s[i+2] == '/' && i > 0 && isAlnum(s[i-1]) && set.has(URLCredential) {
					dst = userinfoAt(dst, s, i+3)
				}
			default:
				ks = -1
			}
		}
		i++
		if k&cAlnum != 0 {
			for i < len(s) && chars[s[i]]&cAN != 0 {
				i++
			}
		}
	}
	return dst, f
}

// worthChecking is the look-ahead at a word start: it rules out, from the
// byte after c, every detector anchored on c, or reports that one may match.
func worthChecking(c, c1 byte) bool { return nextOK[c]&nextCat[c1] != 0 }

// nextCat sorts a byte into a look-ahead category (one bit); nextOK holds,
// per word-start byte, the categories of the next byte that can begin a
// match: "sk", "rk", "pk" (keys), "ey" (JWT), "gh", "gi" (GitHub), "xo",
// "xa" (Slack), "be", "ba" (bearer, basic), "--" (PEM), "+1", "(5" (phone),
// two upper-case letters (IBAN); a digit or 'A' (AWS, Google) before
// anything.
var nextCat, nextOK = func() (cat [256]uint16, ok [256]uint16) {
	const (
		nk = 1 << iota
		ny
		nh
		ni
		no
		na
		ne
		nDash
		nDigit
		nUpper
		nAny // every byte
		nAll = 1<<11 - 1
	)
	for c := range cat {
		cat[c] = nAny
	}
	for c := '0'; c <= '9'; c++ {
		cat[c] |= nDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		cat[c] |= nUpper
	}
	cat['k'] |= nk
	cat['y'] |= ny
	cat['h'] |= nh
	cat['i'] |= ni
	cat['o'] |= no
	cat['a'] |= na
	cat['A'] |= na
	cat['e'] |= ne
	cat['E'] |= ne
	cat['-'] |= nDash
	for c := '0'; c <= '9'; c++ {
		ok[c] = nAll
	}
	for c := 'A'; c <= 'Z'; c++ {
		ok[c] = nUpper
	}
	ok['A'] = nAll
	ok['B'] = nUpper | ne | na
	ok['s'], ok['r'], ok['p'] = nk, nk, nk
	ok['e'] = ny
	ok['g'] = nh | ni
	ok['x'] = no | na
	ok['b'] = ne | na
	ok['-'] = nDash
	ok['+'], ok['('] = nDigit, nDigit
	return cat, ok
}()

// atWordStart runs the detectors anchored on byte c (class k) at the word
// start s[i].
func (sc *Scanner) atWordStart(dst []Match, s string, i int, c byte, k byteClass, set classSet) []Match {
	rest := len(s) - i
	switch {
	case k&cDigit != 0:
		// The digit run, and what follows it, decide which number
		// detectors can match at all.
		r := i + 1
		for r < len(s) && isDigit(s[r]) {
			r++
		}
		var next byte
		if r < len(s) {
			next = s[r]
			if chars[next]&(cUpper|cLower) != 0 || next == '_' {
				return dst // a hex id, "2x", "10_15_7": no number stands here
			}
		}
		run := r - i
		if set.has(IPv4) && run <= 3 && next == '.' && rest >= len("1.2.3.4") {
			if e := ipv4At(s, i); e > 0 {
				dst = append(dst, Match{IPv4, i, e})
			}
		}
		if !numericStart(s, i) {
			return dst
		}
		if set.has(Card) && rest >= minCard && (run >= minCard || next == ' ' || next == '-') {
			if e := cardAt(s, i); e > 0 {
				dst = append(dst, Match{Card, i, e})
			}
		}
		if set.has(Phone) && (next == ' ' || next == '-' || next == '.') && rest >= 10 {
			if e := phoneAt(s, i); e > 0 {
				dst = append(dst, Match{Phone, i, e})
			}
		}
		return dst
	case c == '+' || c == '(':
		if set.has(Phone) && rest > 7 {
			if e := phoneAt(s, i); e > 0 {
				dst = append(dst, Match{Phone, i, e})
			}
		}
		return dst
	}
	if rest < 15 {
		return dst // shorter than any IBAN, JWT, key or bearer credential
	}
	c1 := s[i+1]
	if k&cUpper != 0 && set.has(IBAN) && isUpper(c1) && isDigit(s[i+2]) {
		if e := ibanAt(s, i); e > 0 {
			return append(dst, Match{IBAN, i, e})
		}
	}
	switch c {
	case 'e':
		if c1 == 'y' && s[i+2] == 'J' && set.has(JWT) {
			if e := jwtAt(s, i); e > 0 {
				dst = append(dst, Match{JWT, i, e})
			}
		}
		return dst
	case 'b', 'B':
		if (c1|0x20 == 'e' || c1|0x20 == 'a') && set.has(BearerToken) {
			if ts, te := bearerAt(s, i); te > 0 {
				dst = append(dst, Match{BearerToken, ts, te})
			}
		}
		return dst
	case 's', 'r', 'p':
		if c1 != 'k' {
			return dst
		}
	case 'g':
		if c1 != 'h' && c1 != 'i' {
			return dst
		}
	case 'x':
		if c1 != 'o' && c1 != 'a' {
			return dst
		}
	case '-':
		if c1 != '-' {
			return dst
		}
	case 'A':
	default:
		return dst
	}
	if set.has(SecretKey) {
		if e := secretAt(s, i); e > 0 {
			dst = append(dst, Match{SecretKey, i, e})
		}
	}
	return dst
}

// numericStart reports whether the digit at s[i] starts a number rather than
// continuing a dotted, dashed or otherwise joined token ("a716-4466",
// "1.2", "12:30", "11/23", "1,299"). A label before a colon is fine
// ("tel:555…"). The caller has checked that s[i-1] is not a letter or digit.
func numericStart(s string, i int) bool {
	if i == 0 {
		return true
	}
	switch s[i-1] {
	case '.':
		return false
	case ':':
		return i < 2 || !isDigit(s[i-2])
	case '-', '_', ',', '/', '+':
		return i < 2 || !isAlnum(s[i-2])
	}
	return true
}

// priority breaks ties between candidates of the same extent: a container
// (URL credential, bearer) beats what it holds, a checked format beats a
// looser one.
var priority = [numClasses]uint8{
	URLCredential: 9,
	BearerToken:   8,
	JWT:           7,
	SecretKey:     6,
	Card:          5,
	IBAN:          4,
	Email:         3,
	IPv6:          2,
	IPv4:          1,
	Phone:         0,
}

// resolve sorts the candidates dst[base:] and removes overlaps: of two
// overlapping candidates the longer survives, and of two equally long the
// one of higher priority.
func resolve(dst []Match, base int) []Match {
	m := dst[base:]
	if len(m) <= 1 {
		return dst
	}
	slices.SortFunc(m, func(a, b Match) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		if a.End != b.End {
			return b.End - a.End
		}
		return int(priority[b.Class]) - int(priority[a.Class])
	})
	w := 0
	for _, c := range m[1:] {
		cur := m[w]
		if c.Start >= cur.End {
			w++
			m[w] = c
			continue
		}
		if lc, lcur := c.End-c.Start, cur.End-cur.Start; lc > lcur || lc == lcur && priority[c.Class] > priority[cur.Class] {
			m[w] = c
		}
	}
	return dst[:base+w+1]
}

// maxRedactRounds bounds Redact's rescans. A placeholder never takes part in
// a match, so every round replaces original text and the loop ends after at
// most len(s) rounds anyway; in practice the second scan finds nothing.
const maxRedactRounds = 32

// Redact returns s with every match replaced by its class's placeholder
// ("[email]") and the classes it replaced, in order. When s holds nothing it
// returns s itself and nil, without allocating.
//
// Replacing a match can expose a new one (text that touched the match
// becomes a word of its own), so Redact scans its result again until it
// finds nothing: the result, scanned by the same Scanner, has no matches.
func (sc *Scanner) Redact(s string) (string, []Class) {
	var buf [8]Match
	m := sc.AppendFind(buf[:0], s)
	if len(m) == 0 {
		return s, nil
	}
	var found classSet
	var b strings.Builder
	for round := 0; len(m) > 0 && round < maxRedactRounds; round++ {
		b.Reset()
		b.Grow(len(s))
		last := 0
		for _, x := range m {
			b.WriteString(s[last:x.Start])
			b.WriteString(placeholders[x.Class])
			found |= 1 << x.Class
			last = x.End
		}
		b.WriteString(s[last:])
		s = b.String()
		m = sc.AppendFind(m[:0], s)
	}
	return s, found.list()
}
