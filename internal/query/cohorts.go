package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/veil-analytics/veil/internal/scan"
)

// ErrNoCohort is returned by Cohorts for an unknown cohort id.
var ErrNoCohort = errors.New("no such cohort")

// maxCohortDepth bounds nesting of cohorts in cohorts.
const maxCohortDepth = 8

// ValidateCohort checks a cohort definition, resolving the cohorts it
// refers to through env.Cohorts, as a report using it would.
func ValidateCohort(ctx context.Context, events []string, env Env, definition []byte) error {
	var def CohortDefinition
	if err := decodeSpec(definition, &def); err != nil {
		return err
	}
	p := newPlan(&env, events)
	p.ctx = ctx
	_, err := p.compileCohort(&def, "", nil)
	return err
}

// cohort resolves a saved cohort for a filter or breakdown.
func (p *plan) cohort(id int64, ptr string) (*cohortRef, error) {
	return p.cohortAt(id, ptr, nil)
}

func (p *plan) cohortAt(id int64, ptr string, path []int64) (*cohortRef, error) {
	if ref := p.cohorts[id]; ref != nil {
		return ref, nil
	}
	// A cohort being compiled further up refers to itself, whatever the
	// way (a cohort condition, or a step's in_cohort filter).
	if slices.Contains(path, id) || p.compiling[id] {
		return nil, specErr(ptr, "cohort %d refers to itself", id)
	}
	if len(path) >= maxCohortDepth || len(p.compiling) >= maxCohortDepth {
		return nil, specErr(ptr, "cohorts nested more than %d deep", maxCohortDepth)
	}
	if p.env.Cohorts == nil {
		return nil, specErr(ptr, "no cohort %d", id)
	}
	ctx := p.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	name, raw, err := p.env.Cohorts.Cohort(ctx, id)
	if errors.Is(err, ErrNoCohort) {
		return nil, specErr(ptr, "no cohort %d", id)
	}
	if err != nil {
		return nil, err
	}
	ref := &cohortRef{id: id, name: name}
	if err := decodeSpec(raw, &ref.def); err != nil {
		return nil, specErr(ptr, "cohort %d has a malformed definition: %v", id, err)
	}
	if p.compiling == nil {
		p.compiling = map[int64]bool{}
	}
	p.compiling[id] = true
	first := len(p.cohortSteps)
	c, err := p.compileCohort(&ref.def, ptr, append(slices.Clip(path), id))
	delete(p.compiling, id)
	// The event conditions compiled meanwhile are this cohort's, but for
	// those of cohorts it uses, which claimed theirs first.
	for i := first; i < len(p.cohortSteps); i++ {
		if !p.cohortSteps[i].claimed {
			p.cohortSteps[i].claimed = true
			ref.slots = append(ref.slots, i)
		}
	}
	if err != nil {
		var se *SpecError
		if errors.As(err, &se) && len(path) == 0 {
			return nil, specErr(ptr, "cohort %d: %s %s", id, se.Pointer, se.Detail)
		}
		return nil, err
	}
	ref.compiled = c
	p.cohorts[id] = ref
	p.cohortOrder = append(p.cohortOrder, ref) // after the cohorts it uses
	return ref, nil
}

// ccond is a compiled CohortCondition.
type ccond struct {
	kind byte // 'e'vent, 'p'roperty, 'c'ohort, 'g'roup
	// event conditions
	step     *step
	countOp  byte // '>' at least, '<' at most, '=' exactly
	count    int
	lastDays int64 // ms; 0 with from/to
	from, to int64
	slot     int // index of the user's matching times
	claimed  bool
	// property
	filter *cond
	// cohort
	ref *cohortRef
	in  bool
	// group
	or    bool
	conds []*ccond
}

func (p *plan) compileCohort(def *CohortDefinition, ptr string, path []int64) (*ccond, error) {
	g := &ccond{kind: 'g'}
	switch def.Op {
	case "", "and":
	case "or":
		g.or = true
	default:
		return nil, specErr(ptr+"/op", "must be and or or, not %q", def.Op)
	}
	if len(def.Conditions) == 0 {
		return nil, specErr(ptr+"/conditions", "at least one condition is required")
	}
	if len(def.Conditions) > 50 {
		return nil, specErr(ptr+"/conditions", "at most 50 conditions")
	}
	for i := range def.Conditions {
		c, err := p.compileCohortCond(&def.Conditions[i], fmt.Sprintf("%s/conditions/%d", ptr, i), path, 0)
		if err != nil {
			return nil, err
		}
		g.conds = append(g.conds, c)
	}
	return g, nil
}

