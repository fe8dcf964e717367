package table

import "github.com/veil-analytics/veil/internal/store/segment"

// coder gives the values of a scan's property columns one goroutine's
// own codes, the same for its whole scan: segments each have their own
// dictionary, a scan speaks one language. dicts[k][c-1] is the value of
// code c of column k; dicts only grows.
type coder struct {
	dicts [][]segment.Atom
	index []map[segment.Atom]uint32
}

func newCoder(columns int) coder {
	c := coder{dicts: make([][]segment.Atom, columns), index: make([]map[segment.Atom]uint32, columns)}
	for k := range c.index {
		c.index[k] = map[segment.Atom]uint32{}
	}
	return c
}

// intern returns the code of a value of column k (0 for "").
func (c *coder) intern(k int, a segment.Atom) uint32 {
	if a == "" {
		return 0
	}
	if code, ok := c.index[k][a]; ok {
		return code
	}
	c.dicts[k] = append(c.dicts[k], a)
	code := uint32(len(c.dicts[k]))
	c.index[k][a] = code
	return code
}

// remap maps a segment's dictionary of column k (its code i+1 is
// dict[i]) to codes.
func (c *coder) remap(k int, dict []segment.Atom) []uint32 {
	m := make([]uint32, len(dict)+1)
	for i, a := range dict {
		m[i+1] = c.intern(k, a)
	}
	return m
}
