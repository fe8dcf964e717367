package query

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/scan"
)

// plan collects what one report reads: the event properties (scan
// columns), the profile properties and the cohorts its conditions use.
type plan struct {
	ctx      context.Context
	env      *Env
	events   []string // the source's event names
	codes    map[string]uint32
	props    []string
	userKeys []string
	cohorts  map[int64]*cohortRef
	// cohortOrder lists cohorts after those they refer to; cohortSteps
	// are their event conditions.
	cohortOrder []*cohortRef
	cohortSteps []*ccond
	compiling   map[int64]bool // cohorts being compiled, to refuse cycles
}

type cohortRef struct {
	id       int64
	name     string
	def      CohortDefinition
	compiled *ccond
	slots    []int    // its event conditions in plan.cohortSteps
	users    *userSet // filled before the main scan
}

func newPlan(env *Env, events []string) *plan {
	p := &plan{env: env, events: events, codes: make(map[string]uint32, len(events)), cohorts: map[int64]*cohortRef{}}
	for i, e := range events {
		p.codes[e] = uint32(i)
	}
	return p
}

// eventProp returns the scan column of an event property.
func (p *plan) eventProp(name string) int {
	for i, n := range p.props {
		if n == name {
			return i
		}
	}
	p.props = append(p.props, name)
	return len(p.props) - 1
}

// userProp returns the index of a profile property in a user's values.
func (p *plan) userProp(name string) int {
	for i, n := range p.userKeys {
		if n == name {
			return i
		}
	}
	p.userKeys = append(p.userKeys, name)
	return len(p.userKeys) - 1
}

// opcode is a filter operator.
type opcode uint8

const (
	opEq opcode = iota
	opContains
	opIn
	opGt
	opGte
	opLt
	opLte
	opSet
	opCohort
)

// cond is a compiled Filter.
type cond struct {
	user   bool // a profile property or a cohort: the same for all of a user's events
	col    int
	op     opcode
	neg    bool
	val    scan.Value
	num    float64
	isNum  bool
	lower  string
	set    map[scan.Value]bool
	cohort *cohortRef

	// A worker's own copy (see conds.clone) remembers its answer per
	// value code of its scan: 0 unknown, 1 true, 2 false.
	memo bool
	tab  []int8
}

// matchValue applies the condition to one value ("" = absent).
func (c *cond) matchValue(v scan.Value) bool {
	var ok bool
	switch c.op {
	case opEq:
		if c.isNum {
			n, isNum := v.Num()
			ok = isNum && n == c.num
		} else {
			ok = v == c.val
		}
	case opContains:
		s := v.Str()
		ok = v.Kind() == event.String && containsFold(s, c.lower)
	case opIn:
		ok = c.set[v] // numbers are canonical float64 bits: 5 and 5.0 match
	case opGt, opGte, opLt, opLte:
		n, isNum := v.Num()
		if isNum {
			switch c.op {
			case opGt:
				ok = n > c.num
			case opGte:
				ok = n >= c.num
			case opLt:
				ok = n < c.num
			case opLte:
				ok = n <= c.num
			}
		}
	case opSet:
		ok = v != "" && v.Kind() != event.Null
	}
	return ok != c.neg
}

// containsFold reports whether s contains the lower-cased sub, ignoring
// case.
func containsFold(s, lowerSub string) bool {
	if lowerSub == "" {
		return true
	}
	if len(s) < len(lowerSub) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return strings.Contains(strings.ToLower(s), lowerSub)
		}
	}
	// ASCII fast path.
	n := len(lowerSub)
	for i := 0; i+n <= len(s); i++ {
		j := 0
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lowerSub[j] {
				break
			}
		}
		if j == n {
			return true
		}
	}
	return false
}

