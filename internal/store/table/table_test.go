package table

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/segment"
)

// refRow is the reference model's row: what a scan must return.
type refRow struct {
	user   string
	time   int64
	event  string
	insert string
	recv   int64
	props  map[string]string // key → JSON of the value
	seq    int               // arrival, to order equal times
}

const day0 = int64(19_723) * 86_400_000 // 2024-01-01

func randEvent(r *rand.Rand, users int) event.Event {
	e := event.Event{
		DistinctID: fmt.Sprintf("p0_user%05d", r.IntN(users)),
		Name:       []string{"page_view", "signup", "purchase", "logout"}[r.IntN(4)],
		Time:       day0 + r.Int64N(5*86_400_000),
		Received:   day0 + r.Int64N(1<<40),
	}
	if x := r.IntN(200); x < 3 { // rare events: segments index them
		e.Name = []string{"refund", "upgrade", "churn"}[x]
	}
	if e.Name == "signup" && (e.Time-day0)/86_400_000%2 == 0 && r.IntN(20) > 0 {
		// Rare on even days only: one scan meets segments that index
		// it and segments that do not.
		e.Name = "page_view"
	}
	if r.IntN(3) > 0 {
		e.InsertID = fmt.Sprintf("ins%d", r.IntN(400))
	}
	if r.IntN(10) == 0 {
		e.Time = day0 + int64(r.IntN(3))*1000 // many equal times: dedup and ordering
	}
	for _, k := range []string{"plan", "path", "n", "flag", "list"} {
		if r.IntN(3) == 0 {
			continue
		}
		var v event.Value
		switch k {
		case "plan":
			v = event.StringValue([]string{"free", "pro"}[r.IntN(2)])
		case "path":
			v = event.StringValue(fmt.Sprintf("/p/%d", r.IntN(1000)))
		case "n":
			v = event.NumberValue(float64(r.IntN(100)) / 4)
		case "flag":
			v = event.BoolValue(r.IntN(2) == 0)
		case "list":
			v = event.Value{Kind: event.Array, Items: []event.Value{event.StringValue("a"), event.NumberValue(1)}}
		}
		e.Props = append(e.Props, event.Field{Key: k, Value: v})
	}
	return e
}

func toRef(e event.Event, seq int) refRow {
	r := refRow{user: e.DistinctID, time: e.Time, event: e.Name, insert: e.InsertID, recv: e.Received, props: map[string]string{}, seq: seq}
	for _, f := range e.Props {
		r.props[f.Key] = string(f.Value.AppendJSON(nil))
	}
	return r
}

// expected applies the store's semantics to the reference rows: sorted by
// (user, time, arrival), erased users removed, and after a compaction of
// every day, duplicates of (user, time, event, insert_id) removed.
func expected(rows []refRow, erased map[string]bool, dedup bool) []refRow {
	var out []refRow
	for _, r := range rows {
		if !erased[r.user] {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b refRow) int {
		if c := strings.Compare(a.user, b.user); c != 0 {
			return c
		}
		if a.time != b.time {
			return int(a.time - b.time)
		}
		return a.seq - b.seq
	})
	if !dedup {
		return out
	}
	var kept []refRow
	for i, r := range out {
		dup := false
		for j := i - 1; j >= 0 && out[j].user == r.user && out[j].time == r.time; j-- {
			if r.insert != "" && out[j].insert == r.insert && out[j].event == r.event {
				dup = true
			}
		}
		if !dup {
			kept = append(kept, r)
		}
	}
	return kept
}

// scanAll reads the table back as reference rows (user order is by
// ordinal; the reference sorts by id, so both are re-sorted by id).
func scanAll(t *testing.T, tb *Table, workers int, only ...string) []refRow {
	return scanSome(t, tb, workers, false, only...)
}

