// Package store owns Veil's event storage: a write-ahead log in front of
// one columnar event table per project (internal/store/table).
//
// Requests are appended as one log record each, many requests share one
// fsync (group commit), and events are deduplicated on Mixpanel's key
// (event, distinct_id, time, $insert_id) before they are written. Once
// durable, events join an in-memory head per project; a flush rolls the
// log, writes the heads as segments, records the log segment the tables
// now cover (the checkpoint) and lets old log segments go. Replay after a
// crash adds to the heads only what no table covers, so nothing
// acknowledged is lost or stored twice.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/profiles"
	"github.com/veil-analytics/veil/internal/store/table"
	"github.com/veil-analytics/veil/internal/store/wal"
)

// Options configure a Store; zero values mean defaults.
type Options struct {
	// DedupWindow is how long after receipt an $insert_id still deduplicates
	// (default 24 h, the window Mixpanel's browser SDK retries within).
	DedupWindow time.Duration
	// DedupMaxKeys bounds the memory of the dedup index (default 8M keys,
	// about 150 MB at Go map overheads); past it the oldest generation is
	// forgotten early.
	DedupMaxKeys int
	// MaxGroupBytes bounds how much one group commit writes (default 32 MiB).
	MaxGroupBytes int
	// SegmentSize is the size of WAL segment files (default 128 MiB).
	SegmentSize int64
	// ObserveSync, if set, is told how long each fsync took.
	ObserveSync func(time.Duration)
	// FlushInterval is how often heads are written to segments (default
	// 30 s); FlushBytes flushes earlier when the heads hold that much
	// (default 64 MiB). A negative FlushInterval disables the timer
	// (tests flush by hand).
	FlushInterval time.Duration
	FlushBytes    int
	// KeepLogBytes is how much flushed log the store keeps so that the
	// $insert_id dedup index survives a restart (default 512 MiB); flushed
	// log older than DedupWindow goes regardless.
	KeepLogBytes int64
	// MaxSegmentsPerDay is the back-pressure threshold: while compaction
	// leaves a day with more segments than this, Append waits (default 64).
	MaxSegmentsPerDay int
	// Logger receives flush and compaction errors (default slog.Default).
	Logger *slog.Logger
	// Retention, if set, returns each project's retention in days (absent
	// or 0: keep everything); after each flush, day partitions older than
	// that are dropped whole.
	Retention func(context.Context) (map[int64]int, error)
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("store: closed")

// ErrTooLarge is returned by Append for a batch too large for one log
// record. It has a TooLarge method so callers can tell without importing
// this package.
var ErrTooLarge error = tooLargeError{}

type tooLargeError struct{}

func (tooLargeError) Error() string  { return "store: batch too large for one log record" }
func (tooLargeError) TooLarge() bool { return true }

// Store is an open event store. Its methods are safe for concurrent use.
type Store struct {
	opts  Options
	log   *wal.Log
	reqs  chan *commit
	stopc chan struct{}
	donec chan struct{}

	mu     sync.RWMutex // guards closed against Append racing Close
	closed bool

	failed atomic.Pointer[error] // set when the log failed for good

	// Owned by the commit goroutine after Open returns.
	dedup     *dedupIndex
	heads     map[int64]*table.Buffer
	headBytes int

	dataDir  string
	tables   *tables
	flushReq chan struct{} // a nudge to flush early
	flushMu  sync.Mutex    // one flush at a time
	behind   atomic.Bool   // compaction is behind: appends wait
	wake     chan struct{} // closed and replaced when behind clears
	wakeMu   sync.Mutex
	bgDone   chan struct{}

	profMu    sync.RWMutex
	prof      *profiles.State
	profDirty bool // changed since the last snapshot (commit goroutine)
}

// commit is one request waiting for the group commit.
type commit struct {
	ctl       func() // a control request run by the commit goroutine
	batch     *event.Batch
	payload   []byte
	keys      []dedupKey // one per event, zero when the event has no $insert_id
	events    []int      // offset of each event's frame within payload, for dropping duplicates
	eventsEnd int        // where the event frames end (profiles and links follow)
	dups      int
	dropped   []int // indexes of the events dropped as duplicates
	err       error
	done      chan struct{}
}

// Dir returns the WAL directory inside a data directory.
func walDir(dataDir string) string { return filepath.Join(dataDir, "wal") }

// Open opens the store in dataDir, replaying the log to rebuild the dedup index.
func Open(dataDir string, opts Options) (*Store, error) {
	if opts.DedupWindow <= 0 {
		opts.DedupWindow = 24 * time.Hour
	}
	if opts.DedupMaxKeys <= 0 {
		opts.DedupMaxKeys = 8 << 20
	}
	if opts.MaxGroupBytes <= 0 {
		opts.MaxGroupBytes = 32 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 30 * time.Second
	}
	if opts.FlushBytes <= 0 {
		opts.FlushBytes = 64 << 20
	}
	if opts.KeepLogBytes <= 0 {
		opts.KeepLogBytes = 512 << 20
	}
	if opts.MaxSegmentsPerDay <= 0 {
		opts.MaxSegmentsPerDay = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		opts:     opts,
		reqs:     make(chan *commit, 1024),
		stopc:    make(chan struct{}),
		donec:    make(chan struct{}),
		dedup:    newDedupIndex(opts.DedupWindow, opts.DedupMaxKeys),
		heads:    map[int64]*table.Buffer{},
		dataDir:  dataDir,
		tables:   newTables(dataDir, opts.Logger),
		flushReq: make(chan struct{}, 1),
		wake:     make(chan struct{}),
		bgDone:   make(chan struct{}),
	}
	checkpoint, err := readCheckpoint(dataDir)
	if err != nil {
		return nil, err
	}
	var profSeq uint64
	if s.prof, profSeq, err = loadProfiles(dataDir); err != nil {
		return nil, err
	}
	cutoff := opts.Now().Add(-opts.DedupWindow).UnixMilli()
	var cur uint64
	var replayErr error
	replay := func(payload []byte) error {
		return eachFrame(payload, func(typ event.RecordType, body []byte) error {
			switch typ {
			case event.RecordEvent:
				e, err := event.DecodeEventHead(body)
				if err != nil {
					return err
				}
				if e.InsertID != "" && e.Received >= cutoff {
					s.dedup.add(s.dedup.key(&e), e.Received)
				}
				if cur < checkpoint {
					return nil
				}
				tb, err := s.tables.get(e.Project)
				if err != nil {
					replayErr = err
					return err
				}
				if cur < tb.WALCovered() {
					return nil
				}
				full, err := event.DecodeEvent(body)
				if err != nil {
					return err
				}
				s.addToHead(tb, []event.Event{full})
			case event.RecordProfile:
				if cur < profSeq {
					return nil
				}
				u, err := event.DecodeProfile(body)
				if err != nil {
					return err
				}
				s.applyProfiles([]event.ProfileUpdate{u})
			case event.RecordIdentity:
				if cur < checkpoint {
					return nil
				}
				l, err := event.DecodeIdentity(body)
				if err != nil {
					return err
				}
				tb, err := s.tables.get(l.Project)
				if err != nil {
					replayErr = err
					return err
				}
				if cur >= tb.WALCovered() {
					tb.Link(l.From, l.To)
				}
			}
			return nil
		})
	}
	l, err := wal.Open(walDir(dataDir), wal.Options{SegmentSize: opts.SegmentSize,
		OnSegment: func(seq uint64) { cur = seq }}, replay)
	if err != nil {
		s.tables.closeAll()
		if replayErr != nil {
			return nil, fmt.Errorf("store: %w", replayErr)
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	s.log = l
	go s.run()
	go s.background()
	return s, nil
}

// Repaired is the number of bytes of a torn log tail that Open dropped.
func (s *Store) Repaired() int64 { return s.log.Repaired() }

// Err is non-nil once the log has failed for good (a write or fsync error
// the log cannot recover from): every Append fails until a restart.
func (s *Store) Err() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// LogSize is the size of the write-ahead log in bytes.
func (s *Store) LogSize() int64 { return s.log.Size() }

// Append stores b durably: when it returns nil, b is in the log and fsync'd.
// Events whose dedup key was already stored are dropped, and so are the
// events of erased people (see Erase); dups counts both.
// Append waits for the commit even if ctx ends meanwhile, so that its answer
// is always true; ctx only stops it from queueing.
func (s *Store) Append(ctx context.Context, b *event.Batch) (dups int, err error) {
	if err := s.waitCompaction(ctx); err != nil {
		return 0, err
	}
	suppressed := 0
	if b2, n := s.withoutSuppressed(b); n > 0 {
		b, suppressed = b2, n
	}
	c := &commit{done: make(chan struct{}), batch: b}
	c.payload = make([]byte, 0, 512*b.Len())
	var scratch []byte
	for i := range b.Events {
		e := &b.Events[i]
		c.events = append(c.events, len(c.payload))
		var k dedupKey
		if e.InsertID != "" {
			k = s.dedup.key(e)
		}
		c.keys = append(c.keys, k)
		scratch = event.AppendEvent(scratch[:0], e)
		c.payload = event.AppendRecord(c.payload, event.RecordEvent, scratch)
	}
	c.eventsEnd = len(c.payload)
	for i := range b.Profiles {
		scratch = event.AppendProfile(scratch[:0], &b.Profiles[i])
		c.payload = event.AppendRecord(c.payload, event.RecordProfile, scratch)
	}
	for i := range b.Links {
		scratch = event.AppendIdentity(scratch[:0], &b.Links[i])
		c.payload = event.AppendRecord(c.payload, event.RecordIdentity, scratch)
	}

	if len(c.payload) > wal.MaxPayloadSize {
		// One record per request: refuse it alone rather than fail the
		// whole commit group it would join.
		return 0, ErrTooLarge
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return 0, ErrClosed
	}
	select {
	case s.reqs <- c:
	case <-ctx.Done():
		s.mu.RUnlock()
		return 0, ctx.Err()
	}
	s.mu.RUnlock()
	<-c.done
	if c.err != nil {
		return 0, c.err
	}
	return c.dups + suppressed, nil
}

// withoutSuppressed returns b without the events of erased people (the
// suppression list) and how many it left out; b itself is not changed.
func (s *Store) withoutSuppressed(b *event.Batch) (*event.Batch, int) {
	var keep []event.Event
	n := 0
	for i := range b.Events {
		e := &b.Events[i]
		tb, err := s.tables.get(e.Project)
		if err != nil || !tb.Erased(e.DistinctID) {
			if n > 0 {
				keep = append(keep, *e)
			}
			continue
		}
		if n == 0 {
			keep = append(make([]event.Event, 0, len(b.Events)), b.Events[:i]...)
		}
		n++
	}
	var keepProf []event.ProfileUpdate
	np := 0
	for i := range b.Profiles {
		u := &b.Profiles[i]
		tb, err := s.tables.get(u.Project)
		if u.IsGroup() || err != nil || !tb.Erased(u.DistinctID) {
			if np > 0 {
				keepProf = append(keepProf, *u)
			}
			continue
		}
		if np == 0 {
			keepProf = append(make([]event.ProfileUpdate, 0, len(b.Profiles)), b.Profiles[:i]...)
		}
		np++
	}
	if n+np == 0 {
		return b, 0
	}
	nb := *b
	if n > 0 {
		nb.Events = keep
	}
	if np > 0 {
		nb.Profiles = keepProf
	}
	return &nb, n + np
}

// Close waits for queued appends to commit, then syncs and closes the log.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stopc)
	<-s.bgDone
	// Write the heads out so that a restart has little log to replay.
	ferr := s.flush(context.Background(), true)
	close(s.reqs) // nothing else sends: appenders saw closed
	<-s.donec
	err := s.log.Close()
	if cerr := s.tables.closeAll(); err == nil {
		err = cerr
	}
	if err == nil && ferr != nil {
		err = ferr
	}
	return err
}

// run is the commit goroutine: it takes every queued request, drops
// duplicate events, writes one record per request and fsyncs once for all.
func (s *Store) run() {
	defer close(s.donec)
	var group []*commit
	for {
		c, ok := <-s.reqs
		if !ok {
			return // Close's last flush is done
		}
		if c.ctl != nil {
			c.ctl()
			close(c.done)
			continue
		}
		group = append(group[:0], c)
		size := len(group[0].payload)
		var ctl *commit
	fill:
		for size < s.opts.MaxGroupBytes {
			select {
			case c := <-s.reqs:
				if c.ctl != nil {
					ctl = c // after this group, in order
					break fill
				}
				group = append(group, c)
				size += len(c.payload)
			default:
				break fill
			}
		}
		s.commitGroup(group)
		clear(group) // do not keep the payloads alive until the next group
		if ctl != nil {
			ctl.ctl()
			close(ctl.done)
		}
	}
}

func (s *Store) commitGroup(group []*commit) {
	now := s.opts.Now().UnixMilli()
	payloads := make([][]byte, 0, len(group))
	var added []dedupKey
	for _, c := range group {
		var drop []int
		for i, k := range c.keys {
			if k == 0 {
				continue
			}
			if s.dedup.has(k) { // also catches a copy earlier in this group
				drop = append(drop, i)
				continue
			}
			s.dedup.add(k, now)
			added = append(added, k)
		}
		if len(drop) > 0 {
			c.payload = c.without(drop)
			c.dups = len(drop)
			c.dropped = drop
		}
		if len(c.payload) > 0 {
			payloads = append(payloads, c.payload)
		}
	}
	var err error
	if len(payloads) > 0 {
		if err = s.log.Write(payloads...); err == nil {
			start := time.Now()
			err = s.log.Sync()
			if s.opts.ObserveSync != nil {
				s.opts.ObserveSync(time.Since(start))
			}
		}
	}
	if err != nil {
		for _, k := range added {
			s.dedup.remove(k)
		}
		err = fmt.Errorf("store: append: %w", err)
		if errors.Is(err, wal.ErrFailed) {
			s.failed.Store(&err)
		}
	}
	for _, c := range group {
		c.err = err
		if err != nil {
			c.dups = 0
		} else {
			s.toHead(c)
		}
		c.batch = nil
		close(c.done)
	}
}

// without returns c's payload minus the frames of the events at the sorted
// indexes drop.
func (c *commit) without(drop []int) []byte {
	out := make([]byte, 0, len(c.payload))
	prev := 0
	for _, i := range drop {
		end := c.eventsEnd
		if i+1 < len(c.events) {
			end = c.events[i+1]
		}
		out = append(out, c.payload[prev:c.events[i]]...)
		prev = end
	}
	return append(out, c.payload[prev:]...)
}
