package privacy

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/pii"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
	"github.com/veil-analytics/veil/internal/privacy/urlclean"
	"github.com/veil-analytics/veil/internal/privacy/useragent"
)

// maxDepth is how deep the stage follows nested values; the decoder bounds
// nesting already, this keeps the walk's own recursion bounded too.
const maxDepth = 64

// proc is the per-item working state of the stage, pooled.
type proc struct {
	s       *Stage
	c       *compiled
	req     *Request
	explain bool

	changes   []change
	matches   []pii.Match
	top       string // top-level property being processed (counting)
	path      []byte // full path (Explain only)
	dropEvent bool
	key       string     // innermost property name, for version context
	ip        netip.Addr // from an "ip" property, for geolocation
	buf       []byte
}

func (p *proc) reset() {
	p.c, p.req = nil, nil
	p.changes = p.changes[:0]
	p.matches = p.matches[:0]
	p.top, p.path = "", p.path[:0]
	p.dropEvent = false
	p.ip = netip.Addr{}
	p.key = ""
	if cap(p.changes) > 256 {
		p.changes = nil
	}
}

// change is a Change as recorded on the hot path.
type change struct {
	prop string
	r    reasonID
}

func (p *proc) record(r reasonID) {
	prop := p.top
	if p.explain {
		prop = string(p.path)
	}
	p.changes = append(p.changes, change{prop, r})
}

// event applies the policy to e and reports whether to keep it.
func (p *proc) event(e *event.Event) bool {
	c := p.c
	// The name: scanned like any string; it cannot be dropped alone.
	p.enter("$event")
	if name, keep := p.name(e.Name); !keep {
		return false
	} else {
		e.Name = name
	}
	var declared map[string]string
	if c.events != nil {
		var ok bool
		if declared, ok = c.events[e.Name]; !ok {
			p.record(rUndeclaredEvent)
			return false
		}
	}
	if e.DistinctID != "" {
		p.enter("distinct_id")
		e.DistinctID = p.pseudonym(pseudonym.FieldDistinctID, e.DistinctID)
		p.record(rPseudonymized)
	}
	if e.InsertID != "" {
		// Usually random; when a client builds it from personal data it
		// becomes a pseudonym, which keeps deduplication working.
		p.matches = p.s.scanner.AppendFind(p.matches[:0], e.InsertID)
		if len(p.matches) > 0 {
			p.enter("$insert_id")
			e.InsertID = c.pseudo.Pseudonym("insert_id", e.InsertID)
			p.record(rPseudonymized)
		}
	}
	e.Props = p.props(e.Props, declared, c.events != nil)
	if p.dropEvent {
		return false
	}
	if p.req != nil && p.req.UserAgent != "" {
		info := p.s.userAgent(p.req)
		if info.Bot {
			if c.policy.DropBots {
				p.enter("$bot")
				p.record(rBot)
				return false
			}
			e.Props = setProp(e.Props, "$bot", event.BoolValue(true))
		} else if info.Browser != useragent.OtherBrowser {
			e.Props = addMissing(e.Props, "$browser", event.StringValue(info.Browser))
			if v, err := strconv.ParseFloat(info.BrowserMajor, 64); err == nil {
				e.Props = addMissing(e.Props, "$browser_version", event.NumberValue(v))
			}
			e.Props = addMissing(e.Props, "$os", event.StringValue(info.OS))
		}
	}
	e.Props = p.geolocate(e.Props)
	return true
}

// name returns an event name with personal data redacted, or false when
// the policy drops events holding such data.
func (p *proc) name(s string) (string, bool) {
	m := p.s.scanner.AppendFind(p.matches[:0], s)
	p.matches = m
	if len(m) == 0 {
		return s, true
	}
	for _, x := range m {
		if p.c.actions[x.Class] == DropEvent {
			p.record(piiReasons[x.Class][DropEvent])
			return "", false
		}
	}
	out, classes := p.s.scanner.Redact(s)
	for _, cl := range classes {
		p.record(piiReasons[cl][Redact])
	}
	return out, true
}