// scanSome is scanAll; bare reads times and events alone, as a funnel
// does, and leaves the rows' properties and details empty.
func scanSome(t *testing.T, tb *Table, workers int, bare bool, only ...string) []refRow {
	t.Helper()
	s := tb.Snapshot()
	defer s.Release()
	keys := s.Keys()
	codes := make([]uint32, len(keys))
	for i := range codes {
		codes[i] = uint32(i)
	}
	spec := ScanSpec{Keys: codes, Details: true}
	if bare {
		keys, spec = nil, ScanSpec{}
	}
	if only != nil { // filtered scans also read codes, not values
		spec.Codes = true
		spec.Events = []uint32{}
		for _, name := range only {
			if c, ok := s.EventCode(name); ok {
				spec.Events = append(spec.Events, c)
			}
		}
	}
	perWorker := make([][]refRow, max(workers, 1))
	ids := tb.ids // read-only here
	visit := func(w int) func(*Sequence) error {
		return func(q *Sequence) error {
			for i := range q.Times {
				if i > 0 && q.Times[i] < q.Times[i-1] {
					return fmt.Errorf("user %d: times out of order", q.User)
				}
				r := refRow{user: ids.ID(q.User), time: q.Times[i], event: s.Events()[q.Events[i]], props: map[string]string{}}
				if !bare {
					r.insert, r.recv = q.InsertIDs[i], q.Received[i]
				}
				for k := range keys {
					var a segment.Atom
					if spec.Codes {
						if c := q.Codes[k][i]; c != 0 {
							a = q.Dicts[k][c-1]
						}
					} else {
						a = q.Props[k][i]
					}
					if a != "" {
						v, err := a.Decode()
						if err != nil {
							return err
						}
						r.props[keys[k]] = string(v.AppendJSON(nil))
					}
				}
				perWorker[w] = append(perWorker[w], r)
			}
			return nil
		}
	}
	var err error
	if workers == 0 {
		err = s.Scan(context.Background(), spec, visit(0))
	} else {
		err = s.ParallelScan(context.Background(), spec, workers, visit)
	}
	if err != nil {
		t.Fatal(err)
	}
	var all []refRow
	for _, rs := range perWorker {
		all = append(all, rs...)
	}
	slices.SortStableFunc(all, func(a, b refRow) int { return strings.Compare(a.user, b.user) })
	return all
}

func compareRows(t *testing.T, step string, got, want []refRow) {
	t.Helper()
	if len(got) != len(want) {
		key := func(r refRow) string { r.seq = 0; return fmt.Sprint(r) }
		n := map[string]int{}
		for _, r := range want {
			n[key(r)]++
		}
		for _, r := range got {
			n[key(r)]--
		}
		for k, c := range n {
			if c != 0 {
				t.Logf("%+d × %s", c, k)
			}
		}
		t.Fatalf("%s: %d rows, want %d", step, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.user != w.user || g.time != w.time || g.event != w.event || g.insert != w.insert || g.recv != w.recv || fmt.Sprint(g.props) != fmt.Sprint(w.props) {
			t.Fatalf("%s: row %d\n got %+v\nwant %+v", step, i, g, w)
		}
	}
}

// TestModel runs random workloads of adds, flushes, compactions, erasures
// and reopenings against the reference model.
func TestModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			tb, err := Open(dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { tb.Close() }()
			var rows []refRow
			erased := map[string]bool{}
			buf := NewBuffer()
			// A flush drops rows repeating (user, time, event, $insert_id)
			// of an earlier row of the same buffer.
			inBuf := map[string]bool{}
			users := 5 + r.IntN(300)
			compacted := true // no duplicates can exist yet
			for step := range 40 {
				switch op := r.IntN(10); {
				case op < 5:
					evs := make([]event.Event, 1+r.IntN(500))
					for i := range evs {
						evs[i] = randEvent(r, users)
					}
					tb.Add(buf, evs)
					for _, e := range evs {
						if tb.Erased(e.DistinctID) {
							continue
						}
						if e.InsertID != "" {
							k := fmt.Sprint(e.DistinctID, e.Time, e.Name, e.InsertID)
							if inBuf[k] {
								continue
							}
							inBuf[k] = true
							compacted = false
						}
						rows = append(rows, toRef(e, len(rows)))
					}
				case op < 7:
					if err := tb.Flush(buf); err != nil {
						t.Fatal(err)
					}
				case op < 8:
					if err := tb.Flush(buf); err != nil {
						t.Fatal(err)
					}
					for _, d := range tb.NeedsCompaction() {
						if _, err := tb.Compact(context.Background(), d); err != nil {
							t.Fatal(err)
						}
					}
					compacted = true
					rows = expected(rows, erased, true)
					for i := range rows {
						rows[i].seq = i
					}
				case op < 9:
					id := fmt.Sprintf("p0_user%05d", r.IntN(users))
					if _, _, err := tb.Suppress(id); err != nil {
						t.Fatal(err)
					}
					erased[id] = true
				default:
					if err := tb.Flush(buf); err != nil {
						t.Fatal(err)
					}
					tb.Close()
					if tb, err = Open(dir, Options{}); err != nil {
						t.Fatal(err)
					}
				}
				if buf.Rows() > 0 {
					continue // unflushed rows are not readable
				}
				clear(inBuf)
				want := expected(rows, erased, compacted)
				compareRows(t, fmt.Sprintf("step %d", step), scanAll(t, tb, 0), want)
				compareRows(t, fmt.Sprintf("step %d parallel", step), scanAll(t, tb, 3), want)
				// An event filter reads exactly the rows of those events.
				snap := tb.Snapshot()
				names := snap.Events()
				snap.Release()
				var only []string
				for _, n := range names {
					if r.IntN(3) == 0 {
						only = append(only, n)
					}
				}
				var wantOnly []refRow
				for _, row := range want {
					if slices.Contains(only, row.event) {
						wantOnly = append(wantOnly, row)
					}
				}
				only = append(only, "never-seen")
				compareRows(t, fmt.Sprintf("step %d filtered %v", step, only), scanAll(t, tb, 2, only...), wantOnly)
				// ... and of times and events alone, as a funnel reads them.
				bare := make([]refRow, len(wantOnly))
				for i, row := range wantOnly {
					bare[i] = refRow{user: row.user, time: row.time, event: row.event, props: map[string]string{}}
				}
				compareRows(t, fmt.Sprintf("step %d filtered bare %v", step, only), scanSome(t, tb, 2, true, only...), bare)
				// A block scan reads the same rows, without gathering users.
				var from, to int64
				if len(want) > 0 {
					from = want[r.IntN(len(want))].time
					to = want[r.IntN(len(want))].time + 1
					if to <= from {
						from, to = to-1, from+1
					}
				}
				var inRange []refRow
				for _, row := range wantOnly {
					if row.time >= from && (to == 0 || row.time < to) {
						inRange = append(inRange, row)
					}
				}
				if step%2 == 0 {
					compareRows(t, fmt.Sprintf("step %d blocks", step), blocksAll(t, tb, 2, 0, 0, nil), canonical(want))
					continue
				}
				compareRows(t, fmt.Sprintf("step %d blocks [%d, %d) %v", step, from, to, only), blocksAll(t, tb, 3, from, to, only), canonical(inRange))
			}
		})
	}
}

