// Package wal owns Veil's write-ahead log: the numbered segment files in one
// directory that the collector appends event batches to and fsyncs before
// acknowledging them. It owns their on-disk format (see FORMAT.md), the
// repair of a torn tail after a crash, and replay of the records on start.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"
)

// DefaultSegmentSize is the segment size used when Options.SegmentSize is 0.
const DefaultSegmentSize = 128 << 20

// maxKeptBuf bounds the write buffer a Log keeps between Writes, so one huge
// batch does not pin its memory for the life of the log.
const maxKeptBuf = 4 << 20

var (
	// ErrClosed is returned by Write and Sync after Close.
	ErrClosed = errors.New("wal: log closed")
	// ErrFailed matches (errors.Is) every error from a log that failed for
	// good: a failed fsync, or a failed write that could not be undone.
	// Nothing written since the last successful Sync can be trusted; reopen
	// the log to recover what is on disk.
	ErrFailed = errors.New("wal: log failed")
	// ErrEmptyPayload is returned by Write for a zero-length payload; the
	// format reserves length 0 to detect zero-filled tails.
	ErrEmptyPayload = errors.New("wal: empty payload")
	// ErrPayloadTooLarge is returned by Write for a payload over MaxPayloadSize.
	ErrPayloadTooLarge = errors.New("wal: payload too large")
)

// Options configures a Log; zero values mean defaults.
type Options struct {
	// SegmentSize is the size after which Write rolls to a new segment
	// file; default DefaultSegmentSize. The records of one Write always land
	// in one segment, so a segment only exceeds this when one Write does.
	SegmentSize int64
	// OnSegment, if set, is called during Open before the records of each
	// segment are passed to fn, with the segment's number: callers that
	// checkpoint by segment tell covered records from the rest.
	OnSegment func(seq uint64)
}

// Log is an open write-ahead log. Write, Sync and Close must be called from
// one goroutine at a time; Size and Repaired are safe from any goroutine.
type Log struct {
	dir         string
	dirf        *os.File // held open for the directory lock and fsyncs
	segmentSize int64

	seq     uint64   // number of the current (last) segment
	seg     *os.File // the current segment, open read-write
	segPath string
	segSize int64 // bytes in seg; the next frame goes here
	synced  int64 // segSize as of the last fsync of seg; -1 when unknown

	buf    []byte // reused frame buffer
	failed error
	closed bool

	size     atomic.Int64 // bytes in all segments
	repaired int64        // set by Open, read-only after
}

// failedError is what a failed Log returns from then on.
type failedError struct{ cause error }

func (e *failedError) Error() string {
	return e.cause.Error() + " (log failed; reopen to recover)"
}

func (e *failedError) Unwrap() []error { return []error{ErrFailed, e.cause} }

