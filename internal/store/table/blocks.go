package table

import (
	"context"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/veil-analytics/veil/internal/store/enc"
	"github.com/veil-analytics/veil/internal/store/segment"
)

// Block is the selected rows of one segment block, in stored order:
// runs of one user, each in time order. A user's rows of other segments
// come in other blocks, to any worker. Its slices are reused for the next
// block: a visitor copies what it keeps.
type Block struct {
	// Users[r] is the user of run r, whose rows are [Ends[r-1], Ends[r])
	// (run 0 starts at row 0).
	Users []uint32
	Ends  []int32
	// Events and, with ScanSpec.Codes, Codes[k] (into Dicts[k], as in
	// Sequence) of every row.
	Events []uint32
	Codes  [][]uint32
	Dicts  [][]segment.Atom
	// Lo and Hi bound the rows' times: [Lo, Hi).
	Lo, Hi int64

	w *blockWorker // for Times
}

// Len is the number of rows.
func (b *Block) Len() int { return len(b.Events) }

// Times decodes the rows' times, which a visitor that can tell their
// buckets from Lo and Hi never needs.
func (b *Block) Times() ([]int64, error) {
	w := b.w
	if w.timesOK {
		return w.times, nil
	}
	if err := w.r.TimeBlock(&w.scratch, w.b, &w.timeBlk); err != nil {
		return nil, err
	}
	w.times = w.times[:0]
	if w.sel == nil {
		for j := range b.Events {
			w.times = append(w.times, w.timeBlk.At(j))
		}
	} else {
		for _, j := range w.sel {
			w.times = append(w.times, w.timeBlk.At(int(j)))
		}
	}
	w.timesOK = true
	return w.times, nil
}

// blockWorker is one goroutine's state of ParallelBlocks.
type blockWorker struct {
	s      *Snapshot
	spec   ScanSpec
	want   []uint8
	blk    Block
	coder  coder // with ScanSpec.Codes
	remaps map[*segment.Reader][][]uint32

	scratch segment.Scratch
	r       *segment.Reader
	b       int
	// The block's selected rows and their events; sel is nil for all
	// rows, whose events are then decoded whole into events.
	sel      []uint16
	selEv    []uint32
	events   []uint32
	evBuf    []uint32
	selector enc.Selector
	selAll   []uint16
	selAllEv []uint32
	timeBlk  enc.Int64Block
	// The event index rows of the segment rareOf, when it covers the
	// wanted events.
	rare    rareRows
	rareOf  *segment.Reader
	times   []int64
	timesOK bool
	codes   [][]uint32
	raws    [][]segment.Atom
}

// blockTask is a range of one segment's blocks.
type blockTask struct {
	r      *segment.Reader
	lo, hi int
}

// blocksPerTask keeps a task's decoding on one segment while giving
// workers enough tasks to even out.
const blocksPerTask = 8

