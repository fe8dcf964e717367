package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/table"
)

// tables opens projects' event tables on first use.
type tables struct {
	dataDir string
	log     *slog.Logger
	mu      sync.Mutex
	m       map[int64]*table.Table
}

func newTables(dataDir string, log *slog.Logger) *tables {
	return &tables{dataDir: dataDir, log: log, m: map[int64]*table.Table{}}
}

func (ts *tables) get(project int64) (*table.Table, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t := ts.m[project]; t != nil {
		return t, nil
	}
	t, err := table.Open(table.ProjectDir(ts.dataDir, project), table.Options{Logger: ts.log})
	if err != nil {
		return nil, err
	}
	ts.m[project] = t
	return t, nil
}

func (ts *tables) all() []*table.Table {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]*table.Table, 0, len(ts.m))
	for _, t := range ts.m {
		out = append(out, t)
	}
	return out
}

func (ts *tables) closeAll() error {
	var errs []error
	for _, t := range ts.all() {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}

// Table returns a project's event table (opening it if needed), for
// readers such as the query layer and erasure.
func (s *Store) Table(project int64) (*table.Table, error) { return s.tables.get(project) }

// toHead adds a committed request's events and identity links to the
// heads. It runs on the commit goroutine, so a flush's log roll cuts the
// heads at exactly the same place as the log.
func (s *Store) toHead(c *commit) {
	b := c.batch
	if b == nil {
		return
	}
	s.applyProfiles(b.Profiles)
	for i := range b.Links {
		l := &b.Links[i]
		if tb, err := s.tables.get(l.Project); err == nil {
			tb.Link(l.From, l.To)
		} else {
			s.opts.Logger.Error("store: opening a table for an identity link", "project", l.Project, "err", err)
		}
	}
	evs := b.Events
	if len(c.dropped) > 0 {
		evs = make([]event.Event, 0, len(b.Events)-len(c.dropped))
		d := 0
		for i := range b.Events {
			if d < len(c.dropped) && c.dropped[d] == i {
				d++
				continue
			}
			evs = append(evs, b.Events[i])
		}
	}
	for len(evs) > 0 {
		// Requests carry one project's events as a rule; split if not.
		n := 1
		for n < len(evs) && evs[n].Project == evs[0].Project {
			n++
		}
		tb, err := s.tables.get(evs[0].Project)
		if err != nil {
			// The events are in the log; a restart replays them.
			s.opts.Logger.Error("store: opening a table", "project", evs[0].Project, "err", err)
		} else {
			s.addToHead(tb, evs[:n])
		}
		evs = evs[n:]
	}
	if s.headBytes >= s.opts.FlushBytes {
		select {
		case s.flushReq <- struct{}{}:
		default:
		}
	}
}

func (s *Store) addToHead(tb *table.Table, evs []event.Event) {
	p := evs[0].Project
	h := s.heads[p]
	if h == nil {
		h = table.NewBuffer()
		s.heads[p] = h
	}
	before := h.Bytes()
	tb.Add(h, evs)
	s.headBytes += h.Bytes() - before
}

// control runs fn on the commit goroutine, in order with the appends.
func (s *Store) control(fn func()) {
	c := &commit{ctl: fn, done: make(chan struct{})}
	s.reqs <- c
	<-c.done
}

const checkpointName = "checkpoint.json"

type checkpointFile struct {
	// WALSeq is the first log segment whose records some table may not
	// hold: replay adds to the heads only from here.
	WALSeq uint64 `json:"wal_seq"`
}

func readCheckpoint(dataDir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, checkpointName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var c checkpointFile
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, fmt.Errorf("store: unreadable %s: %w", checkpointName, err)
	}
	return c.WALSeq, nil
}

func writeCheckpoint(dataDir string, seq uint64) error {
	b, _ := json.Marshal(checkpointFile{WALSeq: seq})
	return table.WriteFileSync(filepath.Join(dataDir, checkpointName), b)
}

// Flush writes every head to segments now and checkpoints the log.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.flush(ctx, false)
}