// geolocate replaces IP-derived properties with the location of the
// event's "ip" property or, unless the client opted out, the request's
// address. The address itself is never stored.
func (p *proc) geolocate(props []event.Field) []event.Field {
	if !p.c.geo || p.s.geo == nil {
		return props
	}
	addr, fromReq := p.ip, false
	if !addr.IsValid() {
		if p.req == nil || !p.req.Geolocate || !p.req.IP.IsValid() {
			return props
		}
		addr, fromReq = p.req.IP, true
	}
	level := geoLevel(p.c.policy.Geo)
	var loc geo.Location
	var ok bool
	if fromReq {
		loc, ok = p.s.locate(p.req, addr, true, level)
	} else {
		loc, ok = p.s.geo.Lookup(addr, level)
	}
	if !ok || loc.CountryCode == "" {
		return props
	}
	props = setProp(props, "mp_country_code", event.StringValue(loc.CountryCode))
	if loc.Region != "" {
		props = setProp(props, "$region", event.StringValue(loc.Region))
	}
	if loc.City != "" {
		props = setProp(props, "$city", event.StringValue(loc.City))
	}
	return props
}

// pseudonym returns the pseudonym of value in field, remembering the last
// few per request: the events of one batch carry the same ids.
func (p *proc) pseudonym(field pseudonym.Field, value string) string {
	if p.req == nil || p.req.cache == nil {
		return p.c.pseudo.Pseudonym(field, value)
	}
	r := p.req.cache
	for i := range r.memo {
		m := &r.memo[i]
		if m.c == p.c && m.value == value && m.field == field {
			return m.out
		}
	}
	out := p.c.pseudo.Pseudonym(field, value)
	r.memo[r.memoNext] = memoEntry{c: p.c, field: field, value: value, out: out}
	r.memoNext = (r.memoNext + 1) % memoSize
	return out
}

// enter sets the property being processed at the top level.
func (p *proc) enter(name string) {
	p.top = name
	if p.explain {
		p.path = append(p.path[:0], name...)
	}
}

// props applies the policy to top-level properties, in place. declared is
// the contract's property list when enforce is set.
func (p *proc) props(fields []event.Field, declared map[string]string, enforce bool) []event.Field {
	c := p.c
	out := fields[:0]
	for i := range fields {
		f := fields[i]
		p.enter(f.Key)
		p.key = f.Key
		// The events of a batch carry the same properties in the same
		// order, mostly with the same values: reuse what the previous
		// event's property at this position came to.
		var prev *prevProp
		if p.req != nil && p.req.cache != nil && !p.explain && i < len(p.req.cache.prev) {
			prev = &p.req.cache.prev[i]
			if prev.c != c || prev.key != f.Key {
				*prev = prevProp{c: c, key: f.Key, ki: c.key(p.s.scanner, p.matches, f.Key), reasons: prev.reasons[:0]}
			}
		}
		var ki keyInfo
		if prev != nil {
			ki = prev.ki
		} else {
			ki = c.key(p.s.scanner, p.matches, f.Key)
		}
		if ki.pii {
			p.keyHasPII(f.Key, true)
			continue
		}
		r := ki.rule
		if r.kind == kindDrop {
			if f.Value.Kind == event.String && (equalFoldASCII(f.Key, "ip") || equalFoldASCII(f.Key, "$ip")) {
				if a, err := netip.ParseAddr(strings.TrimSpace(f.Value.Str)); err == nil {
					p.ip = a.Unmap()
					p.record(rGeo)
					continue
				}
			}
			p.record(rPersonalField)
			continue
		}
		if enforce && f.Value.Kind != event.Null {
			typ, ok := c.contractType(declared, f.Key)
			if !ok {
				p.record(rUndeclaredProperty)
				continue
			}
			if typ != "any" && typ != f.Value.Kind.String() {
				p.record(rWrongType)
				continue
			}
		}
		switch r.kind {
		case kindIdentifier, kindGroup:
			if !p.identity(&f.Value, r.field, 0) {
				continue
			}
		default:
			if prev != nil && f.Value.Kind == event.String {
				if prev.hasValue && prev.in == f.Value.Str {
					for _, id := range prev.reasons {
						p.record(id)
					}
					if !prev.keep {
						continue
					}
					f.Value.Str = prev.out
					break
				}
				in, start := f.Value.Str, len(p.changes)
				keep := p.value(&f.Value, r.kind, 0)
				if !p.dropEvent {
					prev.hasValue, prev.in, prev.out, prev.keep = true, in, f.Value.Str, keep
					prev.reasons = prev.reasons[:0]
					for _, ch := range p.changes[start:] {
						prev.reasons = append(prev.reasons, ch.r)
					}
				}
				if !keep {
					continue
				}
				break
			}
			if !p.value(&f.Value, r.kind, 0) {
				continue
			}
		}
		out = append(out, f)
		if p.dropEvent {
			return out
		}
	}
	// Clear the tail so dropped values do not stay reachable.
	for i := len(out); i < len(fields); i++ {
		fields[i] = event.Field{}
	}
	return out
}

