package profiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

// sampleState has users and groups in several projects, every kind of
// value, and a profile with many long property names.
func sampleState() *State {
	s := smallState()
	big := event.Value{Kind: event.Object}
	for i := range 200 {
		big.Fields = append(big.Fields, event.Field{Key: strings.Repeat("k", i+1), Value: v(i)})
	}
	s.Apply(&event.ProfileUpdate{Project: 2, DistinctID: "big", IgnoreTime: true, Ops: []event.ProfileOp{op("$set", big)}})
	return s
}

// smallState is sampleState without the big profile.
func smallState() *State {
	var s State
	s.Apply(timed(1_795_376_173_909, op("$set", o("$browser", "Chrome", "plan", "pro", "ok", true, "none", nil,
		"tags", l("a", 1, false), "obj", o("k", "🚀", "n", o("deep", l(l(1))))))))
	s.Apply(user(op("$add", o("logins", 3)), op("$append", o("$transactions", o("$amount", 9.99)))))
	s.Apply(&event.ProfileUpdate{Project: 1, DistinctID: "p0_ZmFrZXBzZXVkb255bQ", Time: 5, Ops: []event.ProfileOp{op("$set_once", o("first", "2024-01-01"))}})
	s.Apply(&event.ProfileUpdate{Project: 1, DistinctID: "empty", IgnoreTime: true, Ops: []event.ProfileOp{op("$set", o())}})
	s.Apply(group("company", "acme", op("$set", o("size", 10)), op("$union", o("regions", l("eu", "us")))))
	s.Apply(group("company", "globex", op("$set", o("size", 2))))
	s.Apply(group("team", "acme", op("$set", o("name", "core"))))
	s.Apply(&event.ProfileUpdate{Project: -7, DistinctID: "u", IgnoreTime: true, Ops: []event.ProfileOp{op("$set", o("neg", -0.0, "nan", event.NumberValue(nanBits)))}})
	s.Apply(&event.ProfileUpdate{Project: 1 << 40, GroupKey: "g", GroupID: "only-groups", IgnoreTime: true, Ops: []event.ProfileOp{op("$set", o("x", 1))}})
	return &s
}

var nanBits = func() float64 {
	var z float64
	return z / z
}()

func TestSnapshotRoundTrip(t *testing.T) {
	s := sampleState()
	b := snapshot(t, s)
	r := mustRead(t, b)
	if again := snapshot(t, r); !bytes.Equal(again, b) {
		t.Fatal("second snapshot differs from the first")
	}
	for _, id := range []string{"u", "p0_ZmFrZXBzZXVkb255bQ", "empty"} {
		if got, want := js(r.User(1, id)), js(s.User(1, id)); got != want {
			t.Errorf("user %s: got %s, want %s", id, got, want)
		}
	}
	if got, want := js(r.Group(1, "company", "acme")), js(s.Group(1, "company", "acme")); got != want {
		t.Errorf("group: got %s, want %s", got, want)
	}
	for _, p := range []int64{1, 2, -7, 1 << 40} {
		gu, gg := r.Len(p)
		wu, wg := s.Len(p)
		if gu != wu || gg != wg {
			t.Errorf("Len(%d) = %d, %d, want %d, %d", p, gu, gg, wu, wg)
		}
	}
	// The read State takes updates like the original.
	for _, st := range []*State{s, r} {
		st.Apply(user(op("$append", o("$transactions", o("$amount", 1))), op("$remove", o("tags", "a"))))
	}
	if !bytes.Equal(snapshot(t, s), snapshot(t, r)) {
		t.Error("states diverged after the same update")
	}
}

func TestSnapshotEmpty(t *testing.T) {
	var s State
	b := snapshot(t, &s)
	if len(b) != headerSize+1+crcSize {
		t.Errorf("empty snapshot is %d bytes", len(b))
	}
	r := mustRead(t, b)
	if len(r.projects) != 0 {
		t.Errorf("projects = %v", r.projects)
	}
	r.Apply(user(op("$set", o("a", 1))))
	if got := js(r.User(1, "u")); got != `{"a":1}` {
		t.Errorf("after Apply: %s", got)
	}
}

// seal wraps a body into a snapshot with a correct header and checksum.
func seal(body []byte) []byte {
	b := append([]byte(magic), version)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// body builds a snapshot body from its parts: a string is written as a
// str, a []byte as is, an int as a uvarint.
func body(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			b = appendStr(b, p)
		case []byte:
			b = append(b, p...)
		case int:
			b = binary.AppendUvarint(b, uint64(p))
		default:
			panic(p)
		}
	}
	return b
}

