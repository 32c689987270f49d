package reconcile_test

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/metrics"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// recFixture is a migrated database, a Stripe fake with mapped prices and
// what a Reconciler needs to use both.
type recFixture struct {
	db       *db.DB
	x        *sqlx.DB
	fake     *stripefake.Server
	metrics  *metrics.Metrics
	resolver *reconcile.Resolver
	annual   string // maquina annual, mapped
	monthly  string // maquina monthly, mapped
	other    string // quarterly, unmapped
}

func newRecFixture(t testing.TB) *recFixture {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry(), false)
	d := dbtest.Open(t, db.Config{Metrics: m, MaxOpenConns: 8})
	fake := newFake(t, 42)
	f := &recFixture{db: d, x: d.X(), fake: fake, metrics: m}
	for _, p := range []struct {
		dst      *string
		interval string
		count    int64
	}{{&f.annual, "year", 1}, {&f.monthly, "month", 1}, {&f.other, "month", 3}} {
		pr, err := fake.CreatePrice(stripefake.PriceParams{UnitAmount: 1000, Interval: p.interval, IntervalCount: p.count, ProductName: "Máquina"})
		if err != nil {
			t.Fatal(err)
		}
		*p.dst = pr.ID
	}
	plans := mustPlans(t,
		reconcile.PlanEntry{Price: f.annual, Plan: "maquina", Period: reconcile.PeriodAnnual},
		reconcile.PlanEntry{Price: f.monthly, Plan: "maquina", Period: reconcile.PeriodMonthly},
	)
	f.resolver = &reconcile.Resolver{Plans: plans, Customers: f.client(t, stripeapi.Config{})}
	return f
}

// client is a Stripe client on the fake; cfg may set retries and limits.
func (f *recFixture) client(t testing.TB, cfg stripeapi.Config) *stripeapi.Client {
	t.Helper()
	cfg.Metrics = f.metrics
	cfg.RateLimit = cmp.Or(cfg.RateLimit, 2000)
	return fakeClient(t, f.fake, cfg)
}

// reconciler builds a Reconciler on the fake with a client of its own.
func (f *recFixture) reconciler(t testing.TB, cfg reconcile.Config, ccfg stripeapi.Config) *reconcile.Reconciler {
	t.Helper()
	cfg.Metrics = f.metrics
	return reconcile.NewReconciler(cfg, f.db, f.client(t, ccfg), f.resolver)
}

