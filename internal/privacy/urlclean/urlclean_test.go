package urlclean

import (
	"reflect"
	"strings"
	"testing"
)

const (
	F  = FragmentRemoved
	Q  = QueryRemoved
	U  = UserinfoRemoved
	P  = PathTemplated
	H  = ReducedToHost
	S  = ReducedToScheme
	UP = Unparseable
)

func TestClean(t *testing.T) {
	long := "https://example.com/search?utm_source=x&q=" + strings.Repeat("a", 10000) + "#" + strings.Repeat("b", 100)
	tests := []struct {
		name, in, want string
		ch             Change
	}{
		// The examples and the everyday cases.
		{"issue example", "https://app.example.com/keys/sk_abc123", "https://app.example.com/keys/:id", P},
		{"utm kept", "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring", 0},
		{"ref and source kept", "https://example.com/?ref=producthunt&source=hn", "https://example.com/?ref=producthunt&source=hn", 0},
		{"other params dropped", "https://example.com/p?utm_source=a&email=alice%40example.com&ref=b&token=xyz", "https://example.com/p?utm_source=a&ref=b", Q},
		{"all params dropped", "https://example.com/reset?token=abc&email=a@b.c", "https://example.com/reset", Q},
		{"fragment", "https://example.com/docs#section-2", "https://example.com/docs", F},
		{"oauth fragment", "https://example.com/cb#access_token=eyJhbGciOiJIUzI1NiJ9.e30.abc&state=1", "https://example.com/cb", F},
		{"userinfo", "https://alice:s3cret@example.com/x", "https://example.com/x", U},
		{"userinfo with @ inside", "https://alice@example.com:pw@example.com/", "https://example.com/", U},
		{"everything", "HTTPS://Bob:pw@WWW.Example.COM:8443/Orders/42/Items?utm_source=A&sid=9#frag", "https://www.example.com:8443/Orders/:id/Items?utm_source=A", F | Q | U | P},

		// Scheme and host.
		{"host lower-cased, path case kept", "http://EXAMPLE.com/CamelCase", "http://example.com/CamelCase", 0},
		{"port kept", "http://localhost:3000/app", "http://localhost:3000/app", 0},
		{"empty port dropped", "http://example.com:/a", "http://example.com/a", 0},
		{"bad port", "http://example.com:80a/", "", UP},
		{"long port", "http://example.com:123456/", "", UP},
		{"ipv6", "http://[2001:DB8::1]:8080/x?y=1", "http://[2001:db8::1]:8080/x", Q},
		{"ipv6 no port", "https://[::1]/", "https://[::1]/", 0},
		{"ipv6 unclosed", "https://[::1/x", "", UP},
		{"ipv6 junk after", "https://[::1]x/", "", UP},
		{"unicode host", "https://MÜNCHEN.example/Straße", "https://münchen.example/Straße", 0},
		{"punycode host", "https://xn--mnchen-3ya.example/", "https://xn--mnchen-3ya.example/", 0},
		{"extra slashes (as browsers)", "https:///path", "https://path", 0},
		{"only scheme", "https://", "", UP},
		{"host with space", "https://exa mple.com/", "", UP},
		{"missing slashes", "https:example.com/a", "https://example.com/a", 0},
		{"backslashes", "https:\\\\example.com\\orders\\42", "https://example.com\\orders\\:id", P},
		{"no path", "https://example.com", "https://example.com", 0},
		{"no path with query", "https://example.com?utm_source=x&a=1", "https://example.com?utm_source=x", Q},
		{"trailing slash kept", "https://example.com/docs/", "https://example.com/docs/", 0},
		{"double slash path kept", "https://example.com//evil.example/x", "https://example.com//evil.example/x", 0},

		// Relative references.
		{"relative path", "/orders/42?x=1#y", "/orders/:id", F | Q | P},
		{"relative query only (current_url_search)", "?utm_source=google&gclid=abc123", "?utm_source=google", Q},
		{"relative query dropped entirely", "?q=secret", "", Q},
		{"fragment only", "#top", "", F},
		{"scheme-relative", "//CDN.example.com/u/12345/avatar.png?sig=abc", "//cdn.example.com/u/:id/avatar.png", P | Q},
		{"scheme-relative userinfo", "//u:p@host.example/", "//host.example/", U},
		{"scheme-relative empty host", "///x", "", UP},
		{"relative word path", "docs/quickstart", "docs/quickstart", 0},
		{"relative email", "alice@example.com", ":id", P},
		{"host:port is not a scheme", "localhost:3000/users/7", "localhost:3000/users/:id", P},

		// Query details.
		{"empty query", "https://example.com/a?", "https://example.com/a", 0},
		{"empty pairs", "https://example.com/a?&&utm_source=x&&", "https://example.com/a?utm_source=x", 0},
		{"repeated params", "https://example.com/?utm_tag=a&x=1&utm_tag=b", "https://example.com/?utm_tag=a&utm_tag=b", Q},
		{"plus and %20 kept as sent", "https://example.com/?utm_campaign=spring+sale&utm_content=big%20banner", "https://example.com/?utm_campaign=spring+sale&utm_content=big%20banner", 0},
		{"encoded name", "https://example.com/?utm%5Fsource=x&%72ef=y", "https://example.com/?utm%5Fsource=x&%72ef=y", 0},
		{"case-insensitive names", "https://example.com/?UTM_Source=x&REF=y", "https://example.com/?UTM_Source=x&REF=y", 0},
		{"name without value", "https://example.com/?ref&debug", "https://example.com/?ref", Q},
		{"ref is exact", "https://example.com/?referrer=x&refx=y", "https://example.com/", Q},
		{"empty name dropped", "https://example.com/?=x", "https://example.com/", Q},
		{"utm_ prefix needs underscore", "https://example.com/?utmsource=x", "https://example.com/", Q},

		// Non-http schemes.
		{"mailto", "mailto:alice@example.com?subject=hi", "mailto:", S},
		{"javascript", "javascript:alert(document.cookie)", "javascript:", S},
		{"data", "data:text/html;base64,PHNjcmlwdD4=", "data:", S},
		{"file", "file:///Users/alice/secret.html", "file:", S},
		{"tel", "tel:+15551234567", "tel:", S},
		{"upper scheme", "MAILTO:", "mailto:", 0},
		{"android-app", "android-app://com.google.android.gm/", "android-app:", S},
		{"ws", "wss://example.com/socket?token=abc", "wss:", S},

		// Whitespace, garbage, size.
		{"empty", "", "", 0},
		{"spaces", "   \t\n", "", 0},
		{"surrounding whitespace", "  https://example.com/a \n", "https://example.com/a", 0},
		{"trailing space before dropped query", "https://example.com/1234 ?a=1", "https://example.com/:id", P | Q},
		{"garbage", "%%%", "%%%", 0},
		{"bad escape", "/a/%zz/%4", "/a/%zz/%4", 0},
		{"control bytes", "https://example.com/\x00/\xff", "https://example.com/\x00/\xff", 0},
		{"long url", long, "https://example.com/search?utm_source=x", F | Q},
		{"too long", "https://example.com/?utm_source=" + strings.Repeat("x", MaxLen), "", UP},
		{"not a url", "hello world", "hello world", 0},
		{"templated stays", "/keys/:id", "/keys/:id", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ch := Clean(tt.in, nil)
			if got != tt.want || ch != tt.ch {
				t.Errorf("Clean(%q)\n got %q %v\nwant %q %v", tt.in, got, ch.Reasons(), tt.want, tt.ch.Reasons())
			}
			if again, ch2 := Clean(got, nil); again != got || ch2 != 0 {
				t.Errorf("not a fixed point: Clean(%q) = %q %v", got, again, ch2.Reasons())
			}
		})
	}
}

