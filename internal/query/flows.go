package query

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/veil-analytics/veil/internal/scan"
)

// FlowNode is one event at one step of the paths: step 0 is the anchor,
// 1..N after it (or -1..-N before it). Event "$other" folds the events
// beyond the step's top ones.
type FlowNode struct {
	ID    int    `json:"id"`
	Step  int    `json:"step"`
	Event string `json:"event"`
	Users *int64 `json:"users"`
	// DropOff users had no further event on their path.
	DropOff    *int64 `json:"drop_off"`
	Suppressed bool   `json:"suppressed,omitempty"`
}

// FlowLink is users going from one node to the next (Sankey edges).
type FlowLink struct {
	Source int    `json:"source"`
	Target int    `json:"target"`
	Users  *int64 `json:"users"`
}

// FlowPath is one full-length path and how many users took it.
type FlowPath struct {
	Events []string `json:"events"`
	Users  *int64   `json:"users"`
}

// FlowsResult answers a FlowsSpec.
type FlowsResult struct {
	From      string     `json:"from"`
	To        string     `json:"to"`
	Direction string     `json:"direction"`
	Steps     int        `json:"steps"`
	Users     *int64     `json:"users"`
	Nodes     []FlowNode `json:"nodes"`
	Links     []FlowLink `json:"links"`
	TopPaths  []FlowPath `json:"top_paths"`
}

const maxFlowSteps = 10

// pathKey is a path of event codes; unused places are ^0.
type pathKey [maxFlowSteps]uint32

const noEvent = ^uint32(0)

