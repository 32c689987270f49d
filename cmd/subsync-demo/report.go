package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// printTable prints user_subscriptions, one aligned line per row.
func (d *demo) printTable(ctx context.Context) error {
	rows, err := d.rows(ctx)
	if err != nil {
		return err
	}
	d.say("SELECT stripe_subscription_id, user_id, plan_id, billing_period, status FROM user_subscriptions:")
	fmt.Fprintln(d.out)
	tw, flush := d.table()
	fmt.Fprintln(tw, "  SUBSCRIPTION\tUSER\tPLAN\tPERIOD\tSTATUS\t")
	status := counts{}
	for _, r := range rows {
		note := ""
		switch {
		case r.id == d.ghostID:
			note = "← Stripe does not know it (missing_in_stripe)"
		case r.cancelAtPeriodEnd:
			note = "(cancels at period end)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.id, orDash(r.user), orDash(r.plan), r.period, r.status, note)
		status[r.status]++
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintln(d.out)
	d.say("%d rows: %s", len(rows), status)
	return nil
}

// table returns a writer whose tab-separated cells are aligned, and the
// function that prints the lines, without trailing blanks, to the output.
func (d *demo) table() (io.Writer, func() error) {
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	return tw, func() error {
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
			if _, err := fmt.Fprintln(d.out, strings.TrimRight(line, " ")); err != nil {
				return err
			}
		}
		return nil
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseMetrics reads the Prometheus text exposition format, keeping the
// samples whose name starts with prefix.
func parseMetrics(r io.Reader, prefix string) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, prefix) {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseSample parses `name{a="x",b="y"} 12` (an optional timestamp after
// the value is ignored).
func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return s, fmt.Errorf("metric line %q: no value", line)
	} else {
		s.name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, ", ")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("metric line %q: bad labels", line)
			}
			key := rest[:eq]
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for i := 0; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					switch rest[i] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[i])
					}
					continue
				}
				if c == '"' {
					rest, closed = rest[i+1:], true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, fmt.Errorf("metric line %q: unterminated label value", line)
			}
			s.labels[key] = val.String()
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("metric line %q: no value", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("metric line %q: %w", line, err)
	}
	s.value = v
	return s, nil
}

// metricSet is what one scrape returned.
type metricSet []sample

// by sums name's samples per value of label, in descending order.
func (m metricSet) by(name, label string) (string, float64) {
	sums := map[string]float64{}
	total := 0.0
	for _, s := range m {
		if s.name == name {
			sums[s.labels[label]] += s.value
			total += s.value
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if sums[a] != sums[b] {
			if sums[a] > sums[b] {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if sums[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%g", k, sums[k]))
		}
	}
	if len(parts) == 0 {
		return "none", 0
	}
	return strings.Join(parts, " "), total
}

// value returns the sum of name's samples and whether there was any.
func (m metricSet) value(name string) (float64, bool) {
	v, ok := 0.0, false
	for _, s := range m {
		if s.name == name {
			v, ok = v+s.value, true
		}
	}
	return v, ok
}

// scrape reads the daemon's /metrics.
func (d *demo) scrape(ctx context.Context) (metricSet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape /metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body, "subsync_")
}

// printMetrics scrapes the daemon and prints a few key figures; it waits
// (up to 10s) for subsync_inbox_pending, refreshed every 5s, to read 0.
func (d *demo) printMetrics(ctx context.Context) error {
	var m metricSet
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if m, err = d.scrape(ctx); err != nil {
			return err
		}
		if v, ok := m.value("subsync_inbox_pending"); ok && v == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	fmt.Fprintln(d.out)
	d.say("GET http://%s/metrics (the serve process; each reconcile run above was its own process,", d.metricsAddr)
	d.say("its figures are in reconcile_runs and subscription_drift):")
	fmt.Fprintln(d.out)
	tw, flush := d.table()
	webhooks, _ := m.by("subsync_webhook_requests_total", "outcome")
	fmt.Fprintf(tw, "  subsync_webhook_requests_total\tby outcome\t%s\n", webhooks)
	outcomes, applied := m.by("subsync_events_applied_total", "outcome")
	fmt.Fprintf(tw, "  subsync_events_applied_total\tsum %g\t%s\n", applied, outcomes)
	pending, ok := m.value("subsync_inbox_pending")
	if !ok {
		return fmt.Errorf("/metrics has no subsync_inbox_pending")
	}
	fmt.Fprintf(tw, "  subsync_inbox_pending\t\t%g\n", pending)
	if dead, ok := m.value("subsync_inbox_dead"); ok {
		fmt.Fprintf(tw, "  subsync_inbox_dead\t\t%g\n", dead)
	}
	if d.cfg.redisURL != "" {
		cache, _ := m.by("subsync_cache_invalidations_total", "outcome")
		fmt.Fprintf(tw, "  subsync_cache_invalidations_total\tby outcome\t%s\n", cache)
	}
	stripeCalls, total := m.by("subsync_stripe_requests_total", "op")
	fmt.Fprintf(tw, "  subsync_stripe_requests_total\tsum %g\t%s\n", total, stripeCalls)
	if err := flush(); err != nil {
		return err
	}
	if pending != 0 {
		return fmt.Errorf("subsync_inbox_pending is %g at the end, want 0", pending)
	}
	return nil
}
