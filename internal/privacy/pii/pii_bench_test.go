package pii_test

import (
	"testing"

	"github.com/veil-analytics/veil/internal/privacy/pii"
)

// browserEvent holds the string values of one mixpanel-browser page view
// ($mp_web_page_view with the default super properties): about 25 values,
// none of them personal data.
var browserEvent = []string{
	"$mp_web_page_view",
	"$device:18f3c2a6b1e2a4-0f1e2d3c4b5a69-4c2d6e1f-1fa400-18f3c2a6b1e2a4",
	"18f3c2a6b1e2a4-0f1e2d3c4b5a69-4c2d6e1f-1fa400-18f3c2a6b1e2a4",
	"k3x9q2m8v7b1n4z6",
	"2f6c4b1d9e8a7f3c5b0d1e2a3f4c5b6d",
	"Mac OS X",
	"Chrome",
	"120.0.6099.109",
	"https://shop.example.com/products/blue-widget?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale",
	"https://www.google.com/",
	"www.google.com",
	"$direct",
	"$direct",
	"google",
	"web",
	"2.55.1",
	"2.55.1",
	"Blue Widget – Example Shop",
	"/products/blue-widget",
	"shop.example.com",
	"Europe/Berlin",
	"en-US",
	"1f0e2d3c-4b5a-4697-8877-66554433aa11",
	"0190b9e2-7c3d-7a41-9d2e-3f4a5b6c7d8e",
	"api-js.mixpanel.com",
}

// dirtyEvent is the same event with personal data and secrets in six values.
var dirtyEvent = func() []string {
	e := append([]string(nil), browserEvent...)
	e[8] = "https://shop.example.com/reset?token=abc123def456&utm_source=mail&email=jane.doe@example.com"
	e[17] = "Welcome back, jane.doe@example.com | Example Shop"
	e[18] = "/account/+44 20 7946 0958"
	e[19] = "client 203.0.113.7 via 2001:db8::1"
	e[20] = "Authorization: Bearer " + jwtHS256
	e[21] = "card 4111 1111 1111 1111 iban DE89 3704 0044 0532 0130 00 key " + awsKey
	return e
}()

func benchEvent(b *testing.B, event []string) {
	sc := pii.NewScanner()
	buf := make([]pii.Match, 0, 32)
	var n int
	for _, v := range event {
		n += len(v)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, v := range event {
			buf = sc.AppendFind(buf[:0], v)
		}
	}
}

// BenchmarkFindCleanEvent: one op is every value of a clean browser event.
func BenchmarkFindCleanEvent(b *testing.B) { benchEvent(b, browserEvent) }

// BenchmarkFindDirtyEvent: one op is every value of an event with six dirty
// values.
func BenchmarkFindDirtyEvent(b *testing.B) { benchEvent(b, dirtyEvent) }

// BenchmarkRedactCleanEvent: Redact is free on clean values.
func BenchmarkRedactCleanEvent(b *testing.B) {
	sc := pii.NewScanner()
	b.ReportAllocs()
	for b.Loop() {
		for _, v := range browserEvent {
			_, _ = sc.Redact(v)
		}
	}
}

// BenchmarkRedactDirtyEvent: one op redacts every value of the dirty event.
func BenchmarkRedactDirtyEvent(b *testing.B) {
	sc := pii.NewScanner()
	b.ReportAllocs()
	for b.Loop() {
		for _, v := range dirtyEvent {
			_, _ = sc.Redact(v)
		}
	}
}
