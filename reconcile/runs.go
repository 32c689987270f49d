package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/stripeapi"
)

// Reconciliation jobs.
const (
	JobEvents        = "events"        // catch-up of missed events
	JobSubscriptions = "subscriptions" // full sweep of subscriptions
)

// Jobs lists the jobs in the order `--job all` runs them.
func Jobs() []string { return []string{JobEvents, JobSubscriptions} }

// Stripe is what reconciliation needs from the Stripe client. The sweep
// lists pages with ListSubscriptionsPageSlim, which decodes only the fields
// Resolver.Desired reads: several times cheaper than a full decode.
type Stripe interface {
	ListSubscriptionsPageSlim(ctx context.Context, q stripeapi.SubscriptionPageQuery) ([]*stripe.Subscription, bool, error)
	ListEvents(ctx context.Context, types []string, since time.Time, fn func(*stripe.Event) error) error
}

// Config configures a Reconciler; zero values take the defaults.
type Config struct {
	Logger  *slog.Logger
	Metrics *metrics.Metrics // nil: no metrics
	Clock   func() time.Time // time.Now by default

	// EventsLookback is how far back the first catch-up looks; 720h.
	EventsLookback time.Duration
	// EventsOverlap is how far before its cursor a catch-up lists again,
	// for events that became listable late; 10m.
	EventsOverlap time.Duration
	// EventRetention is how long Stripe lists events; 30 days. A cursor
	// older than that means events were lost: a full sweep runs instead.
	EventRetention time.Duration
	// ApplyEvents, when set, applies the events the catch-up inserted
	// before the run ends (the CLI passes Applier.Drain); fixed then counts
	// those applied. When nil (the daemon, whose applier wakes on NOTIFY),
	// fixed counts the events handed to the inbox.
	ApplyEvents func(ctx context.Context) (int, error)

	// SweepWorkers is how many pages of subscriptions are fetched and
	// compared at once; 24: a 100/s limiter at 100 ms per request needs 10
	// requests in flight, and the rest covers the time spent comparing.
	SweepWorkers int
	// SweepWriters is how many of those pages may write their repairs at
	// once; 2. Fewer concurrent writers into the same indexes cost
	// Postgres less CPU per row: a first sweep of 100,000 subscriptions
	// into an empty table, on 2 CPUs, took 5.0-5.6 s of Postgres CPU with
	// 2 writers against 6.0-7.7 s with all 24, and finished sooner. Two
	// writers repair some hundreds of pages a second, more than Stripe's
	// rate limit lists.
	SweepWriters int
	// SweepEpoch is the oldest creation time a subscription can have;
	// 2010-01-01, before Stripe's launch.
	SweepEpoch time.Time
	// PageSize is the size of Stripe list pages; 100.
	PageSize int
	// LockCheck is how often a run checks that it still holds its leader
	// lock; 15s.
	LockCheck time.Duration
}

// Options are the per-run choices.
type Options struct {
	// DryRun reports drift without changing anything but reconcile_runs
	// and subscription_drift.
	DryRun bool
	// Progress, when set, is called (from several goroutines) with the
	// number of items just scanned.
	Progress func(n int)
}

// Report is the outcome of one run.
type Report struct {
	Job      string
	RunID    int64 // 0 when skipped or when the run could not be recorded
	DryRun   bool
	Skipped  bool // another replica holds the job's lock
	Status   string
	Counts   RunCounts
	Duration time.Duration
	Err      error
}

// Reconciler runs the events catch-up and the subscription sweep, one
// leader per job across replicas, recording each run.
type Reconciler struct {
	cfg      Config
	store    Store
	stripe   Stripe
	resolver *Resolver
	log      *slog.Logger
}

