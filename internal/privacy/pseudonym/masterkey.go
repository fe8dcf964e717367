package pseudonym

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// KeySize is the length of the master key in bytes.
const KeySize = 32

// keyFileHeader is the first line of a master key file; the version names
// the file format and the derivation together.
const keyFileHeader = "veil-master-key-v1\n"

// keyFileSize is the exact size of a master key file: the header, the key
// in padded standard base64 (44 characters) and a newline.
var keyFileSize = len(keyFileHeader) + base64.StdEncoding.EncodedLen(KeySize) + 1

// redacted is what every textual form of a secret prints.
const redacted = "[redacted]"

// MasterKey is the 32-byte secret every pseudonym key is derived from. It
// lives outside the data directory. It never prints: String, GoString,
// Format and LogValue all give "[redacted]", and the bytes are reachable
// only through a func (see secret), so even a struct holding a MasterKey in
// an unexported field, printed by reflection with any verb, shows an
// address at most.
type MasterKey struct {
	b secret
}

// secret holds key bytes out of reach of reflection-based printing: fmt
// prints a func value as an address whatever the verb and depth, where a
// pointer to an array is dereferenced (for instance under a bad verb).
type secret func() *[KeySize]byte

func newSecret(k *[KeySize]byte) secret { return func() *[KeySize]byte { return k } }

// String returns "[redacted]".
func (MasterKey) String() string { return redacted }

// GoString returns "[redacted]".
func (MasterKey) GoString() string { return redacted }

