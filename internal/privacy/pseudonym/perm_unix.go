//go:build unix

package pseudonym

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkPrivate refuses a key file that anyone but its owner may read or
// write, or that another user owns (and so could replace or read).
func checkPrivate(path string, fi fs.FileInfo) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("pseudonym: master key file %s has mode %#o, readable or writable by others than its owner; it must be 0600 or stricter (chmod 600 %s), and if others may have read it, treat the key as leaked", path, perm, path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("pseudonym: master key file %s: cannot tell its owner", path)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return fmt.Errorf("pseudonym: master key file %s is owned by uid %d, not by this process (uid %d); it must belong to the user Veil runs as", path, st.Uid, euid)
	}
	return nil
}
