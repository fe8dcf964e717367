package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// RecordType tags one encoded record in a write-ahead log batch.
type RecordType byte

// Record types. Values are persisted: never renumber.
const (
	RecordEvent    RecordType = 1
	RecordProfile  RecordType = 2
	RecordIdentity RecordType = 3
)

// ErrCorrupt is returned (wrapped) when bytes do not decode as a record.
var ErrCorrupt = errors.New("event: corrupt record")

// AppendRecord appends the framed encoding of one record: its type, the
// uvarint length of its body, then the body.
func AppendRecord(dst []byte, typ RecordType, body []byte) []byte {
	dst = append(dst, byte(typ))
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// NextRecord splits the first framed record off b.
func NextRecord(b []byte) (typ RecordType, body, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, fmt.Errorf("%w: short frame", ErrCorrupt)
	}
	typ = RecordType(b[0])
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > uint64(len(b)-1-k) {
		return 0, nil, nil, fmt.Errorf("%w: bad frame length", ErrCorrupt)
	}
	start := 1 + k
	return typ, b[start : start+int(n)], b[start+int(n):], nil
}

// AppendEvent appends the body encoding of e.
func AppendEvent(dst []byte, e *Event) []byte {
	dst = binary.AppendVarint(dst, e.Project)
	dst = appendStr(dst, e.Name)
	dst = appendStr(dst, e.DistinctID)
	dst = binary.AppendVarint(dst, e.Time)
	dst = appendStr(dst, e.InsertID)
	dst = binary.AppendVarint(dst, e.Received)
	return appendFields(dst, e.Props)
}

// DecodeEvent decodes a body written by AppendEvent.
func DecodeEvent(b []byte) (Event, error) {
	d := decoder{b: b}
	var e Event
	e.Project = d.varint()
	e.Name = d.str()
	e.DistinctID = d.str()
	e.Time = d.varint()
	e.InsertID = d.str()
	e.Received = d.varint()
	e.Props = d.fields(0)
	return e, d.finish("event")
}

// DecodeEventHead decodes an event body without its properties: what
// replaying the log for deduplication needs, at a fraction of the cost.
func DecodeEventHead(b []byte) (Event, error) {
	d := decoder{b: b}
	var e Event
	e.Project = d.varint()
	e.Name = d.str()
	e.DistinctID = d.str()
	e.Time = d.varint()
	e.InsertID = d.str()
	e.Received = d.varint()
	if d.err != nil {
		return Event{}, fmt.Errorf("decode event: %w", d.err)
	}
	return e, nil
}

// AppendProfile appends the body encoding of u.
func AppendProfile(dst []byte, u *ProfileUpdate) []byte {
	dst = binary.AppendVarint(dst, u.Project)
	dst = appendStr(dst, u.DistinctID)
	dst = appendStr(dst, u.GroupKey)
	dst = appendStr(dst, u.GroupID)
	dst = binary.AppendVarint(dst, u.Time)
	dst = binary.AppendVarint(dst, u.Received)
	var flags byte
	if u.IgnoreTime {
		flags |= 1
	}
	if u.IgnoreAlias {
		flags |= 2
	}
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, uint64(len(u.Ops)))
	for _, op := range u.Ops {
		dst = appendStr(dst, op.Op)
		dst = appendValue(dst, op.Value)
	}
	return dst
}

// DecodeProfile decodes a body written by AppendProfile.
func DecodeProfile(b []byte) (ProfileUpdate, error) {
	d := decoder{b: b}
	var u ProfileUpdate
	u.Project = d.varint()
	u.DistinctID = d.str()
	u.GroupKey = d.str()
	u.GroupID = d.str()
	u.Time = d.varint()
	u.Received = d.varint()
	flags := d.byte()
	u.IgnoreTime = flags&1 != 0
	u.IgnoreAlias = flags&2 != 0
	n := d.count()
	if n > 0 {
		u.Ops = make([]ProfileOp, n)
		for i := range u.Ops {
			u.Ops[i].Op = d.str()
			u.Ops[i].Value = d.value(0)
		}
	}
	return u, d.finish("profile update")
}

// AppendIdentity appends the body encoding of l.
func AppendIdentity(dst []byte, l *IdentityLink) []byte {
	dst = binary.AppendVarint(dst, l.Project)
	dst = appendStr(dst, l.From)
	dst = appendStr(dst, l.To)
	dst = appendStr(dst, l.Source)
	dst = binary.AppendVarint(dst, l.Time)
	return binary.AppendVarint(dst, l.Received)
}

// DecodeIdentity decodes a body written by AppendIdentity.
func DecodeIdentity(b []byte) (IdentityLink, error) {
	d := decoder{b: b}
	var l IdentityLink
	l.Project = d.varint()
	l.From = d.str()
	l.To = d.str()
	l.Source = d.str()
	l.Time = d.varint()
	l.Received = d.varint()
	return l, d.finish("identity link")
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendFields(dst []byte, fs []Field) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(fs)))
	for i := range fs {
		dst = appendStr(dst, fs[i].Key)
		dst = appendValue(dst, fs[i].Value)
	}
	return dst
}

func appendValue(dst []byte, v Value) []byte {
	dst = append(dst, byte(v.Kind))
	switch v.Kind {
	case Bool:
		if v.Bool {
			return append(dst, 1)
		}
		return append(dst, 0)
	case Number:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Num))
	case String:
		return appendStr(dst, v.Str)
	case Array:
		dst = binary.AppendUvarint(dst, uint64(len(v.Items)))
		for _, it := range v.Items {
			dst = appendValue(dst, it)
		}
		return dst
	case Object:
		return appendFields(dst, v.Fields)
	}
	return dst
}

// maxDepth bounds nesting when decoding so corrupt input cannot exhaust the stack.
const maxDepth = 64

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("decode %s: %w", what, d.err)
	}
	return nil
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a collection length; every element takes at least one byte,
// so a length beyond the remaining bytes is corrupt.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("bad length")
		return 0
	}
	return int(n)
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("short")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("bad string length")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) fields(depth int) []Field {
	n := d.count()
	if n == 0 {
		return nil
	}
	fs := make([]Field, n)
	for i := range fs {
		fs[i].Key = d.str()
		fs[i].Value = d.value(depth)
		if d.err != nil {
			return nil
		}
	}
	return fs
}

func (d *decoder) value(depth int) Value {
	if depth > maxDepth {
		d.fail("nesting too deep")
		return Value{}
	}
	k := Kind(d.byte())
	v := Value{Kind: k}
	switch k {
	case Null:
	case Bool:
		v.Bool = d.byte() != 0
	case Number:
		if len(d.b) < 8 {
			d.fail("short number")
			return Value{}
		}
		v.Num = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
		d.b = d.b[8:]
	case String:
		v.Str = d.str()
	case Array:
		n := d.count()
		if n > 0 {
			v.Items = make([]Value, n)
			for i := range v.Items {
				v.Items[i] = d.value(depth + 1)
				if d.err != nil {
					return Value{}
				}
			}
		}
	case Object:
		v.Fields = d.fields(depth + 1)
	default:
		d.fail("unknown value kind")
	}
	return v
}