// Format writes "[redacted]" whatever the verb.
func (MasterKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue keeps the key out of structured logs.
func (MasterKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// Equal reports whether m and o hold the same key, in constant time.
func (m *MasterKey) Equal(o *MasterKey) bool {
	if m == nil || o == nil || m.b == nil || o.b == nil {
		return m == o
	}
	return subtle.ConstantTimeCompare(m.b()[:], o.b()[:]) == 1
}

// ErrBadKeyFile is wrapped by every error about the content of a master key
// file. The errors never quote the content.
var ErrBadKeyFile = errors.New("pseudonym: not a veil master key file")

// ParseMasterKey parses the content of a master key file: exactly
// "veil-master-key-v1\n", the 32 key bytes in padded standard base64 and
// "\n" (64 bytes in all). An all-zero key is refused.
func ParseMasterKey(b []byte) (*MasterKey, error) {
	if len(b) != keyFileSize {
		return nil, fmt.Errorf("%w: want exactly %d bytes (%q, 44 base64 characters, newline), have %d", ErrBadKeyFile, keyFileSize, keyFileHeader, len(b))
	}
	if string(b[:len(keyFileHeader)]) != keyFileHeader {
		return nil, fmt.Errorf("%w: first line is not %q", ErrBadKeyFile, keyFileHeader)
	}
	if b[len(b)-1] != '\n' {
		return nil, fmt.Errorf("%w: does not end with a newline", ErrBadKeyFile)
	}
	enc := b[len(keyFileHeader) : len(b)-1]
	var k [KeySize]byte
	n, err := base64.StdEncoding.Strict().Decode(k[:], enc)
	if err != nil || n != KeySize {
		// The decoder's error names the offending byte; keep it out.
		return nil, fmt.Errorf("%w: second line is not %d bytes in padded standard base64", ErrBadKeyFile, KeySize)
	}
	if isZero(k[:]) {
		return nil, fmt.Errorf("%w: the key is all zeros", ErrBadKeyFile)
	}
	kb := new([KeySize]byte)
	*kb = k
	clear(k[:])
	return &MasterKey{b: newSecret(kb)}, nil
}

// appendKeyFile appends the file form of m.
func (m *MasterKey) appendKeyFile(dst []byte) []byte {
	dst = append(dst, keyFileHeader...)
	dst = base64.StdEncoding.AppendEncode(dst, m.b()[:])
	return append(dst, '\n')
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// maxKeyFileRead bounds what is read from a key file: enough to tell a
// file of the wrong size, never a large file in memory.
const maxKeyFileRead = 4096

// LoadOrCreateMasterKey loads the master key from path, or creates it when
// path does not exist, reporting created=true so that the caller can tell
// the operator to back the file up.
//
// path must not be inside dataDir, neither as written nor once symbolic
// links and ".." are resolved: whoever copies, dumps or backs up the data
// directory must not get the key with it, or the pseudonyms protect nothing.
//
// An existing file must be a regular file owned by the effective user with
// no group or other permission bits (0600 or 0400); anything looser is
// refused, never repaired, because the key may already have been read.
// Its content must be exactly the format [ParseMasterKey] accepts.
//
// A new key is 32 bytes from crypto/rand, written with mode 0600 to a
// temporary file in the same directory (created with 0700 if missing),
// synced, published under path without ever replacing an existing file,
// and the directory synced. If another process publishes a key first, that
// key is loaded and created is false.
func LoadOrCreateMasterKey(path, dataDir string) (key *MasterKey, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("pseudonym: master key file: no path given")
	}
	if dataDir == "" {
		return nil, false, errors.New("pseudonym: master key file: no data directory given to check the key is kept apart from it")
	}
	if err := checkOutside(path, dataDir); err != nil {
		return nil, false, err
	}
	for range 3 {
		key, err := loadKeyFile(path)
		if err == nil {
			return key, false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, false, err
		}
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, false, fmt.Errorf("pseudonym: master key file %s is a symbolic link to a missing file; restore the key it points to, or remove the link to create a new key", path)
		}
		key, err = createKeyFile(path)
		if err == nil {
			return key, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, err
		}
		// Another process published a key between our load and our
		// create: load theirs.
	}
	return nil, false, fmt.Errorf("pseudonym: master key file %s: appeared and vanished repeatedly while being created", path)
}

// loadKeyFile reads and checks an existing key file. It returns an error
// wrapping fs.ErrNotExist when there is none.
func loadKeyFile(path string) (*MasterKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("pseudonym: master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // of the open file, so what is checked is what is read
	if err != nil {
		return nil, fmt.Errorf("pseudonym: master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("pseudonym: master key file %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if err := checkPrivate(path, fi); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileRead))
	if err != nil {
		return nil, fmt.Errorf("pseudonym: master key file: %w", err)
	}
	defer clear(b)
	m, err := ParseMasterKey(b)
	if err != nil {
		return nil, fmt.Errorf("pseudonym: master key file %s: %w", path, err)
	}
	return m, nil
}

// createKeyFile writes a fresh key to path. It returns an error wrapping
// fs.ErrExist when path appeared meanwhile; the caller then loads it.
func createKeyFile(path string) (m *MasterKey, err error) {
	dir := filepath.Dir(path)
	if err := mkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("pseudonym: master key directory: %w", err)
	}

	kb := new([KeySize]byte)
	_, _ = rand.Read(kb[:]) // never fails (crypto/rand since Go 1.24)
	m = &MasterKey{b: newSecret(kb)}
	content := m.appendKeyFile(make([]byte, 0, keyFileSize))
	defer clear(content)

	tmp, err := os.CreateTemp(dir, ".veil-master-key-*.tmp") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("pseudonym: master key file: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		// The temporary name is gone on success (or after link), harmless
		// to remove again; on failure this cleans up.
		if rerr := os.Remove(tmpName); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("pseudonym: master key file: remove temporary file: %w", rerr)
		}
	}()
	if err := writeSynced(tmp, content); err != nil {
		return nil, fmt.Errorf("pseudonym: master key file: %w", err)
	}

	// Publish without ever replacing: link fails if path exists. Where
	// the file system has no hard links, fall back to rename.
	if lerr := os.Link(tmpName, path); lerr != nil {
		if errors.Is(lerr, fs.ErrExist) {
			return nil, lerr
		}
		if rerr := os.Rename(tmpName, path); rerr != nil {
			return nil, fmt.Errorf("pseudonym: master key file: publish: %w", errors.Join(lerr, rerr))
		}
	}
	if err := os.Remove(tmpName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pseudonym: master key file: remove temporary file: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("pseudonym: master key file: sync directory: %w", err)
	}
	return m, nil
}

// writeSynced writes b to f with mode 0600, syncs and closes it.
func writeSynced(f *os.File, b []byte) error {
	err := f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// mkdirPrivate creates dir and any missing parents with mode 0700 and
// syncs the parent of each directory it creates. Existing directories keep
// their mode.
func mkdirPrivate(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirPrivate(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
