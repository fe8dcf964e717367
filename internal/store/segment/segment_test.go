package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

type row = Row

// genRows makes sorted rows; wide makes a high-cardinality column that
// overflows its dictionary.
func genRows(r *rand.Rand, n int, wide bool) []row {
	rows := make([]row, n)
	user, t := uint32(r.IntN(10)), int64(1_700_000_000_000)
	for i := range rows {
		if r.IntN(20) == 0 {
			user += 1 + uint32(r.IntN(5))
			t = 1_700_000_000_000 + r.Int64N(86_400_000)
		}
		t += r.Int64N(60_000)
		rw := row{User: user, Time: t, Event: uint32(r.IntN(7)), Received: 1_800_000_000_000 + int64(i)*3}
		if r.IntN(5) > 0 {
			rw.InsertID = fmt.Sprintf("%016x", r.Uint64())
			if wide { // not hex: the raw encoding
				rw.InsertID = fmt.Sprintf("ins-%d", r.Uint64())
			}
		}
		if r.IntN(4) > 0 {
			rw.Props = append(rw.Props, Prop{Key: 1, Atom: string(AppendAtom(nil, event.StringValue([]string{"free", "pro", "team"}[r.IntN(3)])))})
		}
		if r.IntN(2) == 0 {
			rw.Props = append(rw.Props, Prop{Key: 7, Atom: string(AppendAtom(nil, event.NumberValue(float64(r.IntN(1000))/8)))})
		}
		if wide {
			rw.Props = append(rw.Props, Prop{Key: 3, Atom: string(AppendAtom(nil, event.StringValue(fmt.Sprintf("u-%d-%d", i, r.Int()))))})
		}
		if i > n/2 && r.IntN(3) == 0 { // a key that appears only in later blocks
			rw.Props = append(rw.Props, Prop{Key: 9, Atom: string(AppendAtom(nil, event.BoolValue(true)))})
		}
		rows[i] = rw
	}
	return rows
}

func write(t testing.TB, rows []row) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, rw := range rows {
		if err := w.Append(&rw); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func open(t testing.TB, b []byte) (*Reader, error) {
	return NewReader(memFile{bytes.NewReader(b)}, "test.seg", int64(len(b)))
}

// readAll decodes every column of every block back into rows.
func readAll(r *Reader) ([]row, error) {
	var s Scratch
	var out []row
	for b := range r.Blocks() {
		times, err := r.Times(&s, b, nil)
		if err != nil {
			return nil, err
		}
		evs, err := r.Events(&s, b, nil)
		if err != nil {
			return nil, err
		}
		ins, err := r.Inserts(&s, b, nil)
		if err != nil {
			return nil, err
		}
		rec, err := r.Received(&s, b, nil)
		if err != nil {
			return nil, err
		}
		base := len(out)
		for i := range times {
			out = append(out, row{Time: times[i], Event: evs[i], InsertID: ins[i], Received: rec[i]})
		}
		for _, k := range r.Keys() {
			pb, err := r.Prop(&s, k, b, nil, nil)
			if err != nil {
				return nil, err
			}
			dict, err := r.Dict(k)
			if err != nil {
				return nil, err
			}
			for i := range times {
				var a Atom
				switch {
				case pb.Codes != nil && pb.Codes[i] != 0:
					a = dict[pb.Codes[i]-1]
				case pb.Atoms != nil:
					a = pb.Atoms[i]
				}
				if a != "" {
					out[base+i].Props = append(out[base+i].Props, Prop{Key: k, Atom: string(a)})
				}
			}
		}
	}
	for _, u := range r.Users() {
		for i := u.Start; i < u.Start+u.N; i++ {
			out[i].User = u.User
		}
	}
	return out, nil
}

func propsKey(ps []Prop) string {
	m := map[uint32]string{}
	for _, p := range ps {
		m[p.Key] = p.Atom
	}
	return fmt.Sprint(m)
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		n    int
		wide bool
	}{{0, false}, {1, false}, {BlockRows, false}, {BlockRows + 1, false}, {3*BlockRows + 17, false}, {80_000, true}} {
		t.Run(fmt.Sprintf("%d-wide=%v", tc.n, tc.wide), func(t *testing.T) {
			rows := genRows(rand.New(rand.NewPCG(uint64(tc.n), 1)), tc.n, tc.wide)
			r, err := open(t, write(t, rows))
			if err != nil {
				t.Fatal(err)
			}
			if r.Rows() != tc.n {
				t.Fatalf("rows %d, want %d", r.Rows(), tc.n)
			}
			got, err := readAll(r)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				w, g := rows[i], got[i]
				if w.User != g.User || w.Time != g.Time || w.Event != g.Event || w.InsertID != g.InsertID || w.Received != g.Received || propsKey(w.Props) != propsKey(g.Props) {
					t.Fatalf("row %d\n got %+v\nwant %+v", i, g, w)
				}
			}
			for b := range r.Blocks() {
				lo, hi := r.BlockTimeRange(b)
				for _, rw := range rows[b*BlockRows : min(len(rows), (b+1)*BlockRows)] {
					if rw.Time < lo || rw.Time > hi {
						t.Fatalf("block %d zone map [%d,%d] misses %d", b, lo, hi, rw.Time)
					}
				}
			}
		})
	}
}

