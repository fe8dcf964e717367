package pii

import (
	"slices"
	"testing"
)

// TestResolve checks overlap resolution on made-up candidates, including
// pairs no detector produces today.
func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []Match
		want []Match
	}{
		{"empty", nil, nil},
		{"one", []Match{{Email, 0, 5}}, []Match{{Email, 0, 5}}},
		{"sorted", []Match{{IPv4, 10, 17}, {Email, 0, 5}}, []Match{{Email, 0, 5}, {IPv4, 10, 17}}},
		{"adjacent_kept", []Match{{Email, 0, 5}, {Phone, 5, 9}}, []Match{{Email, 0, 5}, {Phone, 5, 9}}},
		{"jwt_over_secret_same_extent", []Match{{SecretKey, 3, 40}, {JWT, 3, 40}}, []Match{{JWT, 3, 40}}},
		{"url_credential_over_jwt", []Match{{JWT, 7, 60}, {URLCredential, 7, 60}}, []Match{{URLCredential, 7, 60}}},
		{"bearer_over_secret", []Match{{SecretKey, 7, 60}, {BearerToken, 7, 60}}, []Match{{BearerToken, 7, 60}}},
		{"card_over_phone", []Match{{Phone, 0, 19}, {Card, 0, 19}}, []Match{{Card, 0, 19}}},
		{"ipv6_over_ipv4_inside", []Match{{IPv4, 7, 16}, {IPv6, 0, 16}}, []Match{{IPv6, 0, 16}}},
		{"longer_secret_over_inner_email", []Match{{Email, 10, 20}, {SecretKey, 0, 40}}, []Match{{SecretKey, 0, 40}}},
		{"longer_wins_partial_overlap", []Match{{Phone, 0, 10}, {Email, 5, 30}}, []Match{{Email, 5, 30}}},
		{"earlier_longer_wins_partial_overlap", []Match{{Email, 0, 30}, {Phone, 25, 35}}, []Match{{Email, 0, 30}}},
		{"chain", []Match{{Phone, 0, 10}, {Email, 8, 20}, {IPv4, 19, 26}, {Card, 30, 46}}, []Match{{Email, 8, 20}, {Card, 30, 46}}},
		{"duplicates", []Match{{Email, 0, 5}, {Email, 0, 5}}, []Match{{Email, 0, 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []Match{{Card, 100, 101}}
			dst := append(slices.Clone(prefix), tc.in...)
			got := resolve(dst, len(prefix))
			if !slices.Equal(got[:len(prefix)], prefix) {
				t.Fatalf("resolve changed the prefix: %v", got[:len(prefix)])
			}
			if !slices.Equal(got[len(prefix):], tc.want) && !(len(got) == len(prefix) && len(tc.want) == 0) {
				t.Errorf("resolve(%v) = %v, want %v", tc.in, got[len(prefix):], tc.want)
			}
		})
	}
}

func TestLuhnAndMod97(t *testing.T) {
	for _, n := range []string{"4111111111111111", "79927398713", "0"} {
		if !luhn([]byte(n)) {
			t.Errorf("luhn(%s) = false", n)
		}
	}
	for _, n := range []string{"4111111111111112", "79927398710"} {
		if luhn([]byte(n)) {
			t.Errorf("luhn(%s) = true", n)
		}
	}
	if !mod97([]byte("GB82WEST12345698765432")) || mod97([]byte("GB82WEST12345698765433")) {
		t.Error("mod97 wrong on GB82WEST12345698765432/3")
	}
}

func TestEntropy(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want float64
	}{{"", 0}, {"aaaa", 0}, {"abab", 1}, {"abcd", 2}} {
		if got := entropy(tc.s); got != tc.want {
			t.Errorf("entropy(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	var buf [64]byte
	for _, tc := range []struct {
		in   string
		url  bool
		want string
		ok   bool
	}{
		{"eyJhbGciOiJIUzI1NiJ9", true, `{"alg":"HS256"}`, true},
		{"dXNlcm5hbWU6cGFzc3dvcmQ=", false, "username:password", true},
		{"a-_b", true, "\x6b\xef\xdb", true},
		{"a+/b", true, "", false},
		{"abcde", true, "", false},
	} {
		n, ok := decodeBase64(buf[:], tc.in, tc.url)
		if ok != tc.ok || ok && string(buf[:n]) != tc.want {
			t.Errorf("decodeBase64(%q, %v) = %q, %v; want %q, %v", tc.in, tc.url, buf[:n], ok, tc.want, tc.ok)
		}
	}
}
