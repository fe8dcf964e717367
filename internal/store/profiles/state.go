// Package profiles owns the current state of user and group profiles.
//
// A State holds, per project, the properties of every user profile (keyed by
// distinct id, which is already a pseudonym) and of every group profile
// (keyed by group key and group id). Apply folds /engage and /groups updates
// into it in arrival order with Mixpanel's semantics. Durability is the
// caller's: it writes a snapshot with WriteTo and loads it with Read.
//
// Semantics where Mixpanel's documentation is silent or loose (each is
// pinned by a test):
//
//   - Ops apply in the order of u.Ops (the collector orders them $set_once,
//     $set, $add, $union, $append, $remove, $unset). A $delete anywhere in
//     the update deletes the profile and the other ops are ignored.
//   - $set, $set_once, $add, $append and $union create a missing profile,
//     even with an empty object; $remove and $unset never do.
//   - An op whose value has the wrong JSON type is ignored, as are unknown
//     ops: $unset takes a list of names (other items are skipped), every
//     other op an object. Within $add a non-number value, and within $union
//     a non-list value, skips that property. The collector already refuses
//     these; State does not trust its input to be checked.
//   - $add to a missing property stores 0+v. $add to a property that holds
//     anything but a number leaves it unchanged: Mixpanel documents $add for
//     numbers only, and coercing strings would invent data.
//   - $append, $union and $remove on a property that holds anything but a
//     list leave it unchanged. $append to a missing property stores [v].
//   - $union adds each value that is not yet in the list, once, in request
//     order; duplicates already in the list stay. $union of [] to a missing
//     property stores [].
//   - $remove removes every item equal to the value (event.Value.Equal); a
//     missing property or value is a no-op. $unset of a missing name is a
//     no-op.
//   - $last_seen follows Mixpanel's HTTP spec ("Mixpanel will add a Last
//     Seen property associated with the current time for all $set, $append,
//     and $add operations", unless $ignore_time): an update with a
//     well-formed $set, $append or $add and without IgnoreTime sets
//     $last_seen to u.Time (Unix ms, a number). It is set before the ops
//     run, so an op that writes $last_seen itself wins. Updates apply in
//     arrival order, so an update with an older $time moves it back.
//   - New properties go after the existing ones; overwritten ones keep their
//     place.
//   - IgnoreAlias has no effect: with Simplified ID Merge a profile is keyed
//     by its distinct id alone.
//   - Updates with an empty distinct id or group id are ignored, and so are
//     values nested deeper than 128 levels (the wire parser allows 32).
//   - State applies every op to users and groups alike; refusing $append on
//     /groups is the collector's job.
package profiles

import (
	"encoding/binary"
	"strings"

	"github.com/veil-analytics/veil/internal/event"
)

// lastSeen is the property Mixpanel maintains on every touched profile.
const lastSeen = "$last_seen"

// State is the current properties of every user and group profile of every
// project. The zero State is empty and ready to use.
//
// A State is not safe for concurrent use. Apply and ForgetUser must not run
// concurrently with any other method; the readers (User, Group, EachUser,
// Len, WriteTo) may run concurrently with each other, so a sync.RWMutex
// around it is enough.
type State struct {
	projects map[int64]*project
	w        work // Apply's scratch, reused so updates allocate little
}

type project struct {
	users  map[string]string            // distinct id → blob
	groups map[string]map[string]string // group key → group id → blob
}

func (p *project) empty() bool { return len(p.users) == 0 && len(p.groups) == 0 }

// User returns the properties of a user profile and whether it exists. The
// slice is the caller's to keep or modify.
func (s *State) User(project int64, distinctID string) (props []event.Field, ok bool) {
	p := s.projects[project]
	if p == nil {
		return nil, false
	}
	blob, ok := p.users[distinctID]
	if !ok {
		return nil, false
	}
	return decodeProps(blob), true
}

// Group returns the properties of a group profile and whether it exists.
// The slice is the caller's to keep or modify.
func (s *State) Group(project int64, key, id string) ([]event.Field, bool) {
	p := s.projects[project]
	if p == nil {
		return nil, false
	}
	blob, ok := p.groups[key][id]
	if !ok {
		return nil, false
	}
	return decodeProps(blob), true
}

// EachUser calls fn with every user profile of project, in no particular
// order, until fn returns false. fn may keep props; it may call ForgetUser
// but not Apply.
func (s *State) EachUser(project int64, fn func(distinctID string, props []event.Field) bool) {
	p := s.projects[project]
	if p == nil {
		return
	}
	for id, blob := range p.users {
		if !fn(id, decodeProps(blob)) {
			return
		}
	}
}

// Len returns the number of user and group profiles of project.
func (s *State) Len(project int64) (users, groups int) {
	p := s.projects[project]
	if p == nil {
		return 0, 0
	}
	for _, ids := range p.groups {
		groups += len(ids)
	}
	return len(p.users), groups
}

