package pii_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/privacy/pii"
)

// A case scans in with every class and expects exactly the matches in want,
// each written "class:matched text", in order. An empty want means the
// value is clean.
type scanCase struct {
	name string
	in   string
	want []string
}

var all = pii.NewScanner()

func runCases(t *testing.T, cases []scanCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			got := describe(tc.in, all.Find(tc.in))
			if !slices.Equal(got, tc.want) {
				t.Errorf("Find(%q)\n got  %q\n want %q", tc.in, got, tc.want)
			}
		})
	}
}

func describe(s string, ms []pii.Match) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Class.String()+":"+s[m.Start:m.End])
	}
	return out
}

func w(class, text string) []string { return []string{class + ":" + text} }

// b64u is base64url without padding, as JWT segments are written.
func b64u(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func jwt(header, payload, sig string) string { return b64u(header) + "." + b64u(payload) + "." + sig }

// Fake credentials in the real formats. None of them is live.
const (
	jwtHS256   = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUiLCJpYXQiOjE1MTYyMzkwMjJ9._xC-1hsYgBds1ghxY5OokvQyx7eNWVQ4vnakJkS1pAW"
	openAIProj = "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"
	openAISvc  = "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"
	openAIAdm  = "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"
	openAIOld  = "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"
	skGeneric  = "sk-7tOtHWnsCGRlrwZbqcabUGJmGEp7CgQ0PBQFI14zGtSnovm1"
	anthropic  = "sk-ant-api03-rZSgqbjG3uhkWKFLf6xuI5aHUQPFeNBTxaQWk8JzFalHlsZfYcMMDktXP_tKsf2rcDkdfrUnW5gcF-Ha6ili8GjHEAD6_AA"
	awsKey     = "AKIABM50FQO1XO5CV0XZ"
	awsSTS     = "ASIAMAS6EN5MTMO3OQSG"
	ghp        = "ghp_2yeE6RsXcNOPmeMjvqPVStNKiaEdFrRgSnRF"
	gho        = "gho_sTHsDDDXh5Jmtf7EbsDe0G9Cryn687neLfjV"
	ghPAT      = "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"
	slackBot   = "xoxb-535606883106-7924708227654-tqVVPqzPptEJQzhkPkenG5ZF"
	stripeSK   = "sk_live_JoC6vWCBiJmpflvJfupxqZKm"
	stripeTest = "sk_test_4bV3AyAVHnyrvWdFrK9xiRGH"
	stripeRK   = "rk_live_OY32nfr5pyzPCB9t2039bicB"
	stripePK   = "pk_live_TW5ZE9LFaez7770H2DCpYgoj"
	googleKey  = "AIzatn6kfaqDeMqG3omjMyXHCabM6JOF8EFd0Nh"
	pemKey     = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9fake0key0body0not0real\n-----END RSA PRIVATE KEY-----"
)

func TestEmail(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"plain", "john.doe@example.com", w("email", "john.doe@example.com")},
		{"mailto", "mailto:jane@example.org", w("email", "jane@example.org")},
		{"angle_brackets", "Jane Doe <jane.doe@example.org>", w("email", "jane.doe@example.org")},
		{"sentence_period", "Write to support@example.com.", w("email", "support@example.com")},
		{"plus_addressing", "john+newsletter@example.com", w("email", "john+newsletter@example.com")},
		{"subdomains", "a.b@mail.eu.example.co.uk", w("email", "a.b@mail.eu.example.co.uk")},
		{"idn_letters", "jürgen@müller.de", w("email", "jürgen@müller.de")},
		{"idn_tld", "δοκιμή@παράδειγμα.δοκιμή", w("email", "δοκιμή@παράδειγμα.δοκιμή")},
		{"punycode_tld", "user@example.xn--p1ai", w("email", "user@example.xn--p1ai")},
		{"in_query", "https://x.example/?email=alice@example.com&x=1", w("email", "alice@example.com")},
		{"quoted_json", `{"who":"bob@example.io"}`, w("email", "bob@example.io")},
		{"upper_case", "BOB@EXAMPLE.COM", w("email", "BOB@EXAMPLE.COM")},
		{"ellipsis_before", "see...john@example.com", w("email", "john@example.com")},
		{"two", "bob@example.com,alice@example.net", []string{"email:bob@example.com", "email:alice@example.net"}},
		{"page_title", "Welcome back, jane.doe@example.org | Dashboard", w("email", "jane.doe@example.org")},
		// false positives
		{"localhost", "user@localhost", nil},
		{"retina_image", "logo@2x.png", nil},
		{"npm_version", "react@18.2.0", nil},
		{"handle", "follow @veil on social", nil},
		{"no_dot", "foo@bar", nil},
		{"one_letter_tld", "a@b.c", nil},
		{"local_ends_in_dot", "john.@example.com", nil},
		{"spaced_at", "email me @ example.com", nil},
		{"label_starts_with_dash", "x@-bad.com", nil},
		{"numeric_tld", "name@example.c0m", nil},
		{"ip_domain", "user@192.168.1.1", w("ipv4", "192.168.1.1")},
		{"url_userinfo", "https://user@example.com/", w("url_credential", "user")},
		{"css_at_rule", "@media (max-width: 600px)", nil},
		{"protocol_relative", "//jane@example.com", w("email", "jane@example.com")},
	})
}

