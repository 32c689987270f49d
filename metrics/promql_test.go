package metrics_test

import "strings"

// PromQL words that are not metric names. Aggregation operators are listed
// because a by/without clause may separate them from their parenthesis.
var promqlKeywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "atan2": true,
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
}

// Keywords whose parenthesised list holds label names.
var labelListKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// metricNames returns the metric names a PromQL expression (possibly with
// Grafana variables) selects, in order. It skips strings, comments, label
// matchers, ranges, label lists of by/without/on/ignoring/group_*, function
// names and keywords.
func metricNames(expr string) []string {
	var names []string
	s := expr
	i := 0
	skipString := func(j int) int {
		q := s[j]
		j++
		for j < len(s) && s[j] != q {
			if s[j] == '\\' && q != '`' {
				j++
			}
			j++
		}
		return j + 1
	}
	// skipTo skips from the opening bracket at j to just after its match,
	// stepping over strings.
	skipTo := func(j int, open, close byte) int {
		depth := 0
		for j < len(s) {
			switch c := s[j]; {
			case c == '"' || c == '\'' || c == '`':
				j = skipString(j)
				continue
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					return j + 1
				}
			}
			j++
		}
		return j
	}
	nextNonSpace := func(j int) int {
		for j < len(s) && strings.ContainsRune(" \t\r\n", rune(s[j])) {
			j++
		}
		return j
	}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || '0' <= c && c <= '9' }
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '{':
			i = skipTo(i, '{', '}')
		case c == '[':
			i = skipTo(i, '[', ']')
		case c == '$': // Grafana variable: ${name} or $name
			i++
			if i < len(s) && s[i] == '{' {
				i = skipTo(i, '{', '}')
				continue
			}
			for i < len(s) && isIdent(s[i]) {
				i++
			}
		case '0' <= c && c <= '9' || c == '.':
			// Numbers and durations: 0.95, 1e3, 0x1f, 5m, 1h30m.
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			k := nextNonSpace(j)
			switch {
			case labelListKeywords[word] && k < len(s) && s[k] == '(':
				i = skipTo(k, '(', ')')
				continue
			case promqlKeywords[word]:
			case k < len(s) && s[k] == '(': // function or aggregation
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names
}

// templateQueryExpr turns a Grafana variable query into the PromQL it runs:
// label_values(selector, label) selects selector; label_values(label)
// selects nothing.
func templateQueryExpr(q string) string {
	q = strings.TrimSpace(q)
	inner, ok := strings.CutPrefix(q, "label_values(")
	if !ok {
		if inner, ok = strings.CutPrefix(q, "query_result("); ok {
			return strings.TrimSuffix(inner, ")")
		}
		return q
	}
	inner = strings.TrimSuffix(inner, ")")
	// The label is after the last comma outside braces.
	depth, cut := 0, -1
	for i, c := range inner {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				cut = i
			}
		}
	}
	if cut < 0 {
		return "" // label_values(label)
	}
	return inner[:cut]
}
