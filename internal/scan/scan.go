package scan

import "context"

// Request says what a scan reads.
type Request struct {
	// From and To bound event times in Unix ms, [From, To); To == 0 means
	// no upper bound.
	From, To int64
	// Props are the event properties to read, by name.
	Props []string
	// Events, when not nil, are the only events read (indexes into
	// Source.Events): users with none of them are not visited.
	Events []uint32
	// Workers is how many goroutines scan (0: all cores).
	Workers int
}

// Sequence is one user's events in time order, with the properties the
// request asked for. Its slices belong to the scan and are reused for the
// next user: a visitor copies what it keeps.
type Sequence struct {
	// User is the backend's key of the person: the same for all their
	// events (identity merges applied) and in UserProps.
	User uint64
	// Times are Unix ms, ascending.
	Times []int64
	// Events are indexes into the Source's Events.
	Events []uint32
	// Props[k][i] is the code of Request.Props[k] at event i: 0 when
	// absent, else Dicts[k][code-1]. A worker's codes stand for the same
	// values for its whole scan (its dictionaries only grow), so a visitor
	// may keep state by code; values compare equal across workers only.
	Props [][]uint32
	Dicts [][]Value
}

// Value is Request.Props[k] at event i ("" when absent).
func (q *Sequence) Value(k, i int) Value {
	if c := q.Props[k][i]; c != 0 {
		return q.Dicts[k][c-1]
	}
	return ""
}

// Len is the number of events.
func (q *Sequence) Len() int { return len(q.Times) }

// Source is one project's events as of the moment it was opened, read one
// user at a time. The report engines use nothing else of a backend.
type Source interface {
	// Events are the event names; Sequence.Events index them.
	Events() []string
	// Scan calls visit once per worker, then that worker's function for
	// every user with events in the request's time range, on that worker's
	// goroutine. The first error stops the scan and is returned.
	Scan(ctx context.Context, req Request, visit func(worker int) func(*Sequence) error) error
	// UserProps returns the profile properties keys of every user that has
	// a profile, by Sequence.User: props[k] is keys[k] ("" when absent).
	UserProps(ctx context.Context, keys []string) (map[uint64][]Value, error)
	// Close releases what the source pins (files, memory).
	Close() error
}