func TestPhone(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"e164_nanp_parens", "+1 (555) 123-4567", w("phone", "+1 (555) 123-4567")},
		{"e164_uk_spaced", "+44 20 7946 0958", w("phone", "+44 20 7946 0958")},
		{"e164_compact", "+442079460958", w("phone", "+442079460958")},
		{"e164_dashes", "+49-30-1234567", w("phone", "+49-30-1234567")},
		{"e164_dots", "+1.555.123.4567", w("phone", "+1.555.123.4567")},
		{"e164_fr", "Portable: +33 6 12 34 56 78", w("phone", "+33 6 12 34 56 78")},
		{"e164_trunk_zero", "+44 (0)20 7946 0958", w("phone", "+44 (0)20 7946 0958")},
		{"tel_uri", "tel:+15551234567", w("phone", "+15551234567")},
		{"label_colon", "Tel:555-123-4567", w("phone", "555-123-4567")},
		{"nanp_parens", "(555) 123-4567", w("phone", "(555) 123-4567")},
		{"nanp_dashes", "555-123-4567", w("phone", "555-123-4567")},
		{"nanp_dots", "555.123.4567", w("phone", "555.123.4567")},
		{"nanp_spaces_in_text", "Call me at 555 123 4567 tomorrow", w("phone", "555 123 4567")},
		{"nanp_one_prefix", "1-800-555-0199", w("phone", "1-800-555-0199")},
		{"uk_national", "020 7946 0958", w("phone", "020 7946 0958")},
		{"uk_parens", "(020) 7946 0958", w("phone", "(020) 7946 0958")},
		{"fr_national", "06 12 34 56 78", w("phone", "06 12 34 56 78")},
		{"fr_national_dots", "06.12.34.56.78", w("phone", "06.12.34.56.78")},
		{"de_national", "030-12345678", w("phone", "030-12345678")},
		{"intl_00_prefix", "0044 20 7946 0958", w("phone", "0044 20 7946 0958")},
		// false positives
		{"isbn13", "978-3-16-148410-0", nil},
		{"isbn10", "ISBN 0-306-40615-2", nil},
		{"isbn13_label", "ISBN-13: 978-0-306-40615-7", nil},
		{"date", "2026-11-23", nil},
		{"date_time", "2026-11-23 10:15:30", nil},
		{"date_dotted", "01.02.2026", nil},
		{"version", "1.2.3", nil},
		{"time", "12:30:45", nil},
		{"plain_run", "5551234567", nil},
		{"order_number", "Order 123456789012", nil},
		{"uuid", "123e4567-e89b-12d3-a456-426614174000", nil},
		{"ip", "192.168.100.200", w("ipv4", "192.168.100.200")},
		{"price", "$1,299.00", nil},
		{"price_spaced", "1 299,00 €", nil},
		{"too_short_intl", "+123456", nil},
		{"float_time", "1795376173.909", nil},
		{"area_code_1", "123-456-7890", nil},
		{"mixed_separators", "555-123.4567", nil},
		{"semver_build", "1.0.0+20130313144700", nil},
		{"tz_offset", "2026-11-23T10:15:30+01:00", nil},
		{"local_seven", "555-1234", nil},
		{"joined_to_word", "id555-123-4567", nil},
	})
}

