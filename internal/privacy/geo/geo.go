// Package geo maps an IP address to a coarse location — a country, and on
// request a region or a city — with a MaxMind-format database (.mmdb) the
// operator supplies: MaxMind GeoLite2/GeoIP2 City or Country, or DB-IP Lite
// City or Country, which share the GeoIP2 record layout. No database is
// bundled: their licences require the operator to fetch and refresh them.
//
// The address is only looked up, never kept: a DB caches decoded records by
// their offset in the file, never by address. Private, loopback,
// link-local, multicast and unspecified addresses are never looked up at
// all.
//
// What is read from a record: the country from country.iso_code (falling
// back to registered_country.iso_code, for networks whose users' country is
// unknown); the region from the first (largest) entry of subdivisions, its
// English name (names.en), or its iso_code when it has no English name; the
// city from city.names.en. English names match what Mixpanel reports as
// $region and $city, and DB-IP Lite records have names but no subdivision
// codes.
package geo

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Level is how precise a location may be. The zero value is Country, the
// strictest.
type Level uint8

// Levels, each including the ones before it.
const (
	Country Level = iota // country code only
	Region               // country and region (state, province)
	City                 // country, region and city
)

// String returns "country", "region" or "city".
func (l Level) String() string {
	switch l {
	case Country:
		return "country"
	case Region:
		return "region"
	case City:
		return "city"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// Location is where an address is, filled only up to the level asked for.
type Location struct {
	CountryCode string // ISO 3166-1 alpha-2, upper case, e.g. "DE"
	Region      string // e.g. "Bavaria"; empty below Region level or when unknown
	City        string // e.g. "Munich"; empty below City level or when unknown
}

// DB is an open geolocation database. It is safe for concurrent use,
// Close included: lookups that started before Close finish normally, later
// ones report nothing.
type DB struct {
	path      string
	dbType    string
	buildTime time.Time

	// r is the reader, nil once closed. It is an atomic pointer rather
	// than a field under a read-write mutex because the mutex's shared
	// reader count costs more than the lookup itself once two cores look
	// up at once (measured: 175 ns/op with the lock against 63 without,
	// on two cores).
	r atomic.Pointer[maxminddb.Reader]

	// cache remembers decoded records by data offset: a direct-mapped
	// table of immutable entries, replaced whole, so readers need no lock
	// beyond the atomic load.
	cache [cacheSize]atomic.Pointer[cacheEntry]
}

// Open opens the database at path. It must be a MaxMind DB whose metadata
// names a City, Country or Enterprise database (GeoIP2-*, GeoLite2-*,
// DBIP-*-Lite and the like); anything else, such as an ASN database, is
// refused, as is a file that is not a well-formed MaxMind DB.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geo: %s is not a readable MaxMind DB (.mmdb) file: %w", path, err)
	}
	md := r.Metadata
	if err := checkMetadata(md); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("geo: %s: %w", path, err)
	}
	if err := probe(r); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("geo: %s: the search tree or data section is damaged (truncated or corrupt file?): %w", path, err)
	}
	d := &DB{
		path:      path,
		dbType:    md.DatabaseType,
		buildTime: md.BuildTime().UTC(),
	}
	d.r.Store(r)
	return d, nil
}

// checkMetadata refuses databases that cannot hold countries, and metadata
// a well-formed file never has.
func checkMetadata(md maxminddb.Metadata) error {
	if md.BinaryFormatMajorVersion != 2 {
		return fmt.Errorf("unsupported MaxMind DB format version %d", md.BinaryFormatMajorVersion)
	}
	if md.IPVersion != 4 && md.IPVersion != 6 {
		return fmt.Errorf("metadata has IP version %d, want 4 or 6", md.IPVersion)
	}
	switch md.RecordSize {
	case 24, 28, 32:
	default:
		return fmt.Errorf("metadata has record size %d, want 24, 28 or 32", md.RecordSize)
	}
	if md.NodeCount == 0 {
		return errors.New("metadata says the search tree is empty")
	}
	if !isLocationType(md.DatabaseType) {
		return fmt.Errorf("database type is %q, not a City or Country database: Veil needs a GeoLite2/GeoIP2 City or Country database, or DB-IP Lite City or Country, to map addresses to countries (an ASN, ISP or anonymous-IP database has no countries)", md.DatabaseType)
	}
	return nil
}

// isLocationType reports whether a database type names a database with the
// GeoIP2 City or Country layout: "GeoLite2-City", "GeoIP2-Country",
// "GeoIP2-Enterprise" (a City superset), "DBIP-City-Lite",
// "DBIP-Country-Lite", "DBIP-Location-ISP (compat=Enterprise)", ... The
// "(compat=...)" suffix DB-IP uses, when present, decides.
func isLocationType(t string) bool {
	t = strings.ToLower(t)
	if i := strings.Index(t, "compat="); i >= 0 {
		t = t[i+len("compat="):]
	}
	for _, w := range []string{"asn", "anonymous", "connection", "domain", "isp", "user-count", "density"} {
		if strings.Contains(t, w) && !strings.Contains(t, "enterprise") {
			return false
		}
	}
	return strings.Contains(t, "city") || strings.Contains(t, "country") || strings.Contains(t, "enterprise")
}

