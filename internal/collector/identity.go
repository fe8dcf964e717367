package collector

import (
	"hash/maphash"
	"sync"

	"github.com/veil-analytics/veil/internal/event"
)

// appendLinks adds the identity links an event declares, as raw ids; the
// privacy stage pseudonymises them like every other identifier.
//
//   - Simplified ID Merge: an event with both $device_id and $user_id binds
//     the device ("$device:<id>", the distinct_id of its anonymous events)
//     to the user.
//   - $identify: $anon_id (or the browser's $anon_distinct_id) becomes
//     $identified_id (or distinct_id).
//   - $create_alias: alias becomes distinct_id.
//   - $merge: the second of $distinct_ids becomes the first.
func appendLinks(links []event.IdentityLink, e *event.Event) []event.IdentityLink {
	add := func(from, to, source string) {
		if from == "" || to == "" || from == to {
			return
		}
		links = append(links, event.IdentityLink{
			Project: e.Project, From: from, To: to, Source: source, Time: e.Time, Received: e.Received,
		})
	}
	str := func(key string) string {
		v, ok := event.Get(e.Props, key)
		if !ok {
			return ""
		}
		s, _ := idString(v)
		return s
	}
	if d, u := str("$device_id"), str("$user_id"); d != "" && u != "" {
		add("$device:"+d, u, "$device_id")
	}
	switch e.Name {
	case "$identify":
		from := str("$anon_id")
		if from == "" {
			from = str("$anon_distinct_id")
		}
		to := str("$identified_id")
		if to == "" {
			to = e.DistinctID
		}
		add(from, to, "$identify")
	case "$create_alias":
		add(str("alias"), e.DistinctID, "$create_alias")
	case "$merge":
		if ids, ok := event.Get(e.Props, "$distinct_ids"); ok && ids.Kind == event.Array && len(ids.Items) == 2 {
			a, _ := idString(ids.Items[0])
			b, _ := idString(ids.Items[1])
			add(b, a, "$merge")
		}
	}
	return links
}

// linkFilter forgets links it has recently passed on, so that a device's
// every event does not write the same link again. It is an optimisation
// only: storing a link twice is harmless.
type linkFilter struct {
	seed maphash.Seed
	max  int

	mu  sync.Mutex // guards set
	set map[uint64]struct{}
}

func newLinkFilter(max int) *linkFilter {
	return &linkFilter{seed: maphash.MakeSeed(), max: max, set: make(map[uint64]struct{})}
}

func (f *linkFilter) hash(l *event.IdentityLink) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(l.From)
	h.WriteByte(0)
	h.WriteString(l.To)
	h.WriteByte(0)
	h.WriteString(l.Source)
	var p [8]byte
	for i := range p {
		p[i] = byte(l.Project >> (8 * i))
	}
	h.Write(p[:])
	return h.Sum64()
}

// seen reports whether l was stored recently.
func (f *linkFilter) seen(l *event.IdentityLink) bool {
	k := f.hash(l)
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.set[k]
	return ok
}

// remember notes links that are now stored.
func (f *linkFilter) remember(links []event.IdentityLink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range links {
		if len(f.set) >= f.max {
			clear(f.set)
		}
		f.set[f.hash(&links[i])] = struct{}{}
	}
}
