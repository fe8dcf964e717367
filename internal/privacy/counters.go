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

type countKey struct {
	project             int64
	event, prop, reason string
}

// maxCountKeys bounds the counters between flushes: a client sending ever
// new event or property names must not grow memory without limit. Beyond
// it, changes are counted under "(other)" for event and property.
const maxCountKeys = 20000

const otherName = "(other)"

type counters struct {
	mu sync.Mutex
	m  map[countKey]int64
}

func (c *counters) init() { c.m = make(map[countKey]int64) }

func (c *counters) add(project int64, eventName string, changes []Change) {
	if len(changes) == 0 {
		return
	}
	c.mu.Lock()
	for _, ch := range changes {
		k := countKey{project, eventName, ch.Property, ch.Reason}
		if _, ok := c.m[k]; !ok {
			if len(c.m) >= maxCountKeys {
				k.event, k.prop = otherName, otherName
			} else {
				// Keys outlive the request; do not pin its buffers.
				k.event, k.prop = strings.Clone(k.event), strings.Clone(k.prop)
			}
		}
		c.m[k]++
	}
	c.mu.Unlock()
}

func (c *counters) drain() []ChangeCount {
	c.mu.Lock()
	m := c.m
	c.m = make(map[countKey]int64, len(m))
	c.mu.Unlock()
	out := make([]ChangeCount, 0, len(m))
	for k, n := range m {
		out = append(out, ChangeCount{k.project, k.event, k.prop, k.reason, n})
	}
	return out
}

func (c *counters) restore(counts []ChangeCount) {
	c.mu.Lock()
	for _, x := range counts {
		c.m[countKey{x.Project, x.Event, x.Property, x.Reason}] += x.Count
	}
	c.mu.Unlock()
}