// ParallelBlocks visits the spec's rows one block at a time with workers
// goroutines (0 = GOMAXPROCS), without gathering users: reports that add
// up rows one at a time need no more. visit(w) gives worker w's function,
// called by that worker alone; ScanSpec.UserLo, UserHi and Details are not
// supported. The first error stops every worker.
func (s *Snapshot) ParallelBlocks(ctx context.Context, spec ScanSpec, workers int, visit func(worker int) func(*Block) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var tasks []blockTask
	for _, p := range s.parts {
		dayLo, dayHi := int64(p.day)*86_400_000, int64(p.day+1)*86_400_000
		if dayHi <= spec.From || spec.To != 0 && dayLo >= spec.To {
			continue
		}
		for _, h := range p.segs {
			r := h.r
			lo, hi := r.TimeRange()
			if hi < spec.From || spec.To != 0 && lo >= spec.To || r.Rows() == 0 {
				continue
			}
			for b := 0; b < r.Blocks(); {
				e := min(b+blocksPerTask, r.Blocks())
				tasks = append(tasks, blockTask{r: r, lo: b, hi: e})
				b = e
			}
		}
	}
	var want []uint8
	if spec.Events != nil {
		want = make([]uint8, len(s.events)+1)
		for _, e := range spec.Events {
			if int(e) < len(s.events) {
				want[e] = 1
			}
		}
	}
	var next atomic.Int64
	return runWorkers(ctx, workers, func(ctx context.Context, w int) error {
		fn := visit(w)
		bw := &blockWorker{s: s, spec: spec, want: want, remaps: map[*segment.Reader][][]uint32{},
			codes: make([][]uint32, len(spec.Keys)), raws: make([][]segment.Atom, len(spec.Keys))}
		bw.blk.w = bw
		if spec.Codes {
			bw.blk.Codes = make([][]uint32, len(spec.Keys))
			bw.coder = newCoder(len(spec.Keys))
			bw.blk.Dicts = bw.coder.dicts // one slice: the coder's growth shows
		}
		for {
			i := next.Add(1) - 1
			if i >= int64(len(tasks)) {
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			t := tasks[i]
			for b := t.lo; b < t.hi; b++ {
				if err := bw.block(t.r, b, fn); err != nil {
					return err
				}
			}
		}
	})
}

// runWorkers runs fn on workers goroutines and returns the first error,
// which cancels the others' context.
func runWorkers(ctx context.Context, workers int, fn func(ctx context.Context, w int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, w); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// block selects, decodes and visits block b of r.
func (w *blockWorker) block(r *segment.Reader, b int, fn func(*Block) error) error {
	spec := &w.spec
	lo, hi := r.BlockTimeRange(b)
	if hi < spec.From || spec.To != 0 && lo >= spec.To {
		return nil
	}
	w.r, w.b, w.timesOK = r, b, false
	n := min(segment.BlockRows, r.Rows()-b*segment.BlockRows)
	w.sel, w.selEv, w.events = nil, nil, nil
	clipped := false
	if w.want != nil && (w.rareOf == r || r.Indexed(spec.Events)) {
		// The event index has the wanted rows and their times: neither
		// column is read.
		if w.rareOf != r {
			if err := w.rare.load(r, true); err != nil {
				return err
			}
			w.rareOf = r
		}
		lo, hi := w.rare.block(b)
		base := uint32(b * segment.BlockRows)
		w.selAll, w.selAllEv, w.times = w.selAll[:0], w.selAllEv[:0], w.times[:0]
		last := uint32(len(w.want) - 1)
		for i := lo; i < hi; i++ {
			if w.want[min(w.rare.evs[i], last)] == 0 {
				continue
			}
			if t := w.rare.times[i]; t >= spec.From && (spec.To == 0 || t < spec.To) {
				w.selAll = append(w.selAll, uint16(w.rare.rows[i]-base))
				w.selAllEv = append(w.selAllEv, w.rare.evs[i])
				w.times = append(w.times, t)
			}
		}
		if len(w.selAll) == 0 {
			return nil
		}
		w.sel, w.selEv, w.timesOK, clipped = w.selAll, w.selAllEv, true, true
	} else if w.want != nil {
		if err := r.SelectEvents(&w.scratch, b, w.want, &w.selector); err != nil {
			return err
		}
		if len(w.selector.Idx) == 0 {
			return nil
		}
		w.sel, w.selEv = w.selector.Idx, w.selector.Vals
	} else {
		var err error
		if w.events, err = r.Events(&w.scratch, b, w.evBuf); err != nil {
			return err
		}
		w.evBuf = w.events
	}
	if !clipped && (lo < spec.From || spec.To != 0 && hi >= spec.To) {
		if err := r.TimeBlock(&w.scratch, b, &w.timeBlk); err != nil {
			return err
		}
		w.keep(n, func(j uint16) bool {
			t := w.timeBlk.At(int(j))
			return t >= spec.From && (spec.To == 0 || t < spec.To)
		})
		if len(w.sel) == 0 {
			return nil
		}
	}
	if len(w.s.erased) > 0 {
		w.dropErased(r, b, n)
		if w.sel != nil && len(w.sel) == 0 {
			return nil
		}
	}
	blk := &w.blk
	blk.Lo, blk.Hi = max(lo, spec.From), hi+1
	if spec.To != 0 {
		blk.Hi = min(blk.Hi, spec.To)
	}
	w.runs(r, b, n)
	blk.Events = w.events
	if w.sel != nil {
		blk.Events = w.selEv
	}
	if spec.Codes {
		for k, key := range spec.Keys {
			if err := w.column(r, b, k, key); err != nil {
				return err
			}
		}
	}
	return fn(blk)
}

// keep narrows the selection of the block's n rows to those ok keeps,
// with their events.
func (w *blockWorker) keep(n int, ok func(j uint16) bool) {
	if w.sel == nil { // all rows: make the selection explicit
		w.selAll = w.selAll[:0]
		w.selAllEv = w.selAllEv[:0]
		for j := range n {
			w.selAll = append(w.selAll, uint16(j))
			w.selAllEv = append(w.selAllEv, w.events[j])
		}
		w.sel, w.selEv = w.selAll, w.selAllEv
	}
	m := 0
	for k, j := range w.sel {
		if ok(j) {
			w.sel[m], w.selEv[m] = j, w.selEv[k]
			if w.timesOK {
				w.times[m] = w.times[k]
			}
			m++
		}
	}
	w.sel, w.selEv = w.sel[:m], w.selEv[:m]
	if w.timesOK {
		w.times = w.times[:m]
	}
}

// runs finds the users of the block's selected rows.
func (w *blockWorker) runs(r *segment.Reader, b, n int) {
	blk := &w.blk
	blk.Users, blk.Ends = blk.Users[:0], blk.Ends[:0]
	us := r.Users()
	base := uint32(b * segment.BlockRows)
	ri := sort.Search(len(us), func(i int) bool { return us[i].Start+us[i].N > base })
	if w.sel == nil {
		for end := base + uint32(n); ri < len(us) && us[ri].Start < end; ri++ {
			blk.Users = append(blk.Users, us[ri].User)
			blk.Ends = append(blk.Ends, int32(min(us[ri].Start+us[ri].N, end)-base))
		}
		return
	}
	// Runs and selected rows both ascend: walk them together, a run at a
	// time, comparing each selected row with the run's end only.
	k := 0
	for ; ri < len(us) && k < len(w.sel); ri++ {
		end := us[ri].Start + us[ri].N - base
		k0 := k
		for k < len(w.sel) && uint32(w.sel[k]) < end {
			k++
		}
		if k > k0 {
			blk.Users = append(blk.Users, us[ri].User)
			blk.Ends = append(blk.Ends, int32(k))
		}
	}
}

// dropErased removes erased users' rows from the selection.
func (w *blockWorker) dropErased(r *segment.Reader, b, n int) {
	us := r.Users()
	base := uint32(b * segment.BlockRows)
	end := base + uint32(n)
	ri := sort.Search(len(us), func(i int) bool { return us[i].Start+us[i].N > base })
	any := false
	for i := ri; i < len(us) && us[i].Start < end; i++ {
		any = any || w.s.erased[us[i].User]
	}
	if !any {
		return
	}
	w.keep(n, func(j uint16) bool {
		row := base + uint32(j)
		for us[ri].Start+us[ri].N <= row {
			ri++
		}
		return !w.s.erased[us[ri].User]
	})
}

// column decodes property column k of the block as worker codes.
func (w *blockWorker) column(r *segment.Reader, b, k int, key uint32) error {
	blk := &w.blk
	pb, err := r.Prop(&w.scratch, key, b, w.codes[k], w.raws[k])
	if err != nil {
		return err
	}
	out := blk.Codes[k][:0]
	rows := len(blk.Events)
	switch {
	case pb.Codes != nil:
		w.codes[k] = pb.Codes
		remap, err := w.remap(r, k, key)
		if err != nil {
			return err
		}
		if w.sel == nil {
			out = slices.Grow(out, rows)[:rows]
			for j, c := range pb.Codes {
				out[j] = remap[c]
			}
		} else {
			for _, j := range w.sel {
				out = append(out, remap[pb.Codes[j]])
			}
		}
	case pb.Atoms != nil:
		w.raws[k] = pb.Atoms
		if w.sel == nil {
			for _, a := range pb.Atoms {
				out = append(out, w.coder.intern(k, a))
			}
		} else {
			for _, j := range w.sel {
				out = append(out, w.coder.intern(k, pb.Atoms[j]))
			}
		}
	default:
		out = slices.Grow(out, rows)[:rows]
		clear(out)
	}
	blk.Codes[k] = out
	return nil
}

// remap maps r's dictionary of column k to worker codes, on first use.
func (w *blockWorker) remap(r *segment.Reader, k int, key uint32) ([]uint32, error) {
	ms := w.remaps[r]
	if ms == nil {
		ms = make([][]uint32, len(w.spec.Keys))
		w.remaps[r] = ms
	}
	if ms[k] == nil {
		d, err := r.Dict(key)
		if err != nil {
			return nil, err
		}
		ms[k] = w.coder.remap(k, d)
	}
	return ms[k], nil
}
