package pseudonym

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize is what a value is hashed as, so that the spellings of one
// identity give one pseudonym:
//
//   - leading and trailing Unicode white space is trimmed;
//   - the value is put in Unicode NFC (a precomposed "é" and "e" followed by
//     a combining acute accent are the same);
//   - email addresses are lower-cased (fully, local part included: mail
//     providers treat it case-insensitively in practice). A value is an
//     email address when the field is an email field (see below) or when it
//     looks like one: exactly one "@", a non-empty local part with no white
//     space, quotes, brackets, slashes or the like, and a dotted domain.
//     Other values keep their case ("User-42" and "user-42" differ).
//
// An email field is one whose name, after any "group:"/"property:" style
// prefix and a leading "$", is "email", "e-mail" or "mail", or begins with
// "email_" or ends with "_email" (compared without regard to case).
//
// Invalid UTF-8 is kept byte for byte (never lower-cased or replaced), so
// two different invalid strings never collapse into one. Normalize is
// idempotent and allocates only when it changes something beyond trimming.
func Normalize(field Field, value string) string {
	v := strings.TrimFunc(value, unicode.IsSpace)
	v = norm.NFC.String(v)
	if (isEmailField(field) || looksLikeEmail(v)) && utf8.ValidString(v) {
		if l := strings.ToLower(v); l != v {
			v = norm.NFC.String(l)
		}
	}
	return v
}

// isEmailField reports whether values of f are email addresses by name.
func isEmailField(f Field) bool {
	n := string(f)
	if i := strings.LastIndexByte(n, ':'); i >= 0 {
		n = n[i+1:]
	}
	n = strings.TrimPrefix(n, "$")
	eq := strings.EqualFold
	switch {
	case eq(n, "email"), eq(n, "e-mail"), eq(n, "mail"):
		return true
	case len(n) > 6 && (eq(n[:6], "email_") || eq(n[len(n)-6:], "_email")):
		return true
	}
	return false
}

// looksLikeEmail reports whether v has the shape of an email address. It is
// deliberately plain: it decides lower-casing, not deliverability.
func looksLikeEmail(v string) bool {
	at := strings.IndexByte(v, '@')
	if at <= 0 || at > 64 || strings.IndexByte(v[at+1:], '@') >= 0 {
		return false
	}
	local, domain := v[:at], v[at+1:]
	if len(domain) < 3 || len(domain) > 255 {
		return false
	}
	for _, r := range v {
		if r <= ' ' || r == 0x7f || r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		switch r {
		case '"', '(', ')', ',', ':', ';', '<', '>', '[', ']', '\\', '/':
			return false
		}
	}
	if local[0] == '.' || local[len(local)-1] == '.' {
		return false
	}
	if !strings.Contains(domain, ".") || strings.Contains(domain, "..") {
		return false
	}
	switch domain[0] {
	case '.', '-':
		return false
	}
	switch domain[len(domain)-1] {
	case '.', '-':
		return false
	}
	tld := domain[strings.LastIndexByte(domain, '.')+1:]
	return len(tld) >= 2
}
