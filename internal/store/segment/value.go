package segment

import (
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/scan"
)

// Atom is a stored property value: a scan.Value, so that scans hand the
// report engines what the segments hold without converting it.
type Atom = scan.Value

// AppendAtom appends the atom of v to dst.
func AppendAtom(dst []byte, v event.Value) []byte { return scan.AppendValue(dst, v) }
