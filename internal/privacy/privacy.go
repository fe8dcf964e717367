// Package privacy owns the stage that every decoded event, profile update and
// identity link passes through between the collector's decoding and the
// write-ahead log: nothing decoded reaches disk or logs without passing here.
//
// Stage implements the project's Policy: identities become keyed
// pseudonyms (package pseudonym), known personal fields are dropped, every
// string is scanned for personal data and secrets (package pii), URLs are
// cleaned (package urlclean), IP addresses become a country (package geo)
// and user agents a browser family (package useragent), and an optional
// data contract drops what was not declared. Every change is counted per
// (project, event, property, reason), never with a value.
package privacy

import (
	"context"
	"net/netip"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
	"github.com/veil-analytics/veil/internal/privacy/useragent"
)

// Request is what the stage may know of the HTTP request an item arrived in.
// It lives in memory only and is never stored. One Request serves the items
// of one request, from one goroutine; it caches per-request work.
type Request struct {
	IP        netip.Addr // client address after trusted proxies; invalid when unknown
	UserAgent string
	Geolocate bool // false when the client asked for no geolocation (ip=0)

	policy        *compiled
	policyProject int64
	geoDone       bool
	geoOK         bool
	geoLevel      geo.Level
	geoLoc        geo.Location
	uaDone        bool
	ua            useragent.Info
	events        int       // events of this request seen so far
	cache         *reqCache // from the second event on: work to reuse
}

// reqCache is what the stage remembers between the events of one request:
// a mixpanel-browser batch is one user's events, with the same ids, URLs
// and properties. A request with one event never allocates it.
type reqCache struct {
	memo     [memoSize]memoEntry // recent pseudonyms
	memoNext int
	urls     [memoSize]urlMemo // recent URL values and what the stage made of them
	urlNext  int
	prev     [maxPrevProps]prevProp // the previous event's top-level properties, by position
}

// maxPrevProps is how many leading properties of an event are remembered
// for the next event of the request.
const maxPrevProps = 32

// prevProp is what the stage made of a top-level property, for the next
// event that has the same property at the same position.
type prevProp struct {
	c        *compiled
	key      string
	ki       keyInfo
	hasValue bool // in, out, keep and reasons describe a string value
	in, out  string
	keep     bool
	reasons  []reasonID
}

type urlMemo struct {
	c               *compiled
	kind            propKind
	in, out         string
	keep, dropEvent bool
	reasons         []reasonID
}

const memoSize = 8

type memoEntry struct {
	c          *compiled
	field      pseudonym.Field
	value, out string
}

// Passthrough keeps every item unchanged. Tests of other layers use it.
type Passthrough struct{}

// Event keeps e as it is.
func (Passthrough) Event(context.Context, *Request, *event.Event) (bool, error) { return true, nil }

// Profile keeps u as it is.
func (Passthrough) Profile(context.Context, *Request, *event.ProfileUpdate) (bool, error) {
	return true, nil
}

// Link keeps l as it is.
func (Passthrough) Link(context.Context, *event.IdentityLink) (bool, error) { return true, nil }