// Open opens or creates the log in dir, creating dir with mode 0700. It
// scans every segment, calling fn (if not nil) with the payload of every
// good record in order; the slice is only valid during the call, and an
// error from fn aborts Open. A torn tail of the last segment (a partial
// frame, or a frame with a bad length or checksum, through EOF) is truncated
// away and counted by Repaired; a last segment shorter than its header gets
// the header rewritten. A bad header or frame in any earlier segment fails
// Open with a *CorruptionError. Repairs happen only after fn has seen every
// good record, so when fn or a corrupt segment fails Open, the segments are
// left as they were.
//
// Only one Log may be open on dir at a time; on Linux this is enforced
// with flock(2) on the directory.
func Open(dir string, opts Options, fn func(payload []byte) error) (_ *Log, err error) {
	segmentSize := opts.SegmentSize
	if segmentSize <= 0 {
		segmentSize = DefaultSegmentSize
	}
	if err := mkdirDurable(dir); err != nil {
		return nil, err
	}
	dirf, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open dir %s: %w", dir, err)
	}
	l := &Log{dir: dir, dirf: dirf, segmentSize: segmentSize}
	defer func() {
		if err != nil {
			if l.seg != nil {
				l.seg.Close()
			}
			dirf.Close()
		}
	}()
	if err := lockDir(dirf); err != nil {
		return nil, fmt.Errorf("wal: lock %s: %w", dir, err)
	}
	seqs, err := listSegments(dir)
	if err != nil {
		var cerr *CorruptionError
		if errors.As(err, &cerr) {
			return nil, err
		}
		return nil, fmt.Errorf("wal: read dir %s: %w", dir, err)
	}
	if len(seqs) == 0 {
		f, _, err := createSegment(dirf, dir, 1)
		if err != nil {
			return nil, err
		}
		l.setSegment(1, f)
		l.size.Store(headerSize)
		return l, nil
	}
	if fn == nil {
		fn = func([]byte) error { return nil }
	}

	var s scanner
	var total int64
	for _, seq := range seqs[:len(seqs)-1] {
		if opts.OnSegment != nil {
			opts.OnSegment(seq)
		}
		size, _, err := readSegment(&s, filepath.Join(dir, segmentName(seq)), false, fn)
		if err != nil {
			return nil, err
		}
		total += size
	}

	last := seqs[len(seqs)-1]
	if opts.OnSegment != nil {
		opts.OnSegment(last)
	}
	path := filepath.Join(dir, segmentName(last))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: open segment %s: %w", path, err)
	}
	l.setSegment(last, f)
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("wal: stat segment %s: %w", path, err)
	}
	size := fi.Size()
	short, err := checkHeader(f, path, size)
	if err != nil {
		return nil, err
	}
	end := int64(0) // a short header is dropped whole and rewritten
	if !short {
		res, err := s.scan(f, path, size, fn)
		if err != nil {
			return nil, err
		}
		end = res.end
	}

	if end < size {
		// A torn tail was never acknowledged, but a bad frame can also be
		// bit rot in front of synced records: keep the bytes aside for the
		// operator instead of destroying them.
		if err := saveTail(f, path, end, size); err != nil {
			return nil, err
		}
		if err := f.Truncate(end); err != nil {
			return nil, fmt.Errorf("wal: repair segment %s: truncate to %d: %w", path, end, err)
		}
		l.repaired = size - end
	}
	if short {
		// A crash between creating the segment and syncing its header.
		h := segmentHeader()
		if _, err := f.WriteAt(h[:], 0); err != nil {
			return nil, fmt.Errorf("wal: repair segment %s: write header: %w", path, err)
		}
		end = headerSize
	}
	// Sync even without a repair: a crashed predecessor may have left records
	// that were written but never synced, and fn has just been shown them, so
	// they must not vanish in a later power loss.
	if err := fdatasync(f); err != nil {
		return nil, fmt.Errorf("wal: sync segment %s: %w", path, err)
	}
	// Likewise a segment created just before a crash may not have its
	// directory entry on disk yet.
	if err := dirf.Sync(); err != nil {
		return nil, fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	l.segSize, l.synced = end, end
	l.size.Store(total + end)
	return l, nil
}

// setSegment makes f, a freshly opened segment number seq, the current one.
func (l *Log) setSegment(seq uint64, f *os.File) {
	l.seq = seq
	l.seg = f
	l.segPath = f.Name()
	l.segSize, l.synced = headerSize, headerSize
}

// mkdirDurable creates dir and any missing parents, then fsyncs the parent
// of each one created so the new entries survive a power loss.
func mkdirDurable(dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("wal: stat %s: %w", d, err)
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	// MkdirAll also rejects an existing dir that is not a directory.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wal: create dir %s: %w", dir, err)
	}
	for _, d := range missing {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	return nil
}

