package pseudonym

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// checkOutside refuses a key path inside the data directory, comparing both
// the lexically cleaned absolute paths (a symbolic link inside the data
// directory pointing at the key would be copied, or followed, by a dump)
// and the paths with symbolic links and ".." resolved as the kernel would.
// Neither path needs to exist yet.
func checkOutside(keyPath, dataDir string) error {
	keyAbs, err := filepath.Abs(keyPath)
	if err != nil {
		return fmt.Errorf("pseudonym: master key file: %w", err)
	}
	dataAbs, err := filepath.Abs(dataDir)
	if err != nil {
		return fmt.Errorf("pseudonym: data directory: %w", err)
	}
	keyReal, err := resolve(keyPath)
	if err != nil {
		return fmt.Errorf("pseudonym: master key file: %w", err)
	}
	dataReal, err := resolve(dataDir)
	if err != nil {
		return fmt.Errorf("pseudonym: data directory: %w", err)
	}
	if within(keyAbs, dataAbs) || within(keyReal, dataReal) || within(keyAbs, dataReal) || within(keyReal, dataAbs) {
		return fmt.Errorf("pseudonym: master key file %s is inside the data directory %s: anyone who copies, dumps or backs up the data directory would get the key with the pseudonyms it protects; keep it elsewhere (for example /etc/veil/master.key) and back it up separately", keyPath, dataDir)
	}
	return nil
}

// within reports whether p is dir or below it. Both are clean and absolute.
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(p, dir)
}

// maxLinkHops bounds how many dangling symbolic links resolve follows by
// hand, like the kernel's ELOOP limit.
const maxLinkHops = 40

// resolve returns p absolute with every symbolic link and ".." resolved in
// its longest existing prefix (following a dangling link to where it points);
// the missing rest, which cannot contain links, is joined lexically.
func resolve(p string) (string, error) {
	sep := string(filepath.Separator)
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		// Not filepath.Join: cleaning "link/.." lexically would skip the
		// link. EvalSymlinks walks the components in order.
		p = wd + sep + p
	}
	rest := ""
	for hops := 0; ; {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		dir, base := splitLast(p)
		if fi, lerr := os.Lstat(p); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			// p exists but is a link to something missing: go on from
			// its target.
			if hops++; hops > maxLinkHops {
				return "", fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if filepath.IsAbs(target) {
				p = target
			} else {
				p = dir + sep + target
			}
			continue
		}
		if dir == "" || dir == p {
			// Nothing of it exists, not even the root: take it lexically.
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(base, rest)
		p = dir
	}
}

// splitLast splits p before its last element without cleaning it, so that
// a ".." in the directory part is still resolved through links.
func splitLast(p string) (dir, base string) {
	sep := string(filepath.Separator)
	p = strings.TrimRight(p, sep)
	i := strings.LastIndex(p, sep)
	if i < 0 {
		return "", p
	}
	dir = strings.TrimRight(p[:i], sep)
	if dir == "" {
		dir = sep
	}
	return dir, p[i+1:]
}