// ForgetUser deletes a user profile, as erasure requires. Unlike a $delete
// update it is not an ingested operation; the effect on the State is the
// same.
func (s *State) ForgetUser(project int64, distinctID string) {
	p := s.projects[project]
	if p == nil {
		return
	}
	delete(p.users, distinctID)
	if p.empty() {
		delete(s.projects, project)
	}
}

// Apply applies one update. It keeps nothing of u but, possibly, its id
// strings: a new profile's ids are copied so that an id cut from a large
// buffer does not pin it, but updating a profile may leave u's id as the
// map key (Go replaces string keys on assignment). The log decoder and the
// pseudonymizer make ids as small strings of their own.
func (s *State) Apply(u *event.ProfileUpdate) {
	group := u.IsGroup()
	if group && u.GroupID == "" || !group && u.DistinctID == "" {
		return
	}
	for i := range u.Ops {
		if u.Ops[i].Op == "$delete" {
			s.remove(u)
			return
		}
	}

	p := s.projects[u.Project]
	var old string
	var exists bool
	if p != nil {
		if group {
			old, exists = p.groups[u.GroupKey][u.GroupID]
		} else {
			old, exists = p.users[u.DistinctID]
		}
	}
	w := &s.w
	defer w.reset()
	if exists {
		w.load(old)
	}
	created := exists
	if !u.IgnoreTime && bumpsLastSeen(u.Ops) {
		w.put(lastSeen, event.NumberValue(float64(u.Time)))
		created = true
	}
	for i := range u.Ops {
		if w.apply(&u.Ops[i]) {
			created = true
		}
	}
	if !created || exists && !w.dirty {
		return
	}
	blob := w.encode()

	if p == nil {
		if s.projects == nil {
			s.projects = make(map[int64]*project)
		}
		p = &project{}
		s.projects[u.Project] = p
	}
	if !group {
		if p.users == nil {
			p.users = make(map[string]string)
		}
		if exists {
			p.users[u.DistinctID] = blob
		} else {
			p.users[strings.Clone(u.DistinctID)] = blob
		}
		return
	}
	ids := p.groups[u.GroupKey]
	if ids == nil {
		if p.groups == nil {
			p.groups = make(map[string]map[string]string)
		}
		ids = make(map[string]string)
		p.groups[strings.Clone(u.GroupKey)] = ids
	}
	if exists {
		ids[u.GroupID] = blob
	} else {
		ids[strings.Clone(u.GroupID)] = blob
	}
}

// remove deletes the profile u addresses, and maps left empty.
func (s *State) remove(u *event.ProfileUpdate) {
	p := s.projects[u.Project]
	if p == nil {
		return
	}
	if !u.IsGroup() {
		delete(p.users, u.DistinctID)
	} else if ids := p.groups[u.GroupKey]; ids != nil {
		delete(ids, u.GroupID)
		if len(ids) == 0 {
			delete(p.groups, u.GroupKey)
		}
	}
	if p.empty() {
		delete(s.projects, u.Project)
	}
}

// bumpsLastSeen reports whether ops include one that Mixpanel stamps with
// $last_seen: a well-formed $set, $append or $add.
func bumpsLastSeen(ops []event.ProfileOp) bool {
	for i := range ops {
		switch ops[i].Op {
		case "$set", "$append", "$add":
			if ops[i].Value.Kind == event.Object {
				return true
			}
		}
	}
	return false
}

// entry is one property while Apply works on a profile: where its key and
// encoded value are, in the stored blob or in work.vals. It holds no
// pointers, so filling and resetting the scratch costs no write barriers.
type entry struct {
	kfrom    int // where the key's length starts, for a key in the blob
	klo, khi int
	vlo, vhi int
	kNew     bool // the key is in work.vals, else in work.blob
	vNew     bool // the value is in work.vals, else in work.blob
	gone     bool // unset
}

// indexAbove is the number of properties above which work looks keys up in
// a map, so that a 2000-property $set on a 2000-property profile stays
// linear.
const indexAbove = 32

// work is the scratch Apply edits one profile in. Untouched properties are
// copied from the old blob without decoding.
type work struct {
	blob    string // the stored blob
	ents    []entry
	vals    []byte // keys and encoded values written by this update
	out     []byte // the new blob, before it becomes a string
	idx     map[string]int
	indexed bool
	gone    int
	dirty   bool
	items   []event.Value // list items, for $union and $remove
}

func (w *work) reset() {
	w.blob = ""
	w.ents = w.ents[:0]
	w.vals = w.vals[:0]
	w.out = w.out[:0]
	clear(w.idx) // drop references to the old blob and to the update
	w.indexed = false
	w.gone = 0
	w.dirty = false
	clear(w.items)
	w.items = w.items[:0]
}

