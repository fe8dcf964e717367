//go:build unix

package wire

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time used by the process so far (user and
// system, GC included), or 0 if unknown.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
