package geo_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/geo/geotest"
)

// fixture is the geography of the documentation networks in every test
// database. None of it is real.
var fixture = map[string]geo.Location{
	"192.0.2.0/24":       {CountryCode: "DE", Region: "Bavaria", City: "Munich"},
	"192.0.2.128/25":     {CountryCode: "AT", Region: "Tyrol", City: "Innsbruck"}, // narrower wins
	"198.51.100.0/24":    {CountryCode: "FR", Region: "Île-de-France"},            // no city
	"203.0.113.0/24":     {CountryCode: "JP"},                                     // country only
	"2001:db8::/32":      {CountryCode: "NL", Region: "North Holland", City: "Amsterdam"},
	"2001:db8:1::/48":    {CountryCode: "BR", Region: "São Paulo", City: "São Paulo"},
	"2001:db8:ffff::/48": {CountryCode: "ZA", Region: "Gauteng", City: "Johannesburg"},
}

func open(t testing.TB, dbType string) *geo.DB {
	t.Helper()
	db, err := geo.Open(geotest.WriteDB(t, t.TempDir(), dbType, fixture))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestLookupLevels(t *testing.T) {
	for _, dbType := range []string{geotest.GeoIP2City, geotest.GeoLite2City, geotest.DBIPCityLite} {
		t.Run(dbType, func(t *testing.T) {
			db := open(t, dbType)
			f := func(addr string, level geo.Level, want geo.Location) {
				t.Helper()
				got, ok := db.Lookup(netip.MustParseAddr(addr), level)
				if !ok || got != want {
					t.Fatalf("Lookup(%s, %s) = %+v, %v; want %+v, true", addr, level, got, ok, want)
				}
			}
			f("192.0.2.1", geo.Country, geo.Location{CountryCode: "DE"})
			f("192.0.2.1", geo.Region, geo.Location{CountryCode: "DE", Region: "Bavaria"})
			f("192.0.2.1", geo.City, geo.Location{CountryCode: "DE", Region: "Bavaria", City: "Munich"})
			f("192.0.2.200", geo.City, geo.Location{CountryCode: "AT", Region: "Tyrol", City: "Innsbruck"})
			f("198.51.100.9", geo.City, geo.Location{CountryCode: "FR", Region: "Île-de-France"})
			f("203.0.113.250", geo.City, geo.Location{CountryCode: "JP"})
			f("203.0.113.250", geo.Region, geo.Location{CountryCode: "JP"})
			// IPv6.
			f("2001:db8::1", geo.Country, geo.Location{CountryCode: "NL"})
			f("2001:db8::1", geo.City, geo.Location{CountryCode: "NL", Region: "North Holland", City: "Amsterdam"})
			f("2001:db8:1::42", geo.Region, geo.Location{CountryCode: "BR", Region: "São Paulo"})
			f("2001:db8:ffff:1::1", geo.City, geo.Location{CountryCode: "ZA", Region: "Gauteng", City: "Johannesburg"})
			// IPv4-mapped IPv6 is looked up as IPv4; a zone is ignored.
			f("::ffff:192.0.2.1", geo.City, geo.Location{CountryCode: "DE", Region: "Bavaria", City: "Munich"})
			f("::ffff:203.0.113.5", geo.Country, geo.Location{CountryCode: "JP"})
			f("2001:db8::1%eth0", geo.Country, geo.Location{CountryCode: "NL"})
			// Levels beyond City are City.
			f("192.0.2.1", geo.Level(9), geo.Location{CountryCode: "DE", Region: "Bavaria", City: "Munich"})
		})
	}
}

func TestLookupCountryDatabases(t *testing.T) {
	for _, dbType := range []string{geotest.GeoIP2Country, geotest.GeoLite2Country, geotest.DBIPCountryLite} {
		t.Run(dbType, func(t *testing.T) {
			db := open(t, dbType)
			for addr, want := range map[string]string{"192.0.2.1": "DE", "192.0.2.129": "AT", "198.51.100.1": "FR", "2001:db8:1::1": "BR", "::ffff:203.0.113.1": "JP"} {
				// City level against a Country database: the country, and
				// nothing made up.
				got, ok := db.Lookup(netip.MustParseAddr(addr), geo.City)
				if !ok || got != (geo.Location{CountryCode: want}) {
					t.Fatalf("Lookup(%s) = %+v, %v; want %s", addr, got, ok, want)
				}
			}
			typ, built := db.Metadata()
			if typ != dbType || !built.Equal(time.Unix(geotest.BuildEpoch, 0)) || built.Location() != time.UTC {
				t.Fatalf("Metadata = %q, %v", typ, built)
			}
		})
	}
}

func TestLookupNotLookedUp(t *testing.T) {
	dir := t.TempDir()
	// A database that (wrongly) claims the private and loopback ranges too:
	// those must still never be looked up.
	entries := map[string]geo.Location{
		"0.0.0.0/0": {CountryCode: "XX"},
		"::/0":      {CountryCode: "XX"},
	}
	db, err := geo.Open(geotest.WriteDB(t, dir, geotest.GeoIP2City, entries))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, a := range []string{
		"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.1.1", "0.0.0.0",
		"224.0.0.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:192.168.0.1",
	} {
		if loc, ok := db.Lookup(netip.MustParseAddr(a), geo.City); ok {
			t.Errorf("Lookup(%s) = %+v, true; want false", a, loc)
		}
	}
	if _, ok := db.Lookup(netip.Addr{}, geo.Country); ok {
		t.Error("zero Addr looked up")
	}
	// The same database does answer for a public address.
	if loc, ok := db.Lookup(netip.MustParseAddr("192.0.2.1"), geo.Country); !ok || loc.CountryCode != "XX" {
		t.Errorf("public address: %+v, %v", loc, ok)
	}
}

func TestLookupUnknown(t *testing.T) {
	db := open(t, geotest.GeoIP2City)
	for _, a := range []string{"198.18.0.1", "100.64.0.1", "2001:db9::1", "2002:808:808::1", "8.8.8.8"} {
		if loc, ok := db.Lookup(netip.MustParseAddr(a), geo.City); ok {
			t.Errorf("Lookup(%s) = %+v, true; want false", a, loc)
		}
	}
	// 6to4 (2002::/16) addresses are aliased to the IPv4 address they
	// embed, as in MaxMind's own databases: 2002:c000:0201:: is 192.0.2.1.
	if loc, ok := db.Lookup(netip.MustParseAddr("2002:c000:0201::1"), geo.Country); !ok || loc.CountryCode != "DE" {
		t.Errorf("6to4: %+v, %v", loc, ok)
	}
}

func TestRecordShapes(t *testing.T) {
	dir := t.TempDir()
	sub := func(m mmdbtype.Map) mmdbtype.Slice { return mmdbtype.Slice{m} }
	path := geotest.WriteRecords(t, dir, "GeoIP2-City", map[string]mmdbtype.Map{
		// No country, only registered_country: the fallback.
		"192.0.2.0/26": {"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("SE")}},
		// Both: country wins.
		"192.0.2.64/26": {
			"registered_country": mmdbtype.Map{"iso_code": mmdbtype.String("SE")},
			"country":            mmdbtype.Map{"iso_code": mmdbtype.String("NO")},
		},
		// A subdivision with a code and no English name; a city with no
		// English name.
		"192.0.2.128/26": {
			"country":      mmdbtype.Map{"iso_code": mmdbtype.String("ES")},
			"subdivisions": sub(mmdbtype.Map{"iso_code": mmdbtype.String("CT"), "names": mmdbtype.Map{"es": mmdbtype.String("Cataluña")}}),
			"city":         mmdbtype.Map{"names": mmdbtype.Map{"es": mmdbtype.String("Barcelona")}},
		},
		// No country at all: not a location.
		"192.0.2.192/26": {"continent": mmdbtype.Map{"code": mmdbtype.String("AN")}},
		// Wrong types where maps are expected: malformed, reported as
		// nothing rather than a panic or a half-filled location.
		"198.51.100.0/24": {"country": mmdbtype.String("DE")},
		"203.0.113.0/24":  {"country": mmdbtype.Map{"iso_code": mmdbtype.String("IT")}, "subdivisions": mmdbtype.String("x")},
	})
	db, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f := func(addr string, level geo.Level, want geo.Location, wantOK bool) {
		t.Helper()
		got, ok := db.Lookup(netip.MustParseAddr(addr), level)
		if ok != wantOK || got != want {
			t.Fatalf("Lookup(%s, %s) = %+v, %v; want %+v, %v", addr, level, got, ok, want, wantOK)
		}
	}
	f("192.0.2.1", geo.City, geo.Location{CountryCode: "SE"}, true)
	f("192.0.2.65", geo.City, geo.Location{CountryCode: "NO"}, true)
	f("192.0.2.129", geo.City, geo.Location{CountryCode: "ES", Region: "CT"}, true)
	f("192.0.2.193", geo.City, geo.Location{}, false)
	f("198.51.100.1", geo.Country, geo.Location{}, false)
	// At Country level the broken subdivisions are never read.
	f("203.0.113.1", geo.Country, geo.Location{CountryCode: "IT"}, true)
	f("203.0.113.1", geo.Region, geo.Location{}, false)
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	good := geotest.WriteDB(t, dir, geotest.GeoIP2City, fixture)
	content, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]struct {
		path string
		want string
	}{
		"missing":     {filepath.Join(dir, "nope.mmdb"), "not a readable MaxMind DB"},
		"empty":       {write("empty.mmdb", nil), "not a readable MaxMind DB"},
		"not_mmdb":    {write("text.mmdb", []byte("country,ip\nDE,192.0.2.1\n")), "not a readable MaxMind DB"},
		"csv_as_gzip": {write("gz.mmdb", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}), "not a readable MaxMind DB"},
		// Cut in the metadata, and cut in the middle (metadata lost).
		"truncated_tail": {write("tail.mmdb", content[:len(content)-20]), "not a readable MaxMind DB"},
		"truncated_half": {write("half.mmdb", content[:len(content)/2]), "not a readable MaxMind DB"},
		// An ASN database is a valid MaxMind DB with no countries.
		"asn":        {geotest.WriteDB(t, dir, geotest.GeoLite2ASN, map[string]geo.Location{"192.0.2.0/24": {}}), `database type is "GeoLite2-ASN"`},
		"dbip_asn":   {geotest.WriteRecords(t, dir, "DBIP-ASN-Lite (compat=GeoLite2-ASN)", map[string]mmdbtype.Map{"192.0.2.0/24": {"autonomous_system_number": mmdbtype.Uint32(64496)}}), "not a City or Country database"},
		"anonymous":  {geotest.WriteRecords(t, dir, "GeoIP2-Anonymous-IP", map[string]mmdbtype.Map{"192.0.2.0/24": {"is_anonymous": mmdbtype.Bool(true)}}), "not a City or Country database"},
		"other_type": {geotest.WriteRecords(t, dir, "My-Custom-Thing", map[string]mmdbtype.Map{"192.0.2.0/24": {"x": mmdbtype.String("y")}}), "not a City or Country database"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			db, err := geo.Open(c.path)
			if err == nil {
				db.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name the file and %q", err, c.want)
			}
		})
	}
	// Corrupt the search tree but keep the metadata: refused at Open, or
	// at worst every lookup fails cleanly.
	broken := append([]byte(nil), content...)
	for i := 0; i < 256 && i < len(broken); i++ {
		broken[i] = 0xff
	}
	if db, err := geo.Open(write("tree.mmdb", broken)); err == nil {
		for _, a := range []string{"192.0.2.1", "2001:db8::1", "203.0.113.9"} {
			if loc, ok := db.Lookup(netip.MustParseAddr(a), geo.City); ok && loc.CountryCode == "" {
				t.Fatalf("corrupt tree gave an empty location for %s", a)
			}
		}
		db.Close()
	}
}

