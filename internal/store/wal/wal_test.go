package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// rec returns the i'th test payload; lengths vary so frames don't line up.
func rec(i int) []byte {
	return fmt.Appendf(nil, "record-%05d-%s", i, bytes.Repeat([]byte{'x'}, i%23))
}

func recs(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, rec(i))
	}
	return out
}

func collect(out *[][]byte) func([]byte) error {
	return func(p []byte) error {
		*out = append(*out, bytes.Clone(p))
		return nil
	}
}

func mustOpen(t testing.TB, dir string, opts Options) (*Log, [][]byte) {
	t.Helper()
	var got [][]byte
	l, err := Open(dir, opts, collect(&got))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l, got
}

func mustReadAll(t testing.TB, dir string) [][]byte {
	t.Helper()
	var got [][]byte
	if err := ReadAll(dir, collect(&got)); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	return got
}

func equalRecords(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: record %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

func segPath(dir string, seq uint64) string { return filepath.Join(dir, segmentName(seq)) }

// segments returns the sequence numbers of the segments in dir.
func segments(t testing.TB, dir string) []uint64 {
	t.Helper()
	seqs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// dirSize sums the sizes of the segments in dir.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	for _, seq := range segments(t, dir) {
		fi, err := os.Stat(segPath(dir, seq))
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// frameOffsets parses a well-formed segment and returns the offset of each
// frame, plus the file size as a final entry.
func frameOffsets(t testing.TB, path string) []int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	off := int64(headerSize)
	for off < int64(len(b)) {
		offs = append(offs, off)
		off += frameHeaderSize + int64(binary.LittleEndian.Uint32(b[off:]))
	}
	return append(offs, int64(len(b)))
}

func appendFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func patchFile(t testing.TB, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func frame(p []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(p)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(p, castagnoli))
	return append(b, p...)
}

func segmentBytes(payloads ...[]byte) []byte {
	h := segmentHeader()
	b := h[:]
	for _, p := range payloads {
		b = append(b, frame(p)...)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "wal")
	opts := Options{SegmentSize: 256}
	l, got := mustOpen(t, dir, opts)
	if len(got) != 0 || l.Repaired() != 0 {
		t.Fatalf("fresh log: replayed %d, repaired %d", len(got), l.Repaired())
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o700 != 0 {
		t.Errorf("dir mode %v, want at most 0700", perm)
	}

	var want [][]byte
	for i := 0; i < 60; {
		batch := recs(i, i+1+i%4) // batches of 1 to 4
		if err := l.Write(batch...); err != nil {
			t.Fatalf("Write: %v", err)
		}
		want = append(want, batch...)
		i += len(batch)
	}
	if err := l.Write(); err != nil {
		t.Fatalf("empty Write: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got, want := l.Size(), dirSize(t, dir); got != want {
		t.Errorf("Size() = %d, segments hold %d", got, want)
	}
	seqs := segments(t, dir)
	if len(seqs) < 4 || seqs[0] != 1 {
		t.Fatalf("segments %v: want at least 4 starting at 1", seqs)
	}
	for _, seq := range seqs {
		// Each batch is under SegmentSize here, so no segment may exceed it.
		if fi, err := os.Stat(segPath(dir, seq)); err != nil || fi.Size() > opts.SegmentSize {
			t.Errorf("segment %d: size %d, err %v; want <= %d", seq, fi.Size(), err, opts.SegmentSize)
		}
	}
	equalRecords(t, "ReadAll of open log", mustReadAll(t, dir), want)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	l, got = mustOpen(t, dir, opts)
	equalRecords(t, "replay", got, want)
	if l.Repaired() != 0 {
		t.Errorf("Repaired() = %d after clean close", l.Repaired())
	}
	if got, want := l.Size(), dirSize(t, dir); got != want {
		t.Errorf("reopened Size() = %d, segments hold %d", got, want)
	}
	more := recs(60, 90)
	if err := l.Write(more...); err != nil {
		t.Fatal(err)
	}
	want = append(want, more...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The 30-record batch is bigger than a segment and must stay whole.
	last := segments(t, dir)
	if fi, _ := os.Stat(segPath(dir, last[len(last)-1])); fi.Size() != segmentSizeOf(more) {
		t.Errorf("oversized batch: last segment is %d bytes, want %d", fi.Size(), segmentSizeOf(more))
	}
	equalRecords(t, "ReadAll after reopen", mustReadAll(t, dir), want)
	_, got = mustOpen(t, dir, opts)
	equalRecords(t, "second replay", got, want)
}

func segmentSizeOf(payloads [][]byte) int64 {
	n := int64(headerSize)
	for _, p := range payloads {
		n += frameHeaderSize + int64(len(p))
	}
	return n
}

// tornLog is a closed log of 13 records over several segments, for damaging.
type tornLog struct {
	dir  string
	want [][]byte // every record written
	last uint64   // last segment
	offs []int64  // frame offsets in the last segment, then its size
}

func newTornLog(t *testing.T) *tornLog {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{SegmentSize: 160})
	want := recs(0, 13)
	for _, p := range want {
		if err := l.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seqs := segments(t, dir)
	last := seqs[len(seqs)-1]
	tl := &tornLog{dir: dir, want: want, last: last, offs: frameOffsets(t, segPath(dir, last))}
	if len(seqs) < 3 || len(tl.offs) < 3 {
		t.Fatalf("setup: %d segments, %d frames in last; want >= 3 and >= 2", len(seqs), len(tl.offs)-1)
	}
	return tl
}

func TestTornTail(t *testing.T) {
	tests := []struct {
		name string
		// damage breaks the log and returns how many records survive and
		// how many bytes Open should drop.
		damage func(t *testing.T, tl *tornLog) (keep int, repaired int64)
	}{
		{"partial_length_header", func(t *testing.T, tl *tornLog) (int, int64) {
			appendFile(t, segPath(tl.dir, tl.last), []byte{7, 0, 0})
			return len(tl.want), 3
		}},
		{"partial_crc", func(t *testing.T, tl *tornLog) (int, int64) {
			appendFile(t, segPath(tl.dir, tl.last), frame([]byte("abc"))[:6])
			return len(tl.want), 6
		}},
		{"partial_payload", func(t *testing.T, tl *tornLog) (int, int64) {
			appendFile(t, segPath(tl.dir, tl.last), frame(bytes.Repeat([]byte("p"), 100))[:48])
			return len(tl.want), 48
		}},
		{"torn_last_record", func(t *testing.T, tl *tornLog) (int, int64) {
			n := len(tl.offs)
			size := tl.offs[n-1]
			if err := os.Truncate(segPath(tl.dir, tl.last), size-3); err != nil {
				t.Fatal(err)
			}
			return len(tl.want) - 1, size - 3 - tl.offs[n-2]
		}},
		{"bad_checksum", func(t *testing.T, tl *tornLog) (int, int64) {
			n := len(tl.offs)
			patchFile(t, segPath(tl.dir, tl.last), tl.offs[n-1]-1, []byte{'!'})
			return len(tl.want) - 1, tl.offs[n-1] - tl.offs[n-2]
		}},
		{"bad_length", func(t *testing.T, tl *tornLog) (int, int64) {
			n := len(tl.offs)
			patchFile(t, segPath(tl.dir, tl.last), tl.offs[n-2], binary.LittleEndian.AppendUint32(nil, MaxPayloadSize+1))
			return len(tl.want) - 1, tl.offs[n-1] - tl.offs[n-2]
		}},
		{"zero_length", func(t *testing.T, tl *tornLog) (int, int64) {
			n := len(tl.offs)
			patchFile(t, segPath(tl.dir, tl.last), tl.offs[n-2], make([]byte, 4))
			return len(tl.want) - 1, tl.offs[n-1] - tl.offs[n-2]
		}},
		{"zero_filled_tail", func(t *testing.T, tl *tornLog) (int, int64) {
			appendFile(t, segPath(tl.dir, tl.last), make([]byte, 4096))
			return len(tl.want), 4096
		}},
		{"bad_frame_then_good_frames", func(t *testing.T, tl *tornLog) (int, int64) {
			// Everything from the first bad frame goes, even good frames after it.
			n := len(tl.offs)
			patchFile(t, segPath(tl.dir, tl.last), tl.offs[0]+frameHeaderSize, []byte{'!'})
			return len(tl.want) - (n - 1), tl.offs[n-1] - tl.offs[0]
		}},
		{"truncated_header_fresh_segment", func(t *testing.T, tl *tornLog) (int, int64) {
			h := segmentHeader()
			if err := os.WriteFile(segPath(tl.dir, tl.last+1), h[:5], 0o600); err != nil {
				t.Fatal(err)
			}
			return len(tl.want), 5
		}},
		{"empty_fresh_segment", func(t *testing.T, tl *tornLog) (int, int64) {
			if err := os.WriteFile(segPath(tl.dir, tl.last+1), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return len(tl.want), 0
		}},
		{"zeroed_fresh_segment", func(t *testing.T, tl *tornLog) (int, int64) {
			// Created, then a power loss: the file system shows zeros.
			if err := os.WriteFile(segPath(tl.dir, tl.last+1), make([]byte, 4096), 0o600); err != nil {
				t.Fatal(err)
			}
			return len(tl.want), 4096
		}},
		{"garbage_fresh_segment", func(t *testing.T, tl *tornLog) (int, int64) {
			if err := os.WriteFile(segPath(tl.dir, tl.last+1), []byte{0xff, 0, 1}, 0o600); err != nil {
				t.Fatal(err)
			}
			return len(tl.want), 3
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTornLog(t)
			keep, repaired := tt.damage(t, tl)
			want := tl.want[:keep]

			equalRecords(t, "ReadAll of damaged log", mustReadAll(t, tl.dir), want)
			l, got := mustOpen(t, tl.dir, Options{SegmentSize: 160})
			equalRecords(t, "replay", got, want)
			if l.Repaired() != repaired {
				t.Errorf("Repaired() = %d, want %d", l.Repaired(), repaired)
			}
			if got, want := l.Size(), dirSize(t, tl.dir); got != want {
				t.Errorf("Size() = %d, segments hold %d", got, want)
			}
			equalRecords(t, "ReadAll of repaired log", mustReadAll(t, tl.dir), want)

			more := recs(100, 102)
			if err := l.Write(more...); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			want = append(slices.Clone(want), more...)
			equalRecords(t, "ReadAll after append", mustReadAll(t, tl.dir), want)
			l, got = mustOpen(t, tl.dir, Options{SegmentSize: 160})
			equalRecords(t, "replay after append", got, want)
			if l.Repaired() != 0 {
				t.Errorf("second Open: Repaired() = %d, want 0", l.Repaired())
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCorruption(t *testing.T) {
	tests := []struct {
		name string
		// damage breaks a segment before the last and returns the expected
		// error location.
		damage func(t *testing.T, dir string) (seq uint64, off int64)
	}{
		{"bad_checksum", func(t *testing.T, dir string) (uint64, int64) {
			offs := frameOffsets(t, segPath(dir, 1))
			patchFile(t, segPath(dir, 1), offs[1]+frameHeaderSize+2, []byte{'!'})
			return 1, offs[1]
		}},
		{"bad_length", func(t *testing.T, dir string) (uint64, int64) {
			offs := frameOffsets(t, segPath(dir, 2))
			patchFile(t, segPath(dir, 2), offs[0], []byte{0xff, 0xff, 0xff, 0xff})
			return 2, offs[0]
		}},
		{"torn_last_record", func(t *testing.T, dir string) (uint64, int64) {
			offs := frameOffsets(t, segPath(dir, 1))
			n := len(offs)
			if err := os.Truncate(segPath(dir, 1), offs[n-1]-1); err != nil {
				t.Fatal(err)
			}
			return 1, offs[n-2]
		}},
		{"zero_filled_tail", func(t *testing.T, dir string) (uint64, int64) {
			offs := frameOffsets(t, segPath(dir, 2))
			appendFile(t, segPath(dir, 2), make([]byte, 100))
			return 2, offs[len(offs)-1]
		}},
		{"short_header", func(t *testing.T, dir string) (uint64, int64) {
			if err := os.Truncate(segPath(dir, 2), 5); err != nil {
				t.Fatal(err)
			}
			return 2, 0
		}},
		{"bad_magic", func(t *testing.T, dir string) (uint64, int64) {
			patchFile(t, segPath(dir, 1), 0, []byte("X"))
			return 1, 0
		}},
		{"bad_version", func(t *testing.T, dir string) (uint64, int64) {
			patchFile(t, segPath(dir, 2), 7, []byte{2})
			return 2, 0
		}},
		{"bad_magic_last_segment", func(t *testing.T, dir string) (uint64, int64) {
			// A full-size header that is wrong is not a crash artifact.
			seqs := segments(t, dir)
			last := seqs[len(seqs)-1]
			patchFile(t, segPath(dir, last), 0, []byte("NOTAWAL!"))
			return last, 0
		}},
		{"missing_segment", func(t *testing.T, dir string) (uint64, int64) {
			if err := os.Remove(segPath(dir, 2)); err != nil {
				t.Fatal(err)
			}
			return 2, 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := mustOpen(t, dir, Options{SegmentSize: 160})
			for _, p := range recs(0, 20) {
				if err := l.Write(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(segments(t, dir)); n < 4 {
				t.Fatalf("setup: %d segments, want >= 4", n)
			}
			seq, off := tt.damage(t, dir)
			before := snapshot(t, dir)

			check := func(what string, err error) {
				t.Helper()
				var cerr *CorruptionError
				if !errors.As(err, &cerr) {
					t.Fatalf("%s: err = %v, want *CorruptionError", what, err)
				}
				if cerr.Path != segPath(dir, seq) || cerr.Offset != off {
					t.Errorf("%s: corruption at %s:%d, want %s:%d (%v)", what, cerr.Path, cerr.Offset, segPath(dir, seq), off, err)
				}
			}
			check("ReadAll", ReadAll(dir, func([]byte) error { return nil }))
			l, err := Open(dir, Options{SegmentSize: 160}, nil)
			if err == nil {
				l.Close()
			}
			check("Open", err)
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Errorf("failed Open changed the segments")
			}
		})
	}
}

func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func TestReplayError(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{})
	if err := l.Write(recs(0, 5)...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	n := 0
	fn := func([]byte) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	}
	if _, err := Open(dir, Options{}, fn); !errors.Is(err, stop) {
		t.Fatalf("Open: err = %v, want wrapping %v", err, stop)
	}
	n = 0
	if err := ReadAll(dir, fn); !errors.Is(err, stop) {
		t.Fatalf("ReadAll: err = %v, want wrapping %v", err, stop)
	}
	// The aborted Open must have released the directory.
	l, got := mustOpen(t, dir, Options{})
	equalRecords(t, "replay", got, recs(0, 5))
	l.Close()
}

func TestReadAllMissingDir(t *testing.T) {
	called := false
	err := ReadAll(filepath.Join(t.TempDir(), "nope"), func([]byte) error { called = true; return nil })
	if err != nil || called {
		t.Fatalf("ReadAll of missing dir: err %v, called %v", err, called)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{})
	size := l.Size()
	tests := []struct {
		name     string
		payloads [][]byte
		want     error
	}{
		{"empty_payload", [][]byte{[]byte("a"), {}}, ErrEmptyPayload},
		{"nil_payload", [][]byte{nil}, ErrEmptyPayload},
		{"too_large", [][]byte{[]byte("a"), make([]byte, MaxPayloadSize+1)}, ErrPayloadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.Write(tt.payloads...); !errors.Is(err, tt.want) {
				t.Fatalf("Write: err = %v, want %v", err, tt.want)
			}
			if l.Size() != size {
				t.Fatalf("rejected Write changed Size from %d to %d", size, l.Size())
			}
		})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v, want ErrClosed", err)
	}
	if got := mustReadAll(t, dir); len(got) != 0 {
		t.Errorf("rejected Writes left %d records", len(got))
	}
}

func TestMaxPayload(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 64 MiB record")
	}
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{})
	// Fresh zeroed memory, touched only at the ends, keeps this cheap.
	big := make([]byte, MaxPayloadSize)
	big[0], big[len(big)-1] = 0xa5, 0x5a
	if err := l.Write(big); err != nil {
		t.Fatalf("Write of MaxPayloadSize: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	l, err := Open(dir, Options{}, func(p []byte) error {
		// The CRC has already vouched for the middle.
		if n++; len(p) != MaxPayloadSize || p[0] != 0xa5 || p[len(p)-1] != 0x5a {
			return errors.New("max-size record changed")
		}
		return nil
	})
	if err != nil || n != 1 {
		t.Fatalf("replay of max-size record: %d records, err %v", n, err)
	}
	l.Close()
}

// TestFailed breaks the segment's file descriptor under the log, so both the
// write and the truncate that should undo it fail.
func TestFailed(t *testing.T) {
	tests := []struct {
		name  string
		fail  func(l *Log) error
		wantN int // records on disk afterwards
	}{
		{"write", func(l *Log) error { return l.Write(rec(2)) }, 2},
		{"sync", func(l *Log) error { return l.Sync() }, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := mustOpen(t, dir, Options{})
			if err := l.Write(rec(0), rec(1)); err != nil {
				t.Fatal(err)
			}
			l.seg.Close()
			if err := tt.fail(l); !errors.Is(err, ErrFailed) {
				t.Fatalf("err = %v, want ErrFailed", err)
			}
			if err := l.Write(rec(3)); !errors.Is(err, ErrFailed) {
				t.Errorf("Write on failed log: %v, want ErrFailed", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrFailed) {
				t.Errorf("Sync on failed log: %v, want ErrFailed", err)
			}
			if err := l.Close(); !errors.Is(err, ErrFailed) {
				t.Errorf("Close on failed log: %v, want ErrFailed", err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			l, got := mustOpen(t, dir, Options{})
			equalRecords(t, "replay", got, recs(0, tt.wantN))
			l.Close()
		})
	}
}

// TestReadAllConcurrent reads the log over and over while it is appended
// to and rolled; every read must be an in-order prefix of what is written.
func TestReadAllConcurrent(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{SegmentSize: 4 << 10})
	const total = 10000
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < total; i += 20 {
			if werr = l.Write(recs(i, i+20)...); werr != nil {
				return
			}
			if i%100 == 0 {
				if werr = l.Sync(); werr != nil {
					return
				}
			}
		}
	}()

	reads, prev := 0, 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		n := 0
		err := ReadAll(dir, func(p []byte) error {
			if !bytes.Equal(p, rec(n)) {
				return fmt.Errorf("record %d = %q", n, p)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("ReadAll during writes: %v", err)
		}
		if n < prev {
			t.Fatalf("ReadAll went backwards: %d records after %d", n, prev)
		}
		prev = n
		_ = l.Size() // concurrent with Write: must be race-free
		reads++
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	equalRecords(t, "final ReadAll", mustReadAll(t, dir), recs(0, total))
	t.Logf("%d concurrent reads, %d segments", reads, len(segments(t, dir)))
}

func FuzzReadSegment(f *testing.F) {
	h := segmentHeader()
	good := segmentBytes([]byte("hello"), []byte("world"))
	f.Add([]byte{})
	f.Add(h[:3])
	f.Add(h[:])
	f.Add(good)
	f.Add(append(slices.Clone(good), make([]byte, 64)...))
	f.Add(good[:len(good)-2])
	f.Add(append(slices.Clone(good), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	bad := slices.Clone(good)
	bad[len(bad)-1] ^= 1
	f.Add(bad)
	f.Add([]byte("NOTAWAL\x01"))

	f.Fuzz(func(t *testing.T, data []byte) {
		// As the last segment: ReadAll and Open must agree on the records,
		// and Open must leave exactly those, appendable.
		dir := t.TempDir()
		path := segPath(dir, 1)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var want [][]byte
		rerr := ReadAll(dir, collect(&want))
		var got [][]byte
		l, oerr := Open(dir, Options{}, collect(&got))
		if rerr != nil || oerr != nil {
			var rc, oc *CorruptionError
			if !errors.As(rerr, &rc) || !errors.As(oerr, &oc) || *rc != *oc {
				t.Fatalf("ReadAll err %v, Open err %v: want the same *CorruptionError", rerr, oerr)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, data) {
				t.Fatal("failed Open changed the segment")
			}
			return
		}
		equalRecords(t, "Open vs ReadAll", got, want)
		kept := segmentSizeOf(want)
		repaired := int64(len(data)) - kept
		if len(data) < headerSize {
			repaired = int64(len(data)) // a short header is dropped and rewritten
		}
		if l.Repaired() != repaired {
			t.Errorf("Repaired() = %d, want %d", l.Repaired(), repaired)
		}
		if l.Size() != kept || dirSize(t, dir) != kept {
			t.Errorf("after repair Size() = %d, file %d, want %d", l.Size(), dirSize(t, dir), kept)
		}
		if err := l.Write([]byte("appended")); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		equalRecords(t, "after append", mustReadAll(t, dir), slices.Concat(want, [][]byte{[]byte("appended")}))
		clean := len(data) >= headerSize && kept == int64(len(data))

		// As an earlier segment: anything but a clean segment is corruption.
		// Same dir, rewritten, to spare the filesystem a mkdir and rmdir.
		if err := os.WriteFile(segPath(dir, 1), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(segPath(dir, 2), segmentBytes([]byte("next")), 0o600); err != nil {
			t.Fatal(err)
		}
		var all [][]byte
		rerr = ReadAll(dir, collect(&all))
		l, oerr = Open(dir, Options{}, nil)
		if oerr == nil {
			l.Close()
		}
		for _, err := range []error{rerr, oerr} {
			var cerr *CorruptionError
			if clean && err != nil {
				t.Fatalf("clean segment before last: %v", err)
			}
			if !clean && (!errors.As(err, &cerr) || cerr.Path != segPath(dir, 1)) {
				t.Fatalf("damaged segment before last: err %v, want *CorruptionError for it", err)
			}
		}
		if clean {
			equalRecords(t, "two segments", all, slices.Concat(want, [][]byte{[]byte("next")}))
		}
	})
}

func TestRollAndRemoveBefore(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		seq, err := l.Roll()
		if err != nil {
			t.Fatal(err)
		}
		if seq != uint64(i+2) || l.Seq() != seq {
			t.Fatalf("roll %d: seq %d", i, seq)
		}
	}
	if err := l.Write([]byte{9}); err != nil {
		t.Fatal(err)
	}
	if err := l.RemoveBefore(3); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	var cur uint64
	l, err = Open(dir, Options{OnSegment: func(seq uint64) { cur = seq }}, func(p []byte) error {
		got = append(got, fmt.Sprintf("%d:%d", cur, p[0]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if fmt.Sprint(got) != "[3:2 4:9]" {
		t.Fatalf("replayed %v", got)
	}
	var seqs []string
	if err := ReadAllSeq(dir, func(seq uint64, p []byte) error {
		seqs = append(seqs, fmt.Sprintf("%d:%d", seq, p[0]))
		return nil
	}); err != nil || fmt.Sprint(seqs) != "[3:2 4:9]" {
		t.Fatalf("ReadAllSeq %v %v", seqs, err)
	}
}