// props encodes properties as a blob.
func props(kv ...any) string {
	b := binary.AppendUvarint(nil, uint64(len(kv)/2))
	for i := 0; i < len(kv); i += 2 {
		b = appendStr(b, kv[i].(string))
		b = appendValue(b, v(kv[i+1]))
	}
	return string(b)
}

func TestReadValidBodies(t *testing.T) {
	// Sanity check of the helpers: these are what WriteTo writes.
	for name, b := range map[string][]byte{
		"user":  body(1, []byte{2}, 1, "u", props("a", 1), 0),
		"group": body(1, []byte{2}, 0, 1, "company", 1, "acme", props()),
	} {
		s, err := Read(bytes.NewReader(seal(b)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(snapshot(t, s), seal(b)) {
			t.Errorf("%s: rewritten differently", name)
		}
	}
}

func TestReadRejects(t *testing.T) {
	valid := snapshot(t, sampleState())
	blob := props("a", 1)
	tests := []struct {
		name string
		in   []byte
		want string // in the error
	}{
		{"empty", nil, "truncated header"},
		{"short header", valid[:headerSize-1], "truncated header"},
		{"bad magic", append([]byte("VEILWAL\x01"), valid[8:]...), "not a profile snapshot"},
		{"bad version", append(append([]byte(magic), 2), valid[8:]...), "version 2"},
		{"no checksum", valid[:len(valid)-crcSize], "truncated"},
		{"trailing byte", append(bytes.Clone(valid), 0), "trailing bytes after the checksum"},
		{"huge length", append(append([]byte(magic), version, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), 0), "impossible"},
		{"large length", append(append([]byte(magic), version, 0, 0, 0, 0, 0, 0, 0, 1), 0), "truncated"},
		{"bad checksum", append(bytes.Clone(valid[:len(valid)-1]), valid[len(valid)-1]^1), "checksum mismatch"},

		{"empty body", seal(nil), "bad varint"},
		{"trailing body bytes", seal(body(0, 0)), "trailing bytes in the body"},
		{"overlong count", seal([]byte{0x80, 0x00}), "bad varint"},
		{"count too big", seal(body(5, []byte{2}, 0, 0)), "count exceeds"},
		{"empty project", seal(body(1, []byte{2}, 0, 0)), "project without profiles"},
		{"projects out of order", seal(body(2, []byte{4}, 1, "u", blob, 0, []byte{2}, 1, "u", blob, 0)), "projects out of order"},
		{"duplicate project", seal(body(2, []byte{2}, 1, "u", blob, 0, []byte{2}, 1, "u", blob, 0)), "projects out of order"},
		{"overlong project id", seal(body(1, []byte{0x82, 0x00}, 1, "u", blob, 0)), "bad varint"},
		{"users out of order", seal(body(1, []byte{2}, 2, "v", blob, "u", blob, 0)), "distinct ids out of order"},
		{"duplicate user", seal(body(1, []byte{2}, 2, "u", blob, "u", blob, 0)), "distinct ids out of order"},
		{"empty user id", seal(body(1, []byte{2}, 1, "", blob, 0)), "empty distinct id"},
		{"group key without groups", seal(body(1, []byte{2}, 0, 1, "company", 0, []byte{0, 0, 0})), "group key without groups"},
		{"empty group key", seal(body(1, []byte{2}, 0, 1, "", 1, "acme", blob)), "empty group key"},
		{"group keys out of order", seal(body(1, []byte{2}, 0, 2, "team", 1, "a", blob, "company", 1, "a", blob)), "group keys out of order"},
		{"group ids out of order", seal(body(1, []byte{2}, 0, 1, "company", 2, "b", blob, "a", blob)), "group ids out of order"},
		{"empty group id", seal(body(1, []byte{2}, 0, 1, "company", 1, "", blob)), "empty group id"},
		{"string past the end", seal(body(1, []byte{2}, 1, []byte{9}, "u")), "count exceeds"},

		{"empty blob", seal(body(1, []byte{2}, 1, "u", "", 0)), "bad properties: truncated varint"},
		{"blob count too big", seal(body(1, []byte{2}, 1, "u", "\x05", 0)), "bad properties: count exceeds"},
		{"blob trailing bytes", seal(body(1, []byte{2}, 1, "u", blob+"\x00", 0)), "bad properties: trailing bytes"},
		{"blob duplicate property", seal(body(1, []byte{2}, 1, "u", "\x02\x01a\x00\x01a\x00", 0)), "bad properties: duplicate property"},
		{"blob duplicate property, many", seal(body(1, []byte{2}, 1, "u", manyProps(40, true), 0)), "bad properties: duplicate property"},
		{"blob unknown tag", seal(body(1, []byte{2}, 1, "u", "\x01\x01a\x07", 0)), "bad properties: unknown value tag"},
		{"blob short number", seal(body(1, []byte{2}, 1, "u", "\x01\x01a\x03\x00\x00", 0)), "bad properties: truncated number"},
		{"blob overlong varint", seal(body(1, []byte{2}, 1, "u", "\x81\x00\x01a\x00", 0)), "bad properties: overlong varint"},
		{"blob varint overflow", seal(body(1, []byte{2}, 1, "u", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 0)), "bad properties: varint overflows"},
		{"blob too deep", seal(body(1, []byte{2}, 1, "u", "\x01\x01a"+strings.Repeat("\x05\x01", maxNesting+1)+"\x00", 0)), "bad properties: value nested too deeply"},
		{"blob too deep object", seal(body(1, []byte{2}, 1, "u", "\x01\x01a"+strings.Repeat("\x06\x01\x00", maxNesting+1)+"\x00", 0)), "bad properties: value nested too deeply"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Read(bytes.NewReader(tt.in))
			if err == nil {
				t.Fatalf("Read accepted it: %d projects", len(s.projects))
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want ErrCorrupt and %q", err, tt.want)
			}
		})
	}

	// The deepest value allowed is accepted.
	ok := seal(body(1, []byte{2}, 1, "u", "\x01\x01a"+strings.Repeat("\x05\x01", maxNesting)+"\x00", 0))
	if _, err := Read(bytes.NewReader(ok)); err != nil {
		t.Errorf("value nested %d deep: %v", maxNesting, err)
	}
	if _, err := Read(bytes.NewReader(seal(body(1, []byte{2}, 1, "u", manyProps(40, false), 0)))); err != nil {
		t.Errorf("40 distinct properties: %v", err)
	}
}

// manyProps is a blob of n null properties, the last one repeating the first if dup.
func manyProps(n int, dup bool) string {
	b := binary.AppendUvarint(nil, uint64(n))
	for i := range n {
		k := string(rune('A' + i))
		if dup && i == n-1 {
			k = "A"
		}
		b = appendStr(b, k)
		b = append(b, tagNull)
	}
	return string(b)
}

func TestReadTruncatedAndFlipped(t *testing.T) {
	valid := snapshot(t, smallState())
	for n := range len(valid) {
		if _, err := Read(bytes.NewReader(valid[:n])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: err = %v", n, err)
		}
	}
	for i := range len(valid) {
		for bit := range 8 {
			b := bytes.Clone(valid)
			b[i] ^= 1 << bit
			if _, err := Read(bytes.NewReader(b)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("bit %d of byte %d flipped: err = %v", bit, i, err)
			}
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadReaderError(t *testing.T) {
	boom := errors.New("boom")
	valid := snapshot(t, sampleState())
	for _, n := range []int{0, 5, headerSize, headerSize + 3} {
		_, err := Read(io.MultiReader(bytes.NewReader(valid[:n]), errReader{boom}))
		if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
			t.Errorf("after %d bytes: err = %v, want boom", n, err)
		}
	}
}

// limitWriter fails once n bytes are written.
type limitWriter struct {
	n   int
	buf bytes.Buffer
}

var errFull = errors.New("disk full")

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		w.buf.Write(p[:w.n])
		n := w.n
		w.n = 0
		return n, errFull
	}
	w.n -= len(p)
	return w.buf.Write(p)
}

func TestWriteToError(t *testing.T) {
	s := sampleState()
	// Enough profiles that WriteTo flushes more than once.
	for i := range 5000 {
		s.Apply(&event.ProfileUpdate{Project: 3, DistinctID: strings.Repeat("x", 20) + string(rune(0x100+i)), IgnoreTime: true,
			Ops: []event.ProfileOp{op("$set", o("padding", strings.Repeat("p", 30)))}})
	}
	full := snapshot(t, s)
	if len(full) < 3*flushAt {
		t.Fatalf("snapshot only %d bytes", len(full))
	}
	for _, limit := range []int{0, 1, flushAt - 1, flushAt + 100, len(full) - 1} {
		w := &limitWriter{n: limit}
		n, err := s.WriteTo(w)
		if !errors.Is(err, errFull) {
			t.Errorf("limit %d: err = %v", limit, err)
		}
		if n != int64(w.buf.Len()) || n > int64(limit) {
			t.Errorf("limit %d: WriteTo returned %d, wrote %d", limit, n, w.buf.Len())
		}
	}
	w := &limitWriter{n: len(full)}
	if n, err := s.WriteTo(w); err != nil || n != int64(len(full)) || !bytes.Equal(w.buf.Bytes(), full) {
		t.Errorf("exact fit: %d, %v", n, err)
	}
}
