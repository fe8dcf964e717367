package wire

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/event"
)

// Item is one element of a payload.
type Item struct {
	Value event.Value
	Size  int // bytes of this element's JSON text in the data (for the per-event size limit)
	Line  int // 1-based line of the data where the element starts
}

// ParseOptions tune ParseItems. The zero value is usable.
type ParseOptions struct {
	MaxItems int  // more items than this is an error; 0 means no limit
	MaxDepth int  // deepest nesting of arrays and objects; 0 means DefaultMaxDepth
	NDJSON   bool // also accept one JSON value per line (the /import NDJSON body)
	// MaxMembers bounds the members of any one array or object inside an
	// item, and MaxValues the JSON values of the whole payload; 0 means no
	// limit. Each decoded value costs about 80 bytes, so a 10 MB body of
	// "[0,0,0,…" would otherwise cost over a gigabyte before any check.
	MaxMembers int
	MaxValues  int
}

// DefaultMaxDepth is the nesting limit when ParseOptions.MaxDepth is 0. A
// browser event nests 3 deep (batch, event, properties).
const DefaultMaxDepth = 32

var errEmpty = errors.New("empty payload")

// TooManyItemsError is returned when a payload has more than MaxItems items.
type TooManyItemsError struct{ Max int }

func (e *TooManyItemsError) Error() string {
	return fmt.Sprintf("batch has more than %d records", e.Max)
}

// ParseItems parses JSON data into items: a single value gives one item, a
// top-level array one item per element (of any JSON type: callers check
// that items are objects), and with opts.NDJSON several newline-separated
// values give one item each (blank lines are skipped). An empty array gives
// no items and no error; input with nothing but whitespace is an error.
//
// Parsing follows RFC 8259 and matches encoding/json: invalid UTF-8 and lone
// surrogate escapes become U+FFFD, and of duplicate object keys the last
// value wins, at the position of the first. Numbers beyond float64 range,
// nesting deeper than opts.MaxDepth and syntax errors are errors naming the
// line and column (in bytes, 1-based).
//
// The strings of the returned values share one copy of data, which stays
// in memory as long as any of them does.
func ParseItems(data []byte, opts ParseOptions) ([]Item, error) {
	p := parser{s: string(data), maxDepth: opts.MaxDepth, levels: make([]level, 0, 8),
		maxMembers: opts.MaxMembers, valuesLeft: opts.MaxValues, limitValues: opts.MaxValues > 0}
	if p.maxDepth <= 0 {
		p.maxDepth = DefaultMaxDepth
	}
	p.skipWS()
	if p.pos == len(p.s) {
		return nil, errEmpty
	}
	lines := lineCounter{s: p.s, line: 1}
	var items []Item
	first := p.pos
	if p.s[p.pos] == '[' {
		var err error
		if items, err = p.topArray(opts.MaxItems, &lines); err != nil {
			return nil, err
		}
	} else {
		items = make([]Item, 1, 2)
		if err := p.value(&items[0].Value); err != nil {
			return nil, err
		}
		items[0].Size, items[0].Line = p.pos-first, lines.at(first)
	}
	end := p.pos
	p.skipWS()
	if p.pos == len(p.s) {
		return items, nil
	}
	if !opts.NDJSON {
		return nil, p.errAt(p.pos, describe(p.s, p.pos)+" after the top-level value")
	}
	if len(items) == 1 {
		// Many lines follow: size the slice once (newline counting is
		// vectorised) instead of growing it line by line.
		n := strings.Count(p.s[p.pos:], "\n") + 2
		if opts.MaxItems > 0 {
			n = min(n, opts.MaxItems)
		}
		items = append(make([]Item, 0, n), items...)
	}

	// NDJSON: a first line holding an array is one item like any other line.
	if p.s[first] == '[' {
		vals := make([]event.Value, len(items))
		for i := range items {
			vals[i] = items[i].Value
		}
		if len(vals) == 0 {
			vals = nil
		}
		items = []Item{{Value: event.Value{Kind: event.Array, Items: vals}, Size: end - first, Line: 1 + strings.Count(p.s[:first], "\n")}}
		lines = lineCounter{s: p.s, pos: first, line: items[0].Line}
	}
	for p.pos < len(p.s) {
		if strings.IndexByte(p.s[end:p.pos], '\n') < 0 {
			return nil, p.errAt(p.pos, describe(p.s, p.pos)+" after a value; NDJSON needs one value per line")
		}
		if opts.MaxItems > 0 && len(items) >= opts.MaxItems {
			return nil, &TooManyItemsError{Max: opts.MaxItems}
		}
		start := p.pos
		items = append(items, Item{})
		it := &items[len(items)-1]
		if err := p.value(&it.Value); err != nil {
			return nil, err
		}
		it.Size, it.Line = p.pos-start, lines.at(start)
		end = p.pos
		p.skipWS()
	}
	return items, nil
}

