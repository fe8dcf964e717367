// Package useragent reduces a User-Agent header to the few coarse fields
// Veil stores: browser family and major version, OS family, device class
// and a bot flag. The raw string and full versions never leave the
// package.
//
// Parsing uses github.com/medama-io/go-useragent (a trie built once) for
// browser, OS and device, and this package's own token rules for bots.
// The package does no I/O and no logging and holds no mutable state.
//
// # Decisions
//
//   - Bot is decided here, not by medama (which also flags HTTP client
//     libraries and in-app browsers). A user agent is a bot when one of
//     its words (maximal runs of ASCII letters and digits, compared
//     case-insensitively) ends in "bot" ("Googlebot", "bingbot",
//     "AdsBot", "GPTBot", "UptimeRobot"; "Cubot", a phone brand, excepted),
//     contains "crawl", "spider" or "headless" ("Baiduspider",
//     "HeadlessChrome"), or is a known crawler or tool name ("Slurp",
//     "facebookexternalhit", "Mediapartners", "Lighthouse", "PhantomJS",
//     "ia_archiver", ...), or when the string holds "+http" (the contact
//     URL crawlers advertise).
//   - HeadlessChrome is a bot (Bot=true, Device "bot") but keeps its
//     browser family and major version ("Chrome", "156"). Tests drive
//     mixpanel-browser with it; the pipeline's bot-drop policy is off by
//     default, so such events are kept unless the operator says otherwise.
//   - HTTP client libraries and server SDKs (curl, Wget, python-requests,
//     Go-http-client, node, axios, okhttp, Java, ...) are NOT bots: server-
//     side tracking sends through them, and curl is how an operator tests
//     the endpoint. They get Browser "Other", OS "Other", Device "other",
//     which is how a policy can tell them apart from browsers.
//   - Device is "bot" exactly when Bot is true. Android without a
//     "Mobile" token is a tablet (Google's convention); an iPad is a
//     tablet with OS "iOS".
//   - BrowserMajor is the leading digits of the browser version (at most
//     four), "" when unknown. Internet Explorer 11 ("Trident/7.0") is 11.
//   - Only the first MaxLen bytes of a user agent are read.
package useragent

import (
	"strings"

	mua "github.com/medama-io/go-useragent"
	"github.com/medama-io/go-useragent/agents"
)

// MaxLen is how much of a user agent is read; real ones are well under.
const MaxLen = 1024

// Browser families.
const (
	Chrome           = "Chrome"
	Firefox          = "Firefox"
	Safari           = "Safari"
	Edge             = "Edge"
	Opera            = "Opera"
	OperaMini        = "Opera Mini"
	SamsungInternet  = "Samsung Internet"
	Vivaldi          = "Vivaldi"
	YandexBrowser    = "Yandex Browser"
	InternetExplorer = "Internet Explorer"
	AndroidBrowser   = "Android Browser"
	AmazonSilk       = "Amazon Silk"
	Falkon           = "Falkon"
	NintendoBrowser  = "Nintendo Browser"
	OtherBrowser     = "Other"
)

// OS families.
const (
	Windows  = "Windows"
	MacOS    = "macOS"
	Linux    = "Linux"
	Android  = "Android"
	IOS      = "iOS"
	ChromeOS = "ChromeOS"
	FreeBSD  = "FreeBSD"
	OpenBSD  = "OpenBSD"
	OtherOS  = "Other"
)

// Device classes.
const (
	Desktop     = "desktop"
	Mobile      = "mobile"
	Tablet      = "tablet"
	TV          = "tv"
	Bot         = "bot"
	OtherDevice = "other"
)

// Info is all that is kept of a user agent.
type Info struct {
	Browser      string // a browser family constant, or "Other"
	BrowserMajor string // "156"; "" when unknown
	OS           string // an OS family constant, or "Other"
	Device       string // "desktop", "mobile", "tablet", "tv", "bot" or "other"
	Bot          bool
}

// Parser parses user agents. Build it once with NewParser; it is safe for
// concurrent use.
type Parser struct {
	p *mua.Parser
}

// NewParser returns a parser. The trie is built on the first call in a
// process (about 100 ms) and shared, read-only, afterwards.
func NewParser() *Parser {
	return &Parser{p: mua.NewParser()}
}

