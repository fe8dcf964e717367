//go:build !unix

package segment

import (
	"errors"
	"os"
)

func openMapped(f *os.File, size int64) (File, error) {
	return nil, errors.New("no mmap on this platform")
}