func TestIPv4(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"plain", "192.168.1.1", w("ipv4", "192.168.1.1")},
		{"private", "10.0.0.1", w("ipv4", "10.0.0.1")},
		{"param", "ip=203.0.113.7", w("ipv4", "203.0.113.7")},
		{"url_host", "http://198.51.100.23:8080/path", w("ipv4", "198.51.100.23")},
		{"two", "client 8.8.8.8, proxy 1.1.1.1", []string{"ipv4:8.8.8.8", "ipv4:1.1.1.1"}},
		{"parenthesised", "(203.0.113.9)", w("ipv4", "203.0.113.9")},
		{"broadcast", "255.255.255.255", w("ipv4", "255.255.255.255")},
		{"zeros", "0.0.0.0", w("ipv4", "0.0.0.0")},
		{"sentence_end", "addr: 172.16.0.1.", w("ipv4", "172.16.0.1")},
		{"cidr", "x-forwarded-for: 203.0.113.7/24", w("ipv4", "203.0.113.7")},
		{"bare_quad", "1.2.3.4", w("ipv4", "1.2.3.4")},
		{"label_colon", "IP:198.51.100.4", w("ipv4", "198.51.100.4")},
		{"forwarded_list", "1.2.3.4,5.6.7.8", []string{"ipv4:1.2.3.4", "ipv4:5.6.7.8"}},
		// false positives
		{"v_prefix", "v1.2.3.4", nil},
		{"browser_version", "Chrome/120.0.6099.109", nil},
		{"slash_before", "Foo/1.2.3.4", nil},
		{"path_segment", "/1.2.3.4", nil},
		{"five_groups", "1.2.3.4.5", nil},
		{"octet_too_big", "256.1.1.1", nil},
		{"leading_zeros", "01.02.03.04", nil},
		{"version_word", "version 1.2.3.4", nil},
		{"ver_param", "ver=1.2.3.4", nil},
		{"build_word", "Build: 10.0.1.2", nil},
		{"prerelease", "1.2.3.4-beta", nil},
		{"three_groups", "192.168.1", nil},
		{"user_agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36", nil},
		{"hostname", "1.2.3.4.nip.io", nil},
		{"underscore", "ip_1.2.3.4", nil},
		{"time_before", "12:1.2.3.4", nil},
		{"ip_dash_name", "ip-10.0.0.1", nil},
	})
}

func TestIPv6(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"compressed", "2001:db8::1", w("ipv6", "2001:db8::1")},
		{"full", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", w("ipv6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334")},
		{"ipv4_mapped", "::ffff:192.0.2.128", w("ipv6", "::ffff:192.0.2.128")},
		{"bracketed_port", "[2001:db8::8]:443", w("ipv6", "2001:db8::8")},
		{"link_local", "fe80::1ff:fe23:4567:890a", w("ipv6", "fe80::1ff:fe23:4567:890a")},
		{"loopback", "::1", w("ipv6", "::1")},
		{"label_colon", "ip:2001:db8::42", w("ipv6", "2001:db8::42")},
		{"sentence_end", "addr 2001:db8:0:0:1:0:0:1.", w("ipv6", "2001:db8:0:0:1:0:0:1")},
		{"url_host", "http://[2001:db8::7]/x", w("ipv6", "2001:db8::7")},
		{"upper_case", "2001:DB8::ABCD", w("ipv6", "2001:DB8::ABCD")},
		// false positives
		{"double_colon_only", "::", nil},
		{"time", "12:30:45", nil},
		{"mac", "00:1a:2b:3c:4d:5e", nil},
		{"mac_upper", "00:1A:2B:3C:4D:5E", nil},
		{"ratio", "16:9", nil},
		{"letters_ratio", "a:b", nil},
		{"cpp_scope", "std::vector", nil},
		{"ruby_scope", "Foo::bar", nil},
		{"triple_colon", "2001:db8:::1", nil},
		{"nine_groups", "1:2:3:4:5:6:7:8:9", nil},
		{"short_time", "at 12:30 today", nil},
		{"iso_timestamp", "2026-11-23T12:30:45Z", nil},
		{"url_scheme", "https://example.com:8443/", nil},
	})
}

func TestCard(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"visa", "4111111111111111", w("card", "4111111111111111")},
		{"visa_spaced", "card 4111 1111 1111 1111 exp 12/29", w("card", "4111 1111 1111 1111")},
		{"visa_dashed", "4111-1111-1111-1111", w("card", "4111-1111-1111-1111")},
		{"visa_13", "4222222222222", w("card", "4222222222222")},
		{"mastercard", "5555555555554444", w("card", "5555555555554444")},
		{"mastercard_2series", "2221000000000009", w("card", "2221000000000009")},
		{"mastercard_sentence", "card: 5105 1051 0510 5100.", w("card", "5105 1051 0510 5100")},
		{"amex_grouped", "3782 822463 10005", w("card", "3782 822463 10005")},
		{"amex", "371449635398431", w("card", "371449635398431")},
		{"discover", "6011111111111117", w("card", "6011111111111117")},
		{"jcb", "3530111333300000", w("card", "3530111333300000")},
		{"diners", "30569309025904", w("card", "30569309025904")},
		{"diners_38", "38520000023237", w("card", "38520000023237")},
		{"unionpay", "6200000000000005", w("card", "6200000000000005")},
		{"in_json", `{"cc":"4012888888881881"}`, w("card", "4012888888881881")},
		// false positives
		{"luhn_fails", "4111111111111112", nil},
		{"ms_timestamp", "1795376173909", nil},
		{"uuid_digits", "41111111-1111-1111-1111-111111111111", nil},
		{"no_issuer", "9999999999999995", nil},
		{"order_id_16", "1234567812345678", nil},
		{"letters_before", "ab4111111111111111", nil},
		{"letters_after", "4111111111111111cd", nil},
		{"twenty_digits", "4111 1111 1111 1111 1111", nil},
		{"fraction", "0.4111111111111111", nil},
		{"bad_grouping", "4111 11111111 1111", nil},
		{"dash_suffix", "5555555555554444-2", nil},
		{"amex_wrong_length", "3782822463100056", nil},
		{"mixed_separators", "4111 1111-1111 1111", nil},
		{"hex_token", "4111111111111111abcdef", nil},
	})
}

