package cache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/subsync/subsync/cache"
	"github.com/subsync/subsync/db"
	"github.com/subsync/subsync/internal/dbtest"
	"github.com/subsync/subsync/internal/testenv"
)

// Postgres crashes while a batch's keys are being deleted and is back a
// moment later: the worker must record the delivery once the database
// answers again rather than leave the rows to their lease (found by the
// chaos scenario: rows delivered during a restart stayed pending for the
// whole 30 s lease after both Redis and Postgres were back).
func TestDeliveryRecordedAfterDatabaseRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	m := newMetrics()
	d := dbtest.OpenOn(t, pg, db.Config{CacheKeyTemplate: template, Metrics: m})
	users, _ := linkUsers(t, d, 3)

	// The pipeline runs against the real Redis; the hook then holds the
	// worker until Postgres is down.
	inPipeline, killed := make(chan struct{}), make(chan struct{})
	hook := newDelCounter()
	rdb := newRedis(t, "", hook)
	var keys []string
	for _, u := range users {
		keys = append(keys, key(u))
	}
	set(t, rdb, keys...)
	var once sync.Once
	hook.afterPipeline = func() {
		once.Do(func() {
			close(inPipeline)
			<-killed
		})
	}
	// A lease far longer than the test: only recorded outcomes count.
	w := cache.NewWorker(cache.Config{Metrics: m, Lease: time.Hour, Timeout: 20 * time.Second}, d, rdb)

	done := make(chan error, 1)
	go func() {
		_, err := w.RunOnce(ctx)
		done <- err
	}()
	select {
	case <-inPipeline:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker never deleted the keys")
	}
	pg.Kill(t)
	close(killed)
	testenv.WaitFor(t, "marking the rows done to fail", func() bool {
		return testutil.ToFloat64(m.DBErrors.WithLabelValues("mark_invalidations_done")) > 0
	})
	pg.Start(t)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunOnce: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("RunOnce did not return after the database came back")
	}
	wantAllDone(t, d, 1)
	wantGone(t, rdb, keys)
}
