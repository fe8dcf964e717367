package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Where a kill landed, as the files it left show (see storeState.phase).
const (
	phaseFlush      = "flush"            // the log rolled, the manifest not yet committed
	phaseCheckpoint = "flush checkpoint" // the manifest committed, checkpoint.json not yet moved
	phaseCompaction = "compaction"       // between flushes, a merge's files on disk
	phaseIdle       = "between writes"
)

// TestCrashDuringFlushAndCompaction SIGKILLs the server many times while it
// flushes its heads into segments and compacts them, as the event store's
// crash-safety promise requires: after the last restart nothing
// acknowledged is lost and nothing is stored twice.
//
// The server flushes every 50 ms, so that flushes (one segment per day:
// the events span five UTC days) and compactions (four segments of a day
// into one) run all the time. Some kills come at a random moment 20–300 ms
// after a restart; the others wait for a segment write of a flush or of a
// compaction to be under way (a *.seg.tmp on disk) and kill at once. After
// each kill, before the restart, the data directory shows where the kill
// landed: a log rolled past what the manifest covers is a flush in
// progress; leftover segment or manifest files between flushes are a
// compaction's.
//
// Replay a failure with VEIL_E2E_SEED=<seed from the log>; the kill delays,
// kill targets and batch contents follow from it (the interleaving with the
// server does not).
func TestCrashDuringFlushAndCompaction(t *testing.T) {
	seed := crashSeed(t)
	const (
		kills      = 40
		flushEvery = 50 * time.Millisecond
		targetWait = 1500 * time.Millisecond // longest wait for a targeted segment write
	)
	s := NewServer(t, "--flush-interval", flushEvery.String())
	start := time.Now()
	tableDir := filepath.Join(s.Data, "events", strconv.FormatInt(s.ID, 10))
	load := startCrashLoad(t, s, seed, crashLoadConfig{
		workers: 3, minBatch: 10, maxBatch: 40, retryEvery: 25 * time.Millisecond,
		span:  4 * 24 * time.Hour, // within /track's 5 days: five UTC day partitions
		pause: 5 * time.Millisecond, resendOneIn: 8, copyOneIn: 4,
	})

	krng := rand.New(rand.NewPCG(seed, 0))
	prevWAL := inspectStore(t, s.Data, tableDir).wal
	var logs []string
	phases := map[string]int{}
	var withTmp, flushTmp, compactionTmp, missed int
	for i := range kills {
		d := time.Duration(20+krng.IntN(281)) * time.Millisecond
		target := ""
		switch r := krng.IntN(10); {
		case r >= 7:
			target = phaseCompaction
		case r >= 4:
			target = phaseFlush
		}
		how := fmt.Sprintf("after %v", d)
		if target != "" {
			d = d / 2 // then wait for the segment write
			time.Sleep(d)
			t0 := time.Now()
			hit := awaitSegmentWrite(s.Data, tableDir, target, targetWait)
			how = fmt.Sprintf("%v, then %v waiting for a %s segment write", d, time.Since(t0).Round(time.Millisecond), target)
			if !hit {
				missed++
				how += " (none seen)"
			}
		} else {
			time.Sleep(d)
		}
		s.Kill()
		st := inspectStore(t, s.Data, tableDir)
		phase := st.phase(prevWAL)
		prevWAL = st.wal
		phases[phase]++
		if st.tmpFiles() {
			withTmp++
			switch phase {
			case phaseFlush, phaseCheckpoint:
				flushTmp++
			case phaseCompaction:
				compactionTmp++
			}
		}
		logs = append(logs, s.Log())
		restartServer(t, s) // fails the test if start-up fails
		t.Logf("kill %d %s: landed %s (%s); %d batches so far", i+1, how, phase, st, load.batchCount())
	}
	// Let retries of the last crash finish against a live server, then stop:
	// the clean stop flushes what is left.
	time.Sleep(300 * time.Millisecond)
	load.finish(time.Minute)
	if err := s.Stop(); err != nil {
		t.Errorf("clean stop after the last restart: %v\n%s", err, s.Log())
	}
	logs = append(logs, s.Log())
	if !strings.Contains(logs[len(logs)-1], "stopped cleanly") {
		t.Errorf("final log lacks \"stopped cleanly\":\n%s", logs[len(logs)-1])
	}
	for i, l := range logs {
		if !strings.Contains(l, "veil is listening") {
			t.Errorf("run %d never started listening:\n%s", i, l)
		}
		for _, line := range strings.Split(l, "\n") {
			if strings.Contains(line, "set aside") {
				t.Errorf("run %d set a segment aside: %s", i, line)
			}
		}
		checkServerLog(t, fmt.Sprintf("run %d", i), l)
	}
	if _, err := os.Stat(filepath.Join(tableDir, "corrupt")); !errors.Is(err, os.ErrNotExist) {
		ls, _ := os.ReadDir(filepath.Join(tableDir, "corrupt"))
		t.Errorf("%s/corrupt exists (%v): segments were set aside: %v", tableDir, err, ls)
	}

	recs := s.Records("event")
	tally := load.verify(recs)

	// The clean stop wrote everything to segments: the table holds every
	// stored event, covers the whole log, and no file is left over.
	final := inspectStore(t, s.Data, tableDir)
	rows, compacted := 0, 0
	for _, sg := range final.segments {
		rows += sg.Rows
		if sg.Level > 0 {
			compacted++
		}
	}
	switch {
	case !final.manifest:
		t.Errorf("no %s/MANIFEST after the clean stop: the flush path never committed", tableDir)
	case len(final.segments) == 0 || len(final.onDisk) == 0:
		t.Errorf("no segment in the table after the clean stop (manifest names %d, %d .seg files on disk)", len(final.segments), len(final.onDisk))
	}
	if compacted == 0 {
		t.Errorf("no segment of level 1 or more in the final manifest: no compaction ever committed")
	}
	if rows != len(recs) {
		t.Errorf("the table's segments hold %d rows after the clean stop, veil events printed %d events", rows, len(recs))
	}
	if final.covered != final.wal || final.checkpoint != final.wal {
		t.Errorf("after the clean stop the manifest covers the log up to segment %d and checkpoint.json says %d; want both %d, the newest log segment",
			final.covered, final.checkpoint, final.wal)
	}
	if final.tmpFiles() || len(final.uncommitted)+len(final.replaced) > 0 {
		t.Errorf("files left over after the clean stop: %s", final)
	}
	var names []string
	for _, sg := range final.segments {
		names = append(names, sg.File)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(final.onDisk, ",") {
		t.Errorf("the manifest names segments %v; on disk are %v", names, final.onDisk)
	}

	t.Logf("%d kills in %v: %d during a flush, %d during a flush's checkpoint, %d during a compaction, %d between writes; "+
		"%d left *.tmp files (%d of a flush, %d of a compaction); %d targeted kills saw no segment write in %v. "+
		"Final table: %d segments (%d compacted), %d rows, %d partitions. %s",
		kills, time.Since(start).Round(time.Millisecond), phases[phaseFlush], phases[phaseCheckpoint], phases[phaseCompaction], phases[phaseIdle],
		withTmp, flushTmp, compactionTmp, missed, targetWait, len(final.segments), compacted, rows, len(final.days()), load.summary(tally))
	if withTmp == 0 {
		t.Errorf("no kill of %d left a *.seg.tmp or MANIFEST.tmp: none landed inside a flush or compaction", kills)
	}
	if phases[phaseFlush] == 0 {
		t.Errorf("no kill of %d landed during a flush", kills)
	}
	if phases[phaseCompaction] == 0 {
		t.Errorf("no kill of %d landed during a compaction", kills)
	}
	load.checkExercised(tally, kills, false)
}

// manifestSeg is a segment a table's MANIFEST names.
type manifestSeg struct {
	Day   int32  `json:"day"`
	File  string `json:"file"`
	Rows  int    `json:"rows"`
	Level int    `json:"level"`
}

// storeState is what a data directory holds of the event store's flush
// and compaction: read while no server runs on it.
type storeState struct {
	wal        uint64 // the newest log segment
	checkpoint uint64 // checkpoint.json's wal_seq
	manifest   bool   // the table has a MANIFEST
	covered    uint64 // the manifest's wal_covered
	manSeq     uint64 // the manifest's last segment number
	segments   []manifestSeg
	onDisk     []string // day/NNN.seg files, sorted

	segTmp      []string // *.seg.tmp: a segment being written
	manifestTmp bool     // MANIFEST.tmp: a commit under way
	otherTmp    []string // checkpoint.json.tmp, profiles.snap.tmp
	uncommitted []string // complete segments no manifest names, numbered past it: a flush's or merge's output
	replaced    []string // complete segments no manifest names, numbered within it: a committed merge's inputs
}

// inspectStore reads the store's state in data for the table in tableDir.
func inspectStore(t *testing.T, data, tableDir string) storeState {
	t.Helper()
	var st storeState
	wals, err := filepath.Glob(filepath.Join(data, "wal", "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wals {
		if n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(w), ".wal"), 10, 64); err == nil {
			st.wal = max(st.wal, n)
		}
	}
	if b, err := os.ReadFile(filepath.Join(data, "checkpoint.json")); err == nil {
		var c struct {
			WALSeq uint64 `json:"wal_seq"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("checkpoint.json: %v: %s", err, b)
		}
		st.checkpoint = c.WALSeq
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, name := range []string{"checkpoint.json.tmp", "profiles.snap.tmp"} {
		if _, err := os.Stat(filepath.Join(data, name)); err == nil {
			st.otherTmp = append(st.otherTmp, name)
		}
	}
	m, ok, err := readManifest(tableDir)
	if err != nil {
		t.Fatal(err)
	}
	st.manifest, st.covered, st.manSeq, st.segments = ok, m.WALCovered, m.Seq, m.Segments
	if _, err := os.Stat(filepath.Join(tableDir, "MANIFEST.tmp")); err == nil {
		st.manifestTmp = true
	}
	named := map[string]bool{}
	for _, sg := range st.segments {
		named[sg.File] = true
	}
	days, _ := filepath.Glob(filepath.Join(tableDir, "d*"))
	for _, d := range days {
		files, _ := os.ReadDir(d)
		for _, f := range files {
			rel := filepath.Join(filepath.Base(d), f.Name())
			switch {
			case strings.HasSuffix(f.Name(), ".seg.tmp"):
				st.segTmp = append(st.segTmp, rel)
			case strings.HasSuffix(f.Name(), ".seg"):
				st.onDisk = append(st.onDisk, rel)
				if named[rel] {
					continue
				}
				if n, err := strconv.ParseUint(strings.TrimSuffix(f.Name(), ".seg"), 10, 64); err == nil && n <= st.manSeq {
					st.replaced = append(st.replaced, rel)
				} else {
					st.uncommitted = append(st.uncommitted, rel)
				}
			}
		}
	}
	sort.Strings(st.onDisk)
	return st
}

type manifestFile struct {
	Seq        uint64        `json:"seq"`
	Segments   []manifestSeg `json:"segments"`
	WALCovered uint64        `json:"wal_covered"`
}

// readManifest reads tableDir/MANIFEST; ok is false if there is none yet.
func readManifest(tableDir string) (m manifestFile, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(tableDir, "MANIFEST"))
	if errors.Is(err, os.ErrNotExist) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, false, fmt.Errorf("%s/MANIFEST: %w: %s", tableDir, err, b)
	}
	return m, true, nil
}

// tmpFiles reports whether a write was cut short: a temporary file of a
// segment, the manifest, the checkpoint or the profile snapshot is there.
func (st storeState) tmpFiles() bool {
	return len(st.segTmp) > 0 || st.manifestTmp || len(st.otherTmp) > 0
}

// phase says where the kill that left st landed. A flush rolls the log
// first (a new segment numbered past the manifest's wal_covered), then
// writes segments, commits the manifest (wal_covered = the new log
// segment) and moves checkpoint.json; compaction runs between flushes.
// prevWAL is the newest log segment when the killed run started: a log
// rolled no further was not rolled by that run, whatever it covers.
func (st storeState) phase(prevWAL uint64) string {
	rolled := st.wal > prevWAL
	switch {
	case rolled && st.covered < st.wal:
		return phaseFlush
	case rolled && st.checkpoint < st.wal:
		return phaseCheckpoint
	case len(st.segTmp) > 0 || st.manifestTmp || len(st.uncommitted) > 0 || len(st.replaced) > 0:
		return phaseCompaction
	}
	return phaseIdle
}

// days lists the partitions the manifest names.
func (st storeState) days() map[int32]bool {
	out := map[int32]bool{}
	for _, sg := range st.segments {
		out[sg.Day] = true
	}
	return out
}

func (st storeState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "log segment %d, checkpoint %d, manifest covers %d with %d segments", st.wal, st.checkpoint, st.covered, len(st.segments))
	for _, l := range []struct {
		what  string
		files []string
	}{{"writing", st.segTmp}, {"uncommitted", st.uncommitted}, {"replaced", st.replaced}, {"tmp", st.otherTmp}} {
		if len(l.files) > 0 {
			fmt.Fprintf(&b, "; %s %s", l.what, strings.Join(l.files, " "))
		}
	}
	if st.manifestTmp {
		b.WriteString("; MANIFEST.tmp")
	}
	return b.String()
}

// awaitSegmentWrite polls until a segment write of want (phaseFlush or
// phaseCompaction) is under way, a *.seg.tmp or MANIFEST.tmp on disk, and
// reports whether one was seen within timeout. A write is a flush's while
// the log has rolled past what the manifest covers.
func awaitSegmentWrite(data, tableDir, want string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if writing(tableDir) {
			m, _, err := readManifest(tableDir)
			if err == nil {
				_, serr := os.Stat(filepath.Join(data, "wal", fmt.Sprintf("%08d.wal", m.WALCovered+1)))
				if flushing := serr == nil; flushing == (want == phaseFlush) {
					return true
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

// writing reports whether a segment or the manifest of the table in
// tableDir is being written.
func writing(tableDir string) bool {
	if _, err := os.Stat(filepath.Join(tableDir, "MANIFEST.tmp")); err == nil {
		return true
	}
	days, _ := os.ReadDir(tableDir)
	for _, d := range days {
		if !d.IsDir() || !strings.HasPrefix(d.Name(), "d") {
			continue
		}
		files, _ := os.ReadDir(filepath.Join(tableDir, d.Name()))
		for _, f := range files {
			if strings.HasSuffix(f.Name(), ".seg.tmp") {
				return true
			}
		}
	}
	return false
}
