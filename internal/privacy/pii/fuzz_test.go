package pii_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/privacy/pii"
)

// FuzzFind checks the scanner's contracts on arbitrary input: no panic;
// matches in bounds, non-empty, ordered and not overlapping; Find and
// AppendFind agree; Redact's result holds no match and no byte of it comes
// from a match.
func FuzzFind(f *testing.F) {
	for _, s := range mixpanelBrowserValues {
		f.Add(s)
	}
	for _, s := range dirtyEvent {
		f.Add(s)
	}
	for _, s := range []string{
		"", "::", "::1", "+1 (555) 123-4567", "(555) 123-4567", "020 7946 0958", "4111 1111 1111 1111",
		"DE89 3704 0044 0532 0130 00", jwtHS256, openAIProj, awsKey, ghp, slackBot, stripePK, googleKey, pemKey,
		"-----BEGIN PRIVATE KEY-----", "https://u:p@h/?token=x&sig=y#access_token=z", "Bearer abcdef0123456789abcdef",
		"Basic dXNlcm5hbWU6cGFzc3dvcmQ=", "jane@example.com" + awsKey, "a@b.co@c.de", "1.2.3.4.5.6.7.8",
		"[email]@example.com", "x[ipv4].1.2.3", "?token=[url_credential]",
	} {
		f.Add(s)
	}
	sc := pii.NewScanner()
	f.Fuzz(func(t *testing.T, s string) {
		ms := sc.Find(s)
		checkMatches(t, s, ms)
		buf := make([]pii.Match, 1, 4)
		app := sc.AppendFind(buf, s)
		if len(app) != len(ms)+1 {
			t.Fatalf("AppendFind found %d, Find %d", len(app)-1, len(ms))
		}
		for i, m := range ms {
			if app[i+1] != m {
				t.Fatalf("AppendFind[%d] = %v, Find[%d] = %v", i+1, app[i+1], i, m)
			}
		}
		red, classes := sc.Redact(s)
		if len(ms) == 0 {
			if red != s || classes != nil {
				t.Fatalf("Redact of a clean value changed it: %q, %v", red, classes)
			}
			return
		}
		if len(classes) == 0 {
			t.Fatalf("Redact(%q) found %v but reported no classes", s, ms)
		}
		if again := sc.Find(red); len(again) != 0 {
			t.Fatalf("Redact(%q) = %q, which still holds %v", s, red, again)
		}
		// What Redact kept of s is s minus the matched text: a value that
		// was replaced does not survive in it (unless it occurs twice).
		for _, m := range ms {
			v := s[m.Start:m.End]
			if len(v) >= 8 && strings.Count(s, v) == 1 && strings.Contains(red, v) {
				t.Fatalf("Redact(%q) = %q kept the %v %q", s, red, m.Class, v)
			}
		}
		if utf8.ValidString(s) && !utf8.ValidString(red) {
			t.Fatalf("Redact(%q) = %q broke UTF-8", s, red)
		}
	})
}

// pieces are real matches of every class and the placeholders; FuzzAdjacent
// glues arbitrary text to both sides of one, where boundary rules are
// decided.
var pieces = []string{
	"jane.doe@example.com", "+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "020 7946 0958",
	"203.0.113.7", "2001:db8::1", "::ffff:192.0.2.1", "4111 1111 1111 1111", "378282246310005",
	"DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", jwtHS256, openAIProj, skGeneric, anthropic,
	awsKey, ghp, ghPAT, slackBot, stripeSK, stripePK, googleKey, pemKey, "Bearer abcdef0123456789abcdef",
	"Basic dXNlcm5hbWU6cGFzc3dvcmQ=", "https://user:pass@example.com/", "?token=abc123&x=1",
	"[email]", "[phone]", "[ipv4]", "[ipv6]", "[card]", "[iban]", "[jwt]", "[secret_key]", "[bearer_token]", "[url_credential]",
}

// FuzzAdjacent checks FuzzFind's contracts on a + piece + b.
func FuzzAdjacent(f *testing.F) {
	for i := range pieces {
		f.Add("", uint8(i), "")
		f.Add("x", uint8(i), "y")
		f.Add("a@", uint8(i), ".com")
		f.Add("https://h/?token=", uint8(i), "&sig=1")
		f.Add("1", uint8(i), "1")
		f.Add("-", uint8(i), ".")
	}
	sc := pii.NewScanner()
	f.Fuzz(func(t *testing.T, a string, k uint8, b string) {
		s := a + pieces[int(k)%len(pieces)] + b
		checkMatches(t, s, sc.Find(s))
		red, _ := sc.Redact(s)
		if again := sc.Find(red); len(again) != 0 {
			t.Fatalf("Redact(%q) = %q, which still holds %v", s, red, again)
		}
	})
}

func checkMatches(t *testing.T, s string, ms []pii.Match) {
	t.Helper()
	prevEnd := 0
	for i, m := range ms {
		if !m.Class.Valid() {
			t.Fatalf("match %d: invalid class %d", i, m.Class)
		}
		if m.Start < prevEnd || m.Start >= m.End || m.End > len(s) {
			t.Fatalf("match %d %v out of order, empty or out of bounds (len %d, previous end %d) in %q", i, m, len(s), prevEnd, s)
		}
		prevEnd = m.End
	}
}

// TestLongInputs guards against quadratic scans: each input is 256 KiB of a
// pattern that makes detectors look far ahead or behind. Linear scans take
// milliseconds; a quadratic one takes minutes.
func TestLongInputs(t *testing.T) {
	sc := pii.NewScanner()
	for _, unit := range []string{
		"a", "1", "1 ", "1-", "1.", "+1 ", "(1) ", "a@", "@a.", "a.b@", ":", "::", "1:", "f:", "://", "://a@",
		"=", "?token=", "&a=", "eyJ", "eyJhbGciOiJIUzI1NiJ9.", "sk-", "sk-a", "AKIA", "ghp_", "xoxb-1",
		"-----BEGIN PRIVATE KEY-----", "Bearer ", "Bearer a", "DE89 ", "4111 ", "-", "ab-",
	} {
		s := strings.Repeat(unit, (256<<10)/len(unit))
		t0 := time.Now()
		ms := sc.Find(s)
		checkMatches(t, s, ms)
		_, _ = sc.Redact(s)
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("%q repeated: %v for 256 KiB", unit, d)
		}
	}
}