// NewReconciler builds a Reconciler.
func NewReconciler(cfg Config, store Store, st Stripe, r *Resolver) *Reconciler {
	cfg.EventsLookback = cmp.Or(cfg.EventsLookback, 720*time.Hour)
	cfg.EventsOverlap = cmp.Or(cfg.EventsOverlap, 10*time.Minute)
	cfg.EventRetention = cmp.Or(cfg.EventRetention, 30*24*time.Hour)
	cfg.SweepWorkers = cmp.Or(cfg.SweepWorkers, 24)
	cfg.SweepWriters = cmp.Or(cfg.SweepWriters, 2)
	cfg.PageSize = cmp.Or(cfg.PageSize, 100)
	cfg.LockCheck = cmp.Or(cfg.LockCheck, 15*time.Second)
	if cfg.SweepEpoch.IsZero() {
		cfg.SweepEpoch = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{cfg: cfg, store: store, stripe: st, resolver: r, log: log}
}

// LockName is the name of the advisory lock a job's leader holds.
func LockName(job string) string { return "subsync:reconcile:" + job }

// run is the state of one run in progress.
type run struct {
	id       int64
	job      string
	dry      bool
	log      *slog.Logger
	progress func(int)
	scanned  atomic.Int64
	drifted  atomic.Int64
	fixed    atomic.Int64
	errors   atomic.Int64

	mu       sync.Mutex
	inserted []string // ids of the events this catch-up run inserted
}

func (rn *run) counts() RunCounts {
	return RunCounts{
		Scanned: int(rn.scanned.Load()), Drifted: int(rn.drifted.Load()),
		Fixed: int(rn.fixed.Load()), Errors: int(rn.errors.Load()),
	}
}

func (rn *run) scan(n int) {
	rn.scanned.Add(int64(n))
	if rn.progress != nil && n > 0 {
		rn.progress(n)
	}
}

// Run runs job once. When another process holds the job's leader lock it
// does nothing and reports Skipped. A run that cannot finish (Stripe
// retries exhausted, database down, ctx cancelled, lock lost) is recorded
// as failed and its error returned.
func (r *Reconciler) Run(ctx context.Context, job string, opts Options) (Report, error) {
	rep := Report{Job: job, DryRun: opts.DryRun}
	exec := map[string]func(context.Context, *run) error{JobEvents: r.catchUp, JobSubscriptions: r.sweep}[job]
	if exec == nil {
		return rep, fmt.Errorf("unknown reconcile job %q", job)
	}
	log := r.log.With("job", job)
	start := r.cfg.Clock()
	lock, ok, err := r.store.TryLeaderLock(ctx, LockName(job))
	if err != nil {
		return r.failEarly(ctx, rep, log, start, err)
	}
	if !ok {
		log.Info("skipped: another replica is running the job")
		r.observe(job, "skipped", 0, start)
		rep.Skipped, rep.Status = true, "skipped"
		return rep, nil
	}
	defer func() {
		if err := lock.Release(ctx); err != nil {
			log.Warn("release leader lock", "err", err.Error())
		}
	}()
	if n, err := r.store.AbandonRuns(ctx, job); err != nil {
		return r.failEarly(ctx, rep, log, start, err)
	} else if n > 0 {
		log.Warn("earlier runs never finished; marked failed", "count", n)
	}
	id, err := r.store.StartRun(ctx, job, opts.DryRun)
	if err != nil {
		return r.failEarly(ctx, rep, log, start, err)
	}
	rep.RunID = id
	rn := &run{id: id, job: job, dry: opts.DryRun, log: log.With("run_id", id), progress: opts.Progress}
	rn.log.Info("reconcile run started", "dry_run", opts.DryRun)

	runCtx, cancel := context.WithCancelCause(ctx)
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		r.watchLock(runCtx, lock, cancel)
	}()
	err = exec(runCtx, rn)
	switch cause := context.Cause(runCtx); {
	case err == nil:
	case ctx.Err() != nil && !errors.Is(err, ctx.Err()):
		err = fmt.Errorf("%w: %w", ctx.Err(), err) // a driver error hides the cancellation
	case cause != nil && ctx.Err() == nil:
		err = fmt.Errorf("%w: %w", cause, err) // the lock watch cancelled the run
	}
	cancel(nil)
	<-watchDone

	rep.Counts, rep.Duration = rn.counts(), r.cfg.Clock().Sub(start)
	rep.Status = RunSucceeded
	errText := ""
	if err != nil {
		rep.Status, rep.Err, errText = RunFailed, err, err.Error()
	}
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer fcancel()
	if ferr := r.store.FinishRun(fctx, id, rep.Status, rep.Counts, errText); ferr != nil {
		rn.log.Error("record end of run", "err", ferr.Error())
		if err == nil {
			rep.Status, rep.Err, err = RunFailed, ferr, ferr
		}
	}
	r.observe(job, rep.Status, rep.Duration, start)
	c := rep.Counts
	attrs := []any{"status", rep.Status, "dry_run", opts.DryRun, "scanned", c.Scanned, "drifted", c.Drifted,
		"fixed", c.Fixed, "errors", c.Errors, "duration_seconds", rep.Duration.Seconds()}
	switch {
	case err == nil:
		rn.log.Info("reconcile run finished", attrs...)
		return rep, nil
	case ctx.Err() != nil:
		rn.log.Warn("reconcile run cancelled", attrs...)
	default:
		rn.log.Error("reconcile run failed", append(attrs, "err", err.Error())...)
	}
	return rep, fmt.Errorf("%s run %d: %w", job, id, err)
}

