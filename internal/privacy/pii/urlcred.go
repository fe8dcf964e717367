package pii

import "strings"

// URL credentials, in two forms.
//
// Userinfo: in "scheme://userinfo@host", the userinfo ("user:pass", or a
// bare user name, which identifies a person as well). The match covers the
// userinfo without the '@', so a redaction reads
// "https://[url_credential]@host/".
//
// Secret-bearing parameters: in "name=value" introduced by '?', '#', '&' or
// ';' (query strings, fragments such as OAuth's "#access_token=",
// "&amp;"-escaped HTML) or standing at the start of the value (a bare query
// string), where the name is one of those below (ASCII case ignored) or ends
// in "token", "secret" or "password". The match covers the value only, so a
// redaction reads "?token=[url_credential]". The value ends at '&', '#',
// ';', a blank, a quote or bracket, and trailing sentence punctuation is
// left out.
//
// Some names are common words with harmless values ("state=CA",
// "code=en", "key=sort"); for these (code, state, key, sid, auth, session)
// the value must be 8 or more characters with a digit, which OAuth codes
// and states, session ids and API keys are.

const maxParamName = 24

// userinfoAt appends the userinfo of the authority starting at s[a] (just
// after "scheme://"), if it has one.
func userinfoAt(dst []Match, s string, a int) []Match {
	at := -1
	for q := a; q < len(s) && q-a < 512; q++ {
		c := s[q]
		if c == '@' {
			at = q
		} else if chars[c]&cAuthStop != 0 {
			break
		}
	}
	if at > a {
		dst = append(dst, Match{URLCredential, a, at})
	}
	return dst
}

// valueScan remembers the last parameter value scanned. Values end at the
// same byte from any start inside them, so a parameter that starts inside
// the last value ("?a=?b=?c=…") reuses its end instead of scanning again:
// that keeps the scan linear.
type valueScan struct {
	start, end int  // the value scanned: s[start:end], before trimming
	trimmed    int  // end without trailing sentence punctuation (>= start)
	lastDigit  int  // index of its last digit, or -1
	matched    bool // s[start:trimmed] was appended as a match
}

// paramAt appends the value of the parameter whose name is s[ks:eq] (the
// caller has checked its bytes and what comes before it) if the name is a
// secret's and the value qualifies.
func paramAt(dst []Match, s string, ks, eq int, vs *valueScan) []Match {
	kind := paramKind(s[ks:eq])
	if kind == notSecret {
		return dst
	}
	start := eq + 1
	if start > vs.start && start < vs.end {
		if vs.matched {
			return dst // inside the value matched before
		}
	} else {
		end, digit := start, -1
		for end < len(s) && chars[s[end]]&cValStop == 0 {
			if isDigit(s[end]) {
				digit = end
			}
			end++
		}
		t := end
		for t > start && strings.IndexByte(".,)!?:", s[t-1]) >= 0 {
			t--
		}
		*vs = valueScan{start: start, end: end, trimmed: t, lastDigit: digit}
	}
	end := max(vs.trimmed, start)
	if end == start {
		return dst
	}
	if kind == weakSecret && (end-start < 8 || vs.lastDigit < start) {
		return dst
	}
	if start == vs.start {
		vs.matched = true
	}
	return append(dst, Match{URLCredential, start, end})
}

type paramClass uint8

const (
	notSecret paramClass = iota
	weakSecret
	strongSecret
)

var (
	strongNames = [...]string{
		"access_token", "id_token", "refresh_token", "token", "api_key", "apikey", "api-key",
		"x-api-key", "password", "passwd", "pwd", "pass", "secret", "client_secret",
		"sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
		"x-goog-signature", "x-goog-credential", "sessionid", "session_id", "jsessionid",
		"phpsessid", "private_token", "oauth_verifier",
	}
	weakNames    = [...]string{"code", "state", "key", "sid", "auth", "session"}
	nameSuffixes = [...]string{"token", "secret", "password"}
)

// paramKind classifies a query parameter name, ignoring ASCII case.
func paramKind(name string) paramClass {
	if len(name) < 3 || len(name) > maxParamName {
		return notSecret
	}
	// Fast path: every name above ends in one of these letters.
	switch lower(name[len(name)-1]) {
	case 'n', 'y', 'd', 's', 't', 'g', 'e', 'l', 'h', 'r':
	default:
		return notSecret
	}
	for _, n := range strongNames {
		if equalFold(name, n) {
			return strongSecret
		}
	}
	for _, n := range weakNames {
		if equalFold(name, n) {
			return weakSecret
		}
	}
	for _, suf := range nameSuffixes {
		if len(name) > len(suf) && equalFold(name[len(name)-len(suf):], suf) {
			return strongSecret
		}
	}
	return notSecret
}
