//go:build unix

package segment

import (
	"io"
	"os"
	"syscall"
)

// mapped is a segment file mapped read-only into memory: blocks are read
// in place, without a system call or a copy each. Segments are immutable
// and removed only once no reader holds them (an unlinked file stays
// mapped), so the mapping never changes under a reader.
type mapped struct {
	b []byte
}

// openMapped maps the file of f, which it closes.
func openMapped(f *os.File, size int64) (File, error) {
	defer f.Close()
	if size == 0 || size != int64(int(size)) {
		return nil, syscall.EINVAL
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &mapped{b: b}, nil
}

func (m *mapped) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Bytes is the whole file.
func (m *mapped) Bytes() []byte { return m.b }

func (m *mapped) Close() error {
	if m.b == nil {
		return nil
	}
	err := syscall.Munmap(m.b)
	m.b = nil
	return err
}