// valueOf converts a JSON operand (decoded with UseNumber) to a Value.
func valueOf(v any, ptr string) (scan.Value, float64, bool, error) {
	switch x := v.(type) {
	case string:
		return scan.String(x), 0, false, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return "", 0, false, specErr(ptr, "%s is not a number", x)
		}
		return scan.Of(event.NumberValue(f)), f, true, nil
	case float64:
		return scan.Of(event.NumberValue(x)), x, true, nil
	case int:
		return scan.Of(event.NumberValue(float64(x))), float64(x), true, nil
	case bool:
		return scan.Of(event.BoolValue(x)), 0, false, nil
	case nil:
		return "", 0, false, specErr(ptr, "required")
	}
	return "", 0, false, specErr(ptr, "must be a string, number or boolean")
}

// compileFilter checks f and compiles it against the plan.
func (p *plan) compileFilter(f Filter, ptr string) (*cond, error) {
	c := &cond{}
	if f.Op == "in_cohort" || f.Op == "not_in_cohort" {
		if f.Cohort <= 0 {
			return nil, specErr(ptr+"/cohort", "required for %s (a saved cohort's id)", f.Op)
		}
		ref, err := p.cohort(f.Cohort, ptr+"/cohort")
		if err != nil {
			return nil, err
		}
		c.user, c.op, c.cohort, c.neg = true, opCohort, ref, f.Op == "not_in_cohort"
		return c, nil
	}
	if f.Property == "" {
		return nil, specErr(ptr+"/property", "required")
	}
	switch f.Source {
	case "", "event":
		c.col = p.eventProp(f.Property)
	case "user":
		c.user = true
		c.col = p.userProp(f.Property)
	default:
		return nil, specErr(ptr+"/source", "must be event or user, not %q", f.Source)
	}
	var err error
	switch f.Op {
	case "eq", "neq":
		c.op, c.neg = opEq, f.Op == "neq"
		c.val, c.num, c.isNum, err = valueOf(f.Value, ptr+"/value")
	case "contains", "not_contains":
		c.op, c.neg = opContains, f.Op == "not_contains"
		s, ok := f.Value.(string)
		if !ok {
			return nil, specErr(ptr+"/value", "must be a string for %s", f.Op)
		}
		c.lower = strings.ToLower(s)
	case "in", "not_in":
		c.op, c.neg = opIn, f.Op == "not_in"
		if len(f.Values) == 0 {
			return nil, specErr(ptr+"/values", "required for %s (a non-empty array)", f.Op)
		}
		if len(f.Values) > 10000 {
			return nil, specErr(ptr+"/values", "more than 10000 values")
		}
		c.set = make(map[scan.Value]bool, len(f.Values))
		for i, v := range f.Values {
			val, _, _, err := valueOf(v, fmt.Sprintf("%s/values/%d", ptr, i))
			if err != nil {
				return nil, err
			}
			c.set[val] = true
		}
	case "gt", "gte", "lt", "lte":
		c.op = map[string]opcode{"gt": opGt, "gte": opGte, "lt": opLt, "lte": opLte}[f.Op]
		_, c.num, c.isNum, err = valueOf(f.Value, ptr+"/value")
		if err == nil && !c.isNum {
			err = specErr(ptr+"/value", "must be a number for %s", f.Op)
		}
	case "set", "not_set":
		c.op, c.neg = opSet, f.Op == "not_set"
	case "":
		return nil, specErr(ptr+"/op", "required")
	default:
		return nil, specErr(ptr+"/op", "unknown operator %q (eq, neq, contains, not_contains, in, not_in, gt, gte, lt, lte, set, not_set, in_cohort, not_in_cohort)", f.Op)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// conds is a conjunction of conditions, split into those on events and
// those on users.
type conds struct {
	ev   []*cond
	user []*cond
}

func (p *plan) compileFilters(fs []Filter, ptr string) (conds, error) {
	var cs conds
	if len(fs) > 50 {
		return cs, specErr(ptr, "more than 50 filters")
	}
	for i, f := range fs {
		c, err := p.compileFilter(f, fmt.Sprintf("%s/%d", ptr, i))
		if err != nil {
			return cs, err
		}
		if c.user {
			cs.user = append(cs.user, c)
		} else {
			cs.ev = append(cs.ev, c)
		}
	}
	return cs, nil
}

// matchEvent applies the event conditions to event i of q.
func (cs *conds) matchEvent(q *scan.Sequence, i int) bool {
	for _, c := range cs.ev {
		if !c.memo {
			if !c.matchValue(q.Value(c.col, i)) {
				return false
			}
			continue
		}
		code := q.Props[c.col][i]
		if int(code) < len(c.tab) {
			if r := c.tab[code]; r != 0 {
				if r == 2 {
					return false
				}
				continue
			}
		} else {
			c.tab = append(c.tab, make([]int8, int(code)+1-len(c.tab))...)
		}
		ok := c.matchValue(q.Value(c.col, i))
		c.tab[code] = 2
		if ok {
			c.tab[code] = 1
		}
		if !ok {
			return false
		}
	}
	return true
}

// maskRows sets ok[i] to whether event i of q passes the event
// conditions, for a worker's own conditions (see clone).
func (cs *conds) maskRows(q *scan.Sequence, ok []bool) {
	for i := range ok {
		ok[i] = true
	}
	for _, c := range cs.ev {
		if d := len(q.Dicts[c.col]) + 1; len(c.tab) < d { // codes never exceed the dictionary
			c.tab = append(c.tab, make([]int8, d-len(c.tab))...)
		}
		tab := c.tab
		for i, code := range q.Props[c.col][:len(ok)] {
			r := tab[code]
			if r == 0 {
				r = 2
				if c.matchValue(q.Value(c.col, i)) {
					r = 1
				}
				tab[code] = r
			}
			ok[i] = ok[i] && r == 1
		}
	}
}

// clone gives a scan worker conditions of its own, which memoise.
func (cs conds) clone() conds {
	out := conds{user: cs.user, ev: make([]*cond, len(cs.ev))}
	for i, c := range cs.ev {
		cp := *c
		cp.memo, cp.tab = true, nil
		out.ev[i] = &cp
	}
	return out
}

// clone gives a scan worker a step of its own (see conds.clone).
func (st *step) clone() *step {
	cp := *st
	cp.conds = st.conds.clone()
	return &cp
}

// matchUser applies the user conditions to a user.
func (cs *conds) matchUser(u *userCtx) bool {
	for _, c := range cs.user {
		if c.op == opCohort {
			var in bool
			if u.member != nil && c.cohort.users == nil {
				in = u.member[c.cohort] // evaluating cohorts: decided for this user just before
			} else {
				in = c.cohort.users.has(u.key)
			}
			if in == c.neg {
				return false
			}
			continue
		}
		if !c.matchValue(u.prop(c.col)) {
			return false
		}
	}
	return true
}

// step is a compiled Step.
type step struct {
	any  bool
	code uint32
	none bool // an event the project never saw: matches nothing
	conds
}

func (p *plan) compileStep(s Step, ptr string) (*step, error) {
	st := &step{}
	switch s.Event {
	case "":
		return nil, specErr(ptr+"/event", "required (an event name, or %s)", AnyEvent)
	case AnyEvent:
		st.any = true
	default:
		code, ok := p.codes[s.Event]
		st.code, st.none = code, !ok
	}
	cs, err := p.compileFilters(s.Filters, ptr+"/filters")
	if err != nil {
		return nil, err
	}
	st.conds = cs
	return st, nil
}

// matches reports whether event i of q (by user u) is one of the step's.
func (st *step) matches(q *scan.Sequence, i int, u *userCtx) bool {
	if st.none || !st.any && q.Events[i] != st.code {
		return false
	}
	return st.matchEvent(q, i) && (len(st.user) == 0 || st.matchUser(u))
}

// eventSet adds the step's event codes to set; false means any event.
func (st *step) eventCodes(set map[uint32]bool) bool {
	if st.any {
		return false
	}
	if !st.none {
		set[st.code] = true
	}
	return true
}

// userCtx is what conditions know of the user being visited.
type userCtx struct {
	key   uint64
	props []scan.Value // by plan.userKeys; nil without a profile
	// member holds the cohorts decided for this user while cohorts are
	// being evaluated.
	member map[*cohortRef]bool
}

func (u *userCtx) prop(i int) scan.Value {
	if u.props == nil {
		return ""
	}
	return u.props[i]
}