// createSegment creates segment seq in dir with its header, durably: the
// file and its directory entry are fsynced. fatal reports a failure after
// which the directory's state on disk is unknown.
func createSegment(dirf *os.File, dir string, seq uint64) (_ *os.File, fatal bool, _ error) {
	path := filepath.Join(dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("wal: create segment %s: %w", path, err)
	}
	h := segmentHeader()
	if _, err := f.WriteAt(h[:], 0); err != nil {
		f.Close()
		err = fmt.Errorf("wal: write segment header %s: %w", path, err)
		// Undo the create durably, or after a crash this empty segment would
		// follow the one we keep appending to and make its tail non-last.
		if rerr := os.Remove(path); rerr != nil {
			return nil, true, fmt.Errorf("%w; remove: %w", err, rerr)
		}
		if serr := dirf.Sync(); serr != nil {
			return nil, true, fmt.Errorf("%w; sync dir %s: %w", err, dir, serr)
		}
		return nil, false, err
	}
	if err := fdatasync(f); err != nil {
		f.Close()
		return nil, true, fmt.Errorf("wal: sync segment %s: %w", path, err)
	}
	if err := dirf.Sync(); err != nil {
		f.Close()
		return nil, true, fmt.Errorf("wal: sync dir %s: %w", dir, err)
	}
	return f, false, nil
}

// fail puts the log in the failed state for good and returns the error.
func (l *Log) fail(err error) error {
	l.failed = &failedError{cause: err}
	return l.failed
}

func (l *Log) usable() error {
	if l.closed {
		return ErrClosed
	}
	return l.failed
}

// Write appends each payload as one record, building all frames in one
// buffer written with one write(2). If the current segment holds records
// and the batch would take it past SegmentSize, Write first rolls to a new
// segment. The records are not synced; call Sync. On error nothing of the
// batch remains in the log, unless the error matches ErrFailed.
func (l *Log) Write(payloads ...[]byte) error {
	if err := l.usable(); err != nil {
		return err
	}
	var n int64
	for i, p := range payloads {
		if len(p) == 0 {
			return fmt.Errorf("%w: record %d of %d", ErrEmptyPayload, i, len(payloads))
		}
		if len(p) > MaxPayloadSize {
			return fmt.Errorf("%w: record %d is %d bytes, max %d", ErrPayloadTooLarge, i, len(p), MaxPayloadSize)
		}
		n += frameHeaderSize + int64(len(p))
	}
	if n == 0 {
		return nil
	}
	// One segment per batch keeps a failed Write undoable by one truncate.
	if l.segSize > headerSize && l.segSize+n > l.segmentSize {
		if err := l.roll(); err != nil {
			return err
		}
	}

	buf := slices.Grow(l.buf[:0], int(n))
	for _, p := range payloads {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(p)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(p, castagnoli))
		buf = append(buf, p...)
	}
	_, err := l.seg.WriteAt(buf, l.segSize)
	if cap(buf) <= maxKeptBuf {
		l.buf = buf[:0]
	} else {
		l.buf = nil
	}
	if err != nil {
		err = fmt.Errorf("wal: write segment %s: %w", l.segPath, err)
		// Drop any partial frame so the next Write starts on a boundary.
		if terr := l.seg.Truncate(l.segSize); terr != nil {
			return l.fail(fmt.Errorf("%w; truncate back to %d: %w", err, l.segSize, terr))
		}
		// The truncate itself is not durable until the next fsync.
		l.synced = -1
		return err
	}
	l.segSize += n
	l.size.Add(n)
	return nil
}

// roll makes a new, empty segment current.
func (l *Log) roll() error {
	// Sync only ever covers the current segment, and a torn tail in a
	// segment that is no longer last is corruption on the next Open, so the
	// finished segment must be durable before its successor exists.
	if err := l.sync(); err != nil {
		return err
	}
	f, fatal, err := createSegment(l.dirf, l.dir, l.seq+1)
	if err != nil {
		if fatal {
			return l.fail(err)
		}
		return err
	}
	// Already synced, so a close error cannot lose data.
	_ = l.seg.Close()
	l.setSegment(l.seq+1, f)
	l.size.Add(headerSize)
	return nil
}

// Roll syncs the current segment and starts a new one, returning its
// number: every record written before Roll is in a segment numbered below
// it. Checkpoints use it to cut the log at a known place.
func (l *Log) Roll() (uint64, error) {
	if err := l.usable(); err != nil {
		return 0, err
	}
	if err := l.roll(); err != nil {
		return 0, err
	}
	return l.seq, nil
}

