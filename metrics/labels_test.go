package metrics_test

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/subsync/subsync/metrics"
)

// targetLabels are the labels Prometheus attaches to every series of a
// scrape. A metric carrying one of them collides with the target: renamed
// to exported_<label> by default, or overwriting the target's own with
// honor_labels: true.
var targetLabels = []string{model.JobLabel, model.InstanceLabel}

// TestNoTargetLabels scrapes the registry the daemon serves, with a series
// of every metric created, and fails if any series carries a label named
// job or instance.
func TestNoTargetLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	created := createEverySeries(t, metrics.New(reg, true))

	families := scrape(t, reg)
	// Guard the guard: every metric of the Metrics struct was scraped with
	// at least one series, and so were the runtime collectors.
	for _, name := range append(created, "go_goroutines", "process_start_time_seconds") {
		if mf, ok := families[name]; !ok || len(mf.GetMetric()) == 0 {
			t.Errorf("scrape: no series of %s", name)
		}
	}
	for _, bad := range targetLabelUses(families) {
		t.Errorf("%s: a metric must not carry the target label (rename it, e.g. job_name)", bad)
	}
	t.Logf("scraped %d metric families, %d of them from the Metrics struct", len(families), len(created))
}

// TestTargetLabelUsesCatches proves the check above fails on a metric that
// carries job as a variable label or instance as a constant label.
func TestTargetLabelUsesCatches(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	f.NewCounterVec(prometheus.CounterOpts{Name: "x_runs_total", Help: "x"}, []string{"job", "outcome"}).
		WithLabelValues("events", "succeeded")
	f.NewGauge(prometheus.GaugeOpts{Name: "x_up", Help: "x", ConstLabels: prometheus.Labels{"instance": "a:9090"}})
	f.NewGaugeVec(prometheus.GaugeOpts{Name: "x_fine", Help: "x"}, []string{"job_name"}).WithLabelValues("events")

	got := targetLabelUses(scrape(t, reg))
	want := []string{`x_runs_total{job="events"}`, `x_up{instance="a:9090"}`}
	if !slices.Equal(got, want) {
		t.Errorf("targetLabelUses = %q, want %q", got, want)
	}
}

// targetLabelUses returns, sorted, one `name{label="value"}` for each series
// of families that carries a target label.
func targetLabelUses(families map[string]*dto.MetricFamily) []string {
	var bad []string
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if slices.Contains(targetLabels, lp.GetName()) {
					bad = append(bad, name+"{"+lp.GetName()+"="+`"`+lp.GetValue()+`"}`)
				}
			}
		}
	}
	slices.Sort(bad)
	return slices.Compact(bad)
}

// scrape fetches /metrics from reg through the handler the daemon serves
// and parses the text exposition, as Prometheus would.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: parse: %v", err)
	}
	return families
}

var variableLabelsRE = regexp.MustCompile(`variableLabels: \{([^}]*)\}\}$`)

// createEverySeries creates one series of every labelled metric of m (a
// Vec exports nothing until a series exists) and returns the name of every
// metric of m.
func createEverySeries(t *testing.T, m *metrics.Metrics) []string {
	t.Helper()
	var names []string
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		field := v.Type().Field(i).Name
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Field(i).IsNil() {
			t.Fatalf("Metrics.%s is not a collector", field)
		}
		descs := make(chan *prometheus.Desc, 1)
		go func() {
			c.Describe(descs)
			close(descs)
		}()
		var desc *prometheus.Desc
		for d := range descs {
			if desc != nil {
				t.Fatalf("Metrics.%s describes more than one metric", field)
			}
			desc = d
		}
		s := desc.String()
		name, _, _ := strings.Cut(strings.TrimPrefix(s, `Desc{fqName: "`), `"`)
		names = append(names, name)

		get := v.Field(i).MethodByName("GetMetricWithLabelValues")
		if !get.IsValid() {
			continue // not a Vec: exported from the start
		}
		match := variableLabelsRE.FindStringSubmatch(s)
		if match == nil || match[1] == "" {
			t.Fatalf("Metrics.%s: no variable labels in %s", field, s)
		}
		var values []reflect.Value
		for _, label := range strings.Split(match[1], ",") {
			values = append(values, reflect.ValueOf("test_"+label))
		}
		if err, _ := get.Call(values)[1].Interface().(error); err != nil {
			t.Fatalf("Metrics.%s: create a series: %v", field, err)
		}
	}
	return names
}
