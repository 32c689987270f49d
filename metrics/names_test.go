package metrics_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/subsync/subsync/metrics"
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
