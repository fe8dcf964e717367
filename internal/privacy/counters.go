package privacy

import (
	"strings"
	"sync"
)

// ChangeCount is how often the stage made one kind of change.
type ChangeCount struct {
	Project  int64
	Event    string
	Property string
	Reason   string
	Count    int64
}

type eventKey struct {
	project int64
	event   string
}

type propReason struct {
	prop   string
	reason reasonID
}

// maxCountKeys bounds the counters between flushes: a client sending ever
// new event or property names must not grow memory without limit. Beyond
// it, changes are counted under "(other)" for event and property.
const maxCountKeys = 20000

const otherName = "(other)"

// counters are keyed by event first, so an event's changes cost one hash
// of its name and one short hash each.
type counters struct {
	mu sync.Mutex
	m  map[eventKey]map[propReason]int64
	n  int
}

func (c *counters) init() { c.m = make(map[eventKey]map[propReason]int64) }

func (c *counters) add(project int64, eventName string, changes []change) {
	c.addN(project, eventName, changes, 1)
}

func (c *counters) addN(project int64, eventName string, changes []change, count int64) {
	if len(changes) == 0 {
		return
	}
	c.mu.Lock()
	ek := eventKey{project, eventName}
	pm := c.m[ek]
	if pm == nil {
		if c.n >= maxCountKeys {
			ek.event = otherName
			pm = c.m[ek]
		} else {
			ek.event = strings.Clone(ek.event) // keys outlive the request's buffers
		}
		if pm == nil {
			pm = make(map[propReason]int64, len(changes))
			c.m[ek] = pm
		}
	}
	for _, ch := range changes {
		k := propReason{ch.prop, ch.r}
		if n, ok := pm[k]; ok {
			pm[k] = n + count
			continue
		}
		if c.n >= maxCountKeys {
			k.prop = otherName
		} else {
			k.prop = strings.Clone(k.prop)
			c.n++
		}
		pm[k] += count
	}
	c.mu.Unlock()
}

func (c *counters) drain() []ChangeCount {
	c.mu.Lock()
	m := c.m
	c.m = make(map[eventKey]map[propReason]int64, len(m))
	c.n = 0
	c.mu.Unlock()
	var out []ChangeCount
	for ek, pm := range m {
		for k, n := range pm {
			out = append(out, ChangeCount{ek.project, ek.event, k.prop, reasonNames[k.reason], n})
		}
	}
	return out
}

func (c *counters) restore(counts []ChangeCount) {
	for _, x := range counts {
		c.addN(x.Project, x.Event, []change{{x.Property, reasonByName(x.Reason)}}, x.Count)
	}
}

// reasonByName returns the id of a reason name (restoring counters).
func reasonByName(name string) reasonID {
	for i, n := range reasonNames {
		if n == name {
			return reasonID(i)
		}
	}
	return rTooDeep // unreachable: names come from reasonNames
}