// lineCounter turns increasing offsets into line numbers, counting each
// newline once.
type lineCounter struct {
	s    string
	pos  int
	line int
}

func (l *lineCounter) at(pos int) int {
	l.line += strings.Count(l.s[l.pos:pos], "\n")
	l.pos = pos
	return l.line
}

// parser is a recursive-descent JSON parser over one string. Strings
// without escapes are returned as substrings of s.
//
// Fields and array elements are written straight into their final place:
// at any moment at most one object and one array are open at each depth,
// so each depth has a chunk into which its current container appends. A
// finished container keeps its part of the chunk (capacity clipped, so a
// caller's append copies) and the next one at that depth continues after
// it. A batch thus costs a few allocations rather than one per object, and
// no field is copied from a stack into place.
type parser struct {
	s           string
	pos         int
	depth       int
	maxDepth    int
	maxMembers  int
	valuesLeft  int // counts down; only checked when the limit is set
	limitValues bool
	levels      []level // indexed by depth
	buf         []byte  // scratch for unescaping strings
}

// level holds the chunks of one nesting depth.
type level struct {
	fields []event.Field // used part of the current field chunk
	values []event.Value // used part of the current element chunk
}

// Chunk sizes grow from chunkMin to chunkMax entries (24 KB of fields, below
// the runtime's large-object size) as a depth fills them.
const (
	chunkMin = 16
	chunkMax = 256
)

func (p *parser) skipWS() {
	s := p.s
	i := p.pos
	for i < len(s) {
		c := s[i]
		if c > ' ' || (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
			break
		}
		i++
	}
	p.pos = i
}

// topArray parses a top-level array into one item per element.
func (p *parser) topArray(maxItems int, lines *lineCounter) ([]Item, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	p.pos++ // '['
	p.skipWS()
	if p.pos < len(p.s) && p.s[p.pos] == ']' {
		p.pos++
		p.depth--
		return []Item{}, nil
	}
	items := make([]Item, 0, 16)
	for {
		if maxItems > 0 && len(items) >= maxItems {
			return nil, &TooManyItemsError{Max: maxItems}
		}
		start := p.pos
		items = append(items, Item{})
		it := &items[len(items)-1]
		if err := p.value(&it.Value); err != nil {
			return nil, err
		}
		it.Size, it.Line = p.pos-start, lines.at(start)
		p.skipWS()
		if p.pos >= len(p.s) {
			return nil, p.errAt(p.pos, "unexpected end of input, expected ',' or ']'")
		}
		switch p.s[p.pos] {
		case ',':
			p.pos++
			p.skipWS()
			continue
		case ']':
			p.pos++
			p.depth--
			return items, nil
		}
		return nil, p.errAt(p.pos, describe(p.s, p.pos)+", expected ',' or ']'")
	}
}

// enter accounts for one more level of nesting at p.pos.
func (p *parser) enter() error {
	p.depth++
	if p.depth > p.maxDepth {
		line, col := position(p.s, p.pos)
		return fmt.Errorf("JSON nesting deeper than %d levels at line %d, column %d", p.maxDepth, line, col)
	}
	for len(p.levels) <= p.depth {
		p.levels = append(p.levels, level{})
	}
	return nil
}

