package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/subsync/subsync/metrics"
)

// The files whose expressions must only name metrics subsyncd exports (the
// runbook's promql blocks included).
var (
	alertsFile     = filepath.Join("..", "configs", "prometheus", "alerts.yml")
	alertsTestFile = filepath.Join("..", "configs", "prometheus", "alerts_test.yml")
	dashboardFile  = filepath.Join("..", "configs", "grafana", "dashboards", "subsync.json")
	runbookFile    = filepath.Join("..", "docs", "operations.md")
)

// prometheusSeries are series Prometheus itself adds to every scrape or rule
// evaluation; expressions may use them although no collector describes them.
var prometheusSeries = []string{"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}

// metricKind is what a metric family is, as far as suffixes go.
type metricKind int

const (
	kindPlain metricKind = iota
	kindHistogram
	kindSummary
)

// recordingRegisterer registers on the wrapped Registerer and remembers every
// collector, so that their Describe can be called: a Vec without children
// does not appear in Gather.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
	r.Registerer.MustRegister(cs...)
}

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedMetrics builds the registry the daemon builds and returns the name
// of every metric family it can export, with its kind.
func exportedMetrics(t *testing.T) map[string]metricKind {
	t.Helper()
	reg := prometheus.NewRegistry()
	rec := &recordingRegisterer{Registerer: reg}
	metrics.New(rec, true)

	names := map[string]metricKind{}
	for _, c := range rec.collectors {
		kind := kindPlain
		switch c.(type) {
		case prometheus.Histogram, *prometheus.HistogramVec:
			kind = kindHistogram
		case prometheus.Summary, *prometheus.SummaryVec:
			kind = kindSummary
		}
		ch := make(chan *prometheus.Desc)
		go func() {
			c.Describe(ch)
			close(ch)
		}()
		for d := range ch {
			m := fqNameRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read fqName from %s", d)
			}
			names[m[1]] = kind
		}
	}
	// The runtime collectors are not histograms or summaries by Go type;
	// their families say what they are.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[mf.GetName()] = kindHistogram
		case dto.MetricType_SUMMARY:
			names[mf.GetName()] = kindSummary
		default:
			if _, ok := names[mf.GetName()]; !ok {
				names[mf.GetName()] = kindPlain
			}
		}
	}
	// Guard the guard: a Vec without children, a histogram and both
	// runtime collectors must have been seen.
	for name, kind := range map[string]metricKind{
		"subsync_webhook_requests_total":           kindPlain,
		"subsync_webhook_request_duration_seconds": kindHistogram,
		"subsync_event_apply_duration_seconds":     kindHistogram,
		"go_goroutines":                            kindPlain,
		"process_resident_memory_bytes":            kindPlain,
	} {
		if got, ok := names[name]; !ok || got != kind {
			t.Fatalf("registry: %s missing or of the wrong kind (found %v, kind %d)", name, ok, got)
		}
	}
	return names
}

// checker knows which names exist and checks the names an expression uses.
type checker struct {
	exported map[string]metricKind
	recorded map[string]bool
}

// unknown returns the metric names expr references that neither subsyncd
// exports nor a recording rule defines.
func (c checker) unknown(expr string) []string {
	var bad []string
	for _, name := range metricNames(expr) {
		if !c.defined(name) && !slices.Contains(bad, name) {
			bad = append(bad, name)
		}
	}
	return bad
}

func (c checker) defined(name string) bool {
	if strings.Contains(name, ":") {
		return c.recorded[name]
	}
	if _, ok := c.exported[name]; ok || slices.Contains(prometheusSeries, name) {
		return true
	}
	if base, ok := strings.CutSuffix(name, "_bucket"); ok && hasKey(c.exported, base) {
		return c.exported[base] == kindHistogram
	}
	for _, suffix := range []string{"_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && hasKey(c.exported, base) {
			k := c.exported[base]
			return k == kindHistogram || k == kindSummary
		}
	}
	return false
}

func hasKey(m map[string]metricKind, k string) bool {
	_, ok := m[k]
	return ok
}

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

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTestFile is the part of a promtool test file the checks read.
type ruleTestFile struct {
	Tests []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		PromQLExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
}

