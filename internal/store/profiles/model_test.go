package profiles

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

// The model is a deliberately naive reference implementation of the package
// doc's semantics over Go maps: a profile is a map[string]any plus the order
// of its keys. Values are nil, bool, float64, string, []any and mobj.

type mfield struct {
	k string
	v any
}

// mobj is an object, ordered as event.Value objects are.
type mobj []mfield

type mprofile struct {
	m     map[string]any
	order []string
}

func (p *mprofile) set(k string, v any) {
	if _, ok := p.m[k]; !ok {
		p.order = append(p.order, k)
	}
	p.m[k] = v
}

func (p *mprofile) del(k string) {
	if _, ok := p.m[k]; ok {
		delete(p.m, k)
		p.order = slices.DeleteFunc(p.order, func(x string) bool { return x == k })
	}
}

type mkey struct {
	project int64
	key, id string // key "" for users
}

type model map[mkey]*mprofile

func toModel(v event.Value) any {
	switch v.Kind {
	case event.Bool:
		return v.Bool
	case event.Number:
		return v.Num
	case event.String:
		return v.Str
	case event.Array:
		out := make([]any, len(v.Items))
		for i := range v.Items {
			out[i] = toModel(v.Items[i])
		}
		return out
	case event.Object:
		out := make(mobj, len(v.Fields))
		for i, f := range v.Fields {
			out[i] = mfield{f.Key, toModel(f.Value)}
		}
		return out
	}
	return nil
}

func meq(a, b any) bool {
	switch a := a.(type) {
	case []any:
		b, ok := b.([]any)
		return ok && slices.EqualFunc(a, b, meq)
	case mobj:
		b, ok := b.(mobj)
		return ok && slices.EqualFunc(a, b, func(x, y mfield) bool { return x.k == y.k && meq(x.v, y.v) })
	}
	return a == b
}

func nesting(v event.Value) int {
	d := 0
	for _, it := range v.Items {
		d = max(d, nesting(it))
	}
	for _, f := range v.Fields {
		d = max(d, nesting(f.Value))
	}
	if v.Kind == event.Array || v.Kind == event.Object {
		d++
	}
	return d
}

func (m model) apply(u *event.ProfileUpdate) {
	k := mkey{project: u.Project, id: u.DistinctID}
	if u.GroupKey != "" {
		k = mkey{project: u.Project, key: u.GroupKey, id: u.GroupID}
	}
	if k.id == "" {
		return
	}
	for _, op := range u.Ops {
		if op.Op == "$delete" {
			delete(m, k)
			return
		}
	}
	p, exists := m[k]
	if !exists {
		p = &mprofile{m: map[string]any{}}
	} else {
		// Work on a copy, as the real thing would (lists are never modified in place below).
		p = &mprofile{m: maps.Clone(p.m), order: slices.Clone(p.order)}
	}
	created := exists
	if !u.IgnoreTime {
		for _, op := range u.Ops {
			if (op.Op == "$set" || op.Op == "$add" || op.Op == "$append") && op.Value.Kind == event.Object {
				p.set("$last_seen", float64(u.Time))
				created = true
				break
			}
		}
	}
	for _, op := range u.Ops {
		if op.Op == "$unset" {
			if op.Value.Kind == event.Array {
				for _, it := range op.Value.Items {
					if it.Kind == event.String {
						p.del(it.Str)
					}
				}
			}
			continue
		}
		if op.Value.Kind != event.Object {
			continue
		}
		switch op.Op {
		case "$set", "$set_once", "$add", "$append", "$union":
			created = true
		}
		for _, f := range op.Value.Fields {
			cur, has := p.m[f.Key]
			switch op.Op {
			case "$set":
				if nesting(f.Value) <= maxNesting {
					p.set(f.Key, toModel(f.Value))
				}
			case "$set_once":
				if !has && nesting(f.Value) <= maxNesting {
					p.set(f.Key, toModel(f.Value))
				}
			case "$add":
				if f.Value.Kind != event.Number {
					continue
				}
				if !has {
					p.set(f.Key, 0+f.Value.Num)
				} else if n, ok := cur.(float64); ok {
					p.set(f.Key, n+f.Value.Num)
				}
			case "$append":
				if nesting(f.Value) >= maxNesting {
					continue
				}
				if !has {
					p.set(f.Key, []any{toModel(f.Value)})
				} else if list, ok := cur.([]any); ok {
					p.set(f.Key, append(slices.Clip(list), toModel(f.Value)))
				}
			case "$union":
				if f.Value.Kind != event.Array || nesting(f.Value) > maxNesting {
					continue
				}
				list := []any{}
				if has {
					old, ok := cur.([]any)
					if !ok {
						continue
					}
					list = slices.Clone(old)
				}
				for _, it := range f.Value.Items {
					x := toModel(it)
					if !slices.ContainsFunc(list, func(y any) bool { return meq(x, y) }) {
						list = append(list, x)
					}
				}
				p.set(f.Key, list)
			case "$remove":
				list, ok := cur.([]any)
				if !ok {
					continue
				}
				x := toModel(f.Value)
				p.set(f.Key, slices.DeleteFunc(slices.Clone(list), func(y any) bool { return meq(x, y) }))
			}
		}
	}
	if created {
		m[k] = p
	}
}

