package pii

import (
	"errors"
	"strconv"
)

// Class is a kind of personal data or secret the scanner recognises.
type Class uint8

// The classes, in the order Classes lists them. The values are stable only
// within one build: store names (String), never numbers.
const (
	Email         Class = iota // local@domain.tld
	Phone                      // E.164 or a phone-shaped national number
	IPv4                       // dotted quad
	IPv6                       // any text form net/netip accepts, IPv4-mapped included
	Card                       // payment card number: Luhn, IIN and length
	IBAN                       // ISO 13616 account number: country length and mod-97
	JWT                        // JSON Web Token (JWS, or the first three JWE segments)
	SecretKey                  // well-known API key and private key formats
	BearerToken                // "Bearer <token>" or "Basic <base64 user:pass>"
	URLCredential              // userinfo in a URL, or the value of a secret-bearing query parameter

	numClasses = iota
)

var classNames = [numClasses]string{
	"email", "phone", "ipv4", "ipv6", "card", "iban", "jwt", "secret_key", "bearer_token", "url_credential",
}

var placeholders = [numClasses]string{
	"[email]", "[phone]", "[ipv4]", "[ipv6]", "[card]", "[iban]", "[jwt]", "[secret_key]", "[bearer_token]", "[url_credential]",
}

// String returns the class's stable name, e.g. "email" or "secret_key".
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// Placeholder returns what Redact puts in place of a match: "[" + name + "]".
func (c Class) Placeholder() string {
	if c < numClasses {
		return placeholders[c]
	}
	return "[" + c.String() + "]"
}

// Valid reports whether c is one of the classes above.
func (c Class) Valid() bool { return c < numClasses }

// ErrUnknownClass is returned (wrapped) by ParseClass for a name it does not know.
var ErrUnknownClass = errors.New("pii: unknown class")

// ParseClass returns the class named s (as String spells it; ASCII case is
// ignored).
func ParseClass(s string) (Class, error) {
	for c, n := range classNames {
		if equalFold(s, n) {
			return Class(c), nil
		}
	}
	// The name is a policy key, not a property value, so quoting it is safe.
	return 0, errors.Join(ErrUnknownClass, errors.New("pii: no class named "+strconv.Quote(s)))
}

// MarshalText implements encoding.TextMarshaler.
func (c Class) MarshalText() ([]byte, error) {
	if !c.Valid() {
		return nil, errors.New("pii: invalid class " + strconv.Itoa(int(c)))
	}
	return []byte(classNames[c]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Class) UnmarshalText(b []byte) error {
	v, err := ParseClass(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Classes returns every class, in order. The slice is new on each call.
func Classes() []Class {
	out := make([]Class, numClasses)
	for i := range out {
		out[i] = Class(i)
	}
	return out
}

// classSet is a set of classes as a bit mask.
type classSet uint16

func (s classSet) has(c Class) bool { return s&(1<<c) != 0 }

func (s classSet) list() []Class {
	if s == 0 {
		return nil
	}
	var out []Class
	for c := Class(0); c < numClasses; c++ {
		if s.has(c) {
			out = append(out, c)
		}
	}
	return out
}

// equalFold reports whether a and b are equal ignoring ASCII case.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

// hasPrefixFold reports whether s begins with prefix, ignoring ASCII case.
// prefix must be lower-case.
func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lower(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
