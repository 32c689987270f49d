package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/stripefake"
	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

func TestScheduleInterval(t *testing.T) {
	at := time.Date(2026, 5, 4, 10, 30, 0, 0, time.UTC)
	cases := []struct {
		spec string
		want time.Duration
	}{
		{"@every 5m", 5 * time.Minute},
		{"0 3 * * *", 24 * time.Hour},
		{"*/10 * * * * *", 10 * time.Second},
		{"@hourly", time.Hour},
		{"0 0 * * 1", 7 * 24 * time.Hour},
		{"0 3,4 * * *", 23 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.spec, func(t *testing.T) {
			s, err := reconcile.ParseSchedule(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := reconcile.Interval(s, at); got != c.want {
				t.Fatalf("interval %v, want %v", got, c.want)
			}
		})
	}
	if _, err := reconcile.ParseSchedule("every day"); err == nil {
		t.Fatal("bad spec accepted")
	}
}

// TestSchedulerReplicasShareTheJob runs two schedulers (two replicas) on
// one database: every tick runs the job once, the other replica skips.
func TestSchedulerReplicasShareTheJob(t *testing.T) {
	f := newRecFixture(t)
	f.seed(t, 5, time.Hour)
	ctx := context.Background()
	var scheds []*reconcile.Scheduler
	for range 2 {
		rec := f.reconciler(t, reconcile.Config{}, stripeapi.Config{})
		s := reconcile.NewScheduler(ctx, reconcile.ScheduleConfig{Metrics: f.metrics}, rec)
		if err := s.Add(reconcile.JobSubscriptions, "@every 1s"); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(reconcile.JobEvents, ""); err != nil {
			t.Fatal(err)
		}
		scheds = append(scheds, s)
	}
	f.fake.SetFaults(stripefake.Faults{Latency: 400 * time.Millisecond}) // runs overlap the other replica's tick
	for _, s := range scheds {
		s.Start()
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if testutil.ToFloat64(f.metrics.ReconcileRuns.WithLabelValues("subscriptions", "succeeded")) >= 2 &&
			testutil.ToFloat64(f.metrics.ReconcileRuns.WithLabelValues("subscriptions", "skipped")) >= 1 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, s := range scheds {
		s.Stop(stopCtx)
	}
	ok := testutil.ToFloat64(f.metrics.ReconcileRuns.WithLabelValues("subscriptions", "succeeded"))
	skipped := testutil.ToFloat64(f.metrics.ReconcileRuns.WithLabelValues("subscriptions", "skipped"))
	if ok < 2 || skipped < 1 {
		t.Fatalf("succeeded %v, skipped %v", ok, skipped)
	}
	var overlapping int
	f.x.Get(&overlapping, `SELECT count(*) FROM reconcile_runs a JOIN reconcile_runs b
		ON a.id < b.id AND a.job = b.job AND b.started_at < a.finished_at AND a.started_at < b.finished_at`)
	if overlapping != 0 {
		t.Fatalf("%d pairs of runs overlapped", overlapping)
	}
	if got := testutil.ToFloat64(f.metrics.ReconcileInterval.WithLabelValues("subscriptions")); got != 1 {
		t.Fatalf("interval = %v", got)
	}
	if got := testutil.ToFloat64(f.metrics.ReconcileInterval.WithLabelValues("events")); got != 0 {
		t.Fatalf("disabled job interval = %v", got)
	}
	var running int
	f.x.Get(&running, `SELECT count(*) FROM reconcile_runs WHERE status = 'running'`)
	if running != 0 {
		t.Fatalf("%d runs still running after Stop", running)
	}
}

func TestSchedulerStopCancelsLongRuns(t *testing.T) {
	f := newRecFixture(t)
	rec := f.slowSweep(t, 2000, 300*time.Millisecond)
	s := reconcile.NewScheduler(context.Background(), reconcile.ScheduleConfig{StopGrace: 5 * time.Second}, rec)
	if err := s.Add(reconcile.JobSubscriptions, "@every 1s"); err != nil {
		t.Fatal(err)
	}
	s.Start()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		f.x.Get(&n, `SELECT count(*) FROM reconcile_runs`)
		if n > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	s.Stop(ctx) // gives up waiting after 200ms: the run is cancelled
	var r db.Run
	if err := f.x.Get(&r, `SELECT id, job, dry_run, started_at, finished_at, status, scanned, drifted, fixed, errors, error
		FROM reconcile_runs ORDER BY id LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if r.Status != reconcile.RunFailed || r.Scanned >= 2000 || !r.Error.Valid {
		t.Fatalf("interrupted run recorded as %+v", r)
	}
}
