package store

import (
	"context"
	"fmt"
	"time"

	"github.com/veil-analytics/veil/internal/store/table"
)

// EraseReport is the audit of one erasure.
type EraseReport struct {
	Project   int64     `json:"project"`
	Pseudonym string    `json:"pseudonym"`
	At        time.Time `json:"at"`
	// Known says whether the store had ever seen the pseudonym; an unknown
	// one is still put on the suppression list.
	Known             bool     `json:"known"`
	UserOrdinals      []uint32 `json:"user_ordinals"`
	RowsRemoved       int64    `json:"rows_removed"`
	DaysRewritten     []string `json:"days_rewritten"`
	SegmentsRewritten int      `json:"segments_rewritten"`
	LogSegmentsPurged int      `json:"log_segments_purged"`
}

// Erase removes one person, by the pseudonym the store keeps for them,
// from a project: later events for them are refused at once (the
// suppression list), the heads are flushed, every day holding their rows
// is rewritten without them, and the log segments that still hold their
// raw records are deleted (which also ends $insert_id dedup for the
// events in those segments).
func (s *Store) Erase(ctx context.Context, project int64, pseudonym string) (EraseReport, error) {
	rep := EraseReport{Project: project, Pseudonym: pseudonym, At: s.opts.Now().UTC()}
	tb, err := s.tables.get(project)
	if err != nil {
		return rep, err
	}
	ords, known, err := tb.Suppress(pseudonym)
	if err != nil {
		return rep, err
	}
	rep.Known, rep.UserOrdinals = known, ords
	s.control(func() {
		s.profMu.Lock()
		s.prof.ForgetUser(project, pseudonym)
		s.profMu.Unlock()
		s.profDirty = true
	})
	if err := s.flush(ctx, false); err != nil {
		return rep, err
	}
	for _, j := range tb.Plan() {
		st, err := tb.Run(ctx, j)
		if err != nil {
			return rep, err
		}
		if st.Erased > 0 {
			rep.RowsRemoved += st.Erased
			rep.SegmentsRewritten += st.Inputs
			rep.DaysRewritten = append(rep.DaysRewritten, table.DayName(j.Day))
		}
	}
	checkpoint, err := readCheckpoint(s.dataDir)
	if err != nil {
		return rep, err
	}
	var purgeErr error
	s.control(func() {
		segs, err := s.log.Segments()
		if err != nil {
			purgeErr = err
			return
		}
		for _, sg := range segs {
			if sg.Seq < checkpoint {
				rep.LogSegmentsPurged++
			}
		}
		purgeErr = s.log.RemoveBefore(checkpoint)
	})
	if purgeErr != nil {
		return rep, fmt.Errorf("store: erase: purging the log: %w", purgeErr)
	}
	return rep, nil
}