func TestIBAN(t *testing.T) {
	valid := []string{
		"DE89 3704 0044 0532 0130 00", "GB29 NWBK 6016 1331 9268 19", "GB82 WEST 1234 5698 7654 32",
		"FR14 2004 1010 0505 0001 3M02 606", "NL91 ABNA 0417 1643 00", "ES91 2100 0418 4502 0005 1332",
		"IT60 X054 2811 1010 0000 0123 456", "CH93 0076 2011 6238 5295 7", "BE68 5390 0754 7034",
		"AT61 1904 3002 3457 3201", "PL61 1090 1014 0000 0712 1981 2874", "SE45 5000 0000 0583 9825 7466",
		"NO93 8601 1117 947", "DK50 0040 0440 1162 43", "FI21 1234 5600 0007 85",
		"IE29 AIBK 9311 5212 3456 78", "PT50 0002 0123 1234 5678 9015 4", "LU28 0019 4006 4475 0000",
	}
	var cases []scanCase
	for _, v := range valid {
		compact := strings.ReplaceAll(v, " ", "")
		cases = append(cases,
			scanCase{v[:4] + "_grouped", "IBAN: " + v + ".", w("iban", v)},
			scanCase{v[:4] + "_compact", compact, w("iban", compact)},
		)
	}
	cases = append(cases, []scanCase{
		{"bad_checksum", "DE89370400440532013001", nil},
		{"unknown_country", "XX89370400440532013000", nil},
		{"random_code", "ABCD1234EFGH5678", nil},
		{"too_short", "DE8937040044053201300", nil},
		{"too_long", "DE893704004405320130000", nil},
		{"lower_case", "de89370400440532013000", nil},
		{"sku", "SKU DE12 ABCD", nil},
		{"trailing_letter", "GB82WEST12345698765432X", nil},
		{"check_digits_00", "DE00370400440532013000", nil},
		{"bad_grouping", "DE89 37040044 0532 0130 00", nil},
		{"prefixed", "XDE89370400440532013000", nil},
	}...)
	runCases(t, cases)
}

