package pii

// Payment cards: 13 to 19 digits, written as one run or in groups separated
// by single spaces or dashes (one kind throughout) in the shapes cards are
// printed in: fours with a shorter last group, or Amex/Diners 4-6-5 and
// 4-6-4. The number must pass the Luhn check and start with a known issuer
// prefix whose length it has:
//
//	Visa 4 (13, 16, 19); Mastercard 51-55, 2221-2720 (16); Amex 34, 37 (15);
//	Discover 6011, 644-649, 65 (16-19); JCB 3528-3589 (16-19);
//	Diners 36, 38, 39, 300-305 (14-19); UnionPay 62 (16-19).
//
// The number must stand alone: not joined to letters, '_', or a further
// dotted or dashed part, so UUID groups, decimal fractions and digits inside
// longer tokens never match. Millisecond timestamps (13 digits starting 1)
// have no issuer.

const (
	minCard = 13
	maxCard = 19
)

// cardAt returns the end of a card number starting at the digit s[i], or
// -1. The caller has checked numericStart.
func cardAt(s string, i int) int {
	var d [maxCard]byte
	var groups [8]uint8
	n, nd := 0, 0
	var sep byte
	j := i
	for {
		k := j
		for k < len(s) && isDigit(s[k]) {
			if nd == maxCard {
				return -1
			}
			d[nd] = s[k]
			nd++
			k++
		}
		groups[n] = uint8(k - j)
		n++
		j = k
		if j+1 < len(s) && (s[j] == ' ' || s[j] == '-') && isDigit(s[j+1]) {
			if sep != 0 && sep != s[j] || n == len(groups) {
				return -1
			}
			sep = s[j]
			j++
			continue
		}
		break
	}
	if nd < minCard || !numberEnds(s, j) || !cardGroups(groups[:n]) {
		return -1
	}
	if !issuer(d[:nd]) || !luhn(d[:nd]) {
		return -1
	}
	return j
}

func cardGroups(g []uint8) bool {
	switch {
	case len(g) == 1:
		return true
	case len(g) == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 5 || g[2] == 4):
		return true
	}
	if len(g) < 4 {
		return false
	}
	for _, x := range g[:len(g)-1] {
		if x != 4 {
			return false
		}
	}
	return g[len(g)-1] >= 1 && g[len(g)-1] <= 4
}

// issuer reports whether the digits d start with a known issuer prefix and
// have one of its lengths.
func issuer(d []byte) bool {
	n := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p3 := p2*10 + int(d[2]-'0')
	p4 := p3*10 + int(d[3]-'0')
	switch {
	case d[0] == '4':
		return n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return n == 16
	case p2 == 34 || p2 == 37:
		return n == 15
	case p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65, p4 >= 3528 && p4 <= 3589, p2 == 62:
		return n >= 16 && n <= 19
	case p2 == 36, p2 == 38, p2 == 39, p3 >= 300 && p3 <= 305:
		return n >= 14 && n <= 19
	}
	return false
}

// luhn reports whether the digits d pass the Luhn (mod 10) check.
func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

// IBAN (ISO 13616): a country code of a country that issues IBANs, two check
// digits (02-98), and the country's fixed number of upper-case letters and
// digits, written as one run or in groups of four separated by single
// spaces. The whole must satisfy mod-97 == 1 and stand alone. Lower-case
// IBANs are not matched.

// ibanLen holds each IBAN country's total length, indexed by
// (first letter - 'A') * 26 + (second letter - 'A'); 0 means no IBAN.
var ibanLen = func() (t [26 * 26]uint8) {
	for _, e := range []struct {
		cc string
		n  uint8
	}{
		{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
		{"BG", 22}, {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22},
		{"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20},
		{"EG", 29}, {"ES", 24}, {"FI", 18}, {"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22},
		{"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
		{"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30},
		{"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21},
		{"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20}, {"MR", 27},
		{"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24},
		{"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33},
		{"SA", 24}, {"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27},
		{"SO", 23}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29},
		{"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
	} {
		t[int(e.cc[0]-'A')*26+int(e.cc[1]-'A')] = e.n
	}
	return t
}()

const maxIBAN = 34

// ibanAt returns the end of an IBAN starting at the upper-case letter s[i],
// or -1. The caller has checked that s[i-1] is not a letter or digit.
func ibanAt(s string, i int) int {
	if i+4 > len(s) || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return -1
	}
	l := int(ibanLen[int(s[i]-'A')*26+int(s[i+1]-'A')])
	if l == 0 {
		return -1
	}
	if ck := int(s[i+2]-'0')*10 + int(s[i+3]-'0'); ck < 2 || ck > 98 {
		return -1
	}
	var b [maxIBAN]byte
	copy(b[:4], s[i:i+4])
	n, j := 4, i+4
	spaced := j < len(s) && s[j] == ' '
	for n < l {
		if spaced && n%4 == 0 {
			if j >= len(s) || s[j] != ' ' {
				return -1
			}
			j++
		}
		if j >= len(s) || chars[s[j]]&(cUpper|cDigit) == 0 {
			return -1
		}
		b[n] = s[j]
		n++
		j++
	}
	if j < len(s) && (isAlnum(s[j]) || s[j] == '_') {
		return -1
	}
	if !mod97(b[:n]) {
		return -1
	}
	return j
}

// mod97 reports whether the IBAN b, moved so that its first four
// characters come last and with letters as 10-35, is 1 modulo 97.
func mod97(b []byte) bool {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range b[4:] {
		add(c)
	}
	for _, c := range b[:4] {
		add(c)
	}
	return r == 1
}