// Seq is the number of the current segment.
func (l *Log) Seq() uint64 { return l.seq }

// RemoveBefore deletes the segments numbered below seq (never the current
// one): their records are checkpointed elsewhere.
func (l *Log) RemoveBefore(seq uint64) error {
	if err := l.usable(); err != nil {
		return err
	}
	seqs, err := listSegments(l.dir)
	if err != nil {
		return fmt.Errorf("wal: read dir %s: %w", l.dir, err)
	}
	removed := false
	for _, s := range seqs {
		if s >= seq || s >= l.seq {
			break
		}
		path := filepath.Join(l.dir, segmentName(s))
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("wal: remove segment: %w", err)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("wal: remove segment: %w", err)
		}
		l.size.Add(-fi.Size())
		removed = true
	}
	if removed {
		if err := l.dirf.Sync(); err != nil {
			return fmt.Errorf("wal: sync dir %s: %w", l.dir, err)
		}
	}
	return nil
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Seq     uint64
	Size    int64
	ModTime time.Time
}

// Segments lists the log's segments, oldest first.
func (l *Log) Segments() ([]SegmentInfo, error) {
	seqs, err := listSegments(l.dir)
	if err != nil {
		return nil, err
	}
	out := make([]SegmentInfo, 0, len(seqs))
	for _, seq := range seqs {
		fi, err := os.Stat(filepath.Join(l.dir, segmentName(seq)))
		if err != nil {
			return nil, err
		}
		out = append(out, SegmentInfo{Seq: seq, Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return out, nil
}

// Sync makes every record written so far durable (fdatasync on Linux). A
// failed fsync fails the log for good: after one, the kernel may have
// dropped the dirty pages and a retry would report success ("fsyncgate").
func (l *Log) Sync() error {
	if err := l.usable(); err != nil {
		return err
	}
	return l.sync()
}

func (l *Log) sync() error {
	if l.synced == l.segSize {
		return nil
	}
	if err := fdatasync(l.seg); err != nil {
		return l.fail(fmt.Errorf("wal: sync segment %s: %w", l.segPath, err))
	}
	l.synced = l.segSize
	return nil
}

// Size returns the total bytes of all segments, headers included.
func (l *Log) Size() int64 { return l.size.Load() }

// Repaired returns the number of bytes Open dropped from a torn tail.
func (l *Log) Repaired() int64 { return l.repaired }

// Close syncs and closes the log and releases its lock. Closing a failed
// log returns its failure; later calls return nil.
func (l *Log) Close() error {
	if l.closed {
		return nil
	}
	err := l.usable()
	if err == nil {
		err = l.sync()
	}
	l.closed = true
	if cerr := l.seg.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("wal: close segment %s: %w", l.segPath, cerr)
	}
	if cerr := l.dirf.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("wal: close dir %s: %w", l.dir, cerr)
	}
	return err
}

// saveTail copies bytes [end, size) of the segment at path into
// "<path>.torn-<end>", synced, before a repair truncates them. A tail of
// zeros (a file extended but never written) is not worth keeping.
func saveTail(f *os.File, path string, end, size int64) error {
	tail := make([]byte, size-end)
	if _, err := f.ReadAt(tail, end); err != nil {
		return fmt.Errorf("wal: repair segment %s: read tail: %w", path, err)
	}
	allZero := true
	for _, c := range tail {
		if c != 0 {
			allZero = false
			break
		}
	}
	if allZero {
		return nil
	}
	side := fmt.Sprintf("%s.torn-%d", path, end)
	if err := os.WriteFile(side, tail, 0o600); err != nil {
		return fmt.Errorf("wal: repair segment %s: save tail: %w", path, err)
	}
	sf, err := os.Open(side)
	if err != nil {
		return fmt.Errorf("wal: repair segment %s: save tail: %w", path, err)
	}
	defer sf.Close()
	if err := sf.Sync(); err != nil {
		return fmt.Errorf("wal: repair segment %s: sync saved tail: %w", path, err)
	}
	return nil
}
