package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/collector"
	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/meta"
	"github.com/veil-analytics/veil/internal/store/table"
	"github.com/veil-analytics/veil/internal/wire"
)

// runImport loads a Mixpanel export (JSON lines, optionally gzip'd) through
// the privacy stage straight into the project's event table.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", "import --data DIR --project ID [--json] FILE.jsonl[.gz]", stderr)
	data := fs.String("data", "", "data directory")
	project := fs.Int64("project", 0, "project id")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	bufferMB := fs.Int("buffer-mb", 96, "memory for rows between two segment flushes, MiB (two buffers: one fills while the other is written)")
	memLimitMB := fs.Int("memory-limit-mb", 768, "soft limit of the process's memory, MiB: the garbage collector works harder near it (0 = none)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the import to this file")
	var keys keyFlags
	keys.register(fs, true)
	pos, err := fs.parseWithArgs(args)
	if err != nil {
		return err
	}
	if *memLimitMB > 0 {
		// Collect rarely until memory nears the limit: the import's live
		// heap is its buffers, and most garbage is short-lived.
		debug.SetMemoryLimit(int64(*memLimitMB) << 20)
		debug.SetGCPercent(400)
	}
	stopProfile, err := startCPUProfile(*cpuprofile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if err := requireData(*data); err != nil {
		return err
	}
	if *project <= 0 {
		return errors.New("--project is required: a project id (see veil project list)")
	}
	if len(pos) != 1 {
		return errors.New("give one export file: veil import --data DIR --project ID FILE.jsonl[.gz] (- for standard input)")
	}
	db, err := openExistingMeta(ctx, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ProjectByID(ctx, *project); errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("no project %d in %s (see veil project list)", *project, *data)
	} else if err != nil {
		return err
	}
	in, size, closeIn, err := openImportFile(pos[0])
	if err != nil {
		return err
	}
	defer closeIn()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	stage, closeStage, err := openStage(keys, *data, db, logger)
	if err != nil {
		return err
	}
	defer closeStage()
	tb, err := table.Open(table.ProjectDir(*data, *project), table.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer tb.Close()

	var progress func(importStats, bool)
	if isTerminal(stderr) && !*asJSON {
		progress = func(s importStats, final bool) {
			pct := ""
			if size > 0 {
				pct = fmt.Sprintf(" %3.0f%%", 100*float64(s.bytesRead)/float64(size))
			}
			end := "\r"
			if final {
				end = "\n"
			}
			fmt.Fprintf(stderr, "\rimport%s  %d read, %d stored, %d refused, %.0f events/s   %s", pct, s.Read, s.Stored,
				s.refusedTotal(), float64(s.Read)/time.Since(s.start).Seconds(), end)
		}
	}
	st, err := importEvents(ctx, in, tb, collector.NewImporter(*project, stage), importOptions{
		bufferBytes: *bufferMB << 20, progress: progress})
	if ferr := stage.FlushCounts(ctx, changeSink{db}); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(st)
	}
	fmt.Fprintf(stdout, "read %d events in %s (%.0f events/s)\nstored %d\n", st.Read, st.Elapsed, st.Rate, st.Stored)
	if st.Dropped > 0 {
		fmt.Fprintf(stdout, "dropped %d by the privacy policy or $ignore\n", st.Dropped)
	}
	if st.Suppressed > 0 {
		fmt.Fprintf(stdout, "dropped %d of erased people\n", st.Suppressed)
	}
	if st.Duplicates > 0 {
		fmt.Fprintf(stdout, "dropped %d duplicates ($insert_id)\n", st.Duplicates)
	}
	reasons := make([]string, 0, len(st.Refused))
	for r := range st.Refused {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool { return st.Refused[reasons[i]] > st.Refused[reasons[j]] })
	for _, r := range reasons {
		fmt.Fprintf(stdout, "refused %d: %s\n", st.Refused[r], r)
	}
	fmt.Fprintf(stdout, "table: %d rows in %d segments, %d bytes on disk\n", st.Rows, st.Segments, st.DiskBytes)
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// openImportFile opens path (- for standard input), gunzipping it when it
// starts with the gzip magic; size is the file's size on disk, 0 if unknown.
func openImportFile(path string) (io.Reader, int64, func() error, error) {
	var f *os.File
	if path == "-" {
		f = os.Stdin
	} else {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, 0, nil, err
		}
	}
	var size int64
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if head, _ := br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("%s: %w", path, err)
		}
		return &countingReader{r: zr, under: f}, size, f.Close, nil
	}
	return &countingReader{r: br, under: f}, size, f.Close, nil
}

