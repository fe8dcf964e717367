//go:build !linux

package wal

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// lockDir is a no-op here: only Linux is a supported server platform.
func lockDir(*os.File) error { return nil }
