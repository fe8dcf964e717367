// Package store owns Veil's event storage. In this version it is the
// write-ahead log alone: requests are appended as one record each, many
// requests share one fsync (group commit), and events are deduplicated on
// Mixpanel's key (event, distinct_id, time, $insert_id) before they are
// written. Reading back is a sequential scan of the log.
package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/veil-analytics/veil/internal/event"
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
	dedup *dedupIndex
}

// commit is one request waiting for the group commit.
type commit struct {
	payload   []byte
	keys      []dedupKey // one per event, zero when the event has no $insert_id
	events    []int      // offset of each event's frame within payload, for dropping duplicates
	eventsEnd int        // where the event frames end (profiles and links follow)
	dups      int
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
	s := &Store{
		opts:  opts,
		reqs:  make(chan *commit, 1024),
		stopc: make(chan struct{}),
		donec: make(chan struct{}),
		dedup: newDedupIndex(opts.DedupWindow, opts.DedupMaxKeys),
	}
	cutoff := opts.Now().Add(-opts.DedupWindow).UnixMilli()
	replay := func(payload []byte) error {
		return eachFrame(payload, func(typ event.RecordType, body []byte) error {
			if typ != event.RecordEvent {
				return nil
			}
			e, err := event.DecodeEventHead(body)
			if err != nil {
				return err
			}
			if e.InsertID != "" && e.Received >= cutoff {
				s.dedup.add(s.dedup.key(&e), e.Received)
			}
			return nil
		})
	}
	l, err := wal.Open(walDir(dataDir), wal.Options{SegmentSize: opts.SegmentSize}, replay)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.log = l
	go s.run()
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
// Events whose dedup key was already stored are dropped; dups counts them.
// Append waits for the commit even if ctx ends meanwhile, so that its answer
// is always true; ctx only stops it from queueing.
func (s *Store) Append(ctx context.Context, b *event.Batch) (dups int, err error) {
	c := &commit{done: make(chan struct{})}
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
	return c.dups, c.err
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
	<-s.donec
	return s.log.Close()
}

// run is the commit goroutine: it takes every queued request, drops
// duplicate events, writes one record per request and fsyncs once for all.
func (s *Store) run() {
	defer close(s.donec)
	var group []*commit
	for {
		select {
		case c := <-s.reqs:
			group = append(group[:0], c)
		case <-s.stopc:
			// Appenders hold mu.RLock while queueing and Close took the
			// write lock, so nothing new arrives: drain what is queued.
			for {
				select {
				case c := <-s.reqs:
					s.commitGroup([]*commit{c})
				default:
					return
				}
			}
		}
		size := len(group[0].payload)
	fill:
		for size < s.opts.MaxGroupBytes {
			select {
			case c := <-s.reqs:
				group = append(group, c)
				size += len(c.payload)
			default:
				break fill
			}
		}
		s.commitGroup(group)
		clear(group) // do not keep the payloads alive until the next group
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
		}
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
