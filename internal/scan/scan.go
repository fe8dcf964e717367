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

// Rows are a batch of events in stored order, not gathered by user: runs
// of one user's events, each in time order. The user's other events come
// in other batches, on any worker, in any order. Its slices belong to the
// scan and are reused for the next batch.
type Rows struct {
	// Users[r] is the user of run r, whose events are [Ends[r-1], Ends[r])
	// (run 0 starts at 0).
	Users []uint64
	Ends  []int
	// Seq holds the events of every run: Events, Props and Dicts as in a
	// Sequence; Times stays nil until LoadTimes; Seq.User is not used.
	Seq Sequence
	// Lo and Hi bound the events' times: [Lo, Hi).
	Lo, Hi int64
	// LoadTimes sets Seq.Times: a visitor that can tell the buckets of
	// the events from Lo and Hi never pays for them.
	LoadTimes func() error
}

// Len is the number of events.
func (r *Rows) Len() int { return len(r.Seq.Events) }

// RowSource is a Source that can also hand out its events in batches of
// Rows, skipping the per-user gather of Scan: what reports that add up
// events one at a time (counts, sums, distinct users by set) need.
type RowSource interface {
	Source
	// ScanRows calls visit once per worker, then that worker's function
	// for every batch of events in the request's time range (of the
	// request's events only, when it names them). The first error stops
	// the scan and is returned.
	ScanRows(ctx context.Context, req Request, visit func(worker int) func(*Rows) error) error
}