// keyHasPII reports (and records) a property name holding personal data;
// such a property is dropped whatever the policy, since a name cannot be
// redacted without losing what it means.
func (p *proc) keyHasPII(key string, top bool) bool {
	if len(key) < 3 {
		return false
	}
	p.matches = p.s.scanner.AppendFind(p.matches[:0], key)
	if len(p.matches) == 0 {
		return false
	}
	// The name itself must not be counted or explained.
	red, _ := p.s.scanner.Redact(key)
	if top {
		p.top = red
	}
	if p.explain {
		p.path = append(p.path[:len(p.path)-len(key)], red...)
	}
	for _, x := range p.matches {
		if p.c.actions[x.Class] == DropEvent {
			p.dropEvent = true
			p.record(piiReasons[x.Class][DropEvent])
			return true
		}
	}
	p.record(rPIIInKey)
	return true
}

// identity pseudonymises an identifier value: strings and numbers become
// pseudonyms, arrays element by element; objects are dropped. It returns
// false when the value must be dropped.
func (p *proc) identity(v *event.Value, field pseudonym.Field, depth int) bool {
	switch v.Kind {
	case event.String:
		if v.Str == "" {
			return true
		}
		v.Str = p.pseudonym(field, v.Str)
	case event.Number:
		p.buf = event.AppendNumber(p.buf[:0], v.Num)
		*v = event.StringValue(p.pseudonym(field, string(p.buf)))
	case event.Array:
		if depth >= maxDepth {
			p.record(rTooDeep)
			return false
		}
		for i := range v.Items {
			if !p.identity(&v.Items[i], field, depth+1) {
				v.Items[i] = event.Value{}
			}
		}
		return true
	case event.Object:
		p.record(rNotScalarIdentifier)
		return false
	default:
		return true
	}
	p.record(rPseudonymized)
	return true
}

// value applies URL cleaning and the PII scan to v and everything inside
// it. It returns false when v must be dropped.
func (p *proc) value(v *event.Value, kind propKind, depth int) bool {
	switch v.Kind {
	case event.String:
		return p.str(v, kind)
	case event.Number:
		return p.number(v)
	case event.Array:
		if depth >= maxDepth {
			p.record(rTooDeep)
			return false
		}
		items := v.Items[:0]
		n := len(p.path)
		for i := range v.Items {
			if p.explain {
				p.path = append(strconv.AppendInt(append(p.path[:n], '['), int64(i), 10), ']')
			}
			if p.value(&v.Items[i], kind, depth+1) {
				items = append(items, v.Items[i])
			}
			if p.dropEvent {
				break
			}
		}
		p.path = p.path[:n]
		v.Items = items
	case event.Object:
		if depth >= maxDepth {
			p.record(rTooDeep)
			return false
		}
		fields := v.Fields[:0]
		n := len(p.path)
		for i := range v.Fields {
			f := v.Fields[i]
			if p.explain {
				p.path = append(append(p.path[:n], '.'), f.Key...)
			}
			if p.c.key(p.s.scanner, p.matches, f.Key).pii {
				p.keyHasPII(f.Key, false)
				continue
			}
			outer := p.key
			p.key = f.Key
			if p.value(&f.Value, kindPlain, depth+1) {
				fields = append(fields, f)
			}
			p.key = outer
			if p.dropEvent {
				break
			}
		}
		p.path = p.path[:n]
		v.Fields = fields
	}
	return !p.dropEvent
}

