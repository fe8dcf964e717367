package query

import (
	"fmt"

	"github.com/veil-analytics/veil/internal/event"

	"github.com/veil-analytics/veil/internal/scan"
)

// breakdownSpec is a compiled Breakdown.
type breakdownSpec struct {
	user    bool
	col     int
	cohorts []*cohortRef
}

func (p *plan) compileBreakdown(b Breakdown, ptr string) (*breakdownSpec, error) {
	if len(b.Cohorts) > 0 {
		if b.Property != "" {
			return nil, specErr(ptr, "a breakdown is by a property or by cohorts, not both")
		}
		if len(b.Cohorts) > 20 {
			return nil, specErr(ptr+"/cohorts", "at most 20 cohorts")
		}
		bd := &breakdownSpec{}
		for i, id := range b.Cohorts {
			ref, err := p.cohort(id, fmt.Sprintf("%s/cohorts/%d", ptr, i))
			if err != nil {
				return nil, err
			}
			bd.cohorts = append(bd.cohorts, ref)
		}
		return bd, nil
	}
	if b.Property == "" {
		return nil, specErr(ptr+"/property", "required (or cohorts)")
	}
	switch b.Source {
	case "", "event":
		return &breakdownSpec{col: p.eventProp(b.Property)}, nil
	case "user":
		return &breakdownSpec{user: true, col: p.userProp(b.Property)}, nil
	}
	return nil, specErr(ptr+"/source", "must be event or user, not %q", b.Source)
}

// values appends the segments of event i of q (by user u) to dst: one
// value for a property ("" when absent), the cohorts the user is in for
// a cohort breakdown ("" when none).
func (b *breakdownSpec) values(q *scan.Sequence, i int, u *userCtx, dst []scan.Value) []scan.Value {
	switch {
	case b.cohorts != nil:
		n := len(dst)
		for _, c := range b.cohorts {
			if c.users.has(u.key) {
				dst = append(dst, scan.String(c.name))
			}
		}
		if len(dst) == n {
			dst = append(dst, "")
		}
		return dst
	case b.user:
		return append(dst, segmentValue(u.prop(b.col)))
	}
	return append(dst, segmentValue(q.Value(b.col, i)))
}

// segmentValue folds null into absent: both are the segment "$none".
func segmentValue(v scan.Value) scan.Value {
	if v.Kind() == event.Null {
		return ""
	}
	return v
}

// perUser reports whether the segments are the same for all of a user's
// events.
func (b *breakdownSpec) perUser() bool { return b.user || b.cohorts != nil }
