package main

import (
	"slices"
	"testing"
	"time"

	"github.com/subsync/subsync/internal/loadgen"
)

// The summary gives each case measured more than once the median of its
// runs and their range: odd and even counts, a case measured once left
// out, a refetch case as a share of its rate limit.
func TestSummarizeGivesMediansOfRepeatedCases(t *testing.T) {
	run := func(name string, applied, tps float64, p99 time.Duration) caseResult {
		r := caseResult{benchCase: benchCase{name: name}}
		r.applied = loadgen.Applied{Applied: int(applied), EndToEnd: time.Second}
		r.sent.Latency.P99 = p99
		if tps > 0 {
			r.pg = &pgbenchResult{TPS: tps}
		} else {
			r.rateLimit = 100
		}
		return r
	}
	got := summarize([]caseResult{
		run("default", 900, 1000, 12*time.Millisecond),
		run("hot", 500, 1000, 40*time.Millisecond),
		run("default", 1100, 1000, 10*time.Millisecond),
		run("refetch", 95, 0, 300*time.Millisecond),
		run("default", 1000, 1000, 30*time.Millisecond),
		run("refetch", 140, 0, 200*time.Millisecond),
	})
	want := []string{
		"default: applied/pgbench median 1.00× over 3 runs (0.90–1.10×), ack p99 median 12.0 ms",
		"refetch: applied median 117.50% of 100/s over 2 runs (95.00–140.00% of 100/s), ack p99 median 250.0 ms",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("summary:\n%q\nwant:\n%q", got, want)
	}
}

// Each initial load is divided by the steady sweep that followed it on
// the same size; a size measured more than once gets the median.
func TestLoadRatiosPairEachLoadWithItsSteadySweep(t *testing.T) {
	r := func(subs int, run string, sweep time.Duration) result {
		return result{subs: subs, run: run, sweep: sweep}
	}
	got := loadRatios([]result{
		r(1000, "initial load", 2*time.Second), r(1000, "steady", time.Second),
		r(100000, "initial load", 15*time.Second), r(100000, "steady", 10*time.Second),
		r(100000, "initial load", 16*time.Second), r(100000, "steady", 10*time.Second),
		r(100000, "initial load", 14*time.Second), r(100000, "steady", 10*time.Second),
	})
	want := []string{
		"# 1000: initial load / steady sweep: 2.00×",
		"# 100000: initial load / steady sweep: 1.50×, 1.60×, 1.40×; median 1.50×",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ratios:\n%q\nwant:\n%q", got, want)
	}
}