// str cleans one string value in place; false drops it.
func (p *proc) str(v *event.Value, kind propKind) bool {
	// URLs repeat across the events of a batch (the page, the referrers)
	// and cleaning them is the stage's dearest step: replay the outcome.
	urlish := kind == kindReferrer || kind == kindURL || urlclean.LooksLikeURL(v.Str)
	if !urlish || p.req == nil || p.req.cache == nil || p.explain || namesVersion(p.key) || namesVersion(p.top) {
		return p.strSlow(v, kind)
	}
	r := p.req.cache
	for i := range r.urls {
		m := &r.urls[i]
		if m.c == p.c && m.kind == kind && m.in == v.Str {
			for _, id := range m.reasons {
				p.record(id)
			}
			if m.dropEvent {
				p.dropEvent = true
			}
			if m.keep {
				v.Str = m.out
			}
			return m.keep
		}
	}
	in, start, dropEvent := v.Str, len(p.changes), p.dropEvent
	keep := p.strSlow(v, kind)
	m := &r.urls[r.urlNext]
	r.urlNext = (r.urlNext + 1) % len(r.urls)
	*m = urlMemo{c: p.c, kind: kind, in: in, out: v.Str, keep: keep, dropEvent: p.dropEvent && !dropEvent, reasons: m.reasons[:0]}
	for _, ch := range p.changes[start:] {
		m.reasons = append(m.reasons, ch.r)
	}
	return keep
}