// countingReader counts the bytes read from the file underneath (the
// compressed bytes for gzip) for the progress bar.
type countingReader struct {
	r     io.Reader
	under *os.File
}

func (c *countingReader) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *countingReader) offset() int64 {
	off, _ := c.under.Seek(0, io.SeekCurrent)
	return off
}

type importOptions struct {
	bufferBytes int
	workers     int
	progress    func(importStats, bool)
	now         func() time.Time
}

// importStats is the summary of an import.
type importStats struct {
	Read       int64          `json:"read"`
	Stored     int64          `json:"stored"`
	Dropped    int64          `json:"dropped"`
	Suppressed int64          `json:"suppressed"`
	Duplicates int64          `json:"duplicates"`
	Refused    map[string]int `json:"refused"`
	Elapsed    time.Duration  `json:"elapsed_ns"`
	Rate       float64        `json:"events_per_second"`
	Rows       int64          `json:"table_rows"`
	Segments   int            `json:"table_segments"`
	DiskBytes  int64          `json:"table_bytes"`

	start     time.Time
	bytesRead int64
}

func (s *importStats) refusedTotal() int {
	n := 0
	for _, c := range s.Refused {
		n += c
	}
	return n
}

// importChunkBytes is how much of the file one worker decodes at a time.
const importChunkBytes = 1 << 20

type importChunk struct {
	seq   int
	data  []byte
	batch event.Batch
	res   collector.ImportResult
	bad   int // lines that are not JSON
	err   error
}