func TestJWT(t *testing.T) {
	rs := jwt(`{"alg":"RS256","kid":"k1"}`, `{"sub":"42"}`, "TN3lg8zV5yPU8d0FZfWe7ihGyiRUIQfHOJMaidDn87XG3_q_xbMtEPO6UkzYuF0ie9Pu2njHkAm1_5wDr16EpL")
	none := jwt(`{"alg":"none"}`, `{"sub":"x"}`, "")
	padded := jwtHS256 + "=="
	runCases(t, []scanCase{
		// true positives
		{"hs256", jwtHS256, w("jwt", jwtHS256)},
		{"rs256", rs, w("jwt", rs)},
		{"alg_none", none, w("jwt", none)},
		{"in_text", "token " + jwtHS256 + " expired", w("jwt", jwtHS256)},
		{"quoted", `"` + jwtHS256 + `"`, w("jwt", jwtHS256)},
		{"cookie", "session=abc; jwt=" + jwtHS256 + "; path=/", w("jwt", jwtHS256)},
		{"padded_signature", padded, w("jwt", padded)},
		{"spaced_header", jwt(`{"alg" : "ES256" }`, `{"a":1}`, "sig_-0"), w("jwt", jwt(`{"alg" : "ES256" }`, `{"a":1}`, "sig_-0"))},
		{"sentence_end", "It was " + jwtHS256 + ".", w("jwt", jwtHS256)},
		// false positives
		{"no_alg", jwt(`{"typ":"JWT"}`, `{"sub":"42"}`, "LJIVGHz4FxFEtKyPiYGFDm7ena8D5VfLDpgyyjVw5Ha"), nil},
		{"not_object", jwt(`["alg","x"]`, `{"sub":"42"}`, "nSBeVRsfAGeAbP0VxNjAe"), nil},
		{"header_not_eyJ", jwt(`{ "alg" : "RS256" }`, `{"sub":"42"}`, "TN3lg8zV5yPU8d0FZfWe7ihGyiRU"), nil},
		{"two_segments", b64u(`{"alg":"HS256"}`) + "." + b64u(`{"sub":"42"}`), nil},
		{"payload_not_eyJ", b64u(`{"alg":"HS256"}`) + ".abcdefghijklmnop.sig", nil},
		{"prefixed", "x" + jwtHS256, nil},
		{"bad_base64", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9!.eyJzdWIiOiIxIn0.sig", nil},
		{"just_eyJ", "eyJ is how JSON starts in base64", nil},
		{"jwe", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.zYZAa3u2olZU6uqbgsYlVvsSKuvinX-zMqf9OgXl.uCZz8xBfZuXTptFy.fePpX6N1NF2XV54wca-7E56w8ZniqT.3Ul4ffqkOkgWrdioyq-KvC", nil},
		{"four_segments", jwtHS256 + ".more", nil},
	})
}

func TestSecretKey(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"openai_project", openAIProj, w("secret_key", openAIProj)},
		{"openai_service_account", openAISvc, w("secret_key", openAISvc)},
		{"openai_admin", openAIAdm, w("secret_key", openAIAdm)},
		{"openai_legacy", "OPENAI_API_KEY=" + openAIOld, w("secret_key", openAIOld)},
		{"sk_generic_high_entropy", skGeneric, w("secret_key", skGeneric)},
		{"anthropic", "key: " + anthropic, w("secret_key", anthropic)},
		{"aws_access_key", "aws " + awsKey + " ok", w("secret_key", awsKey)},
		{"aws_sts_key", awsSTS, w("secret_key", awsSTS)},
		{"github_pat_classic", ghp, w("secret_key", ghp)},
		{"github_oauth", gho, w("secret_key", gho)},
		{"github_fine_grained", ghPAT, w("secret_key", ghPAT)},
		{"slack_bot", slackBot, w("secret_key", slackBot)},
		{"stripe_live", stripeSK, w("secret_key", stripeSK)},
		{"stripe_test", stripeTest, w("secret_key", stripeTest)},
		{"stripe_restricted", stripeRK, w("secret_key", stripeRK)},
		{"stripe_publishable", stripePK, w("secret_key", stripePK)},
		{"google_api", googleKey, w("secret_key", googleKey)},
		{"pem_private_key", "key=" + pemKey + "\nrest", w("secret_key", pemKey)},
		{"pem_unterminated", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk", w("secret_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk")},
		{"in_json", `{"k":"` + ghp + `"}`, w("secret_key", ghp)},
		// false positives
		{"task_id", "task-123", nil},
		{"desk_lamp", "desk-lamp", nil},
		{"sk_in_word", "mask-7tOtHWnsCGRlrwZbqcabUGJmGEp7CgQ0PBQFI14zGtSnovm1", nil},
		{"sk_short", "sk-abc123", nil},
		{"sk_words", "sk-this-is-not-a-real-key-at-all", nil},
		{"sk_slug", "sk-summer-sale-2026-landing-page", nil},
		{"ghp_short", "ghp_abc123", nil},
		{"ghp_too_long", ghp + "X", nil},
		{"aws_example", "AKIAIOSFODNN7EXAMPLE", nil},
		{"aws_short", "AKIA1234", nil},
		{"aws_low_entropy", "AKIAAAAAAAAAAAAAAAAA", nil},
		{"aws_lower", "AKIAbm50fqo1xo5cv0xz", nil},
		{"stripe_short", "sk_live_abc", nil},
		{"slack_short", "xoxb-short", nil},
		{"google_short", googleKey[:len(googleKey)-1], nil},
		{"public_key", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkq\n-----END PUBLIC KEY-----", nil},
		{"certificate", "-----BEGIN CERTIFICATE-----\nMIIBIjANBgkq\n-----END CERTIFICATE-----", nil},
		{"css_class", "btn-sk-primary-large-button-x", nil},
	})
}

func TestBearerToken(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"authorization_header", "Authorization: Bearer abcdef0123456789abcdef", w("bearer_token", "abcdef0123456789abcdef")},
		{"authorization_no_digit", "authorization: bearer some.opaque-token_value~x", w("bearer_token", "some.opaque-token_value~x")},
		{"random_outside_header", "Bearer 3f9a8b7c6d5e4f3a2b1c", w("bearer_token", "3f9a8b7c6d5e4f3a2b1c")},
		{"basic", "Authorization: Basic dXNlcm5hbWU6cGFzc3dvcmQ=", w("bearer_token", "dXNlcm5hbWU6cGFzc3dvcmQ=")},
		{"basic_outside_header", "basic YWxpY2U6czNjcjN0LXBhc3M=", w("bearer_token", "YWxpY2U6czNjcjN0LXBhc3M=")},
		{"upper_case", "BEARER ABCdef123456GHIjkl789", w("bearer_token", "ABCdef123456GHIjkl789")},
		{"tab", "Bearer\tQm9keTEyMzQ1Njc4OTBhYmNk", w("bearer_token", "Qm9keTEyMzQ1Njc4OTBhYmNk")},
		{"json_header", `{"Authorization":"Bearer abcDEF123456ghiJKL789"}`, w("bearer_token", "abcDEF123456ghiJKL789")},
		{"slashes_plus", "Bearer a1b2c3/d4e5f6+g7h8i9==", w("bearer_token", "a1b2c3/d4e5f6+g7h8i9==")},
		// false positives
		{"english", "Bearer of bad news", nil},
		{"short", "Bearer short123", nil},
		{"basic_plan", "Basic plan upgrade", nil},
		{"basic_long_word", "Basic internationalization", nil},
		{"basic_no_colon", "Basic dXNlcm5hbWVvbmx5b25lZm9v", nil},
		{"bearer_long_words", "Bearer internationalization-guidelines", nil},
		{"joined_word", "Bearered 1234567890abcdefgh", nil},
		{"no_space", "Bearer:abcdef0123456789abcdef", nil},
		{"prefixed", "xBearer abcdef0123456789abcdef", nil},
	})
}