// Parse reduces ua to an Info.
func (p *Parser) Parse(ua string) Info {
	if len(ua) > MaxLen {
		ua = ua[:MaxLen]
	}
	a := p.p.Parse(ua)
	info := Info{
		Browser: browserFamily(a.Browser()),
		OS:      osFamily(a.OS()),
		Bot:     isBot(ua),
	}
	if info.Browser != OtherBrowser {
		info.BrowserMajor = major(a.BrowserVersion())
		if info.Browser == InternetExplorer && info.BrowserMajor == "7" && strings.Contains(ua, "Trident/7") {
			info.BrowserMajor = "11"
		}
	}
	switch {
	case info.Bot:
		info.Device = Bot
	case a.Device() == agents.DeviceDesktop:
		info.Device = Desktop
	case a.Device() == agents.DeviceMobile:
		info.Device = Mobile
		if info.OS == Android && !strings.Contains(ua, "Mobile") {
			info.Device = Tablet
		}
	case a.Device() == agents.DeviceTablet:
		info.Device = Tablet
	case a.Device() == agents.DeviceTV:
		info.Device = TV
	default:
		// Unknown, or a medama "bot" that is not one by our rules.
		info.Device = deviceFromOS(info.OS, ua)
	}
	return info
}

func deviceFromOS(os, ua string) string {
	switch os {
	case Windows, MacOS, Linux, ChromeOS, FreeBSD, OpenBSD:
		return Desktop
	case IOS:
		if strings.Contains(ua, "iPad") {
			return Tablet
		}
		return Mobile
	case Android:
		if strings.Contains(ua, "Mobile") {
			return Mobile
		}
		return Tablet
	}
	return OtherDevice
}

func browserFamily(b agents.Browser) string {
	switch b {
	case agents.BrowserChrome:
		return Chrome
	case agents.BrowserFirefox:
		return Firefox
	case agents.BrowserSafari:
		return Safari
	case agents.BrowserEdge:
		return Edge
	case agents.BrowserOpera:
		return Opera
	case agents.BrowserOperaMini:
		return OperaMini
	case agents.BrowserSamsung:
		return SamsungInternet
	case agents.BrowserVivaldi:
		return Vivaldi
	case agents.BrowserYandex:
		return YandexBrowser
	case agents.BrowserIE:
		return InternetExplorer
	case agents.BrowserAndroid:
		return AndroidBrowser
	case agents.BrowserSilk:
		return AmazonSilk
	case agents.BrowserFalkon:
		return Falkon
	case agents.BrowserNintendo:
		return NintendoBrowser
	}
	return OtherBrowser
}

func osFamily(o agents.OS) string {
	switch o {
	case agents.OSWindows:
		return Windows
	case agents.OSMacOS:
		return MacOS
	case agents.OSLinux:
		return Linux
	case agents.OSAndroid:
		return Android
	case agents.OSIOS:
		return IOS
	case agents.OSChromeOS:
		return ChromeOS
	case agents.OSFreeBSD:
		return FreeBSD
	case agents.OSOpenBSD:
		return OpenBSD
	}
	return OtherOS
}

// major returns the leading 1 to 4 digits of v ("156.0.0.0" → "156"),
// or "" when v does not start with such a number.
func major(v string) string {
	n := 0
	for n < len(v) && '0' <= v[n] && v[n] <= '9' {
		n++
	}
	if n == 0 || n > 4 || (n < len(v) && v[n] != '.') {
		return ""
	}
	return v[:n]
}

// isBot applies the bot rules in the package documentation to ua.
func isBot(ua string) bool {
	if strings.Contains(ua, "+http") {
		return true
	}
	var buf [32]byte
	for i := 0; i < len(ua); {
		if !isAlnum(ua[i]) {
			i++
			continue
		}
		j := i
		for j < len(ua) && isAlnum(ua[j]) {
			j++
		}
		if botWord(ua[i:j], &buf) {
			return true
		}
		i = j
	}
	return false
}

// botWord reports whether one word of a user agent marks a bot.
func botWord(w string, buf *[32]byte) bool {
	if len(w) < 3 {
		return false
	}
	// Suffix "bot", case-insensitively.
	if lower(w[len(w)-3]) == 'b' && lower(w[len(w)-2]) == 'o' && lower(w[len(w)-1]) == 't' {
		return !(len(w) == 5 && lower(w[0]) == 'c' && lower(w[1]) == 'u') // Cubot phones
	}
	if len(w) < 5 {
		return false
	}
	if len(w) > len(buf) {
		w = w[:len(buf)]
	}
	l := buf[:len(w)]
	for k := 0; k < len(w); k++ {
		l[k] = lower(w[k])
	}
	for k := 0; k+5 <= len(l); k++ {
		switch l[k] {
		case 'c':
			if hasPrefix(l[k:], "crawl") {
				return true
			}
		case 's':
			if hasPrefix(l[k:], "spider") {
				return true
			}
		case 'h':
			if hasPrefix(l[k:], "headless") {
				return true
			}
		}
	}
	switch string(l) {
	case "slurp", "facebookexternalhit", "facebookcatalog", "mediapartners", "lighthouse",
		"phantomjs", "archiver", "feedfetcher", "googleother", "inspectiontool", "linkcheck",
		"pingdom", "statuscake", "gtmetrix", "embedly", "preview", "skypeuripreview",
		"qbusiness", "prerender", "scrapy", "bingpreview", "yahooseeker", "ahrefs", "semrush":
		return true
	}
	return false
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