func (p *plan) compileCohortCond(cc *CohortCondition, ptr string, path []int64, depth int) (*ccond, error) {
	if depth > maxCohortDepth {
		return nil, specErr(ptr, "conditions nested more than %d deep", maxCohortDepth)
	}
	switch cc.Type {
	case "event":
		st, err := p.compileStep(cc.Step, ptr)
		if err != nil {
			return nil, err
		}
		c := &ccond{kind: 'e', step: st, countOp: '>', count: 1, slot: len(p.cohortSteps)}
		p.cohortSteps = append(p.cohortSteps, c)
		switch cc.CountOp {
		case "", "at_least":
		case "at_most":
			c.countOp = '<'
		case "exactly":
			c.countOp = '='
		default:
			return nil, specErr(ptr+"/count_op", "must be at_least, at_most or exactly, not %q", cc.CountOp)
		}
		if cc.Count != nil {
			if *cc.Count < 0 {
				return nil, specErr(ptr+"/count", "must not be negative")
			}
			c.count = *cc.Count
		}
		switch {
		case cc.LastDays > 0 && (cc.From != "" || cc.To != ""):
			return nil, specErr(ptr+"/last_days", "give last_days or from and to, not both")
		case cc.LastDays > 0:
			if cc.LastDays > 3660 {
				return nil, specErr(ptr+"/last_days", "at most 3660")
			}
			c.lastDays = int64(cc.LastDays) * 86_400_000
		case cc.LastDays < 0:
			return nil, specErr(ptr+"/last_days", "must be positive")
		case cc.From != "" || cc.To != "":
			w, err := Range{From: cc.From, To: cc.To}.resolve(p.env.TimeZone, ptr)
			if err != nil {
				return nil, err
			}
			c.from, c.to = w.From, w.To
		default:
			c.from, c.to = 0, 1<<62 // ever
		}
		return c, nil
	case "property":
		if cc.Filter == nil {
			return nil, specErr(ptr+"/filter", "required for a property condition")
		}
		f := *cc.Filter
		if f.Source == "" {
			f.Source = "user"
		}
		if f.Source != "user" {
			return nil, specErr(ptr+"/filter/source", "cohort property conditions are on user profiles")
		}
		c, err := p.compileFilter(f, ptr+"/filter")
		if err != nil {
			return nil, err
		}
		return &ccond{kind: 'p', filter: c}, nil
	case "cohort":
		if cc.Cohort <= 0 {
			return nil, specErr(ptr+"/cohort", "required (a saved cohort's id)")
		}
		ref, err := p.cohortAt(cc.Cohort, ptr+"/cohort", path)
		if err != nil {
			return nil, err
		}
		return &ccond{kind: 'c', ref: ref, in: cc.In == nil || *cc.In}, nil
	case "group":
		g, err := p.compileCohort(&CohortDefinition{Op: cc.Op, Conditions: cc.Conditions}, ptr, path)
		return g, err
	case "":
		return nil, specErr(ptr+"/type", "required (event, property, cohort or group)")
	}
	return nil, specErr(ptr+"/type", "must be event, property, cohort or group, not %q", cc.Type)
}

// cohortUser is one user's matching event times per cohort event
// condition, for evaluating memberships as of any time.
type cohortUser struct {
	times [][]int64
	u     *userCtx
}

// eval decides c for the user as of asOf.
func (cu *cohortUser) eval(c *ccond, asOf int64) bool {
	switch c.kind {
	case 'e':
		ts := cu.times[c.slot]
		from, to := c.from, c.to
		if c.lastDays > 0 {
			from, to = asOf-c.lastDays, asOf
		}
		to = min(to, asOf)
		lo := sort.Search(len(ts), func(i int) bool { return ts[i] >= from })
		hi := sort.Search(len(ts), func(i int) bool { return ts[i] >= to })
		n := max(hi-lo, 0)
		switch c.countOp {
		case '<':
			return n <= c.count
		case '=':
			return n == c.count
		}
		return n >= c.count
	case 'p':
		return c.filter.matchValue(cu.u.prop(c.filter.col))
	case 'c':
		return cu.evalRef(c.ref, asOf) == c.in
	}
	for _, sub := range c.conds {
		ok := cu.eval(sub, asOf)
		if c.or && ok {
			return true
		}
		if !c.or && !ok {
			return false
		}
	}
	return !c.or
}

func (cu *cohortUser) evalRef(ref *cohortRef, asOf int64) bool {
	return cu.eval(ref.compiled, asOf)
}

// evalCohorts fills the user sets of the plan's cohorts with one scan of
// every user: those who did nothing can be members too ("did not").
func (s *session) evalCohorts() error {
	p := s.plan
	if len(p.cohortOrder) == 0 {
		return nil
	}
	now := s.env.now().UnixMilli()
	var sets perWorker[[]*userSet]
	err := s.scan(scan.Request{}, func(int) func(*scan.Sequence, *userCtx) error {
		local := make([]*userSet, len(p.cohortOrder))
		for i := range local {
			local[i] = &userSet{}
		}
		sets.add(local)
		cu := &cohortUser{times: make([][]int64, len(p.cohortSteps))}
		member := map[*cohortRef]bool{}
		return func(q *scan.Sequence, u *userCtx) error {
			cu.u = u
			clear(member)
			u.member = member
			// In dependency order: a step's in_cohort filter may need a
			// cohort decided just before for this user.
			for i, ref := range p.cohortOrder {
				for _, slot := range ref.slots {
					c := p.cohortSteps[slot]
					ts := cu.times[slot][:0]
					for j := range q.Times {
						if c.step.matches(q, j, u) {
							ts = append(ts, q.Times[j])
						}
					}
					cu.times[slot] = ts
				}
				in := cu.evalRef(ref, now)
				member[ref] = in
				if in {
					local[i].add(u.key)
				}
			}
			u.member = nil
			return nil
		}
	})
	if err != nil {
		return err
	}
	for i, ref := range p.cohortOrder {
		ref.users = &userSet{}
		for _, local := range sets.vals {
			ref.users.merge(local[i])
		}
	}
	return nil
}