// value parses the value at p.pos into *dst, which must be zero; whitespace
// before it is already skipped. Parsing in place, rather than returning a
// Value, saves copying it and its write barriers.
func (p *parser) value(dst *event.Value) error {
	s := p.s
	if p.limitValues {
		if p.valuesLeft <= 0 {
			return p.errAt(p.pos, "payload has too many JSON values")
		}
		p.valuesLeft--
	}
	if p.pos >= len(s) {
		return p.errAt(p.pos, "unexpected end of input, expected a value")
	}
	switch c := s[p.pos]; c {
	case '"':
		str, err := p.str()
		dst.Kind, dst.Str = event.String, str
		return err
	case '{':
		return p.object(dst)
	case '[':
		return p.array(dst)
	case 't':
		if strings.HasPrefix(s[p.pos:], "true") {
			p.pos += 4
			dst.Kind, dst.Bool = event.Bool, true
			return nil
		}
		return p.errAt(p.pos, "invalid literal, expected true")
	case 'f':
		if strings.HasPrefix(s[p.pos:], "false") {
			p.pos += 5
			dst.Kind = event.Bool
			return nil
		}
		return p.errAt(p.pos, "invalid literal, expected false")
	case 'n':
		if strings.HasPrefix(s[p.pos:], "null") {
			p.pos += 4
			return nil
		}
		return p.errAt(p.pos, "invalid literal, expected null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			f, err := p.number()
			dst.Kind, dst.Num = event.Number, f
			return err
		}
		return p.errAt(p.pos, describe(s, p.pos)+", expected a value")
	}
}

