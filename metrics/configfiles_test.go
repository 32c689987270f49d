package metrics_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The files whose expressions must only name metrics subsyncd exports (the
// runbook's promql blocks included).
var (
	alertsFile     = filepath.Join("..", "configs", "prometheus", "alerts.yml")
	alertsTestFile = filepath.Join("..", "configs", "prometheus", "alerts_test.yml")
	dashboardFile  = filepath.Join("..", "configs", "grafana", "dashboards", "subsync.json")
	runbookFile    = filepath.Join("..", "docs", "operations.md")
)

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
