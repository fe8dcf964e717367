package urlclean

import "testing"

var sink string

// BenchmarkClean: a typical mixpanel-browser $current_url with utm
// parameters; "unchanged" is returned as is, "changed" drops a click id
// and a fragment and templates an order number.
func BenchmarkClean(b *testing.B) {
	for _, bc := range []struct{ name, url string }{
		{"unchanged", "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"},
		{"changed", "https://www.example.com/orders/123456/receipt?utm_source=newsletter&utm_medium=email&fbclid=IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMgk#top"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink, _ = Clean(bc.url, nil)
			}
		})
	}
}

func BenchmarkReferrer(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = Referrer("https://www.google.com/search?q=veil+analytics&oq=veil")
	}
}

func BenchmarkLooksLikeURL(b *testing.B) {
	b.ReportAllocs()
	var n int
	for b.Loop() {
		if LooksLikeURL("https://www.example.com/pricing?utm_source=newsletter&utm_medium=email") {
			n++
		}
	}
	_ = n
}