func (p *parser) object(dst *event.Value) error {
	if err := p.enter(); err != nil {
		return err
	}
	s := p.s
	p.pos++ // '{'
	p.skipWS()
	dst.Kind = event.Object
	if p.pos < len(s) && s[p.pos] == '}' {
		p.pos++
		p.depth--
		return nil
	}
	d := p.depth
	start := len(p.levels[d].fields)
	// A 128-bit Bloom filter of the keys so far: duplicate keys are rare, so
	// the quadratic search for one only runs when a key's bit is already set.
	var seen [2]uint64
	members := 0
	for {
		if members++; p.maxMembers > 0 && members > p.maxMembers {
			return p.errAt(p.pos, fmt.Sprintf("JSON object has more than %d members", p.maxMembers))
		}
		if p.pos >= len(s) || s[p.pos] != '"' {
			return p.errAt(p.pos, describe(s, p.pos)+", expected '\"' to start an object key")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		p.skipWS()
		if p.pos >= len(s) || s[p.pos] != ':' {
			return p.errAt(p.pos, describe(s, p.pos)+", expected ':' after an object key")
		}
		p.pos++
		p.skipWS()

		// Parse into a new slot at the end of this depth's chunk. Nested
		// containers use deeper levels, so the slot stays put meanwhile.
		fs := p.levels[d].fields
		if len(fs) == cap(fs) {
			fs = growChunk(fs, start)
			start = 0
		}
		fs = fs[:len(fs)+1]
		p.levels[d].fields = fs
		f := &fs[len(fs)-1]
		f.Key = key
		if err := p.value(&f.Value); err != nil {
			return err
		}
		h := keyHash(key)
		if seen[h>>6]&(1<<(h&63)) != 0 && replaceDup(fs[start:len(fs)-1], key, f.Value) {
			*f = event.Field{} // the slot will be reused, and must be zero
			p.levels[d].fields = fs[:len(fs)-1]
		}
		seen[h>>6] |= 1 << (h & 63)

		p.skipWS()
		if p.pos < len(s) {
			if c := s[p.pos]; c == ',' {
				p.pos++
				p.skipWS()
				continue
			} else if c == '}' {
				p.pos++
				break
			}
		}
		return p.errAt(p.pos, describe(s, p.pos)+", expected ',' or '}'")
	}
	fs := p.levels[d].fields
	dst.Fields = fs[start:len(fs):len(fs)]
	p.depth--
	return nil
}

// growChunk starts a new chunk for a container whose entries so far are
// chunk[start:], moving them over. The old chunk stays with the finished
// containers that use it.
func growChunk[T any](chunk []T, start int) []T {
	n := len(chunk) - start
	size := min(max(2*cap(chunk), chunkMin), chunkMax)
	size = max(size, 2*n)
	next := make([]T, n, size)
	copy(next, chunk[start:])
	return next
}

// keyHash picks the Bloom filter bit of an object key.
func keyHash(k string) uint {
	h := uint(len(k))
	if len(k) > 0 {
		h = h*31 + uint(k[0])
		h = h*31 + uint(k[len(k)-1])
		h = h*31 + uint(k[len(k)/2])
	}
	return h & 127
}

// replaceDup gives the value v to the field named key in fs, if there is
// one, and reports whether there was.
func replaceDup(fs []event.Field, key string, v event.Value) bool {
	for i := range fs {
		if fs[i].Key == key {
			fs[i].Value = v
			return true
		}
	}
	return false
}

func (p *parser) array(dst *event.Value) error {
	if err := p.enter(); err != nil {
		return err
	}
	s := p.s
	p.pos++ // '['
	p.skipWS()
	dst.Kind = event.Array
	if p.pos < len(s) && s[p.pos] == ']' {
		p.pos++
		p.depth--
		return nil
	}
	d := p.depth
	start := len(p.levels[d].values)
	members := 0
	for {
		if members++; p.maxMembers > 0 && members > p.maxMembers {
			return p.errAt(p.pos, fmt.Sprintf("JSON array has more than %d members", p.maxMembers))
		}
		vs := p.levels[d].values
		if len(vs) == cap(vs) {
			vs = growChunk(vs, start)
			start = 0
		}
		vs = vs[:len(vs)+1]
		p.levels[d].values = vs
		if err := p.value(&vs[len(vs)-1]); err != nil {
			return err
		}
		p.skipWS()
		if p.pos < len(s) {
			if c := s[p.pos]; c == ',' {
				p.pos++
				p.skipWS()
				continue
			} else if c == ']' {
				p.pos++
				break
			}
		}
		return p.errAt(p.pos, describe(s, p.pos)+", expected ',' or ']'")
	}
	vs := p.levels[d].values
	dst.Items = vs[start:len(vs):len(vs)]
	p.depth--
	return nil
}

// strPlain marks the bytes that stand for themselves inside a string:
// printable ASCII other than '"' and '\\'.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str parses the string at p.pos (its opening quote).
func (p *parser) str() (string, error) {
	s := p.s
	start := p.pos + 1
	i := start
	// Skip plain bytes 8 at a time, then one at a time.
	for i+8 <= len(s) {
		if m := specialBytes(load64(s, i)); m != 0 {
			i += bits.TrailingZeros64(m) >> 3
			goto special
		}
		i += 8
	}
	for i < len(s) && strPlain[s[i]] {
		i++
	}
special:
	if i < len(s) && s[i] == '"' {
		p.pos = i + 1
		return s[start:i], nil
	}
	return p.strSlow(start, i)
}

// load64 reads s[i:i+8] as a little-endian word (one load once compiled).
func load64(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// specialBytes sets the high bit of each byte of w that is not plain in a
// string ('"', '\\', a control character or a non-ASCII byte); the lowest
// one set marks the first such byte exactly (higher ones may be false
// positives from borrows). It is the classic "has zero byte" trick,
// (x - 0x01..) & ^x & 0x80.., applied to w^'"', w^'\\' and, for bytes below
// 0x20, to w - 0x20.. directly; non-ASCII bytes have their high bit set.
func specialBytes(w uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q := w ^ ones*'"'
	b := w ^ ones*'\\'
	return ((((w - ones*0x20) | (q - ones) | (b - ones)) &^ w) | w) & highs
}

// strSlow finishes a string whose bytes from start to i are plain ASCII and
// s[i] is not. It returns a substring of s while the text is valid UTF-8
// without escapes, and builds a new string otherwise.
func (p *parser) strSlow(start, i int) (string, error) {
	s := p.s
	for i < len(s) {
		c := s[i]
		if c == '"' {
			p.pos = i + 1
			return s[start:i], nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return "", p.ctrlErr(i)
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		i += size
	}
	buf := append(p.buf[:0], s[start:i]...)
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			p.pos = i + 1
			p.buf = buf
			return string(buf), nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", p.errAt(start-1, "unterminated string")
			}
			switch e := s[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := hex4(s, i+2)
				if r < 0 {
					return "", p.errAt(i, "invalid \\u escape in string, expected 4 hex digits")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					// A pair is a high surrogate escape followed by a low one;
					// anything else is U+FFFD (as in encoding/json).
					r2 := rune(-1)
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2 = hex4(s, i+2)
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return "", p.errAt(i, "invalid escape sequence in string")
			}
			i += 2
		case c < 0x20:
			return "", p.ctrlErr(i)
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				buf = append(buf, "\uFFFD"...)
			} else {
				buf = append(buf, s[i:i+size]...)
			}
			i += size
		}
	}
	return "", p.errAt(start-1, "unterminated string")
}

