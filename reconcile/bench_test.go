package reconcile_test

import (
	"context"
	"testing"
	"time"

	"github.com/subsync/subsync/reconcile"
	"github.com/subsync/subsync/stripeapi"
)

// BenchmarkSweepInSync sweeps 5,000 subscriptions whose rows are in sync,
// in process (the fake included, so profiles show both sides). The figures
// of record come from cmd/subsync-bench (make bench), which measures the
// real command in a process of its own.
//
//	go test -run '^$' -bench SweepInSync -cpuprofile cpu.out ./reconcile/
func BenchmarkSweepInSync(b *testing.B) {
	f := newRecFixture(b)
	const n = 5000
	f.seed(b, n, 2*365*24*time.Hour)
	rec := f.reconciler(b, reconcile.Config{}, stripeapi.Config{})
	if _, err := rec.Run(context.Background(), reconcile.JobSubscriptions, reconcile.Options{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		rep, err := rec.Run(context.Background(), reconcile.JobSubscriptions, reconcile.Options{})
		if err != nil || rep.Counts.Scanned != n || rep.Counts.Drifted != 0 {
			b.Fatalf("sweep: %+v %v", rep.Counts, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "subs/s")
}