// load splits a stored blob into entries.
func (w *work) load(blob string) {
	w.blob = blob
	r := reader{s: blob}
	n := r.count()
	for i := 0; i < n && r.err == ""; i++ {
		kfrom := r.off
		kn := r.count()
		klo := r.off
		r.off += kn
		vlo := r.off
		r.skip(0)
		w.ents = append(w.ents, entry{kfrom: kfrom, klo: klo, khi: klo + kn, vlo: vlo, vhi: r.off})
	}
	if len(w.ents) > indexAbove {
		w.index()
	}
}

// key returns the key of e.
func (w *work) key(e *entry) string {
	if e.kNew {
		return string(w.vals[e.klo:e.khi]) // rare: only when index starts mid-update
	}
	return w.blob[e.klo:e.khi]
}

func (w *work) keyIs(e *entry, key string) bool {
	if e.kNew {
		return string(w.vals[e.klo:e.khi]) == key // compared without allocating
	}
	return w.blob[e.klo:e.khi] == key
}

func (w *work) index() {
	if w.idx == nil {
		w.idx = make(map[string]int, len(w.ents))
	}
	for i := range w.ents {
		if e := &w.ents[i]; !e.gone {
			w.idx[w.key(e)] = i
		}
	}
	w.indexed = true
}

// find returns the index of the live entry for key, or -1.
func (w *work) find(key string) int {
	if w.indexed {
		if i, ok := w.idx[key]; ok {
			return i
		}
		return -1
	}
	for i := range w.ents {
		if e := &w.ents[i]; !e.gone && w.keyIs(e, key) {
			return i
		}
	}
	return -1
}

// value returns the encoded value of entry i.
func (w *work) value(i int) string {
	e := &w.ents[i]
	if e.vNew {
		// Rare: a property written and then read back within one update.
		return string(w.vals[e.vlo:e.vhi])
	}
	return w.blob[e.vlo:e.vhi]
}

// setEncoded gives key the value encoded in w.vals[lo:]; i is key's entry
// or -1.
func (w *work) setEncoded(i int, key string, lo int) {
	hi := len(w.vals)
	if i >= 0 {
		e := &w.ents[i]
		if !e.vNew && w.blob[e.vlo:e.vhi] == string(w.vals[lo:hi]) {
			// The same value again, as browsers $set on every page: keep
			// the old bytes, so encode copies them in one run, or Apply
			// skips the write.
			w.vals = w.vals[:lo]
			return
		}
		e.vlo, e.vhi, e.vNew = lo, hi, true
		w.dirty = true
		return
	}
	w.dirty = true
	klo := len(w.vals)
	w.vals = append(w.vals, key...)
	w.ents = append(w.ents, entry{klo: klo, khi: len(w.vals), kNew: true, vlo: lo, vhi: hi, vNew: true})
	if w.indexed {
		w.idx[key] = len(w.ents) - 1
	} else if len(w.ents) > indexAbove {
		w.index()
	}
}

func (w *work) put(key string, v event.Value) {
	i := w.find(key)
	lo := len(w.vals)
	w.vals = appendValue(w.vals, v)
	w.setEncoded(i, key, lo)
}

func (w *work) unset(key string) {
	i := w.find(key)
	if i < 0 {
		return
	}
	w.ents[i].gone = true
	w.gone++
	w.dirty = true
	if w.indexed {
		delete(w.idx, key)
	}
}

// encode returns the blob of the live entries. Untouched properties that
// were next to each other in the old blob are copied in one piece.
func (w *work) encode() string {
	w.out = binary.AppendUvarint(w.out[:0], uint64(len(w.ents)-w.gone))
	runFrom, runTo := 0, 0 // bytes of the old blob still to copy
	for i := range w.ents {
		e := &w.ents[i]
		if e.gone {
			continue
		}
		if !e.kNew && !e.vNew {
			if e.kfrom != runTo {
				w.out = append(w.out, w.blob[runFrom:runTo]...)
				runFrom = e.kfrom
			}
			runTo = e.vhi
			continue
		}
		w.out = append(w.out, w.blob[runFrom:runTo]...)
		runFrom, runTo = 0, 0
		if e.kNew {
			w.out = binary.AppendUvarint(w.out, uint64(e.khi-e.klo))
			w.out = append(w.out, w.vals[e.klo:e.khi]...)
		} else {
			w.out = append(w.out, w.blob[e.kfrom:e.khi]...)
		}
		if e.vNew {
			w.out = append(w.out, w.vals[e.vlo:e.vhi]...)
		} else {
			w.out = append(w.out, w.blob[e.vlo:e.vhi]...)
		}
	}
	w.out = append(w.out, w.blob[runFrom:runTo]...)
	return string(w.out)
}