// gen makes random updates over a small space of profiles, keys and values
// so that ops collide often.
type gen struct {
	r    *rand.Rand
	time int64
}

var (
	genProjects = []int64{1, 2}
	genUsers    = []string{"u1", "u2", "u3"}
	genGroups   = [][2]string{{"company", "acme"}, {"company", "u1"}, {"team", "acme"}}
	genKeys     = []string{"a", "b", "c", "d", "$last_seen"}
)

func (g *gen) key() string {
	if g.r.IntN(20) == 0 {
		return genKeys[4]
	}
	return genKeys[g.r.IntN(4)]
}

func (g *gen) scalar() event.Value {
	switch g.r.IntN(7) {
	case 0:
		return event.Value{}
	case 1:
		return event.BoolValue(g.r.IntN(2) == 0)
	case 2:
		return event.StringValue([]string{"x", "y", ""}[g.r.IntN(3)])
	case 3:
		return event.NumberValue([]float64{1.5, -0.0, 1e300}[g.r.IntN(3)])
	default:
		return event.NumberValue(float64(g.r.IntN(4)))
	}
}

func (g *gen) value(depth int) event.Value {
	if depth > 2 || g.r.IntN(3) > 0 {
		return g.scalar()
	}
	if g.r.IntN(2) == 0 {
		v := event.Value{Kind: event.Array}
		for range g.r.IntN(4) {
			v.Items = append(v.Items, g.value(depth+1))
		}
		return v
	}
	v := event.Value{Kind: event.Object}
	for range g.r.IntN(3) {
		v.Fields = append(v.Fields, event.Field{Key: []string{"p", "q"}[g.r.IntN(2)], Value: g.value(depth + 1)})
	}
	return v
}

// opValue is a value for a property of op: mostly the right type.
func (g *gen) opValue(op string) event.Value {
	if g.r.IntN(100) == 0 {
		return deep(maxNesting - 2 + g.r.IntN(4))
	}
	switch op {
	case "$add":
		if g.r.IntN(8) > 0 {
			return event.NumberValue(float64(g.r.IntN(7) - 3))
		}
	case "$union":
		if g.r.IntN(8) > 0 {
			v := event.Value{Kind: event.Array}
			for range g.r.IntN(4) {
				v.Items = append(v.Items, g.value(1))
			}
			return v
		}
	case "$remove":
		return g.scalar()
	}
	return g.value(0)
}

var genOps = []string{"$set", "$set_once", "$add", "$append", "$union", "$remove", "$unset", "$delete", "$bogus"}

func (g *gen) op() event.ProfileOp {
	name := genOps[g.r.IntN(len(genOps))]
	if g.r.IntN(30) == 0 { // the wrong JSON type for the op
		return op(name, g.scalar())
	}
	switch name {
	case "$unset":
		v := event.Value{Kind: event.Array}
		for range 1 + g.r.IntN(2) {
			if g.r.IntN(10) == 0 {
				v.Items = append(v.Items, g.scalar())
			} else {
				v.Items = append(v.Items, event.StringValue(g.key()))
			}
		}
		return op(name, v)
	case "$delete":
		return op(name, event.StringValue(""))
	}
	v := event.Value{Kind: event.Object}
	for range g.r.IntN(4) {
		v.Fields = append(v.Fields, event.Field{Key: g.key(), Value: g.opValue(name)})
	}
	return op(name, v)
}

