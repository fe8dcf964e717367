package privacy_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/geo/geotest"
)

// browserProps is a mixpanel-browser event as captured from the SDK
// (../shared/research/wire/captures/browser_batch.jsonl): its default
// properties plus a few of the application's, 25 in all.
const browserProps = `{
	"$browser": "Chrome", "$browser_version": 156,
	"$current_url": "https://shop.example.com/products/blue-widget?utm_source=newsletter&utm_medium=email&session=9f8e7d6c5b4a39281706",
	"$device_id": "0a2c09f3-15a0-4cc0-8bd0-96393f22f1f5",
	"$initial_referrer": "https://www.google.com/", "$initial_referring_domain": "www.google.com",
	"$referrer": "https://www.google.com/", "$referring_domain": "www.google.com",
	"$lib_version": "2.83.0", "$os": "Mac OS X", "$screen_height": 900, "$screen_width": 1440,
	"current_domain": "shop.example.com", "current_page_title": "Blue Widget – Example Shop",
	"current_url_path": "/products/blue-widget", "current_url_protocol": "https:",
	"mp_lib": "web", "mp_sent_by_lib_version": "2.83.0", "$user_id": "user-42",
	"plan": "pro", "product_id": 1042, "price": 19.99, "currency": "EUR",
	"variant": "blue", "ab_group": "checkout-v2"
}`

const chromeUA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"

// BenchmarkStageEvent measures the whole stage on one browser event:
// pseudonyms, drop list, URL cleaning, the PII scan of every string,
// user-agent and geo, and counting. batch=50 is mixpanel-browser's batch
// (one request: the page's URLs and the user's ids repeat, and the stage
// reuses its work within a request); batch=1 is an event per request, the
// worst case. Run:
//
//	go test -run='^$' -bench=StageEvent -benchmem ./internal/privacy/
func BenchmarkStageEvent(b *testing.B) {
	for _, batch := range []int{50, 1} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchStage(b, batch) })
	}
}

func benchStage(b *testing.B, batch int) {
	db, err := geo.Open(geotest.WriteDB(b, b.TempDir(), geotest.GeoLite2Country, map[string]geo.Location{
		"203.0.113.0/24": {CountryCode: "DE"},
	}))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	st := newStage(b, "", privacy.Config{Geo: db})
	template := props(b, browserProps)
	if len(template) != 25 {
		b.Fatalf("%d properties", len(template))
	}
	buf := make([]event.Field, 0, 32)
	ctx := context.Background()
	var req *privacy.Request
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%batch == 0 {
			req = &privacy.Request{IP: netip.MustParseAddr("203.0.113.9"), UserAgent: chromeUA, Geolocate: true}
		}
		e := event.Event{Project: 1, Name: "Product viewed", DistinctID: "$device:0a2c09f3-15a0-4cc0-8bd0-96393f22f1f5",
			InsertID: "s1pifjjmwdh1nsgs", Props: append(buf[:0], template...)}
		if keep, err := st.Event(ctx, req, &e); !keep || err != nil {
			b.Fatal(keep, err)
		}
	}
}
