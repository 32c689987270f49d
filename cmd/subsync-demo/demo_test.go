package main

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/subsync/subsync/internal/stripefake"
)

func TestParseSample(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line   string
		name   string
		labels map[string]string
		value  float64
	}{
		{`subsync_inbox_pending 0`, "subsync_inbox_pending", map[string]string{}, 0},
		{`subsync_webhook_requests_total{outcome="accepted"} 150`, "subsync_webhook_requests_total",
			map[string]string{"outcome": "accepted"}, 150},
		{`subsync_events_applied_total{outcome="applied",type="customer.subscription.created"} 48`,
			"subsync_events_applied_total", map[string]string{"outcome": "applied", "type": "customer.subscription.created"}, 48},
		{`subsync_x{a="q\"uo,te}",b="back\\slash"} 1.5e+02 1700000000000`, "subsync_x",
			map[string]string{"a": `q"uo,te}`, "b": `back\slash`}, 150},
		{`subsync_reconcile_last_success_timestamp_seconds{job_name="events"} 1.7648e+09`,
			"subsync_reconcile_last_success_timestamp_seconds", map[string]string{"job_name": "events"}, 1.7648e+09},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := parseSample(tt.line)
			if err != nil {
				t.Fatalf("parseSample(%q): %v", tt.line, err)
			}
			if s.name != tt.name || s.value != tt.value || len(s.labels) != len(tt.labels) {
				t.Fatalf("parseSample(%q) = %+v", tt.line, s)
			}
			for k, v := range tt.labels {
				if s.labels[k] != v {
					t.Fatalf("parseSample(%q) label %s = %q, want %q", tt.line, k, s.labels[k], v)
				}
			}
		})
	}
}

func TestParseSampleErrors(t *testing.T) {
	t.Parallel()
	for _, line := range []string{`subsync_x`, `subsync_x{a="b"}`, `subsync_x{a="b} 1`, `subsync_x{a} 1`, `subsync_x nope`} {
		if s, err := parseSample(line); err == nil {
			t.Errorf("parseSample(%q) = %+v, want an error", line, s)
		}
	}
}

func TestMetricSet(t *testing.T) {
	t.Parallel()
	text := `# HELP subsync_webhook_requests_total Webhook requests by outcome.
# TYPE subsync_webhook_requests_total counter
subsync_webhook_requests_total{outcome="accepted"} 150
subsync_webhook_requests_total{outcome="duplicate"} 8
subsync_webhook_requests_total{outcome="ignored"} 50
subsync_webhook_requests_total{outcome="too_large"} 0
subsync_events_applied_total{outcome="applied",type="invoice.paid"} 40
subsync_events_applied_total{outcome="applied",type="customer.subscription.created"} 45
subsync_events_applied_total{outcome="stale",type="invoice.paid"} 2
subsync_inbox_pending 0
go_goroutines 12
`
	samples, err := parseMetrics(strings.NewReader(text), "subsync_")
	if err != nil {
		t.Fatal(err)
	}
	m := metricSet(samples)
	if got, total := m.by("subsync_webhook_requests_total", "outcome"); got != "accepted=150 ignored=50 duplicate=8" || total != 208 {
		t.Errorf("webhook requests by outcome = %q, %g", got, total)
	}
	if got, total := m.by("subsync_events_applied_total", "outcome"); got != "applied=85 stale=2" || total != 87 {
		t.Errorf("events applied by outcome = %q, %g", got, total)
	}
	if got, total := m.by("subsync_cache_invalidations_total", "outcome"); got != "none" || total != 0 {
		t.Errorf("absent metric = %q, %g", got, total)
	}
	if v, ok := m.value("subsync_inbox_pending"); !ok || v != 0 {
		t.Errorf("inbox pending = %g, %t", v, ok)
	}
	if _, ok := m.value("go_goroutines"); ok {
		t.Error("a metric without the prefix was kept")
	}
}

func TestBRL(t *testing.T) {
	t.Parallel()
	for centavos, want := range map[int64]string{
		285100: "R$ 2.851,00", 573100: "R$ 5.731,00", 1436200: "R$ 14.362,00",
		29700: "R$ 297,00", 5: "R$ 0,05", 123456789: "R$ 1.234.567,89",
	} {
		if got := brl(centavos); got != want {
			t.Errorf("brl(%d) = %q, want %q", centavos, got, want)
		}
	}
}

func TestPlansMatchTheSpec(t *testing.T) {
	t.Parallel()
	// README: Consultor Ágil R$ 2.851/year, Máquina R$ 5.731/year, Sala de
	// Guerra R$ 14.362/year.
	want := map[string]int64{"consultor_agil": 285100, "maquina": 573100, "sala_de_guerra": 1436200}
	for _, p := range stripefake.Plans() {
		if want[p.Key] != p.Annual {
			t.Errorf("plan %s: annual %d, want %d", p.Key, p.Annual, want[p.Key])
		}
		delete(want, p.Key)
	}
	if len(want) > 0 {
		t.Errorf("plans missing: %v", want)
	}
	p := planPrice{stripefake.PlanPrice{Plan: stripefake.Plans()[1], Period: "ANUAL"}}
	if p.envName() != "STRIPE_PRICE_MAQUINA_ANUAL" || p.billingPeriod() != "annual" {
		t.Errorf("price naming: %s %s", p.envName(), p.billingPeriod())
	}
}

func TestCountsString(t *testing.T) {
	t.Parallel()
	c := counts{"ignored": 50, "applied": 150, "dead": 0, "failed": 50}
	if got := c.String(); got != "150 applied, 50 failed, 50 ignored, 0 dead" {
		t.Errorf("counts = %q", got)
	}
	if c.total() != 250 {
		t.Errorf("total = %d", c.total())
	}
	if got := (counts{}).String(); got != "empty" {
		t.Errorf("empty counts = %q", got)
	}
}

func TestParseFlags(t *testing.T) {
	t.Setenv("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5999/test?sslmode=disable")
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.adminURL != "postgres://postgres@127.0.0.1:5999/test?sslmode=disable" || !strings.HasPrefix(c.dbName, "subsync_demo_") ||
		c.subscriptions != 50 || c.dropRate != 0.1 {
		t.Fatalf("defaults: %+v", c)
	}
	for _, args := range [][]string{
		{"-subscriptions", "3"}, {"-drop-rate", "1"}, {"-database-name", "Robert'); DROP TABLE students;--"},
		{"stray"}, {"-nope"},
	} {
		if _, err := parseFlags(args, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("parseFlags(%q) = %v, want a usage error", args, err)
		}
	}
}