func TestAcceptedTypes(t *testing.T) {
	dir := t.TempDir()
	rec := map[string]mmdbtype.Map{"192.0.2.0/24": geotest.Record(geotest.GeoIP2City, geo.Location{CountryCode: "DE", Region: "Bavaria", City: "Munich"})}
	for _, typ := range []string{"GeoIP2-City", "GeoLite2-City", "GeoIP2-Country", "GeoLite2-Country", "GeoIP2-Enterprise", "GeoIP2-City-Test", "DBIP-City-Lite", "DBIP-Country-Lite", "DBIP-Location-ISP (compat=Enterprise)", "DBIP-Location (compat=City)"} {
		db, err := geo.Open(geotest.WriteRecords(t, dir, typ, rec))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if loc, ok := db.Lookup(netip.MustParseAddr("192.0.2.7"), geo.Region); !ok || loc.Region != "Bavaria" {
			t.Fatalf("%s: %+v %v", typ, loc, ok)
		}
		db.Close()
	}
}

func TestCloseAndConcurrentLookups(t *testing.T) {
	db := open(t, geotest.GeoIP2City)
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.200"), netip.MustParseAddr("198.51.100.7"),
		netip.MustParseAddr("2001:db8::9"), netip.MustParseAddr("::ffff:203.0.113.3"), netip.MustParseAddr("10.0.0.1"),
	}
	want := make([]geo.Location, len(addrs))
	wantOK := make([]bool, len(addrs))
	for i, a := range addrs {
		want[i], wantOK[i] = db.Lookup(a, geo.City)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 2000 {
				i := (g + n) % len(addrs)
				got, ok := db.Lookup(addrs[i], geo.Level(n%3))
				if ok != wantOK[i] || got.CountryCode != want[i].CountryCode {
					t.Errorf("%s: %+v %v", addrs[i], got, ok)
					return
				}
			}
		})
	}
	wg.Wait()

	// Close while lookups run: they finish or report false, never crash.
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if loc, ok := db.Lookup(addrs[0], geo.City); ok && loc.CountryCode != "DE" {
					t.Errorf("bad location %+v", loc)
					return
				}
			}
		})
	}
	time.Sleep(5 * time.Millisecond)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if _, ok := db.Lookup(addrs[0], geo.Country); ok {
		t.Fatal("lookup after Close succeeded")
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if typ, _ := db.Metadata(); typ != geotest.GeoIP2City {
		t.Fatalf("Metadata after Close = %q", typ)
	}
}