// seed creates n subscriptions spread over spread, cycling statuses.
func (f *recFixture) seed(t testing.TB, n int, spread time.Duration, statuses ...string) []string {
	t.Helper()
	ids, err := f.fake.SeedSubscriptions(n, stripefake.SeedOptions{
		Prices: []string{f.annual, f.monthly, f.other}, Statuses: statuses, Spread: spread,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// slowSweep seeds n subscriptions spread over a day, makes Stripe answer
// after latency and returns a reconciler sweeping with one worker: a run
// that lasts.
func (f *recFixture) slowSweep(t testing.TB, n int, latency time.Duration) *reconcile.Reconciler {
	t.Helper()
	f.seed(t, n, 24*time.Hour)
	f.fake.SetFaults(stripefake.Faults{Latency: latency})
	return f.reconciler(t, reconcile.Config{SweepWorkers: 1}, stripeapi.Config{})
}

// run runs job and fails the test when it fails.
func (f *recFixture) run(t *testing.T, rec *reconcile.Reconciler, job string, dry bool) reconcile.Report {
	t.Helper()
	rep, err := rec.Run(context.Background(), job, reconcile.Options{DryRun: dry})
	if err != nil {
		t.Fatalf("%s run: %v", job, err)
	}
	return rep
}

// storedRun reads the reconcile_runs row of a report.
func (f *recFixture) storedRun(t *testing.T, id int64) db.Run {
	t.Helper()
	r, err := f.db.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// drift returns the drifted fields recorded by run id, subscription → fields.
func (f *recFixture) drift(t *testing.T, id int64) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := f.db.EachDrift(context.Background(), id, func(d reconcile.Drift) error {
		out[d.SubscriptionID] = append(out[d.SubscriptionID], d.Field)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertTableMatchesStripe checks every subscription of the fake against
// its row, field by field.
func (f *recFixture) assertTableMatchesStripe(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	subs := f.fake.Subscriptions()
	for _, sub := range subs {
		row, err := f.db.GetSubscription(ctx, sub.ID)
		if err != nil {
			t.Fatalf("subscription %s (%s): %v", sub.ID, sub.Status, err)
		}
		want, err := f.resolver.Desired(ctx, sub, time.Now(), false)
		if err != nil {
			t.Fatal(err)
		}
		if d := reconcile.Diff(row, want); len(d) > 0 {
			t.Fatalf("row %s differs from Stripe: %+v", sub.ID, d)
		}
	}
}

func TestRunRecordsRunsAndMetrics(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	f.seed(t, 30, 24*time.Hour)
	rec := f.reconciler(t, reconcile.Config{}, stripeapi.Config{})
	rep := f.run(t, rec, reconcile.JobSubscriptions, false)
	stored := f.storedRun(t, rep.RunID)
	if stored.Status != reconcile.RunSucceeded || stored.Job != "subscriptions" || stored.Scanned != 30 ||
		stored.Drifted != 30 || stored.Fixed != 30 || stored.Errors != 0 || !stored.FinishedAt.Valid || stored.Error.Valid {
		t.Fatalf("stored run %+v", stored)
	}
	if got := testutil.ToFloat64(f.metrics.ReconcileRuns.WithLabelValues("subscriptions", "succeeded")); got != 1 {
		t.Fatalf("runs{succeeded} = %v", got)
	}
	if got := testutil.ToFloat64(f.metrics.ReconcileDrift.WithLabelValues("subscriptions", "missing_in_db")); got != 30 {
		t.Fatalf("drift{missing_in_db} = %v", got)
	}
	if got := testutil.ToFloat64(f.metrics.ReconcileLastSuccess.WithLabelValues("subscriptions")); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("last success = %v", got)
	}
	if testutil.CollectAndCount(f.metrics.ReconcileDuration) != 1 {
		t.Fatal("no duration observed")
	}
	if _, err := rec.Run(context.Background(), "nope", reconcile.Options{}); err == nil {
		t.Fatal("unknown job accepted")
	}
}

func TestRunFailsWhenStripeRetriesAreExhausted(t *testing.T) {
	t.Parallel()
	for _, job := range reconcile.Jobs() {
		t.Run(job, func(t *testing.T) {
			f := newRecFixture(t)
			f.seed(t, 10, time.Hour)
			f.fake.SetFaults(stripefake.Faults{ErrorRate: 1})
			rec := f.reconciler(t, reconcile.Config{}, stripeapi.Config{MaxRetries: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
			rep, err := rec.Run(context.Background(), job, reconcile.Options{})
			if err == nil || rep.Status != reconcile.RunFailed {
				t.Fatalf("run with every request failing: status %s, err %v", rep.Status, err)
			}
			stored := f.storedRun(t, rep.RunID)
			if stored.Status != reconcile.RunFailed || !stored.Error.Valid || stored.Error.String == "" {
				t.Fatalf("stored run %+v", stored)
			}
			if inj := f.fake.Stats().Injected; inj < 3 {
				t.Fatalf("only %d injected errors: retries did not happen", inj)
			}
			if got := testutil.ToFloat64(f.metrics.ReconcileRuns.WithLabelValues(job, "failed")); got != 1 {
				t.Fatalf("runs{failed} = %v", got)
			}
			if got := testutil.ToFloat64(f.metrics.ReconcileLastSuccess.WithLabelValues(job)); got != 0 {
				t.Fatalf("a failed run set last success: %v", got)
			}
			if job == reconcile.JobEvents {
				if _, err := f.db.Cursor(context.Background(), reconcile.JobEvents); !errors.Is(err, db.ErrNotFound) {
					t.Fatalf("a failed catch-up advanced the cursor: %v", err)
				}
			}
		})
	}
}

func TestRunCancelledIsFailed(t *testing.T) {
	f := newRecFixture(t)
	rec := f.slowSweep(t, 300, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancel once the run is under way, as SIGTERM would
		for ctx.Err() == nil {
			var n int
			if f.x.Get(&n, `SELECT count(*) FROM reconcile_runs WHERE status = 'running'`) == nil && n > 0 {
				time.Sleep(60 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	rep, err := rec.Run(ctx, reconcile.JobSubscriptions, reconcile.Options{})
	if !errors.Is(err, context.Canceled) || rep.RunID == 0 {
		t.Fatalf("cancelled run returned %v (run %d)", err, rep.RunID)
	}
	if stored := f.storedRun(t, rep.RunID); stored.Status != reconcile.RunFailed {
		t.Fatalf("cancelled run stored as %s", stored.Status)
	}
	if rep.Counts.Scanned >= 300 {
		t.Fatalf("the run finished before it was cancelled: %+v", rep.Counts)
	}
}

func TestTwoRunsAtOnceOneSkips(t *testing.T) {
	for _, job := range reconcile.Jobs() {
		t.Run(job, func(t *testing.T) {
			f := newRecFixture(t)
			f.seed(t, 20, time.Hour)
			f.fake.SetFaults(stripefake.Faults{Latency: time.Second}) // the first run holds the lock a while
			reps := make([]reconcile.Report, 2)
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range 2 { // two replicas: clients and reconcilers of their own
				rec := f.reconciler(t, reconcile.Config{}, stripeapi.Config{})
				wg.Go(func() { reps[i], errs[i] = rec.Run(context.Background(), job, reconcile.Options{}) })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("errors: %v / %v", errs[0], errs[1])
			}
			if reps[0].Skipped == reps[1].Skipped {
				t.Fatalf("skipped: %v and %v; want exactly one", reps[0].Skipped, reps[1].Skipped)
			}
			if got := testutil.ToFloat64(f.metrics.ReconcileRuns.WithLabelValues(job, "skipped")); got != 1 {
				t.Fatalf("runs{skipped} = %v", got)
			}
			var runs int
			if err := f.x.Get(&runs, `SELECT count(*) FROM reconcile_runs WHERE job = $1`, job); err != nil || runs != 1 {
				t.Fatalf("%d runs recorded (%v), want 1", runs, err)
			}
		})
	}
}

func TestAbandonedRunsAreMarkedFailed(t *testing.T) {
	t.Parallel()
	f := newRecFixture(t)
	ctx := context.Background()
	id, err := f.db.StartRun(ctx, reconcile.JobSubscriptions, false) // a process that died mid-run
	if err != nil {
		t.Fatal(err)
	}
	f.run(t, f.reconciler(t, reconcile.Config{}, stripeapi.Config{}), reconcile.JobSubscriptions, false)
	if r := f.storedRun(t, id); r.Status != reconcile.RunFailed || !r.Error.Valid {
		t.Fatalf("abandoned run: %+v", r)
	}
}