func TestCleanOptions(t *testing.T) {
	in := "https://example.com/?utm_source=a&lang=de&gclid=x&page=2&Lang=fr"
	tests := []struct {
		name string
		o    *Options
		want string
		ch   Change
	}{
		{"nil options", nil, "https://example.com/?utm_source=a", Q},
		{"nil list", &Options{}, "https://example.com/?utm_source=a", Q},
		{"empty list keeps nothing", &Options{AllowParams: []string{}}, "https://example.com/", Q},
		{"custom exact", &Options{AllowParams: []string{"lang", "page"}}, "https://example.com/?lang=de&page=2&Lang=fr", Q},
		{"custom prefix", &Options{AllowParams: []string{"utm_*", "g*"}}, "https://example.com/?utm_source=a&gclid=x", Q},
		{"star keeps all", &Options{AllowParams: []string{"*"}}, in, 0},
	}
	for _, tt := range tests {
		got, ch := Clean(in, tt.o)
		if got != tt.want || ch != tt.ch {
			t.Errorf("%s: got %q %v, want %q %v", tt.name, got, ch.Reasons(), tt.want, tt.ch.Reasons())
		}
	}
}

func TestSegments(t *testing.T) {
	ids := []string{
		// numbers
		"42", "0", "2024", "1234567890123", "000123",
		// UUIDs, any version, with or without dashes
		"f47ac10b-58cc-4372-a567-0e02b2c3d479", "F47AC10B-58CC-1372-A567-0E02B2C3D479",
		"f47ac10b58cc4372a5670e02b2c3d479", "018f6b2e-7c1a-7b3e-9f00-1a2b3c4d5e6f",
		// hex
		"8f3a2b1c9d0e", "deadbeef0123456789", "5f4dcc3b5aa765d61d8327deb882cf99",
		// prefixed ids
		"sk_abc123", "cus_NffrFeUfNV2Hib", "cus_NffrFeUfNVaHib", "pi_3MtwBwLkdIwHu7ix28a3tqPa",
		"sk_live_51H8abcDEF", "user_12345", "key-8f3a9c2b", "item-a1b2c3",
		"sk-proj-Ab3dE5fG9hIj2kL4mN6o", "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
		// base64url / ULID / random
		"01ARZ3NDEKTSV4RRFFQ69G5FAV", "dQw4w9WgXcQ", "aB3dE5fG9h", "abc123def456ghi789",
		"aGVsbG8td29ybGQ_Zm9v-YmFy1", "Zm9vYmFyMTIzNDU2Nzg5MA==",
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
		"eyJ1c2VyIjoiYWxpY2UifQ",
		// personal data
		"alice@example.com", "alice%40example.com", "@alice", "+1 (555) 123-4567", "555-123-4567",
		"4111-1111-1111-1111", "192.168.1.10", "2001:db8::1", "%31%32%33",
		// ids inside a slug or file name
		"shoe-123456", "post-title-8f3a2b1c9d0e", "invoice_98765.pdf", "jsessionid=ABC123DEF456GHI789",
		" 1234 ",
	}
	words := []string{
		"pricing", "quickstart", "docs", "privacy-by-design", "getting-started-with-the-api",
		"v1", "v2", "v10", "api", "x86_64", "oauth2", "utf-8", "iphone-15-pro", "iPhone15Pro", "top-10-tips",
		"2024-05-01", "2024.05.01", "1.2.3", "1.2.3.4.5", "index.html", "favicon.ico", "robots.txt",
		"README.md", "wp-content", "h264-vs-h265", "covid19", "covid19vaccination2021", "windows10professional",
		"GettingStartedWithTheApi", "v1-to-v2-migration-guide", "top-10-tips-for-2024-travel", "1080p", "4k",
		"mp4", "web3", "b2b-saas", "Win10Pro", "get_started", "api_v2", "iphone-15pro", "covid-19vaccine",
		":id", "café", "日本語", "%E6%97%A5", "", " ", "a", "release-notes", "en-US", "ps5-slim", "s3",
		"intel-i7-13700k", "100-days-of-code", "user", "settings", "new",
	}
	for _, s := range ids {
		if !segmentIsID(s) {
			t.Errorf("segment %q: want :id", s)
		}
	}
	for _, s := range words {
		if segmentIsID(s) {
			t.Errorf("segment %q: want kept", s)
		}
	}
}