func TestURLCredential(t *testing.T) {
	runCases(t, []scanCase{
		// true positives
		{"userinfo", "https://user:pass@example.com/x", w("url_credential", "user:pass")},
		{"userinfo_user_only", "ftp://alice@files.example.com", w("url_credential", "alice")},
		{"userinfo_at_in_password", "https://bob:p@ss@example.com/", w("url_credential", "bob:p@ss")},
		{"token", "https://example.com/reset?token=abc123&utm_source=mail", w("url_credential", "abc123")},
		{"access_token_fragment", "https://app.example.com/cb#access_token=ya29.a0Af&token_type=Bearer", w("url_credential", "ya29.a0Af")},
		{"aws_presigned", "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIDEXAMPLE%2F20260101&X-Amz-Signature=fe5f80f77d5fa3be", []string{"url_credential:AKIDEXAMPLE%2F20260101", "url_credential:fe5f80f77d5fa3be"}},
		{"api_key_mixed_case", "/v1/data?API_KEY=hello", w("url_credential", "hello")},
		{"password", "?user=bob&password=hunter2", w("url_credential", "hunter2")},
		{"html_escaped", "a.html?x=1&amp;sig=Zm9vYmFy", w("url_credential", "Zm9vYmFy")},
		{"client_secret", "?client_id=app&client_secret=s3cr3t", w("url_credential", "s3cr3t")},
		{"oauth_code", "/callback?code=4/0AY0e-g7abcXYZ&scope=email", w("url_credential", "4/0AY0e-g7abcXYZ")},
		{"oauth_state", "/callback?state=af0ifjsldkj8", w("url_credential", "af0ifjsldkj8")},
		{"suffix_token", "?csrf_token=deadbeef", w("url_credential", "deadbeef")},
		{"bare_query", "token=abc&x=1", w("url_credential", "abc")},
		{"goog_signature", "?X-Goog-Signature=0a1b2c3d", w("url_credential", "0a1b2c3d")},
		{"sentence_punct", "Open https://x.example/?sid=ab12cd34ef56. Then", w("url_credential", "ab12cd34ef56")},
		// false positives
		{"state_word", "https://shop.example/?state=CA", nil},
		{"code_word", "https://docs.example/?code=en", nil},
		{"key_word", "https://example.com/list?key=sort", nil},
		{"session_short", "?session=abc", nil},
		{"utm", "https://example.com/?utm_source=newsletter&utm_medium=email", nil},
		{"no_query", "https://example.com/path/to/page", nil},
		{"empty_value", "https://example.com/?token=&x=1", nil},
		{"word_before", "a mytoken=abc", nil},
		{"plain_params", "x=1&y=2", nil},
		{"at_in_path", "https://example.com/@user", nil},
		{"keyboard", "?keyboard=qwerty", nil},
		{"tokens_word", "?tokenizer=bpe", nil},
		{"text_equals", "password = hunter2", nil},
	})
}