func TestAtoms(t *testing.T) {
	for _, v := range []event.Value{
		event.StringValue(""), event.StringValue("héllo"), event.NumberValue(-1.5), event.BoolValue(true), event.BoolValue(false), {},
		{Kind: event.Array, Items: []event.Value{event.StringValue("a"), event.NumberValue(2)}},
		{Kind: event.Array},
		{Kind: event.Object, Fields: []event.Field{{Key: "z", Value: event.NumberValue(1)}, {Key: "a", Value: event.StringValue("x")}}},
	} {
		a := Atom(AppendAtom(nil, v))
		got, err := a.Decode()
		if err != nil || !got.Equal(v) && !(v.Kind == event.Array && len(v.Items) == 0 && got.Kind == event.Array && len(got.Items) == 0) {
			t.Errorf("%s: got %s, %v", v.AppendJSON(nil), got.AppendJSON(nil), err)
		}
		if a.Kind() != v.Kind {
			t.Errorf("%s: kind %v", v.AppendJSON(nil), a.Kind())
		}
	}
}

func TestOrderEnforced(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	if err := w.Append(&Row{User: 5, Time: 100}); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(&Row{User: 5, Time: 99}); !errors.Is(err, ErrOrder) {
		t.Fatalf("earlier time: %v", err)
	}
}

// TestCorruptionDetected flips every byte of a small segment in turn: each
// flip must make Open or a block read fail with ErrCorrupt, or leave the
// decoded rows unchanged (a flip in the leading magic is caught too).
func TestCorruptionDetected(t *testing.T) {
	rows := genRows(rand.New(rand.NewPCG(3, 3)), 300, false)
	good := write(t, rows)
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x5a
		r, err := open(t, b)
		if err == nil {
			_, err = readAll(r)
		}
		if err == nil {
			t.Fatalf("flip at byte %d of %d went unnoticed", i, len(good))
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at byte %d: %v does not wrap ErrCorrupt", i, err)
		}
	}
}

func FuzzReader(f *testing.F) {
	f.Add(write(f, genRows(rand.New(rand.NewPCG(1, 1)), 50, false)))
	f.Add(write(f, nil))
	skewed := genRows(rand.New(rand.NewPCG(2, 2)), 300, false)
	for i := range skewed {
		skewed[i].Event = uint32(i % 40 / 39 * 5) // event 5 is rare: indexed
	}
	f.Add(write(f, skewed))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := open(t, b)
		if err != nil {
			return
		}
		readAll(r)                 // must not panic
		r.RareIndex(nil, nil, nil) // must not panic
	})
}

func BenchmarkWrite(b *testing.B) {
	rows := genRows(rand.New(rand.NewPCG(1, 2)), 100_000, false)
	b.ReportAllocs()
	for b.Loop() {
		write(b, rows)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}

// TestEventIndex checks that rare events are indexed with exactly their
// rows and times, that common ones are not, and that an event common
// only early on is handled either way correctly.
func TestEventIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 100, 9000, 70_000, 150_000} {
		rows := genRows(r, n, false)
		for i := range rows {
			switch x := r.IntN(1000); {
			case i < n/10 && x < 300:
				rows[i].Event = 9 // common early, absent later
			case x < 5:
				rows[i].Event = 20 + uint32(x) // rare
			default:
				rows[i].Event = uint32(x % 4) // common
			}
		}
		rd, err := open(t, write(t, rows))
		if err != nil {
			t.Fatal(err)
		}
		for e := range uint32(30) {
			var want []uint32
			var wantT []int64
			for i, rw := range rows {
				if rw.Event == e {
					want = append(want, uint32(i))
					wantT = append(wantT, rw.Time)
				}
			}
			indexed := rd.Indexed([]uint32{e})
			switch {
			case len(want) == 0 && !indexed:
				t.Fatalf("%d rows: absent event %d not reported as indexed", n, e)
			case len(want)*100 < n && n >= 1000 && !indexed:
				t.Fatalf("%d rows: rare event %d (%d rows) not indexed", n, e, len(want))
			case len(want)*5 > n && n >= 1000 && indexed:
				t.Fatalf("%d rows: common event %d (%d rows) indexed", n, e, len(want))
			}
			if !indexed {
				continue
			}
			all, allE, allT, err := rd.RareIndex(nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			evs, times, err := rd.RareEvents(nil, nil)
			if err != nil || !slices.Equal(evs, allE) || !slices.Equal(times, allT) {
				t.Fatalf("%d rows: RareEvents differs from RareIndex (%v)", n, err)
			}
			users := rd.IndexUsers()
			if len(users) != len(all) {
				t.Fatalf("%d rows: %d index rows, %d users", n, len(all), len(users))
			}
			for i, row := range all {
				run := rd.Users()[users[i].Run]
				if row < run.Start || row >= run.Start+run.N || users[i].User != run.User || run.User != rows[row].User {
					t.Fatalf("%d rows: index row %d (row %d) has run %+v, user %+v", n, i, row, run, users[i])
				}
			}
			var got []uint32
			var gotT []int64
			for i, x := range allE {
				if x == e {
					got, gotT = append(got, all[i]), append(gotT, allT[i])
				}
			}
			if !slices.Equal(got, want) || !slices.Equal(gotT, wantT) {
				t.Fatalf("%d rows: event %d index has %d rows, want %d", n, e, len(got), len(want))
			}
		}
	}
}

// TestIndexCheckedAtOpen flips a byte of each event index block in turn:
// the index is read into memory at open, so open must refuse the file.
func TestIndexCheckedAtOpen(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	rows := genRows(r, 20_000, false)
	for i := range rows {
		if r.IntN(100) == 0 {
			rows[i].Event = 30 // rare
		}
	}
	b := write(t, rows)
	rd, err := open(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.rareBlocks) == 0 || !rd.Indexed([]uint32{30}) {
		t.Fatal("the rare event is not indexed")
	}
	for i, ref := range rd.rareBlocks {
		bad := slices.Clone(b)
		bad[ref.off+uint64(ref.len)/2] ^= 0x40
		if _, err := open(t, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("index block %d corrupt: open returned %v", i, err)
		}
	}
}
