package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// webhooksCommand selects the webhook ingest benchmark:
//
//	subsync-bench webhooks -subsyncd bin/subsyncd -n 10000 -c 16 -subscriptions 1000
const webhooksCommand = "webhooks"

// benchCase is one webhook load to measure.
type benchCase struct {
	name          string
	mode          string // WEBHOOK_APPLY_MODE
	events        int
	clients       int
	subscriptions int
	pgbench       bool
	latency       time.Duration // refetch: Stripe's answer time
	rateLimit     float64       // refetch: STRIPE_RATE_LIMIT
}

// webhookOptions are the flags of the webhooks mode.
type webhookOptions struct {
	subsyncd     string
	databaseURL  string
	cases        []string
	runs         int
	oldEvents    int
	verboseChild bool
	// withoutTriggers adds a pgbench run with the tables' triggers
	// disabled (the inbox's NOTIFY), to show what they cost.
	withoutTriggers bool
	def, hot        benchCase
	refetch         benchCase
}

func parseWebhookFlags(args []string, stderr io.Writer) (webhookOptions, error) {
	fs := flag.NewFlagSet("subsync-bench webhooks", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := webhookOptions{
		def:     benchCase{name: "default", mode: "payload", pgbench: true},
		hot:     benchCase{name: "hot", mode: "payload", pgbench: true},
		refetch: benchCase{name: "refetch", mode: "refetch"},
	}
	cases := fs.String("cases", "default,hot,refetch", "comma-separated cases to run: default, hot, refetch")
	fs.StringVar(&o.subsyncd, "subsyncd", "bin/subsyncd", "the subsyncd binary to run")
	fs.StringVar(&o.databaseURL, "database-url", os.Getenv("TEST_DATABASE_URL"),
		"Postgres server (two databases are created per case); default TEST_DATABASE_URL")
	fs.IntVar(&o.runs, "runs", 1, "how many times each case is run (the machine may be shared)")
	fs.IntVar(&o.oldEvents, "old-events", 0, "pre-fill each database's inbox with this many old, applied events")
	fs.BoolVar(&o.verboseChild, "v", false, "print the daemon's output after each run")
	fs.BoolVar(&o.withoutTriggers, "pgbench-without-triggers", false,
		"also run pgbench with the triggers of the two tables disabled, for a schema that still notifies from a trigger (before migration 00012)")
	fs.IntVar(&o.def.events, "n", 10000, "events of the default and hot cases")
	fs.IntVar(&o.def.clients, "c", 16, "concurrent senders (and pgbench clients) of the default case")
	fs.IntVar(&o.def.subscriptions, "subscriptions", 1000, "distinct subscriptions of the default case")
	fs.StringVar(&o.def.mode, "mode", "payload", "WEBHOOK_APPLY_MODE of the default and hot cases")
	fs.IntVar(&o.hot.clients, "hot-c", 64, "concurrent senders (and pgbench clients) of the hot case")
	fs.IntVar(&o.hot.subscriptions, "hot-subscriptions", 100, "distinct subscriptions of the hot case")
	fs.IntVar(&o.refetch.events, "refetch-n", 600, "events of the refetch case, one per subscription")
	fs.IntVar(&o.refetch.clients, "refetch-c", 16, "concurrent senders of the refetch case")
	fs.DurationVar(&o.refetch.latency, "refetch-latency", 100*time.Millisecond, "Stripe fake's answer time in the refetch case")
	fs.Float64Var(&o.refetch.rateLimit, "refetch-rate", 100, "STRIPE_RATE_LIMIT of the refetch case")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.databaseURL = cmp.Or(o.databaseURL, "postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	o.hot.events, o.hot.mode = o.def.events, o.def.mode
	o.refetch.subscriptions = o.refetch.events
	for _, c := range strings.Split(*cases, ",") {
		switch c = strings.TrimSpace(c); c {
		case "default", "hot", "refetch":
			o.cases = append(o.cases, c)
		case "":
		default:
			return o, fmt.Errorf("-cases: unknown case %q (default, hot, refetch)", c)
		}
	}
	for _, c := range []benchCase{o.def, o.hot, o.refetch} {
		if c.events <= 0 || c.clients <= 0 || c.subscriptions <= 0 {
			return o, fmt.Errorf("case %s: events, clients and subscriptions must be positive", c.name)
		}
	}
	if o.def.mode != "payload" && o.def.mode != "refetch" {
		return o, fmt.Errorf("-mode: %q is not payload or refetch", o.def.mode)
	}
	if o.runs < 1 || o.oldEvents < 0 {
		return o, fmt.Errorf("-runs must be at least 1 and -old-events not negative")
	}
	return o, nil
}

// runWebhooks runs the webhook cases and prints a block per run and a
// final table.
func runWebhooks(ctx context.Context, args []string, stdout, stderr io.Writer) ([]caseResult, error) {
	o, err := parseWebhookFlags(args, stderr)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.subsyncd); err != nil {
		return nil, fmt.Errorf("-subsyncd: %w (build it with go build -o bin/subsyncd ./cmd/subsyncd)", err)
	}
	dir, err := os.MkdirTemp("", "subsync-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := ""
	for _, c := range o.cases {
		if c != "refetch" {
			if _, err := pgbenchPath(); err != nil {
				return nil, err
			}
			if script, err = writePgbenchScript(dir); err != nil {
				return nil, err
			}
			break
		}
	}
	m, err := newMeasurer(ctx, o.databaseURL)
	if err != nil {
		return nil, err
	}
	defer m.close()
	fmt.Fprintf(stdout, "# webhooks: %s serve against %s; %s; load average %s\n",
		o.subsyncd, redact(o.databaseURL), describeHost(), loadAverage())
	if m.postmaster == 0 {
		fmt.Fprintln(stdout, "# the postmaster is not visible in /proc: Postgres CPU is not measured")
	}
	if script != "" {
		fmt.Fprintf(stdout, "# pgbench: -n -M prepared -f %s (the per-event transaction below), -j 2, -t events/clients\n", script)
		for _, l := range strings.Split(strings.TrimSpace(string(pgbenchScript)), "\n") {
			fmt.Fprintf(stdout, "#   %s\n", l)
		}
	}
	var results []caseResult
	for run := 1; run <= o.runs; run++ {
		for _, name := range o.cases {
			c := map[string]benchCase{"default": o.def, "hot": o.hot, "refetch": o.refetch}[name]
			r, err := runCase(ctx, o, m, c, script, stderr)
			if err != nil {
				return results, fmt.Errorf("case %s: %w", name, err)
			}
			r.run = run
			r.print(stdout)
			results = append(results, r)
		}
	}
	printTable(stdout, results)
	return results, nil
}