// TestOverlaps checks which match survives when detectors overlap.
func TestOverlaps(t *testing.T) {
	runCases(t, []scanCase{
		{"jwt_in_token_param", "https://app.example/cb?id_token=" + jwtHS256, w("url_credential", jwtHS256)},
		{"jwt_in_bearer", "Authorization: Bearer " + jwtHS256, w("bearer_token", jwtHS256)},
		{"key_in_api_key_param", "https://api.example/v1?api_key=" + stripeSK, w("url_credential", stripeSK)},
		{"key_in_bearer", "Authorization: Bearer " + openAIProj, w("bearer_token", openAIProj)},
		{"email_in_userinfo", "https://john@example.com/", w("url_credential", "john")},
		{"email_in_userinfo_password", "https://user:pass@example.com/", w("url_credential", "user:pass")},
		{"phone_inside_email", "+15551234567@s.example.net", w("email", "+15551234567@s.example.net")},
		{"ipv4_inside_ipv6", "::ffff:192.0.2.1", w("ipv6", "::ffff:192.0.2.1")},
		{"credentials_and_ip_host", "http://admin:secret@192.168.0.1/", []string{"url_credential:admin:secret", "ipv4:192.168.0.1"}},
		{"email_beside_phone", "jane@example.com +44 20 7946 0958", []string{"email:jane@example.com", "phone:+44 20 7946 0958"}},
		{"card_in_token_param", "?token=4111111111111111", w("url_credential", "4111111111111111")},
		{"email_value_not_param", "?email=jane@example.com", w("email", "jane@example.com")},
	})
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		classes        []pii.Class
	}{
		{"clean", "Pricing | Example", "Pricing | Example", nil},
		{"email", "Contact: jane@example.com.", "Contact: [email].", []pii.Class{pii.Email}},
		{"token_param", "https://x.example/r?token=abc123&utm_source=m", "https://x.example/r?token=[url_credential]&utm_source=m", []pii.Class{pii.URLCredential}},
		{"userinfo", "https://user:pass@example.com/", "https://[url_credential]@example.com/", []pii.Class{pii.URLCredential}},
		{"bearer", "Authorization: Bearer " + jwtHS256, "Authorization: Bearer [bearer_token]", []pii.Class{pii.BearerToken}},
		{"mixed", "jane@example.com from 203.0.113.7 paid 4111 1111 1111 1111", "[email] from [ipv4] paid [card]", []pii.Class{pii.Email, pii.IPv4, pii.Card}},
		{"iban_phone", "IBAN DE89 3704 0044 0532 0130 00, tel +49 30 1234567", "IBAN [iban], tel [phone]", []pii.Class{pii.Phone, pii.IBAN}},
		{"key", "key " + awsKey, "key [secret_key]", []pii.Class{pii.SecretKey}},
		{"ipv6", "from 2001:db8::1", "from [ipv6]", []pii.Class{pii.IPv6}},
		{"jwt", jwtHS256, "[jwt]", []pii.Class{pii.JWT}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, classes := all.Redact(tc.in)
			if got != tc.want || !slices.Equal(classes, tc.classes) {
				t.Errorf("Redact(%q) = %q, %v; want %q, %v", tc.in, got, classes, tc.want, tc.classes)
			}
			if again := all.Find(got); len(again) != 0 {
				t.Errorf("Find(Redact(%q)) = %v, want none", tc.in, again)
			}
		})
	}
}

func TestPlaceholdersDoNotMatch(t *testing.T) {
	var b strings.Builder
	for _, c := range pii.Classes() {
		p := c.Placeholder()
		if m := all.Find(p); len(m) != 0 {
			t.Errorf("Find(%q) = %v", p, m)
		}
		b.WriteString(p)
		b.WriteString(" ")
	}
	joined := b.String()
	for _, s := range []string{joined, strings.ReplaceAll(joined, " ", ""), strings.ReplaceAll(joined, " ", "."),
		strings.ReplaceAll(joined, " ", "@"), strings.ReplaceAll(joined, " ", ":"), strings.ReplaceAll(joined, " ", "-"),
		"https://[url_credential]@example.com/?token=[url_credential]", "Bearer [bearer_token]"} {
		if m := all.Find(s); len(m) != 0 {
			t.Errorf("Find(%q) = %v", s, describe(s, m))
		}
	}
}

// mixpanelBrowserValues are string values of events as mixpanel-browser
// sends them: none holds personal data.
var mixpanelBrowserValues = []string{
	"$mp_web_page_view",
	"Mac OS X",
	"Chrome",
	"https://shop.example.com/products/blue-widget?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale_2026&utm_content=hero-1",
	"120.0.6099.109",
	"https://www.google.com/",
	"www.google.com",
	"$direct",
	"google",
	"$device:18f3c2a6b1e2a4-0f1e2d3c4b5a69-4c2d6e1f-1fa400-18f3c2a6b1e2a4",
	"18f3c2a6b1e2a4-0f1e2d3c4b5a69-4c2d6e1f-1fa400-18f3c2a6b1e2a4",
	"2f6c4b1d9e8a7f3c5b0d1e2a3f4c5b6d",
	"web",
	"2.55.1",
	"k3x9q2m8v7b1n4z6",
	"1795376173.909",
	"1795376173909",
	"Blue Widget – Example Shop",
	"/products/blue-widget",
	"Europe/Berlin",
	"en-US",
	"1f0e2d3c-4b5a-4697-8877-66554433aa11",
	"0190b9e2-7c3d-7a41-9d2e-3f4a5b6c7d8e",
	"api-js.mixpanel.com",
	"Order #1234567 confirmed",
	"Version 1.2.3 release notes",
	"Price: $1,299.00",
	"2026-11-23T10:15:30.123Z",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"https://docs.example.com/guide/getting-started#install",
	"1920x1080",
	"12.345",
	"false",
	"Button Click: sk-pricing-cta",
	"ghp_",
	"https://example.com/blog/2026/11/23/release-1.2.3",
	"item_4111",
	"SKU-AB12-3456-CD",
	"v2.4.1-rc.1",
	"#/settings/profile",
	"Android 14; Pixel 8 Build/UQ1A.240105.004",
	"iPhone OS 17_4_1",
	"checkout_step_2",
	"16:9",
	"utm_source=google&utm_medium=cpc&gclid=Cj0KCQiA",
}

