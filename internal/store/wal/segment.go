package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	// MaxPayloadSize is the largest payload one record may carry.
	MaxPayloadSize = 64 << 20

	headerSize      = 8 // magic + version
	frameHeaderSize = 8 // length + CRC
	formatVersion   = 1
	segmentSuffix   = ".wal"
)

var (
	segmentMagic = [7]byte{'V', 'E', 'I', 'L', 'W', 'A', 'L'}
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
)

// segmentHeader returns the 8 bytes every segment starts with.
func segmentHeader() [headerSize]byte {
	var h [headerSize]byte
	copy(h[:], segmentMagic[:])
	h[7] = formatVersion
	return h
}

// CorruptionError reports a bad segment header or frame where the log
// cannot be repaired by dropping a torn tail: anywhere but the last segment.
type CorruptionError struct {
	Path   string // segment file
	Offset int64  // byte offset of the bad header or frame within Path
	Reason string
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("wal: corruption in %s at offset %d: %s", e.Path, e.Offset, e.Reason)
}

func segmentName(seq uint64) string {
	return fmt.Sprintf("%08d%s", seq, segmentSuffix)
}

// listSegments returns the sequence numbers of the segments in dir, ascending.
// Other files are ignored. A gap in the sequence means a segment was lost,
// which no repair can fix.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		digits, ok := strings.CutSuffix(name, segmentSuffix)
		if !ok {
			continue
		}
		seq, err := strconv.ParseUint(digits, 10, 64)
		// Only canonical names: "1.wal" or "+0000001.wal" are not ours.
		if err != nil || segmentName(seq) != name {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			return nil, &CorruptionError{
				Path:   filepath.Join(dir, segmentName(seqs[i-1]+1)),
				Reason: fmt.Sprintf("segment missing: sequence jumps from %s to %s", segmentName(seqs[i-1]), segmentName(seqs[i])),
			}
		}
	}
	return seqs, nil
}

// checkHeader validates the header of a segment of the given size. It
// reports short=true, with no error, when the file is shorter than a header
// or its header is all zeros;
// whether that is a crash artifact or corruption is the caller's call.
func checkHeader(f *os.File, path string, size int64) (short bool, err error) {
	if size < headerSize {
		return true, nil
	}
	var h [headerSize]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		if errors.Is(err, io.EOF) {
			// Shrunk since it was stat'ed: only a concurrent repair does that.
			return true, nil
		}
		return false, fmt.Errorf("wal: read segment %s: %w", path, err)
	}
	if h == ([headerSize]byte{}) {
		// A file system may return a new file as zeros after a power loss
		// (size extended, data never written): its header was never
		// synced, so nothing in it was acknowledged. Same as a short one.
		return true, nil
	}
	if [7]byte(h[:7]) != segmentMagic {
		return false, &CorruptionError{Path: path, Reason: fmt.Sprintf("bad segment magic %q", h[:7])}
	}
	if h[7] != formatVersion {
		return false, &CorruptionError{Path: path, Reason: fmt.Sprintf("unsupported segment version %d", h[7])}
	}
	return false, nil
}

// scanner reads the frames of segments, reusing one read buffer and one
// payload buffer across segments.
type scanner struct {
	br  *bufio.Reader
	buf []byte
}

// scanResult says where a scan of one segment stopped.
type scanResult struct {
	end    int64  // offset just past the last good frame
	reason string // why the frame at end is bad; "" if the scan reached size
}