// importEvents runs the import pipeline: a reader cuts the input into
// chunks of whole lines, workers decode them and apply the privacy stage,
// and the caller's goroutine adds them to the table in file order,
// flushing segments as the buffer fills and compacting at the end.
func importEvents(ctx context.Context, r io.Reader, tb *table.Table, im *collector.Importer, opts importOptions) (importStats, error) {
	st := importStats{start: time.Now(), Refused: map[string]int{}}
	if opts.workers <= 0 {
		opts.workers = runtime.GOMAXPROCS(0)
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan *importChunk, opts.workers*2)
	free := make(chan []byte, opts.workers*4)
	done := make(chan *importChunk, opts.workers*2)
	var readErr error
	go func() {
		defer close(chunks)
		readErr = cutLines(ctx, r, chunks, free)
	}()
	var wg sync.WaitGroup
	for range opts.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range chunks {
				data := c.data
				decodeChunk(ctx, im, c, opts.now())
				select {
				case free <- data[:0]:
				default:
				}
				select {
				case done <- c:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	buf := table.NewBuffer()
	dupsBefore := tb.FlushDuplicates()
	pending := map[int]*importChunk{}
	next := 0
	lastProgress := time.Now()
	var flushErr error
	flushing := make(chan error, 1)
	flushing <- nil
	spare := table.NewBuffer()
	add := func(c *importChunk) error {
		if c.err != nil {
			return c.err
		}
		for _, l := range c.batch.Links {
			tb.Link(l.From, l.To)
		}
		before := buf.Suppressed
		tb.Add(buf, c.batch.Events)
		st.Read += int64(len(c.batch.Events) + c.res.Dropped + c.bad)
		for m, n := range c.res.Refused {
			st.Read += int64(n)
			st.Refused[m] += n
		}
		if c.bad > 0 {
			st.Refused["line is not valid JSON"] += c.bad
		}
		st.Dropped += int64(c.res.Dropped)
		st.Suppressed += int64(buf.Suppressed - before)
		st.Stored += int64(len(c.batch.Events) - (buf.Suppressed - before))
		if buf.Bytes() >= opts.bufferBytes {
			// Flush in the background while the next buffer fills.
			if err := <-flushing; err != nil {
				return err
			}
			full := buf
			buf, spare = spare, nil
			go func() {
				err := tb.Flush(full)
				spare = full
				flushing <- err
			}()
			if spare == nil {
				spare = table.NewBuffer()
			}
		}
		return nil
	}
	for c := range done {
		pending[c.seq] = c
		for pending[next] != nil {
			c := pending[next]
			delete(pending, next)
			next++
			if err := add(c); err != nil {
				cancel()
				flushErr = err
				break
			}
		}
		if flushErr != nil {
			break
		}
		if opts.progress != nil && time.Since(lastProgress) > 200*time.Millisecond {
			lastProgress = time.Now()
			if cr, ok := r.(*countingReader); ok {
				st.bytesRead = cr.offset()
			}
			opts.progress(st, false)
		}
	}
	for range done { // drain after an error
	}
	if err := <-flushing; err != nil && flushErr == nil {
		flushErr = err
	}
	if flushErr != nil {
		return st, flushErr
	}
	if readErr != nil {
		return st, readErr
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if err := tb.Flush(buf); err != nil {
		return st, err
	}
	cs, err := tb.CompactAll(ctx)
	if err != nil {
		return st, err
	}
	dups := cs.Duplicates + tb.FlushDuplicates() - dupsBefore
	st.Duplicates += dups
	st.Stored -= dups
	st.Elapsed = time.Since(st.start)
	st.Rate = float64(st.Read) / st.Elapsed.Seconds()
	ts := tb.Stats()
	st.Rows, st.Segments, st.DiskBytes = ts.Rows, ts.Segments, ts.Bytes
	if opts.progress != nil {
		if cr, ok := r.(*countingReader); ok {
			st.bytesRead = cr.offset()
		}
		opts.progress(st, true)
	}
	return st, nil
}

// cutLines reads r in chunks that end at a line break.
// Buffers come from free when it has one (decoded chunks give theirs back:
// the parser copies what it keeps), which spares page faults and garbage.
func cutLines(ctx context.Context, r io.Reader, out chan<- *importChunk, free chan []byte) error {
	var carry []byte
	for seq := 0; ; seq++ {
		var buf []byte
		select {
		case buf = <-free:
		default:
		}
		if cap(buf) < importChunkBytes+len(carry) {
			buf = make([]byte, 0, importChunkBytes+len(carry))
		}
		buf = append(buf[:0], carry...)
		n, err := io.ReadFull(r, buf[len(carry):cap(buf)])
		buf = buf[:len(carry)+n]
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			return err
		}
		cut := len(buf)
		if !eof {
			i := bytes.LastIndexByte(buf, '\n')
			if i < 0 {
				// A line longer than a chunk: keep reading it.
				carry = append([]byte(nil), buf...) // never alias a buffer that is sent
				seq--
				continue
			}
			cut = i + 1
		}
		carry = append(carry[:0], buf[cut:]...)
		c := &importChunk{seq: seq, data: buf[:cut]}
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		if eof {
			return nil
		}
	}
}

// decodeChunk parses a chunk's lines and runs them through the importer.
// A chunk with a malformed line is parsed again line by line, so that one
// bad line costs only itself.
func decodeChunk(ctx context.Context, im *collector.Importer, c *importChunk, now time.Time) {
	if len(bytes.TrimSpace(c.data)) == 0 {
		return
	}
	items, err := wire.ParseItems(c.data, wire.ParseOptions{NDJSON: true})
	if err != nil {
		items = items[:0]
		for _, l := range bytes.Split(c.data, []byte{'\n'}) {
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			one, err := wire.ParseItems(l, wire.ParseOptions{})
			if err != nil || len(one) != 1 {
				c.bad++
				continue
			}
			items = append(items, one[0])
		}
	}
	objs := items[:0]
	for _, it := range items {
		if it.Value.Kind != event.Object {
			c.bad++
			continue
		}
		objs = append(objs, it)
	}
	c.batch, c.res, c.err = im.Decode(ctx, objs, now)
	c.data = nil
}

// startCPUProfile writes a CPU profile to path until stop is called; an
// empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