func TestMixpanelBrowserValuesAreClean(t *testing.T) {
	for _, v := range mixpanelBrowserValues {
		if m := all.Find(v); len(m) != 0 {
			t.Errorf("Find(%q) = %q, want none", v, describe(v, m))
		}
	}
}

func TestScannerSubset(t *testing.T) {
	s := "jane@example.com 203.0.113.7 " + awsKey
	sc := pii.NewScanner(pii.Email, pii.SecretKey)
	got := describe(s, sc.Find(s))
	want := []string{"email:jane@example.com", "secret_key:" + awsKey}
	if !slices.Equal(got, want) {
		t.Errorf("Find = %q, want %q", got, want)
	}
	if got := sc.Classes(); !slices.Equal(got, []pii.Class{pii.Email, pii.SecretKey}) {
		t.Errorf("Classes = %v", got)
	}
	var zero pii.Scanner
	if m := zero.Find(s); m != nil {
		t.Errorf("zero Scanner found %v", m)
	}
	if got := len(pii.NewScanner().Classes()); got != len(pii.Classes()) {
		t.Errorf("NewScanner() looks for %d classes, want all %d", got, len(pii.Classes()))
	}
}

func TestAppendFind(t *testing.T) {
	s := "a jane@example.com b 203.0.113.7"
	dst := []pii.Match{{Class: pii.Card, Start: 1, End: 2}}
	dst = all.AppendFind(dst, s)
	if len(dst) != 3 || dst[0].Class != pii.Card || dst[1].Class != pii.Email || dst[2].Class != pii.IPv4 {
		t.Fatalf("AppendFind = %v", dst)
	}
	buf := make([]pii.Match, 0, 8)
	if n := testing.AllocsPerRun(100, func() { buf = all.AppendFind(buf[:0], s) }); n != 0 {
		t.Errorf("AppendFind allocates %v times per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = all.Redact("Pricing | Example 1.2.3") }); n != 0 {
		t.Errorf("Redact of a clean value allocates %v times per call", n)
	}
}

func TestClassNames(t *testing.T) {
	want := []string{"email", "phone", "ipv4", "ipv6", "card", "iban", "jwt", "secret_key", "bearer_token", "url_credential"}
	cs := pii.Classes()
	if len(cs) != len(want) {
		t.Fatalf("Classes() has %d entries, want %d", len(cs), len(want))
	}
	for i, c := range cs {
		if c.String() != want[i] {
			t.Errorf("Classes()[%d].String() = %q, want %q", i, c, want[i])
		}
		if p := c.Placeholder(); p != "["+want[i]+"]" {
			t.Errorf("%v.Placeholder() = %q", c, p)
		}
		for _, name := range []string{want[i], strings.ToUpper(want[i])} {
			got, err := pii.ParseClass(name)
			if err != nil || got != c {
				t.Errorf("ParseClass(%q) = %v, %v", name, got, err)
			}
		}
		text, err := c.MarshalText()
		if err != nil || string(text) != want[i] {
			t.Errorf("%v.MarshalText() = %q, %v", c, text, err)
		}
		var back pii.Class
		if err := back.UnmarshalText(text); err != nil || back != c {
			t.Errorf("UnmarshalText(%q) = %v, %v", text, back, err)
		}
	}
	if _, err := pii.ParseClass("ssn"); err == nil {
		t.Error("ParseClass(ssn) succeeded")
	}
	if s := pii.Class(200).String(); s != "class(200)" {
		t.Errorf("Class(200).String() = %q", s)
	}
	cs[0] = pii.Phone
	if pii.Classes()[0] != pii.Email {
		t.Error("Classes() shares its slice")
	}
}

func TestNewScannerPanicsOnInvalidClass(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewScanner(Class(99)) did not panic")
		}
	}()
	pii.NewScanner(pii.Class(99))
}

func ExampleScanner_Redact() {
	sc := pii.NewScanner()
	out, classes := sc.Redact("reset link https://app.example/r?token=abc123 sent to jane@example.com")
	fmt.Println(out)
	fmt.Println(classes)
	// Output:
	// reset link https://app.example/r?token=[url_credential] sent to [email]
	// [email url_credential]
}