// expression is one PromQL expression found in a config file.
type expression struct {
	where string // file and rule or panel
	expr  string
}

// configExpressions gathers every expression of the alert rules, their
// tests and the dashboard, and the names the recording rules define.
func configExpressions(t *testing.T) (exprs []expression, recorded map[string]bool) {
	t.Helper()
	recorded = map[string]bool{}

	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			name := "alert " + r.Alert
			if r.Record != "" {
				name = "record " + r.Record
				recorded[r.Record] = true
			}
			exprs = append(exprs, expression{where: alertsFile + ": " + name, expr: r.Expr})
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s: no rules found", alertsFile)
	}

	var tests ruleTestFile
	readYAML(t, alertsTestFile, &tests)
	for _, tc := range tests.Tests {
		for _, in := range tc.InputSeries {
			name, _, _ := strings.Cut(in.Series, "{")
			exprs = append(exprs, expression{where: fmt.Sprintf("%s: test %q input series", alertsTestFile, tc.Name), expr: name})
		}
		for _, pt := range tc.PromQLExprTest {
			exprs = append(exprs, expression{where: fmt.Sprintf("%s: test %q promql_expr_test", alertsTestFile, tc.Name), expr: pt.Expr})
		}
	}

	doc, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatalf("read %s: %v", runbookFile, err)
	}
	for i, block := range promqlBlocks(string(doc)) {
		exprs = append(exprs, expression{where: fmt.Sprintf("%s: promql block %d", runbookFile, i+1), expr: block})
	}

	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatalf("read %s: %v", dashboardFile, err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("parse %s: %v", dashboardFile, err)
	}
	n := len(exprs)
	walkDashboard(dash, "dashboard", func(where, expr string) {
		exprs = append(exprs, expression{where: dashboardFile + ": " + where, expr: expr})
	})
	if len(exprs) == n {
		t.Fatalf("%s: no expressions found", dashboardFile)
	}
	return exprs, recorded
}

