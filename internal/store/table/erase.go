package table

import (
	"slices"
	"time"
)

// DayName is a partition's name: d20240101.
func DayName(day int32) string {
	return "d" + time.Unix(int64(day)*86400, 0).UTC().Format("20060102")
}

// Suppress marks the person with distinct id id (and every id merged with
// it) as erased: reads skip their rows at once, the next compaction of
// each day removes them from disk (Plan proposes it), and later rows for
// them are not added. An id never seen gets an ordinal, so that it is
// suppressed too. It returns the ordinals erased and whether the id was
// known before.
func (t *Table) Suppress(id string) ([]uint32, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.readOnly {
		return nil, false, errReadOnly
	}
	o, known := t.ids.Lookup(id)
	if !known {
		o = t.ids.Ordinal(id)
		n, err := t.ids.Sync(t.users)
		if err == nil {
			err = t.users.Sync()
		}
		if err != nil {
			return nil, false, err
		}
		t.man.UsersBytes += n
	}
	members := t.ids.Members(o)
	m := t.man
	m.Erased = slices.Clone(t.man.Erased)
	for _, u := range members {
		if !t.erased[u] {
			m.Erased = append(m.Erased, u)
		}
	}
	slices.Sort(m.Erased)
	if err := t.commitLocked(m); err != nil {
		return nil, true, err
	}
	for _, u := range members {
		t.erased[u] = true
	}
	t.anyErased.Store(true)
	return members, known, nil
}

// Erased reports whether a distinct id belongs to an erased person.
func (t *Table) Erased(id string) bool {
	if !t.anyErased.Load() {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.ids.Lookup(id)
	return ok && t.erased[t.ids.Canonical(o)]
}

// DropBefore removes every partition of a day before day (retention): the
// segments leave the manifest in one commit and their files are deleted
// once no snapshot reads them. It returns the rows dropped.
func (t *Table) DropBefore(day int32) (int64, error) {
	t.compactMu.Lock()
	defer t.compactMu.Unlock()
	t.mu.Lock()
	remove := map[string]bool{}
	var rows int64
	for _, r := range t.man.Segments {
		if r.Day < day {
			remove[r.File] = true
			rows += int64(r.Rows)
		}
	}
	t.mu.Unlock()
	if len(remove) == 0 {
		return 0, nil
	}
	return rows, t.commitAdd(nil, remove, 0)
}
