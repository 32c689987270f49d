package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/reconcile"
)

// textDriftRows caps the drift table of the text format; the JSON format
// and the subscription_drift table have every row.
const textDriftRows = 200

// reconciler builds the Reconciler of the app; applyEvents is passed on as
// reconcile.Config.ApplyEvents.
func (a *app) reconciler(applyEvents func(context.Context) (int, error)) *reconcile.Reconciler {
	return reconcile.NewReconciler(reconcile.Config{
		Logger:         a.log,
		Metrics:        a.metrics,
		EventsLookback: a.cfg.EventsLookback,
		ApplyEvents:    applyEvents,
	}, a.db, a.stripe, a.resolve)
}

func runReconcile(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	var job, format string
	var dryRun bool
	n := need{db: true, stripe: true}
	cfg, rest, err := parseConfig("reconcile", args, env, stderr, n, func(fs *flag.FlagSet) {
		fs.StringVar(&job, "job", "all", "job to run: subscriptions, events or all (events, then subscriptions)")
		fs.BoolVar(&dryRun, "dry-run", false, "report drift, change nothing but reconcile_runs and subscription_drift")
		fs.StringVar(&format, "format", "text", "output: text or json (one object per job per line)")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("reconcile takes no argument, got %q", rest)
	}
	var jobs []string
	switch job {
	case "all":
		jobs = reconcile.Jobs()
	case reconcile.JobEvents, reconcile.JobSubscriptions:
		jobs = []string{job}
	default:
		return usagef("--job: %q is not subscriptions, events or all", job)
	}
	if format != "text" && format != "json" {
		return usagef("--format: %q is not text or json", format)
	}
	a, err := newApp(ctx, cfg, n, true, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	applier := reconcile.NewApplier(reconcile.ApplierConfig{Mode: cfg.ApplyMode, Workers: cfg.ApplyWorkers,
		BatchSize: cfg.ApplyBatchSize, Logger: a.log, Metrics: a.metrics},
		a.db, a.stripe, a.resolve)
	rec := a.reconciler(applier.Drain)

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	var failed []string
	for _, j := range jobs {
		bar := newProgress(stderr, j)
		rep, runErr := rec.Run(ctx, j, reconcile.Options{DryRun: dryRun, Progress: bar.add})
		bar.finish()
		var werr error
		if format == "json" {
			werr = writeReportJSON(ctx, out, a.db, rep)
		} else {
			werr = writeReportText(ctx, out, a.db, rep)
		}
		if err := out.Flush(); werr == nil {
			werr = err
		}
		if werr != nil {
			return fmt.Errorf("print %s report: %w", j, werr)
		}
		if runErr != nil {
			failed = append(failed, j)
			if ctx.Err() != nil {
				break
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("reconcile: %s failed (see reconcile_runs)", strings.Join(failed, ", "))
	}
	return nil
}

// jsonReport is the object `reconcile --format json` prints per job, with
// its keys in a fixed order (job, dry_run, scanned, drifted, fixed, errors,
// duration_seconds); skipped and error appear only when they apply, drift
// always comes last.
type jsonReport struct {
	Job             string  `json:"job"`
	DryRun          bool    `json:"dry_run"`
	Scanned         int     `json:"scanned"`
	Drifted         int     `json:"drifted"`
	Fixed           int     `json:"fixed"`
	Errors          int     `json:"errors"`
	DurationSeconds float64 `json:"duration_seconds"`
	Skipped         bool    `json:"skipped,omitempty"`
	Error           string  `json:"error,omitempty"`
}

// jsonDrift is one subscription of the drift list.
type jsonDrift struct {
	ID     string   `json:"stripe_subscription_id"`
	Fields []string `json:"fields"`
}

// writeReportJSON prints one line; the drift list is streamed from
// subscription_drift, one subscription at a time.
func writeReportJSON(ctx context.Context, w *bufio.Writer, d *db.DB, rep reconcile.Report) error {
	head := jsonReport{
		Job: rep.Job, DryRun: rep.DryRun, Scanned: rep.Counts.Scanned, Drifted: rep.Counts.Drifted,
		Fixed: rep.Counts.Fixed, Errors: rep.Counts.Errors,
		DurationSeconds: math.Round(rep.Duration.Seconds()*1000) / 1000, Skipped: rep.Skipped,
	}
	if rep.Err != nil {
		head.Error = rep.Err.Error()
	}
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	w.Write(b[:len(b)-1])
	w.WriteString(`,"drift":[`)
	first := true
	emit := func(jd jsonDrift) error {
		b, err := json.Marshal(jd)
		if err != nil {
			return err
		}
		if !first {
			w.WriteByte(',')
		}
		first = false
		_, err = w.Write(b)
		return err
	}
	if rep.RunID != 0 {
		var cur jsonDrift
		err := d.EachDrift(context.WithoutCancel(ctx), rep.RunID, func(dr reconcile.Drift) error {
			if dr.SubscriptionID != cur.ID || cur.Fields == nil {
				if cur.Fields != nil {
					if err := emit(cur); err != nil {
						return err
					}
				}
				cur = jsonDrift{ID: dr.SubscriptionID, Fields: []string{}}
			}
			cur.Fields = append(cur.Fields, dr.Field)
			return nil
		})
		if err != nil {
			return err
		}
		if cur.Fields != nil {
			if err := emit(cur); err != nil {
				return err
			}
		}
	}
	_, err = w.WriteString("]}\n")
	return err
}

// writeReportText prints a summary line and a drift table.
func writeReportText(ctx context.Context, w *bufio.Writer, d *db.DB, rep reconcile.Report) error {
	if rep.Skipped {
		_, err := fmt.Fprintf(w, "%s: skipped: another replica is running job %s\n", rep.Job, rep.Job)
		return err
	}
	c := rep.Counts
	mode := ""
	if rep.DryRun {
		mode = ", dry run"
	}
	fmt.Fprintf(w, "%s: %s: scanned %d, drifted %d, fixed %d, errors %d in %s (run %d%s)\n",
		rep.Job, rep.Status, c.Scanned, c.Drifted, c.Fixed, c.Errors, rep.Duration.Round(time.Millisecond), rep.RunID, mode)
	if rep.Err != nil {
		fmt.Fprintf(w, "  error: %v\n", rep.Err)
	}
	if rep.RunID == 0 || c.Drifted == 0 && c.Errors == 0 && rep.Err == nil {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	rows := 0
	err := d.EachDrift(context.WithoutCancel(ctx), rep.RunID, func(dr reconcile.Drift) error {
		if rows == 0 {
			fmt.Fprintln(tw, "  SUBSCRIPTION\tFIELD\tTABLE VALUE\tSTRIPE VALUE")
		}
		rows++
		if rows <= textDriftRows {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", orDash(dr.SubscriptionID), dr.Field, orDash(dr.DBValue), orDash(dr.StripeValue))
		}
		return nil
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if rows > textDriftRows {
		fmt.Fprintf(w, "  … %d more drifted fields: see subscription_drift where run_id = %d, or --format json\n",
			rows-textDriftRows, rep.RunID)
	}
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// progress is a progress bar on stderr when stderr is a terminal, and
// nothing otherwise.
type progress struct{ bar *progressbar.ProgressBar }

func newProgress(stderr io.Writer, job string) progress {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return progress{}
	}
	what := map[string]string{reconcile.JobEvents: "events", reconcile.JobSubscriptions: "subscriptions"}[job]
	return progress{bar: progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription("reconcile "+job),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString(what),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

// add counts n more items; safe for concurrent use.
func (p progress) add(n int) {
	if p.bar != nil {
		_ = p.bar.Add(n)
	}
}

func (p progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		_ = p.bar.Clear()
	}
}