// scan calls fn for each good frame of f from the header up to size bytes,
// stopping at the first bad frame. Bounding the scan by a size taken once
// makes a concurrent reader see a consistent prefix of a growing segment,
// and keeps a garbage length from making us allocate more than the file has.
func (s *scanner) scan(f *os.File, path string, size int64, fn func([]byte) error) (scanResult, error) {
	sr := io.NewSectionReader(f, headerSize, size-headerSize)
	if s.br == nil {
		s.br = bufio.NewReaderSize(sr, 64<<10)
	} else {
		s.br.Reset(sr)
	}
	off := int64(headerSize)
	var fh [frameHeaderSize]byte
	for off < size {
		if size-off < frameHeaderSize {
			return scanResult{off, "truncated frame header"}, nil
		}
		if _, err := io.ReadFull(s.br, fh[:]); err != nil {
			return s.readErr(off, path, err)
		}
		n := binary.LittleEndian.Uint32(fh[0:4])
		sum := binary.LittleEndian.Uint32(fh[4:8])
		// Length 0 is never written: a zero-filled tail (size extended but
		// data never reached the disk) would otherwise parse as empty records,
		// because the CRC-32C of nothing is 0.
		if n == 0 || n > MaxPayloadSize {
			return scanResult{off, fmt.Sprintf("invalid payload length %d", n)}, nil
		}
		if int64(n) > size-off-frameHeaderSize {
			return scanResult{off, fmt.Sprintf("truncated frame: payload length %d, %d bytes left", n, size-off-frameHeaderSize)}, nil
		}
		if cap(s.buf) < int(n) {
			s.buf = make([]byte, n)
		}
		p := s.buf[:n]
		if _, err := io.ReadFull(s.br, p); err != nil {
			return s.readErr(off, path, err)
		}
		if got := crc32.Checksum(p, castagnoli); got != sum {
			return scanResult{off, fmt.Sprintf("checksum mismatch: stored %08x, computed %08x", sum, got)}, nil
		}
		if err := fn(p); err != nil {
			return scanResult{}, fmt.Errorf("wal: replay %s at offset %d: %w", path, off, err)
		}
		off += frameHeaderSize + int64(n)
	}
	return scanResult{end: off}, nil
}

// readErr turns a failed read at off into a result: running out of data
// early means the file shrank under us and is a bad frame like any other.
func (s *scanner) readErr(off int64, path string, err error) (scanResult, error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return scanResult{off, "truncated frame: file shrank while reading"}, nil
	}
	return scanResult{}, fmt.Errorf("wal: read segment %s: %w", path, err)
}

// ReadAll reads the log in dir without modifying it, calling fn with the
// payload of every good record in order; the slice is only valid during the
// call. It takes no lock, so it is safe while another process appends: a
// short header, torn or partial tail in the last segment just ends the read.
// A bad header or frame in an earlier segment returns a *CorruptionError,
// and an error from fn is returned wrapped. A missing dir holds no records.
func ReadAll(dir string, fn func(payload []byte) error) error {
	return ReadAllSeq(dir, func(_ uint64, payload []byte) error { return fn(payload) })
}

// ReadAllSeq is ReadAll telling fn the number of the segment of each record.
func ReadAllSeq(dir string, fn func(seq uint64, payload []byte) error) error {
	seqs, err := listSegments(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		var cerr *CorruptionError
		if errors.As(err, &cerr) {
			return err
		}
		return fmt.Errorf("wal: read dir %s: %w", dir, err)
	}
	var s scanner
	for i, seq := range seqs {
		last := i == len(seqs)-1
		path := filepath.Join(dir, segmentName(seq))
		_, done, err := readSegment(&s, path, last, func(p []byte) error { return fn(seq, p) })
		if err != nil || done {
			return err
		}
	}
	return nil
}

// readSegment reads one segment read-only, calling fn for its good records,
// and returns the size it read up to. done reports that the read ended early
// at a torn tail, which is only allowed when last is set.
func readSegment(s *scanner, path string, last bool, fn func([]byte) error) (size int64, done bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, fmt.Errorf("wal: open segment %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, false, fmt.Errorf("wal: stat segment %s: %w", path, err)
	}
	size = fi.Size()
	short, err := checkHeader(f, path, size)
	if err != nil {
		return 0, false, err
	}
	if short {
		if last {
			return size, true, nil
		}
		return 0, false, &CorruptionError{Path: path, Reason: fmt.Sprintf("short segment header: %d bytes", size)}
	}
	res, err := s.scan(f, path, size, fn)
	if err != nil {
		return 0, false, err
	}
	if res.reason == "" {
		return size, false, nil
	}
	if last {
		return size, true, nil
	}
	return 0, false, &CorruptionError{Path: path, Offset: res.end, Reason: res.reason}
}
