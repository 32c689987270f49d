// Command subsync-bench measures subsyncd from outside, running the real
// binary as a child process.
//
// The sweep mode (the default, or `subsync-bench sweep`) seeds a Stripe
// fake (in this process) with N subscriptions, then runs
// `subsyncd reconcile --job subscriptions` against it and a fresh database,
// and prints wall time, Stripe requests and the child's peak resident
// memory. A last run adds latency to every Stripe request to show how close
// the sweep's page rate comes to the rate limiter's ceiling.
//
//	subsync-bench -subsyncd bin/subsyncd -sizes 1000,10000,100000
//
// The webhooks mode runs `subsyncd serve`, sends it signed webhooks
// (internal/loadgen) until every one is applied, then runs pgbench with the
// same per-event SQL (pgbench_event.sql) on a second fresh database, and
// prints the ratio of the two rates, the answer latency, the backlog drain,
// CPU per event (the daemon and the Postgres processes, from /proc) and WAL
// per event:
//
//	subsync-bench webhooks -subsyncd bin/subsyncd -cases default,hot,refetch
//
// The database server is TEST_DATABASE_URL (default the local test server);
// every run gets databases of its own, dropped at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/subsync/subsync/internal/stripefake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "subsync-bench:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	subsyncd     string
	databaseURL  string
	sizes        []int
	latency      time.Duration
	latencyRate  float64
	spread       time.Duration
	skipLatency  bool
	verboseChild bool
	logLevel     string
	rateRuns     int
	loadRuns     int
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("subsync-bench sweep", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := options{}
	sizes := fs.String("sizes", "1000,10000,100000", "comma-separated numbers of subscriptions to sweep")
	fs.StringVar(&o.subsyncd, "subsyncd", "bin/subsyncd", "the subsyncd binary to run")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("TEST_DATABASE_URL"), "Postgres server (a database is created per size); default TEST_DATABASE_URL")
	fs.DurationVar(&o.latency, "latency", 100*time.Millisecond, "latency added to every Stripe request in the rate run")
	fs.Float64Var(&o.latencyRate, "latency-rate", 100, "STRIPE_RATE_LIMIT of the rate run")
	fs.DurationVar(&o.spread, "spread", 3*365*24*time.Hour, "creation times are spread over this much time")
	fs.BoolVar(&o.skipLatency, "skip-latency", false, "skip the rate run")
	fs.BoolVar(&o.verboseChild, "v", false, "show the child's stderr")
	fs.StringVar(&o.logLevel, "log-level", "warn", "LOG_LEVEL of the child")
	fs.IntVar(&o.rateRuns, "rate-runs", 3, "how many times the rate run is repeated (the machine may be shared)")
	fs.IntVar(&o.loadRuns, "load-runs", 1, "how many times each size's initial load and steady sweep are measured, each time on a fresh fake and database")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.databaseURL == "" {
		o.databaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return o, fmt.Errorf("-sizes: %q is not a positive number", s)
		}
		o.sizes = append(o.sizes, n)
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case measureCommand:
			return measureChild(ctx, args[1:])
		case webhooksCommand:
			_, err := runWebhooks(ctx, args[1:], stdout, stderr)
			return err
		case "sweep":
			args = args[1:]
		}
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(o.subsyncd); err != nil {
		return fmt.Errorf("-subsyncd: %w (build it with go build -o bin/subsyncd ./cmd/subsyncd)", err)
	}
	fmt.Fprintf(stdout, "# sweep: %s reconcile --job subscriptions --format json, against stripefake (no latency), %s\n",
		o.subsyncd, describeHost())
	m, err := newMeasurer(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer m.close()
	if m.postmaster == 0 {
		fmt.Fprintln(stdout, "# the postmaster is not visible in /proc: Postgres CPU is not measured")
	}
	fmt.Fprintln(stdout, "# cpu: subsyncd; postgres: the database's backends and the server's background processes; fake: this process, serving the listing; WAL: the whole server's")
	fmt.Fprintf(stdout, "%-8s %-13s %9s %9s %9s %9s %9s %9s %9s %10s %11s %9s\n",
		"subs", "run", "wall", "sweep", "cpu", "postgres", "fake", "WAL", "requests", "min pages", "subs/s", "peak RSS")
	var results []result
	var last *fixture
	defer func() { last.close(ctx) }()
	for _, n := range o.sizes {
		for range max(o.loadRuns, 1) {
			last.close(ctx)
			if last, err = prepare(ctx, o, n, stderr); err != nil {
				return err
			}
			for _, r := range []string{"initial load", "steady"} {
				res, err := sweep(ctx, o, m, last, n, r, nil, stderr)
				if err != nil {
					return fmt.Errorf("%d subscriptions, %s: %w", n, r, err)
				}
				results = append(results, res)
				res.print(stdout)
			}
		}
	}
	printLinearity(stdout, results)
	for _, line := range loadRatios(results) {
		fmt.Fprintln(stdout, line)
	}
	if o.skipLatency {
		return nil
	}
	for range max(o.rateRuns, 1) {
		if err := rateRun(ctx, o, m, last, o.sizes[len(o.sizes)-1], stdout, stderr); err != nil {
			return err
		}
	}
	return nil
}

