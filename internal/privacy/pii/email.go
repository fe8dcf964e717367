package pii

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// E-mail addresses: local@domain.tld.
//
// The local part is the run of letters (any script), digits and . _ % + -
// before the '@' (at most 64 bytes; a longer run is not an address). The
// domain is at least two dot-separated labels of letters, digits and '-',
// ending in a top-level label of two or more letters (any script) or an
// "xn--" label. So "mailto:", quotes, angle brackets and sentence
// punctuation around an address are left out, "user@localhost" and
// "pkg@1.2.3" are not addresses, and neither is "logo@2x.png": a few file
// extensions that are not TLDs are refused as TLDs.
//
// An '@' that ends the userinfo of a URL ("https://user:pass@host") is not
// an address: URLCredential covers it.

const (
	maxLocal  = 64
	maxDomain = 253
)

func findEmails(dst []Match, s string) []Match {
	for off := 0; off < len(s); {
		k := strings.IndexByte(s[off:], '@')
		if k < 0 {
			break
		}
		at := off + k
		off = at + 1
		start := emailLocalStart(s, at)
		if start < 0 {
			continue
		}
		end := emailDomainEnd(s, at+1)
		if end < 0 {
			continue
		}
		if inUserinfo(s, start) {
			continue
		}
		dst = append(dst, Match{Email, start, end})
		off = end
	}
	return dst
}

// emailLocalStart returns where the local part ending at s[at] ('@') begins,
// or -1.
func emailLocalStart(s string, at int) int {
	j := at
	dot := false
	for j > 0 {
		c := s[j-1]
		if c < utf8.RuneSelf {
			if chars[c]&cLocal == 0 {
				break
			}
			if c == '.' {
				if dot { // "..": the address starts after it
					j++
					break
				}
				dot = true
			} else {
				dot = false
			}
			j--
		} else {
			r, n := utf8.DecodeLastRuneInString(s[:j])
			if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) {
				break
			}
			dot = false
			j -= n
		}
		if at-j > maxLocal {
			return -1
		}
	}
	for j < at && s[j] == '.' {
		j++
	}
	if j == at || s[at-1] == '.' {
		return -1
	}
	return j
}

// emailDomainEnd returns where the domain starting at s[i] ends, or -1.
func emailDomainEnd(s string, i int) int {
	j, labels, end := i, 0, -1
	for j < len(s) && j-i <= maxDomain {
		ls := j
		letters := true // the label is letters only
		for j < len(s) && j-i <= maxDomain {
			c := s[j]
			if c < utf8.RuneSelf {
				k := chars[c]
				if k&cAlnum == 0 && c != '-' {
					break
				}
				if k&(cUpper|cLower) == 0 {
					letters = false
				}
				j++
				continue
			}
			r, n := utf8.DecodeRuneInString(s[j:])
			if unicode.IsLetter(r) || unicode.Is(unicode.Mn, r) {
				j += n
				continue
			}
			if unicode.IsDigit(r) {
				letters = false
				j += n
				continue
			}
			break
		}
		label := s[ls:j]
		if j-i > maxDomain || label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			break
		}
		labels++
		if labels >= 2 && isTLD(label, letters) {
			end = j
		}
		if j+1 < len(s) && s[j] == '.' {
			j++
			continue
		}
		break
	}
	return end
}

func isTLD(label string, letters bool) bool {
	if letters {
		return len(label) >= 2 && !fileExt(label)
	}
	return len(label) > 4 && hasPrefixFold(label, "xn--")
}

// fileExt reports whether a letters-only label is a common file extension
// that is not a top-level domain ("icon@2x.png").
func fileExt(label string) bool {
	if len(label) > 4 {
		return false
	}
	var b [4]byte
	for i := 0; i < len(label); i++ {
		b[i] = lower(label[i])
	}
	switch string(b[:len(label)]) {
	case "png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "bmp", "ico", "tif", "tiff",
		"css", "js", "mjs", "json", "html", "htm", "txt", "pdf", "webm", "mp3", "wav", "heic":
		return true
	}
	return false
}

// inUserinfo reports whether the local part starting at s[start] is in the
// authority of a URL ("https://user@host", "https://user:p@ss@host"): the
// bytes before it, up to "scheme://", are all authority bytes.
func inUserinfo(s string, start int) bool {
	for j := start; j > 0 && start-j < 512; j-- {
		c := s[j-1]
		if c == '/' {
			return j >= 4 && s[j-2] == '/' && s[j-3] == ':' && isAlnum(s[j-4])
		}
		if chars[c]&cAuthStop != 0 {
			return false
		}
	}
	return false
}
