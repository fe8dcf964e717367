// Package table owns one project's event table on disk: partitions by UTC
// day of immutable segment files sorted by (user, time), the project's user
// ordinals and the dictionaries of event names and property keys, all
// committed together by a manifest that is replaced atomically.
//
// Rows reach a table through a Buffer that a Flush turns into one new
// segment per day; Compact merges a day's segments into one, dropping
// duplicate $insert_ids and erased users. Readers take a Snapshot, which
// keeps its segments open until released, and walk it one user at a time.
package table

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/veil-analytics/veil/internal/store/idmap"
	"github.com/veil-analytics/veil/internal/store/segment"
)

const (
	manifestName = "MANIFEST"
	usersName    = "users.idm"
	corruptDir   = "corrupt"
)

// manifest is what a commit records.
type manifest struct {
	Version    int          `json:"version"`
	Seq        uint64       `json:"seq"` // last segment sequence number used
	UsersBytes int64        `json:"users_bytes"`
	Events     []string     `json:"events"` // code → name
	Keys       []string     `json:"keys"`   // code → property key
	Segments   []segmentRef `json:"segments"`
	// Erased are canonical user ordinals whose rows are dropped by reads
	// and compactions.
	Erased []uint32 `json:"erased,omitempty"`
	// WALCovered is the first write-ahead log segment whose records this
	// table does not hold yet: replay skips the table's records in earlier
	// segments.
	WALCovered uint64 `json:"wal_covered,omitempty"`
}

type segmentRef struct {
	Day     int32  `json:"day"` // days since 1970-01-01 UTC
	File    string `json:"file"`
	Rows    int    `json:"rows"`
	Bytes   int64  `json:"bytes"`
	Level   int    `json:"level"`
	MinTime int64  `json:"min_time"`
	MaxTime int64  `json:"max_time"`
}

// Table is one project's event table. Its methods are safe for concurrent use.
type Table struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex // guards everything below and commits
	man    manifest
	ids    *idmap.Map
	users  *os.File // the idmap file, appended at each commit
	events map[string]uint32
	keys   map[string]uint32
	erased map[uint32]bool
	segs   map[string]*handle // by file name
	closed bool
	// readOnly tables never write.
	readOnly bool
	links    uint64 // identity merges so far, for Buffer caches

	anyErased atomic.Bool  // some user is erased: Erased must look
	dups      atomic.Int64 // see FlushDuplicates

	// compactMu is held shared by each compaction and exclusively by
	// DropBefore; dayLocks make compactions of one day take turns.
	compactMu sync.RWMutex
	dayLocks  sync.Map // int32 → *sync.Mutex
}

// handle is an open segment shared by snapshots.
type handle struct {
	ref  segmentRef
	r    *segment.Reader
	refs atomic.Int32 // the table's own reference plus one per snapshot
	path string
	gone atomic.Bool // removed from the manifest: delete the file when unused
}

func (h *handle) release() {
	if h.refs.Add(-1) == 0 {
		h.r.Close()
		if h.gone.Load() {
			os.Remove(h.path)
		}
	}
}

// Options configure Open.
type Options struct {
	// Logger receives notices (corrupt segments set aside); default slog.Default.
	Logger *slog.Logger
	// ReadOnly opens the table of another process (a running server) to
	// read: nothing on disk changes, and a corrupt segment is an error.
	ReadOnly bool
}

// Open opens (creating if needed) the table in dir. A segment that fails
// its checks is moved to dir/corrupt, logged with its path, and left out of
// the table; Open returns an error naming it only if it cannot be moved.
func Open(dir string, opts Options) (*Table, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	t := &Table{dir: dir, log: opts.Logger, events: map[string]uint32{}, keys: map[string]uint32{},
		erased: map[uint32]bool{}, segs: map[string]*handle{}}
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	switch {
	case errors.Is(err, os.ErrNotExist):
		t.man = manifest{Version: 1}
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &t.man); err != nil || t.man.Version != 1 {
			return nil, fmt.Errorf("table %s: unreadable manifest: %v", dir, err)
		}
	}
	for i, name := range t.man.Events {
		t.events[name] = uint32(i)
	}
	for i, k := range t.man.Keys {
		t.keys[k] = uint32(i)
	}
	for _, u := range t.man.Erased {
		t.erased[u] = true
	}
	t.anyErased.Store(len(t.erased) > 0)
	if t.ids, err = idmap.Load(filepath.Join(dir, usersName), t.man.UsersBytes); err != nil {
		return nil, err
	}
	if opts.ReadOnly {
		t.readOnly = true
		for _, ref := range t.man.Segments {
			path := filepath.Join(dir, ref.File)
			r, err := segment.Open(path)
			if err != nil {
				t.closeSegments()
				return nil, err
			}
			h := &handle{ref: ref, r: r, path: path}
			h.refs.Store(1)
			t.segs[ref.File] = h
		}
		return t, nil
	}
	// Drop what a crash left after the committed length of the idmap file.
	if t.users, err = os.OpenFile(filepath.Join(dir, usersName), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, err
	}
	if err := t.users.Truncate(t.man.UsersBytes); err != nil {
		return nil, err
	}
	if _, err := t.users.Seek(t.man.UsersBytes, 0); err != nil {
		return nil, err
	}
	var kept []segmentRef
	var setAside bool
	for _, ref := range t.man.Segments {
		path := filepath.Join(dir, ref.File)
		r, err := segment.Open(path)
		if err == nil && r.Rows() != ref.Rows {
			r.Close()
			err = &segment.CorruptError{Path: path, Detail: fmt.Sprintf("%d rows, the manifest says %d", r.Rows(), ref.Rows)}
		}
		if err != nil {
			if err := t.setAside(path, err); err != nil {
				return nil, err
			}
			setAside = true
			continue
		}
		h := &handle{ref: ref, r: r, path: path}
		h.refs.Store(1)
		t.segs[ref.File] = h
		kept = append(kept, ref)
	}
	if setAside {
		t.man.Segments = kept
		if err := t.commitLocked(t.man); err != nil {
			return nil, err
		}
	}
	t.removeStrays()
	return t, nil
}