func (g *gen) update() *event.ProfileUpdate {
	g.time += int64(g.r.IntN(1000)) - 100 // sometimes older than the last
	u := &event.ProfileUpdate{Project: genProjects[g.r.IntN(len(genProjects))], Time: g.time, IgnoreTime: g.r.IntN(2) == 0}
	switch n := g.r.IntN(10); {
	case n < 6:
		u.DistinctID = genUsers[g.r.IntN(len(genUsers))]
	case n < 9:
		gr := genGroups[g.r.IntN(len(genGroups))]
		u.GroupKey, u.GroupID = gr[0], gr[1]
	default: // no id: ignored
		if g.r.IntN(2) == 0 {
			u.GroupKey = "company"
		}
	}
	nops := 1
	if g.r.IntN(4) == 0 {
		nops += g.r.IntN(3)
	}
	for range nops {
		if g.r.IntN(10) == 0 && (u.Ops == nil || u.Ops[0].Op != "$delete") {
			continue // rarely an update with fewer ops, even none
		}
		u.Ops = append(u.Ops, g.op())
	}
	return u
}

// compare checks every profile of the State against the model.
func compare(t *testing.T, step int, s *State, m model) {
	t.Helper()
	check := func(k mkey, props []event.Field, ok bool) {
		t.Helper()
		want, wok := m[k]
		if ok != wok {
			t.Fatalf("step %d: %+v exists = %v, model says %v", step, k, ok, wok)
		}
		if !ok {
			return
		}
		keys := make([]string, len(props))
		for i, f := range props {
			keys[i] = f.Key
			if !meq(toModel(f.Value), want.m[f.Key]) {
				t.Fatalf("step %d: %+v: %s = %s, model has %#v", step, k, f.Key, f.Value.AppendJSON(nil), want.m[f.Key])
			}
		}
		if !slices.Equal(keys, want.order) {
			t.Fatalf("step %d: %+v: keys %q, model has %q", step, k, keys, want.order)
		}
	}
	for _, p := range genProjects {
		users, groups := 0, 0
		for k := range m {
			if k.project == p && k.key == "" {
				users++
			} else if k.project == p {
				groups++
			}
		}
		if gu, gg := s.Len(p); gu != users || gg != groups {
			t.Fatalf("step %d: Len(%d) = %d, %d, model has %d, %d", step, p, gu, gg, users, groups)
		}
		for _, id := range genUsers {
			props, ok := s.User(p, id)
			check(mkey{project: p, id: id}, props, ok)
		}
		for _, gr := range genGroups {
			props, ok := s.Group(p, gr[0], gr[1])
			check(mkey{project: p, key: gr[0], id: gr[1]}, props, ok)
		}
		seen := 0
		s.EachUser(p, func(id string, props []event.Field) bool {
			seen++
			check(mkey{project: p, id: id}, props, true)
			return true
		})
		if seen != users {
			t.Fatalf("step %d: EachUser(%d) saw %d users, model has %d", step, p, seen, users)
		}
	}
}

func TestModel(t *testing.T) {
	const seeds, steps = 40, 1500
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			g := &gen{r: rand.New(rand.NewPCG(seed, 0x5eed)), time: 1_700_000_000_000}
			s := &State{}
			m := model{}
			for step := range steps {
				if step == steps/2 || g.r.IntN(200) == 0 {
					b := snapshot(t, s)
					s = mustRead(t, b)
					if !bytes.Equal(snapshot(t, s), b) {
						t.Fatalf("step %d: snapshot of the read State differs", step)
					}
				}
				if g.r.IntN(50) == 0 {
					p, id := genProjects[g.r.IntN(len(genProjects))], genUsers[g.r.IntN(len(genUsers))]
					s.ForgetUser(p, id)
					delete(m, mkey{project: p, id: id})
				} else {
					u := g.update()
					s.Apply(u)
					m.apply(u)
				}
				compare(t, step, s, m)
			}
		})
	}
}