// listItems decodes the items of an encoded list into w.items and returns
// where the items start in enc; ok is false if enc is not a list.
func (w *work) listItems(enc string) (itemsAt int, ok bool) {
	r := reader{s: enc}
	if r.tag() != tagArray {
		return 0, false
	}
	n := r.count()
	itemsAt = r.off
	w.items = w.items[:0]
	for ; n > 0 && r.err == ""; n-- {
		w.items = append(w.items, r.value(1))
	}
	return itemsAt, r.err == ""
}

// apply applies one op and reports whether it creates the profile if
// missing.
func (w *work) apply(op *event.ProfileOp) (creates bool) {
	v := &op.Value
	if op.Op == "$unset" {
		if v.Kind == event.Array {
			for i := range v.Items {
				if v.Items[i].Kind == event.String {
					w.unset(v.Items[i].Str)
				}
			}
		}
		return false
	}
	if v.Kind != event.Object {
		return false
	}
	fs := v.Fields
	switch op.Op {
	case "$set":
		for i := range fs {
			if !tooDeep(fs[i].Value, maxNesting) {
				w.put(fs[i].Key, fs[i].Value)
			}
		}
	case "$set_once":
		for i := range fs {
			if w.find(fs[i].Key) < 0 && !tooDeep(fs[i].Value, maxNesting) {
				w.put(fs[i].Key, fs[i].Value)
			}
		}
	case "$add":
		for i := range fs {
			w.add(fs[i].Key, fs[i].Value)
		}
	case "$append":
		for i := range fs {
			w.append(fs[i].Key, fs[i].Value)
		}
	case "$union":
		for i := range fs {
			w.union(fs[i].Key, fs[i].Value)
		}
	case "$remove":
		for i := range fs {
			w.remove(fs[i].Key, fs[i].Value)
		}
		return false
	default:
		return false
	}
	return true
}

func (w *work) add(key string, v event.Value) {
	if v.Kind != event.Number {
		return
	}
	i := w.find(key)
	sum := 0 + v.Num
	if i >= 0 {
		r := reader{s: w.value(i)}
		if r.tag() != tagNumber {
			return
		}
		sum = r.float() + v.Num
	}
	lo := len(w.vals)
	w.vals = appendNumber(w.vals, sum)
	w.setEncoded(i, key, lo)
}

func (w *work) append(key string, v event.Value) {
	if tooDeep(v, maxNesting-1) {
		return
	}
	i := w.find(key)
	lo := len(w.vals)
	if i < 0 {
		w.vals = append(w.vals, tagArray, 1)
		w.vals = appendValue(w.vals, v)
		w.setEncoded(i, key, lo)
		return
	}
	enc := w.value(i)
	r := reader{s: enc}
	if r.tag() != tagArray {
		return
	}
	n := r.uvarint()
	// The old items are copied as they are: $append to a long list (such
	// as $transactions) does not decode it.
	w.vals = append(w.vals, tagArray)
	w.vals = binary.AppendUvarint(w.vals, n+1)
	w.vals = append(w.vals, enc[r.off:]...)
	w.vals = appendValue(w.vals, v)
	w.setEncoded(i, key, lo)
}

func (w *work) union(key string, v event.Value) {
	if v.Kind != event.Array || tooDeep(v, maxNesting) {
		return
	}
	i := w.find(key)
	var enc string
	itemsAt := 0
	if i >= 0 {
		var ok bool
		enc = w.value(i)
		if itemsAt, ok = w.listItems(enc); !ok {
			return
		}
	} else {
		w.items = w.items[:0]
	}
	had := len(w.items)
	for _, it := range v.Items {
		if !contains(w.items, it) {
			w.items = append(w.items, it)
		}
	}
	if i >= 0 && len(w.items) == had {
		return
	}
	lo := len(w.vals)
	w.vals = append(w.vals, tagArray)
	w.vals = binary.AppendUvarint(w.vals, uint64(len(w.items)))
	w.vals = append(w.vals, enc[itemsAt:]...)
	for _, it := range w.items[had:] {
		w.vals = appendValue(w.vals, it)
	}
	w.setEncoded(i, key, lo)
}

func (w *work) remove(key string, v event.Value) {
	i := w.find(key)
	if i < 0 {
		return
	}
	if _, ok := w.listItems(w.value(i)); !ok {
		return
	}
	kept := w.items[:0]
	for _, it := range w.items {
		if !it.Equal(v) {
			kept = append(kept, it)
		}
	}
	if len(kept) == len(w.items) {
		return
	}
	lo := len(w.vals)
	w.vals = appendValue(w.vals, event.Value{Kind: event.Array, Items: kept})
	w.setEncoded(i, key, lo)
}

func contains(items []event.Value, v event.Value) bool {
	for i := range items {
		if items[i].Equal(v) {
			return true
		}
	}
	return false
}
