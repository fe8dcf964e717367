// Package geotest builds small MaxMind-format databases for tests, so that
// no test needs (or claims) real geography. Use documentation networks
// only: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32.
package geotest

import (
	"bufio"
	"cmp"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/veil-analytics/veil/internal/privacy/geo"
)

// Database types WriteDB knows the record layout of.
const (
	GeoIP2City      = "GeoIP2-City"
	GeoIP2Country   = "GeoIP2-Country"
	GeoLite2City    = "GeoLite2-City"
	GeoLite2Country = "GeoLite2-Country"
	DBIPCityLite    = "DBIP-City-Lite"
	DBIPCountryLite = "DBIP-Country-Lite"
	GeoLite2ASN     = "GeoLite2-ASN"
)

// BuildEpoch is the build time of every database written here:
// 2026-01-01T00:00:00Z.
const BuildEpoch int64 = 1767225600

// WriteDB writes a database of type dbType to a new file in dir and returns
// its path. entries maps networks ("192.0.2.0/24", "2001:db8::/48") or
// single addresses ("203.0.113.7") to their location; more specific
// networks win over the ones containing them.
//
// The records have the layout of the real databases of that type:
//   - "GeoIP2-City", "GeoLite2-City" (and any other type containing
//     "City"): continent, country and registered_country with iso_code and
//     names, subdivisions with iso_code (the first letters of the region's
//     name, upper-cased) and names, city names, location, postal code;
//   - "GeoIP2-Country", "GeoLite2-Country" (any type containing "Country"):
//     continent, country and registered_country only, whatever the entry
//     says about region and city;
//   - "DBIP-City-Lite", "DBIP-Country-Lite" (any type starting with "DBIP"):
//     as above but subdivisions carry names only, as DB-IP's do;
//   - "GeoLite2-ASN" (any type containing "ASN"): autonomous system number
//     and organisation, no location at all.
//
// Region and City are English names; other languages ("de") are added with
// a prefix so that a reader picking the wrong language is caught.
func WriteDB(t testing.TB, dir string, dbType string, entries map[string]geo.Location) string {
	t.Helper()
	records := make(map[string]mmdbtype.Map, len(entries))
	for network, loc := range entries {
		records[network] = Record(dbType, loc)
	}
	return WriteRecords(t, dir, dbType, records)
}

// Record returns the record WriteDB stores for loc in a dbType database.
func Record(dbType string, loc geo.Location) mmdbtype.Map {
	if strings.Contains(dbType, "ASN") {
		return mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(64496), // documentation ASN (RFC 5398)
			"autonomous_system_organization": mmdbtype.String("Example Documentation Network"),
		}
	}
	country := mmdbtype.Map{
		"geoname_id": mmdbtype.Uint32(1),
		"iso_code":   mmdbtype.String(loc.CountryCode),
		"names":      names(loc.CountryCode),
	}
	rec := mmdbtype.Map{
		"continent":          mmdbtype.Map{"code": mmdbtype.String("EU"), "geoname_id": mmdbtype.Uint32(2), "names": names("Europe")},
		"country":            country,
		"registered_country": country,
	}
	if loc.CountryCode == "" {
		delete(rec, "country")
		delete(rec, "registered_country")
	}
	if !strings.Contains(dbType, "City") {
		return rec
	}
	if loc.Region != "" {
		sub := mmdbtype.Map{"geoname_id": mmdbtype.Uint32(3), "names": names(loc.Region)}
		if !strings.HasPrefix(dbType, "DBIP") {
			code := []rune(strings.ToUpper(loc.Region))
			sub["iso_code"] = mmdbtype.String(string(code[:min(2, len(code))]))
		}
		// A second, smaller subdivision: readers must take the first.
		rec["subdivisions"] = mmdbtype.Slice{sub, mmdbtype.Map{"names": names("Sub " + loc.Region)}}
	}
	if loc.City != "" {
		rec["city"] = mmdbtype.Map{"geoname_id": mmdbtype.Uint32(4), "names": names(loc.City)}
	}
	rec["location"] = mmdbtype.Map{
		"accuracy_radius": mmdbtype.Uint16(100),
		"latitude":        mmdbtype.Float64(0.5),
		"longitude":       mmdbtype.Float64(0.5),
		"time_zone":       mmdbtype.String("Etc/UTC"),
	}
	rec["postal"] = mmdbtype.Map{"code": mmdbtype.String("00000")}
	return rec
}

func names(en string) mmdbtype.Map {
	return mmdbtype.Map{"de": mmdbtype.String("de:" + en), "en": mmdbtype.String(en), "zh-CN": mmdbtype.String("zh:" + en)}
}

// WriteRecords writes a database of type dbType holding exactly the given
// records to a new file in dir and returns its path. It is the escape
// hatch for layouts WriteDB does not produce.
func WriteRecords(t testing.TB, dir string, dbType string, records map[string]mmdbtype.Map) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "Veil test database (documentation networks only)"},
		Languages:               []string{"de", "en", "zh-CN"},
		IPVersion:               6,
		RecordSize:              24,
		IncludeReservedNetworks: true,
		BuildEpoch:              BuildEpoch,
	})
	if err != nil {
		t.Fatalf("geotest: %v", err)
	}
	type entry struct {
		net *net.IPNet
		rec mmdbtype.Map
	}
	list := make([]entry, 0, len(records))
	for network, rec := range records {
		n, err := parseNetwork(network)
		if err != nil {
			t.Fatalf("geotest: network %q: %v", network, err)
		}
		list = append(list, entry{n, rec})
	}
	// Wider networks first, so that narrower ones overwrite their part.
	slices.SortFunc(list, func(a, b entry) int {
		ao, _ := a.net.Mask.Size()
		bo, _ := b.net.Mask.Size()
		return cmp.Or(cmp.Compare(ao, bo), strings.Compare(a.net.String(), b.net.String()))
	})
	for _, e := range list {
		if err := tree.Insert(e.net, e.rec); err != nil {
			t.Fatalf("geotest: insert %s: %v", e.net, err)
		}
	}
	f, err := os.CreateTemp(dir, strings.ReplaceAll(dbType, "/", "_")+"-*.mmdb")
	if err != nil {
		t.Fatalf("geotest: %v", err)
	}
	w := bufio.NewWriter(f)
	if _, err := tree.WriteTo(w); err != nil {
		_ = f.Close()
		t.Fatalf("geotest: write %s: %v", f.Name(), err)
	}
	if err := w.Flush(); err != nil {
		_ = f.Close()
		t.Fatalf("geotest: write %s: %v", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("geotest: close %s: %v", f.Name(), err)
	}
	return filepath.Clean(f.Name())
}

// parseNetwork accepts a CIDR network or a single address.
func parseNetwork(s string) (*net.IPNet, error) {
	if strings.Contains(s, "/") {
		_, n, err := net.ParseCIDR(s)
		return n, err
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, &net.ParseError{Type: "IP address", Text: s}
	}
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}, nil
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}, nil
}
