package geotest_test

import (
	"net/netip"
	"testing"

	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/geo/geotest"
)

func TestWriteDB(t *testing.T) {
	entries := map[string]geo.Location{
		"203.0.113.0/24": {CountryCode: "JP", Region: "Tokyo", City: "Chiyoda"},
		"203.0.113.7":    {CountryCode: "KR", Region: "Seoul", City: "Jongno"}, // single address, inside the /24
		"2001:db8::7":    {CountryCode: "CL", Region: "Región Metropolitana", City: "Santiago"},
	}
	for _, typ := range []string{geotest.GeoIP2City, geotest.DBIPCityLite, geotest.GeoLite2Country} {
		db, err := geo.Open(geotest.WriteDB(t, t.TempDir(), typ, entries))
		if err != nil {
			t.Fatal(err)
		}
		for addr, want := range map[string]geo.Location{
			"203.0.113.6": entries["203.0.113.0/24"],
			"203.0.113.7": entries["203.0.113.7"],
			"203.0.113.8": entries["203.0.113.0/24"],
			"2001:db8::7": entries["2001:db8::7"],
		} {
			if typ == geotest.GeoLite2Country {
				want = geo.Location{CountryCode: want.CountryCode}
			}
			if got, ok := db.Lookup(netip.MustParseAddr(addr), geo.City); !ok || got != want {
				t.Errorf("%s %s: %+v %v, want %+v", typ, addr, got, ok, want)
			}
		}
		if _, ok := db.Lookup(netip.MustParseAddr("2001:db8::8"), geo.Country); ok {
			t.Errorf("%s: a single IPv6 address covers its neighbour", typ)
		}
		db.Close()
	}
}