// loadRatios gives, per size, each initial load's duration over the steady
// sweep's that followed it (duration_seconds, the run's own measure), and
// their median when a size was measured more than once.
func loadRatios(results []result) []string {
	var out []string
	var sizes []int
	bySize := map[int][]float64{}
	for i := 1; i < len(results); i++ {
		first, steady := results[i-1], results[i]
		if first.run != "initial load" || steady.run != "steady" || first.subs != steady.subs || steady.sweep <= 0 {
			continue
		}
		if _, ok := bySize[first.subs]; !ok {
			sizes = append(sizes, first.subs)
		}
		bySize[first.subs] = append(bySize[first.subs], first.sweep.Seconds()/steady.sweep.Seconds())
	}
	for _, n := range sizes {
		rs := bySize[n]
		parts := make([]string, len(rs))
		for i, r := range rs {
			parts[i] = fmt.Sprintf("%.2f×", r)
		}
		line := fmt.Sprintf("# %d: initial load / steady sweep: %s", n, strings.Join(parts, ", "))
		if len(rs) > 1 {
			sorted := slices.Sorted(slices.Values(rs))
			line += fmt.Sprintf("; median %.2f×", median(sorted))
		}
		out = append(out, line)
	}
	return out
}

// printLinearity prints the steady sweep's time per subscription by size.
func printLinearity(w io.Writer, results []result) {
	fmt.Fprint(w, "# steady sweep per 1,000 subscriptions (wall / CPU):")
	for _, r := range results {
		if r.run == "steady" {
			k := float64(r.subs) / 1000
			fmt.Fprintf(w, "  %d: %.3fs / %.3fs", r.subs, r.sweep.Seconds()/k, r.cpu.Seconds()/k)
		}
	}
	fmt.Fprintln(w)
}

// rateRun sweeps the n subscriptions of f (table in sync) again with
// latency on every request and the limiter at its configured rate, and
// reports list requests per second against the limiter's ceiling.
func rateRun(ctx context.Context, o options, m *measurer, f *fixture, n int, stdout, stderr io.Writer) error {
	env := []string{"STRIPE_RATE_LIMIT=" + strconv.FormatFloat(o.latencyRate, 'f', -1, 64), "LOG_LEVEL=info", "LOG_FORMAT=json"}
	f.fake.SetFaults(stripefake.Faults{Latency: o.latency})
	res, err := sweep(ctx, o, m, f, n, "rate", env, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "# rate: %d subscriptions in sync, %v latency per request, STRIPE_RATE_LIMIT=%g, load average %s\n",
		n, o.latency, o.latencyRate, loadAverage())
	share := func(what string, d time.Duration) {
		perSec := float64(res.listRequests) / d.Seconds()
		fmt.Fprintf(stdout, "rate run, %s: %d list requests in %.2fs = %.1f/s = %.1f%% of the limiter's ceiling; "+
			"%d pages' worth of subscriptions = %.1f%%\n", what, res.listRequests, d.Seconds(), perSec,
			100*perSec/o.latencyRate, res.minPages, 100*float64(res.minPages)/d.Seconds()/o.latencyRate)
	}
	share("whole run", res.sweep)
	if res.list > 0 {
		share("listing phase", res.list)
	}
	fmt.Fprintf(stdout, "rate run: peak RSS %s, CPU %.2fs\n", mib(res.peakRSS), res.cpu.Seconds())
	return nil
}