// failEarly reports a run that failed before it could be recorded.
func (r *Reconciler) failEarly(ctx context.Context, rep Report, log *slog.Logger, start time.Time, err error) (Report, error) {
	rep.Status, rep.Err, rep.Duration = RunFailed, err, r.cfg.Clock().Sub(start)
	r.observe(rep.Job, RunFailed, rep.Duration, start)
	if ctx.Err() == nil {
		log.Error("reconcile run could not start", "err", err.Error())
	}
	return rep, fmt.Errorf("%s: %w", rep.Job, err)
}

// watchLock cancels the run when its lock can no longer be confirmed:
// another replica may take the job over.
func (r *Reconciler) watchLock(ctx context.Context, lock LeaderLock, cancel context.CancelCauseFunc) {
	t := time.NewTicker(r.cfg.LockCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := lock.Check(ctx); err != nil && ctx.Err() == nil {
				cancel(fmt.Errorf("leader lock lost: %w", err))
				return
			}
		}
	}
}

// observe records a run's outcome in the metrics.
func (r *Reconciler) observe(job, outcome string, d time.Duration, start time.Time) {
	m := r.cfg.Metrics
	if m == nil {
		return
	}
	m.ReconcileRuns.WithLabelValues(job, outcome).Inc()
	if outcome == "skipped" {
		return
	}
	m.ReconcileDuration.WithLabelValues(job).Observe(d.Seconds())
	if outcome == RunSucceeded {
		m.ReconcileLastSuccess.WithLabelValues(job).Set(float64(start.Add(d).Unix()))
	}
}

// LoadLastSuccess sets the last-success gauge of each job from
// reconcile_runs, so that a restarted daemon does not look stale.
func (r *Reconciler) LoadLastSuccess(ctx context.Context) {
	if r.cfg.Metrics == nil {
		return
	}
	for _, job := range Jobs() {
		at, err := r.store.LastSuccess(ctx, job)
		if err == nil {
			r.cfg.Metrics.ReconcileLastSuccess.WithLabelValues(job).Set(float64(at.Unix()))
		} else if !errors.Is(err, ErrNotFound) {
			r.log.Warn("read last successful run", "job", job, "err", err.Error())
		}
	}
}

// recordDrift stores drifted fields of the run and counts them by field.
func (r *Reconciler) recordDrift(ctx context.Context, rn *run, drift []Drift) error {
	if len(drift) == 0 {
		return nil
	}
	if err := r.store.InsertDrift(ctx, rn.id, drift); err != nil {
		return err
	}
	r.countDrift(rn, drift)
	return nil
}

// countDrift counts recorded drifted fields by field.
func (r *Reconciler) countDrift(rn *run, drift []Drift) {
	if m := r.cfg.Metrics; m != nil {
		for _, d := range drift {
			m.ReconcileDrift.WithLabelValues(rn.job, d.Field).Inc()
		}
	}
}

// lowPriority marks bulk Stripe requests so that webhook refetches go
// first through the shared limiter.
func lowPriority(ctx context.Context) context.Context {
	return stripeapi.WithPriority(ctx, stripeapi.PriorityLow)
}