// probe looks a few addresses of each family up and decodes what it finds, so
// that a file whose tree or data section is damaged fails at Open rather
// than silently at every lookup. (A full check, maxminddb's Verify, walks
// the whole file: seconds for a City database.)
func probe(r *maxminddb.Reader) error {
	addrs := []netip.Addr{netip.AddrFrom4([4]byte{1, 1, 1, 1}), netip.AddrFrom4([4]byte{203, 0, 113, 1})}
	if r.Metadata.IPVersion == 6 {
		addrs = append(addrs, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2a00::1"))
	}
	for _, a := range addrs {
		// Decoded generically: this checks the file, not the layout of
		// its records (a malformed record fails only its own lookups).
		var v any
		if err := r.Lookup(a).Decode(&v); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the location of ip up to level. IPv4-mapped IPv6 addresses
// are looked up as IPv4, and zones are ignored. It reports false, without
// looking anything up, for invalid, unspecified, loopback, private,
// link-local and multicast addresses; and false when the database has no
// country for the address, the record is malformed or the DB is closed.
func (d *DB) Lookup(ip netip.Addr, level Level) (Location, bool) {
	ip = ip.Unmap().WithZone("")
	if !public(ip) {
		return Location{}, false
	}
	if level > City {
		level = City
	}
	r := d.r.Load()
	if r == nil {
		return Location{}, false
	}
	if ip.Is6() && r.Metadata.IPVersion == 4 {
		return Location{}, false
	}
	res := r.Lookup(ip)
	if !res.Found() {
		return Location{}, false
	}
	// Fast path: this record was decoded at this level before.
	off := res.Offset()
	slot := &d.cache[cacheSlot(off, level)]
	if e := slot.Load(); e != nil && e.offset == off && e.level == level {
		return e.loc, e.ok
	}
	// Slow path: decode, and remember.
	loc, ok := decode(res, level)
	slot.Store(&cacheEntry{offset: off, level: level, loc: loc, ok: ok})
	return loc, ok
}

// decode reads what level asks for from a GeoIP2-layout record, skipping
// everything else (names in other languages, coordinates, postal codes, ...)
// without decoding it. A malformed record (a value of the wrong kind where
// one of these is read) gives false.
func decode(res maxminddb.Result, level Level) (Location, bool) {
	var loc Location
	if err := res.DecodePath(&loc.CountryCode, "country", "iso_code"); err != nil {
		return Location{}, false
	}
	if loc.CountryCode == "" {
		if err := res.DecodePath(&loc.CountryCode, "registered_country", "iso_code"); err != nil {
			return Location{}, false
		}
		if loc.CountryCode == "" {
			return Location{}, false
		}
	}
	if level >= Region {
		// The first subdivision is the largest.
		if err := res.DecodePath(&loc.Region, "subdivisions", 0, "names", "en"); err != nil {
			return Location{}, false
		}
		if loc.Region == "" {
			if err := res.DecodePath(&loc.Region, "subdivisions", 0, "iso_code"); err != nil {
				return Location{}, false
			}
		}
	}
	if level >= City {
		if err := res.DecodePath(&loc.City, "city", "names", "en"); err != nil {
			return Location{}, false
		}
	}
	return loc, true
}

// cacheSize is the number of decoded records a DB remembers (a power of
// two). A Country database has a few hundred distinct records, so they all
// fit; a City database has far more, and the addresses seen most keep their
// slots. Decoding costs several times the tree walk (see BenchmarkLookup).
const cacheSize = 4096

// cacheEntry is one decoded record at one level; immutable once stored.
// It holds a location, never an address.
type cacheEntry struct {
	offset uintptr
	level  Level
	ok     bool
	loc    Location
}

// cacheSlot maps a record offset and level to a slot (Fibonacci hashing).
func cacheSlot(off uintptr, level Level) uint64 {
	h := (uint64(off)<<2 | uint64(level)) * 0x9E3779B97F4A7C15
	return h >> (64 - 12) // log2(cacheSize)
}

// public reports whether ip may be looked up at all.
func public(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsLoopback() && !ip.IsPrivate() &&
		!ip.IsLinkLocalUnicast() && !ip.IsLinkLocalMulticast() && !ip.IsInterfaceLocalMulticast() &&
		!ip.IsMulticast()
}

// Metadata returns the database type (e.g. "GeoLite2-Country") and when the
// database was built, to record which data a location came from.
func (d *DB) Metadata() (dbType string, buildEpoch time.Time) {
	return d.dbType, d.buildTime
}

// Path is the file the DB was opened from.
func (d *DB) Path() string { return d.path }

// Close stops lookups: those that already hold the reader finish, every
// later one reports false. Closing twice is harmless.
//
// The file's memory map is not unmapped here, since a lookup in flight may
// still be reading it; maxminddb unmaps it (runtime.AddCleanup) once the
// reader is unreachable, that is after the last such lookup, at the next
// garbage collection. Strings in returned Locations are copies and stay
// valid.
func (d *DB) Close() error {
	d.r.Store(nil)
	return nil
}
