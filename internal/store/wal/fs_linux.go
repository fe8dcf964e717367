//go:build linux

package wal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fdatasync flushes f's data and the metadata needed to read it back (such
// as its size), skipping timestamps that fsync would also write.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// lockDir takes an exclusive advisory lock on the open directory d, so a
// second writer (in this process or another) fails instead of interleaving
// appends. The lock goes away when d is closed, including on a crash.
func lockDir(d *os.File) error {
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if errors.Is(serr, syscall.EWOULDBLOCK) {
		return fmt.Errorf("log is already open for writing: %w", serr)
	}
	return serr
}
