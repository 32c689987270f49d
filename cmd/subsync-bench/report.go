package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// perEvent is d divided by n, in milliseconds.
func perEvent(d time.Duration, n int) float64 {
	if n <= 0 {
		return 0
	}
	return d.Seconds() * 1000 / float64(n)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", d.Seconds()*1000) }

// ratio is applied end-to-end per second over pgbench's tps (0 without
// pgbench).
func (r caseResult) ratio() float64 {
	if r.pg == nil || r.pg.TPS <= 0 {
		return 0
	}
	return r.applied.Rate() / r.pg.TPS
}

// ceilingShare is, for a refetch case, applied per second as a share of
// the rate limit.
func (r caseResult) ceilingShare() float64 {
	if r.rateLimit <= 0 {
		return 0
	}
	return r.applied.Rate() / r.rateLimit
}

func (r caseResult) print(w io.Writer) {
	s, a := r.sent, r.applied
	fmt.Fprintf(w, "\n== %s (run %d): %s mode, %d events, %d clients, %d subscriptions", r.name, r.run, r.mode,
		r.events, r.clients, r.subscriptions)
	if r.oldEvents > 0 {
		fmt.Fprintf(w, ", %d old events in the inbox", r.oldEvents)
	}
	fmt.Fprintf(w, "; load average %s\n", r.load)
	if r.mode == "refetch" {
		fmt.Fprintf(w, "   Stripe fake answers after %v; STRIPE_RATE_LIMIT=%g; %d subscription fetches\n",
			r.latency, r.rateLimit, r.refetches)
	}
	fmt.Fprintf(w, "subsyncd: acknowledged %d in %s = %.0f/s, %d not answered 200", s.Events-s.Non200,
		ms(s.Duration()), s.AckRate(), s.Non200)
	if s.FirstError != "" {
		fmt.Fprintf(w, " (first: %s)", s.FirstError)
	}
	fmt.Fprintf(w, "\n          ack latency %s\n", s.Latency)
	fmt.Fprintf(w, "          stored in %d batches: %.1f events and %s each on average\n",
		r.batches.Batches, r.batches.MeanEvents(), ms(r.batches.MeanTime()))
	fmt.Fprintf(w, "          applied %d (ignored %d, dead %d) %s after the first request = %.0f/s end to end; "+
		"drained %s after the last ack; stored→applied p50 %s p99 %s\n",
		a.Applied, a.Ignored, a.Dead, ms(a.EndToEnd), a.Rate(), ms(a.Drain), ms(a.StoredToApplied50), ms(a.StoredToApplied99))
	n := a.Applied + a.Ignored + a.Dead
	fmt.Fprintf(w, "          CPU per event: subsyncd %.3f ms, Postgres %.3f ms (backends %.3f, background %.3f), total %.3f ms; "+
		"WAL %.0f B/event (whole server); the load generator %.3f ms\n",
		perEvent(r.cpu.Client, n), perEvent(r.cpu.Postgres(), n), perEvent(r.cpu.Backends, n),
		perEvent(r.cpu.Background, n), perEvent(r.cpu.Total(), n), float64(r.walBytes)/float64(max(n, 1)),
		perEvent(r.cpu.Self, n))
	fmt.Fprintf(w, "          Postgres: %s\n", r.waits)
	if r.mode == "refetch" {
		fmt.Fprintf(w, "applied %.1f/s = %.1f%% of the %g/s rate limit\n", a.Rate(), 100*r.ceilingShare(), r.rateLimit)
	}
	for _, p := range []*pgbenchResult{r.pg, r.pgPlain} {
		if p == nil {
			continue
		}
		what := "pgbench:"
		if p == r.pgPlain {
			what = "pgbench, the tables' triggers disabled:\n         "
		}
		fmt.Fprintf(w, "%s %d transactions (%d failed), %d clients: %.0f tps, latency average %s\n",
			what, p.Transactions, p.Failed, r.clients, p.TPS, ms(p.Latency))
		fmt.Fprintf(w, "          CPU per transaction: pgbench %.3f ms, Postgres %.3f ms (backends %.3f, background %.3f), "+
			"total %.3f ms; WAL %.0f B/transaction (whole server)\n",
			perEvent(p.CPU.Client, p.Transactions), perEvent(p.CPU.Postgres(), p.Transactions),
			perEvent(p.CPU.Backends, p.Transactions), perEvent(p.CPU.Background, p.Transactions),
			perEvent(p.CPU.Total(), p.Transactions), float64(p.WALBytes)/float64(p.Transactions))
		fmt.Fprintf(w, "          Postgres: %s\n", p.Waits)
	}
	if r.pg != nil {
		fmt.Fprintf(w, "ratio applied end to end / pgbench: %.2f×", r.ratio())
		if r.pgPlain != nil {
			fmt.Fprintf(w, " (%.2f× pgbench without triggers)", r.applied.Rate()/r.pgPlain.TPS)
		}
		fmt.Fprintln(w)
	}
}

// summarize gives, for each case measured more than once, the median of its
// runs' ratio to pgbench (or, for a refetch case, of its share of the rate
// limit) with their range, and the median ack p99: on a shared machine one
// run can be far from the others.
func summarize(results []caseResult) []string {
	var names []string
	byName := map[string][]caseResult{}
	for _, r := range results {
		if _, ok := byName[r.name]; !ok {
			names = append(names, r.name)
		}
		byName[r.name] = append(byName[r.name], r)
	}
	var out []string
	for _, name := range names {
		rs := byName[name]
		if len(rs) < 2 {
			continue
		}
		var vals []float64
		var p99s []time.Duration
		unit, what := "×", "applied/pgbench"
		for _, r := range rs {
			v := r.ratio()
			if r.pg == nil {
				v, unit, what = 100*r.ceilingShare(), fmt.Sprintf("%% of %g/s", r.rateLimit), "applied"
			}
			vals = append(vals, v)
			p99s = append(p99s, r.sent.Latency.P99)
		}
		slices.Sort(vals)
		slices.Sort(p99s)
		out = append(out, fmt.Sprintf("%s: %s median %.2f%s over %d runs (%.2f–%.2f%s), ack p99 median %s",
			name, what, median(vals), unit, len(rs), vals[0], vals[len(vals)-1], unit, ms(median(p99s))))
	}
	return out
}

// median is the middle of sorted xs, or the mean of its two middles.
func median[T float64 | time.Duration](xs []T) T {
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// printTable prints one row per measured run.
func printTable(w io.Writer, results []caseResult) {
	if len(results) == 0 {
		return
	}
	fmt.Fprintln(w, "\n# webhook ingest and apply against pgbench (CPU in ms per event or transaction; WAL in bytes)")
	head := []string{"case", "run", "events", "clients", "subs", "mode", "ack/s", "applied/s", "pgbench tps",
		"applied/pgbench", "ack p50", "ack p99", "drain", "cpu subsyncd", "cpu pg", "cpu total",
		"pgbench cpu total", "WAL/event", "pgbench WAL/txn", "pgbench no triggers tps"}
	rows := [][]string{head}
	for _, r := range results {
		n := r.applied.Applied + r.applied.Ignored + r.applied.Dead
		pgTPS, ratio, pgCPU, pgWAL, plain := "-", "-", "-", "-", "-"
		if p := r.pgPlain; p != nil {
			plain = fmt.Sprintf("%.0f (%.2f×)", p.TPS, r.applied.Rate()/p.TPS)
		}
		if p := r.pg; p != nil {
			pgTPS = fmt.Sprintf("%.0f", p.TPS)
			ratio = fmt.Sprintf("%.2f×", r.ratio())
			pgCPU = fmt.Sprintf("%.3f", perEvent(p.CPU.Total(), p.Transactions))
			pgWAL = fmt.Sprintf("%.0f", float64(p.WALBytes)/float64(p.Transactions))
		} else if r.rateLimit > 0 {
			ratio = fmt.Sprintf("%.0f%% of %g/s", 100*r.ceilingShare(), r.rateLimit)
		}
		rows = append(rows, []string{
			r.name, fmt.Sprint(r.run), fmt.Sprint(r.events), fmt.Sprint(r.clients), fmt.Sprint(r.subscriptions), r.mode,
			fmt.Sprintf("%.0f", r.sent.AckRate()), fmt.Sprintf("%.0f", r.applied.Rate()), pgTPS, ratio,
			ms(r.sent.Latency.P50), ms(r.sent.Latency.P99), ms(r.applied.Drain),
			fmt.Sprintf("%.3f", perEvent(r.cpu.Client, n)), fmt.Sprintf("%.3f", perEvent(r.cpu.Postgres(), n)),
			fmt.Sprintf("%.3f", perEvent(r.cpu.Total(), n)), pgCPU,
			fmt.Sprintf("%.0f", float64(r.walBytes)/float64(max(n, 1))), pgWAL, plain,
		})
	}
	widths := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = c + strings.Repeat(" ", widths[i]-len([]rune(c)))
		}
		fmt.Fprintln(w, strings.TrimRight(strings.Join(cells, "  "), " "))
	}
	if sum := summarize(results); len(sum) > 0 {
		fmt.Fprintln(w)
		for _, line := range sum {
			fmt.Fprintln(w, line)
		}
	}
}
