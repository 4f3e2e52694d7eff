package form

import (
	"regexp/syntax"
	"strconv"
	"strings"
)

// Bounds on the work a schema can make validation do. A schema is an
// agency's input that every citizen's form is then checked against, so
// its cost must be bounded before it is compiled (compiling checks the
// examples) and long before a citizen's request meets it.
const (
	// MaxExpandedNodes bounds the subschemas validation may visit with
	// every local $ref expanded: a few $defs that each refer twice to the
	// next fan out exponentially (2^n branches for n definitions).
	MaxExpandedNodes = 20000
	// MaxRefDepth bounds nested $ref expansion; recursive forms are refused.
	MaxRefDepth = 32
	// MaxPatternBytes and MaxPatternInsts bound each regular expression:
	// Go's regexp runs in linear time, but a pattern of bounded repeats
	// compiles to a program as large as its expansion.
	MaxPatternBytes = 1000
	MaxPatternInsts = 20000
)

// checkCost adds a problem when the schema's expanded size or one of its
// patterns is beyond the bounds above.
func checkCost(doc any, p *problems) {
	c := costWalker{root: doc, p: p}
	c.walk(doc, "", 0)
	if c.nodes > MaxExpandedNodes {
		p.add("", "complexity", "expands to more than "+strconv.Itoa(MaxExpandedNodes)+" subschemas through its references (complexity)",
			"Lược đồ quá phức tạp: các tham chiếu mở rộng thành quá nhiều lược đồ con.")
	}
	if c.deep {
		p.add("", "complexity", "nests references more than "+strconv.Itoa(MaxRefDepth)+" deep, or recursively (complexity)",
			"Lược đồ lồng tham chiếu quá sâu hoặc đệ quy.")
	}
}

type costWalker struct {
	root  any
	p     *problems
	nodes int
	deep  bool
}

func (c *costWalker) walk(v any, ptr string, refs int) {
	if c.nodes > MaxExpandedNodes || c.deep {
		return
	}
	switch t := v.(type) {
	case []any:
		for i, e := range t {
			c.walk(e, ptr+"/"+strconv.Itoa(i), refs)
		}
	case map[string]any:
		c.nodes++
		if pat, ok := t["pattern"].(string); ok && refs == 0 {
			c.pattern(pat, ptr+"/pattern")
		}
		if pp, ok := t["patternProperties"].(map[string]any); ok && refs == 0 {
			for k := range pp {
				c.pattern(k, ptr+"/patternProperties")
			}
		}
		for k, e := range t {
			if k == "examples" || k == "const" || k == "enum" || k == "default" || k == "x-title" {
				continue // values, not subschemas
			}
			c.walk(e, ptr+pointer(k), refs)
		}
		for _, kw := range []string{"$ref", "$dynamicRef"} {
			ref, ok := t[kw].(string)
			if !ok || !strings.HasPrefix(ref, "#") {
				continue
			}
			if refs >= MaxRefDepth {
				c.deep = true
				return
			}
			if target, ok := resolve(c.root, ref[1:]); ok {
				c.walk(target, ptr+pointer(kw), refs+1)
			}
		}
	}
}

// pattern checks one regular expression's size.
func (c *costWalker) pattern(pat, ptr string) {
	if len(pat) > MaxPatternBytes {
		c.p.add(ptr, "pattern", "is longer than "+strconv.Itoa(MaxPatternBytes)+" bytes (pattern)", "Biểu thức chính quy quá dài.")
		return
	}
	re, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		return // the compiler reports a pattern that does not parse
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil || len(prog.Inst) > MaxPatternInsts {
		c.p.add(ptr, "pattern", "compiles to too large a program; use fewer or smaller counted repeats (pattern)",
			"Biểu thức chính quy quá phức tạp.")
	}
}

// resolve follows a JSON Pointer fragment ("/$defs/a") from the root; an
// anchor or a pointer that leads nowhere resolves to nothing.
func resolve(root any, frag string) (any, bool) {
	if frag == "" {
		return root, true
	}
	if !strings.HasPrefix(frag, "/") {
		return nil, false
	}
	cur := root
	for _, tok := range strings.Split(frag[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch t := cur.(type) {
		case map[string]any:
			next, ok := t[tok]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			cur = t[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
