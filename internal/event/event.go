package event

// Event is one tracked event as Veil stores it. The reserved properties that
// Mixpanel sends inside "properties" (token, distinct_id, time, $insert_id)
// are lifted into fields; Props holds the rest in input order.
type Event struct {
	Project    int64
	Name       string
	DistinctID string
	Time       int64  // event time, Unix milliseconds UTC
	InsertID   string // "" when the client sent none (not deduplicated)
	Received   int64  // when Veil acknowledged it, Unix milliseconds UTC
	Props      []Field
}

// ProfileOp is one operation of a profile update, such as $set.
type ProfileOp struct {
	Op    string // $set, $set_once, $add, $append, $union, $remove, $unset, $delete
	Value Value
}

// ProfileUpdate is an /engage (user) or /groups (group) update. User
// updates have DistinctID set; group updates have GroupKey and GroupID.
type ProfileUpdate struct {
	Project     int64
	DistinctID  string
	GroupKey    string
	GroupID     string
	Time        int64 // $time if given, else the receive time; Unix ms
	Received    int64
	IgnoreTime  bool // $ignore_time: do not touch $last_seen
	IgnoreAlias bool // $ignore_alias
	Ops         []ProfileOp
}

// IsGroup reports whether u updates a group profile.
func (u *ProfileUpdate) IsGroup() bool { return u.GroupKey != "" }

// IdentityLink says that the distinct id From belongs to the same person as
// To (Mixpanel's ID merge). Source names what produced it.
type IdentityLink struct {
	Project  int64
	From     string
	To       string
	Source   string // "$identify", "$create_alias", "$merge" or "$device_id"
	Time     int64  // Unix ms
	Received int64
}

// Batch is what one request stores: written to the log as one record, all or nothing.
type Batch struct {
	Events   []Event
	Profiles []ProfileUpdate
	Links    []IdentityLink
}

// Len is the number of items in b.
func (b *Batch) Len() int { return len(b.Events) + len(b.Profiles) + len(b.Links) }