func TestReferrer(t *testing.T) {
	tests := []struct {
		in, want string
		ch       Change
	}{
		{"", "", 0},
		{"$direct", "$direct", 0},
		{"https://www.google.com/search?q=alice+smith", "www.google.com", H},
		{"https://www.google.com/", "www.google.com", H},
		{"https://www.google.com", "www.google.com", H},
		{"HTTP://User:Pw@News.YCombinator.com:443/item?id=1#c", "news.ycombinator.com", H | U},
		{"http://[2001:db8::1]:8080/x", "[2001:db8::1]", H},
		{"https://münchen.example/x", "münchen.example", H},
		{"//t.co/abc", "t.co", H},
		{"www.google.com", "www.google.com", 0},
		{"WWW.Google.COM", "www.google.com", 0},
		{"localhost", "localhost", 0},
		{"localhost:3000", "localhost", H},
		{"www.google.com/search?q=x", "www.google.com", H},
		{"android-app://com.google.android.gm/", "android-app://com.google.android.gm", H},
		{"android-app://com.google.android.gm", "android-app://com.google.android.gm", 0},
		{"ANDROID-APP://Com.Example", "android-app://com.example", 0},
		{"android-app:///x", "android-app:", S},
		{"mailto:alice@example.com", "mailto:", S},
		{"javascript:alert(1)", "javascript:", S},
		{"about:", "about:", 0},
		{"alice@example.com", "", UP},
		{"/relative/path", "", UP},
		{"?q=1", "", UP},
		{"https://", "", UP},
		{"hello world", "", UP},
		{"  https://example.com/x  ", "example.com", H},
		{"   ", "", 0},
		{"https://" + strings.Repeat("a", MaxLen), "", UP},
	}
	for _, tt := range tests {
		got, ch := Referrer(tt.in)
		if got != tt.want || ch != tt.ch {
			t.Errorf("Referrer(%q) = %q %v, want %q %v", tt.in, got, ch.Reasons(), tt.want, tt.ch.Reasons())
		}
		if again, _ := Referrer(got); again != got {
			t.Errorf("Referrer not idempotent: Referrer(%q) = %q", got, again)
		}
	}
}