func TestLevelString(t *testing.T) {
	for l, want := range map[geo.Level]string{geo.Country: "country", geo.Region: "region", geo.City: "city", 7: "Level(7)"} {
		if got := l.String(); got != want {
			t.Errorf("%d: %q", l, got)
		}
	}
	var zero geo.Level
	if zero != geo.Country {
		t.Error("zero Level is not Country")
	}
}

// manyRecords maps n IPv6 networks 2001:db8:0:<i>::/64 (n ≤ 65536) to n
// distinct locations, and returns an address in each.
func manyRecords(n int) (map[string]geo.Location, []netip.Addr) {
	entries := make(map[string]geo.Location, n)
	addrs := make([]netip.Addr, n)
	for i := range n {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8), byte(i), 15: 1})
		addrs[i] = a
		entries[netip.PrefixFrom(a, 64).Masked().String()] = geo.Location{CountryCode: "C" + string(rune('A'+i%26)), Region: fmt.Sprintf("Region %d", i), City: fmt.Sprintf("City %d", i)}
	}
	return entries, addrs
}

// TestManyRecords checks that the record cache, where distinct records
// share slots, never answers with another record's location.
func TestManyRecords(t *testing.T) {
	entries, addrs := manyRecords(2500)
	db, err := geo.Open(geotest.WriteDB(t, t.TempDir(), geotest.GeoIP2City, entries))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for pass := range 3 {
		for i, a := range addrs {
			want := entries[netip.PrefixFrom(a, 64).Masked().String()]
			level := geo.Level((i + pass) % 3)
			if level < geo.City {
				want.City = ""
			}
			if level < geo.Region {
				want.Region = ""
			}
			if got, ok := db.Lookup(a, level); !ok || got != want {
				t.Fatalf("pass %d: Lookup(%s, %s) = %+v, %v; want %+v", pass, a, level, got, ok, want)
			}
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	db, err := geo.Open(geotest.WriteDB(b, dir, geotest.GeoIP2City, fixture))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v4 := netip.MustParseAddr("192.0.2.77")
	v6 := netip.MustParseAddr("2001:db8:1::77")
	for _, c := range []struct {
		name  string
		addr  netip.Addr
		level geo.Level
	}{
		{"v4_country", v4, geo.Country},
		{"v4_city", v4, geo.City},
		{"v6_country", v6, geo.Country},
		{"v6_city", v6, geo.City},
		{"private", netip.MustParseAddr("10.1.2.3"), geo.City},
		{"not_found", netip.MustParseAddr("8.8.8.8"), geo.City},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				db.Lookup(c.addr, c.level)
			}
		})
	}
	// Decoding nearly every time: four times more distinct records than
	// cache slots, visited in an order that defeats the cache.
	entries, addrs := manyRecords(1 << 14)
	many, err := geo.Open(geotest.WriteDB(b, dir, geotest.GeoIP2City, entries))
	if err != nil {
		b.Fatal(err)
	}
	defer many.Close()
	for _, level := range []geo.Level{geo.Country, geo.City} {
		b.Run("uncached_"+level.String(), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				many.Lookup(addrs[i%len(addrs)], level)
				i += 7919 // a prime: successive lookups hit unrelated records
			}
		})
	}
	b.Run("v4_country_parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				db.Lookup(v4, geo.Country)
			}
		})
	})
}