// Flows runs a flows report.
func Flows(ctx context.Context, src scan.Source, env Env, spec FlowsSpec) (*FlowsResult, error) {
	s := newSession(ctx, src, &env)
	p := s.plan
	w, err := spec.Range.resolve(env.TimeZone, "")
	if err != nil {
		return nil, err
	}
	anchor, err := p.compileStep(spec.Anchor, "/anchor")
	if err != nil {
		return nil, err
	}
	before := false
	switch spec.Direction {
	case "", "after":
	case "before":
		before = true
	default:
		return nil, specErr("/direction", "must be after or before, not %q", spec.Direction)
	}
	steps := spec.Steps
	if steps == 0 {
		steps = 3
	}
	if steps < 1 || steps > maxFlowSteps {
		return nil, specErr("/steps", "must be 1 to %d", maxFlowSteps)
	}
	gap := int64(30 * time.Minute / time.Millisecond)
	switch {
	case spec.SessionGapMinutes > 0:
		gap = int64(spec.SessionGapMinutes) * 60_000
	case spec.SessionGapMinutes == -1:
		gap = 0
	case spec.SessionGapMinutes < -1:
		return nil, specErr("/session_gap_minutes", "must be positive, or -1 for no limit")
	}
	if spec.IncludeEvents != nil && spec.ExcludeEvents != nil {
		return nil, specErr("/include_events", "give include_events or exclude_events, not both")
	}
	hidden := make([]bool, len(p.events))
	if spec.IncludeEvents != nil {
		for i := range hidden {
			hidden[i] = !slices.Contains(spec.IncludeEvents, p.events[i])
		}
	}
	for _, e := range spec.ExcludeEvents {
		if c, ok := p.codes[e]; ok {
			hidden[c] = true
		}
	}
	global, err := p.compileFilters(spec.Filters, "/filters")
	if err != nil {
		return nil, err
	}
	topEvents, topPaths := spec.TopEvents, spec.TopPaths
	if topEvents == 0 {
		topEvents = 10
	}
	if topPaths == 0 {
		topPaths = 50
	}
	if topEvents < 1 || topEvents > 100 {
		return nil, specErr("/top_events", "must be 1 to 100")
	}
	if topPaths < 1 || topPaths > 1000 {
		return nil, specErr("/top_paths", "must be 1 to 1000")
	}
	if err := s.prepare(); err != nil {
		return nil, err
	}

	// Paths are read up to 30 days past the range (the longest a path
	// can run is bounded by the session gap, or else by that).
	const reach = 30 * 86_400_000
	req := scan.Request{From: w.From, To: w.To + reach}
	if before {
		req = scan.Request{From: w.From - reach, To: w.To}
	}
	var workers perWorker[map[pathKey]int64]
	err = s.scan(req, func(int) func(*scan.Sequence, *userCtx) error {
		counts := map[pathKey]int64{}
		workers.add(counts)
		return func(q *scan.Sequence, u *userCtx) error {
			if !global.matchUser(u) {
				return nil
			}
			a := -1
			for i := range q.Times {
				if q.Times[i] >= w.From && q.Times[i] < w.To && anchor.matches(q, i, u) && global.matchEvent(q, i) {
					a = i
					break
				}
			}
			if a < 0 {
				return nil
			}
			var key pathKey
			for i := range key {
				key[i] = noEvent
			}
			n, last, prevT := 0, q.Events[a], q.Times[a]
			dir := 1
			if before {
				dir = -1
			}
			for j := a + dir; j >= 0 && j < q.Len() && n < steps; j += dir {
				e := q.Events[j]
				if hidden[e] || !global.matchEvent(q, j) {
					continue
				}
				t := q.Times[j]
				if d := t - prevT; gap > 0 && (d > gap || -d > gap) {
					break
				}
				if d := t - q.Times[a]; d > reach || -d > reach {
					break // a path spans at most 30 days
				}
				prevT = t
				if spec.CollapseRepeats && e == last {
					continue
				}
				key[n], last = e, e
				n++
			}
			counts[key]++
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	paths := map[pathKey]int64{}
	for _, m := range workers.vals {
		for k, v := range m {
			paths[k] += v
		}
	}
	return flowAnswer(&env, spec, paths, steps, before, topEvents, topPaths, p.events), nil
}

// flowAnswer builds the Sankey nodes and links and the top paths.
func flowAnswer(env *Env, spec FlowsSpec, paths map[pathKey]int64, steps int, before bool, topEvents, topPaths int, names []string) *FlowsResult {
	res := &FlowsResult{From: spec.From, To: spec.To, Direction: "after", Steps: steps}
	sign := 1
	if before {
		res.Direction, sign = "before", -1
	}
	var total int64
	perStep := make([]map[uint32]int64, steps)
	for i := range perStep {
		perStep[i] = map[uint32]int64{}
	}
	for k, n := range paths {
		total += n
		for i := 0; i < steps && k[i] != noEvent; i++ {
			perStep[i][k[i]] += n
		}
	}
	res.Users = ptr(total)
	if env.suppressed(total) {
		res.Users = nil
	}
	// The top events of each step keep their node; the rest are $other.
	const other = noEvent - 1
	keep := make([]map[uint32]bool, steps)
	for i, m := range perStep {
		evs := make([]uint32, 0, len(m))
		for e := range m {
			evs = append(evs, e)
		}
		slices.SortFunc(evs, func(a, b uint32) int {
			if c := cmp.Compare(m[b], m[a]); c != 0 {
				return c
			}
			return cmp.Compare(names[a], names[b])
		})
		keep[i] = map[uint32]bool{}
		for j, e := range evs {
			if j < topEvents {
				keep[i][e] = true
			}
		}
	}
	fold := func(i int, e uint32) uint32 {
		if e == noEvent || keep[i][e] {
			return e
		}
		return other
	}
	type nodeKey struct {
		step int
		ev   uint32
	}
	nodeUsers := map[nodeKey]int64{}
	nodeDrop := map[nodeKey]int64{}
	type linkKey struct{ a, b nodeKey }
	links := map[linkKey]int64{}
	full := map[pathKey]int64{}
	for k, n := range paths {
		prev := nodeKey{0, noEvent - 2} // the anchor
		nodeUsers[prev] += n
		var folded pathKey
		for i := range folded {
			folded[i] = noEvent
		}
		depth := 0
		for i := 0; i < steps; i++ {
			e := fold(i, k[i])
			if e == noEvent {
				break
			}
			folded[i] = e
			cur := nodeKey{i + 1, e}
			nodeUsers[cur] += n
			links[linkKey{prev, cur}] += n
			prev = cur
			depth++
		}
		nodeDrop[prev] += n
		if depth == steps {
			full[k] += n // top paths list real events, not $other
		}
	}
	nodes := make([]nodeKey, 0, len(nodeUsers))
	for k := range nodeUsers {
		nodes = append(nodes, k)
	}
	slices.SortFunc(nodes, func(a, b nodeKey) int {
		if c := cmp.Compare(a.step, b.step); c != 0 {
			return c
		}
		if c := cmp.Compare(nodeUsers[b], nodeUsers[a]); c != 0 {
			return c
		}
		return cmp.Compare(a.ev, b.ev)
	})
	ids := map[nodeKey]int{}
	name := func(e uint32) string {
		switch e {
		case other:
			return OtherSegment
		case noEvent - 2:
			return spec.Anchor.Event
		}
		return names[e]
	}
	for i, k := range nodes {
		ids[k] = i
		nd := FlowNode{ID: i, Step: sign * k.step, Event: name(k.ev)}
		if env.suppressed(nodeUsers[k]) {
			nd.Suppressed = true
		} else {
			nd.Users, nd.DropOff = ptr(nodeUsers[k]), ptr(nodeDrop[k])
		}
		res.Nodes = append(res.Nodes, nd)
	}
	lks := make([]linkKey, 0, len(links))
	for k := range links {
		lks = append(lks, k)
	}
	slices.SortFunc(lks, func(a, b linkKey) int {
		if c := cmp.Compare(ids[a.a], ids[b.a]); c != 0 {
			return c
		}
		return cmp.Compare(ids[a.b], ids[b.b])
	})
	for _, k := range lks {
		l := FlowLink{Source: ids[k.a], Target: ids[k.b]}
		if !env.suppressed(links[k]) {
			l.Users = ptr(links[k])
		}
		res.Links = append(res.Links, l)
	}
	fps := make([]pathKey, 0, len(full))
	for k := range full {
		fps = append(fps, k)
	}
	pathNames := func(k pathKey) []string {
		out := make([]string, 0, steps)
		for i := 0; i < steps; i++ {
			out = append(out, names[k[i]])
		}
		return out
	}
	slices.SortFunc(fps, func(a, b pathKey) int {
		if c := cmp.Compare(full[b], full[a]); c != 0 {
			return c
		}
		return slices.Compare(pathNames(a), pathNames(b))
	})
	res.TopPaths = []FlowPath{}
	for i, k := range fps {
		if i == topPaths {
			break
		}
		if env.suppressed(full[k]) {
			continue
		}
		res.TopPaths = append(res.TopPaths, FlowPath{Events: pathNames(k), Users: ptr(full[k])})
	}
	return res
}
