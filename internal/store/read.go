package store

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/table"
	"github.com/veil-analytics/veil/internal/store/wal"
)

// Visitor receives what Scan reads; a nil func skips that kind of record.
type Visitor struct {
	Event    func(*event.Event) error
	Profile  func(*event.ProfileUpdate) error
	Identity func(*event.IdentityLink) error
}

// Scan reads what dataDir holds for project: first the events of its
// table (by user, then time), then the events the log holds after them
// (in the order they were acknowledged), then the profile updates and
// identity links the log still keeps. It never writes, so it is safe while
// a server runs on dataDir: it sees a consistent state of the table and a
// prefix of the log.
func Scan(dataDir string, project int64, v Visitor) error {
	checkpoint, err := readCheckpoint(dataDir)
	if err != nil {
		return err
	}
	covered := uint64(0)
	if v.Event != nil {
		if covered, err = scanTable(dataDir, project, v.Event); err != nil {
			return err
		}
	}
	from := max(checkpoint, covered)
	err = wal.ReadAllSeq(walDir(dataDir), func(seq uint64, payload []byte) error {
		return eachFrame(payload, func(typ event.RecordType, body []byte) error {
			switch typ {
			case event.RecordEvent:
				if v.Event == nil || seq < from {
					return nil
				}
				e, err := event.DecodeEvent(body)
				if err != nil || e.Project != project {
					return err
				}
				return v.Event(&e)
			case event.RecordProfile:
				if v.Profile == nil {
					return nil
				}
				u, err := event.DecodeProfile(body)
				if err != nil || u.Project != project {
					return err
				}
				return v.Profile(&u)
			case event.RecordIdentity:
				if v.Identity == nil {
					return nil
				}
				l, err := event.DecodeIdentity(body)
				if err != nil || l.Project != project {
					return err
				}
				return v.Identity(&l)
			}
			return fmt.Errorf("%w: unknown record type %d", event.ErrCorrupt, typ)
		})
	})
	if err != nil {
		return fmt.Errorf("store: scan: %w", err)
	}
	return nil
}

// scanTable visits the events of project's table and returns the first
// log segment the table does not cover. A server's compaction may delete
// a segment between reading the manifest and opening it: then it reads
// the newer manifest again.
func scanTable(dataDir string, project int64, fn func(*event.Event) error) (uint64, error) {
	dir := table.ProjectDir(dataDir, project)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	var tb *table.Table
	var err error
	for range 5 {
		if tb, err = table.Open(dir, table.Options{ReadOnly: true}); !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if err != nil {
		return 0, err
	}
	defer tb.Close()
	snap := tb.Snapshot()
	defer snap.Release()
	names, keys := snap.Events(), snap.Keys()
	codes := make([]uint32, len(keys))
	for i := range codes {
		codes[i] = uint32(i)
	}
	var e event.Event
	err = snap.Scan(context.Background(), table.ScanSpec{Keys: codes, Details: true}, func(q *table.Sequence) error {
		id := tb.User(q.User)
		for i := range q.Times {
			e = event.Event{Project: project, Name: names[q.Events[i]], DistinctID: id, Time: q.Times[i],
				InsertID: q.InsertIDs[i], Received: q.Received[i], Props: e.Props[:0]}
			for k, key := range keys {
				a := q.Props[k][i]
				if a == "" {
					continue
				}
				val, err := a.Decode()
				if err != nil {
					return err
				}
				if key == table.DistinctIDKey {
					e.DistinctID = val.Str
					continue
				}
				e.Props = append(e.Props, event.Field{Key: key, Value: val})
			}
			if err := fn(&e); err != nil {
				return err
			}
		}
		return nil
	})
	return tb.WALCovered(), err
}

// eachFrame calls fn for every framed record in a log record's payload.
func eachFrame(payload []byte, fn func(event.RecordType, []byte) error) error {
	for len(payload) > 0 {
		typ, body, rest, err := event.NextRecord(payload)
		if err != nil {
			return err
		}
		if err := fn(typ, body); err != nil {
			return err
		}
		payload = rest
	}
	return nil
}
