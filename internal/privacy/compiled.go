package privacy

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/veil-analytics/veil/internal/privacy/pii"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
	"github.com/veil-analytics/veil/internal/privacy/urlclean"
)

// propKind is what a policy says about a property name.
type propKind uint8

const (
	kindPlain      propKind = iota
	kindDrop                // a known personal field: removed
	kindIdentifier          // pseudonymised under its field
	kindGroup               // a group key: its values are group ids
	kindURL                 // cleaned as a URL
	kindReferrer            // reduced to its host
)

type propRule struct {
	kind  propKind
	field pseudonym.Field
}

// distinctIDAliases are properties whose values are distinct ids. They are
// always pseudonymised, whatever the policy says, in the distinct_id
// domain, so "$device_id" on one event and the distinct_id of another stay
// joinable.
var distinctIDAliases = map[string]bool{
	"$device_id": true, "$user_id": true, "$anon_id": true, "$anon_distinct_id": true,
	"$identified_id": true, "alias": true, "$distinct_ids": true,
	"$distinct_id_before_identity": true, "distinct_id": true, "user_id": true, "userid": true,
}

// compiled is a validated Policy in the shape the hot path wants.
type compiled struct {
	policy  Policy
	rules   map[string]propRule // by lower-case property name
	actions [16]Action          // by pii.Class
	geo     bool
	urlOpts urlclean.Options
	events  map[string]map[string]string // contract: event → property → type; nil without contract
	common  map[string]string
	pseudo  *pseudonym.Pseudonymizer

	// keys caches what the policy and the scanner say about property
	// names, which repeat from event to event. Copy on write: readers
	// never lock. Names holding personal data are never cached.
	keys   atomic.Pointer[map[string]keyInfo]
	keysMu sync.Mutex
}

// keyInfo is what is known about one property name.
type keyInfo struct {
	rule propRule
	pii  bool // the name itself holds personal data
}

// maxCachedKeys bounds the name cache of one policy; names beyond it are
// looked at on every event.
const maxCachedKeys = 4096

// key returns what the policy and sc say about a property name.
func (c *compiled) key(sc *pii.Scanner, buf []pii.Match, name string) keyInfo {
	if m := c.keys.Load(); m != nil {
		if ki, ok := (*m)[name]; ok {
			return ki
		}
	}
	ki := keyInfo{rule: c.rule(name), pii: len(name) >= 3 && len(sc.AppendFind(buf[:0], name)) > 0}
	if ki.pii || len(name) > 128 {
		return ki
	}
	c.keysMu.Lock()
	defer c.keysMu.Unlock()
	old := c.keys.Load()
	n := 0
	if old != nil {
		n = len(*old)
	}
	if n >= maxCachedKeys {
		return ki
	}
	m := make(map[string]keyInfo, n+1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	m[strings.Clone(name)] = ki
	c.keys.Store(&m)
	return ki
}

func compile(p Policy, keys *pseudonym.Keyring, projectID int64) (*compiled, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &compiled{policy: p, rules: make(map[string]propRule), geo: p.Geo != GeoOff}
	set := func(names []string, r propRule) {
		for _, n := range names {
			n = strings.ToLower(strings.TrimSpace(n))
			if _, dup := c.rules[n]; !dup {
				c.rules[n] = r
			}
		}
	}
	// Order decides conflicts: a group key wins over everything, then
	// identifiers, then the drop list, then URL handling.
	for _, g := range p.GroupKeys {
		set([]string{g}, propRule{kind: kindGroup, field: pseudonym.GroupField(strings.TrimSpace(g))})
	}
	// Distinct-id properties are identities whatever the policy lists.
	for n := range distinctIDAliases {
		set([]string{n}, propRule{kind: kindIdentifier, field: pseudonym.FieldDistinctID})
	}
	for _, n := range p.Identifiers {
		l := strings.ToLower(strings.TrimSpace(n))
		f := pseudonym.PropertyField(l)
		if distinctIDAliases[l] {
			f = pseudonym.FieldDistinctID
		}
		set([]string{l}, propRule{kind: kindIdentifier, field: f})
	}
	set(p.Drop, propRule{kind: kindDrop})
	set(p.ReferrerProperties, propRule{kind: kindReferrer})
	set(p.URLProperties, propRule{kind: kindURL})
	for _, cl := range pii.Classes() {
		a, ok := p.Classes[cl.String()]
		if !ok {
			return nil, fmt.Errorf("classes: no action for %q", cl)
		}
		c.actions[cl] = a
	}
	c.urlOpts.AllowParams = p.AllowParams
	if c.urlOpts.AllowParams == nil {
		c.urlOpts.AllowParams = []string{}
	}
	if p.Contract != nil {
		c.events = make(map[string]map[string]string, len(p.Contract.Events))
		for name, ev := range p.Contract.Events {
			props := ev.Properties
			if props == nil {
				props = map[string]string{}
			}
			c.events[name] = props
		}
		c.common = p.Contract.Common
	}
	if keys != nil {
		c.pseudo = keys.Project(projectID, p.Epoch)
	}
	return c, nil
}

// rule returns the rule for a property name, compared case-insensitively
// without allocating for names of up to 64 bytes.
func (c *compiled) rule(name string) propRule {
	if r, ok := c.rules[name]; ok {
		return r
	}
	var buf [64]byte
	if len(name) > len(buf) {
		return c.rules[strings.ToLower(name)]
	}
	b := buf[:len(name)]
	changed := false
	for i := 0; i < len(name); i++ {
		ch := name[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
			changed = true
		}
		b[i] = ch
	}
	if !changed {
		return propRule{}
	}
	return c.rules[string(b)]
}

// contractType returns the declared type of prop on event name, and
// whether it is declared at all.
func (c *compiled) contractType(props map[string]string, prop string) (string, bool) {
	if t, ok := props[prop]; ok {
		return t, true
	}
	t, ok := c.common[prop]
	return t, ok
}

// IdentityField returns the pseudonym domain in which the stage stores the
// values of a property under p, and false when the property is not an
// identity. A group key wins, then the distinct-id properties, then the
// policy's identifiers, as in the stage.
func (p *Policy) IdentityField(property string) (pseudonym.Field, bool) {
	l := strings.ToLower(strings.TrimSpace(property))
	for _, g := range p.GroupKeys {
		if strings.ToLower(strings.TrimSpace(g)) == l {
			return pseudonym.GroupField(strings.TrimSpace(g)), true
		}
	}
	if distinctIDAliases[l] {
		return pseudonym.FieldDistinctID, true
	}
	for _, n := range p.Identifiers {
		if strings.ToLower(strings.TrimSpace(n)) == l {
			return pseudonym.PropertyField(l), true
		}
	}
	return "", false
}

// PIIField is the pseudonym domain of a value the PII scan pseudonymises:
// e-mail addresses share the e-mail field wherever they were found.
func PIIField(c pii.Class) pseudonym.Field {
	if c == pii.Email {
		return pseudonym.FieldEmail
	}
	return pseudonym.Field("pii:" + c.String())
}