// hex4 decodes the 4 hex digits at s[i:], or returns -1.
func hex4(s string, i int) rune {
	if i+4 > len(s) {
		return -1
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		d := unhex(c)
		if d > 15 {
			return -1
		}
		r = r<<4 | rune(d)
	}
	return r
}

func (p *parser) ctrlErr(i int) error {
	return p.errAt(i, fmt.Sprintf("control character U+%04X in string (escape it)", p.s[i]))
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// number parses a number per the JSON grammar. Most numbers on the wire
// have at most 15 significant digits and a short fraction (1795376173.909);
// for those, one float64 division of two exact values is correctly rounded
// (Clinger's fast path), which saves strconv.ParseFloat's generality.
func (p *parser) number() (float64, error) {
	s := p.s
	start := p.pos
	i := start
	neg := false
	if s[i] == '-' {
		neg = true
		i++
	}
	var mant uint64
	digits := 0 // significant digits in mant
	switch {
	case i < len(s) && s[i] == '0':
		i++
		if i < len(s) && '0' <= s[i] && s[i] <= '9' {
			return 0, p.errAt(i, "invalid number: leading zero")
		}
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			mant = mant*10 + uint64(s[i]-'0')
			digits++
		}
	default:
		return 0, p.errAt(i, "invalid number: expected a digit")
	}
	frac := 0
	if i < len(s) && s[i] == '.' {
		i++
		fstart := i
		for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			mant = mant*10 + uint64(s[i]-'0')
			if mant != 0 {
				digits++
			}
		}
		if i == fstart {
			return 0, p.errAt(i, "invalid number: expected a digit after '.'")
		}
		frac = i - fstart
	}
	exp := false
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		exp = true
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		estart := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == estart {
			return 0, p.errAt(i, "invalid number: expected a digit in the exponent")
		}
	}
	p.pos = i
	if !exp && digits <= 15 && frac < len(pow10) {
		f := float64(mant)
		if frac > 0 {
			f /= pow10[frac]
		}
		if neg {
			f = -f
		}
		return f, nil
	}
	f, err := strconv.ParseFloat(s[start:i], 64)
	if err != nil {
		line, col := position(s, start)
		return 0, fmt.Errorf("number out of range at line %d, column %d", line, col)
	}
	return f, nil
}

// errAt is a syntax error at byte offset pos of the input.
func (p *parser) errAt(pos int, msg string) error {
	line, col := position(p.s, pos)
	return fmt.Errorf("invalid JSON at line %d, column %d: %s", line, col, msg)
}

// position converts a byte offset into a 1-based line and column.
func position(s string, pos int) (line, col int) {
	pos = min(pos, len(s))
	before := s[:pos]
	line = 1 + strings.Count(before, "\n")
	col = pos - strings.LastIndexByte(before, '\n')
	return line, col
}

// describe names the byte at s[pos] for an error message without quoting
// payload content: JSON punctuation is shown, letters, digits and other
// bytes are only classified.
func describe(s string, pos int) string {
	if pos >= len(s) {
		return "unexpected end of input"
	}
	switch c := s[pos]; {
	case c == '\'':
		return `unexpected "'"`
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		return "unexpected letter"
	case '0' <= c && c <= '9':
		return "unexpected digit"
	case c == ' ':
		return "unexpected space"
	case c > 0x20 && c < 0x7F:
		return "unexpected '" + string(rune(c)) + "'"
	case c < 0x20 || c == 0x7F:
		return fmt.Sprintf("unexpected control character U+%04X", c)
	default:
		return "unexpected non-ASCII character"
	}
}
