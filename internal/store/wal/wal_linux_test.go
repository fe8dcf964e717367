package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

func TestLock(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{})
	if l2, err := Open(dir, Options{}, nil); err == nil {
		l2.Close()
		t.Fatal("second Open of a locked log succeeded")
	}
	// Readers take no lock.
	mustReadAll(t, dir)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, _ = mustOpen(t, dir, Options{})
	l.Close()
}

// TestWriteRollback makes a Write fail halfway through its write(2) by
// lowering RLIMIT_FSIZE, in a child process so the limit stays there.
func TestWriteRollback(t *testing.T) {
	if dir := os.Getenv("WAL_TEST_ROLLBACK_DIR"); dir != "" {
		writeRollbackChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteRollback$", "-test.v")
	cmd.Env = append(os.Environ(), "WAL_TEST_ROLLBACK_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	l, got := mustOpen(t, dir, Options{})
	defer l.Close()
	equalRecords(t, "replay", got, slices.Concat(recs(0, 2), recs(5, 6)))
	if l.Repaired() != 0 {
		t.Errorf("Repaired() = %d: the failed Write left bytes behind", l.Repaired())
	}
}

func writeRollbackChild(t *testing.T, dir string) {
	// Get EFBIG from write(2) instead of being killed.
	signal.Ignore(syscall.SIGXFSZ)
	l, _ := mustOpen(t, dir, Options{})
	if err := l.Write(recs(0, 2)...); err != nil {
		t.Fatal(err)
	}
	size := l.Size()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = uint64(size) + 30 // room for a partial frame
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	err := l.Write(recs(2, 5)...)
	if err == nil || errors.Is(err, ErrFailed) {
		t.Fatalf("Write past RLIMIT_FSIZE: err = %v, want a plain error", err)
	}
	if fi, err := os.Stat(segPath(dir, 1)); err != nil || fi.Size() != size {
		t.Fatalf("segment size after failed Write = %d (%v), want %d", fi.Size(), err, size)
	}
	if l.Size() != size {
		t.Fatalf("Size() = %d after failed Write, want %d", l.Size(), size)
	}
	if err := l.Write(rec(5)); err != nil {
		t.Fatalf("Write after rollback: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRepairKeepsTornBytesAside(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"one", "two", "three"} {
		if err := l.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	l.Close()
	seg := filepath.Join(dir, "00000001.wal")
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[headerSize+frameHeaderSize] ^= 0xff // corrupt the first record
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	saved, err := os.ReadFile(fmt.Sprintf("%s.torn-%d", seg, headerSize))
	if err != nil {
		t.Fatalf("torn bytes not saved: %v", err)
	}
	if !bytes.Equal(saved, b[headerSize:]) {
		t.Fatalf("saved %d bytes, want the %d dropped", len(saved), len(b)-headerSize)
	}
}
