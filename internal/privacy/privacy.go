// Package privacy owns the stage that every decoded event, profile update and
// identity link passes through between the collector's decoding and the
// write-ahead log. Nothing decoded reaches disk or logs without passing here.
//
// This version is a pass-through (Passthrough); the privacy pipeline —
// pseudonyms, PII scanning, IP and user-agent reduction — fills it.
package privacy

import (
	"context"
	"net/netip"

	"github.com/veil-analytics/veil/internal/event"
)

// Request is what the stage may know of the HTTP request an item arrived in.
// It lives in memory only and is never stored.
type Request struct {
	IP        netip.Addr // client address after trusted proxies; invalid when unknown
	UserAgent string
	Geolocate bool // false when the client asked for no geolocation (ip=0)
}

// Passthrough keeps every item unchanged.
type Passthrough struct{}

// Event keeps e as it is.
func (Passthrough) Event(context.Context, *Request, *event.Event) (bool, error) { return true, nil }

// Profile keeps u as it is.
func (Passthrough) Profile(context.Context, *Request, *event.ProfileUpdate) (bool, error) {
	return true, nil
}

// Link keeps l as it is.
func (Passthrough) Link(context.Context, *event.IdentityLink) (bool, error) { return true, nil }