// setAside moves a segment that failed its checks out of the table.
func (t *Table) setAside(path string, cause error) error {
	dst := filepath.Join(t.dir, corruptDir)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return fmt.Errorf("%w (and it cannot be set aside: %v)", cause, err)
	}
	rel, _ := filepath.Rel(t.dir, path)
	to := filepath.Join(dst, strings.ReplaceAll(rel, string(filepath.Separator), "_"))
	if err := os.Rename(path, to); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w (and it cannot be set aside: %v)", cause, err)
	}
	t.log.Error("segment set aside: its data is not served until restored", "path", path, "moved_to", to, "err", cause)
	return nil
}

// removeStrays deletes segment files no manifest names: the leftovers of a
// flush or compaction that crashed before its commit.
func (t *Table) removeStrays() {
	days, _ := filepath.Glob(filepath.Join(t.dir, "d*"))
	for _, d := range days {
		files, _ := os.ReadDir(d)
		for _, f := range files {
			rel := filepath.Join(filepath.Base(d), f.Name())
			if _, ok := t.segs[rel]; !ok {
				os.Remove(filepath.Join(d, f.Name()))
			}
		}
	}
}

// commitLocked writes m as the manifest: to a temporary file, fsync'd,
// renamed over the old one, and the directory fsync'd.
func (t *Table) commitLocked(m manifest) error {
	if t.readOnly {
		return errReadOnly
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := WriteFileSync(filepath.Join(t.dir, manifestName), b); err != nil {
		return fmt.Errorf("table %s: commit: %w", t.dir, err)
	}
	t.man = m
	return nil
}

// WriteFileSync replaces path with b durably: temporary file, fsync,
// rename, fsync of the directory. The store's other small files use it too.
func WriteFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close releases the table's segments; snapshots still open keep theirs.
func (t *Table) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.closeSegments()
	if t.users == nil {
		return nil
	}
	return t.users.Close()
}

func (t *Table) closeSegments() {
	for _, h := range t.segs {
		h.release()
	}
}

// WALCovered is the first log segment whose records the table does not
// hold (see manifest.WALCovered).
func (t *Table) WALCovered() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.man.WALCovered
}

// Ordinal returns the canonical user ordinal of a distinct id, if the
// table knows it.
func (t *Table) Ordinal(id string) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.ids.Lookup(id)
	if !ok {
		return 0, false
	}
	return t.ids.Canonical(o), true
}

// User returns the distinct id of a user ordinal.
func (t *Table) User(o uint32) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ids.ID(o)
}

// Dir is the table's directory.
func (t *Table) Dir() string { return t.dir }

// DayOf is the partition (days since the Unix epoch, UTC) of a time in ms.
func DayOf(ms int64) int32 {
	d := ms / 86_400_000
	if ms < 0 && ms%86_400_000 != 0 {
		d--
	}
	return int32(d)
}

// Stats describe a table.
type Stats struct {
	Rows       int64
	Segments   int
	Partitions int
	Bytes      int64 // segment files
	Users      int
	Events     int // distinct event names
	Keys       int // distinct property keys
}

// Stats returns the table's current figures.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Stats{Segments: len(t.man.Segments), Users: t.ids.Len(), Events: len(t.man.Events), Keys: len(t.man.Keys)}
	days := map[int32]bool{}
	for _, r := range t.man.Segments {
		s.Rows += int64(r.Rows)
		s.Bytes += r.Bytes
		days[r.Day] = true
	}
	s.Partitions = len(days)
	return s
}

// Days lists the partitions that hold segments, ascending.
func (t *Table) Days() []int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[int32]bool{}
	var out []int32
	for _, r := range t.man.Segments {
		if !seen[r.Day] {
			seen[r.Day] = true
			out = append(out, r.Day)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ProjectDir is where a data directory keeps project's table.
func ProjectDir(dataDir string, project int64) string {
	return filepath.Join(dataDir, "events", strconv.FormatInt(project, 10))
}