// promqlBlocks returns the contents of the ```promql code blocks of a
// Markdown document.
func promqlBlocks(doc string) []string {
	var blocks []string
	var cur *strings.Builder
	for line := range strings.Lines(doc) {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```promql":
			cur = &strings.Builder{}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line)
		}
	}
	return blocks
}

// walkDashboard calls fn with every panel target expression and every
// variable query of a Grafana dashboard, and where it was found.
func walkDashboard(v any, where string, fn func(where, expr string)) {
	switch v := v.(type) {
	case map[string]any:
		if title, ok := v["title"].(string); ok {
			where = fmt.Sprintf("panel %q", title)
		}
		if expr, ok := v["expr"].(string); ok {
			ref, _ := v["refId"].(string)
			fn(strings.TrimSpace(where+" target "+ref), expr)
		}
		if typ, _ := v["type"].(string); typ == "query" {
			name, _ := v["name"].(string)
			for _, key := range []string{"query", "definition"} {
				q := v[key]
				if m, ok := q.(map[string]any); ok {
					q = m["query"]
				}
				if s, ok := q.(string); ok {
					fn(fmt.Sprintf("variable %q %s", name, key), templateQueryExpr(s))
				}
			}
		}
		for _, child := range v {
			walkDashboard(child, where, fn)
		}
	case []any:
		for _, child := range v {
			walkDashboard(child, where, fn)
		}
	}
}

// TestConfigMetricNamesExist fails for any alert rule, rule test, dashboard
// or runbook expression that names a metric subsyncd does not export.
func TestConfigMetricNamesExist(t *testing.T) {
	exported := exportedMetrics(t)
	exprs, recorded := configExpressions(t)
	c := checker{exported: exported, recorded: recorded}
	checked := 0
	for _, e := range exprs {
		if len(metricNames(e.expr)) == 0 && e.expr != "" {
			t.Errorf("%s: no metric name found in %q", e.where, e.expr)
		}
		for _, name := range c.unknown(e.expr) {
			t.Errorf("%s: %q is neither exported by subsyncd (metrics.New) nor recorded in %s\n\texpr: %s",
				e.where, name, alertsFile, e.expr)
		}
		checked++
	}
	t.Logf("checked %d expressions against %d exported metric families and %d recording rules",
		checked, len(exported), len(recorded))
}

// TestCheckerCatchesMisspelling proves that the check above would fail on a
// misspelt or invented name, wherever it hides in an expression.
func TestCheckerCatchesMisspelling(t *testing.T) {
	c := checker{exported: exportedMetrics(t), recorded: map[string]bool{"subsync:webhook_success_ratio:rate5m": true}}
	for _, tc := range []struct {
		expr string
		bad  []string
	}{
		{`sum by (job) (rate(subsync_webhook_requests_total{outcome=~"a|b"}[5m]))`, nil},
		{`sum by (job) (rate(subsync_webhook_request_total[5m]))`, []string{"subsync_webhook_request_total"}},
		{`histogram_quantile(0.95, sum by (le) (rate(subsync_webhook_request_duration_seconds_bucket[$__rate_interval])))`, nil},
		{`rate(subsync_webhook_requests_total_bucket[5m])`, []string{"subsync_webhook_requests_total_bucket"}},
		{`rate(subsync_event_apply_duration_seconds_count[5m]) + rate(go_gc_duration_seconds_sum[5m])`, nil},
		{`subsync:webhook_success_ratio:rate5m < 0.95 and subsync:webhook_request:rate5m * 300 >= 10`, []string{"subsync:webhook_request:rate5m"}},
		{`time() - process_start_time_seconds > on (job) group_right 2 * max by (job, job_name) (subsync_reconcile_interval_second > 0)`, []string{"subsync_reconcile_interval_second"}},
		{`max(subsync_inbox_pending{job="$job", instance=~"${instance}"}) # subsync_not_a_metric`, nil},
		{`label_replace(up, "dst", "$1", "src", "(.*)") or vector(1) offset 5m`, nil},
		{`sum(subsync_webhook_requests_total) by (outcome) unless on (outcome) subsyncd_inbox_dead`, []string{"subsyncd_inbox_dead"}},
		{`process_resident_memory_bytes and go_goroutine`, []string{"go_goroutine"}},
		{templateQueryExpr(`label_values(subsync_build_info{job="$job"}, instance)`), nil},
		{templateQueryExpr(`label_values(subsync_buildinfo, job)`), []string{"subsync_buildinfo"}},
	} {
		if got := c.unknown(tc.expr); !slices.Equal(got, tc.bad) {
			t.Errorf("unknown(%q) = %q, want %q", tc.expr, got, tc.bad)
		}
	}
}

// TestAlertRulesComplete checks what every alert must carry: a for
// duration, a severity, a summary, a description and a runbook link to a
// section that exists in docs/operations.md.
func TestAlertRulesComplete(t *testing.T) {
	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	runbook, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatalf("read %s: %v", runbookFile, err)
	}
	anchors := markdownAnchors(string(runbook))
	const prefix = "https://github.com/subsync/subsync/blob/main/docs/operations.md#"
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.For == "" {
				t.Errorf("alert %s: no for duration", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[key] == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, key)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], prefix)
			if !ok {
				t.Errorf("alert %s: runbook_url %q does not start with %s", r.Alert, r.Annotations["runbook_url"], prefix)
			} else if !anchors[anchor] {
				t.Errorf("alert %s: runbook_url anchor #%s is not a heading of %s", r.Alert, anchor, runbookFile)
			}
		}
	}
	if alerts == 0 {
		t.Fatalf("%s: no alerts", alertsFile)
	}
}

// markdownAnchors returns the GitHub anchors of the headings of a Markdown
// document: lower case, punctuation dropped, spaces to hyphens.
func markdownAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	inFence := false
	for line := range strings.Lines(doc) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

// TestAlertRulesPromtool runs promtool on the rules and their unit tests
// when it is installed (PROMTOOL_BIN, else promtool on PATH; Debian: apt-get
// install prometheus).
func TestAlertRulesPromtool(t *testing.T) {
	promtool := os.Getenv("PROMTOOL_BIN")
	if promtool == "" {
		var err error
		if promtool, err = exec.LookPath("promtool"); err != nil {
			t.Skip("promtool not installed")
		}
	}
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(alertsFile)},
		{"test", "rules", filepath.Base(alertsTestFile)},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(alertsFile)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
