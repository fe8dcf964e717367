package pii

// Phone numbers. Digit runs are everywhere in analytics data (ids, prices,
// timestamps, versions), so only two shapes count:
//
//   - international: '+' and 7 to 15 digits (E.164), in groups separated by
//     single spaces, dashes or dots, with an optional parenthesised group
//     ("+1 (555) 123-4567", "+44 (0)20 7946 0958", "+4930123456");
//   - national, grouped the way phone numbers are written, 9 to 12 digits:
//     a parenthesised area code first ("(555) 123-4567", "(020) 7946 0958");
//     the North American 3-3-4 with one separator throughout and an area
//     code starting 2-9, optionally after "1" ("555-123-4567",
//     "1 800 555 0199"); or a trunk-prefix number whose first group starts
//     with 0 and has 2 to 5 digits, followed by groups of 2 to 8 digits
//     ("020 7946 0958", "06 12 34 56 78", "030-1234567"; up to 15 digits
//     after an international "00").
//
// Ungrouped national digit runs ("5551234567") are not matched: they are as
// likely order numbers. Neither are the trailing groups of a longer run of
// space-separated digit groups, numbers after "ISBN", numbers joined to
// a letter, dot, colon or slash, or followed by one (dates, times, versions,
// UUID groups, IP addresses, prices with decimals).

const (
	maxPhoneGroups = 8
	maxPhoneDigits = 17 // the most any accepted shape allows, plus slack
)

type phoneGroup struct {
	n     uint8 // digits in the group
	first byte  // its first digit
	paren bool  // written as "(digits)"
}

// phoneAt returns the end of a phone number starting at s[i] ('+', '(' or
// a digit that starts a number), or -1.
func phoneAt(s string, i int) int {
	intl := s[i] == '+'
	if intl || s[i] == '(' {
		if i > 0 && (isAlnum(s[i-1]) || s[i-1] == '+' || s[i-1] == '.') {
			return -1
		}
	} else if i > 0 && s[i-1] == '+' {
		return -1 // the '+' position is tried on its own
	} else if i > 1 && s[i-1] == ' ' && isDigit(s[i-2]) {
		return -1 // the tail of a longer run of digit groups
	}
	j := i
	if intl {
		j++
		if j >= len(s) || !isDigit(s[j]) || s[j] == '0' {
			return -1
		}
	}
	var g [maxPhoneGroups]phoneGroup
	n, digits := 0, 0
	var sep byte   // the separator between plain groups
	mixed := false // more than one kind of separator
	for {
		if n == maxPhoneGroups {
			return -1
		}
		if j < len(s) && s[j] == '(' {
			k := j + 1
			for k < len(s) && isDigit(s[k]) && k-j <= 6 {
				k++
			}
			if k == j+1 || k >= len(s) || s[k] != ')' {
				return -1
			}
			g[n] = phoneGroup{n: uint8(k - j - 1), first: s[j+1], paren: true}
			n++
			digits += k - j - 1
			j = k + 1
			if j < len(s) && isDigit(s[j]) {
				continue
			}
			if j+1 < len(s) && (s[j] == ' ' || s[j] == '-') && isDigit(s[j+1]) {
				j++
				continue
			}
			break
		}
		if j >= len(s) || !isDigit(s[j]) {
			return -1
		}
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
			if digits+k-j > maxPhoneDigits {
				return -1
			}
		}
		g[n] = phoneGroup{n: uint8(k - j), first: s[j]}
		n++
		digits += k - j
		j = k
		if j+1 < len(s) && (s[j] == ' ' || s[j] == '-' || s[j] == '.') && (isDigit(s[j+1]) || s[j+1] == '(') {
			if sep == 0 {
				sep = s[j]
			} else if sep != s[j] {
				mixed = true
			}
			j++
			continue
		}
		break
	}
	if !numberEnds(s, j) {
		return -1
	}
	if intl {
		if g[0].paren {
			return -1
		}
		d := digits
		for _, x := range g[:n] {
			if x.paren && x.n == 1 && x.first == '0' { // "+44 (0)20": trunk prefix
				d--
			}
		}
		if d < 7 || d > 15 {
			return -1
		}
		return j
	}
	if n < 2 || mixed || hasISBNBefore(s, i) {
		return -1
	}
	switch {
	case g[0].paren: // (555) 123-4567, (020) 7946 0958
		if g[0].n < 2 || g[0].n > 5 || digits < 9 || digits > 12 {
			return -1
		}
		for _, x := range g[1:n] {
			if x.paren {
				return -1
			}
		}
		return j
	case anyParen(g[:n]):
		return -1
	case nanp(g[:n]):
		return j
	case g[0].first == '0' && g[0].n >= 2 && g[0].n <= 5:
		lo, hi := 9, 12
		if g[0].n >= 2 && s[i+1] == '0' { // 00 44 ...: international prefix
			hi = 15
		}
		if digits < lo || digits > hi || sep == '.' && n < 3 {
			return -1
		}
		for _, x := range g[1:n] {
			if x.n < 2 || x.n > 8 {
				return -1
			}
		}
		return j
	}
	return -1
}

func anyParen(g []phoneGroup) bool {
	for _, x := range g {
		if x.paren {
			return true
		}
	}
	return false
}

// nanp reports whether the groups are 3-3-4 or 1-3-3-4 with an area code
// starting 2-9.
func nanp(g []phoneGroup) bool {
	if len(g) == 4 && g[0].n == 1 && g[0].first == '1' {
		g = g[1:]
	}
	return len(g) == 3 && g[0].n == 3 && g[1].n == 3 && g[2].n == 4 && g[0].first >= '2'
}

// numberEnds reports whether a number ending at s[j] ends a token: the next
// byte is not a letter, digit or '_', nor a joiner (. , : / -) followed by a
// letter or digit.
func numberEnds(s string, j int) bool {
	if j >= len(s) {
		return true
	}
	c := s[j]
	if isAlnum(c) || c == '_' {
		return false
	}
	switch c {
	case '.', ',', ':', '/', '-':
		return j+1 >= len(s) || !isAlnum(s[j+1])
	}
	return true
}

// hasISBNBefore reports whether "ISBN" (any case, optionally "ISBN-10" or
// "ISBN-13" and a colon) comes just before s[i].
func hasISBNBefore(s string, i int) bool {
	lo := max(i-12, 0)
	for j := i - 4; j >= lo; j-- {
		if hasPrefixFold(s[j:], "isbn") {
			return true
		}
	}
	return false
}
