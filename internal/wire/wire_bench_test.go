package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

// browserBatch builds a batch of n events shaped like mixpanel-browser's
// (key order, value types and lengths as in the captures), 25-29
// properties each.
func browserBatch(n int) []byte {
	rng := rand.New(rand.NewPCG(42, 7))
	const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
	rnd := func(k int) string {
		b := make([]byte, k)
		for i := range b {
			b[i] = alnum[rng.IntN(len(alnum))]
		}
		return string(b)
	}
	uuid := func() string { return rnd(8) + "-" + rnd(4) + "-" + rnd(4) + "-" + rnd(4) + "-" + rnd(12) }
	s, num := event.StringValue, event.NumberValue
	device := uuid()
	names := []string{"$mp_web_page_view", "signup_started", "$identify", "api_key_created", "checkout", "button_clicked"}
	pages := []string{"/", "/pricing", "/docs/getting-started", "/blog/2026/privacy-first-analytics", "/settings/billing"}
	batch := event.Value{Kind: event.Array}
	t := 1795376237.956
	for i := range n {
		page := pages[rng.IntN(len(pages))]
		url := "https://www.example.com" + page + "?utm_source=newsletter&utm_medium=email&ref=" + rnd(6)
		f := []event.Field{
			{Key: "$os", Value: s("Linux")},
			{Key: "$browser", Value: s("Chrome")},
			{Key: "$current_url", Value: s(url)},
			{Key: "$browser_version", Value: num(156)},
			{Key: "$screen_height", Value: num(720)},
			{Key: "$screen_width", Value: num(1280)},
			{Key: "mp_lib", Value: s("web")},
			{Key: "$lib_version", Value: s("2.83.0")},
			{Key: "$insert_id", Value: s(rnd(16))},
			{Key: "time", Value: num(t)},
			{Key: "distinct_id", Value: s("$device:" + device)},
			{Key: "$device_id", Value: s(device)},
			{Key: "$initial_referrer", Value: s("https://news.ycombinator.com/")},
			{Key: "$initial_referring_domain", Value: s("news.ycombinator.com")},
			{Key: "$referrer", Value: s("https://www.example.com/")},
			{Key: "$referring_domain", Value: s("www.example.com")},
			{Key: "utm_source", Value: s("newsletter")},
			{Key: "utm_medium", Value: s("email")},
			{Key: "utm_campaign", Value: s("spring_launch_2026")},
			{Key: "current_domain", Value: s("www.example.com")},
			{Key: "current_page_title", Value: s("Veil — privacy-first product analytics")},
			{Key: "current_url_path", Value: s(page)},
			{Key: "current_url_protocol", Value: s("https:")},
			{Key: "source", Value: s("ad")},
			{Key: "company", Value: event.Value{Kind: event.Array, Items: []event.Value{s("acme-inc")}}},
			{Key: "token", Value: s("tok_wirecap_0123456789abcdef")},
			{Key: "mp_sent_by_lib_version", Value: s("2.83.0")},
		}
		if i%3 == 0 {
			f = append(f, event.Field{Key: "$mp_autocapture", Value: event.BoolValue(true)},
				event.Field{Key: "$duration", Value: num(float64(rng.IntN(5000)) / 1000)})
		}
		ev := event.Value{Kind: event.Object, Fields: []event.Field{
			{Key: "event", Value: s(names[rng.IntN(len(names))])},
			{Key: "properties", Value: event.Value{Kind: event.Object, Fields: f}},
		}}
		batch.Items = append(batch.Items, ev)
		t += float64(rng.IntN(3000)) / 1000
	}
	// Like JSON.stringify, do not escape <, > and & as AppendJSON does.
	out := batch.AppendJSON(nil)
	for _, r := range [][2]string{{`\u003c`, "<"}, {`\u003e`, ">"}, {`\u0026`, "&"}} {
		out = bytes.ReplaceAll(out, []byte(r[0]), []byte(r[1]))
	}
	return out
}

