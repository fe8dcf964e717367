package store

import (
	"fmt"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/wal"
)

// Visitor receives what Scan reads; a nil func skips that kind of record.
type Visitor struct {
	Event    func(*event.Event) error
	Profile  func(*event.ProfileUpdate) error
	Identity func(*event.IdentityLink) error
}

// Scan reads every record stored in dataDir, in the order they were
// acknowledged. It is safe while a server appends to the same directory:
// it sees a consistent prefix of the log.
func Scan(dataDir string, v Visitor) error {
	err := wal.ReadAll(walDir(dataDir), func(payload []byte) error {
		return eachFrame(payload, func(typ event.RecordType, body []byte) error {
			switch typ {
			case event.RecordEvent:
				if v.Event == nil {
					return nil
				}
				e, err := event.DecodeEvent(body)
				if err != nil {
					return err
				}
				return v.Event(&e)
			case event.RecordProfile:
				if v.Profile == nil {
					return nil
				}
				u, err := event.DecodeProfile(body)
				if err != nil {
					return err
				}
				return v.Profile(&u)
			case event.RecordIdentity:
				if v.Identity == nil {
					return nil
				}
				l, err := event.DecodeIdentity(body)
				if err != nil {
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
