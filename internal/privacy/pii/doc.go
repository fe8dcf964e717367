// Package pii finds personal data and secrets inside arbitrary string
// values: e-mail addresses, phone numbers, IPv4 and IPv6 addresses, payment
// card numbers, IBANs, JWTs, API and private keys, bearer credentials and
// credentials in URLs.
//
// The privacy stage runs a Scanner over every string of every event (names,
// property values, nested values) and then redacts, pseudonymises or drops
// per class as the project's policy says. The package is pure: no I/O, no
// logging, no state beyond constant tables, so a Scanner is safe for
// concurrent use and a value never leaves the call that scanned it.
//
// # Precision first
//
// Analytics values are full of digits and dotted tokens: ids, versions,
// prices, timestamps, UUIDs. A false positive destroys a harmless value, so
// each detector checks a format strictly (Luhn and issuer prefixes for
// cards, mod-97 and country lengths for IBANs, a decoded header for JWTs,
// net/netip for IPv6, fixed lengths and entropy for keys) and requires the
// match to stand alone: not joined to letters, digits or further dotted or
// dashed parts. The rules are documented beside each detector.
//
// # Decisions on ambiguous cases
//
//   - MAC addresses ("00:1a:2b:3c:4d:5e") are not matched. They are not a
//     valid IPv6 text form and not one of the classes; a MAC in an event
//     property is an identifier for the policy to name, not free text.
//   - Stripe publishable keys (pk_live_, pk_test_) are matched as
//     secret_key. They are meant to be public, but they name the merchant
//     account, carry no analytic value, and a key in an analytics property
//     is more often a paste of the wrong key than a deliberate publishable
//     one. Test-mode keys (sk_test_, rk_test_, pk_test_) count too.
//   - National phone numbers are matched only in phone-typical groupings
//     (parenthesised area code, North American 3-3-4, trunk-prefix numbers
//     starting with 0); an ungrouped digit run without '+' never is. The
//     cost is missed numbers written as bare digits, which the policy
//     catches by property name ("phone", "mobile").
//   - A bare user name in a URL ("https://alice@host") counts as a URL
//     credential, like "user:pass".
//   - Query parameters whose names are common words (code, state, key, sid,
//     auth, session) count only with a value of 8+ characters holding a
//     digit; names ending in "token", "secret" or "password" count like the
//     listed ones.
//   - "Bearer <token>" outside an Authorization header needs a token that
//     looks random (letter, digit, entropy); "Basic <b64>" must decode to
//     "user:password".
//   - Lower-case IBANs and bare "::" are not matched; "::1" is.
//
// # Overlaps
//
// Find reports matches in order and never overlapping. Of two overlapping
// candidates the longer wins; of two with the same extent the more specific
// or enclosing class wins, in this order: url_credential, bearer_token, jwt,
// secret_key, card, iban, email, ipv6, ipv4, phone. So "?token=eyJ…" is a
// URL credential, "Bearer eyJ…" a bearer token, and an e-mail address is
// never reported as a phone number inside it.
//
// # Placeholders
//
// Redact writes "[" + class + "]" ("[email]"). A placeholder never matches
// and never becomes part of a match, and Redact rescans its result until it
// is clean, so a redacted value scanned again yields nothing.
package pii