// cpuMeter reports throughput per CPU second as well as per wall-clock
// second: on a shared machine the wall-clock figure swings with the load,
// the CPU-time figure far less. GC work counts, as it should.
type cpuMeter struct {
	b     *testing.B
	bytes int64
	start time.Duration
}

func meter(b *testing.B, bytes int) *cpuMeter {
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	return &cpuMeter{b: b, bytes: int64(bytes), start: processCPU()}
}

func (m *cpuMeter) stop() {
	if used := processCPU() - m.start; used > 0 && m.start > 0 {
		m.b.ReportMetric(float64(m.bytes)*float64(m.b.N)/used.Seconds()/1e6, "cpu-MB/s")
	}
}

func BenchmarkParseItems(b *testing.B) {
	data := browserBatch(50)
	m := meter(b, len(data))
	for b.Loop() {
		if _, err := ParseItems(data, ParseOptions{MaxItems: 2000}); err != nil {
			b.Fatal(err)
		}
	}
	m.stop()
}

// BenchmarkParseItemsStdlib is the encoding/json baseline for the same batch.
func BenchmarkParseItemsStdlib(b *testing.B) {
	data := browserBatch(50)
	m := meter(b, len(data))
	for b.Loop() {
		var v []any
		if err := json.Unmarshal(data, &v); err != nil {
			b.Fatal(err)
		}
	}
	m.stop()
}

func BenchmarkParseItemsSingleEvent(b *testing.B) {
	batch := browserBatch(1)
	data := batch[1 : len(batch)-1]
	m := meter(b, len(data))
	for b.Loop() {
		if _, err := ParseItems(data, ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	m.stop()
}

// BenchmarkExtractPayload decodes the batch as the browser sends it: a
// form body holding URL-encoded base64. SetBytes counts the body.
func BenchmarkExtractPayload(b *testing.B) {
	data := browserBatch(50)
	body := []byte("data=" + url.QueryEscape(base64.StdEncoding.EncodeToString(data)))
	query := url.Values{"ip": {"1"}, "verbose": {"1"}, "_": {"1795376237999"}}
	m := meter(b, len(body))
	for b.Loop() {
		p, err := ExtractPayload(body, query)
		if err != nil || len(p.Data) != len(data) {
			b.Fatal(err)
		}
	}
	m.stop()
}

// BenchmarkDecodeRequest is the whole path for a browser batch: read the
// body, find and decode the data, parse it.
func BenchmarkDecodeRequest(b *testing.B) {
	data := browserBatch(50)
	body := []byte("data=" + url.QueryEscape(base64.StdEncoding.EncodeToString(data)))
	m := meter(b, len(body))
	for b.Loop() {
		raw, err := ReadBody(bytes.NewReader(body), "", 10<<20)
		if err != nil {
			b.Fatal(err)
		}
		p, err := ExtractPayload(raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseItems(p.Data, ParseOptions{MaxItems: 2000}); err != nil {
			b.Fatal(err)
		}
	}
	m.stop()
}

func BenchmarkReadBodyGzip(b *testing.B) {
	data := browserBatch(50)
	body := gzipBytes(b, data)
	m := meter(b, len(data))
	for b.Loop() {
		if _, err := ReadBody(bytes.NewReader(body), "gzip", 10<<20); err != nil {
			b.Fatal(err)
		}
	}
	m.stop()
}

func BenchmarkRepairCESU8Clean(b *testing.B) {
	data := browserBatch(50)
	m := meter(b, len(data))
	for b.Loop() {
		RepairCESU8(data)
	}
	m.stop()
}

func ExampleParseItems() {
	items, err := ParseItems([]byte(`[{"event":"signup","properties":{"plan":"free"}},{"event":"login"}]`), ParseOptions{MaxItems: 2000})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, it := range items {
		name, _ := event.Get(it.Value.Fields, "event")
		fmt.Println(name.Str, it.Size, it.Line)
	}
	// Output:
	// signup 47 1
	// login 17 1
}