// flush rolls the log and swaps the heads in one step on the commit
// goroutine, writes the old heads as segments (each table's commit records
// the roll), then moves the checkpoint and drops old log segments.
func (s *Store) flush(ctx context.Context, final bool) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	var heads map[int64]*table.Buffer
	var seq uint64
	var rollErr error
	var profSnap []byte
	s.control(func() {
		if len(s.heads) == 0 && !s.profDirty {
			return
		}
		if seq, rollErr = s.log.Roll(); rollErr != nil {
			return
		}
		heads, s.heads, s.headBytes = s.heads, map[int64]*table.Buffer{}, 0
		if s.profDirty {
			// The state as of the roll: later updates are in later segments.
			s.profMu.RLock()
			profSnap = encodeProfiles(s.prof, seq)
			s.profMu.RUnlock()
			s.profDirty = false
		}
	})
	if rollErr != nil {
		return fmt.Errorf("store: flush: %w", rollErr)
	}
	if seq == 0 {
		return nil
	}
	var errs []error
	for p, h := range heads {
		tb, err := s.tables.get(p)
		if err == nil {
			err = tb.FlushCovering(h, seq)
		}
		if err != nil {
			// The rows stay in the log after the checkpoint: a restart
			// replays them.
			errs = append(errs, fmt.Errorf("store: flushing project %d: %w", p, err))
		}
	}
	if profSnap != nil {
		if err := table.WriteFileSync(filepath.Join(s.dataDir, profilesName), profSnap); err != nil {
			errs = append(errs, fmt.Errorf("store: writing the profile snapshot: %w", err))
			s.control(func() { s.profDirty = true })
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := writeCheckpoint(s.dataDir, seq); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if !final {
		s.trimLog(seq)
	}
	return nil
}

// trimLog deletes flushed log segments the dedup index no longer needs:
// beyond KeepLogBytes or older than the dedup window.
func (s *Store) trimLog(checkpoint uint64) {
	var cut uint64
	s.control(func() {
		segs, err := s.log.Segments()
		if err != nil {
			s.opts.Logger.Error("store: listing log segments", "err", err)
			return
		}
		old := s.opts.Now().Add(-s.opts.DedupWindow)
		var kept int64
		for i := len(segs) - 1; i >= 0; i-- {
			sg := segs[i]
			if sg.Seq >= checkpoint {
				continue
			}
			kept += sg.Size
			if kept > s.opts.KeepLogBytes || sg.ModTime.Before(old) {
				cut = sg.Seq + 1
				break
			}
		}
		if cut > 0 {
			if err := s.log.RemoveBefore(cut); err != nil {
				s.opts.Logger.Error("store: removing flushed log segments", "err", err)
			}
		}
	})
}

// background flushes on a timer or when the heads grow, and runs the
// compactions the tables plan.
func (s *Store) background() {
	defer close(s.bgDone)
	var tick <-chan time.Time
	if s.opts.FlushInterval > 0 {
		t := time.NewTicker(s.opts.FlushInterval)
		defer t.Stop()
		tick = t.C
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stopc
		cancel()
	}()
	for {
		select {
		case <-s.stopc:
			return
		case <-tick:
		case <-s.flushReq:
		}
		if err := s.flush(ctx, false); err != nil {
			s.opts.Logger.Error("store: flush failed; the log keeps the events", "err", err)
		}
		s.applyRetention(ctx)
		s.compact(ctx)
	}
}

// Compact runs every merge the tables plan, then clears back-pressure.
func (s *Store) compact(ctx context.Context) {
	for _, tb := range s.tables.all() {
		for _, j := range tb.Plan() {
			if ctx.Err() != nil {
				return
			}
			if _, err := tb.Run(ctx, j); err != nil && ctx.Err() == nil {
				s.opts.Logger.Error("store: compaction failed", "table", tb.Dir(), "err", err)
			}
		}
	}
	behind := false
	for _, tb := range s.tables.all() {
		if tb.MaxSegmentsPerDay() > s.opts.MaxSegmentsPerDay {
			behind = true
		}
	}
	s.setBehind(behind)
}

func (s *Store) setBehind(b bool) {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.behind.Load() && !b {
		close(s.wake)
		s.wake = make(chan struct{})
	}
	s.behind.Store(b)
}

// ErrBusy is returned by Append when compaction stays behind for longer
// than the caller's context allows.
var ErrBusy = errors.New("store: busy compacting; retry later")

// waitCompaction is the back-pressure: while compaction is behind,
// appends wait for it.
func (s *Store) waitCompaction(ctx context.Context) error {
	for s.behind.Load() {
		s.wakeMu.Lock()
		w := s.wake
		s.wakeMu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ErrBusy
		case <-s.stopc:
			return ErrClosed
		}
	}
	return nil
}

// applyRetention drops the day partitions that projects' retention has
// passed.
func (s *Store) applyRetention(ctx context.Context) {
	if s.opts.Retention == nil {
		return
	}
	days, err := s.opts.Retention(ctx)
	if err != nil {
		if ctx.Err() == nil { // not a shutdown
			s.opts.Logger.Error("store: reading retention settings", "err", err)
		}
		return
	}
	today := table.DayOf(s.opts.Now().UnixMilli())
	for project, keep := range days {
		if keep <= 0 {
			continue
		}
		tb, err := s.tables.get(project)
		if err != nil {
			s.opts.Logger.Error("store: opening a table for retention", "project", project, "err", err)
			continue
		}
		n, err := tb.DropBefore(today - int32(keep) + 1)
		if err != nil {
			s.opts.Logger.Error("store: dropping expired partitions", "project", project, "err", err)
		} else if n > 0 {
			s.opts.Logger.Info("store: retention dropped expired day partitions", "project", project, "days_kept", keep, "events", n)
		}
	}
}