func TestCorruptSegmentIsSetAside(t *testing.T) {
	dir := t.TempDir()
	tb, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	buf := NewBuffer()
	evs := make([]event.Event, 2000)
	for i := range evs {
		evs[i] = randEvent(r, 50)
	}
	tb.Add(buf, evs)
	if err := tb.Flush(buf); err != nil {
		t.Fatal(err)
	}
	tb.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "d*", "*.seg"))
	if len(files) == 0 {
		t.Fatal("no segment files")
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)-40] ^= 0xff // inside the footer
	os.WriteFile(files[0], b, 0o600)
	tb, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if _, err := os.Stat(files[0]); !os.IsNotExist(err) {
		t.Fatal("corrupt segment still in place")
	}
	aside, _ := filepath.Glob(filepath.Join(dir, corruptDir, "*"))
	if len(aside) != 1 {
		t.Fatalf("set aside: %v", aside)
	}
	if got := tb.Stats().Segments; got != len(files)-1 {
		t.Fatalf("%d segments served, want %d", got, len(files)-1)
	}
}

func TestTieredPlan(t *testing.T) {
	tb, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	r := rand.New(rand.NewPCG(5, 5))
	var rows []refRow
	for flush := range 9 {
		buf := NewBuffer()
		evs := make([]event.Event, 50)
		for i := range evs {
			evs[i] = randEvent(r, 20)
			evs[i].Time = day0 + int64(flush*1000+i) // one day
			evs[i].InsertID = ""
			rows = append(rows, toRef(evs[i], len(rows)))
		}
		tb.Add(buf, evs)
		if err := tb.Flush(buf); err != nil {
			t.Fatal(err)
		}
		for _, j := range tb.Plan() {
			if _, err := tb.Run(context.Background(), j); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 9 flushes: two merges of 4 into level 1, one level-0 segment left.
	if got := tb.Stats().Segments; got != 3 {
		t.Fatalf("%d segments after tiered merges, want 3", got)
	}
	compareRows(t, "tiered", scanAll(t, tb, 0), expected(rows, nil, false))
}

// TestDisjointSegmentsNeedNoMerge: a day whose segments hold disjoint user
// ranges is not rewritten by CompactAll, and scans read it right.
func TestDisjointSegmentsNeedNoMerge(t *testing.T) {
	tb, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	var rows []refRow
	add := func(users ...string) {
		buf := NewBuffer()
		var evs []event.Event
		for i, u := range users {
			e := event.Event{DistinctID: u, Name: "view", Time: day0 + int64(len(rows)+i)*1000}
			evs = append(evs, e)
		}
		for _, e := range evs {
			rows = append(rows, toRef(e, len(rows)))
		}
		tb.Add(buf, evs)
		if err := tb.Flush(buf); err != nil {
			t.Fatal(err)
		}
	}
	add("p0_a", "p0_b")
	add("p0_c", "p0_d") // new users: ordinals above the first flush's
	if d := tb.NeedsCompaction(); len(d) != 0 {
		t.Fatalf("disjoint day planned for compaction: %v", d)
	}
	compareRows(t, "disjoint", scanAll(t, tb, 2), expected(rows, nil, false))
	add("p0_b") // overlaps the first segment
	if d := tb.NeedsCompaction(); len(d) != 1 {
		t.Fatalf("overlapping day not planned: %v", d)
	}
	if _, err := tb.CompactAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Only the overlapping pair merges: [a b]+[b] → one, [c d] stays.
	if n := tb.Stats().Segments; n != 2 || len(tb.NeedsCompaction()) != 0 {
		t.Fatalf("%d segments after compaction, still planned %v", n, tb.NeedsCompaction())
	}
	compareRows(t, "merged", scanAll(t, tb, 0), expected(rows, nil, false))
}

// blocksAll reads the table back with ParallelBlocks: rows of the events
// only (all when nil) in [from, to), without details, sorted canonically.
func blocksAll(t *testing.T, tb *Table, workers int, from, to int64, only []string) []refRow {
	t.Helper()
	s := tb.Snapshot()
	defer s.Release()
	keys := s.Keys()
	spec := ScanSpec{From: from, To: to, Codes: true}
	for i := range keys {
		spec.Keys = append(spec.Keys, uint32(i))
	}
	if only != nil {
		spec.Events = []uint32{}
		for _, name := range only {
			if c, ok := s.EventCode(name); ok {
				spec.Events = append(spec.Events, c)
			}
		}
	}
	perWorker := make([][]refRow, workers)
	ids := tb.ids
	err := s.ParallelBlocks(context.Background(), spec, workers, func(w int) func(*Block) error {
		return func(b *Block) error {
			times, err := b.Times()
			if err != nil {
				return err
			}
			if len(b.Users) == 0 || len(b.Users) != len(b.Ends) || int(b.Ends[len(b.Ends)-1]) != b.Len() {
				return fmt.Errorf("block of %d rows has runs %v", b.Len(), b.Ends)
			}
			start := 0
			for ri, u := range b.Users {
				end := int(b.Ends[ri])
				if end <= start {
					return fmt.Errorf("empty run %d", ri)
				}
				for i := start; i < end; i++ {
					if times[i] < b.Lo || times[i] >= b.Hi {
						return fmt.Errorf("time %d outside the block's [%d, %d)", times[i], b.Lo, b.Hi)
					}
					if i > start && times[i] < times[i-1] {
						return fmt.Errorf("user %d: times out of order", u)
					}
					r := refRow{user: ids.ID(u), time: times[i], event: s.Events()[b.Events[i]], props: map[string]string{}}
					for k := range keys {
						if c := b.Codes[k][i]; c != 0 {
							v, err := b.Dicts[k][c-1].Decode()
							if err != nil {
								return err
							}
							r.props[keys[k]] = string(v.AppendJSON(nil))
						}
					}
					perWorker[w] = append(perWorker[w], r)
				}
				start = end
			}
			return nil
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var all []refRow
	for _, rs := range perWorker {
		all = append(all, rs...)
	}
	return canonical(all)
}

// canonical drops what block scans do not read and sorts rows by content.
func canonical(rows []refRow) []refRow {
	type keyed struct {
		key string
		row refRow
	}
	ks := make([]keyed, len(rows))
	for i, r := range rows {
		r.insert, r.recv, r.seq = "", 0, 0
		ks[i] = keyed{fmt.Sprint(r), r}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := make([]refRow, len(rows))
	for i, k := range ks {
		out[i] = k.row
	}
	return out
}
