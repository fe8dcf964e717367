package table

import "slices"

// Erase marks the person with distinct id id (and every id merged with it)
// as erased: reads skip their rows at once, the next compaction of each day
// removes them from disk, and later rows for them are not added. It
// returns the ordinals erased and whether the id was known.
func (t *Table) Erase(id string) ([]uint32, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.ids.Lookup(id)
	if !ok {
		return nil, false, nil
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
	return members, true, nil
}

// Erased reports whether a distinct id belongs to an erased person.
func (t *Table) Erased(id string) bool {
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
