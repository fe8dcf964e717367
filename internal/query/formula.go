package query

import (
	"strconv"
)

// formula is a parsed Formula: + - * / over series letters, numbers and
// parentheses.
type formula struct {
	name string
	root *fnode
}

type fnode struct {
	op          byte // 'n'umber, 's'eries, or + - * / and 'u' (unary minus)
	num         float64
	series      int
	left, right *fnode
}

type fparser struct {
	src     string
	pos     int
	nSeries int
	ptr     string
}

func parseFormula(f Formula, nSeries int, ptr string) (*formula, error) {
	if f.Expression == "" {
		return nil, specErr(ptr+"/expression", "required (e.g. \"A / B\")")
	}
	if len(f.Expression) > 500 {
		return nil, specErr(ptr+"/expression", "longer than 500 characters")
	}
	p := &fparser{src: f.Expression, nSeries: nSeries, ptr: ptr + "/expression"}
	root, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.src) {
		return nil, specErr(p.ptr, "unexpected %q at character %d", p.src[p.pos], p.pos+1)
	}
	return &formula{name: f.Name, root: root}, nil
}

func (p *fparser) space() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

// expr parses sums (level 0) or products (level 1).
func (p *fparser) expr(level int) (*fnode, error) {
	if level == 2 {
		return p.unary()
	}
	left, err := p.expr(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		p.space()
		if p.pos >= len(p.src) {
			return left, nil
		}
		c := p.src[p.pos]
		if level == 0 && c != '+' && c != '-' || level == 1 && c != '*' && c != '/' {
			return left, nil
		}
		p.pos++
		right, err := p.expr(level + 1)
		if err != nil {
			return nil, err
		}
		left = &fnode{op: c, left: left, right: right}
	}
}

func (p *fparser) unary() (*fnode, error) {
	p.space()
	if p.pos >= len(p.src) {
		return nil, specErr(p.ptr, "ends where an operand is expected")
	}
	c := p.src[p.pos]
	switch {
	case c == '-':
		p.pos++
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &fnode{op: 'u', left: x}, nil
	case c == '(':
		p.pos++
		x, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		p.space()
		if p.pos >= len(p.src) || p.src[p.pos] != ')' {
			return nil, specErr(p.ptr, "missing ')' at character %d", p.pos+1)
		}
		p.pos++
		return x, nil
	case c >= 'A' && c <= 'Z':
		p.pos++
		i := int(c - 'A')
		if i >= p.nSeries {
			return nil, specErr(p.ptr, "series %c does not exist (there are %d)", c, p.nSeries)
		}
		return &fnode{op: 's', series: i}, nil
	case c >= '0' && c <= '9' || c == '.':
		start := p.pos
		for p.pos < len(p.src) && (p.src[p.pos] >= '0' && p.src[p.pos] <= '9' || p.src[p.pos] == '.') {
			p.pos++
		}
		f, err := strconv.ParseFloat(p.src[start:p.pos], 64)
		if err != nil {
			return nil, specErr(p.ptr, "%q is not a number", p.src[start:p.pos])
		}
		return &fnode{op: 'n', num: f}, nil
	}
	return nil, specErr(p.ptr, "unexpected %q at character %d (series letters, numbers, + - * / and parentheses)", c, p.pos+1)
}

// eval computes the formula; nil when an operand is missing or on a
// division by zero.
func (f *formula) eval(get func(series int) *float64) *float64 {
	v, ok := f.root.eval(get)
	if !ok {
		return nil
	}
	return &v
}

func (n *fnode) eval(get func(int) *float64) (float64, bool) {
	switch n.op {
	case 'n':
		return n.num, true
	case 's':
		v := get(n.series)
		if v == nil {
			return 0, false
		}
		return *v, true
	case 'u':
		x, ok := n.left.eval(get)
		return -x, ok
	}
	a, ok := n.left.eval(get)
	if !ok {
		return 0, false
	}
	b, ok := n.right.eval(get)
	if !ok {
		return 0, false
	}
	switch n.op {
	case '+':
		return a + b, true
	case '-':
		return a - b, true
	case '*':
		return a * b, true
	}
	if b == 0 {
		return 0, false
	}
	return a / b, true
}