func TestLooksLikeURL(t *testing.T) {
	yes := []string{"https://example.com", "http://example.com/a?b#c", "HTTPS://EXAMPLE.COM/", "https://[::1]:80/", "http://localhost:3000"}
	no := []string{"", "https://", "http:/example.com", "https:///x", "ftp://example.com", "example.com",
		"/path", "mailto:a@b.c", "https://example.com/a b", "see https://example.com", " https://example.com",
		"https://example.com\n", "https://@example.com", "javascript:alert(1)", "$direct",
		"https://example.com/" + strings.Repeat("a", MaxLen)}
	for _, s := range yes {
		if !LooksLikeURL(s) {
			t.Errorf("LooksLikeURL(%q) = false", s)
		}
	}
	for _, s := range no {
		if LooksLikeURL(s) {
			t.Errorf("LooksLikeURL(%.40q) = true", s)
		}
	}
}

func TestReasons(t *testing.T) {
	if got := Change(0).Reasons(); got != nil {
		t.Errorf("Reasons of 0 = %v", got)
	}
	all := FragmentRemoved | QueryRemoved | UserinfoRemoved | PathTemplated | ReducedToHost | ReducedToScheme | Unparseable
	want := []string{"fragment_removed", "query_removed", "userinfo_removed", "path_templated", "reduced_to_host", "reduced_to_scheme", "unparseable"}
	if got := all.Reasons(); !reflect.DeepEqual(got, want) {
		t.Errorf("Reasons = %v", got)
	}
	if got := (QueryRemoved | PathTemplated).Reasons(); !reflect.DeepEqual(got, []string{"query_removed", "path_templated"}) {
		t.Errorf("Reasons = %v", got)
	}
	if got := Change(0x80).Reasons(); len(got) != 0 {
		t.Errorf("unknown bit: %v", got)
	}
}

func TestCleanAllocs(t *testing.T) {
	unchanged := "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
	if n := testing.AllocsPerRun(100, func() { Clean(unchanged, nil) }); n != 0 {
		t.Errorf("unchanged URL: %v allocs, want 0", n)
	}
	changed := "https://www.example.com/orders/42?utm_source=newsletter&fbclid=IwAR2xyz#top"
	if n := testing.AllocsPerRun(100, func() { Clean(changed, nil) }); n > 1 {
		t.Errorf("changed URL: %v allocs, want <= 1", n)
	}
}
