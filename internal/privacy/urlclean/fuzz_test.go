package urlclean

import (
	"strings"
	"testing"
)

// Canaries appended to fuzz inputs: neither may survive Clean.
const (
	fragCanary = "zqfragcanary"
	userCanary = "zqusercanary"
)

func FuzzClean(f *testing.F) {
	for _, s := range []string{
		"", "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email",
		"HTTPS://Bob:pw@WWW.Example.COM:8443/Orders/42/Items?utm_source=A&sid=9#frag",
		"http://[2001:db8::1]:8080/x?y=1", "//cdn.example.com/u/12345", "/keys/sk_abc123?x=1",
		"?utm_source=google&gclid=abc", "mailto:alice@example.com", "javascript:alert(1)",
		"https://münchen.example/Straße", "localhost:3000/users/7", "https:\\\\x.com\\a\\42",
		"https://example.com/%31%32/a%40b", "$direct", "android-app://com.x/", "  https://x.com/1 ?a",
		"https://x.com/eyJhbGciOiJIUzI1NiJ9.e30.sig", "https://a@b@c/", "%%%", "\x00\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ch := Clean(in, nil)
		if again, ch2 := Clean(out, nil); again != out || ch2 != 0 {
			t.Fatalf("not a fixed point: Clean(%q) = %q, Clean of that = %q %v", in, out, again, ch2.Reasons())
		}
		if strings.Contains(out, "#") {
			t.Fatalf("Clean(%q) = %q keeps a fragment", in, out)
		}
		if ch&Unparseable != 0 && out != "" {
			t.Fatalf("Clean(%q) = %q but Unparseable", in, out)
		}
		if i := strings.Index(out, "//"); i >= 0 && (i == 0 || out[i-1] == ':') {
			if a := out[i+2 : i+2+authorityEnd(out[i+2:])]; strings.Contains(a, "@") {
				t.Fatalf("Clean(%q) = %q keeps userinfo", in, out)
			}
		}

		// A fragment never survives.
		withFrag := in + "#" + fragCanary
		if out, _ := Clean(withFrag, nil); strings.Contains(strings.ToLower(out), fragCanary) {
			t.Fatalf("Clean(%q) = %q keeps the fragment", withFrag, out)
		}
		// Userinfo never survives.
		if i := strings.Index(in, "://"); i >= 0 && !strings.Contains(strings.ToLower(in), userCanary) {
			withUser := in[:i+3] + userCanary + ":pw@" + in[i+3:]
			if out, _ := Clean(withUser, nil); strings.Contains(strings.ToLower(out), userCanary) {
				t.Fatalf("Clean(%q) = %q keeps the userinfo", withUser, out)
			}
			if out, _ := Referrer(withUser); strings.Contains(strings.ToLower(out), userCanary) {
				t.Fatalf("Referrer(%q) = %q keeps the userinfo", withUser, out)
			}
		}

		ref, rch := Referrer(in)
		if again, _ := Referrer(ref); again != ref {
			t.Fatalf("Referrer(%q) = %q, Referrer of that = %q", in, ref, again)
		}
		if rch&Unparseable != 0 && ref != "" {
			t.Fatalf("Referrer(%q) = %q but Unparseable", in, ref)
		}
		if ref != in && strings.ContainsAny(ref, "?#") {
			t.Fatalf("Referrer(%q) = %q keeps query or fragment", in, ref)
		}
		_ = ch.Reasons()
	})
}
