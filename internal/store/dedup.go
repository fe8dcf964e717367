package store

import (
	"encoding/binary"
	"hash/maphash"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

// dedupKey is a 64-bit hash of an event's dedup key. A false match would
// drop a real event, but with the index at its 8M-key bound the chance per
// event is 8M/2^64 ≈ 4e-13: at 100,000 events/s, once in about 700 years.
// Halving the key against 128 bits halves the index's memory.
type dedupKey uint64

// dedupIndex remembers the keys of recently received events in generations
// by receive time, so forgetting old keys is dropping a whole map. It is
// rebuilt from the log on start, so its hash seeds may change every run.
type dedupIndex struct {
	seed     maphash.Seed
	window   int64 // ms
	genWidth int64 // ms
	maxKeys  int
	gens     []generation // oldest first
	keys     int
}

type generation struct {
	start int64 // ms; holds keys received in [start, start+genWidth)
	m     map[dedupKey]struct{}
}

// dedupGenerations is how many generations one window spans. Every
// lookup probes each live generation (at most dedupGenerations+1), and a
// miss — the common case — probes them all, so they are few and wide:
// keys live between one window and 1.5 windows.
const dedupGenerations = 2

func newDedupIndex(window time.Duration, maxKeys int) *dedupIndex {
	w := window.Milliseconds()
	gw := w / dedupGenerations
	if gw < 1 {
		gw = 1
	}
	return &dedupIndex{
		seed:     maphash.MakeSeed(),
		window:   w,
		genWidth: gw,
		maxKeys:  maxKeys,
	}
}

// msPerDay buckets event times into UTC days for the dedup key.
const msPerDay = 24 * 60 * 60 * 1000

// key hashes the dedup key: project, event, distinct_id, $insert_id and the
// UTC day of the event time. Mixpanel's query-time key has the exact time,
// but its compaction merges copies on the same day whatever their times;
// Veil uses the day so that a client retrying an event without "time"
// (stamped with each attempt's receive time) is still deduplicated.
func (d *dedupIndex) key(e *event.Event) dedupKey {
	var h maphash.Hash
	h.SetSeed(d.seed)
	var num [16]byte
	binary.LittleEndian.PutUint64(num[:8], uint64(e.Project))
	binary.LittleEndian.PutUint64(num[8:], uint64(floorDiv(e.Time, msPerDay)))
	h.Write(num[:])
	writeField(&h, e.Name)
	writeField(&h, e.DistinctID)
	writeField(&h, e.InsertID)
	k := dedupKey(h.Sum64())
	if k == 0 {
		k = 1 // zero means "no key"
	}
	return k
}

// writeField writes s with its length, so ("ab","c") and ("a","bc") differ.
func writeField(h *maphash.Hash, s string) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.WriteString(s)
}

func (d *dedupIndex) has(k dedupKey) bool {
	for i := len(d.gens) - 1; i >= 0; i-- {
		if _, ok := d.gens[i].m[k]; ok {
			return true
		}
	}
	return false
}

// add records k as received at ms (Unix milliseconds).
func (d *dedupIndex) add(k dedupKey, ms int64) {
	start := ms - ms%d.genWidth
	// Forget generations that left the window or overflow the key budget.
	for len(d.gens) > 0 && (d.gens[0].start+d.genWidth <= ms-d.window || d.keys >= d.maxKeys && len(d.gens) > 1) {
		d.keys -= len(d.gens[0].m)
		d.gens[0] = generation{}
		d.gens = d.gens[1:]
	}
	// File k under the newest generation unless it belongs to a later
	// time slot or is full; a full one rolls over early so that the
	// oldest can be forgotten to keep within maxKeys.
	limit := max(d.maxKeys/dedupGenerations, 1)
	var g *generation
	if n := len(d.gens); n > 0 && d.gens[n-1].start >= start && len(d.gens[n-1].m) < limit {
		g = &d.gens[n-1]
	} else {
		if n > 0 && d.gens[n-1].start > start {
			start = d.gens[n-1].start // a clock step back or replay of an old record
		}
		d.gens = append(d.gens, generation{start: start, m: make(map[dedupKey]struct{})})
		g = &d.gens[len(d.gens)-1]
	}
	if _, ok := g.m[k]; !ok {
		g.m[k] = struct{}{}
		d.keys++
	}
}

func (d *dedupIndex) remove(k dedupKey) {
	for i := range d.gens {
		if _, ok := d.gens[i].m[k]; ok {
			delete(d.gens[i].m, k)
			d.keys--
		}
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
