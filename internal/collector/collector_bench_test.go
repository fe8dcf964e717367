package collector

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy"
)

// discard is an Appender that encodes like the store but keeps nothing.
type discard struct{}

func (discard) Append(_ context.Context, b *event.Batch) (int, error) {
	var buf []byte
	for i := range b.Events {
		buf = event.AppendEvent(buf[:0], &b.Events[i])
	}
	return 0, nil
}

// browserBatch is a mixpanel-browser-shaped batch: base64 JSON in a form body.
func browserBatch(n int) string {
	var evs []string
	for i := range n {
		evs = append(evs, fmt.Sprintf(`{"event":"$mp_web_page_view","properties":{"$os":"Linux","$browser":"Chrome",`+
			`"$current_url":"https://app.example.com/docs?utm_source=newsletter","$browser_version":156,"$screen_height":1080,`+
			`"$screen_width":1920,"mp_lib":"web","$lib_version":"2.83.0","$insert_id":"s1pifjjmwdh1n%03d","time":%d.956,`+
			`"distinct_id":"$device:0a2c09f3-15a0-4cc0-8bd0-96393f22f1f5","$device_id":"0a2c09f3-15a0-4cc0-8bd0-96393f22f1f5",`+
			`"$initial_referrer":"$direct","$initial_referring_domain":"$direct","token":"%s","mp_sent_by_lib_version":"2.83.0",`+
			`"$mp_autocapture":true,"current_domain":"app.example.com","current_page_title":"Example app","current_url_path":"/docs",`+
			`"current_url_protocol":"https:","current_url_search":"?utm_source=newsletter","utm_source":"newsletter","plan":"pro","amount":%d}}`,
			i, now.Unix()-10, testToken, i))
	}
	return "data=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("["+strings.Join(evs, ",")+"]")))
}

// BenchmarkTrackBrowserBatch measures the collector's CPU per request of 50
// browser events, without the network and the fsync.
func BenchmarkTrackBrowserBatch(b *testing.B) {
	c := New(Config{Now: func() time.Time { return now }}, fakeProjects{}, privacy.Passthrough{}, discard{})
	body := browserBatch(50)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/track/?verbose=1&ip=1", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		c.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*50), "ns/event")
}
