package useragent

import (
	"strings"
	"sync"
	"testing"
)

// The HeadlessChrome agent mixpanel-browser runs under in our tests, from
// the User-Agent headers in shared/research/wire/captures/browser_batch.jsonl.
const headlessChrome156 = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"

func TestParse(t *testing.T) {
	p := NewParser()
	tests := []struct {
		ua   string
		want Info
	}{
		// Desktop browsers.
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			Info{Chrome, "131", Windows, Desktop, false}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
			Info{Edge, "131", Windows, Desktop, false}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
			Info{Firefox, "133", Windows, Desktop, false}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/116.0.0.0",
			Info{Opera, "116", Windows, Desktop, false}},
		{"Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
			Info{InternetExplorer, "11", Windows, Desktop, false}},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15",
			Info{Safari, "18", MacOS, Desktop, false}},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			Info{Chrome, "131", MacOS, Desktop, false}},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:133.0) Gecko/20100101 Firefox/133.0",
			Info{Firefox, "133", MacOS, Desktop, false}},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			Info{Chrome, "131", Linux, Desktop, false}},
		{"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
			Info{Firefox, "133", Linux, Desktop, false}},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			Info{Chrome, "131", ChromeOS, Desktop, false}},

		// Phones and tablets.
		{"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
			Info{Chrome, "131", Android, Mobile, false}},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36",
			Info{Chrome, "131", Android, Mobile, false}},
		{"Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
			Info{Firefox, "133", Android, Mobile, false}},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
			Info{SamsungInternet, "26", Android, Mobile, false}},
		{"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			Info{Chrome, "131", Android, Tablet, false}},
		{"Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
			Info{Chrome, "120", Android, Mobile, false}},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1",
			Info{Safari, "18", IOS, Mobile, false}},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
			Info{Chrome, "131", IOS, Mobile, false}},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
			Info{Firefox, "133", IOS, Mobile, false}},
		{"Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
			Info{Safari, "17", IOS, Tablet, false}},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 340.0.0.22.109",
			Info{Safari, "", IOS, Mobile, false}},
		{"Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
			Info{SamsungInternet, "4", Linux, TV, false}},

		// Bots and headless browsers.
		{headlessChrome156, Info{Chrome, "156", Linux, Bot, true}},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			Info{OtherBrowser, "", OtherOS, Bot, true}},
		{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			Info{Chrome, "131", Android, Bot, true}},
		{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
			Info{OtherBrowser, "", OtherOS, Bot, true}},
		{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
			Info{Safari, "", OtherOS, Bot, true}},
		{"Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
			Info{OtherBrowser, "", OtherOS, Bot, true}},
		{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
			Info{OtherBrowser, "", OtherOS, Bot, true}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Chrome-Lighthouse",
			Info{Chrome, "120", Windows, Bot, true}},
		{"Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
			Info{OtherBrowser, "", OtherOS, Bot, true}},
		{"ia_archiver", Info{OtherBrowser, "", OtherOS, Bot, true}},

		// Server SDKs and HTTP clients: not bots, not browsers.
		{"Go-http-client/1.1", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"node", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"curl/8.5.0", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"python-requests/2.32.3", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"Java/17.0.2", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"okhttp/4.12.0", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"mixpanel-node/0.18.0", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},

		// Nothing useful.
		{"", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"Mozilla/5.0", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"\x00\xff garbage ((((;;;", Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{strings.Repeat("A", 10<<10), Info{OtherBrowser, "", OtherOS, OtherDevice, false}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 " + strings.Repeat("x", 10<<10),
			Info{Chrome, "131", Windows, Desktop, false}},
	}
	for _, tt := range tests {
		if got := p.Parse(tt.ua); got != tt.want {
			t.Errorf("Parse(%.90q)\n got %+v\nwant %+v", tt.ua, got, tt.want)
		}
	}
}

func TestMajor(t *testing.T) {
	for in, want := range map[string]string{
		"156.0.0.0": "156", "18": "18", "4.0": "4", "": "", "12345.1": "", "1a.2": "", ".1": "",
	} {
		if got := major(in); got != want {
			t.Errorf("major(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	p := NewParser()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if got := p.Parse(headlessChrome156); got.Browser != Chrome || !got.Bot {
					t.Errorf("got %+v", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// checkInfo verifies that every field comes from the documented sets.
func checkInfo(t *testing.T, ua string, in Info) {
	t.Helper()
	switch in.Browser {
	case Chrome, Firefox, Safari, Edge, Opera, OperaMini, SamsungInternet, Vivaldi, YandexBrowser,
		InternetExplorer, AndroidBrowser, AmazonSilk, Falkon, NintendoBrowser, OtherBrowser:
	default:
		t.Fatalf("Parse(%q): browser %q", ua, in.Browser)
	}
	switch in.OS {
	case Windows, MacOS, Linux, Android, IOS, ChromeOS, FreeBSD, OpenBSD, OtherOS:
	default:
		t.Fatalf("Parse(%q): OS %q", ua, in.OS)
	}
	switch in.Device {
	case Desktop, Mobile, Tablet, TV, Bot, OtherDevice:
	default:
		t.Fatalf("Parse(%q): device %q", ua, in.Device)
	}
	if in.Bot != (in.Device == Bot) {
		t.Fatalf("Parse(%q): bot %v with device %q", ua, in.Bot, in.Device)
	}
	if len(in.BrowserMajor) > 4 || strings.Trim(in.BrowserMajor, "0123456789") != "" {
		t.Fatalf("Parse(%q): major %q", ua, in.BrowserMajor)
	}
	if in.Browser == OtherBrowser && in.BrowserMajor != "" {
		t.Fatalf("Parse(%q): major %q without a browser", ua, in.BrowserMajor)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", headlessChrome156, "Go-http-client/1.1", "curl/8.5.0", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko", "\xff\xfe(((", "Chrome/99999999999999999999999999999999999",
	} {
		f.Add(s)
	}
	p := NewParser()
	f.Fuzz(func(t *testing.T, ua string) {
		in := p.Parse(ua)
		checkInfo(t, ua, in)
		if len(ua) > 40 {
			for _, v := range []string{in.Browser, in.BrowserMajor, in.OS, in.Device} {
				if v != "" && strings.Contains(v, ua) {
					t.Fatalf("Parse(%q) leaks the input in %q", ua, v)
				}
			}
		}
	})
}

var sink Info

func BenchmarkParse(b *testing.B) {
	p := NewParser()
	for _, bc := range []struct{ name, ua string }{
		{"chrome_windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"},
		{"safari_iphone", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1"},
		{"headless_chrome", headlessChrome156},
		{"go_sdk", "Go-http-client/1.1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = p.Parse(bc.ua)
			}
		})
	}
}