func (p *proc) strSlow(v *event.Value, kind propKind) bool {
	s := v.Str
	switch {
	case kind == kindReferrer:
		out, ch := urlclean.Referrer(s)
		p.urlChanges(ch)
		s = out
	case kind == kindURL || urlclean.LooksLikeURL(s):
		out, ch := urlclean.Clean(s, &p.c.urlOpts)
		p.urlChanges(ch)
		s = out
	case looksLikeUserAgent(s):
		info := p.s.ua.Parse(s)
		s = info.Browser
		if info.BrowserMajor != "" {
			s += " " + info.BrowserMajor
		}
		s += " (" + info.OS + ", " + info.Device + ")"
		p.record(rUserAgent)
	}
	m := p.s.scanner.AppendFind(p.matches[:0], s)
	if hasIPv4(m) && (namesVersion(p.key) || namesVersion(p.top)) {
		m = slices.DeleteFunc(m, func(x pii.Match) bool { return x.Class == pii.IPv4 })
	}
	p.matches = m
	if len(m) == 0 {
		v.Str = s
		return true
	}
	worst := Redact
	for _, x := range m {
		switch a := p.c.actions[x.Class]; {
		case a == DropEvent:
			p.record(piiReasons[x.Class][DropEvent])
			p.dropEvent = true
			return false
		case a == DropProperty:
			worst = DropProperty
		}
	}
	if worst == DropProperty {
		for _, x := range m {
			if p.c.actions[x.Class] == DropProperty {
				p.record(piiReasons[x.Class][DropProperty])
			}
		}
		return false
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, x := range m {
		b.WriteString(s[last:x.Start])
		a := p.c.actions[x.Class]
		if a == Pseudonymize {
			b.WriteString(p.c.pseudo.Pseudonym(PIIField(x.Class), s[x.Start:x.End]))
		} else {
			b.WriteString(x.Class.Placeholder())
		}
		p.record(piiReasons[x.Class][a])
		last = x.End
	}
	b.WriteString(s[last:])
	out := b.String()
	// A replacement can expose a new match next to it; placeholders end it.
	if len(p.s.scanner.AppendFind(p.matches[:0], out)) > 0 {
		out, _ = p.s.scanner.Redact(out)
	}
	v.Str = out
	return true
}

// number catches card numbers sent as JSON numbers: an integer of 13 or
// more digits is scanned in its decimal form, and a match makes the value
// a string (placeholder or pseudonym) or drops it, as for strings.
func (p *proc) number(v *event.Value) bool {
	if v.Num < 1e12 || v.Num > 9e18 || v.Num != float64(int64(v.Num)) {
		return true
	}
	p.buf = strconv.AppendInt(p.buf[:0], int64(v.Num), 10)
	if len(p.s.scanner.AppendFind(p.matches[:0], string(p.buf))) == 0 {
		return true
	}
	*v = event.StringValue(string(p.buf))
	return p.str(v, kindPlain)
}

func (p *proc) urlChanges(ch urlclean.Change) {
	for i := 0; ch != 0; i++ {
		if ch&1 != 0 {
			p.record(urlReasons[i])
		}
		ch >>= 1
	}
}

// namesVersion reports whether a property name says its value is a
// version ("app_version", "$os_version", "build"), where "1.2.3.4" is not
// an IP address.
func namesVersion(key string) bool {
	if len(key) > 64 {
		return false
	}
	var buf [64]byte
	b := buf[:len(key)]
	for i := 0; i < len(key); i++ {
		b[i] = lower(key[i])
	}
	return bytes.Contains(b, []byte("version")) || bytes.HasSuffix(b, []byte("build")) || bytes.HasSuffix(b, []byte("release"))
}

func hasIPv4(m []pii.Match) bool {
	for _, x := range m {
		if x.Class == pii.IPv4 {
			return true
		}
	}
	return false
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// looksLikeUserAgent reports whether s is a raw browser user agent.
func looksLikeUserAgent(s string) bool {
	return len(s) > 20 && strings.HasPrefix(s, "Mozilla/") && strings.Contains(s, "(")
}

func equalFoldASCII(a, b string) bool { return len(a) == len(b) && strings.EqualFold(a, b) }

// setProp sets key to v, replacing an existing top-level value.
func setProp(props []event.Field, key string, v event.Value) []event.Field {
	for i := range props {
		if props[i].Key == key {
			props[i].Value = v
			return props
		}
	}
	return append(props, event.Field{Key: key, Value: v})
}

// addMissing adds key = v unless the event has key already.
func addMissing(props []event.Field, key string, v event.Value) []event.Field {
	for i := range props {
		if props[i].Key == key {
			return props
		}
	}
	return append(props, event.Field{Key: key, Value: v})
}

// profile applies the policy to a user or group profile update.
func (p *proc) profile(u *event.ProfileUpdate) bool {
	c := p.c
	if u.IsGroup() {
		p.enter("$group_key")
		if p.keyHasPII(u.GroupKey, true) {
			return false
		}
		p.enter("$group_id")
		u.GroupID = c.pseudo.Pseudonym(pseudonym.GroupField(u.GroupKey), u.GroupID)
		p.record(rPseudonymized)
	} else if u.DistinctID != "" {
		p.enter("distinct_id")
		u.DistinctID = p.pseudonym(pseudonym.FieldDistinctID, u.DistinctID)
		p.record(rPseudonymized)
	}
	ops := u.Ops[:0]
	for _, op := range u.Ops {
		switch {
		case op.Value.Kind == event.Object:
			op.Value.Fields = p.props(op.Value.Fields, nil, false)
		case op.Op == "$unset" && op.Value.Kind == event.Array:
			items := op.Value.Items[:0]
			for _, it := range op.Value.Items {
				if it.Kind == event.String {
					p.enter(it.Str)
					if p.keyHasPII(it.Str, true) {
						continue
					}
				}
				items = append(items, it)
			}
			op.Value.Items = items
		default:
			p.enter(op.Op)
			p.value(&op.Value, kindPlain, 0)
		}
		if p.dropEvent {
			return false
		}
		ops = append(ops, op)
	}
	u.Ops = ops
	return true
}
